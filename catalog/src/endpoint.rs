//! Connecting to one coordinator endpoint and classifying what answered.
//!
//! A standby coordinator (like a mirror) refuses logins while it replays WAL, and that very
//! refusal proves its postmaster is alive: Greenplum answers SQLSTATE `57M02` "the database
//! system is in recovery mode" with DETAIL `last replayed record at X/Y`, PostgreSQL answers
//! `57P03` ("not accepting connections" / "Hot standby mode is disabled." / "starting up").
//! The classification of server errors is the pure [`classify_rejection`], tested on the
//! recorded texts; `probe` does the I/O around it.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{describe, CatalogError};
use crate::lsn::Lsn;
use crate::queries::{run, session as sql, Unanswered};
use crate::snapshot::{EndpointObservation, EndpointState};

/// A coordinator endpoint, `host:port` (IPv6 as `[::1]:5432`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Host name or IP address of the coordinator (or standby coordinator) host.
    pub host: String,
    /// The coordinator's PostgreSQL port (`PGPORT`, often 5432).
    pub port: u16,
}

impl Endpoint {
    /// An endpoint from its parts (no validation; parse text with `str::parse`).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = CatalogError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |why| CatalogError::InvalidEndpoint {
            text: text.chars().take(200).collect(),
            why,
        };
        // `user:password@host:port` or a URL: refused before anything echoes the text, since
        // a password given here is already visible to every local user in argv.
        if let Some((_, after)) = text.rsplit_once('@') {
            return Err(CatalogError::InvalidEndpoint {
                text: format!("...@{}", after.chars().take(200).collect::<String>()),
                why: "credentials never go in an endpoint (argv is public): give host:port, \
                      the user and a password file separately",
            });
        }
        if text.contains("://") {
            return Err(invalid("a URL is not an endpoint: give host:port"));
        }
        let (host, port) = text
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected host:port"))?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .ok_or_else(|| invalid("unclosed [ in an IPv6 address"))?,
            None if host.contains(':') => {
                return Err(invalid("write IPv6 addresses as [addr]:port"))
            }
            None => host,
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(invalid("the host is empty or holds whitespace or '/'"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| invalid("the port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(invalid("the port is not a number from 1 to 65535"));
        }
        Ok(Endpoint::new(host, port))
    }
}

/// What a refusal by the server means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// A live standby in recovery, or a live server refusing us.
    pub state: EndpointState,
    /// From Greenplum's `last replayed record at X/Y` DETAIL.
    pub last_replayed: Option<Lsn>,
}

/// Classifies an error the server sent while we tried to log in.
///
/// `57M02` (Greenplum's recovery-mode rejection) and `57P03` (PostgreSQL's "cannot connect
/// now") mean a live instance in recovery, except "shutting down", which is an instance on
/// its way out. Everything else (authentication 28P01/28000, too many connections 53300,
/// unknown database 3D000, ...) is a live server refusing us.
pub fn classify_rejection(sqlstate: &str, message: &str, detail: Option<&str>) -> Rejection {
    let last_replayed = detail.and_then(last_replayed_from_detail);
    let state = match sqlstate {
        "57M02" => EndpointState::StandbyInRecovery,
        "57P03" if !message.contains("shutting down") => EndpointState::StandbyInRecovery,
        _ => EndpointState::Rejecting,
    };
    Rejection {
        state,
        last_replayed: (state == EndpointState::StandbyInRecovery)
            .then_some(last_replayed)
            .flatten(),
    }
}

