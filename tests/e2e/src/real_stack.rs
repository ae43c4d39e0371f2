//! The whole stack around a real Greenplum cluster: the exporter, a real Prometheus with the
//! shipped rules (their `for:` scaled down), a real Alertmanager, and the remediator running
//! as the cluster's admin with the local executor, so the actions run the real
//! `gprecoverseg`, `gpinitstandby` and `gpactivatestandby`. The lab's [`Stack`] with a real
//! cluster in its place.
//!
//! [`Stack`]: crate::stack::Stack

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::alertmanager::Alertmanager;
use crate::exporter::Exporter;
use crate::prometheus::{Prometheus, PrometheusConfig};
use crate::real::RealCluster;
use crate::remediator::Remediator;
use crate::stack::{alertmanager_for, cluster_job, scaled_rules, DEMO_RULES};

/// The `cluster` label and policy name of the real cluster.
pub const REAL_CLUSTER: &str = "real";

/// What the local executor passes to the tools: what `greenplum_path.sh` and `env.sh` set,
/// within the policy's allowlist.
const TOOL_ENV: &[&str] = &[
    "GPHOME",
    "PATH",
    "LD_LIBRARY_PATH",
    "PYTHONHOME",
    "PYTHONPATH",
    "COORDINATOR_DATA_DIRECTORY",
    "MASTER_DATA_DIRECTORY",
    "PGPORT",
    "PGHOST",
    "PGDATABASE",
    "HOME",
    "USER",
    "LOGNAME",
];

pub struct RealStack {
    pub prometheus: Prometheus,
    pub alertmanager: Alertmanager,
    pub remediator: Remediator,
    pub exporter: Exporter,
    dir: PathBuf,
}

impl RealStack {
    /// Starts everything in `dir` (made writable by the cluster's admin, who runs the
    /// remediator), with the shipped rules' `for:` divided by `rule_speedup`.
    pub fn up(cluster: &RealCluster, dir: &Path, rule_speedup: u32) -> Result<RealStack> {
        Self::up_with(
            cluster,
            dir,
            rule_speedup,
            &real_policy(cluster, "127.0.0.1")?,
        )
    }

    /// Like [`up`](Self::up), with the remediator's policy given.
    pub fn up_with(
        cluster: &RealCluster,
        dir: &Path,
        rule_speedup: u32,
        policy_text: &str,
    ) -> Result<RealStack> {
        let (uid, gid) = cluster.admin_ids()?;
        nix::unistd::chown(
            dir,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .with_context(|| format!("giving {} to the admin", dir.display()))?;
        let exporter = Exporter::start(dir, &cluster.endpoints(), &cluster.env())?;
        let policy = dir.join("policy.yml");
        std::fs::write(&policy, policy_text)?;
        let remediator = Remediator::start_as(dir, &policy, Some((uid, gid)))?;
        let alertmanager = alertmanager_for(dir, &remediator)?;
        let job = |name: &str, address: &str| cluster_job(name, address, REAL_CLUSTER);
        let prometheus = Prometheus::start(
            dir,
            &PrometheusConfig {
                jobs: vec![
                    job("greenplum-exporter", exporter.address()),
                    job("greenplum-remediator", remediator.address()),
                ],
                rule_files: scaled_rules(dir, rule_speedup)?,
                alertmanager: Some(alertmanager.address().to_string()),
                interval: Duration::from_secs(1),
            },
        )?;
        Ok(RealStack {
            prometheus,
            alertmanager,
            remediator,
            exporter,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The demo's policy for the real cluster (its rules: [`DEMO_RULES`]). The catalog endpoints
/// are written with `endpoint_host`; the standby always as `127.0.0.1`.
pub fn real_policy(cluster: &RealCluster, endpoint_host: &str) -> Result<String> {
    let env = cluster.admin_env(TOOL_ENV)?;
    let env: String = env
        .iter()
        .map(|(k, v)| {
            format!(
                "          {k}: {}\n",
                serde_json::to_string(v).unwrap_or_default()
            )
        })
        .collect();
    let coordinator = cluster.coordinator_port();
    let standby_port = cluster
        .standby_port()
        .context("the real stack needs a standby")?;
    let standby_dir = cluster.standby_datadir()?;
    let admin = cluster.version().admin();
    Ok(format!(
        r#"# Written by the e2e real stack for the real cluster it runs against.
clusters:
  - name: {REAL_CLUSTER}
    endpoints: ["{endpoint_host}:{coordinator}", "{endpoint_host}:{standby_port}"]
    user: {admin}
    standby: {{host: 127.0.0.1, port: {standby_port}, datadir: "{standby_dir}"}}
    executor:
      local:
        env:
{env}        overdue_after: 10m
    unreachable_checks: 3

{DEMO_RULES}"#
    ))
}
