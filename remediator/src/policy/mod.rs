//! The policy file: which clusters exist, how to reach and act on them, and which alerts may
//! lead to which action under which limits.
//!
//! Every struct denies unknown fields and actions are a closed enum, so no free-form command
//! can be expressed. Loading reports every problem with the line it is on.

pub mod matcher;
pub mod ssh;
pub mod standby;
pub mod time;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use greenplum_catalog::ClusterConnection;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::actions::ActionKind;
pub use matcher::Matcher;
pub use time::{PolicyDuration, Window};

/// Environment variables an executor may set or pass through. Anything else is refused at
/// load time: the tools need no more, and a cleared environment cannot smuggle in
/// `LD_PRELOAD`-style surprises.
pub const ENV_ALLOWLIST: &[&str] = &[
    "GPHOME",
    "PATH",
    "COORDINATOR_DATA_DIRECTORY",
    "MASTER_DATA_DIRECTORY",
    "PGPORT",
    "PGHOST",
    "PGUSER",
    "PGDATABASE",
    "PGPASSFILE",
    "PGAPPNAME",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TZ",
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub clusters: Vec<Spanned<Cluster>>,
    pub rules: Vec<Spanned<Rule>>,
    #[serde(default)]
    pub settings: Settings,
    /// The directory of the policy file: relative paths in it (password and TLS files) are
    /// relative to it, as in the exporter's `--config.file`. Empty for parsed text.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// One cluster: how to reach it (the connection keys, shared with the exporter's
/// `--config.file`: [`ClusterConnection`]) and how to act on it.
///
/// The connection keys sit beside the others; `remote = "Self"` keeps serde's derived
/// parser (and its refusal of unknown keys) for the other keys, while the `Deserialize`
/// below takes the connection keys out first.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    /// Endpoints (coordinator and standby, probed for catalog reads), user, database,
    /// password file, TLS and timeouts of the catalog reads.
    #[serde(skip)]
    pub connection: ClusterConnection,
    /// The standby coordinator, for `init_standby` (host) and `activate_standby` (all).
    #[serde(default)]
    pub standby: Option<Standby>,
    pub executor: Executor,
    /// Failed verifications in a row that open the breaker.
    #[serde(default = "default_breaker")]
    pub breaker_failures: u32,
    /// A dbid recovered more often than this in 24 h needs a person.
    #[serde(default = "default_flap")]
    pub flap_limit: u32,
    /// `activate_standby`: consecutive checks that must find the coordinator unreachable.
    #[serde(default = "default_unreachable_checks")]
    pub unreachable_checks: u32,
    /// `rebalance`: largest replication lag (bytes) any mirror may have.
    #[serde(default = "default_rebalance_lag")]
    pub rebalance_max_lag_bytes: u64,
}

impl<'de> Deserialize<'de> for Cluster {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (connection, mut cluster) =
            greenplum_catalog::connection::deserialize_with::<D, ClusterKeys>(deserializer)?;
        cluster.0.connection = connection;
        Ok(cluster.0)
    }
}

/// A cluster's keys other than the connection keys, by serde's derived parser.
struct ClusterKeys(Cluster);

impl<'de> Deserialize<'de> for ClusterKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The inherent `Cluster::deserialize` that `remote = "Self"` derives (not the trait's).
        Cluster::deserialize(deserializer).map(ClusterKeys)
    }
}

