//! `POST /api/v1/alerts`: authenticate, check, persist durably, then 202.
//!
//! The order matters: nothing is read before the caller is authenticated, and 202 is sent
//! only after the journal committed, because Alertmanager retries 5xx only and never
//! redelivers what we acknowledged. The commit is a group commit (`journal::group`): the
//! handler waits for it without holding an async worker.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;

use crate::alert::WebhookPayload;
use crate::auth::auth_failure;
use crate::deadline::unread_body_status;
use crate::journal::{group, EventInsert, NewDelivery, StoredEvent};
use crate::state::{is_json, AppState};

pub async fn receive(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (code, message) = handle(&state, &headers, body).await;
    state.metrics.count_webhook(code.as_u16());
    let mut response = (code, Json(message)).into_response();
    if code == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> (StatusCode, serde_json::Value) {
    if let Some(failure) = auth_failure(state.auth.check(headers, state.mtls)) {
        return failure;
    }
    if !is_json(headers) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"error": "Content-Type must be application/json"}),
        );
    }
    let bytes = match to_bytes(body, state.body_limit).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let status = unread_body_status(&e);
            let error = match status {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    format!("body larger than {} bytes", state.body_limit)
                }
                _ => format!("request body could not be read: {e}"),
            };
            return (status, json!({ "error": error }));
        }
    };
    let payload = match WebhookPayload::parse(&bytes) {
        Ok(payload) => payload,
        Err(e) => return (StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
    };
    // The body passed the parser, so it is valid UTF-8 JSON.
    let delivery = NewDelivery {
        received_at: Utc::now(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        alerts: payload.alerts.clone(),
    };
    let received_at = delivery.received_at;
    let inserts = match group::record_delivery(&state.journal, delivery).await {
        Ok(inserts) => inserts,
        Err(e) => {
            state.metrics.journal_errors.inc();
            tracing::error!(error = %e, "cannot persist webhook delivery; answering 503");
            // The caller is authenticated; the reason (disk full, read-only, database down)
            // tells the operator reading Alertmanager's log where to look.
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": format!("cannot persist the delivery ({e}); retry later")}),
            );
        }
    };
    let mut fresh = Vec::new();
    let mut duplicates = 0;
    for (alert, insert) in payload.alerts.into_iter().zip(inserts) {
        match insert {
            EventInsert::New(id) => fresh.push(StoredEvent {
                id,
                received_at,
                fingerprint: alert.fingerprint,
                starts_at: alert.starts_at,
                status: alert.status,
                alertname: alert.labels.get("alertname").cloned().unwrap_or_default(),
                labels: alert.labels,
            }),
            EventInsert::Duplicate => {
                duplicates += 1;
                state
                    .metrics
                    .count_event(crate::decision::Decision::Duplicate.as_str());
            }
        }
    }
    let accepted = fresh.len();
    if let Some(planner) = &state.planner {
        planner.submit(fresh);
    }
    (
        StatusCode::ACCEPTED,
        json!({"accepted": accepted, "duplicates": duplicates}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::recorded_body;
    use crate::alert::Alert;
    use crate::auth::Authenticator;
    use crate::journal::{GroupCommit, Journal, JournalError, JournalResult, SqliteJournal};
    use crate::metrics::Metrics;
    use axum::http::Request;
    use chrono::DateTime;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// A journal whose disk is gone: every write fails.
    #[derive(Default)]
    struct BrokenJournal(GroupCommit);

    macro_rules! broken {
        ($($name:ident($($arg:ty),*) -> $ret:ty;)*) => {
            $(fn $name(&self, $(_: $arg),*) -> JournalResult<$ret> {
                Err(JournalError::Unavailable("disk full".into()))
            })*
        };
    }

    impl Journal for BrokenJournal {
        broken! {
            record_delivery(DateTime<Utc>, &str, &[Alert]) -> Vec<EventInsert>;
            record_batch(&crate::journal::Batch<'_>) -> crate::journal::BatchOutcome;
            undecided_events() -> Vec<StoredEvent>;
            event_resolved(&str, DateTime<Utc>) -> bool;
            event_decided(i64) -> bool;
            record_decision(i64, &str, &str, Option<i64>) -> ();
            create_action(&crate::journal::NewAction, &crate::journal::StateChange) -> i64;
            record_state(i64, &crate::journal::StateChange) -> ();
            record_approval(i64, &crate::journal::Approval) -> ();
            record_execution_start(i64, &crate::journal::ExecutionStart) -> ();
            record_execution_end(i64, &crate::journal::ExecutionEnd) -> ();
            record_verification(i64, &str, &crate::journal::Verification) -> ();
            action(i64) -> Option<crate::journal::ActionRecord>;
            actions(Option<crate::journal::ActionState>) -> Vec<crate::journal::ActionSummary>;
            open_action_with_intent(&str) -> Option<i64>;
            ledger(&str, &str, DateTime<Utc>) -> crate::journal::LedgerFacts;
            record_control(crate::journal::ControlKind, Option<&str>, &str, &str, DateTime<Utc>) -> ();
            paused() -> bool;
            try_acquire_lane(&str) -> bool;
            record_standby_sighting(&str, &crate::journal::StandbySighting) -> ();
            standby_sighting(&str) -> Option<crate::journal::StandbySighting>;
        }

        fn group_commit(&self) -> &GroupCommit {
            &self.0
        }
    }

    struct Harness {
        _dir: Option<tempfile::TempDir>,
        state: Arc<AppState>,
    }

    fn harness(journal: Option<Arc<dyn Journal>>, body_limit: usize) -> Harness {
        let (dir, journal) = match journal {
            Some(j) => (None, j),
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let j = SqliteJournal::open(&dir.path().join("j.db")).expect("open");
                (Some(dir), Arc::new(j) as Arc<dyn Journal>)
            }
        };
        let state = Arc::new(AppState {
            journal,
            metrics: Arc::new(Metrics::new("test")),
            auth: Authenticator::default().with_token(b"example-token"),
            mtls: false,
            body_limit,
            planner: None,
        });
        Harness { _dir: dir, state }
    }

    async fn post(
        h: &Harness,
        auth: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::post("/api/v1/alerts").header("content-type", content_type);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = crate::http::router(h.state.clone())
            .oneshot(request.body(Body::from(body)).expect("request"))
            .await
            .expect("response");
        let code = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    const TOKEN: Option<&str> = Some("Bearer example-token");

    #[tokio::test]
    async fn accepts_the_recorded_delivery_after_writing_it() {
        let h = harness(None, DEFAULT_LIMIT);
        let body = recorded_body("firing-two-segments-down.json");
        let (code, reply) = post(&h, TOKEN, "application/json", body.clone()).await;
        assert_eq!(code, StatusCode::ACCEPTED);
        assert_eq!(reply["accepted"], 2);
        assert_eq!(h.state.journal.undecided_events().expect("events").len(), 2);
        // A redelivery is acknowledged but stores nothing new.
        let (code, reply) = post(&h, TOKEN, "application/json; charset=utf-8", body).await;
        assert_eq!(code, StatusCode::ACCEPTED);
        assert_eq!(reply["duplicates"], 2);
        assert_eq!(h.state.journal.undecided_events().expect("events").len(), 2);
        let metrics = h.state.metrics.encode().expect("metrics");
        assert!(metrics.contains("greenplum_remediator_webhook_requests_total{code=\"202\"} 2"));
    }

    #[tokio::test]
    async fn refuses_missing_and_wrong_credentials() {
        let h = harness(None, DEFAULT_LIMIT);
        let body = recorded_body("firing-two-segments-down.json");
        let (code, _) = post(&h, None, "application/json", body.clone()).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, _) = post(&h, Some("Bearer nope"), "application/json", body).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert!(h
            .state
            .journal
            .undecided_events()
            .expect("events")
            .is_empty());
    }

    #[tokio::test]
    async fn refuses_too_large_non_json_and_malformed_bodies() {
        let h = harness(None, 512);
        let body = recorded_body("firing-two-segments-down.json");
        assert!(body.len() > 512);
        let (code, _) = post(&h, TOKEN, "application/json", body.clone()).await;
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
        let (code, _) = post(&h, TOKEN, "text/plain", b"{}".to_vec()).await;
        assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (code, reply) = post(&h, TOKEN, "application/json", b"{\"version\":".to_vec()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
        let (code, _) = post(
            &h,
            TOKEN,
            "application/json",
            b"{\"version\":\"4\"}".to_vec(),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(h
            .state
            .journal
            .undecided_events()
            .expect("events")
            .is_empty());
    }

    #[tokio::test]
    async fn answers_503_when_the_journal_cannot_persist() {
        let h = harness(Some(Arc::new(BrokenJournal::default())), DEFAULT_LIMIT);
        let body = recorded_body("firing-two-segments-down.json");
        let (code, reply) = post(&h, TOKEN, "application/json", body).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            reply["error"]
                .as_str()
                .is_some_and(|e| e.contains("disk full")),
            "{reply}"
        );
        let metrics = h.state.metrics.encode().expect("metrics");
        assert!(metrics.contains("greenplum_remediator_journal_errors_total 1"));
    }

    const DEFAULT_LIMIT: usize = crate::http::DEFAULT_BODY_LIMIT;
}
