//! The HTTP surface: webhook, API and `/metrics` on one listener.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::Authenticator;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::planner::Handle;

/// Default `--web.max-body-bytes`: Alertmanager groups are small; 1 MiB leaves room for
/// hundreds of alerts and refuses abuse.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

pub struct AppState {
    pub journal: Arc<dyn Journal>,
    pub metrics: Arc<Metrics>,
    pub auth: Authenticator,
    /// True when the listener only accepts connections with a verified client certificate.
    pub mtls: bool,
    pub body_limit: usize,
    pub planner: Option<Handle>,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/alerts", post(crate::webhook::receive))
        .merge(crate::api::routes())
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "ok\n" }))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
