//! One cluster's lane: everything for a cluster happens here, one thing at a time.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use greenplum_catalog::{Role, Snapshot};
use serde_json::json;
use tokio::sync::mpsc;

use super::{LaneMsg, PlannerConfig};
use crate::actions::{ActionKind, ArgvInputs};
use crate::alert::AlertStatus;
use crate::executor::{self, CommandSpec, ExecError, Executor, Started};
use crate::gates::{self, GateInput, Observations, Refusal, Scope};
use crate::journal::{
    ActionRecord, ActionState, Approval, ApprovalDecision, ExecutionEnd, ExecutionStart, Journal,
    JournalError, NewAction, StateChange, StoredEvent, Verification,
};
use crate::metrics::Metrics;
use crate::policy::{Cluster, Mode, Policy, Rule};
use crate::source::CatalogSource;
use crate::verify::{progress, Progress};

#[derive(Debug, thiserror::Error)]
enum LaneError {
    #[error(transparent)]
    Journal(#[from] JournalError),
}

type LaneResult<T> = Result<T, LaneError>;

/// How often a re-attached command's pid is polled.
const REATTACH_POLL: Duration = Duration::from_secs(1);

/// How often a standby replica tries to take a lane over.
const LANE_RETRY: Duration = Duration::from_secs(1);

pub(super) struct Lane {
    cluster: Cluster,
    policy: Arc<Policy>,
    journal: Arc<dyn Journal>,
    metrics: Arc<Metrics>,
    source: Box<dyn CatalogSource>,
    executor: Arc<dyn Executor>,
    run_dir: PathBuf,
    tx: mpsc::UnboundedSender<LaneMsg>,
    /// Events queued or waiting for their `for`; redeliveries by the sweeper are skipped.
    known: HashSet<i64>,
    unreachable_checks: u32,
    standby_last_seen_in_sync: bool,
    /// A `Watch` is queued and not yet handled (see [`watch_ticks`]).
    watch_pending: Arc<AtomicBool>,
}

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

fn change(state: ActionState, detail: serde_json::Value) -> StateChange {
    StateChange {
        at: Utc::now(),
        state,
        detail,
    }
}

fn approved_by_person(record: &ActionRecord) -> bool {
    record
        .approvals
        .iter()
        .any(|a| a.decision == ApprovalDecision::Approve)
}

fn intent(cluster: &str, action: ActionKind, targets: &[i16]) -> String {
    let dbids: Vec<String> = targets.iter().map(i16::to_string).collect();
    format!("{cluster}/{action}/{}", dbids.join(","))
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
            standby_last_seen_in_sync: false,
            watch_pending: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<LaneMsg>) {
        let mut watching = false;
        loop {
            if !self.acquire(&mut rx).await {
                return;
            }
            if let Err(e) = self.reattach().await {
                self.log_error(&e);
            }
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
    fn still_owner(&self) -> bool {
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

    fn log_error(&self, e: &LaneError) {
        match e {
            LaneError::Journal(j) => self.journal_error(j),
        }
    }

    fn journal_error(&self, e: &JournalError) {
        self.metrics.journal_errors.inc();
        tracing::error!(cluster = %self.cluster.name, error = %e, "journal failed; the work stays undecided and is retried");
    }

    /// A fresh catalog read, also feeding what `activate_standby` needs to remember.
    async fn read(&mut self) -> Snapshot {
        let snapshot = self.source.snapshot().await;
        if snapshot.coordinator_up() {
            self.unreachable_checks = 0;
            self.standby_last_seen_in_sync = gates::standby_in_sync(&snapshot);
        } else {
            self.unreachable_checks = self.unreachable_checks.saturating_add(1);
        }
        snapshot
    }

    fn decided(
        &mut self,
        event: &StoredEvent,
        decision: &str,
        detail: &str,
        action: Option<i64>,
    ) -> LaneResult<()> {
        self.journal
            .record_decision(event.id, decision, detail, action)?;
        self.known.remove(&event.id);
        self.metrics.count_event(decision);
        tracing::info!(cluster = %self.cluster.name, event = event.id, alertname = %event.alertname, decision, detail, "event decided");
        Ok(())
    }

    fn count(&self, action: ActionKind, state: ActionState) {
        if let Some(result) = state.result_label() {
            self.metrics
                .count_action(&self.cluster.name, action, result);
        }
    }

    fn transition(
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

    /// The webhook and the sweeper may both deliver an event; only decisions written by
    /// this lane count, so checking here (serialized) is race free.
    async fn on_new_event(&mut self, event: StoredEvent) -> LaneResult<()> {
        if self.known.contains(&event.id) || self.journal.event_decided(event.id)? {
            return Ok(());
        }
        self.known.insert(event.id);
        let result = self.on_event(event.clone()).await;
        if result.is_err() {
            // Retried by the next sweep.
            self.known.remove(&event.id);
        }
        result
    }

    async fn on_event(&mut self, event: StoredEvent) -> LaneResult<()> {
        if event.status == AlertStatus::Resolved {
            // Resolution never starts or stops anything: a running gprecoverseg must finish.
            return self.decided(
                &event,
                "resolved",
                "resolved alerts are journalled only",
                None,
            );
        }
        let policy = self.policy.clone();
        let Some(rule) = policy.rule_for(&self.cluster.name, &event.alertname, &event.labels)
        else {
            return self.decided(&event, "unmatched", "no rule matches", None);
        };
        if rule.mode == Mode::Observe {
            let detail = format!("rule {} is in observe mode", rule.name);
            return self.decided(&event, "observed", &detail, None);
        }
        if let Some(min) = rule.for_ {
            let due = event.starts_at + min.chrono();
            let now = Utc::now();
            if now < due {
                self.delay(event, due - now);
                return Ok(());
            }
            if self
                .journal
                .event_resolved(&event.fingerprint, event.starts_at)?
            {
                return self.decided(
                    &event,
                    "resolved",
                    "resolved before its minimum firing duration",
                    None,
                );
            }
        }
        self.plan(&event, rule).await
    }

    fn delay(&self, event: StoredEvent, wait: chrono::Duration) {
        let tx = self.tx.clone();
        let wait = wait.to_std().unwrap_or_default();
        tracing::info!(cluster = %self.cluster.name, event = event.id, wait_seconds = wait.as_secs(), "waiting for the rule's minimum firing duration");
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = tx.send(LaneMsg::Delayed(event));
        });
    }

    async fn observations(
        &mut self,
        action: ActionKind,
        snapshot: &Snapshot,
    ) -> Result<Observations, Refusal> {
        let mut observations = Observations {
            coordinator_unreachable_checks: self.unreachable_checks,
            standby_last_seen_in_sync: self.standby_last_seen_in_sync,
            recoverseg_lock_held: false,
        };
        if action == ActionKind::ActivateStandby {
            // The proof must come from our own repeated reads, not from the alert.
            let poll = self.policy.settings.verify_poll_interval.0;
            while self.unreachable_checks < self.cluster.unreachable_checks {
                tokio::time::sleep(poll).await;
                if self.read().await.coordinator_up() {
                    break;
                }
            }
            observations.coordinator_unreachable_checks = self.unreachable_checks;
            observations.standby_last_seen_in_sync = self.standby_last_seen_in_sync;
        }
        if action.runs_gprecoverseg() {
            let Some(dir) = self.coordinator_datadir(snapshot) else {
                return Err(Refusal {
                    gate: gates::Gate::RecoversegRunning,
                    why: "coordinator data directory unknown: cannot check gprecoverseg.lock"
                        .into(),
                });
            };
            let lock = format!("{}/gprecoverseg.lock", dir.trim_end_matches('/'));
            let host = self.command_host(action, snapshot);
            observations.recoverseg_lock_held = self
                .executor
                .path_exists(host.as_deref(), &lock)
                .await
                .map_err(|e| Refusal {
                    gate: gates::Gate::RecoversegRunning,
                    why: format!("cannot check {lock}: {e}"),
                })?;
        }
        Ok(observations)
    }

    fn coordinator_datadir(&self, snapshot: &Snapshot) -> Option<String> {
        let from_catalog = snapshot.segments.as_ref().ok().and_then(|rows| {
            rows.iter()
                .find(|s| s.content == -1 && s.role == Role::Primary && s.is_up())
                .and_then(|s| s.datadir.clone())
        });
        let env = self.cluster.executor.env();
        from_catalog
            .or_else(|| env.get("COORDINATOR_DATA_DIRECTORY").cloned())
            .or_else(|| env.get("MASTER_DATA_DIRECTORY").cloned())
    }

    /// The acting coordinator's host from the catalog, or the standby's for activation.
    fn command_host(&self, action: ActionKind, snapshot: &Snapshot) -> Option<String> {
        if action.runs_on_standby_host() {
            return self.cluster.standby.as_ref().map(|s| s.host.clone());
        }
        let from_rows = snapshot.segments.as_ref().ok().and_then(|rows| {
            rows.iter()
                .find(|s| s.content == -1 && s.role == Role::Primary && s.is_up())
                .map(|s| s.hostname.clone())
        });
        from_rows.or_else(|| {
            snapshot
                .acting_coordinator
                .as_deref()
                .and_then(|e| e.rsplit_once(':').map(|(h, _)| h.to_string()))
        })
    }

    fn gate_input<'a>(
        &'a self,
        snapshot: &'a Snapshot,
        rule: &'a Rule,
        ledger: &'a crate::journal::LedgerFacts,
        observations: Observations,
        approved: bool,
    ) -> GateInput<'a> {
        GateInput {
            snapshot,
            action: rule.action,
            rule,
            cluster: &self.cluster,
            ledger,
            observations,
            now: Utc::now(),
            approved,
        }
    }

