//! `--web.config.file` end to end: the exporter started exactly as the binary starts it,
//! serving over TLS with certificates made here, spoken to by real rustls clients.
//!
//! No database: `--coordinator` names a port nobody listens on, so `/metrics` reports that no
//! coordinator answered, which is still a full 200 exposition.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use clap::Parser;
use greenplum_exporter::cli::Cli;
use greenplum_exporter::run::Server;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Guard against a hung exchange; never a speed assertion.
const GUARD: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Certificates

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as rustls wants them.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Identity {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, "test");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert: cert.der().clone(),
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn server(&self) -> Identity {
        self.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client(&self) -> Identity {
        self.issue(&["prometheus"], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

// ---------------------------------------------------------------------------------------------
// The exporter

struct Exporter {
    address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Exporter {
    /// Starts the exporter with `web_yml` as its `--web.config.file`, written into a fresh
    /// directory next to `files` (name, content): relative paths in it resolve there.
    async fn start(web_yml: &str, files: &[(&str, &str)]) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let web_config = dir.path().join("web.yml");
        std::fs::write(&web_config, web_yml).unwrap();
        let cli = Cli::try_parse_from([
            "greenplum-exporter",
            "--coordinator",
            &format!("127.0.0.1:{}", closed_port()),
            "--db.user",
            "gpadmin",
            "--db.name",
            "postgres",
            "--connect-timeout",
            "2s",
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.config.file",
            path_str(&web_config),
        ])
        .unwrap();
        let server = Server::start(&cli).await.expect("exporter starts");
        let address = server.address;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server.wait(async {
            let _ = stopped.await;
        }));
        Exporter {
            address,
            stop,
            served,
            _dir: dir,
        }
    }

    /// Serves with TLS only, a server certificate for `localhost` from `ca`.
    async fn start_tls_only(ca: &Ca) -> Exporter {
        let server = ca.server();
        let files = [
            ("server.crt", server.cert_pem.as_str()),
            ("server.key", server.key_pem.as_str()),
        ];
        Exporter::start(TLS_ONLY, &files).await
    }

    /// Stops the server and checks it ended cleanly.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(GUARD, self.served)
            .await
            .expect("server stops")
            .expect("server task")
            .expect("server ended without error");
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A local port with nothing listening: connections to it are refused at once.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Relative names: exporter-toolkit resolves them against the web config's directory.
const TLS_ONLY: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

// ---------------------------------------------------------------------------------------------
// Clients

fn connector(trusted: &Ca, identity: Option<&Identity>) -> TlsConnector {
    connector_speaking(trusted, identity, rustls::DEFAULT_VERSIONS)
}

/// A client offering only `versions`.
fn connector_speaking(
    trusted: &Ca,
    identity: Option<&Identity>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.issuer.der().clone()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 GET over TLS. Errors are the handshake's or the connection's.
async fn https_get(
    address: SocketAddr,
    connector: &TlsConnector,
    path: &str,
    authorization: Option<&str>,
) -> io::Result<Response> {
    let exchange = async {
        let tcp = TcpStream::connect(address).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await?;
        exchange(tls, path, authorization).await
    };
    tokio::time::timeout(GUARD, exchange)
        .await
        .expect("the exchange ends")
}

async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    path: &str,
    authorization: Option<&str>,
) -> io::Result<Response> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(value) = authorization {
        request.push_str(&format!("Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw).await {
        Ok(_) => {}
        // A peer that closes without close_notify after a complete answer is fine here.
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(err) => return Err(err),
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, format!("not HTTP: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(invalid)?;
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(invalid)?;
    Ok(Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// The rustls error inside an I/O error, if that is what it is.
fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn serves_metrics_and_healthz_over_https() {
    let ca = Ca::new("test CA");
    let exporter = Exporter::start_tls_only(&ca).await;
    let client = connector(&ca, None);

    let health = https_get(exporter.address, &client, "/healthz", None)
        .await
        .expect("HTTPS /healthz");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body, "ok\n");

    let metrics = https_get(exporter.address, &client, "/metrics", None)
        .await
        .expect("HTTPS /metrics");
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert!(
        metrics.body.contains("\ngreenplum_up 0\n"),
        "no coordinator listens, so greenplum_up is 0:\n{}",
        metrics.body
    );
    exporter.stop().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_http_answer() {
    let ca = Ca::new("test CA");
    let exporter = Exporter::start_tls_only(&ca).await;

    let plain = tokio::time::timeout(GUARD, async {
        let tcp = TcpStream::connect(exporter.address).await?;
        exchange(tcp, "/healthz", None).await
    })
    .await
    .expect("the server closes a plain-HTTP connection");
    assert!(plain.is_err(), "plain HTTP must not be answered: {plain:?}");

    // The bad client did not take the server down.
    let health = https_get(exporter.address, &connector(&ca, None), "/healthz", None)
        .await
        .expect("HTTPS after a plain-HTTP attempt");
    assert_eq!(health.status, 200);
    exporter.stop().await;
}

#[tokio::test]
async fn a_client_not_trusting_the_ca_fails_the_handshake() {
    let ca = Ca::new("test CA");
    let exporter = Exporter::start_tls_only(&ca).await;

    let stranger = connector(&Ca::new("another CA"), None);
    let err = https_get(exporter.address, &stranger, "/healthz", None)
        .await
        .expect_err("a client trusting another CA must not connect");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "expected an unknown-issuer handshake failure, got {err:?}"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn required_client_certificates_are_verified_against_the_client_ca() {
    let ca = Ca::new("test CA");
    let server = ca.server();
    let clients = Ca::new("client CA");
    let web_yml = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: clients.crt\n  client_auth_type: RequireAndVerifyClientCert\n";
    let exporter = Exporter::start(
        web_yml,
        &[
            ("server.crt", &server.cert_pem),
            ("server.key", &server.key_pem),
            ("clients.crt", &clients.pem()),
        ],
    )
    .await;

    let anonymous = https_get(exporter.address, &connector(&ca, None), "/healthz", None).await;
    let err = anonymous.expect_err("a client without a certificate must be refused");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
            ))
        ),
        "expected the server's certificate_required alert, got {err:?}"
    );

    // A certificate from a CA the server does not name is no better than none.
    let forged = ca.client();
    let refused = https_get(
        exporter.address,
        &connector(&ca, Some(&forged)),
        "/healthz",
        None,
    )
    .await;
    let err = refused.expect_err("a client certificate from another CA must be refused");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA
            ))
        ),
        "expected the server's unknown_ca alert, got {err:?}"
    );

    let prometheus = clients.client();
    let client = connector(&ca, Some(&prometheus));
    for path in ["/healthz", "/metrics"] {
        let response = https_get(exporter.address, &client, path, None)
            .await
            .unwrap_or_else(|err| panic!("{path} with a client certificate: {err}"));
        assert_eq!(response.status, 200, "{path}: {response:?}");
    }
    exporter.stop().await;
}

#[tokio::test]
async fn basic_auth_over_tls_checks_the_bcrypt_password() {
    let ca = Ca::new("test CA");
    let server = ca.server();
    // Cost 4, bcrypt's minimum: the check is the same, only cheaper.
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web_yml = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: '{hash}'\n"
    );
    let exporter = Exporter::start(
        &web_yml,
        &[
            ("server.crt", &server.cert_pem),
            ("server.key", &server.key_pem),
        ],
    )
    .await;
    let client = connector(&ca, None);
    let get = |authorization: Option<String>| {
        let client = client.clone();
        async move {
            https_get(
                exporter.address,
                &client,
                "/metrics",
                authorization.as_deref(),
            )
            .await
            .expect("HTTPS exchange")
        }
    };

    let right = get(Some(basic("prometheus", "s3cret"))).await;
    assert_eq!(right.status, 200, "{right:?}");
    assert!(right.body.contains("greenplum_up"), "{right:?}");

    for (case, authorization) in [
        ("wrong password", Some(basic("prometheus", "s3cre"))),
        ("unknown user", Some(basic("grafana", "s3cret"))),
        ("no credentials", None),
    ] {
        let refused = get(authorization).await;
        assert_eq!(refused.status, 401, "{case}: {refused:?}");
        assert!(
            refused
                .head
                .to_ascii_lowercase()
                .contains("www-authenticate: basic"),
            "{case}: {refused:?}"
        );
        assert!(
            !refused.body.contains("greenplum_up"),
            "{case}: {refused:?}"
        );
    }
    exporter.stop().await;
}

