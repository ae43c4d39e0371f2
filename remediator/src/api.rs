//! Operator API: list and inspect actions, approve or reject them, pause and resume, reset
//! the breaker. Same authentication as the webhook. Who and why are recorded for every
//! decision.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::http::AppState;
use crate::journal::{ActionState, Approval, ApprovalDecision, ControlKind};
use crate::planner::DecideError;
use crate::webhook::auth_failure;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/actions", get(list))
        .route("/api/v1/actions/{id}", get(show))
        .route("/api/v1/actions/{id}/approve", post(approve))
        .route("/api/v1/actions/{id}/reject", post(reject))
        .route("/api/v1/pause", post(pause))
        .route("/api/v1/resume", post(resume))
        .route("/api/v1/breaker/reset", post(breaker_reset))
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({"error": message.into()}))).into_response()
}

/// A refusal before any work: status and JSON body (small, unlike a `Response`).
type Refused = (StatusCode, serde_json::Value);

fn reply((code, body): Refused) -> Response {
    (code, Json(body)).into_response()
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Refused> {
    match auth_failure(state.auth.check(headers, state.mtls)) {
        None => Ok(()),
        Some(refused) => Err(refused),
    }
}

fn journal_failed(state: &AppState, e: impl std::fmt::Display) -> Response {
    state.metrics.journal_errors.inc();
    tracing::error!(error = %e, "journal failed in the API");
    error(StatusCode::SERVICE_UNAVAILABLE, format!("journal: {e}"))
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
}

async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return reply(r);
    }
    let wanted = match query.state.as_deref() {
        None | Some("") => None,
        Some(text) => match ActionState::parse(text) {
            Some(s) => Some(s),
            None => {
                let known: Vec<&str> = ActionState::ALL.iter().map(|s| s.as_str()).collect();
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown state {text:?}; one of {}", known.join(", ")),
                );
            }
        },
    };
    match state.journal.actions(wanted) {
        Ok(actions) => Json(json!({ "actions": actions })).into_response(),
        Err(e) => journal_failed(&state, e),
    }
}

async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return reply(r);
    }
    match state.journal.action(id) {
        Ok(Some(record)) => Json(record).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("action {id} does not exist")),
        Err(e) => journal_failed(&state, e),
    }
}

/// Who decides and why; both required so the journal always says.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub who: String,
    pub why: String,
    /// Only for breaker reset: one cluster (default: all).
    #[serde(default)]
    pub cluster: Option<String>,
}

fn parse_decision(body: &[u8]) -> Result<Decision, Refused> {
    let decision: Decision = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            json!({"error": format!("expected {{\"who\": ..., \"why\": ...}}: {e}")}),
        )
    })?;
    if decision.who.trim().is_empty() || decision.why.trim().is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            json!({"error": "both who and why must be given"}),
        ));
    }
    Ok(decision)
}

async fn decide(
    state: Arc<AppState>,
    headers: HeaderMap,
    id: i64,
    body: axum::body::Bytes,
    kind: ApprovalDecision,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return reply(r);
    }
    let decision = match parse_decision(&body) {
        Ok(d) => d,
        Err(r) => return reply(r),
    };
    let Some(planner) = &state.planner else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no planner is running");
    };
    let approval = Approval {
        at: Utc::now(),
        decision: kind,
        who: decision.who,
        why: decision.why,
    };
    match planner.decide(id, approval).await {
        Ok(result) => Json(json!({"id": id, "state": result})).into_response(),
        Err(DecideError::NotFound(_)) => {
            error(StatusCode::NOT_FOUND, format!("action {id} does not exist"))
        }
        Err(e @ DecideError::Conflict(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ DecideError::Busy) => error(StatusCode::ACCEPTED, e.to_string()),
        Err(e @ DecideError::Journal(_)) => journal_failed(&state, e),
    }
}

async fn approve(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    decide(state, headers, id, body, ApprovalDecision::Approve).await
}

async fn reject(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    decide(state, headers, id, body, ApprovalDecision::Reject).await
}

