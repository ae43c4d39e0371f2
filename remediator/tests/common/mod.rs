//! Harness for integration tests: the real `greenplum-remediator serve` binary as a child
//! process, its HTTP API, its journal read from the outside, Alertmanager payloads built
//! from the recorded deliveries, and a lab whose `gprecoverseg` is counted and can be held.
#![allow(dead_code)]

pub mod disk;
pub mod proxy;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Upper bound of every wait: a guard against hanging, never a speed assertion.
pub const GUARD: Duration = Duration::from_secs(180);

pub const BIN: &str = env!("CARGO_BIN_EXE_greenplum-remediator");

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// Polls `check` every 200 ms until it yields a value; panics with `what` after `GUARD`.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + GUARD;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Action states after which nothing more happens to an action.
pub const TERMINAL: &[&str] = &[
    "succeeded",
    "failed",
    "no_op",
    "refused",
    "rejected",
    "expired",
    "dry_run",
];

/// The policy rule most lab tests heal with: a down segment labelled for recovery is
/// recovered without approval. Indented to sit under `rules:`.
pub const RECOVER_DOWN_SEGMENTS: &str = r#"  - name: recover-down-segments
    match:
      alertname: GreenplumSegmentDown
      labels: ['remediation="recover"']
    action: recover
    approval: auto
"#;

/// The same rule with a person's approval required.
pub const RECOVER_WITH_APPROVAL: &str = r#"  - name: recover-with-approval
    match:
      alertname: GreenplumSegmentDown
      labels: ['remediation="recover"']
    action: recover
    approval: required
"#;

/// What a finished process printed, stdout then stderr.
pub fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Writes `dir/policy.yml`: one cluster `gp` at port 1 (nothing there) and no rules, for
/// tests that end at start-up checks or never reach a cluster.
pub fn minimal_policy(dir: &Path) -> PathBuf {
    let path = dir.join("policy.yml");
    fs::write(
        &path,
        "clusters:\n  - name: gp\n    endpoints: ['127.0.0.1:1']\n    executor: {local: {env: {PATH: /bin}}}\nrules: []\n",
    )
    .expect("policy");
    path
}

/// Writes `dir/policy.yml`: cluster `gp-test` on a free port nobody listens on, with an
/// auto `recover` rule. The lanes' catalog reads fail; the HTTP surface still works, which
/// is all the webhook and bad-input tests need.
pub fn unreachable_cluster_policy(dir: &Path) -> PathBuf {
    let text = format!(
        r#"clusters:
  - name: gp-test
    endpoints: ['127.0.0.1:{port}']
    executor:
      local:
        env: {{PATH: /usr/bin:/bin}}
rules:
  - name: recover
    match: {{alertname: GreenplumSegmentDown, labels: ['remediation="recover"']}}
    action: recover
    approval: auto
"#,
        port = free_port()
    );
    let path = dir.join("policy.yml");
    fs::write(&path, text).expect("policy");
    path
}

/// How a remediator process is started; kept so it can be restarted identically.
#[derive(Clone)]
pub struct ServeConfig {
    pub dir: PathBuf,
    pub policy: PathBuf,
    pub address: String,
    pub token: String,
    /// `--journal.path` (SQLite) unless `extra` selects another journal.
    pub journal: PathBuf,
    pub extra: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Name used for the log file (`<dir>/<name>.log`).
    pub name: String,
}

impl ServeConfig {
    /// A remediator in `dir` with a SQLite journal, a bearer token and a free port.
    pub fn new(dir: &Path, policy: &Path) -> Self {
        ServeConfig {
            dir: dir.to_path_buf(),
            policy: policy.to_path_buf(),
            address: format!("127.0.0.1:{}", free_port()),
            token: format!("test-token-{}-{}", std::process::id(), free_port()),
            journal: dir.join("journal.db"),
            extra: Vec::new(),
            env: Vec::new(),
            name: "remediator".into(),
        }
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.join(format!("{}.token", self.name))
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name))
    }
}