    fn new_plan(
        &self,
        rule: &Rule,
        targets: Vec<i16>,
        snapshot: &Snapshot,
        event: &StoredEvent,
    ) -> NewAction {
        let standby = self.cluster.standby.as_ref();
        let argv = rule
            .action
            .argv(&ArgvInputs {
                standby_host: standby.map(|s| s.host.as_str()),
                standby_datadir: standby.and_then(|s| s.datadir.as_deref()),
            })
            // Validation guarantees the inputs; an empty argv can never run.
            .unwrap_or_default();
        NewAction {
            created_at: Utc::now(),
            cluster: self.cluster.name.clone(),
            action: rule.action,
            rule: rule.name.clone(),
            intent: intent(&self.cluster.name, rule.action, &targets),
            targets,
            digest: gates::digest(snapshot),
            argv,
            host: self.command_host(rule.action, snapshot),
            approval_required: false,
            expires_at: None,
            event_id: Some(event.id),
        }
    }

    fn create(
        &self,
        plan: &NewAction,
        state: ActionState,
        detail: serde_json::Value,
    ) -> LaneResult<i64> {
        let id = self.journal.create_action(plan, &change(state, detail))?;
        self.count(plan.action, state);
        tracing::info!(cluster = %self.cluster.name, action = %plan.action, id, state = state.as_str(), targets = ?plan.targets, "action planned");
        Ok(id)
    }

