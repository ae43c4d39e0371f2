//! The webhook's refusals against the real binary: nothing is journalled for a request that
//! is refused, and the process keeps serving.

mod common;

use common::*;

#[test]
fn webhook_refuses_without_auth_too_large_malformed_and_not_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServeConfig::new(dir.path(), &unreachable_cluster_policy(dir.path()));
    config.extra = vec!["--web.max-body-bytes=65536".into()];
    let remediator = Remediator::start(config);
    let valid = payload(&AlertSpec {
        cluster: "gp-other",
        status: "firing",
        starts_at: "2026-11-21T16:27:55Z",
        fingerprint: "0000000000000001",
        extra_labels: vec![],
    })
    .to_string();

    // No credentials: 401. Wrong token: 403.
    let path = "/api/v1/alerts";
    assert_eq!(
        remediator.post_raw(path, None, "application/json", &valid),
        401
    );
    assert_eq!(
        remediator.post_raw(path, Some("not-the-token"), "application/json", &valid),
        403
    );
    // The API is guarded the same way.
    assert_eq!(
        remediator.post_raw("/api/v1/pause", None, "application/json", "{}"),
        401
    );

    let token = Some(remediator.config.token.as_str());
    // Larger than --web.max-body-bytes: 413, even though it is valid JSON.
    let mut big = serde_json::from_str::<serde_json::Value>(&valid).expect("json");
    big["padding"] = serde_json::json!("x".repeat(70_000));
    assert_eq!(
        remediator.post_raw(path, token, "application/json", &big.to_string()),
        413
    );
    // Malformed JSON and a JSON document that is no Alertmanager payload: 400.
    assert_eq!(
        remediator.post_raw(path, token, "application/json", "{\"alerts\": [}"),
        400
    );
    assert_eq!(
        remediator.post_raw(path, token, "application/json", "{\"version\": \"4\"}"),
        400
    );
    // Not JSON: 415.
    assert_eq!(remediator.post_raw(path, token, "text/plain", &valid), 415);

    // Nothing refused reached the journal; the valid delivery does (202) and is decided.
    let journal = JournalReader::open(&remediator.config.journal);
    assert_eq!(journal.count("SELECT COUNT(*) FROM deliveries"), 0);
    assert_eq!(
        remediator.post_raw(path, token, "application/json", &valid),
        202
    );
    assert_eq!(journal.count("SELECT COUNT(*) FROM deliveries"), 1);
    let decisions = wait_for("the event's decision", || {
        let d = journal.decisions("0000000000000001");
        (!d.is_empty()).then_some(d)
    });
    assert_eq!(decisions, vec!["unknown_cluster".to_string()]);

    // The refusals are counted by code on /metrics.
    let metrics = ureq::get(&remediator.url("/metrics"))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    for code in ["401", "403", "413", "400", "415", "202"] {
        assert!(
            metrics.contains(&format!(
                "greenplum_remediator_webhook_requests_total{{code=\"{code}\"}}"
            )),
            "code {code} not counted:\n{metrics}"
        );
    }
}
