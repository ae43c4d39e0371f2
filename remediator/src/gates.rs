//! Gates: pure decisions over a catalog snapshot, the policy and the journal's ledger.
//!
//! `(Snapshot, action, policy, ledger) -> Ok | Refused { gate, why }`. They run when an action
//! is planned and again right before it executes, on a fresh read. A refusal names the gate.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use greenplum_catalog::{EndpointState, Health, ReplicationState, Role, Snapshot, SyncState};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::actions::ActionKind;
use crate::journal::LedgerFacts;
use crate::policy::{time::any_contains, Cluster, Rule};

/// A gate's name is journalled with its refusals (`{"gate": ..., "why": ...}`) and shown by
/// the API; [`Gate::as_str`] is the only place each name is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Paused,
    Breaker,
    Blackout,
    Window,
    Cooldown,
    Budget,
    Catalog,
    Coordinator,
    DoubleFault,
    BlastRadius,
    RecoversegRunning,
    NotSynchronized,
    Lag,
    CoordinatorReachable,
    Standby,
    PlanChanged,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Paused => "paused",
            Gate::Breaker => "breaker",
            Gate::Blackout => "blackout",
            Gate::Window => "window",
            Gate::Cooldown => "cooldown",
            Gate::Budget => "budget",
            Gate::Catalog => "catalog",
            Gate::Coordinator => "coordinator",
            Gate::DoubleFault => "double_fault",
            Gate::BlastRadius => "blast_radius",
            Gate::RecoversegRunning => "recoverseg_running",
            Gate::NotSynchronized => "not_synchronized",
            Gate::Lag => "lag",
            Gate::CoordinatorReachable => "coordinator_reachable",
            Gate::Standby => "standby",
            Gate::PlanChanged => "plan_changed",
        }
    }
}

impl Serialize for Gate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub gate: Gate,
    pub why: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused by gate {}: {}", self.gate.as_str(), self.why)
    }
}

fn refuse(gate: Gate, why: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal {
        gate,
        why: why.into(),
    })
}

/// What the lane knows beyond one snapshot (for `activate_standby`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observations {
    /// Consecutive reads in which no endpoint acted as coordinator.
    pub coordinator_unreachable_checks: u32,
    /// The last sight of the standby while the coordinator answered (journalled, so it
    /// survives a restart of the remediator during the outage).
    pub standby_seen: Option<StandbySeen>,
    /// `$COORDINATOR_DATA_DIRECTORY/gprecoverseg.lock` exists (checked via the executor).
    pub recoverseg_lock_held: bool,
}

/// When the standby was last seen, and whether it was streaming in sync then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandbySeen {
    pub at: DateTime<Utc>,
    pub in_sync: bool,
}

impl StandbySeen {
    /// "12s ago" (or "in the future" for a clock that went back), for refusals and approvers.
    pub fn age(&self, now: DateTime<Utc>) -> String {
        match (now - self.at).to_std() {
            Ok(age) => format!("{}s ago", age.as_secs()),
            Err(_) => "in the future (clock skew)".into(),
        }
    }
}

pub struct GateInput<'a> {
    pub snapshot: &'a Snapshot,
    pub action: ActionKind,
    pub rule: &'a Rule,
    pub cluster: &'a Cluster,
    pub ledger: &'a LedgerFacts,
    pub observations: Observations,
    pub now: DateTime<Utc>,
    /// A person approved this plan: breaker and allowed windows no longer apply (they only
    /// decide whether a person is needed).
    pub approved: bool,
}

/// Every gate, policy ones first (they need no catalog).
pub fn check(input: &GateInput<'_>) -> Result<(), Refusal> {
    policy_gates(input)?;
    cluster_gates(input)
}

