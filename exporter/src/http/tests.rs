//! The router in-process: negotiation, budgets, auth, `/probe`, and series that vanish.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use tower::ServiceExt;

use super::*;
use crate::metrics::tests::parse;
use crate::scrape::tests::Scripted;
use crate::web_config::WebConfig;
use greenplum_catalog::test_support::recorded as fx;

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn app_with(
    snapshot: greenplum_catalog::Snapshot,
) -> (App, Arc<std::sync::Mutex<greenplum_catalog::Snapshot>>) {
    let (source, _) = Scripted::open(snapshot);
    let shared = source.snapshot.clone();
    let app = App {
        default: Some(Arc::new(Scraper::new(source, Duration::ZERO))),
        ..App::default()
    };
    (app, shared)
}

async fn get(app: &App, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, String, String) {
    let mut request = Request::get(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = router(app.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn metrics_follow_content_negotiation() {
    let (app, _) = app_with(fx::healthy());
    let (status, content_type, body) =
        get(&app, "/metrics", &[("accept", PROMETHEUS_ACCEPT)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"));
    let (status, content_type, body) = get(&app, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(!body.contains("# EOF"));
    assert!(body.contains("# TYPE greenplum_fts_events_total counter"));
}

#[tokio::test]
async fn no_coordinator_still_answers_200() {
    let (app, _) = app_with(fx::coordinator_down());
    let (status, _, body) = get(&app, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let series = parse(&body);
    let up = series.iter().find(|s| s.name == "greenplum_up").unwrap();
    assert_eq!(up.value, 0.0);
    assert!(series.iter().any(|s| s.name == "greenplum_endpoint_state"
        && s.labels["endpoint"] == "vm:6001"
        && s.labels["state"] == "standby_in_recovery"
        && s.value == 1.0));
}

#[tokio::test]
async fn a_segment_row_removed_between_scrapes_loses_its_series() {
    let (app, snapshot) = app_with(fx::healthy());
    let dbid7 = |body: &str| {
        parse(body)
            .into_iter()
            .filter(|s| s.labels.get("dbid").map(String::as_str) == Some("7"))
            .count()
    };
    let (_, _, before) = get(&app, "/metrics", &[]).await;
    assert!(dbid7(&before) > 0);
    if let Ok(rows) = &mut snapshot.lock().unwrap().segments {
        rows.retain(|s| s.dbid != 7);
    }
    let (_, _, after) = get(&app, "/metrics", &[]).await;
    assert_eq!(dbid7(&after), 0);
}

#[test]
fn scrape_timeout_header_bounds_the_round() {
    let mut headers = HeaderMap::new();
    assert_eq!(scrape_budget(&headers), Duration::from_millis(9500));
    headers.insert(
        "X-Prometheus-Scrape-Timeout-Seconds",
        HeaderValue::from_static("4"),
    );
    assert_eq!(scrape_budget(&headers), Duration::from_millis(3500));
    headers.insert(
        "X-Prometheus-Scrape-Timeout-Seconds",
        HeaderValue::from_static("0.5"),
    );
    assert_eq!(scrape_budget(&headers), Duration::from_millis(250));
    headers.insert(
        "X-Prometheus-Scrape-Timeout-Seconds",
        HeaderValue::from_static("soon"),
    );
    assert_eq!(scrape_budget(&headers), Duration::from_millis(9500));
}

#[tokio::test]
async fn a_hung_database_answers_within_the_scrapers_timeout() {
    let (source, _, _gate) = crate::scrape::tests::gated(fx::healthy());
    let app = App {
        default: Some(Arc::new(Scraper::new(source, Duration::ZERO))),
        ..App::default()
    };
    let (status, _, body) = get(
        &app,
        "/metrics",
        &[("X-Prometheus-Scrape-Timeout-Seconds", "0.2")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let series = parse(&body);
    assert!(series
        .iter()
        .any(|s| s.name == "greenplum_up" && s.value == 0.0));
    assert!(series
        .iter()
        .any(|s| s.name == "greenplum_exporter_collector_success"
            && s.labels["collector"] == "segments"
            && s.value == 0.0));
}

fn multi_cluster() -> App {
    let mut targets = BTreeMap::new();
    for (name, snapshot) in [("prod", fx::healthy()), ("dr", fx::after_failover())] {
        let (source, _) = Scripted::open(snapshot);
        targets.insert(
            name.to_string(),
            Arc::new(Scraper::new(source, Duration::ZERO)),
        );
    }
    App {
        targets,
        ..App::default()
    }
}

#[tokio::test]
async fn probe_serves_named_clusters_only() {
    let app = multi_cluster();
    let (status, _, body) = get(&app, "/probe?target=dr", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(parse(&body)
        .iter()
        .any(|s| s.name == "greenplum_segments_role_mismatch" && s.value == 2.0));
    let (status, _, body) = get(&app, "/probe?target=db.example.com:5432", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("unknown target \"db.example.com:5432\""),
        "{body}"
    );
    assert!(body.contains("dr, prod"), "{body}");
    let (status, _, body) = get(&app, "/probe", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("missing parameter"), "{body}");
    // In multi-cluster mode /metrics carries the exporter's own build info only.
    let (status, _, body) = get(&app, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = parse(&body).into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["greenplum_exporter_build_info"]);
}

#[tokio::test]
async fn probe_without_config_file_explains() {
    let (app, _) = app_with(fx::healthy());
    let (status, _, body) = get(&app, "/probe?target=prod", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("--config.file"), "{body}");
}

#[tokio::test]
async fn basic_auth_guards_every_route() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let config = WebConfig::parse(
        &format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
        std::path::Path::new("web.yml"),
    )
    .unwrap();
    let (mut app, _) = app_with(fx::healthy());
    app.auth = config.basic_auth().map(Arc::new);
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("prometheus:s3cret")
    );
    let bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("prometheus:guess")
    );
    for uri in ["/metrics", "/", "/healthz"] {
        assert_eq!(
            get(&app, uri, &[]).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_eq!(
            get(&app, uri, &[("authorization", &bad)]).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(&app, uri, &[("authorization", &good)]).await.0,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn landing_page_links_every_endpoint() {
    let app = multi_cluster();
    let (status, content_type, body) = get(&app, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    for link in [
        "/metrics",
        "/healthz",
        "/probe?target=prod",
        "/probe?target=dr",
    ] {
        assert!(body.contains(&format!("href=\"{link}\"")), "{link}: {body}");
    }
    assert_eq!(
        get(&app, "/healthz", &[]).await.1,
        "text/plain; charset=utf-8"
    );
}

#[test]
fn listen_addresses_take_the_exporter_form() {
    assert_eq!(parse_listen_address(":9297").unwrap().port(), 9297);
    assert_eq!(
        parse_listen_address("127.0.0.1:9297").unwrap(),
        "127.0.0.1:9297".parse().unwrap()
    );
    assert!(parse_listen_address("nonsense").is_err());
}