    async fn plan(&mut self, event: &StoredEvent, rule: &Rule) -> LaneResult<()> {
        let snapshot = self.read().await;
        let targets = match gates::scope(rule.action, &snapshot) {
            Scope::Targets(t) => t,
            Scope::NoOp(why) => {
                let plan = self.new_plan(rule, Vec::new(), &snapshot, event);
                let id = self.create(&plan, ActionState::NoOp, json!({"why": why}))?;
                return self.decided(event, "no_op", &why, Some(id));
            }
            Scope::Unknown(why) => {
                let plan = self.new_plan(rule, Vec::new(), &snapshot, event);
                let refusal = json!({"gate": gates::Gate::Catalog.as_str(), "why": why});
                let id = self.create(&plan, ActionState::Refused, refusal)?;
                return self.decided(event, "refused", &why, Some(id));
            }
        };
        let mut plan = self.new_plan(rule, targets, &snapshot, event);
        if let Some(open) = self.journal.open_action_with_intent(&plan.intent)? {
            let detail = format!("action {open} already handles {}", plan.intent);
            return self.decided(event, "duplicate_intent", &detail, Some(open));
        }
        let now = Utc::now();
        let ledger = self.journal.ledger(&self.cluster.name, &rule.name, now)?;
        let gated = match self.observations(rule.action, &snapshot).await {
            Ok(observations) => {
                gates::check(&self.gate_input(&snapshot, rule, &ledger, observations, false))
            }
            Err(refusal) => Err(refusal),
        };
        if let Err(refusal) = gated {
            let id = self.create(&plan, ActionState::Refused, json!(refusal))?;
            return self.decided(event, "refused", &refusal.to_string(), Some(id));
        }
        if rule.mode == Mode::DryRun {
            let id = self.create(
                &plan,
                ActionState::DryRun,
                json!({"argv": plan.argv, "host": plan.host}),
            )?;
            return self.decided(
                event,
                "dry_run",
                "dry-run mode: recorded, not executed",
                Some(id),
            );
        }
        if let Some(why) = gates::approval_reason(rule, &self.cluster, &plan.targets, &ledger, now)
        {
            plan.approval_required = true;
            plan.expires_at = Some(now + self.policy.settings.approval_ttl.chrono());
            let id = self.create(&plan, ActionState::AwaitingApproval, json!({"why": why}))?;
            self.update_gauges()?;
            return self.decided(event, "awaiting_approval", &why, Some(id));
        }
        let id = self.create(
            &plan,
            ActionState::Approved,
            json!({"by": "policy", "rule": rule.name}),
        )?;
        self.decided(event, "executed", &format!("action {id}"), Some(id))?;
        self.execute(id, false).await
    }

