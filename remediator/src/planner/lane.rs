//! One cluster's lane: everything for a cluster happens here, one thing at a time.
//!
//! This file holds the lane's state and the bookkeeping every step shares (journalling a
//! decision or a state change, counting it, a fresh catalog read, the gauges). The steps
//! live beside it, each an `impl Lane` of its own: `run` (ownership, messages, ticks),
//! `plan` (an event becomes a plan), `check` (the gates a plan passes when it is made and
//! again before it runs), `execute`, `verification` and `reattach`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::Utc;
use greenplum_catalog::Snapshot;
use tokio::sync::mpsc;

use super::{LaneMsg, PlannerConfig};
use crate::actions::ActionKind;
use crate::decision::Decision;
use crate::executor::Executor;
use crate::gates;
use crate::journal::{
    ActionState, Journal, JournalError, StandbySighting, StateChange, StoredEvent,
};
use crate::metrics::Metrics;
use crate::policy::{Cluster, Policy};
use crate::source::CatalogSource;

#[derive(Debug, thiserror::Error)]
pub(super) enum LaneError {
    #[error(transparent)]
    Journal(#[from] JournalError),
}

pub(super) type LaneResult<T> = Result<T, LaneError>;

pub(super) struct Lane {
    pub(super) cluster: Cluster,
    pub(super) policy: Arc<Policy>,
    pub(super) journal: Arc<dyn Journal>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) source: Box<dyn CatalogSource>,
    pub(super) executor: Arc<dyn Executor>,
    pub(super) run_dir: PathBuf,
    pub(super) tx: mpsc::UnboundedSender<LaneMsg>,
    /// Events queued or waiting for their `for`; redeliveries by the sweeper are skipped.
    pub(super) known: HashSet<i64>,
    pub(super) unreachable_checks: u32,
    /// The last sight of the standby while the coordinator answered, as journalled.
    pub(super) standby_sighting: Option<StandbySighting>,
    /// A `Watch` is queued and not yet handled (see `run::watch_ticks`).
    pub(super) watch_pending: Arc<AtomicBool>,
}

pub(super) fn change(state: ActionState, detail: serde_json::Value) -> StateChange {
    StateChange {
        at: Utc::now(),
        state,
        detail,
    }
}

