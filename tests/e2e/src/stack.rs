//! The whole system on one machine: a lab cluster, greenplum-exporter, greenplum-remediator, a
//! real Prometheus loaded with the project's rules and a real Alertmanager routing opt-in alerts
//! to the remediator. Dropping a `Stack` stops everything, Prometheus first, the lab last.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use gplab::{Flavor, Lab, LabConfig};

use crate::alertmanager::{Alertmanager, AlertmanagerConfig};
use crate::exporter::{Exporter, ExporterOptions};
use crate::prometheus::{Prometheus, PrometheusConfig, ScrapeJob};
use crate::remediator::Remediator;
use crate::repo_root;

/// The `cluster` label of the lab in Prometheus, alerts and the policy.
pub const CLUSTER: &str = "lab";

#[derive(Debug, Clone)]
pub struct StackConfig {
    pub contents: u16,
    pub flavor: Flavor,
    /// The lab's FTS probe interval.
    pub fts_interval: Duration,
    /// Divides every `for:` of the alert rules (1 keeps the shipped rules as they are). The
    /// expressions, labels and annotations stay exactly the shipped ones.
    pub rule_speedup: u32,
    /// Prometheus' scrape and evaluation interval.
    pub prometheus_interval: Duration,
    /// Where everything lives; a temp dir (deleted on drop) when `None`.
    pub dir: Option<PathBuf>,
    /// How the exporter bounds its catalog statements.
    pub exporter: ExporterOptions,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            contents: 3,
            flavor: Flavor::Gp6,
            fts_interval: Duration::from_secs(2),
            rule_speedup: 10,
            prometheus_interval: Duration::from_secs(1),
            dir: None,
            exporter: ExporterOptions::default(),
        }
    }
}