/// `last replayed record at 0/C000128` (the first DETAIL line of a 57M02 rejection).
pub fn last_replayed_from_detail(detail: &str) -> Option<Lsn> {
    const MARKER: &str = "last replayed record at ";
    let at = detail.find(MARKER)? + MARKER.len();
    let rest = &detail[at..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// How to log in; shared by every endpoint of a reader.
#[derive(Clone)]
pub(crate) struct ConnectSettings {
    pub user: String,
    pub dbname: String,
    pub password: Option<String>,
    pub application_name: String,
    pub connect_timeout: Duration,
    /// Startup options (`-c name=value ...`): the session settings, applied by the server at
    /// login, so nothing is dispatched to the segments (see `queries::session`).
    pub options: String,
    pub tls: Option<MakeRustlsConnect>,
}

/// The outcome of probing one endpoint. `client` is kept only when the endpoint is the
/// coordinator, so the reader can adopt the connection instead of opening another.
pub(crate) struct Probe {
    pub observation: EndpointObservation,
    pub client: Option<Client>,
}

impl Probe {
    fn observed(endpoint: &Endpoint, state: EndpointState, detail: Option<String>) -> Self {
        Probe {
            observation: EndpointObservation {
                endpoint: endpoint.to_string(),
                state,
                detail,
                last_replayed: None,
            },
            client: None,
        }
    }
}

/// Logs in (bounded by the connect timeout) and asks `pg_is_in_recovery()`.
pub(crate) async fn probe(endpoint: &Endpoint, settings: &ConnectSettings) -> Probe {
    let attempt = tokio::time::timeout(settings.connect_timeout, connect(endpoint, settings));
    let client = match attempt.await {
        Err(_) => {
            let why = format!(
                "no answer within {:.1}s",
                settings.connect_timeout.as_secs_f64()
            );
            return Probe::observed(endpoint, EndpointState::Down, Some(why));
        }
        Ok(Err(error)) => return classify_connect_error(endpoint, &error),
        Ok(Ok(client)) => client,
    };
    let rows = match run(&client, sql::IN_RECOVERY, settings.connect_timeout).await {
        Err(Unanswered::TimedOut) => {
            return Probe::observed(
                endpoint,
                EndpointState::Rejecting,
                Some("logged in, but pg_is_in_recovery() did not answer in time".into()),
            )
        }
        Err(Unanswered::Failed(error)) => {
            return Probe::observed(
                endpoint,
                EndpointState::Rejecting,
                Some(format!(
                    "logged in, but pg_is_in_recovery() failed: {error}"
                )),
            )
        }
        Ok(rows) => rows,
    };
    match sql::in_recovery(&rows) {
        Some(false) => Probe {
            client: Some(client),
            ..Probe::observed(endpoint, EndpointState::Coordinator, None)
        },
        Some(true) => Probe::observed(
            endpoint,
            EndpointState::StandbyInRecovery,
            Some("accepts logins and is in recovery".into()),
        ),
        None => Probe::observed(
            endpoint,
            EndpointState::Rejecting,
            Some("pg_is_in_recovery() returned no value".into()),
        ),
    }
}

fn classify_connect_error(endpoint: &Endpoint, error: &tokio_postgres::Error) -> Probe {
    if let Some(db) = error.as_db_error() {
        let rejection = classify_rejection(db.code().code(), db.message(), db.detail());
        let mut text = format!("{}: {}", db.code().code(), db.message());
        if let Some(first) = db.detail().and_then(|d| d.lines().next()) {
            text.push_str(&format!(" ({first})"));
        }
        let mut probe = Probe::observed(endpoint, rejection.state, Some(text));
        probe.observation.last_replayed = rejection.last_replayed;
        return probe;
    }
    // rustls reports a failed handshake as InvalidData (InvalidInput for a host name it
    // cannot verify against): the server answered, we disagreed. Errors without an I/O cause
    // ("server does not support TLS", protocol errors) also come from a live server.
    let io_kind = source_chain(error)
        .find_map(|e| e.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    let state = match io_kind {
        Some(io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput) | None => {
            EndpointState::Rejecting
        }
        Some(_) => EndpointState::Down,
    };
    Probe::observed(endpoint, state, Some(describe(error)))
}

fn source_chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e: &&'a (dyn std::error::Error + 'static)| {
        (*e).source()
    })
}

/// Opens a connection and drives it on a background task (it ends when the client drops).
pub(crate) async fn connect(
    endpoint: &Endpoint,
    settings: &ConnectSettings,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&endpoint.host)
        .port(endpoint.port)
        .user(&settings.user)
        .dbname(&settings.dbname)
        .application_name(&settings.application_name)
        .connect_timeout(settings.connect_timeout)
        .options(&settings.options)
        // A coordinator that vanishes without a FIN must not hang the next round forever.
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    if let Some(password) = &settings.password {
        config.password(password.as_bytes());
    }
    match &settings.tls {
        Some(tls) => {
            config.ssl_mode(SslMode::Require);
            connect_with(&config, tls.clone()).await
        }
        None => {
            config.ssl_mode(SslMode::Disable);
            connect_with(&config, NoTls).await
        }
    }
}

