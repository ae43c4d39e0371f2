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
//!
//! What is PostgreSQL's own lives here: sessions, the lane lock and the driver's side of
//! [`Sql`]. The records themselves are written in `store`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, Config, GenericClient, NoTls, Statement};
use sha2::{Digest, Sha256};

use super::schema::{ddl, POSTGRES};
use super::sql::{feed, Cell, EachRow, Query, Sql, Value};
use super::store::{Access, Backend, Tx, Work};
use super::{GroupCommit, JournalError, JournalResult};

/// Serialises schema creation between replicas starting together (`CREATE ... IF NOT
/// EXISTS` is not safe against a concurrent creator).
const SCHEMA_LOCK: i64 = 0x6770_7265_6d65_6400; // "gpremed\0"

fn storage(what: &'static str) -> impl FnOnce(::postgres::Error) -> JournalError {
    move |source| JournalError::Postgres { what, source }
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
            tx.batch_execute(&ddl(&POSTGRES))
                .map_err(storage("create schema"))?;
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
}

/// No disk reserve here: the database server keeps its own room, so `Access` changes nothing.
impl Backend for PostgresJournal {
    fn session<T: Send>(&self, _access: Access, work: Work<'_, T>) -> JournalResult<T> {
        self.with(|c| work(&mut Pg::new(c)))
    }

    fn transaction<T: Send>(&self, tx: Tx, work: Work<'_, T>) -> JournalResult<T> {
        self.with(|c| {
            let mut open = c.transaction().map_err(storage(tx.begin))?;
            let out = work(&mut Pg::new(&mut open))?;
            open.commit().map_err(storage(tx.commit))?;
            Ok(out)
        })
    }

    fn group(&self) -> &GroupCommit {
        &self.group
    }

    /// True while this replica holds the lane. Called again before every execution: a lost
    /// lock session means the lock may be someone else's now, so it is taken anew (or not).
    fn lane(&self, cluster: &str) -> JournalResult<bool> {
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

/// A session (or its open transaction) as the shared code runs statements on it. A
/// statement is prepared once per call, however many rows a batch writes with it.
struct Pg<'a, C: GenericClient> {
    client: &'a mut C,
    prepared: HashMap<String, Statement>,
}

impl<'a, C: GenericClient> Pg<'a, C> {
    fn new(client: &'a mut C) -> Self {
        Pg {
            client,
            prepared: HashMap::new(),
        }
    }

    fn prepare(&mut self, query: Query<'_>) -> JournalResult<Statement> {
        if let Some(statement) = self.prepared.get(query.sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .client
            .prepare(query.sql)
            .map_err(storage(query.what))?;
        self.prepared
            .insert(query.sql.to_string(), statement.clone());
        Ok(statement)
    }
}

fn bind<'p>(params: &'p [&dyn Value]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|p| p.postgres()).collect()
}

impl<C: GenericClient> Sql for Pg<'_, C> {
    fn stream(&mut self, query: Query<'_>, each: EachRow<'_>) -> JournalResult<()> {
        let statement = self.prepare(query)?;
        let rows = self
            .client
            .query(&statement, &bind(query.params))
            .map_err(storage(query.what))?;
        let cells = rows
            .iter()
            .map(|row| cells(row).map_err(storage(query.what)));
        feed(cells, query.what, each)
    }

    fn execute(&mut self, query: Query<'_>) -> JournalResult<u64> {
        let statement = self.prepare(query)?;
        self.client
            .execute(&statement, &bind(query.params))
            .map_err(storage(query.what))
    }
}

/// A row's values as cells, read by each column's type: the journal's columns are
/// `BIGINT`, `TEXT` and `BOOLEAN` (anything else fails as a wrong type).
fn cells(row: &::postgres::Row) -> Result<Vec<Cell>, ::postgres::Error> {
    let cell = |(i, column): (usize, &::postgres::Column)| {
        let kind = column.type_();
        if *kind == Type::BOOL {
            let v: Option<bool> = row.try_get(i)?;
            Ok(v.map_or(Cell::Null, Cell::Bool))
        } else if *kind == Type::INT8 {
            let v: Option<i64> = row.try_get(i)?;
            Ok(v.map_or(Cell::Null, Cell::Int))
        } else {
            let v: Option<String> = row.try_get(i)?;
            Ok(v.map_or(Cell::Null, Cell::Text))
        }
    };
    row.columns().iter().enumerate().map(cell).collect()
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
