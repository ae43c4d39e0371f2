//! The exporter's claims in SECURITY.md, against the real binary: it works with a
//! least-privilege role and names the grant it lacks; no password is ever a flag or part of
//! an endpoint; the database password, the basic-auth password and the TLS private key stay
//! out of its logs (at `trace`), `/metrics` and `/proc/<pid>/cmdline`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{lab, lab_slot, Metrics, GUARD};
use gplab::Flavor;

const BIN: &str = env!("CARGO_BIN_EXE_greenplum-exporter");
const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";
const ROLE: &str = "greenplum_exporter";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn unique_secret(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{what}-{}-{nanos:x}-S3cr3t", std::process::id())
}

/// A real HTTP/1.0 GET (so the answer is never chunked): (status, body).
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("read cmdline");
    assert!(!raw.is_empty(), "process {pid} has no cmdline (exited?)");
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

fn assert_absent(secrets: &[(&str, &str)], places: &[(&str, &str)]) {
    for (secret_name, secret) in secrets {
        for (place, text) in places {
            assert!(
                !text.contains(secret),
                "the {secret_name} leaked into {place}"
            );
        }
    }
}

/// psql as `ROLE`, with or without the password; true when the login succeeded.
fn psql_login(port: u16, password: Option<&str>) -> bool {
    let mut command = Command::new(PSQL);
    command
        .args(["-w", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", ROLE, "-d", "postgres", "-c", "SELECT 1"])
        .env_remove("PGPASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(p) = password {
        command.env("PGPASSWORD", p);
    }
    command.status().is_ok_and(|s| s.success())
}

/// The documented least-privilege role (docs/OPERATIONS.md, GP7), without `pg_monitor` yet,
/// made to authenticate with `password` (scram) on the coordinator and the standby.
fn least_privilege_role(lab: &gplab::Lab, password: &str) {
    let rules = format!(
        "host all {ROLE} 127.0.0.1/32 scram-sha-256\nhost all {ROLE} ::1/128 scram-sha-256\n"
    );
    let mut dirs = vec![lab.coordinator_datadir()];
    dirs.extend(lab.standby_datadir());
    for dir in dirs {
        let hba = dir.join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        // Rewriting the existing file keeps its owner (the server's user).
        std::fs::write(&hba, format!("{rules}{old}")).expect("write pg_hba.conf");
    }
    let literal = password.replace('\'', "''");
    lab.query_catalog(&format!(
        "CREATE ROLE {ROLE} LOGIN PASSWORD '{literal}' CONNECTION LIMIT 3"
    ))
    .expect("create role");
    lab.query_catalog(&format!(
        "ALTER ROLE {ROLE} SET default_transaction_read_only = on"
    ))
    .expect("read-only role");
    // The lab's stand-ins for Greenplum's internal dispatch live in schema gplab and reach
    // the segments through dblink, which a real cluster needs no grant for: give them the
    // access a real dispatch has. The coordinator's own walsender view stays PostgreSQL's, so
    // what a role without pg_monitor sees there is exactly what GP7 shows it.
    for sql in [
        format!("GRANT USAGE ON SCHEMA gplab TO {ROLE}"),
        "ALTER FUNCTION gplab.segment_replication() SECURITY DEFINER".to_string(),
        "ALTER FUNCTION gplab.segment_lsn(integer, integer) SECURITY DEFINER".to_string(),
        "ALTER FUNCTION gplab.segment_basebackup_progress() SECURITY DEFINER".to_string(),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        lab.query_catalog(&sql).expect("lab grants");
    }
    let port = lab.coordinator_port();
    let deadline = Instant::now() + GUARD;
    while psql_login(port, None) || !psql_login(port, Some(password)) {
        assert!(
            Instant::now() < deadline,
            "{ROLE} never came to need its password"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The real binary; stderr (the log) to `log`. Killed on drop.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(args: &[String], log: &Path) -> Process {
        let file = std::fs::File::create(log).expect("log file");
        let child = Command::new(BIN)
            .args(args)
            .env_remove("PGPASSWORD")
            .stdout(Stdio::from(file.try_clone().expect("log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn greenplum-exporter");
        Process {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&mut self, needle: &str) {
        let deadline = Instant::now() + GUARD;
        while !self.log().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exporter exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn db_flags(lab: &gplab::Lab, password_file: &Path) -> Vec<String> {
    let mut flags = vec![format!(
        "--coordinator=127.0.0.1:{}",
        lab.coordinator_port()
    )];
    if let Some(port) = lab.standby_port() {
        flags.push(format!("--coordinator=127.0.0.1:{port}"));
    }
    flags.extend([
        format!("--db.user={ROLE}"),
        "--db.name=postgres".to_string(),
        format!("--db.password-file={}", password_file.display()),
        "--statement-timeout=5s".to_string(),
        "--connect-timeout=3s".to_string(),
    ]);
    flags
}

/// On a GP7-flavoured lab, a role with only LOGIN (the documented role before its
/// `pg_monitor` grant) reads the segments, and the `standby` source (PostgreSQL's own
/// walsender view on the coordinator) fails instead of reporting the standby as
/// disconnected; `check` names the missing grant. After
/// `GRANT pg_monitor` the same process reports replication, with no restart. Throughout,
/// with the log at `trace` and basic auth on `/metrics`, neither the database password nor
/// the basic-auth password appears in the log, `/metrics` or the process's argv.
#[test]
fn least_privilege_role_works_names_the_missing_grant_and_keeps_secrets() {
    let _slot = lab_slot();
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = lab(Flavor::Gp7);
    let db_password = unique_secret("db");
    let web_password = unique_secret("web");
    least_privilege_role(&lab, &db_password);
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{db_password}\n")).expect("password file");
    let hash = bcrypt::hash(&web_password, 4).expect("bcrypt");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {hash}\n")).expect("web");

    let port = free_port();
    let mut args = db_flags(&lab, &password_file);
    args.extend([
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--web.config.file={}", web.display()),
        "--log.level=trace".to_string(),
    ]);
    let mut exporter = Process::spawn(&args, &dir.path().join("exporter.log"));
    exporter.wait_log("serving metrics");
    let auth = basic("prometheus", &web_password);
    let scrape = || {
        let (status, body) = get(port, "/metrics", &[("Authorization", &auth)]);
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    };
    let success = |m: &Metrics, collector: &str| {
        m.value(
            "greenplum_exporter_collector_success",
            &[("collector", collector)],
        )
    };
    let wait = |what: &str, check: &dyn Fn(&Metrics) -> bool| {
        let deadline = Instant::now() + GUARD;
        loop {
            let m = scrape();
            if check(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "never {what}:\n{}", m.body);
            std::thread::sleep(Duration::from_millis(300));
        }
    };

    // Without pg_monitor: segments are read, replication fails rather than lie.
    let before = wait("up with segments read", &|m| {
        m.is("greenplum_up", &[], 1.0) && success(m, "segments") == Some(1.0)
    });
    assert_eq!(success(&before, "standby"), Some(0.0), "{}", before.body);
    let mut check_args = vec!["check".to_string()];
    check_args.extend(db_flags(&lab, &password_file));
    let check: Output = Command::new(BIN)
        .args(&check_args)
        .env_remove("PGPASSWORD")
        .output()
        .expect("check");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        report.contains("pg_monitor"),
        "check does not name the grant:\n{report}"
    );

    // Unauthenticated and wrongly authenticated scrapes are refused.
    let (status, _) = get(port, "/metrics", &[]);
    assert_eq!(status, 401);
    let (status, _) = get(
        port,
        "/metrics",
        &[("Authorization", &basic("prometheus", "wrong"))],
    );
    assert_eq!(status, 401);

    // The grant the documentation asks for: replication is reported by the same process.
    lab.query_catalog(&format!("GRANT pg_monitor TO {ROLE}"))
        .expect("grant");
    let after = wait("standby and replication readable", &|m| {
        success(m, "standby") == Some(1.0) && success(m, "replication") == Some(1.0)
    });

    let log = exporter.log();
    assert!(log.contains("TRACE"), "not a trace-level log:\n{log}");
    let argv = cmdline(exporter.child.id());
    assert_absent(
        &[
            ("database password", &db_password),
            ("basic-auth password", &web_password),
        ],
        &[
            ("the trace log", &log),
            ("/metrics before the grant", &before.body),
            ("/metrics after the grant", &after.body),
            ("the check report", &report),
            ("/proc/<pid>/cmdline", &argv),
        ],
    );
}

/// No flag takes a password, and credentials written into an endpoint (`user:pw@host:port`
/// or a URL) are refused with a clear error that does not echo them.
#[test]
fn passwords_in_flags_or_endpoints_are_refused_without_echo() {
    let output = Command::new(BIN)
        .args(["check", "--db.password", "S3cr3t-flag"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unexpected argument"));
    for endpoint in [
        "gpmon:S3cr3t-endpoint@cdw:5432",
        "postgres://gpmon:S3cr3t-endpoint@cdw:5432/postgres",
        "gpmon@cdw:5432",
    ] {
        let output = Command::new(BIN)
            .args(["check", "--coordinator", endpoint])
            .output()
            .expect("run");
        assert!(!output.status.success(), "{endpoint} accepted");
        let text = String::from_utf8_lossy(&output.stderr);
        assert!(
            text.contains("credentials never go in an endpoint"),
            "{text}"
        );
        assert!(!text.contains("S3cr3t"), "the password is echoed: {text}");
    }
    let output = Command::new(BIN)
        .args(["check", "--coordinator", "postgres://cdw:5432"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("a URL is not an endpoint"));
}

/// TLS from `--web.config.file`, log at `trace`: the private key's contents reach neither the
/// log nor argv, also when a plain-HTTP client makes the handshake fail.
#[test]
fn tls_private_key_stays_out_of_logs_and_argv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed certificate");
    let key_pem = certified.signing_key.serialize_pem();
    std::fs::write(dir.path().join("tls.crt"), certified.cert.pem()).expect("cert");
    std::fs::write(dir.path().join("tls.key"), &key_pem).expect("key");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n",
    )
    .expect("web config");
    let port = free_port();
    let args = vec![
        format!("--coordinator=127.0.0.1:{}", free_port()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--web.config.file={}", web.display()),
        "--log.level=trace".to_string(),
    ];
    let mut exporter = Process::spawn(&args, &dir.path().join("exporter.log"));
    exporter.wait_log("serving metrics");
    let (status, _) = get(port, "/metrics", &[]);
    assert_eq!(status, 0, "plain HTTP got an HTTP answer from the TLS port");
    std::thread::sleep(Duration::from_millis(300));
    let argv = cmdline(exporter.child.id());
    let log = exporter.log();
    assert!(log.contains("serving metrics"), "{log}");
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let line = key_pem.lines().nth(1).expect("a key line").to_string();
    assert_absent(
        &[("private key", &body), ("private key line", &line)],
        &[("the trace log", &log), ("/proc/<pid>/cmdline", &argv)],
    );
}
