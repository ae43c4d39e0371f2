//! Execution: an approved plan is checked again on a fresh read, started once, and waited
//! for without ever being killed.
//!
//! "Running" is journalled before the spawn and the spawn right after it, so a crash at any
//! point leaves an action that is verified, never started a second time (see `reattach`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use greenplum_catalog::Snapshot;
use serde_json::json;

use super::check::{Stage, Verdict};
use super::lane::{change, Lane, LaneResult};
use crate::actions::ActionKind;
use crate::executor::{self, CommandSpec, ExecError, Started};
use crate::gates::{Gate, Refusal};
use crate::journal::{ActionState, ExecutionEnd, ExecutionStart, NewAction};

/// How often a running (or re-attached) command's pid is polled.
const REATTACH_POLL: Duration = Duration::from_secs(1);

impl Lane {
    /// Runs an approved plan after re-checking everything on a fresh read.
    pub(super) async fn execute(&mut self, id: i64, approved_by_person: bool) -> LaneResult<()> {
        let Some(record) = self.journal.action(id)? else {
            return Ok(());
        };
        if record.state != ActionState::Approved {
            return Ok(());
        }
        let plan = record.plan;
        let action = plan.action;
        let policy = self.policy.clone();
        let Some(rule) = policy.rule(&plan.rule) else {
            let why = format!("rule {} is no longer in the policy", plan.rule);
            let refusal = json!(Refusal {
                gate: Gate::PlanChanged,
                why,
            });
            return self.transition(id, action, ActionState::Refused, refusal);
        };
        let snapshot = self.read().await;
        let stage = Stage::Approved {
            plan: &plan,
            by_person: approved_by_person,
        };
        let refusal = match self.check(rule, &snapshot, stage).await? {
            Verdict::Pass { .. } => return self.start(id, &plan, &snapshot).await,
            Verdict::NoOp(why) => {
                return self.transition(id, action, ActionState::NoOp, json!({"why": why}))
            }
            // Only a new plan is compared with open intents: this plan is the open one.
            Verdict::Duplicate { .. } => return Ok(()),
            Verdict::Unknown(why) => json!(Refusal {
                gate: Gate::Catalog,
                why,
            }),
            Verdict::Refused { refusal, .. } => json!(refusal),
        };
        self.transition(id, action, ActionState::Refused, refusal)
    }

    /// Starts a plan that passed its checks, then waits for it and verifies.
    async fn start(&mut self, id: i64, plan: &NewAction, snapshot: &Snapshot) -> LaneResult<()> {
        if !self.still_owner() {
            // Left approved: the replica that holds the lane runs it from its tick.
            return Ok(());
        }
        // Journalled before the spawn: after a crash here the action is verified, never
        // started a second time.
        self.transition(
            id,
            plan.action,
            ActionState::Running,
            json!({"phase": "starting"}),
        )?;
        let spec = self.command_spec(id, plan, snapshot);
        let started_at = Utc::now();
        let started = match self.executor.start(&spec).await {
            Ok(started) => started,
            Err(e) => return self.start_failed(id, plan, started_at, &e),
        };
        self.journal.record_execution_start(
            id,
            &ExecutionStart {
                started_at,
                pid: started.pid,
                pid_start_ticks: started.pid_start_ticks,
                host: spec.host.clone(),
                argv: started.argv.clone(),
                log_path: spec.log_path.display().to_string(),
                replica: executor::this_host(),
            },
        )?;
        self.finish(id, plan, started, &spec.log_path, started_at)
            .await
    }

    fn command_spec(&self, id: i64, plan: &NewAction, snapshot: &Snapshot) -> CommandSpec {
        let mut env = BTreeMap::new();
        if plan.action == ActionKind::ActivateStandby {
            if let Some(standby) = &self.cluster.standby {
                // gpactivatestandby reads PGPORT: with the old coordinator's port it hangs.
                env.insert("PGPORT".to_string(), standby.port.to_string());
                if let Some(dir) = &standby.datadir {
                    env.insert("COORDINATOR_DATA_DIRECTORY".to_string(), dir.clone());
                    env.insert("MASTER_DATA_DIRECTORY".to_string(), dir.clone());
                }
            }
        }
        CommandSpec {
            argv: plan.argv.clone(),
            env,
            host: plan
                .host
                .clone()
                .or_else(|| self.command_host(plan.action, snapshot)),
            log_path: self.run_dir.join(format!("{id}.log")),
        }
    }

    fn start_failed(
        &self,
        id: i64,
        plan: &NewAction,
        at: DateTime<Utc>,
        e: &ExecError,
    ) -> LaneResult<()> {
        self.journal.record_execution_end(
            id,
            &ExecutionEnd {
                finished_at: at,
                exit_code: None,
                output: e.to_string(),
            },
        )?;
        self.record_verification(id, plan, at, false, json!({"error": e.to_string()}))
    }

    /// Waits for the command (never killing it), keeps its output, then verifies.
    pub(super) async fn finish(
        &mut self,
        id: i64,
        plan: &NewAction,
        mut started: Started,
        log: &Path,
        started_at: DateTime<Utc>,
    ) -> LaneResult<()> {
        let overdue = self.cluster.executor.overdue_after().0;
        let exit_code = {
            let wait = executor::wait(&mut started, REATTACH_POLL);
            tokio::pin!(wait);
            let overdue_timer = tokio::time::sleep(overdue);
            tokio::pin!(overdue_timer);
            let mut reported = false;
            loop {
                tokio::select! {
                    code = &mut wait => break code,
                    _ = &mut overdue_timer, if !reported => {
                        reported = true;
                        tracing::warn!(cluster = %self.cluster.name, id, "command is overdue; it is left running");
                        self.journal.record_state(id, &change(ActionState::Running, json!({"overdue": true, "after_seconds": overdue.as_secs()})))?;
                    }
                }
            }
        };
        self.journal.record_execution_end(
            id,
            &ExecutionEnd {
                finished_at: Utc::now(),
                exit_code,
                output: executor::bounded_output(log),
            },
        )?;
        self.verify(id, plan, started_at).await
    }
}
