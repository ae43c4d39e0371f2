//! The lane's run loop: who owns the lane, what each message does, ticks and watches.
//!
//! With a shared journal several replicas start a lane for the same cluster; only the one
//! holding the journal's lane lock plans and executes, the others answer approvals and
//! stand by. Everything the owner does comes in as a [`LaneMsg`], handled one at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::mpsc;

use super::lane::{Lane, LaneResult};
use super::LaneMsg;
use crate::journal::ActionState;

/// How often a standby replica tries to take a lane over.
const LANE_RETRY: Duration = Duration::from_secs(1);

/// Queues a `Watch` every `every`, but never while the previous one waits: when reads are
/// slow (a locked catalog costs a statement timeout per read) an unbounded backlog of
/// watches would delay every alert queued behind it (the e2e fault matrix saw a delivery
/// decided three minutes late).
async fn watch_ticks(
    tx: mpsc::UnboundedSender<LaneMsg>,
    every: Duration,
    pending: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(every).await;
        if pending.swap(true, Ordering::AcqRel) {
            continue;
        }
        if tx.send(LaneMsg::Watch).is_err() {
            return;
        }
    }
}

impl Lane {
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<LaneMsg>) {
        let mut watching = false;
        loop {
            if !self.acquire(&mut rx).await {
                return;
            }
            if let Err(e) = self.reattach().await {
                self.log_error(&e);
            }
            self.recall_standby();
            // Know the cluster before the first alert: after a coordinator dies it is too
            // late to learn whether the standby was streaming in sync.
            self.read().await;
            if !watching {
                self.spawn_watch();
                watching = true;
            }
            loop {
                let Some(msg) = rx.recv().await else {
                    return;
                };
                if matches!(msg, LaneMsg::Tick) && !self.still_owner() {
                    break;
                }
                self.handle(msg).await;
            }
        }
    }

    /// Waits until this replica may run the lane (always at once with a one-process
    /// journal). Meanwhile the owner does the work from the shared journal: events are left
    /// to its sweeps, and decisions are journalled here for its tick to execute. False when
    /// the planner shuts down.
    async fn acquire(&mut self, rx: &mut mpsc::UnboundedReceiver<LaneMsg>) -> bool {
        let mut announced = false;
        loop {
            match self.journal.try_acquire_lane(&self.cluster.name) {
                Ok(true) => {
                    if announced {
                        tracing::info!(cluster = %self.cluster.name, "took over the lane");
                    }
                    return true;
                }
                Ok(false) if !announced => {
                    announced = true;
                    tracing::info!(cluster = %self.cluster.name, "another replica runs this lane; standing by");
                }
                Ok(false) => {}
                Err(e) => self.journal_error(&e),
            }
            let retry = tokio::time::sleep(LANE_RETRY);
            tokio::pin!(retry);
            loop {
                tokio::select! {
                    _ = &mut retry => break,
                    msg = rx.recv() => match msg {
                        None => return false,
                        Some(LaneMsg::Decide { id, approval, reply }) => {
                            let _ = reply.send(self.decide(id, approval));
                        }
                        // The owner plans these from the shared journal.
                        Some(_) => {}
                    },
                }
            }
        }
    }

    /// Whether the lane is still ours (a shared journal may have lost its lock session).
    pub(super) fn still_owner(&self) -> bool {
        match self.journal.try_acquire_lane(&self.cluster.name) {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(cluster = %self.cluster.name, "lost the lane to another replica; standing by");
                false
            }
            Err(e) => {
                self.journal_error(&e);
                false
            }
        }
    }

    async fn handle(&mut self, msg: LaneMsg) {
        let result = match msg {
            LaneMsg::Event(event) => self.on_new_event(event).await,
            LaneMsg::Delayed(event) => self.on_event(event).await,
            LaneMsg::Decide {
                id,
                approval,
                reply,
            } => {
                let answer = self.decide(id, approval);
                let _ = reply.send(answer);
                Ok(())
            }
            LaneMsg::Execute(id) => self.execute(id, true).await,
            LaneMsg::Tick => self.tick().await,
            LaneMsg::Watch => {
                self.watch_pending.store(false, Ordering::Release);
                self.read().await;
                Ok(())
            }
        };
        if let Err(e) = result {
            self.log_error(&e);
        }
    }

    fn spawn_watch(&self) {
        let every = self
            .policy
            .settings
            .watch_interval
            .0
            .max(Duration::from_millis(100));
        tokio::spawn(watch_ticks(
            self.tx.clone(),
            every,
            self.watch_pending.clone(),
        ));
    }

    async fn tick(&mut self) -> LaneResult<()> {
        let now = Utc::now();
        for summary in self.journal.actions(Some(ActionState::AwaitingApproval))? {
            if summary.cluster != self.cluster.name {
                continue;
            }
            let Some(record) = self.journal.action(summary.id)? else {
                continue;
            };
            if record.plan.expires_at.is_some_and(|at| at <= now) {
                self.transition(
                    summary.id,
                    summary.action,
                    ActionState::Expired,
                    json!({"why": "no decision before the approval expired"}),
                )?;
            }
        }
        // Approvals journalled by another replica (or before a restart) run here. So do
        // actions left `running` or `verifying`: nothing runs in this lane while it ticks,
        // so such an action lost its end to the journal (a PostgreSQL journal gone in the
        // middle of it) and is taken up as after a restart, never started again.
        for state in [
            ActionState::Approved,
            ActionState::Running,
            ActionState::Verifying,
        ] {
            for summary in self.journal.actions(Some(state))? {
                if summary.cluster != self.cluster.name {
                    continue;
                }
                if let Some(record) = self.journal.action(summary.id)? {
                    if record.state != ActionState::Approved {
                        tracing::warn!(cluster = %self.cluster.name, id = record.id, state = record.state.as_str(), "an action lost its end to the journal; taking it up again");
                    }
                    self.resume(record).await?;
                }
            }
        }
        self.update_gauges()
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;

    /// Nobody handles the watches (the lane is stuck in a slow read): one stays queued.
    #[tokio::test]
    async fn watches_do_not_pile_up_behind_a_slow_lane() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(watch_ticks(tx, Duration::from_millis(5), pending.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 1);
        // Handled: the next interval queues a new one.
        pending.store(false, Ordering::Release);
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(next, Ok(Some(LaneMsg::Watch))));
        task.abort();
    }
}