/// A running `greenplum-remediator serve`. Dropping it kills the process.
pub struct Remediator {
    pub config: ServeConfig,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl Remediator {
    pub fn start(config: ServeConfig) -> Remediator {
        fs::write(config.token_file(), format!("{}\n", config.token)).expect("token file");
        let mut remediator = Remediator {
            child: None,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            config,
        };
        remediator.spawn();
        remediator
    }

    fn spawn(&mut self) {
        let c = &self.config;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(c.log_file())
            .expect("remediator log");
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg(format!("--policy={}", c.policy.display()))
            .arg(format!("--web.listen-address={}", c.address))
            .arg(format!("--journal.path={}", c.journal.display()))
            .arg(format!("--run-dir={}", c.dir.join("runs").display()))
            .arg(format!("--auth.token-file={}", c.token_file().display()))
            .args(&c.extra)
            .env("RUST_LOG", "info")
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log));
        self.child = Some(command.spawn().expect("spawn greenplum-remediator"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let url = self.url("/-/healthy");
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "greenplum-remediator exited at start ({status}):\n{}",
                        self.log_tail()
                    );
                }
            }
            if self.agent.get(&url).call().is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "remediator never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no shutdown code runs, exactly like a crash or an OOM kill.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the same process again (same journal, address and token).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.config.address)
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.config.log_file()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// POSTs a webhook body with the bearer token; returns the status code.
    pub fn post_alerts(&self, body: &Value) -> u16 {
        self.post_raw(
            "/api/v1/alerts",
            Some(&self.config.token),
            "application/json",
            &body.to_string(),
        )
    }

    /// POSTs a webhook body with the bearer token; returns the status code and the JSON
    /// answer (`Null` when the answer is not JSON).
    pub fn post_alerts_reply(&self, body: &Value) -> (u16, Value) {
        let request = self
            .agent
            .post(&self.url("/api/v1/alerts"))
            .set("Content-Type", "application/json")
            .set("Authorization", &format!("Bearer {}", self.config.token));
        let response = match request.send_string(&body.to_string()) {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("POST /api/v1/alerts: {e}\n{}", self.log_tail()),
        };
        let code = response.status();
        (code, response.into_json().unwrap_or(Value::Null))
    }

    /// The `/metrics` exposition.
    pub fn metrics(&self) -> String {
        self.agent
            .get(&self.url("/metrics"))
            .set("Authorization", &format!("Bearer {}", self.config.token))
            .call()
            .unwrap_or_else(|e| panic!("GET /metrics: {e}\n{}", self.log_tail()))
            .into_string()
            .expect("metrics text")
    }

    /// The value of one sample line of `/metrics` (`name{labels}` exactly as exposed).
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics().lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    /// Any POST, with or without a token; returns the status code.
    pub fn post_raw(&self, path: &str, token: Option<&str>, content_type: &str, body: &str) -> u16 {
        let mut request = self
            .agent
            .post(&self.url(path))
            .set("Content-Type", content_type);
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        match request.send_string(body) {
            Ok(response) => response.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("POST {path}: {e}\n{}", self.log_tail()),
        }
    }

    pub fn get(&self, path: &str) -> Value {
        self.agent
            .get(&self.url(path))
            .set("Authorization", &format!("Bearer {}", self.config.token))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log_tail()))
            .into_json()
            .expect("JSON answer")
    }

    pub fn actions(&self) -> Vec<Value> {
        self.get("/api/v1/actions")["actions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn action(&self, id: i64) -> Value {
        self.get(&format!("/api/v1/actions/{id}"))
    }

    /// Waits for an action created after `known` actions existed, then for it to reach a
    /// state in `states`; returns its full record.
    pub fn wait_new_action(&self, known: usize, states: &[&str]) -> Value {
        let id = wait_for("a new action", || {
            self.actions().get(known).and_then(|a| a["id"].as_i64())
        });
        self.wait_action_state(id, states)
    }

    pub fn wait_action_state(&self, id: i64, states: &[&str]) -> Value {
        let deadline = Instant::now() + GUARD;
        loop {
            let action = self.action(id);
            if states.contains(&action["state"].as_str().unwrap_or("")) {
                return action;
            }
            assert!(
                Instant::now() < deadline,
                "action {id} never reached {states:?}: {action:#}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until action `id` is in a [`TERMINAL`] state and asserts it is `state`,
    /// showing the action and the log tail when it is not.
    pub fn wait_action_ends(&self, id: i64, state: &str) -> Value {
        let done = self.wait_action_state(id, TERMINAL);
        assert_eq!(done["state"], state, "{done:#}\n{}", self.log_tail());
        done
    }

    /// Runs the remediator's own CLI against this instance, as an operator would.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(BIN)
            .args(args)
            .arg(format!("--url=http://{}", self.config.address))
            .arg(format!(
                "--auth.token-file={}",
                self.config.token_file().display()
            ))
            .arg("--who=integration-test")
            .output()
            .expect("run the CLI");
        assert!(
            output.status.success(),
            "greenplum-remediator {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Remediator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The recorded Alertmanager 0.25 delivery, reduced to its first alert and adapted.
pub struct AlertSpec<'a> {
    pub cluster: &'a str,
    pub status: &'a str,
    /// Distinguishes alert instances: the event key is (fingerprint, startsAt, status).
    pub starts_at: &'a str,
    pub fingerprint: &'a str,
    pub extra_labels: Vec<(&'a str, &'a str)>,
}

pub fn recorded_body() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/firing-two-segments-down.json");
    let text = fs::read_to_string(&path).expect("recorded delivery");
    let recorded: Value = serde_json::from_str(&text).expect("recorded JSON");
    recorded["body"].clone()
}

pub fn payload(spec: &AlertSpec<'_>) -> Value {
    let mut body = recorded_body();
    let mut alert = body["alerts"][0].clone();
    alert["status"] = json!(spec.status);
    alert["startsAt"] = json!(spec.starts_at);
    alert["fingerprint"] = json!(spec.fingerprint);
    if spec.status == "resolved" {
        alert["endsAt"] = json!("2026-11-21T18:00:00Z");
    }
    let labels = alert["labels"].as_object_mut().expect("labels");
    labels.insert("cluster".into(), json!(spec.cluster));
    labels.insert("alertname".into(), json!("GreenplumSegmentDown"));
    labels.insert("remediation".into(), json!("recover"));
    for (k, v) in &spec.extra_labels {
        labels.insert((*k).into(), json!(v));
    }
    body["alerts"] = json!([alert]);
    body["status"] = json!(spec.status);
    body["commonLabels"]["cluster"] = json!(spec.cluster);
    body["groupLabels"]["cluster"] = json!(spec.cluster);
    body
}

/// Reads the SQLite journal from the outside (WAL lets it read while the server writes).
pub struct JournalReader(rusqlite::Connection);

impl JournalReader {
    pub fn open(path: &Path) -> JournalReader {
        let conn =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open journal read-only");
        conn.busy_timeout(Duration::from_secs(5)).expect("busy");
        JournalReader(conn)
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.0
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn executions(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM executions")
    }

    /// Decisions of events with this fingerprint and startsAt prefix.
    pub fn decisions(&self, fingerprint: &str) -> Vec<String> {
        let mut stmt = self
            .0
            .prepare(
                "SELECT d.decision FROM decisions d JOIN events e ON e.id = d.event_id
                 WHERE e.fingerprint = ?1 ORDER BY d.id",
            )
            .expect("prepare");
        let rows = stmt
            .query_map([fingerprint], |r| r.get::<_, String>(0))
            .expect("query");
        rows.map(|r| r.expect("row")).collect()
    }

    /// Every text the journal holds about plans and executions (argv, hosts, outputs).
    pub fn all_plan_text(&self) -> String {
        let mut out = String::new();
        for sql in [
            "SELECT plan FROM actions",
            "SELECT record FROM executions",
            "SELECT record FROM execution_results",
        ] {
            let mut stmt = self.0.prepare(sql).expect("prepare");
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("q");
            for row in rows {
                out.push_str(&row.expect("row"));
                out.push('\n');
            }
        }
        out
    }
}

/// Test doubles around the lab's real stand-ins: `gprecoverseg` is wrapped so every
/// invocation is counted and, while the hold file exists, waits before it execs the
/// stand-in (so a test can act while the command is known to be running).
pub struct ToolWrap {
    pub dir: PathBuf,
    pub invocations: PathBuf,
    pub hold: PathBuf,
}

impl ToolWrap {
    pub fn install(test_dir: &Path, lab_bin: &Path) -> ToolWrap {
        let dir = test_dir.join("wrap");
        fs::create_dir_all(&dir).expect("wrap dir");
        let invocations = test_dir.join("gprecoverseg.invocations");
        let hold = test_dir.join("gprecoverseg.hold");
        let script = format!(
            "#!/bin/sh\n\
             echo \"$$ $*\" >> '{inv}'\n\
             while [ -e '{hold}' ]; do sleep 0.2; done\n\
             exec '{real}' \"$@\"\n",
            inv = invocations.display(),
            hold = hold.display(),
            real = lab_bin.join("gprecoverseg").display(),
        );
        let path = dir.join("gprecoverseg");
        let mut file = fs::File::create(&path).expect("wrapper");
        file.write_all(script.as_bytes()).expect("write wrapper");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        ToolWrap {
            dir,
            invocations,
            hold,
        }
    }

    /// How often `gprecoverseg` was started, and with which arguments.
    pub fn invocations(&self) -> Vec<String> {
        fs::read_to_string(&self.invocations)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_once(' ').map_or("", |(_, args)| args).to_string())
            .collect()
    }

    pub fn hold(&self) {
        fs::write(&self.hold, "").expect("hold file");
    }

    pub fn release(&self) {
        let _ = fs::remove_file(&self.hold);
    }
}

/// A policy for one lab cluster whose local executor gets the lab's environment, with the
/// wrapper first on PATH. `rules` is YAML appended under `rules:`.
pub fn lab_policy(cluster: &str, lab: &gplab::Lab, wrap: &ToolWrap, rules: &str) -> String {
    lab_policy_at(cluster, lab, wrap, rules, lab.coordinator_port())
}

/// Writes `lab_policy` to `dir/policy.yml` and returns its path.
pub fn write_lab_policy(
    dir: &Path,
    cluster: &str,
    lab: &gplab::Lab,
    wrap: &ToolWrap,
    rules: &str,
) -> PathBuf {
    let policy = dir.join("policy.yml");
    fs::write(&policy, lab_policy(cluster, lab, wrap, rules)).expect("policy");
    policy
}

/// `lab_policy` whose catalog reads go to `coordinator_port` (a proxy, say); the commands
/// still reach the lab directly, as they would on the coordinator's host.
pub fn lab_policy_at(
    cluster: &str,
    lab: &gplab::Lab,
    wrap: &ToolWrap,
    rules: &str,
    coordinator_port: u16,
) -> String {
    let env: std::collections::BTreeMap<String, String> = lab.env().into_iter().collect();
    let path = format!(
        "{}:{}:/usr/local/bin:/usr/bin:/bin",
        wrap.dir.display(),
        lab.bin_dir().display()
    );
    // GPLAB_DIR is deliberately absent: it is not in the executor's allowlist (a production
    // list), and the stand-ins find their lab from the absolute path the wrapper execs.
    format!(
        r#"clusters:
  - name: {cluster}
    endpoints:
      - "127.0.0.1:{port}"
    user: gpadmin
    executor:
      local:
        env:
          PATH: "{path}"
          COORDINATOR_DATA_DIRECTORY: "{datadir}"
          MASTER_DATA_DIRECTORY: "{datadir}"
          PGHOST: "{pghost}"
          PGPORT: "{pgport}"
          PGUSER: "{pguser}"
          PGDATABASE: "{pgdatabase}"
        overdue_after: 10m
rules:
{rules}
settings:
  approval_ttl: 30m
  verify_up_deadline: 2m
  verify_sync_deadline: 3m
  verify_poll_interval: 1s
  watch_interval: 2s
"#,
        port = coordinator_port,
        datadir = env["COORDINATOR_DATA_DIRECTORY"],
        pghost = env["PGHOST"],
        pgport = env["PGPORT"],
        pguser = env["PGUSER"],
        pgdatabase = env["PGDATABASE"],
    )
}

/// Starts a lab, retrying once: parallel test binaries sometimes race for ports while
/// provisioning.
pub fn lab_up(contents: u16) -> gplab::Lab {
    let config = || gplab::LabConfig::for_tests(contents, gplab::Flavor::Gp6);
    match gplab::Lab::up(config()) {
        Ok(lab) => lab,
        Err(first) => {
            eprintln!("lab start failed once ({first}); retrying");
            gplab::Lab::up(config()).expect("lab starts")
        }
    }
}

/// Waits until every pair is up, in sync and streaming (`s`).
pub fn wait_all_synchronized(lab: &gplab::Lab) -> Vec<gplab::SegmentRow> {
    lab.wait_for_catalog("every pair up and synchronized", GUARD, |rows| {
        rows.iter()
            .filter(|r| r.content >= 0)
            .all(|r| r.status == 'u' && r.mode == 's')
    })
    .expect("pairs synchronized")
}

/// Once every segment is synchronized again, the committed rows are exactly `before`: the
/// fault and the healing lost nothing.
pub fn assert_rows_kept(lab: &gplab::Lab, before: &gplab::Checksum) {
    wait_all_synchronized(lab);
    assert_eq!(
        &lab.checksum().expect("checksum"),
        before,
        "committed rows changed"
    );
}

/// Waits until FTS has failed `content` over (a down row for it).
pub fn wait_failed_over(lab: &gplab::Lab, content: i16) {
    lab.wait_for_catalog("failover", GUARD, |rows| {
        rows.iter().any(|r| r.content == content && r.status == 'd')
            && rows
                .iter()
                .any(|r| r.content == content && r.role == 'p' && r.status == 'u')
    })
    .expect("failover");
}
