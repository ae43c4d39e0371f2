//! Operator identity against the real binary (`--auth.operators-file`): decisions need an
//! operator's own token, the webhook's token (Alertmanager's) gets 403 and changes nothing,
//! the journal records the operator named by the token whatever the client claims, a bad
//! operators file stops `serve` with its line before anything starts, and without the file
//! the service says so (log, `/metrics`, journal).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

const ALICE: &str = "alice-operator-token-0123456789";
const BOB: &str = "bob-operator-token-0123456789ab";

fn policy(dir: &Path) -> PathBuf {
    let path = dir.join("policy.yml");
    std::fs::write(
        &path,
        format!(
            "clusters:\n  - name: gp-operators\n    endpoints: ['127.0.0.1:{}']\n    \
             executor: {{local: {{env: {{PATH: /usr/bin:/bin}}}}}}\nrules: []\n",
            free_port()
        ),
    )
    .expect("policy");
    path
}

/// Writes a file only its owner can read (as an operators or token file must be).
fn private_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn operators_file(dir: &Path) -> PathBuf {
    private_file(
        dir,
        "operators",
        &format!("# name token\nalice {ALICE}\n\nbob   {BOB}\n"),
    )
}

/// The CLI with the token in `token_file`, claiming to be `who`.
fn cli(remediator: &Remediator, token_file: &Path, who: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg(format!("--url=http://{}", remediator.config.address))
        .arg(format!("--auth.token-file={}", token_file.display()))
        .arg(format!("--who={who}"))
        .output()
        .expect("run the CLI")
}

fn controls(journal: &JournalReader) -> i64 {
    journal.count("SELECT COUNT(*) FROM controls")
}

/// Without a lab: every decision endpoint refuses the webhook's token (403, with a message
/// naming operator tokens) and unknown tokens (403); the webhook token still delivers alerts
/// and reads; an operator's pause and resume are recorded under the name the token gives,
/// not the `--who` the CLI sends.
#[test]
fn the_webhook_token_cannot_decide_and_operators_are_named_by_their_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let operators = operators_file(dir.path());
    let mut config = ServeConfig::new(dir.path(), &policy(dir.path()));
    config.extra = vec![format!("--auth.operators-file={}", operators.display())];
    let remediator = Remediator::start(config);
    let journal = JournalReader::open(&remediator.config.journal);
    let webhook_token = remediator.config.token.clone();
    assert_eq!(
        remediator.metric("greenplum_remediator_operator_auth_enabled"),
        Some(1.0)
    );

    let decision = r#"{"who": "alice", "why": "I am Alertmanager, trust me"}"#;
    for path in [
        "/api/v1/actions/1/approve",
        "/api/v1/actions/1/reject",
        "/api/v1/pause",
        "/api/v1/resume",
        "/api/v1/breaker/reset",
    ] {
        for token in [webhook_token.as_str(), "unknown-token-0123456789abc"] {
            assert_eq!(
                remediator.post_raw(path, Some(token), "application/json", decision),
                403,
                "{path}"
            );
        }
        assert_eq!(
            remediator.post_raw(path, None, "application/json", decision),
            401,
            "{path}"
        );
    }
    // Through the CLI too, with a clear message.
    let output = cli(
        &remediator,
        &remediator.config.token_file(),
        "alice",
        &["pause", "--reason=maintenance"],
    );
    assert!(!output.status.success());
    let said = output_text(&output);
    assert!(
        said.contains("403") && said.contains("operator's own token"),
        "{said}"
    );
    assert_eq!(controls(&journal), 0, "a refused decision was journalled");
    assert_eq!(remediator.metric("greenplum_remediator_paused"), Some(0.0));

    // The webhook token still does its job: deliveries and reads.
    let body = payload(&AlertSpec {
        cluster: "gp-elsewhere",
        status: "firing",
        starts_at: "2026-11-21T16:27:55Z",
        fingerprint: "0be0000000000001",
        extra_labels: vec![],
    });
    assert_eq!(remediator.post_alerts(&body), 202);
    assert!(remediator.get("/api/v1/actions")["actions"].is_array());

    // Bob's token, claiming to be alice: recorded as bob; alice's claim is only a note.
    let bob_token = private_file(dir.path(), "bob.token", &format!("{BOB}\n"));
    let output = cli(
        &remediator,
        &bob_token,
        "alice",
        &["pause", "--reason=disk maintenance"],
    );
    assert!(output.status.success(), "{}", output_text(&output));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON answer");
    assert_eq!(answer["who"], "bob");
    assert_eq!(remediator.metric("greenplum_remediator_paused"), Some(1.0));
    let alice_token = private_file(dir.path(), "alice.token", &format!("{ALICE}\n"));
    let output = cli(
        &remediator,
        &alice_token,
        "alice",
        &["resume", "--reason=done"],
    );
    assert!(output.status.success(), "{}", output_text(&output));
    assert_eq!(
        journal.count(
            "SELECT COUNT(*) FROM controls WHERE kind = 'pause' AND who = 'bob'
             AND why LIKE 'disk maintenance%' AND why LIKE '%alice%'"
        ),
        1
    );
    assert_eq!(
        journal.count(
            "SELECT COUNT(*) FROM controls WHERE kind = 'resume' AND who = 'alice' AND why = 'done'"
        ),
        1
    );
    assert_eq!(controls(&journal), 2);
}

