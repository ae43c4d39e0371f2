//! Planning: an event becomes a decision, and maybe an action.
//!
//! `dedup -> match -> for -> fresh read -> check -> dry run | approval | run`. Every path
//! ends in exactly one journalled [`Decision`]. Approvals and rejections by a person are
//! decided here too, serialized with everything else in the lane.

use chrono::{DateTime, Utc};
use greenplum_catalog::Snapshot;
use serde_json::json;

use super::check::{intent, Stage, Verdict};
use super::lane::{change, Lane, LaneResult};
use super::LaneMsg;
use crate::actions::{ActionKind, ArgvInputs};
use crate::alert::AlertStatus;
use crate::decision::Decision;
use crate::gates::{self, Gate, Refusal, StandbySeen};
use crate::journal::{
    ActionState, Approval, ApprovalDecision, LedgerFacts, NewAction, StoredEvent,
};
use crate::policy::{Mode, Rule};

impl Lane {
    /// The webhook and the sweeper may both deliver an event; only decisions written by
    /// this lane count, so checking here (serialized) is race free.
    pub(super) async fn on_new_event(&mut self, event: StoredEvent) -> LaneResult<()> {
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

    pub(super) async fn on_event(&mut self, event: StoredEvent) -> LaneResult<()> {
        if event.status == AlertStatus::Resolved {
            // Resolution never starts or stops anything: a running gprecoverseg must finish.
            let detail = "resolved alerts are journalled only";
            return self.decided(&event, Decision::Resolved, detail, None);
        }
        let policy = self.policy.clone();
        let Some(rule) = policy.rule_for(&self.cluster.name, &event.alertname, &event.labels)
        else {
            return self.decided(&event, Decision::Unmatched, "no rule matches", None);
        };
        if rule.mode == Mode::Observe {
            let detail = format!("rule {} is in observe mode", rule.name);
            return self.decided(&event, Decision::Observed, &detail, None);
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
                let detail = "resolved before its minimum firing duration";
                return self.decided(&event, Decision::Resolved, detail, None);
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

    fn new_plan(
        &self,
        rule: &Rule,
        targets: Vec<i16>,
        snapshot: &Snapshot,
        event: &StoredEvent,
        created_at: DateTime<Utc>,
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
            created_at,
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
        let created_at = Utc::now();
        let new_plan =
            |lane: &Self, targets| lane.new_plan(rule, targets, &snapshot, event, created_at);
        match self.check(rule, &snapshot, Stage::New).await? {
            Verdict::Pass {
                targets,
                ledger,
                now,
            } => {
                let plan = new_plan(self, targets);
                self.approve(event, rule, plan, &ledger, now).await
            }
            Verdict::NoOp(why) => {
                let plan = new_plan(self, Vec::new());
                let id = self.create(&plan, ActionState::NoOp, json!({"why": why}))?;
                self.decided(event, Decision::NoOp, &why, Some(id))
            }
            Verdict::Unknown(why) => {
                let plan = new_plan(self, Vec::new());
                let refusal = Refusal {
                    gate: Gate::Catalog,
                    why: why.clone(),
                };
                let id = self.create(&plan, ActionState::Refused, json!(refusal))?;
                self.decided(event, Decision::Refused, &why, Some(id))
            }
            Verdict::Duplicate { open, intent } => {
                let detail = format!("action {open} already handles {intent}");
                self.decided(event, Decision::DuplicateIntent, &detail, Some(open))
            }
            Verdict::Refused { targets, refusal } => {
                let plan = new_plan(self, targets);
                let id = self.create(&plan, ActionState::Refused, json!(refusal))?;
                self.decided(event, Decision::Refused, &refusal.to_string(), Some(id))
            }
        }
    }

    /// A plan that passed every gate: recorded only (dry run), left for a person, or run.
    async fn approve(
        &mut self,
        event: &StoredEvent,
        rule: &Rule,
        mut plan: NewAction,
        ledger: &LedgerFacts,
        now: DateTime<Utc>,
    ) -> LaneResult<()> {
        if rule.mode == Mode::DryRun {
            let detail = json!({"argv": plan.argv, "host": plan.host});
            let id = self.create(&plan, ActionState::DryRun, detail)?;
            let why = "dry-run mode: recorded, not executed";
            return self.decided(event, Decision::DryRun, why, Some(id));
        }
        if let Some(why) = gates::approval_reason(rule, &self.cluster, &plan.targets, ledger, now) {
            plan.approval_required = true;
            plan.expires_at = Some(now + self.policy.settings.approval_ttl.chrono());
            let (why, evidence) = self.approval_evidence(plan.action, why, now);
            let detail = json!({"why": why, "evidence": evidence});
            let id = self.create(&plan, ActionState::AwaitingApproval, detail)?;
            self.update_gauges()?;
            return self.decided(event, Decision::AwaitingApproval, &why, Some(id));
        }
        let id = self.create(
            &plan,
            ActionState::Approved,
            json!({"by": "policy", "rule": rule.name}),
        )?;
        self.decided(event, Decision::Executed, &format!("action {id}"), Some(id))?;
        self.execute(id, false).await
    }

    /// What the approver needs to see beyond the rule: for `activate_standby`, the journalled
    /// sight of the standby that makes activation safe, and how old it is.
    fn approval_evidence(
        &self,
        action: ActionKind,
        why: String,
        now: DateTime<Utc>,
    ) -> (String, serde_json::Value) {
        if action != ActionKind::ActivateStandby {
            return (why, serde_json::Value::Null);
        }
        match &self.standby_sighting {
            Some(seen) => {
                let age = StandbySeen {
                    at: seen.at,
                    in_sync: seen.in_sync,
                }
                .age(now);
                let state = if seen.in_sync {
                    "streaming in sync"
                } else {
                    "NOT in sync"
                };
                let why = format!("{why}; standby last seen {state} {age} by {}", seen.seen_by);
                (why, json!({"standby_last_seen": seen}))
            }
            None => (
                format!("{why}; the standby was never seen while the coordinator answered"),
                json!({"standby_last_seen": null}),
            ),
        }
    }

    /// A person's approval or rejection of a plan awaiting one.
    pub(super) fn decide(&mut self, id: i64, approval: Approval) -> Result<ActionState, String> {
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
}