impl Lane {
    pub(super) fn new(
        cluster: Cluster,
        config: &PlannerConfig,
        source: Box<dyn CatalogSource>,
        executor: Arc<dyn Executor>,
        tx: mpsc::UnboundedSender<LaneMsg>,
    ) -> Self {
        let run_dir = config.run_dir.join(&cluster.name);
        Lane {
            cluster,
            policy: config.policy.clone(),
            journal: config.journal.clone(),
            metrics: config.metrics.clone(),
            source,
            executor,
            run_dir,
            tx,
            known: HashSet::new(),
            unreachable_checks: 0,
            standby_sighting: None,
            watch_pending: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(super) fn log_error(&self, e: &LaneError) {
        match e {
            LaneError::Journal(j) => self.journal_error(j),
        }
    }

    pub(super) fn journal_error(&self, e: &JournalError) {
        self.metrics.journal_errors.inc();
        tracing::error!(cluster = %self.cluster.name, error = %e, "journal failed; the work stays undecided and is retried");
    }

    /// A fresh catalog read, also feeding what `activate_standby` needs to remember.
    pub(super) async fn read(&mut self) -> Snapshot {
        let snapshot = self.source.snapshot().await;
        if snapshot.coordinator_up() {
            self.unreachable_checks = 0;
            self.see_standby(&snapshot);
        } else {
            self.unreachable_checks = self.unreachable_checks.saturating_add(1);
        }
        snapshot
    }

    /// Remembers, and journals, how the standby looked in a read where the coordinator
    /// answered. A read whose standby source failed saw nothing and changes nothing. The
    /// journal is written when the answer changes, or at most every [`SIGHTING_REFRESH`].
    fn see_standby(&mut self, snapshot: &Snapshot) {
        let Ok(standby) = &snapshot.standby else {
            return;
        };
        let (at, in_sync) = (snapshot.taken_at, gates::standby_in_sync(snapshot));
        let changed = self
            .standby_sighting
            .as_ref()
            .is_none_or(|last| last.in_sync != in_sync);
        let due = self.standby_sighting.as_ref().is_some_and(|last| {
            (at - last.at)
                .to_std()
                .map_or(true, |age| age >= SIGHTING_REFRESH)
        });
        // Most reads change nothing: only then is the sighting built and journalled.
        if !changed && !due {
            return;
        }
        let sighting = StandbySighting {
            at,
            in_sync,
            detail: serde_json::json!({
                "walsender": standby.walsender,
                "coordinator_current": standby.coordinator_current,
            }),
            seen_by: seen_by(),
        };
        match self
            .journal
            .record_standby_sighting(&self.cluster.name, &sighting)
        {
            // Said once per change: activation depends on it.
            Ok(()) if changed => tracing::info!(
                cluster = %self.cluster.name,
                in_sync,
                "standby sighting journalled"
            ),
            Ok(()) => {}
            Err(e) => self.journal_error(&e),
        }
        self.standby_sighting = Some(sighting);
    }

    /// The journalled sight of the standby, after a (re)start: a remediator restarted during
    /// a coordinator outage still knows whether the standby was in sync before it.
    pub(super) fn recall_standby(&mut self) {
        match self.journal.standby_sighting(&self.cluster.name) {
            Ok(sighting) => self.standby_sighting = sighting,
            Err(e) => self.journal_error(&e),
        }
    }

    /// Journals and counts what became of an event.
    pub(super) fn decided(
        &mut self,
        event: &StoredEvent,
        decision: Decision,
        detail: &str,
        action: Option<i64>,
    ) -> LaneResult<()> {
        let name = decision.as_str();
        self.journal
            .record_decision(event.id, name, detail, action)?;
        self.known.remove(&event.id);
        self.metrics.count_event(name);
        tracing::info!(cluster = %self.cluster.name, event = event.id, alertname = %event.alertname, decision = name, detail, "event decided");
        Ok(())
    }

    pub(super) fn count(&self, action: ActionKind, state: ActionState) {
        if let Some(result) = state.result_label() {
            self.metrics
                .count_action(&self.cluster.name, action, result);
        }
    }

    pub(super) fn transition(
        &self,
        id: i64,
        action: ActionKind,
        state: ActionState,
        detail: serde_json::Value,
    ) -> LaneResult<()> {
        self.journal.record_state(id, &change(state, detail))?;
        self.count(action, state);
        tracing::info!(cluster = %self.cluster.name, action = %action, id, state = state.as_str(), "action state");
        Ok(())
    }

    /// Where a command runs: the acting coordinator's host from the catalog (else from the
    /// acting endpoint), or the standby's for an action that runs there.
    pub(super) fn command_host(&self, action: ActionKind, snapshot: &Snapshot) -> Option<String> {
        if action.runs_on_standby_host() {
            return self.cluster.standby.as_ref().map(|s| s.host.clone());
        }
        let from_rows = snapshot
            .acting_coordinator_row()
            .map(|s| s.hostname.clone());
        from_rows.or_else(|| {
            snapshot
                .acting_coordinator
                .as_deref()
                .and_then(|e| e.rsplit_once(':').map(|(h, _)| h.to_string()))
        })
    }

    pub(super) fn update_gauges(&self) -> LaneResult<()> {
        let pending = self
            .journal
            .actions(Some(ActionState::AwaitingApproval))?
            .iter()
            .filter(|a| a.cluster == self.cluster.name)
            .count();
        let labels = crate::metrics::ClusterLabels {
            cluster: self.cluster.name.clone(),
        };
        self.metrics
            .pending_approvals
            .get_or_create(&labels)
            .set(pending as i64);
        // The breaker counts failures across rules; the rule name does not matter here.
        let ledger = self.journal.ledger(&self.cluster.name, "", Utc::now())?;
        let open = ledger.consecutive_failures >= self.cluster.breaker_failures;
        self.metrics
            .breaker_open
            .get_or_create(&labels)
            .set(i64::from(open));
        self.metrics.paused.set(i64::from(ledger.paused));
        Ok(())
    }
}

/// How often an unchanged sight of the standby is journalled again (its time is what the
/// approver of an activation sees as the age of the evidence).
const SIGHTING_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// Which remediator saw it: host name and process id.
fn seen_by() -> String {
    let host = crate::executor::this_host().unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}
