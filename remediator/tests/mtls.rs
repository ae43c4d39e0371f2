//! mTLS on the real binary, with certificates generated here: a client whose certificate
//! chains to the configured CA is authenticated (no token needed); a client without a
//! certificate, with one from another CA, or speaking plain HTTP gets no answer at all.

#[path = "common/certs.rs"]
mod certs;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::Ca;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn identity(cert: &str, key: &str) -> Identity {
    Identity {
        chain: CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<_, _>>()
            .expect("cert"),
        key: PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
    }
}

/// One HTTPS request on a fresh connection; the status code, or why there was none.
fn https(
    address: &str,
    server_ca: &CertificateDer<'static>,
    client: Option<&Identity>,
    request: &str,
) -> Result<u16, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(address).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    match tls.read_to_end(&mut answer) {
        Ok(_) => {}
        // Servers may close without close_notify after `Connection: close`.
        Err(e) if !answer.is_empty() => eprintln!("read ended with {e}"),
        Err(e) => return Err(e.to_string()),
    }
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))
}

fn post(body: &str) -> String {
    format!(
        "POST /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

const GET_ACTIONS: &str =
    "GET /api/v1/actions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn client_certificates_from_the_ca_authenticate_and_nothing_else_gets_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("remediator clients and server CA");
    let rogue = Ca::new("some other CA");
    let (server_cert, server_key) = ca.server(&["localhost", "127.0.0.1"]);
    let (client_cert, client_key) = ca.client("alertmanager");
    let (rogue_cert, rogue_key) = rogue.client("alertmanager");
    let server_ca = CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("CA");
    let good = identity(&client_cert, &client_key);
    let stranger = identity(&rogue_cert, &rogue_key);

    let policy = write(
        dir.path(),
        "policy.yml",
        &format!(
            "clusters:\n  - name: gp-test\n    endpoints: ['127.0.0.1:{}']\n    \
             executor: {{local: {{env: {{PATH: /usr/bin:/bin}}}}}}\nrules: []\n",
            free_port()
        ),
    );
    let address = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.path().join("remediator.log")).expect("log");
    let child = Command::new(BIN)
        .arg("serve")
        .arg(format!("--policy={}", policy.display()))
        .arg(format!("--web.listen-address={address}"))
        .arg(format!(
            "--journal.path={}",
            dir.path().join("journal.db").display()
        ))
        .arg(format!(
            "--web.tls-cert-file={}",
            write(dir.path(), "server.pem", &server_cert).display()
        ))
        .arg(format!(
            "--web.tls-key-file={}",
            write(dir.path(), "server.key", &server_key).display()
        ))
        .arg(format!(
            "--web.tls-client-ca-file={}",
            write(dir.path(), "ca.pem", &ca.pem()).display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn");
    let _server = Server(child);

    let body = payload(&AlertSpec {
        cluster: "gp-elsewhere",
        status: "firing",
        starts_at: "2026-11-21T16:27:55Z",
        fingerprint: "c000000000000001",
        extra_labels: vec![],
    })
    .to_string();
    // The first request that gets through also proves the listener is up.
    let deadline = Instant::now() + GUARD;
    let accepted = loop {
        match https(&address, &server_ca, Some(&good), &post(&body)) {
            Ok(code) => break code,
            Err(e) => {
                let text =
                    std::fs::read_to_string(dir.path().join("remediator.log")).unwrap_or_default();
                assert!(Instant::now() < deadline, "never served: {e}\n{text}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert_eq!(accepted, 202, "a verified client needs no token");
    assert_eq!(
        https(&address, &server_ca, Some(&good), GET_ACTIONS),
        Ok(200)
    );

    // No certificate, a certificate from another CA: the handshake fails, no HTTP at all.
    let refused = https(&address, &server_ca, None, &post(&body));
    assert!(refused.is_err(), "{refused:?}");
    let refused = https(&address, &server_ca, Some(&stranger), &post(&body));
    assert!(refused.is_err(), "{refused:?}");
    // Plain HTTP to the TLS port gets no HTTP answer either.
    let mut plain = TcpStream::connect(&address).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    plain.write_all(post(&body).as_bytes()).expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 2"),
        "{answer:?}"
    );

    // Only the verified delivery reached the journal.
    let journal = JournalReader::open(&dir.path().join("journal.db"));
    assert_eq!(journal.count("SELECT COUNT(*) FROM deliveries"), 1);
}
