//! The remediator's claims in SECURITY.md, each proven against the real binary: secrets stay
//! out of argv, logs, `/metrics`, the API and the journal; approvals need credentials, name
//! who approved and hold only for the plan they approved; the kill switch stops an approved
//! action; a policy cannot express a command; the ssh shim runs exactly what the executor
//! sends for the closed set and nothing else; everything executed is in the journal.

mod common;
#[path = "common/security.rs"]
mod security_helpers;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use common::*;
use greenplum_remediator::actions::{ActionKind, ArgvInputs};
use greenplum_remediator::executor::ssh::SshExecutor;
use security_helpers::*;
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run the binary")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// There is no flag that takes a secret, and a password smuggled into the journal's URL is
/// refused before anything starts, without being echoed.
#[test]
fn secrets_are_never_flags_and_a_password_in_a_url_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = minimal_policy(dir.path());
    let policy_flag = format!("--policy={}", policy.display());
    for flag in [
        "--auth.token=S3cr3t-flag",
        "--auth.basic-password=S3cr3t-flag",
        "--journal.password=S3cr3t-flag",
        "--db.password=S3cr3t-flag",
        "--password=S3cr3t-flag",
    ] {
        let output = run(&["serve", &policy_flag, flag]);
        assert_eq!(output.status.code(), Some(2), "{flag} was accepted");
        assert!(stderr(&output).contains("unexpected argument"), "{flag}");
    }
    for flag in ["--token=S3cr3t-flag", "--auth.token=S3cr3t-flag"] {
        let output = run(&["pause", "--reason=x", flag]);
        assert_eq!(output.status.code(), Some(2), "CLI took {flag}");
    }
    for url in [
        "postgres://remediator:S3cr3t-url@127.0.0.1:1/journal",
        "host=127.0.0.1 port=1 user=remediator password=S3cr3t-url dbname=journal",
    ] {
        let output = run(&[
            "serve",
            &policy_flag,
            &format!("--web.listen-address=127.0.0.1:{}", free_port()),
            &format!("--journal.url={url}"),
        ]);
        assert!(!output.status.success(), "{url} was accepted");
        let text = stderr(&output);
        assert!(
            text.contains("holds a password") && text.contains("--journal.password-file"),
            "{text}"
        );
        assert!(
            !text.contains("S3cr3t-url"),
            "the password is echoed: {text}"
        );
    }
}

/// Listening beyond loopback with no authentication configured is refused at start (the
/// webhook and the approval API would be open to the network) unless `--insecure-no-auth`.
#[test]
fn serving_beyond_loopback_without_authentication_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = minimal_policy(dir.path());
    let output = Command::new(BIN)
        .arg("serve")
        .arg(format!("--policy={}", policy.display()))
        .arg(format!("--web.listen-address=0.0.0.0:{}", free_port()))
        .arg(format!(
            "--journal.path={}",
            dir.path().join("j.db").display()
        ))
        .env_remove("GREENPLUM_REMEDIATOR_TOKEN_FILE")
        .output()
        .expect("run");
    assert!(!output.status.success(), "served without authentication");
    let text = stderr(&output);
    assert!(
        text.contains("refusing to serve") && text.contains("--auth.token-file"),
        "{text}"
    );
    assert!(
        !dir.path().join("j.db").exists(),
        "the journal was opened before the refusal"
    );
}

fn check_policy(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, text).expect("policy");
    let output = run(&["check-policy", &path.display().to_string()]);
    assert!(
        !output.status.success(),
        "policy {name} was accepted:\n{text}"
    );
    stderr(&output)
}