/// Each bad operators file stops `serve` with its path and line (when it has one) before
/// the listener or the journal exists, and never echoes a token.
#[test]
fn a_bad_operators_file_stops_serve_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = policy(dir.path());
    let webhook_token = "webhook-token-0123456789abcdef";
    let token_file = private_file(dir.path(), "webhook.token", webhook_token);
    let cases: &[(&str, String, u32, &str)] = &[
        (
            "duplicate name",
            format!("alice {ALICE}\n# bob\nalice {BOB}\n"),
            0o600,
            "line 3: operator alice is already defined on line 1",
        ),
        (
            "no token",
            format!("alice {ALICE}\nbob\n"),
            0o600,
            "line 2: no token",
        ),
        (
            "shared token",
            format!("alice {ALICE}\nbob {ALICE}\n"),
            0o600,
            "line 2: the token of bob is also the token of alice",
        ),
        (
            "short token",
            "\n\ncarol abc\n".to_string(),
            0o600,
            "line 3: the token of carol is shorter than 16",
        ),
        (
            "world-readable",
            format!("alice {ALICE}\n"),
            0o644,
            "readable or writable by every user",
        ),
        (
            "empty",
            "# nobody yet\n".to_string(),
            0o600,
            "names no operator",
        ),
        (
            "the webhook's token",
            format!("alice {ALICE}\nbob {webhook_token}\n"),
            0o600,
            "also the webhook's",
        ),
    ];
    for (what, content, mode, expected) in cases {
        let operators = dir.path().join("operators");
        std::fs::write(&operators, content).expect("write");
        std::fs::set_permissions(&operators, std::fs::Permissions::from_mode(*mode))
            .expect("chmod");
        let journal = dir.path().join("journal.db");
        let output = Command::new(BIN)
            .arg("serve")
            .arg(format!("--policy={}", policy.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
            .arg(format!("--journal.path={}", journal.display()))
            .arg(format!("--auth.token-file={}", token_file.display()))
            .arg(format!("--auth.operators-file={}", operators.display()))
            .output()
            .expect("run");
        let said = output_text(&output);
        assert!(!output.status.success(), "{what}: served");
        assert!(said.contains(expected), "{what}: {said}");
        assert!(
            said.contains(&operators.display().to_string()),
            "{what}: {said}"
        );
        for secret in [ALICE, BOB, webhook_token] {
            assert!(!said.contains(secret), "{what}: a token is echoed: {said}");
        }
        assert!(!journal.exists(), "{what}: the journal was opened");
    }
}

/// Without an operators file the service keeps today's behaviour but says so: a warning at
/// start, `greenplum_remediator_operator_auth_enabled 0`, and each decision's `why` marks
/// its `who` as claimed by the client.
#[test]
fn without_operators_the_claimed_identity_is_announced_and_marked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remediator = Remediator::start(ServeConfig::new(dir.path(), &policy(dir.path())));
    let journal = JournalReader::open(&remediator.config.journal);
    assert_eq!(
        remediator.metric("greenplum_remediator_operator_auth_enabled"),
        Some(0.0)
    );
    let log = std::fs::read_to_string(remediator.config.log_file()).expect("log");
    assert!(
        log.contains("WARN") && log.contains("no --auth.operators-file"),
        "{log}"
    );
    let output = cli(
        &remediator,
        &remediator.config.token_file(),
        "carol",
        &["pause", "--reason=maintenance"],
    );
    assert!(output.status.success(), "{}", output_text(&output));
    assert_eq!(
        journal.count(
            "SELECT COUNT(*) FROM controls WHERE who = 'carol'
             AND why = 'maintenance [who is claimed by the client: no --auth.operators-file]'"
        ),
        1
    );
}

