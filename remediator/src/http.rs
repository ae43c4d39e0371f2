//! The HTTP surface: webhook, API and `/metrics` on one listener, and the server that bounds
//! what a client can hold: how long it may take to send its headers and its body, how large
//! they may be, and which content types a request with a body may have.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::auth::AuthOutcome;
use crate::deadline::DeadlineBody;
use crate::state::{is_json, ClientCertName};
use crate::{api, webhook};

mod peer;

pub use peer::common_name;
// Its home is `state` (what the handlers share); also named here, beside the router it is
// built for.
pub use crate::state::AppState;

/// Default `--web.max-body-bytes`: Alertmanager groups are small; 1 MiB leaves room for
/// hundreds of alerts and refuses abuse.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Default `--web.read-timeout`: how long a client may take to send its request headers, and
/// then its body. Alertmanager sends both at once; only a stalled or hostile client is slower.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(state: Arc<AppState>) -> Router {
    // The operator API takes small JSON bodies through `Bytes`: the same size limit as the
    // webhook (whose handler enforces it itself), and JSON only.
    let api = api::routes()
        .layer(middleware::from_fn_with_state(state.clone(), require_json))
        .layer(DefaultBodyLimit::max(state.body_limit));
    Router::new()
        .route("/api/v1/alerts", post(webhook::receive))
        .merge(api)
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "ok\n" }))
        .fallback(not_found)
        .with_state(state)
}

/// The router with one deadline of `read_timeout` for every request body.
pub fn with_body_deadline(router: Router, read_timeout: Duration) -> Router {
    router.layer(middleware::from_fn_with_state(read_timeout, body_deadline))
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

fn error(code: StatusCode, message: String) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}

async fn not_found(uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    error(
        StatusCode::NOT_FOUND,
        format!("no endpoint {path:?}: see /api/v1/alerts, /api/v1/actions, /metrics, /-/healthy"),
    )
}

/// 415 for an authenticated POST to the API that is not JSON. Unauthenticated requests pass
/// to the handler, which refuses them first, as the webhook does.
async fn require_json(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let cert_name = request
        .extensions()
        .get::<ClientCertName>()
        .and_then(|name| name.0.as_deref());
    let authenticated = state
        .auth
        .check_read(request.headers(), state.mtls, cert_name)
        == AuthOutcome::Allowed;
    if request.method() == Method::POST && authenticated && !is_json(request.headers()) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json".into(),
        );
    }
    next.run(request).await
}

/// Gives the whole request body one deadline: a client that trickles its body, or announces
/// one it never sends (slowloris), gets 408 and its connection closed instead of holding a
/// handler forever. The handler sees such a body end in an error; its answer is replaced.
///
/// An answer sent before the body was read to its end (a refusal: 401, 413, 415...) says
/// `Connection: close`, because hyper closes such a connection: without the header, a
/// keep-alive client sends its next request into a closed socket.
///
/// Oversized bodies are left to the handlers, which read up to their limit and answer 413:
/// answering before reading anything would reset the connection under a client still
/// writing, and some clients then lose the answer.
async fn body_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let (body, fate) = DeadlineBody::new(body, limit);
    let response = next.run(Request::from_parts(parts, Body::new(body))).await;
    if fate.expired() {
        tracing::warn!(timeout = ?limit, "request body not received in time; closing the connection");
        return closing(error(
            StatusCode::REQUEST_TIMEOUT,
            format!("request body not received within {}s", limit.as_secs_f64()),
        ));
    }
    if fate.finished() {
        response
    } else {
        closing(response)
    }
}

/// The client's unread input makes the connection useless: say it will close.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// Serves `router` on `listener` until `shutdown` resolves, over TLS when a config is given.
///
/// HTTP/1.1 only (the TLS config offers no h2 either): Alertmanager and the CLI speak it,
/// and it lets the header deadline start the moment a connection opens, so a client that
/// connects and sends nothing is dropped too.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<rustls::ServerConfig>,
    read_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let service = with_body_deadline(router, read_timeout).into_make_service();
    match tls {
        Some(config) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
            let acceptor = peer::PeerNameAcceptor::new(
                axum_server::tls_rustls::RustlsAcceptor::new(config)
                    .handshake_timeout(read_timeout),
            );
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(acceptor)
                .http1_only();
            harden(server.http_builder(), read_timeout);
            server.handle(handle).serve(service).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener)?.http1_only();
            harden(server.http_builder(), read_timeout);
            server.handle(handle).serve(service).await
        }
    }
}

/// Without a timer hyper silently ignores its header timeout.
fn harden(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    read_timeout: Duration,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(read_timeout);
}