    fn decide(&mut self, id: i64, approval: Approval) -> Result<ActionState, String> {
        let record = self
            .journal
            .action(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("action {id} does not exist"))?;
        if record.state != ActionState::AwaitingApproval {
            return Err(format!(
                "action {id} is {}, not awaiting approval",
                record.state.as_str()
            ));
        }
        self.journal
            .record_approval(id, &approval)
            .map_err(|e| e.to_string())?;
        let action = record.plan.action;
        let state = if record.plan.expires_at.is_some_and(|at| at <= approval.at) {
            ActionState::Expired
        } else if approval.decision == ApprovalDecision::Reject {
            ActionState::Rejected
        } else {
            ActionState::Approved
        };
        let detail = json!({"by": approval.who, "why": approval.why});
        self.transition(id, action, state, detail)
            .map_err(|e| e.to_string())?;
        if state == ActionState::Approved {
            // Reply first; the lane executes right after.
            let _ = self.tx.send(LaneMsg::Execute(id));
        }
        let _ = self.update_gauges();
        Ok(state)
    }

    /// Runs an approved plan after re-checking everything on a fresh read.
    async fn execute(&mut self, id: i64, approved_by_person: bool) -> LaneResult<()> {
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
            let refusal = json!({"gate": "plan_changed", "why": format!("rule {} is no longer in the policy", plan.rule)});
            return self.transition(id, action, ActionState::Refused, refusal);
        };
        let snapshot = self.read().await;
        match gates::scope(action, &snapshot) {
            Scope::NoOp(why) => {
                return self.transition(id, action, ActionState::NoOp, json!({"why": why}))
            }
            Scope::Unknown(why) => {
                return self.transition(
                    id,
                    action,
                    ActionState::Refused,
                    json!({"gate": "catalog", "why": why}),
                )
            }
            Scope::Targets(now) if now != plan.targets => {
                let why = format!("targets changed from {:?} to {now:?}", plan.targets);
                return self.transition(
                    id,
                    action,
                    ActionState::Refused,
                    json!({"gate": "plan_changed", "why": why}),
                );
            }
            Scope::Targets(_) => {}
        }
        if approved_by_person && gates::digest(&snapshot) != plan.digest {
            let why = "the catalog changed since the plan was approved";
            return self.transition(
                id,
                action,
                ActionState::Refused,
                json!({"gate": "plan_changed", "why": why}),
            );
        }
        let ledger = self
            .journal
            .ledger(&self.cluster.name, &rule.name, Utc::now())?;
        let gated = match self.observations(action, &snapshot).await {
            Ok(observations) => gates::check(&self.gate_input(
                &snapshot,
                rule,
                &ledger,
                observations,
                approved_by_person,
            )),
            Err(refusal) => Err(refusal),
        };
        if let Err(refusal) = gated {
            return self.transition(id, action, ActionState::Refused, json!(refusal));
        }
        if !self.still_owner() {
            // Left approved: the replica that holds the lane runs it from its tick.
            return Ok(());
        }
        // Journalled before the spawn: after a crash here the action is verified, never
        // started a second time.
        self.transition(
            id,
            action,
            ActionState::Running,
            json!({"phase": "starting"}),
        )?;
        let spec = self.command_spec(id, &plan, &snapshot);
        let started_at = Utc::now();
        let started = match self.executor.start(&spec).await {
            Ok(started) => started,
            Err(e) => return self.start_failed(id, &plan, started_at, &e),
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
        self.finish(id, &plan, started, &spec.log_path, started_at)
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
    async fn finish(
        &mut self,
        id: i64,
        plan: &NewAction,
        mut started: Started,
        log: &std::path::Path,
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

    /// Polls the catalog until the targets are up (short deadline) and synchronized (long
    /// deadline). The exit code plays no part.
    async fn verify(
        &mut self,
        id: i64,
        plan: &NewAction,
        started_at: DateTime<Utc>,
    ) -> LaneResult<()> {
        self.transition(id, plan.action, ActionState::Verifying, json!({}))?;
        let settings = self.policy.settings.clone();
        // The deadlines count from here: the probe request may wait a minute for FTS (its
        // probe timeout and retries) and must not stretch a 45 s deadline past it.
        let begin = tokio::time::Instant::now();
        let probe = tokio::time::timeout(
            settings.verify_up_deadline.0,
            self.source.request_fts_probe(),
        );
        match probe.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(cluster = %self.cluster.name, error = %e, "FTS probe request failed; polling anyway")
            }
            Err(_) => {
                tracing::warn!(cluster = %self.cluster.name, "FTS probe request outlasted the verification deadline; polling anyway")
            }
        }
        let standby_endpoint = self
            .cluster
            .standby
            .as_ref()
            .map(|s| format!("{}:{}", s.host, s.port));
        let (succeeded, why) = loop {
            let snapshot = self.read().await;
            let state = progress(
                plan.action,
                &plan.targets,
                standby_endpoint.as_deref(),
                &snapshot,
            );
            let elapsed = begin.elapsed();
            match state {
                Progress::Done => break (true, "targets up and synchronized".to_string()),
                Progress::Pending(why) if elapsed >= settings.verify_up_deadline.0 => {
                    break (
                        false,
                        format!("not up within {}: {why}", settings.verify_up_deadline),
                    )
                }
                Progress::Up(why) if elapsed >= settings.verify_sync_deadline.0 => {
                    break (
                        false,
                        format!(
                            "not synchronized within {}: {why}",
                            settings.verify_sync_deadline
                        ),
                    )
                }
                _ => tokio::time::sleep(settings.verify_poll_interval.0).await,
            }
        };
        self.record_verification(id, plan, started_at, succeeded, json!({"why": why}))
    }

