//! The one check a plan passes twice: when it is made for an event and again, on a fresh
//! read, right before it runs.
//!
//! `scope -> (duplicate intent | still the approved plan) -> ledger -> observations -> gates`.
//! Planning and execution differ only in the middle step ([`Stage`]) and in what they
//! journal for each [`Verdict`].

use chrono::{DateTime, Utc};
use greenplum_catalog::Snapshot;

use super::lane::{Lane, LaneResult};
use crate::actions::ActionKind;
use crate::gates::{self, Gate, GateInput, Observations, Refusal, Scope, StandbySeen};
use crate::journal::{LedgerFacts, NewAction};
use crate::policy::Rule;

/// Which of the two checks runs.
#[derive(Clone, Copy)]
pub(super) enum Stage<'a> {
    /// A new plan for an event: an open action with the same intent makes it a duplicate.
    New,
    /// An approved plan right before it runs: it must still be the plan that was approved.
    Approved {
        plan: &'a NewAction,
        /// A person approved it: the catalog must not have changed since (the digest), and
        /// the breaker and windows no longer apply.
        by_person: bool,
    },
}

/// What the check found.
pub(super) enum Verdict {
    /// Every gate passed: act on `targets`. The ledger was read at `now`.
    Pass {
        targets: Vec<i16>,
        ledger: LedgerFacts,
        now: DateTime<Utc>,
    },
    /// Nothing to do: the cluster already is as the action would leave it.
    NoOp(String),
    /// The catalog could not tell what to act on (journalled as a `catalog` refusal).
    Unknown(String),
    /// An open action already handles this intent ([`Stage::New`] only).
    Duplicate { open: i64, intent: String },
    /// A gate refused the plan for `targets`.
    Refused { targets: Vec<i16>, refusal: Refusal },
}

/// `cluster/action/dbid,dbid`: two plans with the same intent would do the same thing.
pub(super) fn intent(cluster: &str, action: ActionKind, targets: &[i16]) -> String {
    let dbids: Vec<String> = targets.iter().map(i16::to_string).collect();
    format!("{cluster}/{action}/{}", dbids.join(","))
}

/// Why an approved plan is no longer the one that was approved, if it is not.
fn plan_changed(
    plan: &NewAction,
    targets: &[i16],
    snapshot: &Snapshot,
    by_person: bool,
) -> Option<Refusal> {
    let why = if targets != plan.targets {
        format!("targets changed from {:?} to {targets:?}", plan.targets)
    } else if by_person && gates::digest(snapshot) != plan.digest {
        "the catalog changed since the plan was approved".to_string()
    } else {
        return None;
    };
    Some(Refusal {
        gate: Gate::PlanChanged,
        why,
    })
}

impl Lane {
    /// Checks `rule`'s plan on `snapshot` (a fresh read). Journal errors are the only errors;
    /// every refusal is a [`Verdict`].
    pub(super) async fn check(
        &mut self,
        rule: &Rule,
        snapshot: &Snapshot,
        stage: Stage<'_>,
    ) -> LaneResult<Verdict> {
        let (action, approved) = match stage {
            Stage::New => (rule.action, false),
            Stage::Approved { plan, by_person } => (plan.action, by_person),
        };
        let targets = match gates::scope(action, snapshot) {
            Scope::Targets(targets) => targets,
            Scope::NoOp(why) => return Ok(Verdict::NoOp(why)),
            Scope::Unknown(why) => return Ok(Verdict::Unknown(why)),
        };
        let refused = |refusal| {
            Ok(Verdict::Refused {
                targets: targets.clone(),
                refusal,
            })
        };
        match stage {
            Stage::New => {
                let intent = intent(&self.cluster.name, rule.action, &targets);
                if let Some(open) = self.journal.open_action_with_intent(&intent)? {
                    return Ok(Verdict::Duplicate { open, intent });
                }
            }
            Stage::Approved { plan, by_person } => {
                if let Some(refusal) = plan_changed(plan, &targets, snapshot, by_person) {
                    return refused(refusal);
                }
            }
        }
        let now = Utc::now();
        let ledger = self.journal.ledger(&self.cluster.name, &rule.name, now)?;
        let observations = match self.observations(action, snapshot).await {
            Ok(observations) => observations,
            Err(refusal) => return refused(refusal),
        };
        let input = GateInput {
            snapshot,
            action: rule.action,
            rule,
            cluster: &self.cluster,
            ledger: &ledger,
            observations,
            now: Utc::now(),
            approved,
        };
        if let Err(refusal) = gates::check(&input) {
            return refused(refusal);
        }
        Ok(Verdict::Pass {
            targets,
            ledger,
            now,
        })
    }

    /// What the gates need beyond one snapshot. `activate_standby` waits here for enough
    /// unreachable reads of its own; a gprecoverseg action looks for the lock file.
    async fn observations(
        &mut self,
        action: ActionKind,
        snapshot: &Snapshot,
    ) -> Result<Observations, Refusal> {
        let mut observations = Observations {
            coordinator_unreachable_checks: self.unreachable_checks,
            standby_seen: self.standby_seen(),
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
            observations.standby_seen = self.standby_seen();
        }
        if action.runs_gprecoverseg() {
            observations.recoverseg_lock_held = self.recoverseg_lock_held(action, snapshot).await?;
        }
        Ok(observations)
    }

    fn standby_seen(&self) -> Option<StandbySeen> {
        self.standby_sighting.as_ref().map(|s| StandbySeen {
            at: s.at,
            in_sync: s.in_sync,
        })
    }

    /// Whether `gprecoverseg.lock` exists in the coordinator's data directory.
    /// (`&mut self` only because the lane is not `Sync`: the future must stay `Send`.)
    async fn recoverseg_lock_held(
        &mut self,
        action: ActionKind,
        snapshot: &Snapshot,
    ) -> Result<bool, Refusal> {
        let Some(dir) = self.coordinator_datadir(snapshot) else {
            return Err(Refusal {
                gate: Gate::RecoversegRunning,
                why: "coordinator data directory unknown: cannot check gprecoverseg.lock".into(),
            });
        };
        let lock = format!("{}/gprecoverseg.lock", dir.trim_end_matches('/'));
        let host = self.command_host(action, snapshot);
        self.executor
            .path_exists(host.as_deref(), &lock)
            .await
            .map_err(|e| Refusal {
                gate: Gate::RecoversegRunning,
                why: format!("cannot check {lock}: {e}"),
            })
    }

    /// The acting coordinator's data directory from the catalog, else from the executor's
    /// environment.
    fn coordinator_datadir(&self, snapshot: &Snapshot) -> Option<String> {
        let from_catalog = snapshot
            .acting_coordinator_row()
            .and_then(|s| s.datadir.clone());
        let env = self.cluster.executor.env();
        from_catalog
            .or_else(|| env.get("COORDINATOR_DATA_DIRECTORY").cloned())
            .or_else(|| env.get("MASTER_DATA_DIRECTORY").cloned())
    }
}