/// `check-policy` refuses every way of writing a command into a policy, naming the line:
/// unknown keys (`command:`, `argv:`, `shell:`, `exec:`) at every level, an action outside
/// the closed set, and an ssh "prefix" that is another program or an ssh option that runs
/// one (`ProxyCommand`, `LocalCommand`, `-F` config files).
#[test]
fn check_policy_refuses_free_form_commands_with_their_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let valid = "clusters:\n  - name: gp\n    endpoints: ['mdw:5432']\n    executor:\n      local:\n        env: {PATH: /bin}\nrules:\n  - name: r\n    match: {alertname: A}\n    action: recover\n    approval: auto\n";
    let path = dir.path().join("valid.yml");
    std::fs::write(&path, valid).expect("policy");
    let output = run(&["check-policy", &path.display().to_string()]);
    assert!(output.status.success(), "{}", stderr(&output));

    // (name, policy text, line the error must name, word the error must name)
    let cases: Vec<(&str, String, u32, &str)> = vec![
        (
            "rule-command",
            valid.replace("approval: auto\n", "approval: auto\n    command: rm -rf /\n"),
            12,
            "command",
        ),
        (
            "rule-argv",
            valid.replace("approval: auto\n", "approval: auto\n    argv: [bash, -c, id]\n"),
            12,
            "argv",
        ),
        (
            "cluster-shell",
            valid.replace("    executor:\n", "    shell: /bin/sh\n    executor:\n"),
            4,
            "shell",
        ),
        (
            "executor-exec",
            valid.replace("        env:", "        exec: /tmp/x\n        env:"),
            6,
            "exec",
        ),
        (
            "unknown-action",
            valid.replace("action: recover", "action: run_command"),
            10,
            "run_command",
        ),
        (
            "ssh-prefix-is-a-shell",
            valid.replace(
                "      local:\n        env: {PATH: /bin}\n",
                "      ssh:\n        argv_prefix: [/bin/sh, -c, 'curl x | sh', '--']\n        user: gpadmin\n",
            ),
            2,
            "/bin/sh",
        ),
        (
            "ssh-proxycommand",
            valid.replace(
                "      local:\n        env: {PATH: /bin}\n",
                "      ssh:\n        argv_prefix: [/usr/bin/ssh, -o, 'ProxyCommand=sh -c id']\n        user: gpadmin\n",
            ),
            2,
            "ProxyCommand",
        ),
        (
            "ssh-config-file",
            valid.replace(
                "      local:\n        env: {PATH: /bin}\n",
                "      ssh:\n        argv_prefix: [/usr/bin/ssh, -F, /tmp/config]\n        user: gpadmin\n",
            ),
            2,
            "-F",
        ),
    ];
    for (name, text, line, word) in cases {
        let error = check_policy(dir.path(), name, &text);
        assert!(
            error.contains(&format!("line {line}")) && error.contains(word),
            "{name}: expected line {line} naming {word:?}, got: {error}"
        );
    }
}

/// Fake `sudo` (records its argv) and `logger` for the shim.
struct Shim {
    dir: tempfile::TempDir,
}

impl Shim {
    fn new() -> Shim {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        let sudo = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n",
            dir.path().join("sudo.argv").display()
        );
        for (name, text) in [("sudo", sudo.as_str()), ("logger", "#!/bin/sh\nexit 0\n")] {
            let path = bin.join(name);
            std::fs::write(&path, text).expect("fake");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Shim { dir }
    }

    fn path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/ssh/greenplum-remediation-shim")
    }

    /// Runs the shim as sshd would for `line`; (exit code, argv sudo got if it ran).
    fn run(&self, line: &str) -> (Option<i32>, Option<Vec<String>>) {
        let recorded = self.dir.path().join("sudo.argv");
        let _ = std::fs::remove_file(&recorded);
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let status = Command::new("sh")
            .arg(Shim::path())
            .env("SSH_ORIGINAL_COMMAND", line)
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the shim");
        let argv = std::fs::read_to_string(&recorded)
            .ok()
            .map(|t| t.lines().map(str::to_string).collect());
        (status.code(), argv)
    }
}

/// The remote line of the ssh executor's argv (what sshd hands to the forced command).
fn remote_line(executor: &SshExecutor, argv: &[String]) -> String {
    let full = executor.argv("cdw", argv, &BTreeMap::new());
    assert_eq!(&full[..2], ["/usr/bin/ssh", "-o"], "{full:?}");
    full.last().expect("remote line").clone()
}

