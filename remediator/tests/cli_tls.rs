//! The CLI over HTTPS and mTLS, against the real binary served with `--web.tls-*`: it
//! verifies the server against `--tls.ca-file`, presents `--tls.cert-file`/`--tls.key-file`
//! when the server requires a client certificate, and fails clearly otherwise.

#[path = "common/certs.rs"]
mod certs;
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use certs::Ca;
use common::*;
use serde_json::Value;

const ALICE: &str = "alice-operator-token-0123456789";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

struct Server {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve` with TLS (and mTLS when `client_ca` is given), a webhook token and an operators
/// file naming alice.
fn serve(dir: &Path, ca: &Ca, client_ca: Option<&Path>, extra: &[&str]) -> Server {
    let policy = write(
        dir,
        "policy.yml",
        &format!(
            "clusters:\n  - name: gp-tls\n    endpoints: ['127.0.0.1:{}']\n    \
             executor: {{local: {{env: {{PATH: /usr/bin:/bin}}}}}}\nrules: []\n",
            free_port()
        ),
    );
    let (cert, key) = ca.server(&["localhost", "127.0.0.1"]);
    let address = format!("127.0.0.1:{}", free_port());
    let log = dir.join("remediator.log");
    let out = std::fs::File::create(&log).expect("log");
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .arg(format!("--policy={}", policy.display()))
        .arg(format!("--web.listen-address={address}"))
        .arg(format!(
            "--journal.path={}",
            dir.join("journal.db").display()
        ))
        .arg(format!(
            "--web.tls-cert-file={}",
            write(dir, "server.pem", &cert).display()
        ))
        .arg(format!(
            "--web.tls-key-file={}",
            write(dir, "server.key", &key).display()
        ))
        .arg(format!(
            "--auth.token-file={}",
            write(dir, "webhook.token", "webhook-token-0123456789abcdef").display()
        ))
        .arg(format!(
            "--auth.operators-file={}",
            write(dir, "operators", &format!("alice {ALICE}\n")).display()
        ))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("log")))
        .stderr(Stdio::from(out));
    if let Some(client_ca) = client_ca {
        command.arg(format!("--web.tls-client-ca-file={}", client_ca.display()));
    }
    Server {
        child: command.spawn().expect("spawn"),
        address,
        log,
    }
}

fn cli(server: &Server, args: &[&str], tls: &[String]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg(format!("--url=https://{}", server.address))
        .args(tls)
        .output()
        .expect("run the CLI")
}

/// Runs `args` until it succeeds (the listener may not be up yet); panics after `GUARD`.
fn until_served(server: &mut Server, args: &[&str], tls: &[String]) -> Output {
    let deadline = Instant::now() + GUARD;
    loop {
        let output = cli(server, args, tls);
        if output.status.success() {
            return output;
        }
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("serve exited ({status}): {log}");
        }
        assert!(
            Instant::now() < deadline,
            "never served: {}\n{log}",
            output_text(&output)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_cli_reaches_a_tls_server_and_verifies_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("remediator CA");
    let mut server = serve(dir.path(), &ca, None, &[]);
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let alice = write(dir.path(), "alice.token", ALICE);
    let tls = [
        format!("--tls.ca-file={}", ca_file.display()),
        format!("--auth.token-file={}", alice.display()),
    ];
    let output = until_served(&mut server, &["actions", "list"], &tls);
    assert!(
        output_text(&output).trim().is_empty(),
        "{}",
        output_text(&output)
    );
    let output = cli(&server, &["pause", "--reason=over TLS"], &tls);
    assert!(output.status.success(), "{}", output_text(&output));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["who"], "alice");

    // Without the CA the server's certificate is not trusted (the public roots are used).
    let output = cli(
        &server,
        &["actions", "list"],
        &[format!("--auth.token-file={}", alice.display())],
    );
    assert!(!output.status.success());
    assert!(
        output_text(&output).contains("UnknownIssuer"),
        "{}",
        output_text(&output)
    );
    // A certificate from another CA is refused the same way.
    let rogue = write(dir.path(), "rogue.pem", &Ca::new("rogue").pem());
    let output = cli(
        &server,
        &["actions", "list"],
        &[format!("--tls.ca-file={}", rogue.display())],
    );
    assert!(!output.status.success());
    assert!(
        output_text(&output).contains("UnknownIssuer"),
        "{}",
        output_text(&output)
    );
    // Half a client identity is a usage error, said before any connection.
    let output = cli(
        &server,
        &["actions", "list"],
        &[format!("--tls.cert-file={}", ca_file.display())],
    );
    assert!(!output.status.success());
    assert!(
        output_text(&output).contains("--tls.cert-file and --tls.key-file go together"),
        "{}",
        output_text(&output)
    );
    let empty = write(dir.path(), "empty.pem", "");
    let output = cli(
        &server,
        &["actions", "list"],
        &[format!("--tls.ca-file={}", empty.display())],
    );
    assert!(!output.status.success());
    assert!(
        output_text(&output).contains("no CERTIFICATE block"),
        "{}",
        output_text(&output)
    );
}

#[test]
fn the_cli_presents_a_client_certificate_to_an_mtls_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("remediator CA");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let mut server = serve(dir.path(), &ca, Some(&ca_file), &[]);
    let (cert, key) = ca.client("alice");
    let alice = write(dir.path(), "alice.token", ALICE);
    let tls = [
        format!("--tls.ca-file={}", ca_file.display()),
        format!(
            "--tls.cert-file={}",
            write(dir.path(), "alice.pem", &cert).display()
        ),
        format!(
            "--tls.key-file={}",
            write(dir.path(), "alice.key", &key).display()
        ),
        format!("--auth.token-file={}", alice.display()),
    ];
    until_served(&mut server, &["actions", "list"], &tls);
    let output = cli(&server, &["pause", "--reason=over mTLS"], &tls);
    assert!(output.status.success(), "{}", output_text(&output));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["who"], "alice");

    // The same CLI without its certificate gets no answer at all.
    let output = cli(&server, &["actions", "list"], &tls[..1]);
    assert!(!output.status.success());
    assert!(
        !output_text(&output).contains("HTTP 2"),
        "{}",
        output_text(&output)
    );
    // A certificate from another CA neither.
    let rogue = Ca::new("rogue");
    let (cert, key) = rogue.client("alice");
    let output = cli(
        &server,
        &["actions", "list"],
        &[
            tls[0].clone(),
            format!(
                "--tls.cert-file={}",
                write(dir.path(), "r.pem", &cert).display()
            ),
            format!(
                "--tls.key-file={}",
                write(dir.path(), "r.key", &key).display()
            ),
        ],
    );
    assert!(!output.status.success());
    // The verified connection is Alertmanager's kind of credential, not an operator: a
    // decision still needs an operator's token.
    let output = cli(&server, &["resume", "--reason=no token"], &tls[..3]);
    assert!(!output.status.success());
    assert!(
        output_text(&output).contains("401"),
        "{}",
        output_text(&output)
    );
}

/// With `--auth.operator-client-cert`, a verified client certificate whose subject CN is an
/// operator's name decides as that operator without a token; one naming nobody in the
/// operators file (Alertmanager's) still reads but cannot decide. The flag is refused
/// without mTLS.
#[test]
fn an_operator_can_be_named_by_their_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("remediator CA");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let mut server = serve(
        dir.path(),
        &ca,
        Some(&ca_file),
        &["--auth.operator-client-cert"],
    );
    let identity = |name: &str| {
        let (cert, key) = ca.client(name);
        [
            format!("--tls.ca-file={}", ca_file.display()),
            format!(
                "--tls.cert-file={}",
                write(dir.path(), &format!("{name}.pem"), &cert).display()
            ),
            format!(
                "--tls.key-file={}",
                write(dir.path(), &format!("{name}.key"), &key).display()
            ),
        ]
    };
    let alice = identity("alice");
    until_served(&mut server, &["actions", "list"], &alice);
    let output = cli(
        &server,
        &["pause", "--reason=by certificate", "--who=mallory"],
        &alice,
    );
    assert!(output.status.success(), "{}", output_text(&output));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["who"], "alice");

    let alertmanager = identity("alertmanager");
    let output = cli(&server, &["actions", "list"], &alertmanager);
    assert!(output.status.success(), "{}", output_text(&output));
    let output = cli(
        &server,
        &["resume", "--reason=not an operator"],
        &alertmanager,
    );
    assert!(!output.status.success());
    assert!(
        output_text(&output).contains("401"),
        "{}",
        output_text(&output)
    );

    // Without a client CA there are no verified certificates to name anyone.
    let output = Command::new(BIN)
        .arg("serve")
        .arg(format!(
            "--policy={}",
            dir.path().join("policy.yml").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg(format!(
            "--journal.path={}",
            dir.path().join("other.db").display()
        ))
        .arg(format!(
            "--auth.operators-file={}",
            dir.path().join("operators").display()
        ))
        .arg("--auth.operator-client-cert")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(
        output_text(&output).contains("--auth.operator-client-cert needs"),
        "{}",
        output_text(&output)
    );
}