async fn control(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
    kind: ControlKind,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return reply(r);
    }
    let decision = match parse_decision(&body) {
        Ok(d) => d,
        Err(r) => return reply(r),
    };
    let cluster = match kind {
        ControlKind::BreakerReset => decision.cluster.as_deref(),
        ControlKind::Pause | ControlKind::Resume => None,
    };
    if let Err(e) =
        state
            .journal
            .record_control(kind, cluster, &decision.who, &decision.why, Utc::now())
    {
        return journal_failed(&state, e);
    }
    match kind {
        ControlKind::Pause => {
            state.metrics.paused.set(1);
        }
        ControlKind::Resume => {
            state.metrics.paused.set(0);
        }
        ControlKind::BreakerReset => {}
    }
    tracing::warn!(control = kind.as_str(), who = %decision.who, why = %decision.why, "operator control");
    Json(json!({"control": kind.as_str(), "cluster": cluster})).into_response()
}

async fn pause(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    control(state, headers, body, ControlKind::Pause).await
}

async fn resume(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    control(state, headers, body, ControlKind::Resume).await
}

async fn breaker_reset(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    control(state, headers, body, ControlKind::BreakerReset).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticator;
    use crate::journal::{Journal, SqliteJournal};
    use crate::metrics::Metrics;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn state() -> (tempfile::TempDir, Arc<AppState>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal: Arc<dyn Journal> =
            Arc::new(SqliteJournal::open(&dir.path().join("j.db")).expect("journal"));
        let state = Arc::new(AppState {
            journal,
            metrics: Arc::new(Metrics::new("test")),
            auth: Authenticator::default().with_token(b"t0ken"),
            mtls: false,
            body_limit: 1024,
            planner: None,
        });
        (dir, state)
    }

    async fn call(
        state: &Arc<AppState>,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        // The API takes JSON only (415 otherwise).
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = crate::http::router(state.clone())
            .oneshot(request.body(Body::from(body.to_string())).expect("request"))
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

    #[tokio::test]
    async fn api_requires_auth() {
        let (_dir, state) = state();
        let (code, _) = call(&state, "GET", "/api/v1/actions", None, "").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, _) = call(&state, "GET", "/api/v1/actions", Some("nope"), "").await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        let (code, _) = call(&state, "POST", "/api/v1/pause", None, "{}").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert!(!state.journal.paused().expect("paused"));
    }

    #[tokio::test]
    async fn pause_and_resume_are_persisted_with_who_and_why() {
        let (_dir, state) = state();
        let body = r#"{"who": "alice", "why": "maintenance"}"#;
        let (code, _) = call(&state, "POST", "/api/v1/pause", Some("t0ken"), body).await;
        assert_eq!(code, StatusCode::OK);
        assert!(state.journal.paused().expect("paused"));
        let metrics = state.metrics.encode().expect("metrics");
        assert!(metrics.contains("greenplum_remediator_paused 1"));
        let (code, _) = call(&state, "POST", "/api/v1/resume", Some("t0ken"), "{}").await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "who and why are required");
        let (code, _) = call(&state, "POST", "/api/v1/resume", Some("t0ken"), body).await;
        assert_eq!(code, StatusCode::OK);
        assert!(!state.journal.paused().expect("paused"));
        let reset = r#"{"who": "alice", "why": "disk replaced", "cluster": "gp"}"#;
        let (code, reply) = call(
            &state,
            "POST",
            "/api/v1/breaker/reset",
            Some("t0ken"),
            reset,
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(reply["cluster"], "gp");
    }

    #[tokio::test]
    async fn listing_filters_by_state_and_rejects_unknown_states() {
        let (_dir, state) = state();
        let (code, reply) = call(
            &state,
            "GET",
            "/api/v1/actions?state=awaiting_approval",
            Some("t0ken"),
            "",
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(reply["actions"], json!([]));
        let (code, _) = call(
            &state,
            "GET",
            "/api/v1/actions?state=bogus",
            Some("t0ken"),
            "",
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        let (code, _) = call(&state, "GET", "/api/v1/actions/42", Some("t0ken"), "").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
}
