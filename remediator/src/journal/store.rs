//! The journal's records, written once for every backend: each `Journal` method is the
//! same statements and the same row mapping on SQLite and PostgreSQL. A backend only says
//! how to get a session or a transaction on its database ([`Backend`]) and how to run a
//! statement in its driver ([`Sql`]).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Duration, Utc};

use super::rows::{self, from_json, parse_state, to_json};
use super::schema::CURRENT_STATE;
use super::sql::{Row, Sql};
use super::{
    parse_ts, ts, ActionRecord, ActionState, ActionSummary, Approval, Batch, BatchOutcome,
    ControlKind, EventInsert, ExecutionEnd, ExecutionStart, GroupCommit, Journal, JournalError,
    JournalResult, LedgerFacts, NewAction, NewDecision, StandbySighting, StateChange, StoredEvent,
    Verification,
};
use crate::alert::Alert;

/// What a call does, so a backend can guard it (SQLite's disk reserve).
#[derive(Debug, Clone, Copy)]
pub enum Access {
    Read,
    /// Deliveries and routine decisions: new work, refused unless the room to finish work
    /// under way is kept (`reserve`: the call writes deliveries).
    Intake {
        reserve: bool,
    },
    /// A record of work under way: it may use the room kept for it.
    Work,
}

/// A transaction: what it does, and the names its begin and commit fail under.
#[derive(Debug, Clone, Copy)]
pub struct Tx {
    pub access: Access,
    pub begin: &'static str,
    pub commit: &'static str,
}

const DELIVERY: Tx = Tx {
    access: Access::Intake { reserve: true },
    begin: "begin delivery",
    commit: "commit delivery",
};
const BATCH: Tx = Tx {
    access: Access::Intake { reserve: true },
    begin: "begin batch",
    commit: "commit batch",
};
const ACTION: Tx = Tx {
    access: Access::Work,
    begin: "begin action",
    commit: "commit action",
};

/// What a call runs on a backend's session. `Fn`, not `FnOnce`: SQLite runs a record of
/// work under way again after releasing the reserve on a full disk.
pub type Work<'a, T> = &'a (dyn Fn(&mut dyn Sql) -> JournalResult<T> + Sync);

