//! Planning: one serialized lane per cluster.
//!
//! `dedup -> match -> fresh catalog read -> scope -> gates -> approval -> run -> verify`, each
//! step journalled. The journal, not memory, is the source of truth, so a restart loses
//! nothing: undecided events are planned again and running actions are re-attached.

mod check;
mod execute;
mod lane;
mod plan;
mod reattach;
mod run;
mod verification;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::decision::Decision;
use crate::executor::Executor;
use crate::journal::{group, ActionState, Approval, Journal, NewDecision, StoredEvent};
use crate::metrics::Metrics;
use crate::policy::{Cluster, Policy};
use crate::source::CatalogSource;

/// Builds the per-cluster catalog source and executor (the real ones, or test doubles).
pub trait Backends: Send + Sync {
    fn source(&self, cluster: &Cluster) -> Box<dyn CatalogSource>;
    fn executor(&self, cluster: &Cluster) -> Arc<dyn Executor>;
}

pub struct PlannerConfig {
    pub journal: Arc<dyn Journal>,
    pub metrics: Arc<Metrics>,
    pub policy: Arc<Policy>,
    /// Command logs go to `run_dir/CLUSTER/ACTION_ID.log`.
    pub run_dir: PathBuf,
    /// How often undecided events are re-read and approvals expired.
    pub sweep_interval: Duration,
}

pub(crate) enum LaneMsg {
    Event(StoredEvent),
    /// An event whose `for` has elapsed (already known to the lane).
    Delayed(StoredEvent),
    Decide {
        id: i64,
        approval: Approval,
        reply: oneshot::Sender<Result<ActionState, String>>,
    },
    Execute(i64),
    Tick,
    /// A catalog read without any alert (see `Settings::watch_interval`).
    Watch,
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("action {0} does not exist")]
    NotFound(i64),
    #[error("{0}")]
    Conflict(String),
    #[error("the cluster's lane is busy (an action runs); the decision is queued")]
    Busy,
    #[error("journal: {0}")]
    Journal(String),
}

#[derive(Clone)]
pub struct Handle {
    lanes: Arc<BTreeMap<String, mpsc::UnboundedSender<LaneMsg>>>,
    journal: Arc<dyn Journal>,
    metrics: Arc<Metrics>,
    cluster_label: String,
}

impl Handle {
    /// Routes journalled events to their cluster's lane. An event for no configured
    /// cluster is decided here and never acted on; that decision is queued for the journal's
    /// next group commit, so the caller (the webhook's handler) never waits on the disk.
    pub fn submit(&self, events: Vec<StoredEvent>) {
        let mut unknown = Vec::new();
        for event in events {
            let cluster = event.labels.get(&self.cluster_label);
            match cluster.and_then(|c| self.lanes.get(c)) {
                Some(lane) => {
                    // A closed lane only happens at shutdown; the event stays undecided in
                    // the journal and is planned after the restart.
                    let _ = lane.send(LaneMsg::Event(event));
                }
                None => unknown.push(NewDecision {
                    event_id: event.id,
                    decision: Decision::UnknownCluster.as_str(),
                    detail: format!("label {:?} names no configured cluster", self.cluster_label),
                    action_id: None,
                }),
            }
        }
        let metrics = self.metrics.clone();
        group::queue_decisions(&self.journal, unknown, move |written| match written {
            // An event the sweeper submitted again while its decision was queued is not
            // decided (nor counted) twice.
            Ok(written) => written
                .into_iter()
                .filter(|&w| w)
                .for_each(|_| metrics.count_event(Decision::UnknownCluster.as_str())),
            Err(e) => {
                // The events stay undecided and the next sweep decides them.
                metrics.journal_errors.inc();
                tracing::error!(error = %e, "cannot record unknown-cluster decisions");
            }
        });
    }

    /// Approve or reject an action through its lane (so it is serialized with execution).
    pub async fn decide(&self, id: i64, approval: Approval) -> Result<ActionState, DecideError> {
        let record = self
            .journal
            .action(id)
            .map_err(|e| DecideError::Journal(e.to_string()))?
            .ok_or(DecideError::NotFound(id))?;
        let lane = self.lanes.get(&record.plan.cluster).ok_or_else(|| {
            DecideError::Conflict(format!("cluster {} is not configured", record.plan.cluster))
        })?;
        let (reply, answer) = oneshot::channel();
        lane.send(LaneMsg::Decide {
            id,
            approval,
            reply,
        })
        .map_err(|_| DecideError::Conflict("the planner is shutting down".into()))?;
        match tokio::time::timeout(Duration::from_secs(10), answer).await {
            Ok(Ok(result)) => result.map_err(DecideError::Conflict),
            Ok(Err(_)) => Err(DecideError::Conflict("the lane stopped".into())),
            Err(_) => Err(DecideError::Busy),
        }
    }

    fn tick(&self) {
        for lane in self.lanes.values() {
            let _ = lane.send(LaneMsg::Tick);
        }
    }
}

/// Starts one lane per configured cluster and the sweeper; returns the handle the webhook
/// and the API use.
pub fn start(config: PlannerConfig, backends: Arc<dyn Backends>) -> Handle {
    let mut lanes = BTreeMap::new();
    for cluster in config.policy.clusters.iter().map(|c| &c.value) {
        let (tx, rx) = mpsc::unbounded_channel();
        let lane = lane::Lane::new(
            cluster.clone(),
            &config,
            backends.source(cluster),
            backends.executor(cluster),
            tx.clone(),
        );
        tokio::spawn(lane.run(rx));
        lanes.insert(cluster.name.clone(), tx);
    }
    let handle = Handle {
        lanes: Arc::new(lanes),
        journal: config.journal.clone(),
        metrics: config.metrics.clone(),
        cluster_label: config.policy.settings.cluster_label.clone(),
    };
    let sweeper = handle.clone();
    let journal = config.journal.clone();
    let metrics = config.metrics.clone();
    let interval = config.sweep_interval;
    tokio::spawn(async move {
        loop {
            // First pass at once: events left undecided by a previous run. Read on the
            // blocking pool: after an outage the backlog can be large, and the journal's
            // lock is shared with the group commit the webhook waits on.
            let reader = journal.clone();
            match tokio::task::spawn_blocking(move || reader.undecided_events()).await {
                Ok(Ok(events)) => sweeper.submit(events),
                Ok(Err(e)) => {
                    metrics.journal_errors.inc();
                    tracing::error!(error = %e, "cannot read undecided events");
                }
                Err(e) => {
                    metrics.journal_errors.inc();
                    tracing::error!(error = %e, "the undecided-events read failed");
                }
            }
            sweeper.tick();
            tokio::time::sleep(interval).await;
        }
    });
    handle
}

#[cfg(test)]
mod tests;
