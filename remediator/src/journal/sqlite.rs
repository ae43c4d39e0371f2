//! The default journal: one SQLite file in WAL mode with `synchronous=FULL`, so a 202 is only
//! sent after the event is on disk.
//!
//! What is SQLite's own lives here: the connection (reopened when the file system was
//! read-only), the disk reserve that lets work under way be recorded on a full disk, and the
//! driver's side of [`Sql`]. The records themselves are written in `store`.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, CachedStatement, Connection, DatabaseName};

use super::reserve::{Reserve, RESERVE_BYTES};
use super::schema::{ddl, SQLITE};
use super::sql::{feed, Cell, EachRow, Query, Sql, Value};
use super::store::{Access, Backend, Tx, Work};
use super::{GroupCommit, JournalError, JournalResult};

/// Statements the journal runs; each is prepared once per connection.
const STATEMENT_CACHE: usize = 64;

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
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(&ddl(&SQLITE))
            .map_err(storage("create schema"))
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

    /// Runs `f` on the connection as `access` asks: new work only while the reserve is
    /// kept, a record of work under way even from the reserve.
    fn guarded<T>(
        &self,
        access: Access,
        f: &dyn Fn(&mut Connection) -> JournalResult<T>,
    ) -> JournalResult<T> {
        match access {
            Access::Read => f(&mut *self.conn()?),
            Access::Intake { reserve } => {
                let mut conn = self.conn()?;
                if reserve {
                    // Under the connection's lock, so concurrent writers do not write it twice.
                    self.keep_reserve()?;
                }
                f(&mut conn)
            }
            Access::Work => self.critical(|| f(&mut *self.conn()?)),
        }
    }
}

impl Backend for SqliteJournal {
    fn session<T: Send>(&self, access: Access, work: Work<'_, T>) -> JournalResult<T> {
        self.guarded(access, &|conn| work(&mut Lite(conn)))
    }

    fn transaction<T: Send>(&self, tx: Tx, work: Work<'_, T>) -> JournalResult<T> {
        self.guarded(tx.access, &|conn| {
            let open = conn.transaction().map_err(storage(tx.begin))?;
            let out = work(&mut Lite(&open))?;
            open.commit().map_err(storage(tx.commit))?;
            Ok(out)
        })
    }

    fn group(&self) -> &GroupCommit {
        &self.group
    }

    fn lane(&self, _cluster: &str) -> JournalResult<bool> {
        // One process owns the SQLite file; its lanes are serialised in memory.
        Ok(true)
    }
}

/// A connection (or its open transaction) as the shared code runs statements on it.
struct Lite<'a>(&'a Connection);

impl Lite<'_> {
    /// The shared statements number their placeholders `$1`, `$2`; SQLite's spelling is
    /// `?1`, `?2`.
    fn prepare(&self, query: Query<'_>) -> JournalResult<CachedStatement<'_>> {
        self.0
            .prepare_cached(&query.sql.replace('$', "?"))
            .map_err(storage(query.what))
    }
}

fn bind<'p>(params: &'p [&dyn Value]) -> impl Iterator<Item = &'p dyn rusqlite::ToSql> {
    params.iter().map(|p| p.sqlite())
}

impl Sql for Lite<'_> {
    fn stream(&mut self, query: Query<'_>, each: EachRow<'_>) -> JournalResult<()> {
        let what = query.what;
        let mut stmt = self.prepare(query)?;
        let rows = stmt
            .query_map(params_from_iter(bind(query.params)), |row| {
                (0..row.as_ref().column_count())
                    .map(|i| row.get::<_, SqlValue>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(storage(what))?;
        feed(rows.map(|row| cells(row, what)), what, each)
    }

    fn execute(&mut self, query: Query<'_>) -> JournalResult<u64> {
        let changed = self
            .prepare(query)?
            .execute(params_from_iter(bind(query.params)))
            .map_err(storage(query.what))?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }
}

/// A row's values as cells: the journal's columns hold integers, text and NULL.
fn cells(row: rusqlite::Result<Vec<SqlValue>>, what: &'static str) -> JournalResult<Vec<Cell>> {
    let values = row.map_err(storage(what))?;
    values
        .into_iter()
        .map(|value| match value {
            SqlValue::Null => Ok(Cell::Null),
            SqlValue::Integer(n) => Ok(Cell::Int(n)),
            SqlValue::Text(text) => Ok(Cell::Text(text)),
            other => Err(JournalError::Corrupt {
                what,
                detail: format!("unexpected {other:?}"),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::ActionKind;
    use crate::alert::tests::recorded_body;
    use crate::alert::WebhookPayload;
    use crate::journal::*;
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
    fn an_unknown_approval_decision_is_a_record_it_cannot_read() {
        let (_dir, journal) = journal();
        let id = journal
            .create_action(&plan("i", vec![2]), &change(ActionState::AwaitingApproval))
            .expect("create");
        journal
            .conn()
            .expect("conn")
            .execute(
                "INSERT INTO approvals (action_id, at, decision, who, why)
                 VALUES (?1, ?2, 'maybe', 'ops', '')",
                rusqlite::params![id, ts(Utc::now())],
            )
            .expect("insert");
        let error = journal.action(id).expect_err("unreadable");
        assert_eq!(
            error.to_string(),
            "journal holds a record it cannot read (approval decision): maybe"
        );
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