fn default_port() -> u16 {
    5432
}
fn default_breaker() -> u32 {
    3
}
fn default_flap() -> u32 {
    3
}
fn default_unreachable_checks() -> u32 {
    3
}
fn default_rebalance_lag() -> u64 {
    16 * 1024 * 1024
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standby {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub datadir: Option<String>,
    /// The cluster endpoint that is this standby (matched when the policy is loaded, by
    /// text or by address: see `standby.rs`); what the gates look for in a snapshot.
    #[serde(skip)]
    pub endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Executor {
    Local(LocalExecutor),
    Ssh(SshExecutor),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalExecutor {
    /// Fixed values (names must be in the allowlist).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names copied from the remediator's own environment (allowlist only).
    #[serde(default)]
    pub pass_env: Vec<String>,
    #[serde(default = "default_overdue")]
    pub overdue_after: PolicyDuration,
    /// Where command output is written while it runs (default: next to the journal).
    #[serde(default)]
    pub run_dir: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshExecutor {
    /// Fixed argv prefix, e.g. `[/usr/bin/ssh, -i, /etc/greenplum-remediator/id_ed25519]`.
    /// `-o BatchMode=yes`, the user and the host (from the catalog) are appended.
    pub argv_prefix: Vec<String>,
    pub user: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_overdue")]
    pub overdue_after: PolicyDuration,
    #[serde(default)]
    pub run_dir: Option<String>,
}

fn default_overdue() -> PolicyDuration {
    PolicyDuration(std::time::Duration::from_secs(3600))
}

impl Executor {
    pub fn env(&self) -> &BTreeMap<String, String> {
        match self {
            Executor::Local(l) => &l.env,
            Executor::Ssh(s) => &s.env,
        }
    }

    pub fn overdue_after(&self) -> PolicyDuration {
        match self {
            Executor::Local(l) => l.overdue_after,
            Executor::Ssh(s) => s.overdue_after,
        }
    }

    pub fn run_dir(&self) -> Option<&str> {
        match self {
            Executor::Local(l) => l.run_dir.as_deref(),
            Executor::Ssh(s) => s.run_dir.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    Auto,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    DryRun,
    Observe,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMatch {
    pub alertname: String,
    /// Alertmanager matchers on the alert's labels, all of which must match.
    #[serde(default)]
    pub labels: Vec<Matcher>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default)]
    pub per_hour: Option<u32>,
    #[serde(default)]
    pub per_day: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlastRadius {
    #[serde(default)]
    pub max_down_segments: Option<u32>,
    #[serde(default)]
    pub max_down_hosts: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Clusters this rule applies to (all when empty).
    #[serde(default)]
    pub clusters: Vec<String>,
    #[serde(rename = "match")]
    pub matches: RuleMatch,
    pub action: ActionKind,
    pub approval: Approval,
    /// The alert must have been firing this long.
    #[serde(default, rename = "for")]
    pub for_: Option<PolicyDuration>,
    #[serde(default)]
    pub cooldown: Option<PolicyDuration>,
    /// When non-empty, automatic execution only inside one of these.
    #[serde(default)]
    pub windows: Vec<Window>,
    #[serde(default)]
    pub blackouts: Vec<Window>,
    #[serde(default)]
    pub budget: Budget,
    #[serde(default)]
    pub blast_radius: BlastRadius,
    #[serde(default)]
    pub mode: Mode,
}

impl Rule {
    pub fn matches(&self, alertname: &str, labels: &BTreeMap<String, String>) -> bool {
        self.matches.alertname == alertname && self.matches.labels.iter().all(|m| m.matches(labels))
    }

    pub fn applies_to(&self, cluster: &str) -> bool {
        self.clusters.is_empty() || self.clusters.iter().any(|c| c == cluster)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The alert label naming the cluster (its value selects a cluster of this file).
    #[serde(default = "default_cluster_label")]
    pub cluster_label: String,
    #[serde(default = "default_approval_ttl")]
    pub approval_ttl: PolicyDuration,
    #[serde(default = "default_up_deadline")]
    pub verify_up_deadline: PolicyDuration,
    #[serde(default = "default_sync_deadline")]
    pub verify_sync_deadline: PolicyDuration,
    #[serde(default = "default_poll")]
    pub verify_poll_interval: PolicyDuration,
    /// How often each lane reads its cluster without any alert, so that it remembers what
    /// `activate_standby` must prove: the standby was last seen streaming in sync, and the
    /// coordinator has been unreachable on consecutive checks.
    #[serde(default = "default_watch")]
    pub watch_interval: PolicyDuration,
}

fn default_watch() -> PolicyDuration {
    PolicyDuration(std::time::Duration::from_secs(15))
}

fn default_cluster_label() -> String {
    "cluster".into()
}
fn default_approval_ttl() -> PolicyDuration {
    PolicyDuration(std::time::Duration::from_secs(3600))
}
fn default_up_deadline() -> PolicyDuration {
    PolicyDuration(std::time::Duration::from_secs(600))
}
fn default_sync_deadline() -> PolicyDuration {
    PolicyDuration(std::time::Duration::from_secs(6 * 3600))
}
fn default_poll() -> PolicyDuration {
    PolicyDuration(std::time::Duration::from_secs(10))
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cluster_label: default_cluster_label(),
            approval_ttl: default_approval_ttl(),
            verify_up_deadline: default_up_deadline(),
            verify_sync_deadline: default_sync_deadline(),
            verify_poll_interval: default_poll(),
            watch_interval: default_watch(),
        }
    }
}

/// One problem in a policy file, with its position when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyIssue {
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

impl fmt::Display for PolicyIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("policy {path} is invalid:\n{}", issues.iter().map(|i| format!("  {path}: {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        issues: Vec<PolicyIssue>,
    },
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut policy = Policy::parse(&text).map_err(|issues| PolicyError::Invalid {
            path: path.display().to_string(),
            issues,
        })?;
        policy.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(policy)
    }

    pub fn parse(text: &str) -> Result<Policy, Vec<PolicyIssue>> {
        let policy: Policy = greenplum_catalog::yaml::from_str(text).map_err(|e| {
            vec![PolicyIssue {
                line: e.line,
                column: e.column,
                message: e.message,
            }]
        })?;
        let mut policy = policy;
        let mut issues = policy.match_standbys();
        issues.extend(policy.validate());
        if issues.is_empty() {
            Ok(policy)
        } else {
            Err(issues)
        }
    }

    /// Finds each standby's endpoint (see `standby.rs`); a standby that is none of its
    /// cluster's endpoints is an issue on the cluster's line.
    fn match_standbys(&mut self) -> Vec<PolicyIssue> {
        let mut issues = Vec::new();
        for cluster in &mut self.clusters {
            let line = Some(cluster.referenced.line());
            let value = &mut cluster.value;
            let Some(standby) = value.standby.as_mut() else {
                continue;
            };
            match standby::standby_endpoint(standby, &value.connection.endpoints) {
                Ok(endpoint) => standby.endpoint = endpoint,
                Err(why) => issues.push(issue(line, format!("cluster {:?}: {why}", value.name))),
            }
        }
        issues
    }

    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters
            .iter()
            .map(|c| &c.value)
            .find(|c| c.name == name)
    }

    /// The first rule that applies to the cluster and matches the alert.
    pub fn rule_for(
        &self,
        cluster: &str,
        alertname: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<&Rule> {
        self.rules
            .iter()
            .map(|r| &r.value)
            .find(|r| r.applies_to(cluster) && r.matches(alertname, labels))
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().map(|r| &r.value).find(|r| r.name == name)
    }

    fn validate(&self) -> Vec<PolicyIssue> {
        let mut issues = Vec::new();
        let mut names = BTreeSet::new();
        if self.clusters.is_empty() {
            issues.push(issue(None, "at least one cluster is required".into()));
        }
        for cluster in &self.clusters {
            let line = Some(cluster.referenced.line());
            if !names.insert(cluster.value.name.clone()) {
                issues.push(issue(
                    line,
                    format!("cluster {:?} is defined twice", cluster.value.name),
                ));
            }
            validate_cluster(&cluster.value, line, &mut issues);
        }
        let mut rule_names = BTreeSet::new();
        for rule in &self.rules {
            let line = Some(rule.referenced.line());
            if !rule_names.insert(rule.value.name.clone()) {
                issues.push(issue(
                    line,
                    format!("rule {:?} is defined twice", rule.value.name),
                ));
            }
            self.validate_rule(&rule.value, line, &mut issues);
        }
        issues
    }

    fn validate_rule(&self, rule: &Rule, line: Option<u64>, issues: &mut Vec<PolicyIssue>) {
        let named = |m: String| format!("rule {:?}: {m}", rule.name);
        if rule.matches.alertname.trim().is_empty() {
            issues.push(issue(
                line,
                named("match.alertname must not be empty".into()),
            ));
        }
        if rule.approval == Approval::Auto && rule.action.never_automatic() {
            issues.push(issue(
                line,
                named(format!(
                    "{} can never be automatic: set approval: required",
                    rule.action
                )),
            ));
        }
        if rule.approval == Approval::Auto
            && rule.action == ActionKind::Rebalance
            && rule.windows.is_empty()
        {
            issues.push(issue(
                line,
                named(
                    "an automatic rebalance cancels running queries: give it windows, or set \
                     approval: required"
                        .into(),
                ),
            ));
        }
        if rule.budget.per_hour == Some(0) || rule.budget.per_day == Some(0) {
            issues.push(issue(
                line,
                named("a budget of 0 forbids the action: remove the rule instead".into()),
            ));
        }
        for name in &rule.clusters {
            if self.cluster(name).is_none() {
                issues.push(issue(line, named(format!("unknown cluster {name:?}"))));
            }
        }
        let targets: Vec<&Cluster> = if rule.clusters.is_empty() {
            self.clusters.iter().map(|c| &c.value).collect()
        } else {
            rule.clusters
                .iter()
                .filter_map(|n| self.cluster(n))
                .collect()
        };
        for cluster in targets {
            let standby = cluster.standby.as_ref();
            let missing = match rule.action {
                ActionKind::InitStandby if standby.is_none() => Some("standby.host"),
                ActionKind::ActivateStandby
                    if standby.and_then(|s| s.datadir.as_ref()).is_none() =>
                {
                    Some("standby.datadir")
                }
                _ => None,
            };
            if let Some(missing) = missing {
                issues.push(issue(
                    line,
                    named(format!(
                        "{} on cluster {:?} needs {missing} in the cluster",
                        rule.action, cluster.name
                    )),
                ));
            }
        }
    }
}

fn validate_cluster(cluster: &Cluster, line: Option<u64>, issues: &mut Vec<PolicyIssue>) {
    let named = |m: String| format!("cluster {:?}: {m}", cluster.name);
    if cluster.name.trim().is_empty() {
        issues.push(issue(line, "cluster name must not be empty".into()));
    }
    // Empty `endpoints` is refused while parsing, with its line, as in the exporter.
    if let Err(error) = cluster.connection.endpoints() {
        issues.push(issue(line, named(error.to_string())));
    }
    if cluster.breaker_failures == 0 {
        issues.push(issue(
            line,
            named("breaker_failures must be at least 1".into()),
        ));
    }
    if cluster.unreachable_checks == 0 {
        issues.push(issue(
            line,
            named("unreachable_checks must be at least 1".into()),
        ));
    }
    let mut env_names: Vec<&String> = cluster.executor.env().keys().collect();
    if let Executor::Local(local) = &cluster.executor {
        env_names.extend(local.pass_env.iter());
    }
    for name in env_names {
        if !ENV_ALLOWLIST.contains(&name.as_str()) {
            issues.push(issue(
                line,
                named(format!(
                    "environment variable {name:?} is not allowed (allowed: {})",
                    ENV_ALLOWLIST.join(", ")
                )),
            ));
        }
    }
    if let Executor::Ssh(ssh) = &cluster.executor {
        if let Some(problem) = ssh::prefix_problem(&ssh.argv_prefix) {
            issues.push(issue(line, named(problem)));
        }
        if ssh.user.trim().is_empty() || ssh.user.starts_with('-') {
            issues.push(issue(line, named("ssh.user must be a user name".into())));
        }
    }
}

fn issue(line: Option<u64>, message: String) -> PolicyIssue {
    PolicyIssue {
        line,
        column: None,
        message,
    }
}

#[cfg(test)]
pub(crate) mod tests;
