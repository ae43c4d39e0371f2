//! The remediator's catalog reads speak TLS when the policy's cluster has `tls:` (the same
//! connection keys as the exporter's `--config.file`), verify the server against its
//! `ca_file`, and take the policy's timeouts. A one-connection server stands in for the
//! coordinator: it records whether the client asked for TLS, completes the handshake with a
//! certificate of the test CA, and refuses the login the way a standby in recovery does, so
//! a completed TLS session shows as `standby_in_recovery`.

#[path = "common/certs.rs"]
#[allow(dead_code)] // client certificates are not needed here
mod certs;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use certs::Ca;
use greenplum_catalog::EndpointState;
use greenplum_remediator::backends::RealBackends;
use greenplum_remediator::planner::Backends;
use greenplum_remediator::policy::Policy;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

/// PostgreSQL's SSLRequest code: what a client sends first when it wants TLS.
const SSL_REQUEST: u32 = 80_877_103;

/// What the stand-in coordinator saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The client asked for TLS and the handshake completed.
    Tls,
    /// The client asked for TLS and gave up during the handshake.
    TlsFailed,
    /// A plain startup message.
    Plain,
}

/// Answers one connection: TLS with `cert`/`key` when asked, then a 57M02 refusal.
async fn coordinator(cert: String, key: String) -> (u16, oneshot::Receiver<Seen>) {
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert")];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (tell, seen) = oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let length = socket.read_u32().await.expect("length");
        let code = socket.read_u32().await.expect("code");
        if code != SSL_REQUEST {
            let mut rest = vec![0; length as usize - 8];
            socket.read_exact(&mut rest).await.expect("startup");
            let _ = tell.send(Seen::Plain);
            refuse(socket).await;
            return;
        }
        socket.write_all(b"S").await.expect("answer");
        match acceptor.accept(socket).await {
            Ok(mut stream) => {
                let _ = tell.send(Seen::Tls);
                let length = stream.read_u32().await.expect("length");
                let mut startup = vec![0; length as usize - 4];
                stream.read_exact(&mut startup).await.expect("startup");
                refuse(stream).await;
            }
            Err(_) => {
                let _ = tell.send(Seen::TlsFailed);
            }
        }
    });
    (port, seen)
}

/// Greenplum's refusal of a login on a standby in recovery.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let message = greenplum_catalog::test_support::error_response(&[
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "57M02"),
        (b'M', "the database system is in recovery mode"),
    ]);
    let _ = stream.write_all(&message).await;
    let _ = stream.shutdown().await;
}

/// A policy file in `dir` with one cluster at `port`, `connection` lines added.
fn policy(dir: &Path, port: u16, connection: &str) -> Policy {
    let text = format!(
        "clusters:\n  - name: gp\n    endpoints: ['127.0.0.1:{port}']\n{connection}    \
         executor: {{local: {{env: {{PATH: /bin}}}}}}\nrules: []\n"
    );
    let path = dir.join("policy.yml");
    std::fs::write(&path, text).expect("policy");
    Policy::load(&path).expect("valid policy")
}

/// One catalog read of cluster `gp` through the remediator's real backends.
async fn read(policy: &Policy) -> greenplum_catalog::EndpointObservation {
    let backends = RealBackends::new(policy).expect("backends");
    let cluster = policy.cluster("gp").expect("cluster");
    let snapshot = backends.source(cluster).snapshot().await;
    snapshot.endpoints.into_iter().next().expect("one endpoint")
}

#[tokio::test]
async fn catalog_reads_use_tls_and_the_timeouts_of_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("catalog test CA");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("ca");
    let (cert, key) = ca.server(&["127.0.0.1"]);
    let (port, seen) = coordinator(cert, key).await;
    // Relative to the policy file, as in the exporter's --config.file.
    let tls = "    tls: {ca_file: ca.pem}\n    connect_timeout: 3s\n    statement_timeout: 1m\n";
    let policy = policy(dir.path(), port, tls);
    let config = RealBackends::new(&policy).expect("backends");
    let config = config.reader_config("gp").expect("config");
    assert_eq!(config.connect_timeout, Duration::from_secs(3));
    assert_eq!(config.statement_timeout, Duration::from_secs(60));
    assert_eq!(config.application_name, "greenplum-remediator");
    let observation = read(&policy).await;
    assert_eq!(seen.await.expect("a connection"), Seen::Tls);
    assert_eq!(
        observation.state,
        EndpointState::StandbyInRecovery,
        "{observation:?}"
    );
}

#[tokio::test]
async fn a_server_the_ca_does_not_vouch_for_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trusted = Ca::new("trusted CA");
    std::fs::write(dir.path().join("ca.pem"), trusted.pem()).expect("ca");
    let (cert, key) = Ca::new("another CA").server(&["127.0.0.1"]);
    let (port, seen) = coordinator(cert, key).await;
    let policy = policy(dir.path(), port, "    tls: {ca_file: ca.pem}\n");
    let observation = read(&policy).await;
    assert_eq!(seen.await.expect("a connection"), Seen::TlsFailed);
    assert_eq!(
        observation.state,
        EndpointState::Rejecting,
        "{observation:?}"
    );
    let detail = observation.detail.unwrap_or_default();
    assert!(detail.contains("certificate"), "{detail}");
}

#[tokio::test]
async fn without_tls_the_read_is_plain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = Ca::new("unused CA").server(&["127.0.0.1"]);
    let (port, seen) = coordinator(cert, key).await;
    let policy = policy(dir.path(), port, "");
    let observation = read(&policy).await;
    assert_eq!(seen.await.expect("a connection"), Seen::Plain);
    assert_eq!(
        observation.state,
        EndpointState::StandbyInRecovery,
        "{observation:?}"
    );
}
