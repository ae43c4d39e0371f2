//! The journal for two or more replicas: one PostgreSQL database shared by all of them.
//!
//! The records are the same as SQLite's (append-only, the latest `action_states` row is an
//! action's state, timestamps as RFC 3339 text so ordering and the shared helpers agree).
//! What is new is the lane lock: `pg_try_advisory_lock` taken on a session of its own, so a
//! cluster's lane runs in exactly one replica, and the lock goes away with the session when
//! that replica dies.
//!
//! The `postgres` crate drives its own small runtime and refuses to run inside another one;
//! the planner calls the journal from async code, so each call runs on a scoped thread when
//! it comes from a runtime (cheap next to a network round trip, and it keeps the trait
//! synchronous like SQLite's).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use ::postgres::types::ToSql;
use ::postgres::{Client, Config, NoTls, Row, Transaction};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::*;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES deliveries(id),
    received_at TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    alertname TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (fingerprint, starts_at, status)
);
CREATE TABLE IF NOT EXISTS decisions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id BIGINT NOT NULL UNIQUE REFERENCES events(id),
    at TEXT NOT NULL,
    decision TEXT NOT NULL,
    detail TEXT NOT NULL,
    action_id BIGINT
);
CREATE TABLE IF NOT EXISTS actions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at TEXT NOT NULL,
    cluster TEXT NOT NULL,
    plan TEXT NOT NULL,
    rule TEXT NOT NULL,
    intent TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_intent ON actions (intent);