/// Connection, transaction and dialect: what each backend writes for itself.
pub trait Backend: Send + Sync {
    /// Runs `work` on a session, each statement committed on its own.
    fn session<T: Send>(&self, access: Access, work: Work<'_, T>) -> JournalResult<T>;
    /// Runs `work` in one transaction, committed when it succeeds.
    fn transaction<T: Send>(&self, tx: Tx, work: Work<'_, T>) -> JournalResult<T>;
    /// The writer that batches this journal's deliveries and decisions.
    fn group(&self) -> &GroupCommit;
    /// `Journal::try_acquire_lane`: how a backend knows one replica runs a cluster's lane.
    fn lane(&self, cluster: &str) -> JournalResult<bool>;
}

/// Inserts one delivery and its alerts. The event key is unique, so an alert already
/// journalled (in an earlier transaction or earlier in this one) is reported as a duplicate.
fn insert_delivery(
    sql: &mut dyn Sql,
    received_at: DateTime<Utc>,
    body: &str,
    alerts: &[Alert],
) -> JournalResult<Vec<EventInsert>> {
    let at = ts(received_at);
    let delivery = sql.one(
        "INSERT INTO deliveries (received_at, body) VALUES ($1, $2) RETURNING id",
        &[&at, &body],
        "insert delivery",
        |r| r.int(0),
    )?;
    let mut out = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let inserted = sql.first(
            "INSERT INTO events
             (delivery_id, received_at, fingerprint, starts_at, status, alertname, labels)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (fingerprint, starts_at, status) DO NOTHING RETURNING id",
            &[
                &delivery,
                &at,
                &alert.fingerprint,
                &ts(alert.starts_at),
                &alert.status.as_str(),
                &alert.alertname(),
                &to_json(&alert.labels, "labels")?,
            ],
            "insert event",
            |r| r.int(0),
        )?;
        out.push(inserted.map_or(EventInsert::Duplicate, EventInsert::New));
    }
    Ok(out)
}

/// Inserts decisions, skipping events already decided.
fn insert_decisions(sql: &mut dyn Sql, decisions: &[NewDecision]) -> JournalResult<Vec<bool>> {
    let at = ts(Utc::now());
    decisions
        .iter()
        .map(|d| {
            let rows = sql.write(
                "INSERT INTO decisions (event_id, at, decision, detail, action_id)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
                &[&d.event_id, &at, &d.decision, &d.detail, &d.action_id],
                "insert decision",
            )?;
            Ok(rows == 1)
        })
        .collect()
}

fn insert_state(sql: &mut dyn Sql, action_id: i64, change: &StateChange) -> JournalResult<()> {
    sql.write(
        "INSERT INTO action_states (action_id, at, state, detail) VALUES ($1, $2, $3, $4)",
        &[
            &action_id,
            &ts(change.at),
            &change.state.as_str(),
            &to_json(&change.detail, "state detail")?,
        ],
        "insert action state",
    )
    .map(drop)
}

/// The `record` of the action's row in `table`, if it has one.
fn record_of<T: for<'de> serde::Deserialize<'de>>(
    sql: &mut dyn Sql,
    table: &str,
    id: i64,
    what: &'static str,
) -> JournalResult<Option<T>> {
    let query = format!("SELECT record FROM {table} WHERE action_id = $1");
    sql.first(&query, &[&id], what, |r| r.text(0))?
        .map(|text| from_json(&text, what))
        .transpose()
}

/// Rows of `table` for one action, in the order they were written.
fn rows_of<T>(
    sql: &mut dyn Sql,
    columns: &str,
    table: &str,
    id: i64,
    what: &'static str,
    map: fn(&Row) -> JournalResult<T>,
) -> JournalResult<Vec<T>> {
    let query = format!("SELECT {columns} FROM {table} WHERE action_id = $1 ORDER BY id");
    sql.rows(&query, &[&id], what, map)
}

fn read_action(sql: &mut dyn Sql, id: i64) -> JournalResult<Option<ActionRecord>> {
    let plan = sql.first(
        "SELECT plan FROM actions WHERE id = $1",
        &[&id],
        "plan",
        |r| r.text(0),
    )?;
    let Some(plan) = plan
        .map(|p| from_json::<NewAction>(&p, "plan"))
        .transpose()?
    else {
        return Ok(None);
    };
    let history = rows_of(
        sql,
        rows::STATE_CHANGE,
        "action_states",
        id,
        "read action states",
        rows::state_change,
    )?;
    let state = history
        .last()
        .map(|c| c.state)
        .ok_or(JournalError::Corrupt {
            what: "action",
            detail: format!("action {id} has no state"),
        })?;
    Ok(Some(ActionRecord {
        id,
        plan,
        state,
        history,
        approvals: rows_of(
            sql,
            rows::APPROVAL,
            "approvals",
            id,
            "read approvals",
            rows::approval,
        )?,
        execution: record_of(sql, "executions", id, "execution")?,
        result: record_of(sql, "execution_results", id, "execution result")?,
        verifications: rows_of(
            sql,
            rows::VERIFICATION,
            "verifications",
            id,
            "read verifications",
            rows::verification,
        )?,
    }))
}

fn paused(sql: &mut dyn Sql) -> JournalResult<bool> {
    let last = sql.first(
        "SELECT kind FROM controls WHERE kind IN ('pause', 'resume')
         ORDER BY id DESC LIMIT 1",
        &[],
        "read pause",
        |r| r.text(0),
    )?;
    Ok(last.as_deref() == Some(ControlKind::Pause.as_str()))
}

/// Failed verifications of the cluster since its last success or breaker reset.
fn consecutive_failures(sql: &mut dyn Sql, cluster: &str) -> JournalResult<u32> {
    let reset = sql.first(
        "SELECT at FROM controls WHERE kind = $1 AND (cluster IS NULL OR cluster = $2)
         ORDER BY id DESC LIMIT 1",
        &[&ControlKind::BreakerReset.as_str(), &cluster],
        "read controls",
        |r| parse_ts(&r.text(0)?, "control time"),
    )?;
    let since = reset.map(ts).unwrap_or_default();
    let mut failures = 0;
    sql.each(
        "SELECT succeeded FROM verifications WHERE cluster = $1 AND at > $2 ORDER BY id DESC",
        &[&cluster, &since],
        "read verifications",
        &mut |r| {
            if r.flag(0)? {
                return Ok(ControlFlow::Break(()));
            }
            failures += 1;
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(failures)
}

fn ledger(
    sql: &mut dyn Sql,
    cluster: &str,
    rule: &str,
    now: DateTime<Utc>,
) -> JournalResult<LedgerFacts> {
    let day = ts(now - Duration::hours(24));
    let mut count = |since: &str| -> JournalResult<u32> {
        let n = sql.one(
            "SELECT COUNT(*) FROM executions x JOIN actions a ON a.id = x.action_id
             WHERE a.cluster = $1 AND a.rule = $2 AND x.started_at > $3",
            &[&cluster, &rule, &since],
            "count executions",
            |r| r.int(0),
        )?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    };
    let executions_last_hour = count(&ts(now - Duration::hours(1)))?;
    let executions_last_day = count(&day)?;
    let last = sql.one(
        "SELECT MAX(x.started_at) FROM executions x JOIN actions a ON a.id = x.action_id
         WHERE a.cluster = $1 AND a.rule = $2",
        &[&cluster, &rule],
        "last execution",
        |r| r.opt_text(0),
    )?;
    let mut by_dbid: BTreeMap<i16, u32> = BTreeMap::new();
    let plans = sql.rows(
        "SELECT a.plan FROM executions x JOIN actions a ON a.id = x.action_id
         WHERE a.cluster = $1 AND x.started_at > $2",
        &[&cluster, &day],
        "recent executions",
        |r| from_json::<NewAction>(&r.text(0)?, "plan"),
    )?;
    for dbid in plans.into_iter().flat_map(|plan| plan.targets) {
        *by_dbid.entry(dbid).or_default() += 1;
    }
    Ok(LedgerFacts {
        paused: paused(sql)?,
        consecutive_failures: consecutive_failures(sql, cluster)?,
        executions_last_hour,
        executions_last_day,
        last_execution_at: last.map(|t| parse_ts(&t, "execution time")).transpose()?,
        executions_by_dbid_24h: by_dbid,
    })
}

impl<B: Backend> Journal for B {
    fn record_delivery(
        &self,
        received_at: DateTime<Utc>,
        body: &str,
        alerts: &[Alert],
    ) -> JournalResult<Vec<EventInsert>> {
        self.transaction(DELIVERY, &|sql| {
            insert_delivery(sql, received_at, body, alerts)
        })
    }

    fn record_batch(&self, batch: &Batch<'_>) -> JournalResult<BatchOutcome> {
        let tx = Tx {
            access: Access::Intake {
                reserve: !batch.deliveries.is_empty(),
            },
            ..BATCH
        };
        self.transaction(tx, &|sql| {
            let deliveries = batch
                .deliveries
                .iter()
                .map(|d| insert_delivery(sql, d.received_at, &d.body, &d.alerts))
                .collect::<JournalResult<_>>()?;
            let decisions = insert_decisions(sql, batch.decisions)?;
            Ok(BatchOutcome {
                deliveries,
                decisions,
            })
        })
    }

    fn group_commit(&self) -> &GroupCommit {
        self.group()
    }

    fn undecided_events(&self) -> JournalResult<Vec<StoredEvent>> {
        let query = format!(
            "SELECT {} FROM events e LEFT JOIN decisions d ON d.event_id = e.id
             WHERE d.id IS NULL ORDER BY e.id",
            rows::EVENT
        );
        self.session(Access::Read, &|sql| {
            sql.rows(&query, &[], "read undecided events", rows::event)
        })
    }

    fn event_decided(&self, event_id: i64) -> JournalResult<bool> {
        self.session(Access::Read, &|sql| {
            sql.one(
                "SELECT EXISTS (SELECT 1 FROM decisions WHERE event_id = $1)",
                &[&event_id],
                "find decision",
                |r| r.flag(0),
            )
        })
    }

    fn event_resolved(&self, fingerprint: &str, starts_at: DateTime<Utc>) -> JournalResult<bool> {
        let starts = ts(starts_at);
        self.session(Access::Read, &|sql| {
            sql.one(
                "SELECT EXISTS (SELECT 1 FROM events
                 WHERE fingerprint = $1 AND starts_at = $2 AND status = 'resolved')",
                &[&fingerprint, &starts],
                "find resolved event",
                |r| r.flag(0),
            )
        })
    }

    fn record_decision(
        &self,
        event_id: i64,
        decision: &str,
        detail: &str,
        action_id: Option<i64>,
    ) -> JournalResult<()> {
        self.session(Access::Work, &|sql| {
            sql.write(
                "INSERT INTO decisions (event_id, at, decision, detail, action_id)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&event_id, &ts(Utc::now()), &decision, &detail, &action_id],
                "insert decision",
            )
            .map(drop)
        })
    }

    fn create_action(&self, plan: &NewAction, first: &StateChange) -> JournalResult<i64> {
        let plan_json = to_json(plan, "plan")?;
        self.transaction(ACTION, &|sql| {
            let id = sql.one(
                "INSERT INTO actions (created_at, cluster, plan, rule, intent)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &ts(plan.created_at),
                    &plan.cluster,
                    &plan_json,
                    &plan.rule,
                    &plan.intent,
                ],
                "insert action",
                |r| r.int(0),
            )?;
            insert_state(sql, id, first)?;
            Ok(id)
        })
    }

    fn record_state(&self, action_id: i64, change: &StateChange) -> JournalResult<()> {
        self.session(Access::Work, &|sql| insert_state(sql, action_id, change))
    }

    fn record_approval(&self, action_id: i64, approval: &Approval) -> JournalResult<()> {
        self.session(Access::Work, &|sql| {
            sql.write(
                "INSERT INTO approvals (action_id, at, decision, who, why)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &action_id,
                    &ts(approval.at),
                    &approval.decision.as_str(),
                    &approval.who,
                    &approval.why,
                ],
                "insert approval",
            )
            .map(drop)
        })
    }