    fn record_verification(
        &self,
        id: i64,
        plan: &NewAction,
        started_at: DateTime<Utc>,
        succeeded: bool,
        detail: serde_json::Value,
    ) -> LaneResult<()> {
        let now = Utc::now();
        self.journal.record_verification(
            id,
            &self.cluster.name,
            &Verification {
                at: now,
                succeeded,
                detail: detail.clone(),
            },
        )?;
        let state = if succeeded {
            ActionState::Succeeded
        } else {
            ActionState::Failed
        };
        self.transition(id, plan.action, state, detail)?;
        let labels = Metrics::action_labels(&self.cluster.name, plan.action);
        let seconds = (now - started_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.metrics
            .action_duration
            .get_or_create(&labels)
            .observe(seconds);
        if succeeded {
            self.metrics
                .last_verified_success
                .get_or_create(&labels)
                .set(now.timestamp_millis() as f64 / 1000.0);
        }
        self.update_gauges()
    }

    /// After a restart or a takeover: actions that were running are re-attached (pid alive)
    /// or verified; never started again. Approved-but-never-started ones run now.
    async fn reattach(&mut self) -> LaneResult<()> {
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
    async fn resume(&mut self, record: ActionRecord) -> LaneResult<()> {
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

    fn update_gauges(&self) -> LaneResult<()> {
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