/// A client that completes the handshake and then says nothing is cut like one on plain HTTP:
/// the listener speaks HTTP/1.1 only, so the header-read timeout runs from the first moment
/// (with h2 offered, hyper waited for the protocol preface without a deadline).
#[tokio::test]
async fn a_client_silent_after_the_handshake_is_cut() {
    let ca = Ca::new("test CA");
    let exporter = Exporter::start_tls_only(&ca).await;
    let tcp = TcpStream::connect(exporter.address).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector(&ca, None)
        .connect(name, tcp)
        .await
        .expect("handshake");
    let mut raw = Vec::new();
    let ended = tokio::time::timeout(GUARD, tls.read_to_end(&mut raw)).await;
    assert!(
        ended.is_ok(),
        "a connection silent after its handshake was still open after {GUARD:?}"
    );
    assert!(
        raw.is_empty() || String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    // The server still answers others.
    let health = https_get(exporter.address, &connector(&ca, None), "/healthz", None)
        .await
        .expect("HTTPS /healthz");
    assert_eq!(health.status, 200);
    exporter.stop().await;
}

/// A node_exporter web config with TLS tuning and response headers works as it does there:
/// `min_version: TLS13` turns a TLS 1.2 client away, and every answer, refusals included,
/// carries the configured headers.
#[tokio::test]
async fn exporter_toolkit_tls_versions_and_headers_are_honoured() {
    let ca = Ca::new("test CA");
    let server = ca.server();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web_yml = format!(
        "{TLS_ONLY}  min_version: TLS13\n  curve_preferences: [X25519]\n\
         http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n    \
         Strict-Transport-Security: max-age=31536000\n\
         basic_auth_users:\n  prometheus: '{hash}'\n"
    );
    let exporter = Exporter::start(
        &web_yml,
        &[
            ("server.crt", &server.cert_pem),
            ("server.key", &server.key_pem),
        ],
    )
    .await;

    let tls12 = connector_speaking(&ca, None, &[&rustls::version::TLS12]);
    let refused = https_get(exporter.address, &tls12, "/healthz", None)
        .await
        .expect_err("a TLS 1.2 client is turned away");
    assert!(
        matches!(
            rustls_error(&refused),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::ProtocolVersion
            ))
        ),
        "{refused:?}"
    );

    let tls13 = connector_speaking(&ca, None, &[&rustls::version::TLS13]);
    let authorized = basic("prometheus", "s3cret");
    for (authorization, status) in [(Some(authorized.as_str()), 200), (None, 401)] {
        let answer = https_get(exporter.address, &tls13, "/healthz", authorization)
            .await
            .expect("TLS 1.3 exchange");
        assert_eq!(answer.status, status, "{answer:?}");
        let head = answer.head.to_ascii_lowercase();
        assert!(head.contains("x-frame-options: deny"), "{head}");
        assert!(
            head.contains("strict-transport-security: max-age=31536000"),
            "{head}"
        );
    }
    exporter.stop().await;
}