async fn connect_with<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %describe(&error), "catalog connection ended");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DETAIL of the recorded rejection (H_connect_standby_healthy.txt).
    const GP6_DETAIL: &str = "last replayed record at 0/C000128\n- VERSION: PostgreSQL 9.4.26 \
        (Greenplum Database 6.24.3 build commit:25d3498a400ca5230e81abb94861f23389315213) on \
        x86_64-unknown-linux-gnu, compiled by gcc (Debian 12.2.0-14+deb12u1) 12.2.0, 64-bit \
        compiled on Nov 21 2026 16:00:24";

    #[test]
    fn recorded_greenplum_recovery_rejection() {
        let r = classify_rejection(
            "57M02",
            "the database system is in recovery mode",
            Some(GP6_DETAIL),
        );
        assert_eq!(r.state, EndpointState::StandbyInRecovery);
        assert_eq!(r.last_replayed, Some(Lsn(0xC000128)));
    }

    #[test]
    fn recorded_rejection_during_coordinator_failover() {
        // K_coordinator_failover_transition.txt: the coordinator is gone, the standby answers.
        let detail = GP6_DETAIL.replace("0/C000128", "0/C09BDA0");
        let r = classify_rejection(
            "57M02",
            "the database system is in recovery mode",
            Some(&detail),
        );
        assert_eq!(
            r,
            Rejection {
                state: EndpointState::StandbyInRecovery,
                last_replayed: Some(Lsn(0xC09BDA0))
            }
        );
    }

    #[test]
    fn postgresql_cannot_connect_now() {
        for (message, detail) in [
            (
                "the database system is not accepting connections",
                Some("Hot standby mode is disabled."),
            ),
            ("the database system is starting up", None),
            ("the database system is in recovery mode", None),
            (
                "the database system is not yet accepting connections",
                Some("Consistent recovery state has not been yet reached."),
            ),
        ] {
            let r = classify_rejection("57P03", message, detail);
            assert_eq!(r.state, EndpointState::StandbyInRecovery, "{message}");
            assert_eq!(r.last_replayed, None);
        }
        assert_eq!(
            classify_rejection("57P03", "the database system is shutting down", None).state,
            EndpointState::Rejecting
        );
    }

    #[test]
    fn other_server_errors_are_rejecting() {
        for (code, message) in [
            (
                "28P01",
                "password authentication failed for user \"gpadmin\"",
            ),
            ("28000", "no pg_hba.conf entry for host \"10.0.0.1\""),
            ("53300", "sorry, too many clients already"),
            ("3D000", "database \"nope\" does not exist"),
            (
                "XX000",
                "System was started in master-only utility mode - only utility mode \
                 connections are allowed",
            ),
        ] {
            let r = classify_rejection(code, message, Some("last replayed record at 0/1"));
            assert_eq!(r.state, EndpointState::Rejecting, "{code}");
            assert_eq!(r.last_replayed, None, "an LSN only counts for recovery");
        }
    }

    #[test]
    fn detail_garbage_gives_no_lsn() {
        for detail in [
            "",
            "last replayed record at",
            "last replayed record at zz/1",
            "last replayed record at 0/",
        ] {
            assert_eq!(last_replayed_from_detail(detail), None, "{detail:?}");
        }
        assert_eq!(
            last_replayed_from_detail("last replayed record at 1/0"),
            Some(Lsn(1 << 32))
        );
    }

    #[test]
    fn endpoints_parse_and_print() {
        let e: Endpoint = "cdw:6000".parse().unwrap();
        assert_eq!(e, Endpoint::new("cdw", 6000));
        assert_eq!(e.to_string(), "cdw:6000");
        let v6: Endpoint = "[::1]:5432".parse().unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:5432");
        for bad in [
            "",
            "cdw",
            ":6000",
            "cdw:",
            "cdw:0",
            "cdw:70000",
            "::1:5432",
            "[::1:5432",
            "a b:1",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad:?}");
        }
    }

    fn settings(timeout: Duration) -> ConnectSettings {
        ConnectSettings {
            user: "gpadmin".into(),
            dbname: "postgres".into(),
            password: None,
            application_name: "catalog-test".into(),
            connect_timeout: timeout,
            options: String::new(),
            tls: None,
        }
    }

    /// Reads the startup packet and answers with an ErrorResponse, as a Greenplum standby or
    /// a refusing server does before any login.
    async fn refuse<S>(mut stream: S, fields: Vec<(u8, String)>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let length = stream.read_u32().await.unwrap();
        let mut startup = vec![0; length as usize - 4];
        stream.read_exact(&mut startup).await.unwrap();
        let fields: Vec<(u8, &str)> = fields.iter().map(|(c, v)| (*c, v.as_str())).collect();
        let message = crate::test_support::error_response(&fields);
        stream.write_all(&message).await.unwrap();
        stream.shutdown().await.ok();
    }

    /// A one-shot plain server that refuses with `fields`.
    async fn refusing_server(fields: Vec<(u8, String)>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            refuse(socket, fields).await;
        });
        port
    }

    /// A one-shot server that accepts PostgreSQL's SSLRequest, completes the TLS handshake
    /// with `cert`, then refuses with `fields`.
    async fn tls_refusing_server(
        cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
        fields: Vec<(u8, String)>,
    ) -> u16 {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
        let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (_length, _code) = (
                socket.read_u32().await.unwrap(),
                socket.read_u32().await.unwrap(),
            );
            socket.write_all(b"S").await.unwrap();
            if let Ok(stream) = acceptor.accept(socket).await {
                refuse(stream, fields).await;
            }
        });
        port
    }

    fn ca_file(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), cert.cert.pem()).unwrap();
        file
    }

    #[tokio::test]
    async fn tls_with_the_right_ca_reaches_the_rejection() {
        let server_cert =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let ca = ca_file(&server_cert);
        let port = tls_refusing_server(
            &server_cert,
            fatal(
                "57M02",
                "the database system is in recovery mode",
                Some(GP6_DETAIL),
            ),
        )
        .await;
        let mut settings = settings(Duration::from_secs(5));
        settings.tls = Some(
            crate::tls::TlsConfig::with_ca(ca.path())
                .connector()
                .unwrap(),
        );
        let probe = probe(&Endpoint::new("127.0.0.1", port), &settings).await;
        assert_eq!(
            probe.observation.state,
            EndpointState::StandbyInRecovery,
            "{:?}",
            probe.observation
        );
        assert_eq!(probe.observation.last_replayed, Some(Lsn(0xC000128)));
    }

    #[tokio::test]
    async fn tls_with_another_ca_is_rejecting_not_down() {
        let server_cert =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let ca = ca_file(&other);
        let port = tls_refusing_server(&server_cert, fatal("57M02", "unreached", None)).await;
        let mut settings = settings(Duration::from_secs(5));
        settings.tls = Some(
            crate::tls::TlsConfig::with_ca(ca.path())
                .connector()
                .unwrap(),
        );
        let probe = probe(&Endpoint::new("127.0.0.1", port), &settings).await;
        assert_eq!(
            probe.observation.state,
            EndpointState::Rejecting,
            "{:?}",
            probe.observation
        );
        let detail = probe.observation.detail.unwrap();
        assert!(detail.contains("certificate"), "{detail}");
    }

    fn fatal(code: &str, message: &str, detail: Option<&str>) -> Vec<(u8, String)> {
        let mut fields = vec![
            (b'S', "FATAL".to_string()),
            (b'V', "FATAL".to_string()),
            (b'C', code.to_string()),
            (b'M', message.to_string()),
        ];
        if let Some(detail) = detail {
            fields.push((b'D', detail.to_string()));
        }
        fields
    }

    #[tokio::test]
    async fn greenplum_rejection_on_the_wire_is_a_live_standby() {
        let port = refusing_server(fatal(
            "57M02",
            "the database system is in recovery mode",
            Some(GP6_DETAIL),
        ))
        .await;
        let probe = probe(
            &Endpoint::new("127.0.0.1", port),
            &settings(Duration::from_secs(5)),
        )
        .await;
        let observation = probe.observation;
        assert_eq!(observation.state, EndpointState::StandbyInRecovery);
        assert_eq!(observation.last_replayed, Some(Lsn(0xC000128)));
        assert_eq!(
            observation.detail.as_deref(),
            Some(
                "57M02: the database system is in recovery mode \
                 (last replayed record at 0/C000128)"
            )
        );
        assert!(probe.client.is_none());
    }

    #[tokio::test]
    async fn authentication_failure_on_the_wire_is_rejecting() {
        let port = refusing_server(fatal(
            "28P01",
            "password authentication failed for user \"gpadmin\"",
            None,
        ))
        .await;
        let probe = probe(
            &Endpoint::new("127.0.0.1", port),
            &settings(Duration::from_secs(5)),
        )
        .await;
        assert_eq!(probe.observation.state, EndpointState::Rejecting);
        assert_eq!(probe.observation.last_replayed, None);
        assert!(probe.observation.detail.unwrap().contains("28P01"));
    }

    #[tokio::test]
    async fn refused_connection_is_down() {
        // Bind then drop a listener: the port is free and nothing listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = Endpoint::new("127.0.0.1", port);
        let probe = probe(&endpoint, &settings(Duration::from_secs(5))).await;
        assert_eq!(probe.observation.state, EndpointState::Down);
        assert!(probe.client.is_none());
        assert_eq!(probe.observation.endpoint, endpoint.to_string());
    }

    #[tokio::test]
    async fn silent_server_is_down_after_the_timeout() {
        // Accepts TCP and never answers the startup packet.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let endpoint = Endpoint::new("127.0.0.1", port);
        let probe = probe(&endpoint, &settings(Duration::from_millis(300))).await;
        hold.abort();
        assert_eq!(probe.observation.state, EndpointState::Down);
        assert!(probe.observation.detail.unwrap().contains("no answer"));
    }
}
