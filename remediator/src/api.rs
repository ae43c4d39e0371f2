//! Operator API: list and inspect actions, approve or reject them, pause and resume, reset
//! the breaker. Who and why are recorded for every decision.
//!
//! With `--auth.operators-file`, decisions need an operator's own token and the recorded
//! `who` is that operator's name: a different `who` sent by the client does not change it
//! and is kept only as a note in `why` (the CLI sends `$USER` by default, which need not be
//! the operator's name, so refusing it would only get in the way). The webhook's credentials
//! may still read. Without the file, the webhook's credentials decide, the client names
//! itself, and `why` says so ([`CLAIMED_NOTE`]).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{auth_failure, Decider, DeciderRefusal};
use crate::journal::{ActionState, Approval, ApprovalDecision, ControlKind};
use crate::planner::DecideError;
use crate::state::{AppState, ClientCertName};

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

/// What a request presents to prove who sent it: its headers, and the subject CN of its
/// connection's verified client certificate (TLS listener only).
pub struct Caller {
    headers: HeaderMap,
    cert_name: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller {
            headers: parts.headers.clone(),
            cert_name: parts
                .extensions
                .get::<ClientCertName>()
                .and_then(|name| name.0.clone()),
        })
    }
}

/// Appended to `why` when `who` is only what the client said (no operators file).
pub const CLAIMED_NOTE: &str = "[who is claimed by the client: no --auth.operators-file]";

/// Reads: the webhook's credentials or an operator's token.
fn authorize(state: &AppState, caller: &Caller) -> Result<(), Refused> {
    let outcome = state
        .auth
        .check_read(&caller.headers, state.mtls, caller.cert_name.as_deref());
    match auth_failure(outcome) {
        None => Ok(()),
        Some(refused) => Err(refused),
    }
}

/// Decisions: who may make them (see the module's documentation).
fn authorize_decision(state: &AppState, caller: &Caller) -> Result<Decider, Refused> {
    let operators = state.auth.operators_enabled();
    state
        .auth
        .check_decider(&caller.headers, state.mtls, caller.cert_name.as_deref())
        .map_err(|refusal| match refusal {
            DeciderRefusal::Missing if operators => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "authentication required: decisions need an operator's token \
                                 (from --auth.operators-file)"}),
            ),
            DeciderRefusal::Missing => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "authentication required"}),
            ),
            DeciderRefusal::WebhookCredential => {
                tracing::warn!("a decision was attempted with the webhook's credentials; refused");
                (
                    StatusCode::FORBIDDEN,
                    json!({"error": "these are the webhook's (Alertmanager's) credentials: they \
                                     may deliver alerts and read actions, but approve, reject, \
                                     pause, resume and breaker reset need an operator's own \
                                     token (--auth.operators-file)"}),
                )
            }
            DeciderRefusal::Denied => (
                StatusCode::FORBIDDEN,
                json!({"error": "credentials refused"}),
            ),
        })
}

/// The `who` and `why` the journal records for `decision` made by `decider`.
fn attribute(decider: Decider, decision: &Decision) -> Result<(String, String), Refused> {
    let claimed = decision
        .who
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty());
    let why = decision.why.trim();
    match decider {
        Decider::Operator(name) => {
            let why = match claimed {
                Some(claimed) if claimed != name => {
                    format!("{why} [the client said who={claimed:?}; the token is {name}'s]")
                }
                _ => why.to_string(),
            };
            Ok((name, why))
        }
        Decider::ClaimedByClient => match claimed {
            Some(who) => Ok((who.to_string(), format!("{why} {CLAIMED_NOTE}"))),
            None => Err((
                StatusCode::BAD_REQUEST,
                json!({"error": "both who and why must be given"}),
            )),
        },
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
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Err(r) = authorize(&state, &caller) {
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

async fn show(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Response {
    if let Err(r) = authorize(&state, &caller) {
        return reply(r);
    }
    match state.journal.action(id) {
        Ok(Some(record)) => Json(record).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("action {id} does not exist")),
        Err(e) => journal_failed(&state, e),
    }
}

/// Who decides and why, so the journal always says. `why` is required; `who` is required
/// without an operators file and a note with one (the token names the operator).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub who: Option<String>,
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
    if decision.why.trim().is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            json!({"error": "both who and why must be given"}),
        ));
    }
    Ok(decision)
}

/// Authenticates a decision and reads its body: the recorded who and why, and the body.
/// Credentials are checked before the body is parsed, as everywhere.
fn authorized_decision(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
) -> Result<(String, String, Decision), Refused> {
    let decider = authorize_decision(state, caller)?;
    let decision = parse_decision(body)?;
    let (who, why) = attribute(decider, &decision)?;
    Ok((who, why, decision))
}

async fn decide(
    state: Arc<AppState>,
    caller: Caller,
    id: i64,
    body: axum::body::Bytes,
    kind: ApprovalDecision,
) -> Response {
    let (who, why) = match authorized_decision(&state, &caller, &body) {
        Ok((who, why, _)) => (who, why),
        Err(r) => return reply(r),
    };
    let Some(planner) = &state.planner else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no planner is running");
    };
    let approval = Approval {
        at: Utc::now(),
        decision: kind,
        who: who.clone(),
        why,
    };
    match planner.decide(id, approval).await {
        Ok(result) => Json(json!({"id": id, "state": result, "who": who})).into_response(),
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
    caller: Caller,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    decide(state, caller, id, body, ApprovalDecision::Approve).await
}

