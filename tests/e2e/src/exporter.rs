//! greenplum-exporter as a child process, pointed at a lab's coordinator endpoints.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::bins::binary;
use crate::process::{free_port, wait_http_ok, ChildGuard};

/// How the exporter bounds its catalog work.
#[derive(Debug, Clone)]
pub struct ExporterOptions {
    /// `--statement-timeout`: each catalog statement's bound on the server.
    pub statement_timeout: Duration,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
}

impl Default for ExporterOptions {
    fn default() -> Self {
        ExporterOptions {
            statement_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

pub struct Exporter {
    address: String,
    /// Everything needed to start it again on the same address.
    command: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    guard: ChildGuard,
}

impl Exporter {
    /// Starts the exporter on a free port. `endpoints` are `host:port` coordinator endpoints
    /// (coordinator first, then standby); `env` is the lab's libpq environment.
    pub fn start(dir: &Path, endpoints: &[String], env: &[(String, String)]) -> Result<Exporter> {
        Self::start_with(dir, endpoints, env, &ExporterOptions::default())
    }

    pub fn start_with(
        dir: &Path,
        endpoints: &[String],
        env: &[(String, String)],
        options: &ExporterOptions,
    ) -> Result<Exporter> {
        let port = free_port()?;
        let address = format!("127.0.0.1:{port}");
        let mut args = vec![
            format!("--web.listen-address={address}"),
            format!(
                "--statement-timeout={}ms",
                options.statement_timeout.as_millis()
            ),
            format!(
                "--connect-timeout={}s",
                options.connect_timeout.as_secs().max(1)
            ),
        ];
        args.extend(endpoints.iter().map(|e| format!("--coordinator={e}")));
        let log = dir.join("exporter.log");
        let guard = spawn(&args, env, &log, false)?;
        let mut exporter = Exporter {
            address,
            command: args,
            env: env.to_vec(),
            log,
            guard,
        };
        exporter.wait_ready()?;
        Ok(exporter)
    }

    /// Kills the exporter at once (SIGKILL), as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        self.guard.kill();
    }

    /// Starts it again with the same flags on the same address, appending to its log.
    pub fn restart(&mut self) -> Result<()> {
        self.guard.stop();
        self.guard = spawn(&self.command, &self.env, &self.log, true)?;
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        wait_http_ok(
            &mut self.guard,
            &format!("http://{}/healthz", self.address),
            Duration::from_secs(60),
        )
    }

    /// `host:port` to scrape.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }

    /// What the exporter has logged so far (every start appends).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One scrape of `/metrics` in the Prometheus text format.
    pub fn scrape(&self) -> Result<String> {
        Ok(ureq::get(&format!("http://{}/metrics", self.address))
            .timeout(Duration::from_secs(30))
            .call()?
            .into_string()?)
    }
}

fn spawn(
    args: &[String],
    env: &[(String, String)],
    log: &Path,
    append: bool,
) -> Result<ChildGuard> {
    let mut command = Command::new(binary("greenplum-exporter")?);
    command
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "info")
        .args(args);
    if append {
        ChildGuard::spawn_appending("greenplum-exporter", command, log)
    } else {
        ChildGuard::spawn("greenplum-exporter", command, log)
    }
}
