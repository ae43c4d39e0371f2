//! Re-attach: after a restart or a takeover, open actions are taken up where the journal
//! says they stand.
//!
//! An action that was running is waited for (its pid is alive here) or verified; it is never
//! started again. An approved action that never started runs now.

use std::path::PathBuf;

use serde_json::json;

use super::lane::{change, Lane, LaneResult};
use crate::executor::{self, Started};
use crate::journal::{ActionRecord, ActionState, ApprovalDecision};

fn approved_by_person(record: &ActionRecord) -> bool {
    record
        .approvals
        .iter()
        .any(|a| a.decision == ApprovalDecision::Approve)
}

impl Lane {
    /// After a restart or a takeover: actions that were running are re-attached (pid alive)
    /// or verified; never started again. Approved-but-never-started ones run now.
    pub(super) async fn reattach(&mut self) -> LaneResult<()> {
        let open: Vec<i64> = self
            .journal
            .actions(None)?
            .into_iter()
            .filter(|a| {
                a.cluster == self.cluster.name
                    && a.state.is_open()
                    && a.state != ActionState::AwaitingApproval
            })
            .map(|a| a.id)
            .collect();
        for id in open {
            if let Some(record) = self.journal.action(id)? {
                tracing::info!(cluster = %self.cluster.name, id, state = record.state.as_str(), "resuming an action after restart");
                self.resume(record).await?;
            }
        }
        self.update_gauges()
    }

    /// Takes an open action up where the journal says it stands.
    pub(super) async fn resume(&mut self, record: ActionRecord) -> LaneResult<()> {
        match record.state {
            ActionState::Approved => self.execute(record.id, approved_by_person(&record)).await,
            ActionState::Running => self.resume_running(record).await,
            ActionState::Verifying => {
                let started = record
                    .execution
                    .as_ref()
                    .map_or(record.plan.created_at, |e| e.started_at);
                self.verify(record.id, &record.plan, started).await
            }
            _ => Ok(()),
        }
    }

    async fn resume_running(&mut self, record: ActionRecord) -> LaneResult<()> {
        let id = record.id;
        let Some(execution) = record.execution else {
            // Crashed between "running" and the spawn being journalled: the command may or
            // may not have started. Never start it again; let the catalog tell.
            self.journal.record_state(
                id,
                &change(
                    ActionState::Running,
                    json!({"reattach": "no execution record; verifying instead of starting again"}),
                ),
            )?;
            return self.verify(id, &record.plan, record.plan.created_at).await;
        };
        if record.result.is_some() {
            return self.verify(id, &record.plan, execution.started_at).await;
        }
        let here = executor::this_host();
        let elsewhere = execution
            .replica
            .as_deref()
            .is_some_and(|r| Some(r) != here.as_deref());
        let alive = !elsewhere
            && execution
                .pid
                .is_some_and(|pid| executor::still_running(pid, execution.pid_start_ticks));
        let reattach = match (elsewhere, alive) {
            (true, _) => "started by a replica on another host; its pid cannot be checked from here; verifying",
            (false, true) => "pid alive; waiting for it",
            (false, false) => "pid gone; verifying",
        };
        self.journal.record_state(
            id,
            &change(ActionState::Running, json!({"reattach": reattach})),
        )?;
        let started = Started {
            pid: if alive { execution.pid } else { None },
            pid_start_ticks: execution.pid_start_ticks,
            argv: execution.argv.clone(),
            child: None,
        };
        let log = PathBuf::from(&execution.log_path);
        self.finish(id, &record.plan, started, &log, execution.started_at)
            .await
    }
}