CREATE INDEX IF NOT EXISTS actions_cluster ON actions (cluster, rule);
CREATE TABLE IF NOT EXISTS action_states (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id BIGINT NOT NULL REFERENCES actions(id),
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS action_states_action ON action_states (action_id, id);
CREATE TABLE IF NOT EXISTS approvals (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id BIGINT NOT NULL REFERENCES actions(id),
    at TEXT NOT NULL,
    decision TEXT NOT NULL,
    who TEXT NOT NULL,
    why TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id BIGINT NOT NULL UNIQUE REFERENCES actions(id),
    started_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS execution_results (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id BIGINT NOT NULL UNIQUE REFERENCES actions(id),
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verifications (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id BIGINT NOT NULL REFERENCES actions(id),
    cluster TEXT NOT NULL,
    at TEXT NOT NULL,
    succeeded BOOLEAN NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS controls (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    cluster TEXT,
    who TEXT NOT NULL,
    why TEXT NOT NULL
);
"#;

/// Serialises schema creation between replicas starting together (`CREATE ... IF NOT
/// EXISTS` is not safe against a concurrent creator).
const SCHEMA_LOCK: i64 = 0x6770_7265_6d65_6400; // "gpremed\0"

const CURRENT_STATE: &str =
    "(SELECT s.state FROM action_states s WHERE s.action_id = a.id ORDER BY s.id DESC LIMIT 1)";

fn storage(what: &'static str) -> impl FnOnce(::postgres::Error) -> JournalError {
    move |source| JournalError::Postgres { what, source }
}

fn to_json<T: Serialize>(value: &T, what: &'static str) -> JournalResult<String> {
    serde_json::to_string(value).map_err(|e| JournalError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

fn from_json<T: for<'de> Deserialize<'de>>(text: &str, what: &'static str) -> JournalResult<T> {
    serde_json::from_str(text).map_err(|e| JournalError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

fn parse_state(text: &str) -> JournalResult<ActionState> {
    ActionState::parse(text).ok_or_else(|| JournalError::Corrupt {
        what: "action state",
        detail: text.to_string(),
    })
}

/// Inserts one delivery and its alerts into the open transaction; an alert whose event key
/// is already journalled (earlier, or earlier in this transaction) is a duplicate.
fn insert_delivery(
    tx: &mut Transaction<'_>,
    received_at: DateTime<Utc>,
    body: &str,
    alerts: &[Alert],
) -> JournalResult<Vec<EventInsert>> {
    let at = ts(received_at);
    let delivery: i64 = tx
        .query_one(
            "INSERT INTO deliveries (received_at, body) VALUES ($1, $2) RETURNING id",
            &[&at, &body],
        )
        .map_err(storage("insert delivery"))?
        .get(0);
    let mut out = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let labels = to_json(&alert.labels, "labels")?;
        let inserted = tx
            .query_opt(
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
                    &labels,
                ],
            )
            .map_err(storage("insert event"))?;
        out.push(match inserted {
            Some(row) => EventInsert::New(row.get(0)),
            None => EventInsert::Duplicate,
        });
    }
    Ok(out)
}

/// Inserts decisions into the open transaction, skipping events already decided.
fn insert_decisions(
    tx: &mut Transaction<'_>,
    decisions: &[NewDecision],
) -> JournalResult<Vec<bool>> {
    if decisions.is_empty() {
        return Ok(Vec::new());
    }
    let at = ts(Utc::now());
    let insert = tx
        .prepare(
            "INSERT INTO decisions (event_id, at, decision, detail, action_id)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        )
        .map_err(storage("insert decision"))?;
    decisions
        .iter()
        .map(|d| {
            tx.execute(
                &insert,
                &[&d.event_id, &at, &d.decision, &d.detail, &d.action_id],
            )
            .map(|rows| rows == 1)
            .map_err(storage("insert decision"))
        })
        .collect()
}

/// The advisory lock key of a cluster's lane: stable across replicas and versions.
pub fn lane_key(cluster: &str) -> i64 {
    let digest = Sha256::digest(format!("greenplum-remediator/lane/{cluster}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Runs `f` where the `postgres` crate may block: inline on a plain thread, on a scoped
/// thread when called from inside a tokio runtime.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The session that holds the lane locks, and which lanes it holds.
struct LaneSession {
    client: Option<Client>,
    held: BTreeSet<String>,
}

pub struct PostgresJournal {
    config: Config,
    conn: Mutex<Option<Client>>,
    lanes: Mutex<LaneSession>,
    group: GroupCommit,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a thread panicked mid-call; the server rolled back whatever
    // transaction was open, so the session is still usable (or is reconnected).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PostgresJournal {
    /// Connects, creates the schema if missing. `config` carries the password; it never
    /// comes from the command line.
    pub fn connect(mut config: Config) -> JournalResult<Self> {
        if config.get_application_name().is_none() {
            config.application_name("greenplum-remediator");
        }
        let journal = PostgresJournal {
            config,
            conn: Mutex::new(None),
            lanes: Mutex::new(LaneSession {
                client: None,
                held: BTreeSet::new(),
            }),
            group: GroupCommit::new(),
        };
        journal.with(|c| {
            let mut tx = c.transaction().map_err(storage("begin schema"))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .map_err(storage("lock schema creation"))?;
            tx.batch_execute(SCHEMA).map_err(storage("create schema"))?;
            tx.commit().map_err(storage("commit schema"))
        })?;
        Ok(journal)
    }

    fn open_session(&self, role: &str) -> JournalResult<Client> {
        let mut config = self.config.clone();
        let base = config
            .get_application_name()
            .unwrap_or("greenplum-remediator");
        // The pid tells an operator (and the tests) which replica holds a lane.
        let name = format!("{base}/{}/{role}", std::process::id());
        config.application_name(&name);
        config.connect(NoTls).map_err(storage("connect"))
    }

    /// Runs `f` on the records session, reconnecting once when the session was lost.
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> JournalResult<T> + Send,
    ) -> JournalResult<T> {
        off_runtime(|| {
            let mut guard = lock(&self.conn);
            if guard.as_ref().is_none_or(Client::is_closed) {
                *guard = Some(self.open_session("records")?);
            }
            let client = guard
                .as_mut()
                .ok_or(JournalError::Unavailable("no PostgreSQL session".into()))?;
            let result = f(client);
            if client.is_closed() {
                // Dropped so the next call starts on a fresh session.
                *guard = None;
            }
            result
        })
    }

    fn query(
        c: &mut Client,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        what: &'static str,
    ) -> JournalResult<Vec<Row>> {
        c.query(sql, params).map_err(storage(what))
    }

    fn history(c: &mut Client, id: i64) -> JournalResult<Vec<StateChange>> {
        let rows = Self::query(
            c,
            "SELECT at, state, detail FROM action_states WHERE action_id = $1 ORDER BY id",
            &[&id],
            "read action states",
        )?;
        rows.iter()
            .map(|r| {
                Ok(StateChange {
                    at: parse_ts(r.get(0), "state time")?,
                    state: parse_state(r.get(1))?,
                    detail: from_json(r.get(2), "state detail")?,
                })
            })
            .collect()
    }

    fn approvals(c: &mut Client, id: i64) -> JournalResult<Vec<Approval>> {
        let rows = Self::query(
            c,
            "SELECT at, decision, who, why FROM approvals WHERE action_id = $1 ORDER BY id",
            &[&id],
            "read approvals",
        )?;
        rows.iter()
            .map(|r| {
                let decision = match r.get::<_, &str>(1) {
                    "approve" => ApprovalDecision::Approve,
                    "reject" => ApprovalDecision::Reject,
                    other => {
                        return Err(JournalError::Corrupt {
                            what: "approval decision",
                            detail: other.to_string(),
                        })
                    }
                };
                Ok(Approval {
                    at: parse_ts(r.get(0), "approval time")?,
                    decision,
                    who: r.get(2),
                    why: r.get(3),
                })
            })
            .collect()
    }

    fn verifications(c: &mut Client, id: i64) -> JournalResult<Vec<Verification>> {
        let rows = Self::query(
            c,
            "SELECT at, succeeded, detail FROM verifications WHERE action_id = $1 ORDER BY id",
            &[&id],
            "read verifications",
        )?;
        rows.iter()
            .map(|r| {
                Ok(Verification {
                    at: parse_ts(r.get(0), "verification time")?,
                    succeeded: r.get(1),
                    detail: from_json(r.get(2), "verification detail")?,
                })
            })
            .collect()
    }

    fn one_json<T: for<'de> Deserialize<'de>>(
        c: &mut Client,
        sql: &str,
        id: i64,
        what: &'static str,
    ) -> JournalResult<Option<T>> {
        let row = c.query_opt(sql, &[&id]).map_err(storage(what))?;
        row.map(|r| from_json(r.get(0), what)).transpose()
    }

    fn paused_in(c: &mut Client) -> JournalResult<bool> {
        let row = c
            .query_opt(
                "SELECT kind FROM controls WHERE kind IN ('pause', 'resume')
                 ORDER BY id DESC LIMIT 1",
                &[],
            )
            .map_err(storage("read pause"))?;
        Ok(row.is_some_and(|r| r.get::<_, &str>(0) == "pause"))
    }

    fn consecutive_failures(c: &mut Client, cluster: &str) -> JournalResult<u32> {
        let reset = c
            .query_opt(
                "SELECT at FROM controls WHERE kind = 'breaker_reset'
                 AND (cluster IS NULL OR cluster = $1) ORDER BY id DESC LIMIT 1",
                &[&cluster],
            )
            .map_err(storage("read controls"))?;
        let since = reset.map(|r| r.get::<_, String>(0)).unwrap_or_default();
        let rows = Self::query(
            c,
            "SELECT succeeded FROM verifications WHERE cluster = $1 AND at > $2 ORDER BY id DESC",
            &[&cluster, &since],
            "read verifications",
        )?;
        Ok(rows.iter().take_while(|r| !r.get::<_, bool>(0)).count() as u32)
    }
}

impl Journal for PostgresJournal {
    fn record_delivery(
        &self,
        received_at: DateTime<Utc>,
        body: &str,
        alerts: &[Alert],
    ) -> JournalResult<Vec<EventInsert>> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(storage("begin delivery"))?;
            let inserts = insert_delivery(&mut tx, received_at, body, alerts)?;
            tx.commit().map_err(storage("commit delivery"))?;
            Ok(inserts)
        })
    }

    fn record_batch(&self, batch: &Batch<'_>) -> JournalResult<BatchOutcome> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(storage("begin batch"))?;
            let deliveries = batch
                .deliveries
                .iter()
                .map(|d| insert_delivery(&mut tx, d.received_at, &d.body, &d.alerts))
                .collect::<JournalResult<_>>()?;
            let decisions = insert_decisions(&mut tx, batch.decisions)?;
            tx.commit().map_err(storage("commit batch"))?;
            Ok(BatchOutcome {
                deliveries,
                decisions,
            })
        })
    }

    fn group_commit(&self) -> &GroupCommit {
        &self.group
    }

    fn undecided_events(&self) -> JournalResult<Vec<StoredEvent>> {
        self.with(|c| {
            let rows = Self::query(
                c,
                "SELECT e.id, e.received_at, e.fingerprint, e.starts_at, e.status, e.alertname,
                        e.labels
                 FROM events e LEFT JOIN decisions d ON d.event_id = e.id
                 WHERE d.id IS NULL ORDER BY e.id",
                &[],
                "read undecided events",
            )?;
            rows.iter()
                .map(|r| {
                    let status: &str = r.get(4);
                    Ok(StoredEvent {
                        id: r.get(0),
                        received_at: parse_ts(r.get(1), "event received_at")?,
                        fingerprint: r.get(2),
                        starts_at: parse_ts(r.get(3), "event startsAt")?,
                        status: AlertStatus::parse(status).ok_or_else(|| {
                            JournalError::Corrupt {
                                what: "event status",
                                detail: status.to_string(),
                            }
                        })?,
                        alertname: r.get(5),
                        labels: from_json(r.get(6), "event labels")?,
                    })
                })
                .collect()
        })
    }

    fn event_decided(&self, event_id: i64) -> JournalResult<bool> {
        self.with(|c| {
            c.query_one(
                "SELECT EXISTS (SELECT 1 FROM decisions WHERE event_id = $1)",
                &[&event_id],
            )
            .map(|r| r.get(0))
            .map_err(storage("find decision"))
        })
    }

    fn event_resolved(&self, fingerprint: &str, starts_at: DateTime<Utc>) -> JournalResult<bool> {
        let starts = ts(starts_at);
        self.with(|c| {
            c.query_one(
                "SELECT EXISTS (SELECT 1 FROM events
                 WHERE fingerprint = $1 AND starts_at = $2 AND status = 'resolved')",
                &[&fingerprint, &starts],
            )
            .map(|r| r.get(0))
            .map_err(storage("find resolved event"))
        })
    }

    fn record_decision(
        &self,
        event_id: i64,
        decision: &str,
        detail: &str,
        action_id: Option<i64>,
    ) -> JournalResult<()> {
        let at = ts(Utc::now());
        self.with(|c| {
            c.execute(
                "INSERT INTO decisions (event_id, at, decision, detail, action_id)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&event_id, &at, &decision, &detail, &action_id],
            )
            .map(drop)
            .map_err(storage("insert decision"))
        })
    }

    fn create_action(&self, plan: &NewAction, first: &StateChange) -> JournalResult<i64> {
        let plan_json = to_json(plan, "plan")?;
        let detail = to_json(&first.detail, "state detail")?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(storage("begin action"))?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO actions (created_at, cluster, plan, rule, intent)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[
                        &ts(plan.created_at),
                        &plan.cluster,
                        &plan_json,
                        &plan.rule,
                        &plan.intent,
                    ],
                )
                .map_err(storage("insert action"))?
                .get(0);
            tx.execute(
                "INSERT INTO action_states (action_id, at, state, detail) VALUES ($1, $2, $3, $4)",
                &[&id, &ts(first.at), &first.state.as_str(), &detail],
            )
            .map_err(storage("insert action state"))?;
            tx.commit().map_err(storage("commit action"))?;
            Ok(id)
        })
    }

    fn record_state(&self, action_id: i64, change: &StateChange) -> JournalResult<()> {
        let detail = to_json(&change.detail, "state detail")?;
        self.with(|c| {
            c.execute(
                "INSERT INTO action_states (action_id, at, state, detail) VALUES ($1, $2, $3, $4)",
                &[&action_id, &ts(change.at), &change.state.as_str(), &detail],
            )
            .map(drop)
            .map_err(storage("insert action state"))
        })
    }

    fn record_approval(&self, action_id: i64, approval: &Approval) -> JournalResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO approvals (action_id, at, decision, who, why)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &action_id,
                    &ts(approval.at),
                    &approval.decision.as_str(),
                    &approval.who,
                    &approval.why,
                ],
            )
            .map(drop)
            .map_err(storage("insert approval"))
        })
    }

    fn record_execution_start(&self, action_id: i64, start: &ExecutionStart) -> JournalResult<()> {
        let record = to_json(start, "execution")?;
        self.with(|c| {
            c.execute(
                "INSERT INTO executions (action_id, started_at, record) VALUES ($1, $2, $3)",
                &[&action_id, &ts(start.started_at), &record],
            )
            .map(drop)
            .map_err(storage("insert execution"))
        })
    }

    fn record_execution_end(&self, action_id: i64, end: &ExecutionEnd) -> JournalResult<()> {
        let record = to_json(end, "execution result")?;
        self.with(|c| {
            c.execute(
                "INSERT INTO execution_results (action_id, record) VALUES ($1, $2)",
                &[&action_id, &record],
            )
            .map(drop)
            .map_err(storage("insert execution result"))
        })
    }

    fn record_verification(
        &self,
        action_id: i64,
        cluster: &str,
        verification: &Verification,
    ) -> JournalResult<()> {
        let detail = to_json(&verification.detail, "verification detail")?;
        self.with(|c| {
            c.execute(
                "INSERT INTO verifications (action_id, cluster, at, succeeded, detail)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &action_id,
                    &cluster,
                    &ts(verification.at),
                    &verification.succeeded,
                    &detail,
                ],
            )
            .map(drop)
            .map_err(storage("insert verification"))
        })
    }

    fn action(&self, id: i64) -> JournalResult<Option<ActionRecord>> {
        self.with(|c| {
            let Some(plan) = Self::one_json::<NewAction>(
                c,
                "SELECT plan FROM actions WHERE id = $1",
                id,
                "plan",
            )?
            else {
                return Ok(None);
            };
            let history = Self::history(c, id)?;
            let state = history
                .last()
                .map(|h| h.state)
                .ok_or(JournalError::Corrupt {
                    what: "action",
                    detail: format!("action {id} has no state"),
                })?;
            Ok(Some(ActionRecord {
                id,
                plan,
                state,
                history,
                approvals: Self::approvals(c, id)?,
                execution: Self::one_json(
                    c,
                    "SELECT record FROM executions WHERE action_id = $1",
                    id,
                    "execution",
                )?,
                result: Self::one_json(
                    c,
                    "SELECT record FROM execution_results WHERE action_id = $1",
                    id,
                    "execution result",
                )?,
                verifications: Self::verifications(c, id)?,
            }))
        })
    }

    fn actions(&self, state: Option<ActionState>) -> JournalResult<Vec<ActionSummary>> {
        self.with(|c| {
            let sql = format!("SELECT a.id, a.plan, {CURRENT_STATE} FROM actions a ORDER BY a.id");
            let rows = Self::query(c, &sql, &[], "list actions")?;
            let mut out = Vec::new();
            for r in &rows {
                let current = parse_state(r.get(2))?;
                if state.is_some_and(|wanted| wanted != current) {
                    continue;
                }
                let plan: NewAction = from_json(r.get(1), "plan")?;
                out.push(ActionSummary {
                    id: r.get(0),
                    created_at: plan.created_at,
                    cluster: plan.cluster,
                    action: plan.action,
                    rule: plan.rule,
                    targets: plan.targets,
                    state: current,
                });
            }
            Ok(out)
        })
    }

    fn open_action_with_intent(&self, intent: &str) -> JournalResult<Option<i64>> {
        self.with(|c| {
            let sql = format!(
                "SELECT a.id, {CURRENT_STATE} FROM actions a WHERE a.intent = $1 ORDER BY a.id DESC"
            );
            for r in Self::query(c, &sql, &[&intent], "find intent")? {
                if parse_state(r.get(1))?.is_open() {
                    return Ok(Some(r.get(0)));
                }
            }
            Ok(None)
        })
    }

    fn ledger(&self, cluster: &str, rule: &str, now: DateTime<Utc>) -> JournalResult<LedgerFacts> {
        let hour = ts(now - Duration::hours(1));
        let day = ts(now - Duration::hours(24));
        self.with(|c| {
            let count = |c: &mut Client, since: &str| -> JournalResult<u32> {
                let n: i64 = c
                    .query_one(
                        "SELECT COUNT(*) FROM executions x JOIN actions a ON a.id = x.action_id
                         WHERE a.cluster = $1 AND a.rule = $2 AND x.started_at > $3",
                        &[&cluster, &rule, &since],
                    )
                    .map_err(storage("count executions"))?
                    .get(0);
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            };
            let executions_last_hour = count(c, &hour)?;
            let executions_last_day = count(c, &day)?;
            let last: Option<String> = c
                .query_one(
                    "SELECT MAX(x.started_at) FROM executions x JOIN actions a ON a.id = x.action_id
                     WHERE a.cluster = $1 AND a.rule = $2",
                    &[&cluster, &rule],
                )
                .map_err(storage("last execution"))?
                .get(0);
            let mut by_dbid: BTreeMap<i16, u32> = BTreeMap::new();
            for r in Self::query(
                c,
                "SELECT a.plan FROM executions x JOIN actions a ON a.id = x.action_id
                 WHERE a.cluster = $1 AND x.started_at > $2",
                &[&cluster, &day],
                "recent executions",
            )? {
                let plan: NewAction = from_json(r.get(0), "plan")?;
                for dbid in plan.targets {
                    *by_dbid.entry(dbid).or_default() += 1;
                }
            }
            Ok(LedgerFacts {
                paused: Self::paused_in(c)?,
                consecutive_failures: Self::consecutive_failures(c, cluster)?,
                executions_last_hour,
                executions_last_day,
                last_execution_at: last.map(|t| parse_ts(&t, "execution time")).transpose()?,
                executions_by_dbid_24h: by_dbid,
            })
        })
    }

    fn record_control(
        &self,
        kind: ControlKind,
        cluster: Option<&str>,
        who: &str,
        why: &str,
        at: DateTime<Utc>,
    ) -> JournalResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO controls (at, kind, cluster, who, why) VALUES ($1, $2, $3, $4, $5)",
                &[&ts(at), &kind.as_str(), &cluster, &who, &why],
            )
            .map(drop)
            .map_err(storage("insert control"))
        })
    }

    fn paused(&self) -> JournalResult<bool> {
        self.with(Self::paused_in)
    }

    /// True while this replica holds the lane. Called again before every execution: a lost
    /// lock session means the lock may be someone else's now, so it is taken anew (or not).
    fn try_acquire_lane(&self, cluster: &str) -> JournalResult<bool> {
        off_runtime(|| {
            let mut lanes = lock(&self.lanes);
            let alive = match lanes.client.as_mut() {
                Some(c) => !c.is_closed() && c.simple_query("SELECT 1").is_ok(),
                None => false,
            };
            if !alive {
                if !lanes.held.is_empty() {
                    tracing::warn!(lanes = ?lanes.held, "lost the lane lock session; taking the locks anew");
                }
                lanes.held.clear();
                lanes.client = Some(self.open_session("lanes")?);
            }
            if lanes.held.contains(cluster) {
                return Ok(true);
            }
            let client = lanes.client.as_mut().ok_or(JournalError::Unavailable(
                "no PostgreSQL lock session".into(),
            ))?;
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&lane_key(cluster)])
                .map_err(storage("take the lane lock"))?
                .get(0);
            if got {
                lanes.held.insert(cluster.to_string());
            }
            Ok(got)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_keys_are_stable_and_distinct_per_cluster() {
        // Replicas of different versions must agree on the key: it is part of the protocol.
        assert_eq!(lane_key("gp-prod"), lane_key("gp-prod"));
        assert_ne!(lane_key("gp-prod"), lane_key("gp-test"));
        assert_ne!(lane_key("gp-prod"), SCHEMA_LOCK);
    }

    #[test]
    fn off_runtime_runs_inside_and_outside_a_runtime() {
        assert_eq!(off_runtime(|| 1), 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let borrowed = String::from("borrowed");
        assert_eq!(rt.block_on(async { off_runtime(|| borrowed.len()) }), 8);
    }
}
