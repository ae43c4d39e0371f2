//! greenplum-remediator as a child process, plus a small client of its API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::bins::binary;
use crate::process::{free_port, wait_http_ok, ChildGuard};

pub struct Remediator {
    address: String,
    token_file: PathBuf,
    token: String,
    dir: PathBuf,
    policy: PathBuf,
    /// `(uid, gid)` it runs as, when not as the test (the real Greenplum tools refuse root).
    run_as: Option<(u32, u32)>,
    guard: ChildGuard,
}

impl Remediator {
    /// Starts `greenplum-remediator serve` with `policy`, a SQLite journal and a bearer token
    /// in `dir`.
    pub fn start(dir: &Path, policy: &Path) -> Result<Remediator> {
        Self::start_as(dir, policy, None)
    }

    /// Like [`start`](Self::start), as the user `run_as` (`(uid, gid)`), who must be able to
    /// write `dir`: the local executor then starts the tools as that user.
    pub fn start_as(dir: &Path, policy: &Path, run_as: Option<(u32, u32)>) -> Result<Remediator> {
        let token = format!(
            "e2e-{:x}",
            std::process::id() as u64 * 7919 + free_port()? as u64
        );
        let token_file = dir.join("remediator.token");
        std::fs::write(&token_file, format!("{token}\n"))?;
        let address = format!("127.0.0.1:{}", free_port()?);
        let mut remediator = Remediator {
            guard: spawn(dir, policy, &address, &token_file, run_as)?,
            address,
            token_file,
            token,
            dir: dir.to_path_buf(),
            policy: policy.to_path_buf(),
            run_as,
        };
        remediator.wait_ready()?;
        Ok(remediator)
    }

    /// Starts it again on the same journal, address and token (after a kill).
    pub fn restart(&mut self) -> Result<()> {
        self.guard.stop();
        self.guard = spawn(
            &self.dir,
            &self.policy,
            &self.address,
            &self.token_file,
            self.run_as,
        )?;
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let url = format!("http://{}/-/healthy", self.address);
        wait_http_ok(&mut self.guard, &url, Duration::from_secs(60))
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn webhook_url(&self) -> String {
        format!("http://{}/api/v1/alerts", self.address)
    }

    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }

    /// Every action in the journal (summaries).
    pub fn actions(&self) -> Result<Vec<Value>> {
        let body = self.get("/api/v1/actions")?;
        Ok(body["actions"].as_array().cloned().unwrap_or_default())
    }

    /// One action with its history, execution and verifications.
    pub fn action(&self, id: i64) -> Result<Value> {
        self.get(&format!("/api/v1/actions/{id}"))
    }

    /// Delivers an Alertmanager webhook body as Alertmanager would (with the bearer token);
    /// returns the HTTP status.
    pub fn post_alerts(&self, body: &Value) -> Result<u16> {
        let response = ureq::post(&self.webhook_url())
            .set("Authorization", &format!("Bearer {}", self.token))
            .timeout(Duration::from_secs(10))
            .send_json(body.clone());
        match response {
            Ok(r) => Ok(r.status()),
            Err(ureq::Error::Status(code, _)) => Ok(code),
            Err(e) => Err(e).context("POST to the remediator's webhook"),
        }
    }

    fn get(&self, path: &str) -> Result<Value> {
        Ok(ureq::get(&format!("http://{}{path}", self.address))
            .set("Authorization", &format!("Bearer {}", self.token))
            .timeout(Duration::from_secs(10))
            .call()
            .with_context(|| format!("GET {path} on the remediator"))?
            .into_json()?)
    }

    /// Runs the remediator's own CLI against this instance, as an operator would
    /// (`actions approve ID --reason ...`), and returns its standard output.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let output = Command::new(binary("greenplum-remediator")?)
            .args(args)
            .arg(format!("--url=http://{}", self.address))
            .arg(format!("--auth.token-file={}", self.token_file.display()))
            .arg("--who=e2e-operator")
            .output()
            .context("running greenplum-remediator's CLI")?;
        if !output.status.success() {
            bail!(
                "greenplum-remediator {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn spawn(
    dir: &Path,
    policy: &Path,
    address: &str,
    token_file: &Path,
    run_as: Option<(u32, u32)>,
) -> Result<ChildGuard> {
    let mut command = Command::new(binary("greenplum-remediator")?);
    if let Some((uid, gid)) = run_as {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(gid);
    }
    command
        .env("RUST_LOG", "info")
        .arg("serve")
        .arg(format!("--policy={}", policy.display()))
        .arg(format!("--web.listen-address={address}"))
        .arg(format!(
            "--journal.path={}",
            dir.join("journal.db").display()
        ))
        .arg(format!("--run-dir={}", dir.join("runs").display()))
        .arg(format!("--auth.token-file={}", token_file.display()));
    // Appends across restarts so the whole story stays in one log.
    let log = dir.join("remediator.log");
    let mut guard = ChildGuard::spawn_appending("greenplum-remediator", command, &log)?;
    guard.ensure_running()?;
    Ok(guard)
}