    fn record_execution_start(&self, action_id: i64, start: &ExecutionStart) -> JournalResult<()> {
        let record = to_json(start, "execution")?;
        self.session(Access::Work, &|sql| {
            sql.write(
                "INSERT INTO executions (action_id, started_at, record) VALUES ($1, $2, $3)",
                &[&action_id, &ts(start.started_at), &record],
                "insert execution",
            )
            .map(drop)
        })
    }

    fn record_execution_end(&self, action_id: i64, end: &ExecutionEnd) -> JournalResult<()> {
        let record = to_json(end, "execution result")?;
        self.session(Access::Work, &|sql| {
            sql.write(
                "INSERT INTO execution_results (action_id, record) VALUES ($1, $2)",
                &[&action_id, &record],
                "insert execution result",
            )
            .map(drop)
        })
    }

    fn record_verification(
        &self,
        action_id: i64,
        cluster: &str,
        verification: &Verification,
    ) -> JournalResult<()> {
        let detail = to_json(&verification.detail, "verification detail")?;
        self.session(Access::Work, &|sql| {
            sql.write(
                "INSERT INTO verifications (action_id, cluster, at, succeeded, detail)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &action_id,
                    &cluster,
                    &ts(verification.at),
                    &verification.succeeded,
                    &detail,
                ],
                "insert verification",
            )
            .map(drop)
        })
    }

    fn action(&self, id: i64) -> JournalResult<Option<ActionRecord>> {
        self.session(Access::Read, &|sql| read_action(sql, id))
    }

    fn actions(&self, state: Option<ActionState>) -> JournalResult<Vec<ActionSummary>> {
        let query = format!("SELECT a.id, a.plan, {CURRENT_STATE} FROM actions a ORDER BY a.id");
        let listed = self.session(Access::Read, &|sql| {
            sql.rows(&query, &[], "list actions", |r| rows::summary(r, state))
        })?;
        Ok(listed.into_iter().flatten().collect())
    }

    fn open_action_with_intent(&self, intent: &str) -> JournalResult<Option<i64>> {
        let query = format!(
            "SELECT a.id, {CURRENT_STATE} FROM actions a WHERE a.intent = $1 ORDER BY a.id DESC"
        );
        self.session(Access::Read, &|sql| {
            let mut open = None;
            sql.each(&query, &[&intent], "find intent", &mut |r| {
                if !parse_state(&r.text(1)?)?.is_open() {
                    return Ok(ControlFlow::Continue(()));
                }
                open = Some(r.int(0)?);
                Ok(ControlFlow::Break(()))
            })?;
            Ok(open)
        })
    }

    fn ledger(&self, cluster: &str, rule: &str, now: DateTime<Utc>) -> JournalResult<LedgerFacts> {
        self.session(Access::Read, &|sql| ledger(sql, cluster, rule, now))
    }

    fn record_control(
        &self,
        kind: ControlKind,
        cluster: Option<&str>,
        who: &str,
        why: &str,
        at: DateTime<Utc>,
    ) -> JournalResult<()> {
        self.session(Access::Work, &|sql| {
            sql.write(
                "INSERT INTO controls (at, kind, cluster, who, why) VALUES ($1, $2, $3, $4, $5)",
                &[&ts(at), &kind.as_str(), &cluster, &who, &why],
                "insert control",
            )
            .map(drop)
        })
    }

    fn record_standby_sighting(
        &self,
        cluster: &str,
        sighting: &StandbySighting,
    ) -> JournalResult<()> {
        let detail = to_json(&sighting.detail, "standby sighting detail")?;
        self.session(Access::Work, &|sql| {
            sql.write(
                "INSERT INTO standby_sightings (cluster, at, in_sync, detail, seen_by)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (cluster) DO UPDATE SET at = excluded.at,
                     in_sync = excluded.in_sync, detail = excluded.detail,
                     seen_by = excluded.seen_by",
                &[
                    &cluster,
                    &ts(sighting.at),
                    &sighting.in_sync,
                    &detail,
                    &sighting.seen_by,
                ],
                "insert standby sighting",
            )
            .map(drop)
        })
    }

    fn standby_sighting(&self, cluster: &str) -> JournalResult<Option<StandbySighting>> {
        self.session(Access::Read, &|sql| {
            sql.first(
                "SELECT at, in_sync, detail, seen_by FROM standby_sightings WHERE cluster = $1",
                &[&cluster],
                "read standby sighting",
                |r| {
                    Ok(StandbySighting {
                        at: parse_ts(&r.text(0)?, "standby sighting time")?,
                        in_sync: r.flag(1)?,
                        detail: from_json(&r.text(2)?, "standby sighting detail")?,
                        seen_by: r.text(3)?,
                    })
                },
            )
        })
    }

    fn paused(&self) -> JournalResult<bool> {
        self.session(Access::Read, &|sql| paused(sql))
    }

    fn try_acquire_lane(&self, cluster: &str) -> JournalResult<bool> {
        self.lane(cluster)
    }
}
