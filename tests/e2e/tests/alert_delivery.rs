//! The alerting chain on its own, with real Prometheus and Alertmanager: the project's rules
//! fire on exporter-shaped metrics, the opt-in alert is routed to the remediator's webhook with
//! the bearer token, and its resolution is delivered too. A stand-in HTTP server plays both the
//! exporter (serving /metrics) and the remediator (recording deliveries), so a failure here
//! points at the rules or the routing, not at the services.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use greenplum_e2e::alertmanager::{Alertmanager, AlertmanagerConfig};
use greenplum_e2e::process::wait_for;
use greenplum_e2e::prometheus::{Prometheus, PrometheusConfig, ScrapeJob};
use serde_json::Value;

#[derive(Default)]
struct Stage {
    segment_up: u8,
    deliveries: Vec<(Option<String>, Value)>,
}

type Shared = Arc<Mutex<Stage>>;

async fn metrics(State(stage): State<Shared>) -> String {
    let up = stage.lock().map(|s| s.segment_up).unwrap_or(1);
    format!(
        "# TYPE greenplum_up gauge\ngreenplum_up 1\n\
         # TYPE greenplum_segment_up gauge\n\
         greenplum_segment_up{{dbid=\"2\",content=\"0\",hostname=\"sdw1\",address=\"sdw1\",port=\"6002\",preferred_role=\"primary\"}} {up}\n\
         greenplum_segment_up{{dbid=\"5\",content=\"0\",hostname=\"sdw2\",address=\"sdw2\",port=\"6005\",preferred_role=\"mirror\"}} 1\n"
    )
}

async fn webhook(State(stage): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Ok(mut stage) = stage.lock() {
        stage.deliveries.push((auth, body));
    }
}

fn serve(stage: Shared) -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("test runtime");
        runtime.block_on(async move {
            let app = Router::new()
                .route("/metrics", get(metrics))
                .route("/api/v1/alerts", post(webhook))
                .with_state(stage);
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    Ok(port)
}

/// Deliveries of `alertname` whose alert for dbid 2 has `status`.
fn delivered(stage: &Shared, status: &str) -> Option<(Option<String>, Value)> {
    let stage = stage.lock().ok()?;
    stage.deliveries.iter().rev().find_map(|(auth, body)| {
        let alerts = body["alerts"].as_array()?;
        alerts
            .iter()
            .any(|a| {
                a["labels"]["alertname"] == "GreenplumSegmentDown"
                    && a["labels"]["dbid"] == "2"
                    && a["status"] == status
            })
            .then(|| (auth.clone(), body.clone()))
    })
}

#[test]
fn segment_down_is_routed_to_the_remediator_and_resolved() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stage: Shared = Arc::new(Mutex::new(Stage {
        segment_up: 0,
        deliveries: vec![],
    }));
    let port = serve(stage.clone())?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n")?;

    let am = Alertmanager::start(
        dir.path(),
        &AlertmanagerConfig {
            webhook_url: format!("http://127.0.0.1:{port}/api/v1/alerts"),
            token_file,
            group_wait: Duration::from_secs(1),
            group_interval: Duration::from_secs(2),
            repeat_interval: Duration::from_secs(3600),
        },
    )?;
    let root = greenplum_e2e::repo_root();
    let prometheus = Prometheus::start(
        dir.path(),
        &PrometheusConfig {
            jobs: vec![ScrapeJob {
                job: "greenplum-exporter".into(),
                targets: vec![format!("127.0.0.1:{port}")],
                labels: vec![("cluster".into(), "lab".into())],
            }],
            rule_files: vec![root.join("alerts/greenplum.rules.yml")],
            alertmanager: Some(am.address().to_string()),
            interval: Duration::from_secs(1),
        },
    )?;

    // `for: 1m` on GreenplumSegmentDown: the wait is a guard, not a speed assertion.
    let (auth, body) = wait_for(
        "a firing GreenplumSegmentDown delivery",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || Ok(delivered(&stage, "firing")),
    )?;
    assert_eq!(auth.as_deref(), Some("Bearer s3cret-token"));
    assert_eq!(body["version"], "4");
    let alert = &body["alerts"][0];
    assert_eq!(alert["labels"]["remediation"], "recover");
    assert_eq!(alert["labels"]["cluster"], "lab");
    assert_eq!(alert["labels"]["content"], "0");
    assert!(alert["fingerprint"].as_str().is_some_and(|f| !f.is_empty()));
    // Only the down instance fires.
    assert!(!prometheus.firing("GreenplumSegmentDown")?.is_empty());
    assert!(prometheus
        .firing("GreenplumSegmentDown")?
        .iter()
        .all(|a| a.label("dbid") == Some("2")));

    stage
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .segment_up = 1;
    let (_, resolved) = wait_for(
        "a resolved GreenplumSegmentDown delivery",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || Ok(delivered(&stage, "resolved")),
    )?;
    let alert = &resolved["alerts"][0];
    assert_ne!(alert["endsAt"], "0001-01-01T00:00:00Z");
    Ok(())
}
