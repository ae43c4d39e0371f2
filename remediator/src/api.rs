//! Operator API (actions, approvals, pause, breaker).

use std::sync::Arc;

use axum::Router;

use crate::http::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