pub fn policy_gates(input: &GateInput<'_>) -> Result<(), Refusal> {
    let (rule, ledger, now) = (input.rule, input.ledger, input.now);
    if ledger.paused {
        return refuse(Gate::Paused, "the kill switch is on (resume to act again)");
    }
    if !input.approved && ledger.consecutive_failures >= input.cluster.breaker_failures {
        return refuse(
            Gate::Breaker,
            format!(
                "{} failed verifications in a row (limit {}); reset the breaker after fixing the cause",
                ledger.consecutive_failures, input.cluster.breaker_failures
            ),
        );
    }
    if any_contains(&rule.blackouts, now) {
        return refuse(Gate::Blackout, format!("{now} is inside a blackout"));
    }
    // A rebalance outside its window waits for a person instead (see `needs_approval`).
    if !input.approved
        && input.action != ActionKind::Rebalance
        && !rule.windows.is_empty()
        && !any_contains(&rule.windows, now)
    {
        return refuse(Gate::Window, format!("{now} is outside the rule's windows"));
    }
    if let (Some(cooldown), Some(last)) = (rule.cooldown, ledger.last_execution_at) {
        if now < last + cooldown.chrono() {
            return refuse(
                Gate::Cooldown,
                format!("last run at {last}, cooldown {cooldown}"),
            );
        }
    }
    if let Some(limit) = rule.budget.per_hour {
        if ledger.executions_last_hour >= limit {
            return refuse(Gate::Budget, format!("{limit} per hour already used"));
        }
    }
    if let Some(limit) = rule.budget.per_day {
        if ledger.executions_last_day >= limit {
            return refuse(Gate::Budget, format!("{limit} per day already used"));
        }
    }
    Ok(())
}

fn writable_coordinators(snapshot: &Snapshot) -> usize {
    snapshot
        .endpoints
        .iter()
        .filter(|e| e.state == EndpointState::Coordinator)
        .count()
}

pub fn cluster_gates(input: &GateInput<'_>) -> Result<(), Refusal> {
    let snapshot = input.snapshot;
    if input.action == ActionKind::ActivateStandby {
        return activation_gates(input);
    }
    let writable = writable_coordinators(snapshot);
    if writable != 1 {
        return refuse(
            Gate::Coordinator,
            format!("{writable} writable coordinators answered; exactly one is required"),
        );
    }
    if input.observations.recoverseg_lock_held {
        return refuse(
            Gate::RecoversegRunning,
            "gprecoverseg.lock exists in the coordinator data directory: another gprecoverseg runs",
        );
    }
    let health = match snapshot.health() {
        Some(h) => h,
        None => return refuse(Gate::Catalog, catalog_error(snapshot)),
    };
    if !health.unavailable_contents.is_empty() {
        return refuse(
            Gate::DoubleFault,
            format!(
                "contents {:?} have no up primary; no tool may fix a double fault automatically",
                health.unavailable_contents
            ),
        );
    }
    // On GP6 a double fault leaves the catalog as it was (FTS cannot act): the only sign is
    // every dispatching query failing while some content is unprotected. Never act then.
    if !health.suspected_unavailable_contents.is_empty() {
        return refuse(
            Gate::DoubleFault,
            format!(
                "contents {:?} are unprotected while every dispatch to the segments fails: a suspected double fault",
                health.suspected_unavailable_contents
            ),
        );
    }
    blast_radius(input, &health)?;
    if input.action == ActionKind::Rebalance {
        rebalance_gates(input, &health)?;
    }
    Ok(())
}

fn catalog_error(snapshot: &Snapshot) -> String {
    match &snapshot.segments {
        Err(e) => e.to_string(),
        Ok(_) => "catalog read failed".into(),
    }
}

fn blast_radius(input: &GateInput<'_>, health: &Health) -> Result<(), Refusal> {
    let limits = &input.rule.blast_radius;
    let down = health.down_dbids.len() as u32;
    if let Some(max) = limits.max_down_segments {
        if down > max {
            return refuse(
                Gate::BlastRadius,
                format!("{down} segments down, more than the limit {max}"),
            );
        }
    }
    let hosts = health.hosts_with_down.len() as u32;
    if let Some(max) = limits.max_down_hosts {
        if hosts > max {
            return refuse(
                Gate::BlastRadius,
                format!("{hosts} hosts have down segments, more than the limit {max}"),
            );
        }
    }
    Ok(())
}