async fn reject(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    decide(state, caller, id, body, ApprovalDecision::Reject).await
}

async fn control(
    state: Arc<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
    kind: ControlKind,
) -> Response {
    let (who, why, decision) = match authorized_decision(&state, &caller, &body) {
        Ok(d) => d,
        Err(r) => return reply(r),
    };
    let cluster = match kind {
        ControlKind::BreakerReset => decision.cluster.as_deref(),
        ControlKind::Pause | ControlKind::Resume => None,
    };
    if let Err(e) = state
        .journal
        .record_control(kind, cluster, &who, &why, Utc::now())
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
    tracing::warn!(control = kind.as_str(), who = %who, why = %why, "operator control");
    Json(json!({"control": kind.as_str(), "cluster": cluster, "who": who})).into_response()
}

async fn pause(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Response {
    control(state, caller, body, ControlKind::Pause).await
}

async fn resume(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Response {
    control(state, caller, body, ControlKind::Resume).await
}

async fn breaker_reset(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Response {
    control(state, caller, body, ControlKind::BreakerReset).await
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

    const ALICE: &str = "alice-token-0123456789";

    /// A state whose decisions need an operator's token; `t0ken` is the webhook's.
    fn operator_state() -> (tempfile::TempDir, Arc<AppState>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal: Arc<dyn Journal> =
            Arc::new(SqliteJournal::open(&dir.path().join("j.db")).expect("journal"));
        let operators =
            crate::auth::Operators::parse(&format!("alice {ALICE}\n"), "ops").expect("operators");
        let state = Arc::new(AppState {
            journal,
            metrics: Arc::new(Metrics::new("test")),
            auth: Authenticator::default()
                .with_token(b"t0ken")
                .with_operators(operators),
            mtls: false,
            body_limit: 1024,
            planner: None,
        });
        (dir, state)
    }

    /// `(who, why)` of every control in the journal, in order.
    fn controls(dir: &tempfile::TempDir) -> Vec<(String, String)> {
        let conn = rusqlite::Connection::open(dir.path().join("j.db")).expect("open");
        let mut statement = conn
            .prepare("SELECT who, why FROM controls ORDER BY id")
            .expect("prepare");
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    #[tokio::test]
    async fn with_operators_only_an_operator_token_decides_and_names_who() {
        let (dir, state) = operator_state();
        let body = r#"{"who": "mallory", "why": "maintenance"}"#;
        // The webhook's token reads but cannot decide.
        let (code, reply) = call(&state, "POST", "/api/v1/pause", Some("t0ken"), body).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert!(
            reply["error"].as_str().unwrap_or("").contains("operator"),
            "{reply}"
        );
        let (code, _) = call(
            &state,
            "POST",
            "/api/v1/actions/1/approve",
            Some("t0ken"),
            body,
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        let (code, _) = call(&state, "POST", "/api/v1/pause", Some("nope"), body).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        let (code, _) = call(&state, "POST", "/api/v1/pause", None, body).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert!(!state.journal.paused().expect("paused"));
        assert!(controls(&dir).is_empty());
        let (code, _) = call(&state, "GET", "/api/v1/actions", Some("t0ken"), "").await;
        assert_eq!(code, StatusCode::OK);
        let (code, _) = call(&state, "GET", "/api/v1/actions", Some(ALICE), "").await;
        assert_eq!(code, StatusCode::OK);

        // Alice's token: recorded as alice whatever the client says.
        let (code, reply) = call(&state, "POST", "/api/v1/pause", Some(ALICE), body).await;
        assert_eq!(code, StatusCode::OK, "{reply}");
        assert_eq!(reply["who"], "alice");
        assert!(state.journal.paused().expect("paused"));
        let (code, _) = call(
            &state,
            "POST",
            "/api/v1/resume",
            Some(ALICE),
            r#"{"why": "done"}"#,
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        let recorded = controls(&dir);
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[0].0, "alice");
        assert!(recorded[0].1.starts_with("maintenance"), "{recorded:?}");
        assert!(recorded[0].1.contains("mallory"), "{recorded:?}");
        assert_eq!(recorded[1], ("alice".to_string(), "done".to_string()));
        // Not JSON, from an operator: 415 like any authenticated POST.
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/pause")
            .header("authorization", format!("Bearer {ALICE}"))
            .header("content-type", "text/plain")
            .body(Body::from("x"))
            .expect("request");
        let response = crate::http::router(state.clone())
            .oneshot(request)
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[tokio::test]
    async fn without_operators_who_is_marked_as_claimed() {
        let (dir, state) = state();
        let body = r#"{"who": "alice", "why": "maintenance"}"#;
        let (code, _) = call(&state, "POST", "/api/v1/pause", Some("t0ken"), body).await;
        assert_eq!(code, StatusCode::OK);
        let (code, _) = call(
            &state,
            "POST",
            "/api/v1/resume",
            Some("t0ken"),
            r#"{"why": "x"}"#,
        )
        .await;
        assert_eq!(
            code,
            StatusCode::BAD_REQUEST,
            "who is required without operators"
        );
        let recorded = controls(&dir);
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].0, "alice");
        assert_eq!(recorded[0].1, format!("maintenance {CLAIMED_NOTE}"));
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
