//! The HTTP face: `/metrics`, `/probe?target=NAME`, `/healthz` and a landing page, behind
//! optional basic auth, served over plain HTTP or TLS.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tower_http::limit::RequestBodyLimitLayer;

use crate::exposition::negotiate;
use crate::metrics::{Exposition, Scrape};
use crate::scrape::Scraper;
use crate::web_config::BasicAuth;

/// How long a client may take to send its request headers (from the moment it connects, over
/// plain HTTP) or to complete a TLS handshake; a slower connection is closed.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Every endpoint is a GET without a body: a body announced larger than this is refused.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Prometheus' default `scrape_timeout`, used when a scraper sends no timeout header.
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time kept back from the scraper's timeout to encode and send the answer.
const SCRAPE_MARGIN: Duration = Duration::from_millis(500);

/// What the router serves.
#[derive(Debug, Clone, Default)]
pub struct App {
    /// The cluster of the command-line flags, served on `/metrics`. `None` in multi-cluster
    /// mode, where `/metrics` carries only the exporter's own build info.
    pub default: Option<Arc<Scraper>>,
    /// Clusters of `--config.file` by name, served on `/probe?target=NAME`.
    pub targets: BTreeMap<String, Arc<Scraper>>,
    pub auth: Option<Arc<BasicAuth>>,
    /// Set on every answer (the web config's `http_server_config.headers`).
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
}

pub fn router(app: App) -> Router {
    let auth = app.auth.clone();
    let response_headers = Arc::new(app.response_headers.clone());
    let router = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/probe", get(probe))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(Arc::new(app));
    let router = match auth {
        Some(auth) => router.layer(middleware::from_fn_with_state(auth, require_basic_auth)),
        None => router,
    };
    // Outermost, so that refusals (401, 404) carry them too.
    if response_headers.is_empty() {
        router
    } else {
        router.layer(middleware::map_response_with_state(
            response_headers,
            set_headers,
        ))
    }
}

async fn set_headers(
    State(headers): State<Arc<Vec<(HeaderName, HeaderValue)>>>,
    mut response: Response,
) -> Response {
    for (name, value) in headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

async fn require_basic_auth(
    State(auth): State<Arc<BasicAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // bcrypt costs tens of milliseconds of CPU by design: keep it off the async workers.
    let allowed = tokio::task::spawn_blocking(move || auth.check(header.as_deref()))
        .await
        .unwrap_or(false);
    if allowed {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"greenplum-exporter\"",
            )],
            "Unauthorized\n",
        )
            .into_response()
    }
}

/// How long this scrape may wait for the catalog: the scraper's own timeout minus a margin
/// for encoding and sending, never less than half of it.
pub fn scrape_budget(headers: &HeaderMap) -> Duration {
    let timeout = headers
        .get("X-Prometheus-Scrape-Timeout-Seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        // A number no Duration holds (`1e300`) is no timeout; from_secs_f64 would panic.
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(DEFAULT_SCRAPE_TIMEOUT);
    timeout.saturating_sub(SCRAPE_MARGIN).max(timeout / 2)
}

fn exposition(headers: &HeaderMap, scrape: Option<Scrape>) -> Response {
    let format = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    // Encoded piece by piece as hyper sends it: the body (4.7 MB at 2,048 segments) is never
    // held whole.
    let pieces = Exposition::new(scrape, format).map(Ok::<_, Infallible>);
    let body = Body::from_stream(futures::stream::iter(pieces));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let scrape = match &app.default {
        Some(scraper) => Some(scraper.scrape(scrape_budget(&headers)).await),
        None => None,
    };
    exposition(&headers, scrape)
}

#[derive(Debug, Deserialize)]
struct ProbeParams {
    target: Option<String>,
}

async fn not_found(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint {}: see /metrics, /probe?target=NAME, /healthz\n",
            quoted(uri.path())
        ),
    )
        .into_response()
}

/// Text from a request, quoted for an error message and cut short: the message must stay
/// readable whatever the client sent.
fn quoted(text: &str) -> String {
    const LIMIT: usize = 100;
    let shown: String = text.chars().take(LIMIT).collect();
    if shown.len() < text.len() {
        format!("{shown:?}...")
    } else {
        format!("{shown:?}")
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

async fn probe(
    State(app): State<Arc<App>>,
    Query(params): Query<ProbeParams>,
    headers: HeaderMap,
) -> Response {
    if app.targets.is_empty() {
        return bad_request(
            "/probe serves the clusters of --config.file, and none was given".to_string(),
        );
    }
    let Some(target) = params.target.filter(|t| !t.is_empty()) else {
        return bad_request("missing parameter: /probe?target=CLUSTER_NAME".to_string());
    };
    // Targets are names from the config file, never hosts from the query string: a scrape
    // request must not be able to point the exporter at an arbitrary database.
    let Some(scraper) = app.targets.get(&target) else {
        let known: Vec<&str> = app.targets.keys().map(String::as_str).collect();
        return bad_request(format!(
            "unknown target {}: targets are cluster names from --config.file ({})",
            quoted(&target),
            known.join(", ")
        ));
    };
    let scrape = scraper.scrape(scrape_budget(&headers)).await;
    exposition(&headers, Some(scrape))
}

async fn landing(State(app): State<Arc<App>>) -> Html<String> {
    let mut targets = String::new();
    for name in app.targets.keys() {
        let escaped = html_escape(name);
        let query = form_urlencoded_component(name);
        targets.push_str(&format!(
            "<li><a href=\"/probe?target={query}\">/probe?target={escaped}</a></li>\n"
        ));
    }
    Html(format!(
        "<!DOCTYPE html>\n<html><head><title>Greenplum exporter</title></head><body>\n\
         <h1>Greenplum exporter</h1>\n<p>version {} (revision {})</p>\n<ul>\n\
         <li><a href=\"/metrics\">/metrics</a></li>\n<li><a href=\"/healthz\">/healthz</a></li>\n\
         {targets}</ul>\n</body></html>\n",
        crate::metrics::VERSION,
        crate::metrics::REVISION,
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn form_urlencoded_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parses a listen address the way Prometheus exporters take it: `:9297` means every
/// interface.
pub fn parse_listen_address(text: &str) -> anyhow::Result<SocketAddr> {
    let text = text.trim();
    let candidate = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    candidate
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("invalid listen address {text:?}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("listen address {text:?} resolves to nothing"))
}

/// Serves `router` until `shutdown` resolves, over TLS when a config is given.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let service = router.into_make_service();
    match tls {
        Some(config) => {
            // HTTP/1.1 only, as on plain HTTP (the TLS config offers no h2): the header
            // deadline then runs from the end of the handshake (10 s in axum-server), so a
            // client silent after it is closed too. With h2 offered, hyper waited for the
            // protocol preface without any deadline. Scrapers agree on HTTP/1.1 via ALPN.
            let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
            let mut server = axum_server::from_tcp_rustls(listener, config)?.http1_only();
            arm_header_timeout(server.http_builder());
            server.handle(handle).serve(service).await?
        }
        None => {
            // Plain HTTP is HTTP/1.1 (Prometheus scrapes no h2c), so the header deadline
            // runs from the moment a connection opens: silent connections are closed too.
            let mut server = axum_server::from_tcp(listener)?.http1_only();
            arm_header_timeout(server.http_builder());
            server.handle(handle).serve(service).await?
        }
    }
    Ok(())
}

/// hyper has a header-read timeout but ignores it without a timer, and axum-server sets
/// none: without this a client trickling its headers held its connection forever.
fn arm_header_timeout(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT);
}

#[cfg(test)]
mod tests;