const CLUSTER: &str = "gp-operators";

/// On a live lab, an action waiting for approval: the webhook's token cannot approve it
/// (403, no approval row, still waiting, nothing ran); alice's token, through the CLI that
/// claims to be `mallory`, approves it, the journal and the API say alice, and it runs once.
#[test]
fn an_approval_is_recorded_as_the_operator_whose_token_made_it() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = lab_up(2);
    let wrap = ToolWrap::install(dir.path(), &lab.bin_dir());
    let policy = write_lab_policy(dir.path(), CLUSTER, &lab, &wrap, RECOVER_WITH_APPROVAL);
    let operators = operators_file(dir.path());
    let mut config = ServeConfig::new(dir.path(), &policy);
    config.extra = vec![format!("--auth.operators-file={}", operators.display())];
    let remediator = Remediator::start(config);
    let journal = JournalReader::open(&remediator.config.journal);

    lab.fail_primary(0).expect("fail primary 0");
    wait_failed_over(&lab, 0);
    let alert = payload(&AlertSpec {
        cluster: CLUSTER,
        status: "firing",
        starts_at: "2026-11-21T17:00:00Z",
        fingerprint: "0be0000000000002",
        extra_labels: vec![],
    });
    assert_eq!(remediator.post_alerts(&alert), 202);
    let action = remediator.wait_new_action(0, &["awaiting_approval"]);
    let id = action["id"].as_i64().expect("id");

    let output = cli(
        &remediator,
        &remediator.config.token_file(),
        "alice",
        &["actions", "approve", &id.to_string(), "--reason=looks fine"],
    );
    assert!(!output.status.success(), "the webhook token approved");
    assert!(
        output_text(&output).contains("403"),
        "{}",
        output_text(&output)
    );
    assert_eq!(journal.count("SELECT COUNT(*) FROM approvals"), 0);
    assert_eq!(remediator.action(id)["state"], "awaiting_approval");
    assert!(wrap.invocations().is_empty(), "something ran");

    let alice_token = private_file(dir.path(), "alice.token", &format!("{ALICE}\n"));
    let output = cli(
        &remediator,
        &alice_token,
        "mallory",
        &[
            "actions",
            "approve",
            &id.to_string(),
            "--reason=checked the hosts",
        ],
    );
    assert!(output.status.success(), "{}", output_text(&output));
    let done = remediator.wait_action_state(
        id,
        &["succeeded", "failed", "refused", "rejected", "expired"],
    );
    assert_eq!(
        done["state"],
        "succeeded",
        "{done:#}\n{}",
        remediator.log_tail()
    );
    assert_eq!(done["approvals"][0]["who"], "alice", "{done:#}");
    let why = done["approvals"][0]["why"].as_str().unwrap_or("");
    assert!(
        why.starts_with("checked the hosts") && why.contains("mallory"),
        "{why}"
    );
    assert_eq!(
        journal.count("SELECT COUNT(*) FROM approvals WHERE who = 'alice'"),
        1
    );
    assert_eq!(
        journal.count("SELECT COUNT(*) FROM approvals WHERE who = 'mallory'"),
        0
    );
    assert_eq!(wrap.invocations(), vec!["-a".to_string()]);
    wait_all_synchronized(&lab);
}
