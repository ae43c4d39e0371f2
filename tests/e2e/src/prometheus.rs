//! A real Prometheus (Debian's `prometheus`) scraping the services under test and evaluating
//! the project's rule files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::process::{free_port, wait_http_ok, ChildGuard};

/// One scrape job.
#[derive(Debug, Clone)]
pub struct ScrapeJob {
    pub job: String,
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Extra labels on every target (the rules expect `cluster`).
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    pub jobs: Vec<ScrapeJob>,
    pub rule_files: Vec<PathBuf>,
    /// `host:port` of an Alertmanager to send alerts to.
    pub alertmanager: Option<String>,
    /// Scrape and rule evaluation interval (short in tests so alerts move quickly).
    pub interval: Duration,
}

pub struct Prometheus {
    url: String,
    guard: ChildGuard,
}

/// One element of a vector result of `/api/v1/query`.
#[derive(Debug, Clone, Deserialize)]
pub struct Sample {
    pub metric: serde_json::Map<String, Value>,
    pub value: (f64, String),
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.metric.get(name).and_then(Value::as_str)
    }

    pub fn number(&self) -> f64 {
        self.value.1.parse().unwrap_or(f64::NAN)
    }
}

/// One alert of `/api/v1/alerts`.
#[derive(Debug, Clone, Deserialize)]
pub struct Alert {
    pub labels: serde_json::Map<String, Value>,
    /// `pending` or `firing`.
    pub state: String,
}

impl Alert {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).and_then(Value::as_str)
    }
}

impl Prometheus {
    /// Writes the configuration under `dir` and starts Prometheus on a free port.
    pub fn start(dir: &Path, config: &PrometheusConfig) -> Result<Prometheus> {
        let port = free_port()?;
        let config_path = dir.join("prometheus.yml");
        // JSON is valid YAML: build the configuration as data, not as text.
        std::fs::write(&config_path, serde_json::to_vec_pretty(&render(config))?)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--rules.alert.resend-delay=1s")
            .arg("--log.level=warn");
        let mut guard = ChildGuard::spawn("prometheus", command, &dir.join("prometheus.log"))?;
        let url = format!("http://127.0.0.1:{port}");
        wait_http_ok(
            &mut guard,
            &format!("{url}/-/ready"),
            Duration::from_secs(60),
        )?;
        Ok(Prometheus { url, guard })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }

    /// Runs an instant query; fails on a PromQL error (so a broken panel query fails a test).
    pub fn query(&self, expr: &str) -> Result<Vec<Sample>> {
        let data = self.api("/api/v1/query", expr)?;
        match data.get("resultType").and_then(Value::as_str) {
            Some("vector") => Ok(serde_json::from_value(data["result"].clone())?),
            Some("scalar") | Some("string") => {
                let value: (f64, String) = serde_json::from_value(data["result"].clone())?;
                Ok(vec![Sample {
                    metric: serde_json::Map::new(),
                    value,
                }])
            }
            other => bail!("unexpected result type {other:?} for {expr}"),
        }
    }

    /// Alerts Prometheus currently holds (pending and firing).
    pub fn alerts(&self) -> Result<Vec<Alert>> {
        let body: Value = ureq::get(&format!("{}/api/v1/alerts", self.url))
            .timeout(Duration::from_secs(10))
            .call()?
            .into_json()?;
        Ok(serde_json::from_value(body["data"]["alerts"].clone())?)
    }

    pub fn firing(&self, alertname: &str) -> Result<Vec<Alert>> {
        Ok(self
            .alerts()?
            .into_iter()
            .filter(|a| a.state == "firing" && a.label("alertname") == Some(alertname))
            .collect())
    }

    fn api(&self, path: &str, expr: &str) -> Result<Value> {
        let response = ureq::get(&format!("{}{path}", self.url))
            .query("query", expr)
            .timeout(Duration::from_secs(30))
            .call();
        let body: Value = match response {
            Ok(r) => r.into_json()?,
            // Prometheus answers 400/422 with a JSON error body for a bad expression.
            Err(ureq::Error::Status(_, r)) => r.into_json()?,
            Err(e) => return Err(e).context(format!("querying Prometheus for {expr}")),
        };
        if body["status"] != "success" {
            bail!("query {expr} failed: {}", body["error"]);
        }
        Ok(body["data"].clone())
    }
}

fn render(config: &PrometheusConfig) -> Value {
    let interval = format!("{}ms", config.interval.as_millis());
    let jobs: Vec<Value> = config
        .jobs
        .iter()
        .map(|job| {
            let labels: serde_json::Map<String, Value> = job
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({
                "job_name": job.job,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": job.targets, "labels": labels}],
            })
        })
        .collect();
    let mut root = json!({
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": config.rule_files,
        "scrape_configs": jobs,
    });
    if let Some(am) = &config.alertmanager {
        root["alerting"] = json!({"alertmanagers": [{"static_configs": [{"targets": [am]}]}]});
    }
    root
}
