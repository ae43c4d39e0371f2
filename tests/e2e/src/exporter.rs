//! greenplum-exporter as a child process, pointed at a lab's coordinator endpoints.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::bins::binary;
use crate::process::{free_port, wait_http_ok, ChildGuard};

pub struct Exporter {
    address: String,
    guard: ChildGuard,
}

impl Exporter {
    /// Starts the exporter on a free port. `endpoints` are `host:port` coordinator endpoints
    /// (coordinator first, then standby); `env` is the lab's libpq environment.
    pub fn start(dir: &Path, endpoints: &[String], env: &[(String, String)]) -> Result<Exporter> {
        let port = free_port()?;
        let address = format!("127.0.0.1:{port}");
        let mut command = Command::new(binary("greenplum-exporter")?);
        command
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .arg(format!("--web.listen-address={address}"))
            .arg("--statement-timeout=5s")
            .arg("--connect-timeout=2s");
        for endpoint in endpoints {
            command.arg(format!("--coordinator={endpoint}"));
        }
        let mut guard =
            ChildGuard::spawn("greenplum-exporter", command, &dir.join("exporter.log"))?;
        wait_http_ok(
            &mut guard,
            &format!("http://{address}/healthz"),
            Duration::from_secs(60),
        )?;
        Ok(Exporter { address, guard })
    }

    /// `host:port` to scrape.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }

    /// One scrape of `/metrics` in the Prometheus text format.
    pub fn scrape(&self) -> Result<String> {
        Ok(ureq::get(&format!("http://{}/metrics", self.address))
            .timeout(Duration::from_secs(30))
            .call()?
            .into_string()?)
    }
}
