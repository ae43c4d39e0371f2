//! The default journal: one SQLite file in WAL mode with `synchronous=FULL`, so a 202 is only
//! sent after the event is on disk.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, DatabaseName, OptionalExtension};

use super::reserve::{Reserve, RESERVE_BYTES};
use super::*;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    received_at TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    alertname TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (fingerprint, starts_at, status)
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL UNIQUE REFERENCES events(id),
    at TEXT NOT NULL,
    decision TEXT NOT NULL,
    detail TEXT NOT NULL,
    action_id INTEGER
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    cluster TEXT NOT NULL,
    plan TEXT NOT NULL,
    rule TEXT NOT NULL,
    intent TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_intent ON actions (intent);
CREATE INDEX IF NOT EXISTS actions_cluster ON actions (cluster, rule);
CREATE TABLE IF NOT EXISTS action_states (
    id INTEGER PRIMARY KEY,
    action_id INTEGER NOT NULL REFERENCES actions(id),
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS action_states_action ON action_states (action_id, id);
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY,
    action_id INTEGER NOT NULL REFERENCES actions(id),
    at TEXT NOT NULL,
    decision TEXT NOT NULL,
    who TEXT NOT NULL,
    why TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY,
    action_id INTEGER NOT NULL UNIQUE REFERENCES actions(id),
    started_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS execution_results (
    id INTEGER PRIMARY KEY,
    action_id INTEGER NOT NULL UNIQUE REFERENCES actions(id),
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verifications (
    id INTEGER PRIMARY KEY,
    action_id INTEGER NOT NULL REFERENCES actions(id),
    cluster TEXT NOT NULL,
    at TEXT NOT NULL,
    succeeded INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS controls (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    cluster TEXT,
    who TEXT NOT NULL,
    why TEXT NOT NULL
);
"#;

/// The current state of an action: its latest state row.
const CURRENT_STATE: &str =
    "(SELECT s.state FROM action_states s WHERE s.action_id = a.id ORDER BY s.id DESC LIMIT 1)";

pub struct SqliteJournal {
    path: PathBuf,
    conn: Mutex<Slot>,
    reserve: Reserve,
    group: GroupCommit,
}

struct Slot {
    conn: Connection,
    /// Set while `conn` is an empty stand-in because the file could not be reopened.
    lost: Option<String>,
}

impl Slot {
    fn new(conn: Connection) -> Mutex<Slot> {
        Mutex::new(Slot { conn, lost: None })
    }
}

/// The locked connection.
struct Conn<'a>(MutexGuard<'a, Slot>);

impl Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

fn is_disk_full(e: &JournalError) -> bool {
    matches!(
        e,
        JournalError::Storage {
            source: rusqlite::Error::SqliteFailure(failure, _),
            ..
        } if failure.code == rusqlite::ErrorCode::DiskFull
    )
}

fn is_read_only(conn: &Connection) -> bool {
    conn.is_readonly(DatabaseName::Main).unwrap_or(false)
}

fn storage(what: &'static str) -> impl FnOnce(rusqlite::Error) -> JournalError {
    move |source| JournalError::Storage { what, source }
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

/// Inserts one delivery and its alerts into the open transaction. The event key is unique,
/// so an alert already journalled (in an earlier transaction or earlier in this one) is
/// ignored and reported as a duplicate.
fn insert_delivery(
    tx: &Connection,
    received_at: DateTime<Utc>,
    body: &str,
    alerts: &[Alert],
) -> JournalResult<Vec<EventInsert>> {
    let at = ts(received_at);
    tx.prepare_cached("INSERT INTO deliveries (received_at, body) VALUES (?1, ?2)")
        .and_then(|mut insert| insert.execute(params![at, body]))
        .map_err(storage("insert delivery"))?;
    let delivery = tx.last_insert_rowid();
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO events
             (delivery_id, received_at, fingerprint, starts_at, status, alertname, labels)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(storage("insert event"))?;
    let mut out = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let labels = to_json(&alert.labels, "labels")?;
        let inserted = insert
            .execute(params![
                delivery,
                at,
                alert.fingerprint,
                ts(alert.starts_at),
                alert.status.as_str(),
                alert.alertname(),
                labels
            ])
            .map_err(storage("insert event"))?;
        out.push(if inserted == 1 {
            EventInsert::New(tx.last_insert_rowid())
        } else {
            EventInsert::Duplicate
        });
    }
    Ok(out)
}

/// Inserts decisions into the open transaction, skipping events already decided.
fn insert_decisions(tx: &Connection, decisions: &[NewDecision]) -> JournalResult<Vec<bool>> {
    if decisions.is_empty() {
        return Ok(Vec::new());
    }
    let at = ts(Utc::now());
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO decisions (event_id, at, decision, detail, action_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(storage("insert decision"))?;
    decisions
        .iter()
        .map(|d| {
            insert
                .execute(params![d.event_id, at, d.decision, d.detail, d.action_id])
                .map(|rows| rows == 1)
                .map_err(storage("insert decision"))
        })
        .collect()
}

impl SqliteJournal {
    pub fn open(path: &Path) -> JournalResult<Self> {
        let conn = Self::connect(path)?;
        if is_read_only(&conn) {
            tracing::warn!(path = %path.display(), "journal opened read-only (read-only file system?): deliveries are refused until it is writable");
        }
        let reserve = Reserve::beside(path, RESERVE_BYTES);
        if let Err(error) = reserve.keep() {
            tracing::warn!(path = %reserve.path().display(), %error, "cannot reserve room for recording actions; deliveries are refused until it can");
        }
        Ok(SqliteJournal {
            path: path.to_path_buf(),
            conn: Slot::new(conn),
            reserve,
            group: GroupCommit::new(),
        })
    }

    fn connect(path: &Path) -> JournalResult<Connection> {
        let conn = Connection::open(path).map_err(storage("open"))?;
        Self::configure(&conn)?;
        Ok(conn)
    }

    fn configure(conn: &Connection) -> JournalResult<()> {
        // WAL keeps readers (the API) off the writer's back; FULL makes every commit durable
        // before we answer 202. The busy timeout covers a second process (check-policy, CLI
        // tooling) briefly holding the file.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(storage("set WAL mode"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(storage("set synchronous=FULL"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(storage("enable foreign keys"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(storage("set busy timeout"))?;
        conn.execute_batch(SCHEMA).map_err(storage("create schema"))
    }

    fn conn(&self) -> JournalResult<Conn<'_>> {
        // A poisoned lock means a thread panicked mid-call; SQLite rolled the transaction
        // back, so the connection itself is still consistent.
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if slot.lost.is_some() || is_read_only(&slot.conn) {
            self.reopen(&mut slot);
        }
        if let Some(why) = &slot.lost {
            return Err(JournalError::Unavailable(why.clone()));
        }
        Ok(Conn(slot))
    }

    /// SQLite opens a file on a read-only file system read-only and never upgrades that
    /// connection: without a new one every write would fail until a restart, long after the
    /// disk became writable again. Opening is cheap and only tried while read-only, so the
    /// first call after the disk returns succeeds.
    fn reopen(&self, slot: &mut Slot) {
        // SQLite shares one WAL index per file within a process: a connection opened while
        // the read-only one lives inherits its read-only mapping. Close that one first.
        let Ok(stand_in) = Connection::open_in_memory() else {
            return;
        };
        drop(std::mem::replace(&mut slot.conn, stand_in));
        match Self::connect(&self.path) {
            Ok(fresh) => {
                if !is_read_only(&fresh) {
                    tracing::info!(path = %self.path.display(), "journal writable again");
                }
                slot.conn = fresh;
                slot.lost = None;
            }
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot reopen the journal");
                slot.lost = Some(format!("cannot reopen {}: {error}", self.path.display()));
            }
        }
    }

    /// A record of work under way (everything but deliveries): when the disk is full it
    /// may use the reserve.
    fn critical<T>(&self, write: impl Fn() -> JournalResult<T>) -> JournalResult<T> {
        match write() {
            Err(e) if is_disk_full(&e) && self.reserve.release() => {
                tracing::warn!(path = %self.reserve.path().display(), "journal disk full: released the reserve to record work under way; deliveries are refused until the room is back");
                write()
            }
            other => other,
        }
    }

    /// New work is only taken on while the room for finishing it is there.
    fn keep_reserve(&self) -> JournalResult<()> {
        self.reserve.keep().map_err(|e| {
            let what = if e.kind() == std::io::ErrorKind::StorageFull {
                "journal disk full"
            } else {
                "journal disk unusable"
            };
            JournalError::Unavailable(format!(
                "{what}: cannot keep {} ({RESERVE_BYTES} bytes for recording actions under way): {e}",
                self.reserve.path().display()
            ))
        })
    }

    fn state_history(conn: &Connection, id: i64) -> JournalResult<Vec<StateChange>> {
        let mut stmt = conn
            .prepare("SELECT at, state, detail FROM action_states WHERE action_id = ?1 ORDER BY id")
            .map_err(storage("read action states"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(storage("read action states"))?;
        let mut out = Vec::new();
        for row in rows {
            let (at, state, detail) = row.map_err(storage("read action states"))?;
            out.push(StateChange {
                at: parse_ts(&at, "state time")?,
                state: parse_state(&state)?,
                detail: from_json(&detail, "state detail")?,
            });
        }
        Ok(out)
    }

    fn approvals(conn: &Connection, id: i64) -> JournalResult<Vec<Approval>> {
        let mut stmt = conn
            .prepare(
                "SELECT at, decision, who, why FROM approvals WHERE action_id = ?1 ORDER BY id",
            )
            .map_err(storage("read approvals"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(storage("read approvals"))?;
        let mut out = Vec::new();
        for row in rows {
            let (at, decision, who, why) = row.map_err(storage("read approvals"))?;
            let decision = match decision.as_str() {
                "approve" => ApprovalDecision::Approve,
                "reject" => ApprovalDecision::Reject,
                other => {
                    return Err(JournalError::Corrupt {
                        what: "approval decision",
                        detail: other.to_string(),
                    })
                }
            };
            out.push(Approval {
                at: parse_ts(&at, "approval time")?,
                decision,
                who,
                why,
            });
        }
        Ok(out)
    }

    fn verifications(conn: &Connection, id: i64) -> JournalResult<Vec<Verification>> {
        let mut stmt = conn
            .prepare(
                "SELECT at, succeeded, detail FROM verifications WHERE action_id = ?1 ORDER BY id",
            )
            .map_err(storage("read verifications"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(storage("read verifications"))?;
        let mut out = Vec::new();
        for row in rows {
            let (at, succeeded, detail) = row.map_err(storage("read verifications"))?;
            out.push(Verification {
                at: parse_ts(&at, "verification time")?,
                succeeded,
                detail: from_json(&detail, "verification detail")?,
            });
        }
        Ok(out)
    }

    fn one_json<T: for<'de> Deserialize<'de>>(
        conn: &Connection,
        sql: &str,
        id: i64,
        what: &'static str,
    ) -> JournalResult<Option<T>> {
        let text: Option<String> = conn
            .query_row(sql, [id], |r| r.get(0))
            .optional()
            .map_err(storage(what))?;
        text.map(|t| from_json(&t, what)).transpose()
    }

    /// Latest control of `kinds` for the cluster (or global), as its time.
    fn last_control(
        conn: &Connection,
        kind: ControlKind,
        cluster: &str,
    ) -> JournalResult<Option<DateTime<Utc>>> {
        let at: Option<String> = conn
            .query_row(
                "SELECT at FROM controls WHERE kind = ?1 AND (cluster IS NULL OR cluster = ?2)
                 ORDER BY id DESC LIMIT 1",
                params![kind.as_str(), cluster],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage("read controls"))?;
        at.map(|t| parse_ts(&t, "control time")).transpose()
    }

    fn consecutive_failures(conn: &Connection, cluster: &str) -> JournalResult<u32> {
        let reset = Self::last_control(conn, ControlKind::BreakerReset, cluster)?;
        let since = reset.map(ts).unwrap_or_default();
        let mut stmt = conn
            .prepare(
                "SELECT succeeded FROM verifications WHERE cluster = ?1 AND at > ?2
                 ORDER BY id DESC",
            )
            .map_err(storage("read verifications"))?;
        let rows = stmt
            .query_map(params![cluster, since], |r| r.get::<_, bool>(0))
            .map_err(storage("read verifications"))?;
        let mut failures = 0;
        for row in rows {
            if row.map_err(storage("read verifications"))? {
                break;
            }
            failures += 1;
        }
        Ok(failures)
    }
}

impl Journal for SqliteJournal {
    fn record_delivery(
        &self,
        received_at: DateTime<Utc>,
        body: &str,
        alerts: &[Alert],
    ) -> JournalResult<Vec<EventInsert>> {
        let mut conn = self.conn()?;
        // Under the connection's lock, so concurrent deliveries do not write it twice.
        self.keep_reserve()?;
        let tx = conn.transaction().map_err(storage("begin delivery"))?;
        let inserts = insert_delivery(&tx, received_at, body, alerts)?;
        tx.commit().map_err(storage("commit delivery"))?;
        Ok(inserts)
    }

    fn record_batch(&self, batch: &Batch<'_>) -> JournalResult<BatchOutcome> {
        let mut conn = self.conn()?;
        if !batch.deliveries.is_empty() {
            // Under the connection's lock, so concurrent writers do not write it twice.
            self.keep_reserve()?;
        }
        let tx = conn.transaction().map_err(storage("begin batch"))?;
        let deliveries = batch
            .deliveries
            .iter()
            .map(|d| insert_delivery(&tx, d.received_at, &d.body, &d.alerts))
            .collect::<JournalResult<_>>()?;
        let decisions = insert_decisions(&tx, batch.decisions)?;
        tx.commit().map_err(storage("commit batch"))?;
        Ok(BatchOutcome {
            deliveries,
            decisions,
        })
    }

    fn group_commit(&self) -> &GroupCommit {
        &self.group
    }

    fn undecided_events(&self) -> JournalResult<Vec<StoredEvent>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT e.id, e.received_at, e.fingerprint, e.starts_at, e.status, e.alertname,
                        e.labels
                 FROM events e LEFT JOIN decisions d ON d.event_id = e.id
                 WHERE d.id IS NULL ORDER BY e.id",
            )
            .map_err(storage("read undecided events"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(storage("read undecided events"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, received, fingerprint, starts, status, alertname, labels) =
                row.map_err(storage("read undecided events"))?;
            out.push(StoredEvent {
                id,
                received_at: parse_ts(&received, "event received_at")?,
                fingerprint,
                starts_at: parse_ts(&starts, "event startsAt")?,
                status: AlertStatus::parse(&status).ok_or_else(|| JournalError::Corrupt {
                    what: "event status",
                    detail: status.clone(),
                })?,
                alertname,
                labels: from_json(&labels, "event labels")?,
            });
        }
        Ok(out)
    }

    fn event_decided(&self, event_id: i64) -> JournalResult<bool> {
        let conn = self.conn()?;
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM decisions WHERE event_id = ?1)",
            [event_id],
            |r| r.get(0),
        )
        .map_err(storage("find decision"))
    }

    fn event_resolved(&self, fingerprint: &str, starts_at: DateTime<Utc>) -> JournalResult<bool> {
        let conn = self.conn()?;
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM events
             WHERE fingerprint = ?1 AND starts_at = ?2 AND status = 'resolved')",
            params![fingerprint, ts(starts_at)],
            |r| r.get(0),
        )
        .map_err(storage("find resolved event"))
    }

    fn record_decision(
        &self,
        event_id: i64,
        decision: &str,
        detail: &str,
        action_id: Option<i64>,
    ) -> JournalResult<()> {
        self.critical(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO decisions (event_id, at, decision, detail, action_id)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![event_id, ts(Utc::now()), decision, detail, action_id],
            )
            .map_err(storage("insert decision"))?;
            Ok(())
        })
    }

    fn create_action(&self, plan: &NewAction, first: &StateChange) -> JournalResult<i64> {
        self.critical(|| {
            let mut conn = self.conn()?;
            let tx = conn.transaction().map_err(storage("begin action"))?;
            tx.execute(
                "INSERT INTO actions (created_at, cluster, plan, rule, intent)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    ts(plan.created_at),
                    plan.cluster,
                    to_json(plan, "plan")?,
                    plan.rule,
                    plan.intent
                ],
            )
            .map_err(storage("insert action"))?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO action_states (action_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
                params![
                    id,
                    ts(first.at),
                    first.state.as_str(),
                    to_json(&first.detail, "state detail")?
                ],
            )
            .map_err(storage("insert action state"))?;
            tx.commit().map_err(storage("commit action"))?;
            Ok(id)
        })
    }

    fn record_state(&self, action_id: i64, change: &StateChange) -> JournalResult<()> {
        self.critical(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO action_states (action_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
                params![
                    action_id,
                    ts(change.at),
                    change.state.as_str(),
                    to_json(&change.detail, "state detail")?
                ],
            )
            .map_err(storage("insert action state"))?;
            Ok(())
        })
    }

    fn record_approval(&self, action_id: i64, approval: &Approval) -> JournalResult<()> {
        self.critical(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO approvals (action_id, at, decision, who, why) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    action_id,
                    ts(approval.at),
                    approval.decision.as_str(),
                    approval.who,
                    approval.why
                ],
            )
            .map_err(storage("insert approval"))?;
            Ok(())
        })
    }

    fn record_execution_start(&self, action_id: i64, start: &ExecutionStart) -> JournalResult<()> {
        self.critical(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO executions (action_id, started_at, record) VALUES (?1, ?2, ?3)",
                params![
                    action_id,
                    ts(start.started_at),
                    to_json(start, "execution")?
                ],
            )
            .map_err(storage("insert execution"))?;
            Ok(())
        })
    }

    fn record_execution_end(&self, action_id: i64, end: &ExecutionEnd) -> JournalResult<()> {
        self.critical(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO execution_results (action_id, record) VALUES (?1, ?2)",
                params![action_id, to_json(end, "execution result")?],
            )
            .map_err(storage("insert execution result"))?;
            Ok(())
        })
    }

    fn record_verification(
        &self,
        action_id: i64,
        cluster: &str,
        verification: &Verification,
    ) -> JournalResult<()> {
        self.critical(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO verifications (action_id, cluster, at, succeeded, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    action_id,
                    cluster,
                    ts(verification.at),
                    verification.succeeded,
                    to_json(&verification.detail, "verification detail")?
                ],
            )
            .map_err(storage("insert verification"))?;
            Ok(())
        })
    }

    fn action(&self, id: i64) -> JournalResult<Option<ActionRecord>> {
        let conn = self.conn()?;
        let Some(plan) = Self::one_json::<NewAction>(
            &conn,
            "SELECT plan FROM actions WHERE id = ?1",
            id,
            "plan",
        )?
        else {
            return Ok(None);
        };
        let history = Self::state_history(&conn, id)?;
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
            approvals: Self::approvals(&conn, id)?,
            execution: Self::one_json(
                &conn,
                "SELECT record FROM executions WHERE action_id = ?1",
                id,
                "execution",
            )?,
            result: Self::one_json(
                &conn,
                "SELECT record FROM execution_results WHERE action_id = ?1",
                id,
                "execution result",
            )?,
            verifications: Self::verifications(&conn, id)?,
        }))
    }

    fn actions(&self, state: Option<ActionState>) -> JournalResult<Vec<ActionSummary>> {
        let conn = self.conn()?;
        let sql = format!("SELECT a.id, a.plan, {CURRENT_STATE} FROM actions a ORDER BY a.id");
        let mut stmt = conn.prepare(&sql).map_err(storage("list actions"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(storage("list actions"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, plan, current) = row.map_err(storage("list actions"))?;
            let current = parse_state(&current)?;
            if state.is_some_and(|wanted| wanted != current) {
                continue;
            }
            let plan: NewAction = from_json(&plan, "plan")?;
            out.push(ActionSummary {
                id,
                created_at: plan.created_at,
                cluster: plan.cluster,
                action: plan.action,
                rule: plan.rule,
                targets: plan.targets,
                state: current,
            });
        }
        Ok(out)
    }

    fn open_action_with_intent(&self, intent: &str) -> JournalResult<Option<i64>> {
        let conn = self.conn()?;
        let sql = format!(
            "SELECT a.id, {CURRENT_STATE} FROM actions a WHERE a.intent = ?1 ORDER BY a.id DESC"
        );
        let mut stmt = conn.prepare(&sql).map_err(storage("find intent"))?;
        let rows = stmt
            .query_map([intent], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(storage("find intent"))?;
        for row in rows {
            let (id, state) = row.map_err(storage("find intent"))?;
            if parse_state(&state)?.is_open() {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    fn ledger(&self, cluster: &str, rule: &str, now: DateTime<Utc>) -> JournalResult<LedgerFacts> {
        let paused = self.paused()?;
        let conn = self.conn()?;
        let hour = ts(now - Duration::hours(1));
        let day = ts(now - Duration::hours(24));
        let count = |since: &str| -> JournalResult<u32> {
            conn.query_row(
                "SELECT COUNT(*) FROM executions x JOIN actions a ON a.id = x.action_id
                 WHERE a.cluster = ?1 AND a.rule = ?2 AND x.started_at > ?3",
                params![cluster, rule, since],
                |r| r.get(0),
            )
            .map_err(storage("count executions"))
        };
        let executions_last_hour = count(&hour)?;
        let executions_last_day = count(&day)?;
        let last: Option<String> = conn
            .query_row(
                "SELECT MAX(x.started_at) FROM executions x JOIN actions a ON a.id = x.action_id
                 WHERE a.cluster = ?1 AND a.rule = ?2",
                params![cluster, rule],
                |r| r.get(0),
            )
            .map_err(storage("last execution"))?;
        let mut by_dbid: BTreeMap<i16, u32> = BTreeMap::new();
        let mut stmt = conn
            .prepare(
                "SELECT a.plan FROM executions x JOIN actions a ON a.id = x.action_id
                 WHERE a.cluster = ?1 AND x.started_at > ?2",
            )
            .map_err(storage("recent executions"))?;
        let plans = stmt
            .query_map(params![cluster, day], |r| r.get::<_, String>(0))
            .map_err(storage("recent executions"))?;
        for plan in plans {
            let plan: NewAction = from_json(&plan.map_err(storage("recent executions"))?, "plan")?;
            for dbid in plan.targets {
                *by_dbid.entry(dbid).or_default() += 1;
            }
        }
        Ok(LedgerFacts {
            paused,
            consecutive_failures: Self::consecutive_failures(&conn, cluster)?,
            executions_last_hour,
            executions_last_day,
            last_execution_at: last.map(|t| parse_ts(&t, "execution time")).transpose()?,
            executions_by_dbid_24h: by_dbid,
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
        self.critical(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO controls (at, kind, cluster, who, why) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ts(at), kind.as_str(), cluster, who, why],
            )
            .map_err(storage("insert control"))?;
            Ok(())
        })
    }

    fn paused(&self) -> JournalResult<bool> {
        let conn = self.conn()?;
        let last: Option<String> = conn
            .query_row(
                "SELECT kind FROM controls WHERE kind IN ('pause', 'resume')
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage("read pause"))?;
        Ok(last.as_deref() == Some("pause"))
    }

    fn try_acquire_lane(&self, _cluster: &str) -> JournalResult<bool> {
        // One process owns the SQLite file; its lanes are serialised in memory.
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::reserve::{Reserve, RESERVE_BYTES};
    use super::*;
    use crate::alert::tests::recorded_body;
    use crate::alert::WebhookPayload;
    use serde_json::json;

    /// A journal whose connection SQLite opened read-only, as on a read-only file system.
    fn read_only(path: &Path) -> SqliteJournal {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open read-only");
        SqliteJournal {
            path: path.to_path_buf(),
            conn: Slot::new(conn),
            reserve: Reserve::beside(path, RESERVE_BYTES),
            group: GroupCommit::new(),
        }
    }

    #[test]
    fn a_read_only_connection_is_replaced_by_a_writable_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.db");
        drop(SqliteJournal::open(&path).expect("create"));
        let journal = read_only(&path);
        let body =
            String::from_utf8(recorded_body("firing-two-segments-down.json")).expect("utf-8");
        let alerts = WebhookPayload::parse(body.as_bytes())
            .expect("parse")
            .alerts;
        assert!(journal.conn.lock().is_ok_and(|s| is_read_only(&s.conn)));
        let inserted = journal
            .record_delivery(Utc::now(), &body, &alerts)
            .expect("written through a fresh connection");
        assert_eq!(inserted.len(), alerts.len());
        assert_eq!(
            journal.undecided_events().expect("events").len(),
            alerts.len()
        );
    }

    fn journal() -> (tempfile::TempDir, SqliteJournal) {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = SqliteJournal::open(&dir.path().join("journal.db")).expect("open");
        (dir, journal)
    }

    fn plan(intent: &str, targets: Vec<i16>) -> NewAction {
        NewAction {
            created_at: Utc::now(),
            cluster: "gp".into(),
            action: ActionKind::Recover,
            rule: "r".into(),
            targets,
            intent: intent.into(),
            digest: "d".into(),
            argv: vec!["gprecoverseg".into(), "-a".into()],
            host: None,
            approval_required: false,
            expires_at: None,
            event_id: None,
        }
    }

    fn change(state: ActionState) -> StateChange {
        StateChange {
            at: Utc::now(),
            state,
            detail: json!({}),
        }
    }

    #[test]
    fn deliveries_dedup_by_event_key_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.db");
        let body = recorded_body("firing-two-segments-down.json");
        let payload = WebhookPayload::parse(&body).expect("parse");
        {
            let journal = SqliteJournal::open(&path).expect("open");
            let first = journal
                .record_delivery(Utc::now(), "{}", &payload.alerts)
                .expect("record");
            assert!(first.iter().all(|e| matches!(e, EventInsert::New(_))));
            let again = journal
                .record_delivery(Utc::now(), "{}", &payload.alerts)
                .expect("record");
            assert_eq!(again, vec![EventInsert::Duplicate; 2]);
        }
        let journal = SqliteJournal::open(&path).expect("reopen");
        let undecided = journal.undecided_events().expect("undecided");
        assert_eq!(undecided.len(), 2);
        journal
            .record_decision(undecided[0].id, "unmatched", "", None)
            .expect("decide");
        assert_eq!(journal.undecided_events().expect("undecided").len(), 1);
    }

    #[test]
    fn action_state_is_the_latest_record_and_intents_close() {
        let (_dir, journal) = journal();
        let id = journal
            .create_action(
                &plan("gp/recover/2", vec![2]),
                &change(ActionState::Approved),
            )
            .expect("create");
        assert_eq!(
            journal.open_action_with_intent("gp/recover/2").expect("q"),
            Some(id)
        );
        journal
            .record_state(id, &change(ActionState::Running))
            .expect("state");
        journal
            .record_state(id, &change(ActionState::Succeeded))
            .expect("state");
        let record = journal.action(id).expect("read").expect("exists");
        assert_eq!(record.state, ActionState::Succeeded);
        assert_eq!(record.history.len(), 3);
        assert_eq!(
            journal.open_action_with_intent("gp/recover/2").expect("q"),
            None
        );
        let listed = journal.actions(Some(ActionState::Succeeded)).expect("list");
        assert_eq!(listed.len(), 1);
        assert!(journal
            .actions(Some(ActionState::Failed))
            .expect("list")
            .is_empty());
    }

    #[test]
    fn ledger_counts_executions_failures_and_pause() {
        let (_dir, journal) = journal();
        let now = Utc::now();
        for _ in 0..2 {
            let id = journal
                .create_action(&plan("i", vec![2, 3]), &change(ActionState::Running))
                .expect("create");
            journal
                .record_execution_start(
                    id,
                    &ExecutionStart {
                        started_at: now,
                        pid: Some(1),
                        pid_start_ticks: None,
                        host: None,
                        argv: vec![],
                        log_path: String::new(),
                        replica: None,
                    },
                )
                .expect("exec");
            journal
                .record_verification(
                    id,
                    "gp",
                    &Verification {
                        at: now,
                        succeeded: false,
                        detail: json!({}),
                    },
                )
                .expect("verify");
        }
        let facts = journal.ledger("gp", "r", now).expect("ledger");
        assert_eq!(facts.executions_last_hour, 2);
        assert_eq!(facts.executions_last_day, 2);
        assert_eq!(facts.consecutive_failures, 2);
        assert_eq!(facts.executions_by_dbid_24h.get(&3), Some(&2));
        assert!(!facts.paused);
        assert_eq!(
            journal.ledger("other", "r", now).expect("ledger"),
            LedgerFacts::default()
        );

        journal
            .record_control(
                ControlKind::BreakerReset,
                Some("gp"),
                "ops",
                "fixed",
                Utc::now(),
            )
            .expect("reset");
        journal
            .record_control(ControlKind::Pause, None, "ops", "maintenance", Utc::now())
            .expect("pause");
        let facts = journal.ledger("gp", "r", Utc::now()).expect("ledger");
        assert_eq!(facts.consecutive_failures, 0);
        assert!(facts.paused);
        journal
            .record_control(ControlKind::Resume, None, "ops", "done", Utc::now())
            .expect("resume");
        assert!(!journal.paused().expect("paused"));
    }
}