/// Field order is drop order: observers stop before what they observe.
pub struct Stack {
    pub prometheus: Prometheus,
    pub alertmanager: Alertmanager,
    pub remediator: Remediator,
    pub exporter: Exporter,
    pub lab: Lab,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Stack {
    pub fn up(config: &StackConfig) -> Result<Stack> {
        let (dir, temp) = match &config.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("greenplum-e2e-")
                    .tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let lab = Lab::up(LabConfig {
            fts_interval: config.fts_interval,
            mirror_grace: config.fts_interval * 3,
            ..LabConfig::for_tests(config.contents, config.flavor)
        })?;
        let endpoints = lab_endpoints(&lab);
        let exporter = Exporter::start_with(&dir, &endpoints, &lab.env(), &config.exporter)?;
        let policy = dir.join("policy.yml");
        std::fs::write(&policy, demo_policy(&lab)?)?;
        let remediator = Remediator::start(&dir, &policy)?;
        let alertmanager = alertmanager_for(&dir, &remediator)?;
        let rules = scaled_rules(&dir, config.rule_speedup)?;
        let prometheus = Prometheus::start(
            &dir,
            &PrometheusConfig {
                jobs: vec![
                    job("greenplum-exporter", exporter.address()),
                    job("greenplum-remediator", remediator.address()),
                ],
                rule_files: rules,
                alertmanager: Some(alertmanager.address().to_string()),
                interval: config.prometheus_interval,
            },
        )?;
        Ok(Stack {
            prometheus,
            alertmanager,
            remediator,
            exporter,
            lab,
            dir,
            _temp: temp,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// An Alertmanager that delivers to `remediator` with the remediator's token, grouping
/// quickly (tests and the demo wait for it).
pub fn alertmanager_for(dir: &Path, remediator: &Remediator) -> Result<Alertmanager> {
    Alertmanager::start(
        dir,
        &AlertmanagerConfig {
            webhook_url: remediator.webhook_url(),
            token_file: remediator.token_file().to_path_buf(),
            group_wait: Duration::from_secs(1),
            group_interval: Duration::from_secs(5),
            repeat_interval: Duration::from_secs(60),
        },
    )
}

/// A scrape job for one address, labelled with its cluster as the rules expect.
pub fn cluster_job(name: &str, address: &str, cluster: &str) -> ScrapeJob {
    ScrapeJob {
        job: name.into(),
        targets: vec![address.to_string()],
        labels: vec![("cluster".into(), cluster.into())],
    }
}

fn job(name: &str, address: &str) -> ScrapeJob {
    cluster_job(name, address, CLUSTER)
}

/// `host:port` of the coordinator and the standby.
pub fn lab_endpoints(lab: &Lab) -> Vec<String> {
    let mut endpoints = vec![format!("127.0.0.1:{}", lab.coordinator_port())];
    endpoints.extend(lab.standby_port().map(|p| format!("127.0.0.1:{p}")));
    endpoints
}

/// The demo policy: recover and rebalance automatically (rebalance at any hour), restart a
/// stopped standby automatically, activate the standby only with a person's approval.
pub fn demo_policy(lab: &Lab) -> Result<String> {
    let env = lab.env();
    let var = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .with_context(|| format!("the lab's environment has no {name}"))
    };
    let coordinator = lab.coordinator_port();
    let standby_port = lab.standby_port().context("the demo needs a standby")?;
    let standby_dir = lab
        .standby_datadir()
        .context("the demo needs a standby")?
        .display()
        .to_string();
    Ok(format!(
        r#"# Written by the e2e stack for the lab it started.
clusters:
  - name: {CLUSTER}
    endpoints:
      - "127.0.0.1:{coordinator}"
      - "127.0.0.1:{standby_port}"
    user: gpadmin
    standby: {{host: 127.0.0.1, port: {standby_port}, datadir: "{standby_dir}"}}
    executor:
      local:
        env:
          PATH: "{path}"
          COORDINATOR_DATA_DIRECTORY: "{datadir}"
          MASTER_DATA_DIRECTORY: "{datadir}"
          PGHOST: 127.0.0.1
          PGPORT: "{coordinator}"
          PGUSER: gpadmin
          PGDATABASE: postgres
        overdue_after: 10m
    unreachable_checks: 3

{DEMO_RULES}"#,
        path = var("PATH")?,
        datadir = var("COORDINATOR_DATA_DIRECTORY")?,
    ))
}

/// The demo's rules and settings, after the `clusters:` part of a policy: recover and
/// rebalance automatically (rebalance at any hour), restart a stopped standby automatically,
/// activate the standby only with a person's approval. The lab's stack and the real one share
/// them.
pub const DEMO_RULES: &str = r#"rules:
  - name: recover-down-segments
    match:
      alertname: GreenplumSegmentDown
      labels: ['remediation="recover"']
    action: recover
    approval: auto
    budget: {per_hour: 4, per_day: 10}
    blast_radius: {max_down_segments: 4, max_down_hosts: 1}

  - name: rebalance-any-time
    match:
      alertname: GreenplumSegmentsNotInPreferredRole
      labels: ['remediation="rebalance"']
    action: rebalance
    approval: auto
    windows:
      - {start: "00:00", end: "12:00"}
      - {start: "12:00", end: "00:00"}

  - name: restart-standby
    match:
      alertname: GreenplumStandbyNotStreaming
      labels: ['remediation="start_standby"']
    action: start_standby
    approval: auto

  - name: activate-standby
    match:
      alertname: GreenplumCoordinatorDown
      labels: ['remediation="activate_standby"']
    action: activate_standby
    approval: required

settings:
  approval_ttl: 30m
  verify_up_deadline: 3m
  verify_sync_deadline: 10m
  verify_poll_interval: 1s
  watch_interval: 2s
"#;

/// Copies the shipped rule files into `dir`, dividing each `for:` by `speedup`.
pub fn scaled_rules(dir: &Path, speedup: u32) -> Result<Vec<PathBuf>> {
    let root = repo_root();
    let mut out = Vec::new();
    for name in ["greenplum.rules.yml", "remediator.rules.yml"] {
        let text = std::fs::read_to_string(root.join("alerts").join(name))
            .with_context(|| format!("reading alerts/{name}"))?;
        let scaled: Vec<String> = text.lines().map(|l| scale_for(l, speedup)).collect();
        let path = dir.join(name);
        std::fs::write(&path, scaled.join("\n") + "\n")?;
        out.push(path);
    }
    Ok(out)
}

/// `        for: 5m` -> `        for: 30s` with speedup 10. Other lines are unchanged.
fn scale_for(line: &str, speedup: u32) -> String {
    let trimmed = line.trim_start();
    let Some(value) = trimmed.strip_prefix("for: ") else {
        return line.to_string();
    };
    let Some(seconds) = parse_duration(value.trim()) else {
        return line.to_string();
    };
    let indent = &line[..line.len() - trimmed.len()];
    format!("{indent}for: {}s", seconds / u64::from(speedup.max(1)))
}

fn parse_duration(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
    }
    number.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_durations_are_divided_and_everything_else_kept() {
        assert_eq!(scale_for("        for: 5m", 10), "        for: 30s");
        assert_eq!(scale_for("        for: 4h", 10), "        for: 1440s");
        assert_eq!(scale_for("        for: 0m", 10), "        for: 0s");
        assert_eq!(scale_for("        for: 1h30m", 1), "        for: 5400s");
        assert_eq!(scale_for("  expr: up == 0", 10), "  expr: up == 0");
        assert_eq!(scale_for("        for: soon", 10), "        for: soon");
    }
}
