//! A real Alertmanager (Debian's `prometheus-alertmanager`) routing opt-in alerts to the
//! remediator, with the same route shape as `alerts/alertmanager.yml`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::process::{free_port, wait_http_ok, ChildGuard};

#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// The remediator's webhook, e.g. `http://127.0.0.1:9298/api/v1/alerts`.
    pub webhook_url: String,
    /// File holding the bearer token Alertmanager sends.
    pub token_file: PathBuf,
    /// Timings of the remediation route (short in tests).
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
}

pub struct Alertmanager {
    url: String,
    address: String,
    guard: ChildGuard,
}

impl Alertmanager {
    pub fn start(dir: &Path, config: &AlertmanagerConfig) -> Result<Alertmanager> {
        let port = free_port()?;
        let config_path = dir.join("alertmanager.yml");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&render(config))?)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let mut command = Command::new("prometheus-alertmanager");
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // A single instance: no gossip port to collide with parallel tests.
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn");
        let mut guard = ChildGuard::spawn("alertmanager", command, &dir.join("alertmanager.log"))?;
        let address = format!("127.0.0.1:{port}");
        let url = format!("http://{address}");
        wait_http_ok(
            &mut guard,
            &format!("{url}/-/ready"),
            Duration::from_secs(60),
        )?;
        Ok(Alertmanager {
            url,
            address,
            guard,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port`, for Prometheus' alerting configuration.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }

    /// Alerts Alertmanager holds (`/api/v2/alerts`).
    pub fn alerts(&self) -> Result<Vec<Value>> {
        let body: Value = ureq::get(&format!("{}/api/v2/alerts", self.url))
            .timeout(Duration::from_secs(10))
            .call()?
            .into_json()?;
        Ok(body.as_array().cloned().unwrap_or_default())
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

fn render(config: &AlertmanagerConfig) -> Value {
    json!({
        "route": {
            "receiver": "oncall",
            "group_by": ["cluster", "alertname"],
            "group_wait": "1s",
            "group_interval": "5s",
            "repeat_interval": "1h",
            "routes": [
                {
                    "receiver": "greenplum-remediator",
                    "matchers": ["remediation=~\"recover|recover_full|rebalance|start_standby|init_standby|activate_standby\""],
                    "group_by": ["cluster", "alertname"],
                    "group_wait": seconds(config.group_wait),
                    "group_interval": seconds(config.group_interval),
                    "repeat_interval": seconds(config.repeat_interval),
                    "continue": true,
                },
                {"receiver": "oncall"},
            ],
        },
        "receivers": [
            // People are not paged in tests: a receiver with no integration.
            {"name": "oncall"},
            {
                "name": "greenplum-remediator",
                "webhook_configs": [{
                    "url": config.webhook_url,
                    "send_resolved": true,
                    "http_config": {"authorization": {
                        "type": "Bearer",
                        "credentials_file": config.token_file,
                    }},
                }],
            },
        ],
    })
}