fn rebalance_gates(input: &GateInput<'_>, health: &Health) -> Result<(), Refusal> {
    if !health.all_pairs_synchronized() {
        return refuse(
            Gate::NotSynchronized,
            format!(
                "contents {:?} are not up and synchronized; gprecoverseg -r would skip them",
                health.unprotected_contents
            ),
        );
    }
    let mirrors = match &input.snapshot.replication {
        Ok(m) => m,
        Err(e) => return refuse(Gate::Lag, format!("replication unknown: {e}")),
    };
    let limit = input.cluster.rebalance_max_lag_bytes;
    for mirror in mirrors {
        if mirror.state() != ReplicationState::Streaming {
            return refuse(
                Gate::NotSynchronized,
                format!(
                    "content {} replication is {}",
                    mirror.content,
                    mirror.state().as_str()
                ),
            );
        }
        let lag = mirror.lag().unwrap_or_default();
        let total = [lag.send_bytes, lag.flush_bytes, lag.replay_bytes]
            .iter()
            .map(|b| b.unwrap_or(0))
            .sum::<u64>();
        if total > limit {
            return refuse(
                Gate::Lag,
                format!(
                    "content {} is {total} bytes behind (limit {limit})",
                    mirror.content
                ),
            );
        }
    }
    Ok(())
}

fn activation_gates(input: &GateInput<'_>) -> Result<(), Refusal> {
    let snapshot = input.snapshot;
    let writable = writable_coordinators(snapshot);
    if writable > 0 {
        return refuse(
            Gate::CoordinatorReachable,
            format!("{writable} coordinator(s) still accept writes; activating would make two"),
        );
    }
    // A server that answers with an error (too many clients, authentication, shutting
    // down) is alive: a standby activated beside it makes two coordinators as soon as it
    // accepts logins again. Its reads count as unreachable, so only this gate stops it.
    let standby_endpoint = input.cluster.standby.as_ref().map(|s| s.endpoint.clone());
    let refusing: Vec<&str> = snapshot
        .endpoints
        .iter()
        .filter(|e| e.state == EndpointState::Rejecting)
        .filter(|e| Some(&e.endpoint) != standby_endpoint.as_ref())
        .map(|e| e.endpoint.as_str())
        .collect();
    if !refusing.is_empty() {
        return refuse(
            Gate::CoordinatorReachable,
            format!(
                "{} alive but refusing logins: stop it before activating the standby",
                refusing.join(", ")
            ),
        );
    }
    let needed = input.cluster.unreachable_checks;
    let seen = input.observations.coordinator_unreachable_checks;
    if seen < needed {
        return refuse(
            Gate::CoordinatorReachable,
            format!("coordinator unreachable on {seen} consecutive checks, {needed} required"),
        );
    }
    let Some(standby) = &input.cluster.standby else {
        return refuse(Gate::Standby, "the policy names no standby");
    };
    let endpoint = &standby.endpoint;
    let alive = snapshot
        .endpoints
        .iter()
        .any(|e| &e.endpoint == endpoint && e.state == EndpointState::StandbyInRecovery);
    if !alive {
        return refuse(
            Gate::Standby,
            format!("standby {endpoint} is not alive in recovery"),
        );
    }
    match input.observations.standby_seen {
        Some(seen) if seen.in_sync => {}
        Some(seen) => {
            return refuse(
                Gate::Standby,
                format!(
                    "the standby was not last seen streaming in sync (last seen {}): it may \
                     miss committed data",
                    seen.age(input.now)
                ),
            )
        }
        None => {
            return refuse(
                Gate::Standby,
                "the standby was not last seen streaming in sync (never seen while the \
                 coordinator answered): it may miss committed data",
            )
        }
    }
    Ok(())
}

