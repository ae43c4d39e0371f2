//! What the handlers share, below the router that mounts them: the service's state, and the
//! facts of a request they read (the verified client certificate's name, a JSON body).
//! `http` mounts `api` and `webhook`; they import this, never `http`.

use std::sync::Arc;

use axum::http::{header, HeaderMap};

use crate::auth::Authenticator;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::planner::Handle;

pub struct AppState {
    pub journal: Arc<dyn Journal>,
    pub metrics: Arc<Metrics>,
    pub auth: Authenticator,
    /// True when the listener only accepts connections with a verified client certificate.
    pub mtls: bool,
    pub body_limit: usize,
    pub planner: Option<Handle>,
}

/// The subject CN of the connection's verified client certificate (`None` without one, or
/// when the certificate has no CN): a request extension that `http`'s TLS acceptor adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertName(pub Option<String>);

/// The request says its body is JSON (`application/json`, any parameters, any case).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}
