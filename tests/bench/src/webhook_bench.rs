//! The webhook benchmark: `wrk` POSTs real Alertmanager bodies (fingerprints rotated, every
//! 4th delivery a duplicate) at 1, 16 and 64 connections to the remediator (SQLite journal,
//! synchronous=FULL) and, side by side, to Debian's `webhook` running `true` per delivery.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::service::{free_port, Service};

const SCRIPT: &str = include_str!("webhook_bench.lua");
/// Deliveries recorded from Alertmanager 0.25 (copied from shared/fixtures/alertmanager-0.25).
const FIXTURES: [(&str, &str); 2] = [
    (
        "firing-two-segments-down.json",
        include_str!("../fixtures/firing-two-segments-down.json"),
    ),
    (
        "one-resolved-one-firing.json",
        include_str!("../fixtures/one-resolved-one-firing.json"),
    ),
];

#[derive(Debug, Clone)]
pub struct WebhookPlan {
    pub connections: Vec<u32>,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Receiver {
    Remediator,
    AdnanhWebhook,
}

impl Receiver {
    pub fn label(self) -> &'static str {
        match self {
            Receiver::Remediator => "greenplum-remediator (SQLite journal)",
            Receiver::AdnanhWebhook => "webhook (adnanh) running `true`",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookResult {
    pub receiver: Receiver,
    pub connections: u32,
    /// 2xx answers per second: deliveries the receiver took responsibility for.
    pub deliveries_per_second: f64,
    /// New alerts journalled per second (remediator only: its answer counts them).
    pub new_alerts_per_second: Option<f64>,
    /// Share of the delivered alerts the remediator recognised as duplicates.
    pub duplicate_share: Option<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub failed_requests: u64,
}

/// The Alertmanager bodies from the recorded fixtures, with `__SEQ__` in each fingerprint.
fn templates() -> Result<Vec<String>> {
    FIXTURES
        .iter()
        .map(|(name, text)| {
            let mut recorded: Value =
                serde_json::from_str(text).with_context(|| format!("parsing {name}"))?;
            let body = recorded
                .get_mut("body")
                .with_context(|| format!("{name} has no body"))?;
            let alerts = body
                .get_mut("alerts")
                .and_then(Value::as_array_mut)
                .with_context(|| format!("{name}: body has no alerts"))?;
            for alert in alerts {
                let fingerprint = alert
                    .get("fingerprint")
                    .and_then(Value::as_str)
                    .with_context(|| format!("{name}: alert without fingerprint"))?;
                // Keep half of the recorded fingerprint so each alert stays distinct.
                let prefix: String = fingerprint.chars().take(8).collect();
                alert["fingerprint"] = Value::String(format!("{prefix}__SEQ__"));
            }
            serde_json::to_string(body).context("serialising a body")
        })
        .collect()
}

fn lua_script(auth: &str) -> Result<String> {
    let mut script = String::from("bodies = {\n");
    for body in templates()? {
        if body.contains("]==]") {
            bail!("a fixture body contains the Lua delimiter ]==]");
        }
        script.push_str(&format!("  [==[{body}]==],\n"));
    }
    script.push_str(&format!("}}\nauth = {auth:?}\n"));
    script.push_str(SCRIPT);
    Ok(script)
}

pub fn run(plan: &WebhookPlan, bin_dir: &Path, work: &Path) -> Result<Vec<WebhookResult>> {
    let mut results = Vec::new();
    for receiver in [Receiver::Remediator, Receiver::AdnanhWebhook] {
        for &connections in &plan.connections {
            // A fresh receiver (and journal) per point: each starts from the same state.
            let dir = tempfile::Builder::new()
                .prefix("bench-webhook-")
                .tempdir_in(work)
                .context("creating a temp dir")?;
            let (service, url, auth) = start(receiver, bin_dir, dir.path())?;
            eprintln!(
                "webhook benchmark: {}, {connections} connections",
                receiver.label()
            );
            let script = dir.path().join("post.lua");
            fs::write(&script, lua_script(&auth)?)
                .with_context(|| format!("writing {}", script.display()))?;
            let result = drive(receiver, connections, plan.duration, &script, &url)?;
            drop(service);
            results.push(result);
        }
    }
    Ok(results)
}

/// Starts a receiver; returns it, the URL to POST to and the Authorization header value.
fn start(receiver: Receiver, bin_dir: &Path, dir: &Path) -> Result<(Service, String, String)> {
    let port = free_port()?;
    let token = format!("bench-token-{}-{port}", std::process::id());
    let auth = format!("Bearer {token}");
    let (service, url) = match receiver {
        Receiver::Remediator => {
            let policy = dir.join("policy.yml");
            fs::write(&policy, throwaway_policy(free_port()?))
                .with_context(|| format!("writing {}", policy.display()))?;
            let token_file = dir.join("token");
            fs::write(&token_file, &token).context("writing the token file")?;
            let mut c = Command::new(bin_dir.join(crate::binaries::REMEDIATOR));
            c.arg("serve")
                .arg("--policy")
                .arg(&policy)
                .arg("--journal.path")
                .arg(dir.join("journal.db"))
                .arg("--auth.token-file")
                .arg(&token_file)
                .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
                .env("RUST_LOG", "warn");
            (
                Service::spawn("remediator", c, dir)?,
                format!("http://127.0.0.1:{port}/api/v1/alerts"),
            )
        }
        Receiver::AdnanhWebhook => {
            let hooks = dir.join("hooks.json");
            fs::write(&hooks, hooks_file(&auth)?)
                .with_context(|| format!("writing {}", hooks.display()))?;
            let mut c = Command::new("webhook");
            c.arg("-hooks")
                .arg(&hooks)
                .args(["-ip", "127.0.0.1", "-port", &port.to_string()]);
            (
                Service::spawn("webhook", c, dir)?,
                format!("http://127.0.0.1:{port}/hooks/alerts"),
            )
        }
    };
    let mut service = service;
    let probe = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    let health = match receiver {
        Receiver::Remediator => format!("http://127.0.0.1:{port}/-/healthy"),
        Receiver::AdnanhWebhook => format!("http://127.0.0.1:{port}/"),
    };
    service.wait_ready(Duration::from_secs(30), || {
        probe.get(&health).call().is_ok()
    })?;
    Ok((service, url, auth))
}

/// A cluster nobody listens for and a rule no recorded alert matches: every delivery is
/// journalled and planned, and nothing is ever executed.
fn throwaway_policy(dead_port: u16) -> String {
    format!(
        r#"clusters:
  - name: gp-bench
    endpoints: ['127.0.0.1:{dead_port}']
    executor:
      local:
        env: {{PATH: /usr/bin:/bin}}
rules:
  - name: never
    match: {{alertname: BenchmarkNeverFires}}
    action: recover
    approval: required
"#
    )
}

/// One hook that checks the bearer token and runs `true`, answering after it exited (as
/// the remediator answers after its journal write).
fn hooks_file(auth: &str) -> Result<String> {
    let hooks = serde_json::json!([{
        "id": "alerts",
        "execute-command": "/bin/true",
        "include-command-output-in-response": true,
        "trigger-rule-mismatch-http-response-code": 401,
        "http-methods": ["POST"],
        "trigger-rule": {"match": {
            "type": "value",
            "value": auth,
            "parameter": {"source": "header", "name": "Authorization"}
        }}
    }]);
    serde_json::to_string_pretty(&hooks).context("serialising hooks.json")
}

fn drive(
    receiver: Receiver,
    connections: u32,
    duration: Duration,
    script: &Path,
    url: &str,
) -> Result<WebhookResult> {
    let threads = connections.clamp(1, 2);
    let output = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs().max(1))])
        .args(["--timeout", "10s", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let figures = parse_result(&stdout)?;
    let get = |key: &str| -> Result<u64> {
        figures
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .with_context(|| format!("wrk printed no {key}: {stdout}"))
    };
    let requests = get("requests")?;
    let failed = get("non2xx")? + get("socket_errors")?;
    let seconds = get("duration_us")? as f64 / 1e6;
    let ok = requests.saturating_sub(failed);
    let (accepted, duplicates) = (get("accepted")?, get("duplicates")?);
    let remediator = receiver == Receiver::Remediator;
    Ok(WebhookResult {
        receiver,
        connections,
        deliveries_per_second: ok as f64 / seconds,
        new_alerts_per_second: remediator.then(|| accepted as f64 / seconds),
        duplicate_share: (remediator && accepted + duplicates > 0)
            .then(|| duplicates as f64 / (accepted + duplicates) as f64),
        p50_ms: get("p50_us")? as f64 / 1e3,
        p99_ms: get("p99_us")? as f64 / 1e3,
        requests,
        failed_requests: failed,
    })
}

/// `BENCH_RESULT key=value ...` printed by the script's `done()`.
fn parse_result(stdout: &str) -> Result<Vec<(String, u64)>> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_RESULT "))
        .with_context(|| format!("wrk printed no BENCH_RESULT line: {stdout}"))?;
    line.split_whitespace()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("malformed pair {pair:?}"))?;
            let value = value
                .parse()
                .with_context(|| format!("{key}={value} is not a count"))?;
            Ok((key.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_rotate_every_fingerprint() {
        let bodies = templates().unwrap();
        assert_eq!(bodies.len(), 2);
        for body in &bodies {
            let value: Value = serde_json::from_str(body).unwrap();
            let alerts = value["alerts"].as_array().unwrap();
            assert!(!alerts.is_empty());
            for alert in alerts {
                assert!(alert["fingerprint"].as_str().unwrap().ends_with("__SEQ__"));
            }
        }
    }

    #[test]
    fn parses_the_scripts_summary_line() {
        let figures = parse_result("Running 1s test\nBENCH_RESULT requests=10 p99_us=7\n").unwrap();
        assert_eq!(figures, vec![("requests".into(), 10), ("p99_us".into(), 7)]);
        assert!(parse_result("no summary").is_err());
        assert!(parse_result("BENCH_RESULT requests=x").is_err());
    }
}