/// Does this plan need a person? (Policy says so, the action is never automatic, a rebalance
/// outside its window, or a dbid that keeps failing.)
pub fn approval_reason(
    rule: &Rule,
    cluster: &Cluster,
    targets: &[i16],
    ledger: &LedgerFacts,
    now: DateTime<Utc>,
) -> Option<String> {
    if rule.approval == crate::policy::Approval::Required {
        return Some("the rule requires approval".into());
    }
    if rule.action.never_automatic() {
        return Some(format!("{} is never automatic", rule.action));
    }
    if rule.action == ActionKind::Rebalance && !any_contains(&rule.windows, now) {
        return Some("rebalance outside its window cancels queries".into());
    }
    let flapping: Vec<i16> = targets
        .iter()
        .copied()
        .filter(|d| {
            ledger.executions_by_dbid_24h.get(d).copied().unwrap_or(0) >= cluster.flap_limit
        })
        .collect();
    if !flapping.is_empty() {
        return Some(format!(
            "dbids {flapping:?} were recovered {} or more times in 24 h (flapping)",
            cluster.flap_limit
        ));
    }
    None
}

/// What an action would act on, from the catalog (never from labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Segment dbids (or the standby's dbid) the action acts on.
    Targets(Vec<i16>),
    /// Nothing to do: the cluster already is as the action would leave it.
    NoOp(String),
    /// The catalog could not tell.
    Unknown(String),
}

pub fn scope(action: ActionKind, snapshot: &Snapshot) -> Scope {
    if action == ActionKind::ActivateStandby {
        return if snapshot.coordinator_up() {
            Scope::NoOp("a coordinator answers".into())
        } else {
            Scope::Targets(Vec::new())
        };
    }
    let Ok(segments) = &snapshot.segments else {
        return Scope::Unknown(catalog_error(snapshot));
    };
    let health = Health::from_segments(segments);
    let targets: BTreeSet<i16> = match action {
        ActionKind::Recover | ActionKind::RecoverFull => health.down_dbids.clone(),
        ActionKind::Rebalance => health.role_mismatch_dbids.clone(),
        ActionKind::StartStandby => {
            let Some(row) = snapshot.standby_row() else {
                return Scope::NoOp("no standby is configured".into());
            };
            if standby_streaming(snapshot) {
                BTreeSet::new()
            } else {
                BTreeSet::from([row.dbid])
            }
        }
        ActionKind::InitStandby => {
            if snapshot.standby_row().is_some() {
                BTreeSet::new()
            } else {
                // The new standby has no dbid yet; -1 stands for "the coordinator tier".
                BTreeSet::from([-1])
            }
        }
        ActionKind::ActivateStandby => BTreeSet::new(),
    };
    if targets.is_empty() {
        Scope::NoOp(format!(
            "nothing for {action} to do: {}",
            health.state().as_str()
        ))
    } else {
        Scope::Targets(targets.into_iter().collect())
    }
}

pub fn standby_streaming(snapshot: &Snapshot) -> bool {
    snapshot
        .standby
        .as_ref()
        .ok()
        .and_then(|s| s.walsender.as_ref())
        .is_some_and(|w| w.state == ReplicationState::Streaming)
}

pub fn standby_in_sync(snapshot: &Snapshot) -> bool {
    snapshot
        .standby
        .as_ref()
        .ok()
        .and_then(|s| s.walsender.as_ref())
        .is_some_and(|w| {
            w.state == ReplicationState::Streaming && w.sync_state == Some(SyncState::Sync)
        })
}

/// Digest of the catalog state a plan was made on. An approval binds to it: if the segment
/// tier changes (roles, status, hosts), the plan is stale and is not executed.
pub fn digest(snapshot: &Snapshot) -> String {
    let mut hasher = Sha256::new();
    hasher.update(snapshot.acting_coordinator.as_deref().unwrap_or("-"));
    if let Ok(segments) = &snapshot.segments {
        let mut rows: Vec<_> = segments.iter().collect();
        rows.sort_by_key(|s| s.dbid);
        for s in rows {
            let role = |r: Role| r.as_str();
            hasher.update(format!(
                "|{}:{}:{}:{}:{}:{}:{}",
                s.dbid,
                s.content,
                role(s.role),
                role(s.preferred_role),
                s.is_up(),
                s.hostname,
                s.port
            ));
        }
    }
    let bytes = hasher.finalize();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