/// `deploy/ssh/test-shim.sh` passes, and the shim accepts exactly what the ssh executor
/// sends for each action of the closed set (running it as gpadmin with only the policy's
/// environment), refuses other commands in the same format, and never evaluates shell
/// syntax inside a value.
#[test]
fn ssh_shim_runs_exactly_the_closed_set_the_executor_sends() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/ssh/test-shim.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run test-shim.sh");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains(" 0 failed"),
        "{text}{}",
        stderr(&output)
    );

    let shim = Shim::new();
    let pwned = shim.dir.path().join("pwned");
    let env: BTreeMap<String, String> = [
        ("COORDINATOR_DATA_DIRECTORY", "/data/c/gpseg-1".to_string()),
        ("PGPORT", format!("5432'; touch {}; '", pwned.display())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let executor = SshExecutor::new(&["/usr/bin/ssh".to_string()], "greenplum-remediator", &env);
    let inputs = ArgvInputs {
        standby_host: Some("scdw"),
        standby_datadir: Some("/data/standby/gpseg-1"),
    };
    for action in ActionKind::ALL {
        let argv = action.argv(&inputs).expect("argv");
        let (code, sudo) = shim.run(&remote_line(&executor, &argv));
        assert_eq!(code, Some(0), "{action}: refused");
        let mut expected: Vec<String> = ["-n", "-u", "gpadmin", "--", "env", "-i"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        expected.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        expected.extend(argv.iter().cloned());
        assert_eq!(sudo, Some(expected), "{action}");
        assert!(!pwned.exists(), "{action}: a value was evaluated");
    }
    for argv in [
        &["gprecoverseg", "-a", "-i", "/tmp/config"][..],
        &["bash", "-c", "id"],
        &["gpactivatestandby", "-a", "-d", "/data/standby", "-f"],
        &["gpinitstandby", "-r", "-a"],
        &["gpstop", "-af"],
        &["sh", "-c", "touch /tmp/x"],
    ] {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let (code, sudo) = shim.run(&remote_line(&executor, &argv));
        assert_eq!(code, Some(126), "{argv:?} was not refused");
        assert_eq!(sudo, None, "{argv:?} reached sudo");
    }
    code_locating_variables_must_name_trusted_directories(&shim);
}

/// PATH, GPHOME, LD_LIBRARY_PATH, PYTHONPATH, PYTHONHOME and HOME choose which code the
/// tools load: the shim takes them only when every directory (and each parent) is owned by
/// root or gpadmin and writable by no one else, so a stolen key cannot point gpadmin's
/// `gprecoverseg` at its own Python modules.
fn code_locating_variables_must_name_trusted_directories(shim: &Shim) {
    use std::os::unix::fs::PermissionsExt;
    let open = shim.dir.path().join("open");
    let inner = open.join("lib");
    std::fs::create_dir_all(&inner).expect("dirs");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let argv: Vec<String> = vec!["gprecoverseg".into(), "-a".into()];
    let line = |name: &str, value: &str| {
        let env: BTreeMap<String, String> = [(name.to_string(), value.to_string())].into();
        remote_line(
            &SshExecutor::new(&["/usr/bin/ssh".to_string()], "greenplum-remediator", &env),
            &argv,
        )
    };
    let (code, sudo) = shim.run(&line("PATH", "/usr/bin:/bin"));
    assert_eq!(code, Some(0), "a root-owned PATH was refused");
    assert!(sudo.is_some_and(|a| a.contains(&"PATH=/usr/bin:/bin".to_string())));
    for (name, value) in [
        ("PATH", format!("{}:/usr/bin", open.display())),
        ("PYTHONPATH", inner.display().to_string()),
        ("LD_LIBRARY_PATH", "lib".to_string()),
        ("GPHOME", "/nonexistent".to_string()),
        ("HOME", "/tmp".to_string()),
        ("PYTHONHOME", format!("/usr:{}", inner.display())),
    ] {
        let (code, sudo) = shim.run(&line(name, &value));
        assert_eq!(code, Some(126), "{name}={value} was not refused");
        assert_eq!(sudo, None, "{name}={value} reached sudo");
    }
}

/// The local executor starts a tool with a cleared environment: only the policy's allowlisted
/// values (and allowlisted `pass_env` names) reach it. Nothing else of the remediator's own
/// environment (here everything cargo sets for a test), no `LD_PRELOAD` and no
/// `GREENPLUM_REMEDIATOR_JOURNAL_PASSWORD`, even when a spec or `pass_env` asks for them.
#[test]
fn local_executor_passes_only_the_allowlisted_environment() {
    use greenplum_remediator::executor::{CommandSpec, Executor, LocalExecutor};
    let dir = tempfile::tempdir().expect("tempdir");
    let env: BTreeMap<String, String> = [
        ("PATH", "/usr/bin:/bin"),
        ("PGPORT", "5432"),
        ("LD_PRELOAD", "/tmp/evil.so"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let pass_env: Vec<String> = ["HOME", "LD_PRELOAD", "CARGO_MANIFEST_DIR"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let executor = LocalExecutor::new(&env, &pass_env);
    let spec = CommandSpec {
        argv: vec!["/usr/bin/env".into()],
        env: [
            ("GREENPLUM_REMEDIATOR_JOURNAL_PASSWORD", "S3cr3t-env"),
            ("LD_PRELOAD", "/tmp/evil.so"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        host: None,
        log_path: dir.path().join("env.log"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = runtime.block_on(async {
        let started = executor.start(&spec).await.expect("start /usr/bin/env");
        started
            .child
            .expect("our child")
            .wait()
            .await
            .expect("wait")
    });
    assert!(status.success());
    let output = std::fs::read_to_string(&spec.log_path).expect("output");
    let names: std::collections::BTreeSet<&str> = output
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    let mut expected: std::collections::BTreeSet<&str> = ["PATH", "PGPORT"].into();
    if std::env::var_os("HOME").is_some() {
        expected.insert("HOME");
    }
    assert_eq!(names, expected, "{output}");
    assert!(!output.contains("S3cr3t-env"));
}

/// Spawns `serve` with TLS and `RUST_LOG=trace`; the private key's contents never reach the
/// log or argv (only its path does).
#[test]
fn tls_private_key_stays_out_of_logs_and_argv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed certificate");
    let key_pem = certified.signing_key.serialize_pem();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, &key_pem).expect("key");
    let token = dir.path().join("token");
    let token_value = unique_secret("tls-token");
    std::fs::write(&token, &token_value).expect("token");
    let policy = minimal_policy(dir.path());
    let address = format!("127.0.0.1:{}", free_port());
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg(format!("--policy={}", policy.display()))
        .arg(format!("--web.listen-address={address}"))
        .arg(format!(
            "--journal.path={}",
            dir.path().join("j.db").display()
        ))
        .arg(format!("--auth.token-file={}", token.display()))
        .arg(format!("--web.tls-cert-file={}", cert.display()))
        .arg(format!("--web.tls-key-file={}", key.display()))
        .env("RUST_LOG", "trace")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn");
    wait_for("the TLS listener", || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            panic!("greenplum-remediator exited ({status}):\n{text}");
        }
        text.contains("greenplum-remediator listening")
            .then_some(())
    });
    // A plain-HTTP client makes the TLS layer fail and log its error paths too.
    if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
        let _ = stream.write_all(
            format!("GET /metrics HTTP/1.1\r\nAuthorization: Bearer {token_value}\r\n\r\n")
                .as_bytes(),
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let argv = cmdline(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let log_text = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        log_text.contains("greenplum-remediator listening"),
        "{log_text}"
    );
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let first_line = key_pem.lines().nth(1).expect("a key line").to_string();
    assert_absent(
        &[("private key", &body), ("private key line", &first_line)],
        &[("the trace log", &log_text), ("argv", &argv)],
    );
    assert_absent(&[("token", &token_value)], &[("argv", &argv)]);
}

/// A policy for a catalog-only lab whose reads log in as `role` with a password file.
fn secrets_policy(dir: &Path, port: u16, role: &str, password_file: &Path) -> PathBuf {
    let coordinator_dir = dir.join("coordinator");
    std::fs::create_dir_all(&coordinator_dir).expect("coordinator dir");
    let text = format!(
        r#"clusters:
  - name: gp-secrets
    endpoints: ['127.0.0.1:{port}']
    user: {role}
    password_file: {password_file}
    executor:
      local:
        env:
          PATH: /usr/bin:/bin
          COORDINATOR_DATA_DIRECTORY: {coordinator}
rules:
  - name: recover
    match: {{alertname: GreenplumSegmentDown, labels: ['remediation="recover"']}}
    action: recover
    approval: auto
"#,
        password_file = password_file.display(),
        coordinator = coordinator_dir.display(),
    );
    let path = dir.join("policy.yml");
    std::fs::write(&path, text).expect("policy");
    path
}

fn basic_header(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// With every secret in use at once (webhook token, basic-auth password, the catalog
/// password file, the PostgreSQL journal's password) and logging at `trace`, none of them
/// appears in the log, `/metrics`, the API's JSON, the journal's tables, the run directory
/// or `/proc/<pid>/cmdline`.
#[test]
fn secrets_stay_out_of_logs_metrics_api_journal_and_argv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = gplab::Lab::catalog_only(2, gplab::Flavor::Gp6).expect("catalog lab");
    let port = lab.coordinator_port();
    let reader_password = unique_secret("reader");
    let journal_password = unique_secret("journal");
    let basic_password = unique_secret("basic");
    password_role(
        port,
        &lab.coordinator_datadir(),
        "remediator_reader",
        &reader_password,
        "",
    );
    password_role(
        port,
        &lab.coordinator_datadir(),
        "remediator_journal",
        &journal_password,
        "",
    );
    superuser(port, "postgres")
        .batch_execute("CREATE DATABASE remediator_journal OWNER remediator_journal")
        .expect("journal database");
    let write_secret = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{value}\n")).expect("secret file");
        path
    };
    let reader_file = write_secret("reader.password", &reader_password);
    let journal_file = write_secret("journal.password", &journal_password);
    let basic_file = write_secret("basic.password", &basic_password);
    let policy = secrets_policy(dir.path(), port, "remediator_reader", &reader_file);

    let mut config = ServeConfig::new(dir.path(), &policy);
    config.extra = vec![
        format!("--journal.url=postgres://remediator_journal@127.0.0.1:{port}/remediator_journal"),
        format!("--journal.password-file={}", journal_file.display()),
        "--auth.basic-user=alertmanager".into(),
        format!("--auth.basic-password-file={}", basic_file.display()),
        "--planner.sweep-interval=1s".into(),
    ];
    config.env = vec![("RUST_LOG".into(), "trace".into())];
    let remediator = Remediator::start(config);
    let token = remediator.config.token.clone();

    // One delivery with the token, one with basic auth, and refused ones with wrong values.
    let spec = |fingerprint| AlertSpec {
        cluster: "gp-secrets",
        status: "firing",
        starts_at: "2026-11-21T16:27:55Z",
        fingerprint,
        extra_labels: vec![],
    };
    assert_eq!(
        remediator.post_alerts(&payload(&spec("5ec0000000000001"))),
        202
    );
    let agent = ureq::agent();
    let basic = agent
        .post(&remediator.url("/api/v1/alerts"))
        .set("Content-Type", "application/json")
        .set(
            "Authorization",
            &basic_header("alertmanager", &basic_password),
        )
        .send_string(&payload(&spec("5ec0000000000002")).to_string())
        .expect("basic-auth delivery");
    assert_eq!(basic.status(), 202);
    let wrong = agent
        .post(&remediator.url("/api/v1/alerts"))
        .set("Content-Type", "application/json")
        .set("Authorization", &basic_header("alertmanager", "wrong"))
        .send_string("{}");
    assert!(matches!(wrong, Err(ureq::Error::Status(403, _))));
    remediator.cli(&["pause", "--reason", "secrets test"]);
    remediator.cli(&["resume", "--reason", "secrets test"]);

    // Both events are decided on a catalog read that logged in with the password: a healthy
    // cluster is a recorded no-op (a failed login would be refused by the `catalog` gate).
    let actions = wait_for("both events planned and finished", || {
        let actions = remediator.actions();
        let done = !actions.is_empty()
            && actions
                .iter()
                .all(|a| TERMINAL.contains(&a["state"].as_str().unwrap_or("")));
        done.then_some(actions)
    });
    for action in &actions {
        assert_eq!(
            action["state"],
            "no_op",
            "{action:#}\n{}",
            remediator.log_tail()
        );
    }

    let pid = remediator.pid().expect("pid");
    let argv = cmdline(pid);
    let metrics = ureq::get(&remediator.url("/metrics"))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    let mut api = remediator.get("/api/v1/actions").to_string();
    for action in &actions {
        let id = action["id"].as_i64().expect("id");
        api.push_str(&remediator.action(id).to_string());
    }
    let journal = database_text(port, "remediator_journal");
    assert!(
        journal.contains("5ec0000000000001") && journal.contains("secrets test"),
        "the journal was not read: {journal}"
    );
    let log = std::fs::read_to_string(remediator.config.log_file()).expect("log");
    assert!(log.contains("listening"), "{log}");
    let runs = files_text(&dir.path().join("runs"));
    assert_absent(
        &[
            ("webhook token", &token),
            ("basic-auth password", &basic_password),
            ("catalog password", &reader_password),
            ("journal password", &journal_password),
        ],
        &[
            ("the trace log", &log),
            ("/metrics", &metrics),
            ("the API's JSON", &api),
            ("the journal", &journal),
            ("the run directory", &runs),
            ("/proc/<pid>/cmdline", &argv),
        ],
    );
}

const CLUSTER: &str = "gp-approvals";

/// The CLI as an operator named `who` runs it; the output, success or not.
fn cli_as(remediator: &Remediator, who: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg(format!("--url=http://{}", remediator.config.address))
        .arg(format!(
            "--auth.token-file={}",
            remediator.config.token_file().display()
        ))
        .arg(format!("--who={who}"))
        .output()
        .expect("run the CLI")
}

fn approve(remediator: &Remediator, who: &str, id: i64, why: &str) -> Output {
    cli_as(
        remediator,
        who,
        &["actions", "approve", &id.to_string(), "--reason", why],
    )
}

fn last_detail(action: &Value) -> Value {
    let history = action["history"].as_array().expect("history");
    history.last().expect("a state")["detail"].clone()
}

fn firing(fingerprint: &'static str, starts_at: &'static str) -> Value {
    payload(&AlertSpec {
        cluster: CLUSTER,
        status: "firing",
        starts_at,
        fingerprint,
        extra_labels: vec![],
    })
}

/// On a live lab, with `approval: required`:
/// 1. approvals without credentials (401), with a wrong token or wrong basic auth (403) change
///    nothing: no approval row, the action still waits, nothing runs;
/// 2. an approval is bound to the plan: after another failure changed the catalog, approving
///    the old plan refuses it (`plan_changed`), approving it again is a conflict (409), and
///    the new plan waits for its own approval;
/// 3. the kill switch refuses an approved plan;
/// 4. an approved plan runs exactly `gprecoverseg -a`, and the journal holds who approved,
///    who paused and resumed, what ran and when.
#[test]
fn approvals_are_authenticated_attributed_and_bound_to_the_plan() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = lab_up(2);
    let wrap = ToolWrap::install(dir.path(), &lab.bin_dir());
    let policy = write_lab_policy(dir.path(), CLUSTER, &lab, &wrap, RECOVER_WITH_APPROVAL);
    let remediator = Remediator::start(ServeConfig::new(dir.path(), &policy));
    let journal = JournalReader::open(&remediator.config.journal);

    lab.fail_primary(0).expect("fail primary 0");
    wait_failed_over(&lab, 0);
    assert_eq!(
        remediator.post_alerts(&firing("a990000000000001", "2026-11-21T16:00:00Z")),
        202
    );
    let first = remediator.wait_new_action(0, &["awaiting_approval"]);
    let first_id = first["id"].as_i64().expect("id");
    let approve_path = format!("/api/v1/actions/{first_id}/approve");
    let decision = r#"{"who": "mallory", "why": "let me in"}"#;

    // 1. Unauthenticated and wrongly authenticated approvals.
    assert_eq!(
        remediator.post_raw(&approve_path, None, "application/json", decision),
        401
    );
    assert_eq!(
        remediator.post_raw(
            &approve_path,
            Some("not-the-token"),
            "application/json",
            decision
        ),
        403
    );
    let basic = ureq::post(&remediator.url(&approve_path))
        .set("Authorization", &basic_header("admin", "admin"))
        .send_string(decision);
    assert!(
        matches!(basic, Err(ureq::Error::Status(401 | 403, _))),
        "{basic:?}"
    );
    let output = Command::new(BIN)
        .args(["actions", "approve", &first_id.to_string(), "--reason=x"])
        .arg(format!("--url=http://{}", remediator.config.address))
        .arg("--who=mallory")
        .env_remove("GREENPLUM_REMEDIATOR_TOKEN_FILE")
        .output()
        .expect("CLI");
    assert!(!output.status.success());
    assert!(stderr(&output).contains("401"), "{}", stderr(&output));
    assert_eq!(journal.count("SELECT COUNT(*) FROM approvals"), 0);
    assert_eq!(
        remediator.action(first_id)["state"],
        "awaiting_approval",
        "a refused approval changed the action"
    );
    assert!(wrap.invocations().is_empty(), "something ran");

    // 2. The catalog changes (another failure): the approved plan is stale.
    lab.fail_primary(1).expect("fail primary 1");
    wait_failed_over(&lab, 1);
    let output = approve(&remediator, "alice", first_id, "looked at plan 1");
    assert!(output.status.success(), "{}", stderr(&output));
    let stale = remediator.wait_action_state(first_id, TERMINAL);
    assert_eq!(stale["state"], "refused", "{stale:#}");
    assert_eq!(last_detail(&stale)["gate"], "plan_changed", "{stale:#}");
    assert_eq!(stale["approvals"][0]["who"], "alice");
    let again = approve(&remediator, "alice", first_id, "once more");
    assert!(!again.status.success());
    assert!(stderr(&again).contains("409"), "{}", stderr(&again));
    assert!(wrap.invocations().is_empty(), "a stale plan ran");

    // The new plan (both failed primaries) waits for its own approval.
    assert_eq!(
        remediator.post_alerts(&firing("a990000000000001", "2026-11-21T16:05:00Z")),
        202
    );
    let second = remediator.wait_new_action(1, &["awaiting_approval"]);
    let second_id = second["id"].as_i64().expect("id");
    assert_ne!(second["targets"], first["targets"], "{second:#}");
    assert!(wrap.invocations().is_empty());

    // 3. Paused: an approved plan is refused by the kill switch.
    let output = cli_as(&remediator, "carol", &["pause", "--reason", "maintenance"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = approve(&remediator, "alice", second_id, "looked at plan 2");
    assert!(output.status.success(), "{}", stderr(&output));
    let paused = remediator.wait_action_state(second_id, TERMINAL);
    assert_eq!(paused["state"], "refused", "{paused:#}");
    assert_eq!(last_detail(&paused)["gate"], "paused", "{paused:#}");
    assert!(wrap.invocations().is_empty(), "ran while paused");
    let output = cli_as(&remediator, "carol", &["resume", "--reason", "done"]);
    assert!(output.status.success(), "{}", stderr(&output));

    // 4. Approved on an unchanged catalog: runs exactly once, exactly the closed argv.
    assert_eq!(
        remediator.post_alerts(&firing("a990000000000001", "2026-11-21T16:10:00Z")),
        202
    );
    let third = remediator.wait_new_action(2, &["awaiting_approval"]);
    let third_id = third["id"].as_i64().expect("id");
    let output = approve(&remediator, "alice", third_id, "looked at plan 3");
    assert!(output.status.success(), "{}", stderr(&output));
    let done = remediator.wait_action_ends(third_id, "succeeded");
    assert_eq!(wrap.invocations(), vec!["-a".to_string()]);
    assert_eq!(
        done["execution"]["argv"],
        serde_json::json!(["gprecoverseg", "-a"])
    );

    // The audit trail: who approved what, who paused and resumed, what ran and when.
    assert_eq!(
        journal.count(&format!(
            "SELECT COUNT(*) FROM approvals WHERE who = 'alice' AND decision = 'approve'
             AND action_id IN ({first_id}, {second_id}, {third_id})"
        )),
        3
    );
    assert_eq!(
        journal.count(
            "SELECT COUNT(*) FROM controls WHERE who = 'carol' AND kind IN ('pause', 'resume')"
        ),
        2
    );
    assert_eq!(journal.executions(), 1);
    assert_eq!(
        journal.count(&format!(
            "SELECT COUNT(*) FROM executions WHERE action_id = {third_id}
             AND started_at <> '' AND record LIKE '%gprecoverseg%'"
        )),
        1
    );
    assert!(done["execution"]["started_at"].is_string(), "{done:#}");
    wait_all_synchronized(&lab);

    // A command really ran: its output file and the SQLite journal's bytes (with its WAL)
    // hold no trace of the token either.
    let runs = files_text(&dir.path().join("runs"));
    assert!(runs.contains("gprecoverseg"), "no command output: {runs}");
    let journal_path = remediator.config.journal.display().to_string();
    let sqlite: String = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::read(format!("{journal_path}{suffix}")).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect();
    assert!(sqlite.contains("alice"), "the journal file was not read");
    assert_absent(
        &[("webhook token", &remediator.config.token)],
        &[
            ("the run directory", &runs),
            ("the SQLite journal", &sqlite),
        ],
    );
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The service creates nothing every user can read, whatever umask it was started with
/// (here the test's, 0022): umask 0027, the SQLite journal (and the -wal, -shm files SQLite
/// gives its mode) 0600, the run directory 0700, the disk reserve without access for others.
/// A journal and run directory created earlier with wider modes are tightened at start.
#[test]
fn the_journal_and_run_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = minimal_policy(dir.path());
    let mut remediator = Remediator::start(ServeConfig::new(dir.path(), &policy));
    let pid = remediator.pid().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["Umask:", "0027"])),
        "{status}"
    );
    // A delivery makes SQLite write its WAL.
    let body = payload(&AlertSpec {
        cluster: "gp-elsewhere",
        status: "firing",
        starts_at: "2026-11-21T16:27:55Z",
        fingerprint: "f11e000000000001",
        extra_labels: vec![],
    });
    assert_eq!(remediator.post_alerts(&body), 202);
    let journal = remediator.config.journal.clone();
    let runs = dir.path().join("runs");
    assert_eq!(mode(&journal), 0o600);
    assert_eq!(mode(&runs), 0o700);
    let mut seen = 0;
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("journal.db") {
            seen += 1;
            assert_eq!(mode(&path) & 0o007, 0, "{name}: {:04o}", mode(&path));
            if name != "journal.db-reserve" {
                assert_eq!(mode(&path), 0o600, "{name}");
            }
        }
    }
    assert!(seen >= 3, "journal, WAL and reserve were not all found");

    // Loosened by hand (or created by an older version): tightened at the next start.
    remediator.kill();
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    remediator.restart();
    assert_eq!(mode(&journal), 0o600);
    assert_eq!(mode(&runs), 0o700);
    let log = std::fs::read_to_string(remediator.config.log_file()).expect("log");
    assert!(log.contains("tightening permissions"), "{log}");
}
