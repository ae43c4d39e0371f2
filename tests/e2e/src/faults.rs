//! Faults the lab itself does not inject: a lock held on the catalog, a server out of
//! connection slots, WAL volume for a lagging mirror, a hand-restarted instance, and
//! Alertmanager deliveries crafted for one question. Each holder releases its fault on drop,
//! so a failing test never leaves the next one a broken cluster.

use std::path::Path;

use anyhow::{bail, Context, Result};
use gplab::Lab;
use postgres::{Client, Config, NoTls};
use serde_json::{json, Map, Value};

/// A session holding `LOCK TABLE <table> IN ACCESS EXCLUSIVE MODE` in an open transaction:
/// every reader of that table waits until it ends (or its statement timeout cancels it).
pub struct CatalogLock {
    client: Option<Client>,
}

impl CatalogLock {
    pub fn take(port: u16, table: &str) -> Result<CatalogLock> {
        let mut client = gplab::conn::connect(port)?;
        client
            .batch_execute(&format!(
                "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
            ))
            .with_context(|| format!("locking {table} on port {port}"))?;
        Ok(CatalogLock {
            client: Some(client),
        })
    }

    /// Ends the transaction, releasing the lock.
    pub fn release(&mut self) -> Result<()> {
        if let Some(mut client) = self.client.take() {
            client
                .batch_execute("ROLLBACK")
                .context("releasing the lock")?;
        }
        Ok(())
    }
}

impl Drop for CatalogLock {
    fn drop(&mut self) {
        // Closing the connection ends the transaction too; the explicit ROLLBACK is politer.
        let _ = self.release();
    }
}

/// Connections held open on one server until it refuses more.
pub struct ConnectionHog {
    clients: Vec<Client>,
}

/// Why the server refused the connection after the last one held.
#[derive(Debug, Clone)]
pub struct Refused {
    pub sqlstate: Option<String>,
    pub message: String,
}

impl ConnectionHog {
    pub fn new() -> ConnectionHog {
        ConnectionHog {
            clients: Vec::new(),
        }
    }

    /// Opens connections as `user` until the server refuses one (at most `limit`, a guard
    /// against a server that never refuses). Returns the refusal.
    pub fn fill(&mut self, port: u16, user: &str, limit: usize) -> Result<Refused> {
        for _ in 0..limit {
            match connect_as(port, user) {
                Ok(client) => self.clients.push(client),
                Err(e) => {
                    let db = e.as_db_error();
                    return Ok(Refused {
                        sqlstate: db.map(|d| d.code().code().to_string()),
                        message: db
                            .map(|d| d.message().to_string())
                            .unwrap_or_else(|| e.to_string()),
                    });
                }
            }
        }
        bail!("port {port} still accepted {user} after {limit} connections")
    }

    pub fn held(&self) -> usize {
        self.clients.len()
    }

    /// Closes every held connection.
    pub fn release(&mut self) {
        self.clients.clear();
    }
}

impl Default for ConnectionHog {
    fn default() -> Self {
        Self::new()
    }
}

/// One login as `user` to the lab database, with a short connect timeout.
pub fn connect_as(port: u16, user: &str) -> std::result::Result<Client, postgres::Error> {
    Config::new()
        .host(gplab::conn::HOST)
        .port(port)
        .user(user)
        .dbname(gplab::conn::DATABASE)
        .application_name("e2e-connection-hog")
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect(NoTls)
}

/// Creates a login role without superuser rights (an application's user) on `port`.
pub fn create_application_role(port: u16, role: &str) -> Result<()> {
    let mut client = gplab::conn::connect(port)?;
    client
        .batch_execute(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') \
             THEN CREATE ROLE {role} LOGIN NOSUPERUSER; END IF; END $$"
        ))
        .with_context(|| format!("creating role {role}"))
}

/// Advances the WAL of the server on `port` by at least `bytes`: a small commit followed
/// by `pg_switch_wal()`, repeated. Each switch moves the insert position to the next 16 MB
/// segment and the walsender streams the whole segment, so the mirror receives, flushes
/// and must replay `bytes` of WAL without the primary writing that many rows (which would
/// take minutes on a shared 2-core machine). Returns how far the position moved.
pub fn advance_wal(port: u16, bytes: u64) -> Result<u64> {
    let mut client = gplab::conn::connect(port)?;
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS e2e_wal_filler (at timestamptz)")
        .context("creating the WAL filler table")?;
    let start: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])?
        .get(0);
    // 16 MB per switch; the bound is a guard against a server that never advances.
    let rounds = bytes / (16 << 20) + 8;
    for _ in 0..rounds {
        client
            .batch_execute("INSERT INTO e2e_wal_filler VALUES (now()); SELECT pg_switch_wal()")
            .with_context(|| format!("switching WAL on port {port}"))?;
        let moved: f64 = client
            .query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::float8",
                &[&start],
            )?
            .get(0);
        if moved >= bytes as f64 {
            return Ok(moved as u64);
        }
    }
    bail!("WAL on port {port} did not advance by {bytes} bytes in {rounds} switches")
}

/// Bytes an unprivileged writer may still use on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Result<u64> {
    let stat =
        nix::sys::statvfs::statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    Ok(stat.blocks_available() * stat.fragment_size())
}

/// Starts a stopped lab instance by hand, as an operator would after a double fault
/// (`pg_ctl start` on the instance with the most recent data).
pub fn start_by_hand(lab: &Lab, datadir: &Path, dbid: i16) -> Result<()> {
    let log = lab.dir().join("logs").join(format!("dbid{dbid}.log"));
    gplab::process::pg_ctl_start(datadir, &log)
        .with_context(|| format!("starting dbid {dbid} by hand"))
}

/// An Alertmanager (webhook v4) delivery of one alert, as the route to the remediator
/// would send it. `labels` must include `alertname` and `cluster`.
pub fn delivery(
    labels: &[(&str, &str)],
    status: &str,
    starts_at: &str,
    fingerprint: &str,
) -> Value {
    let labels: Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    let pick = |name: &str| labels.get(name).cloned().unwrap_or(json!(""));
    let group = json!({"cluster": pick("cluster"), "alertname": pick("alertname")});
    json!({
        "version": "4",
        "groupKey": format!("{{}}/{{}}:{group}"),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "greenplum-remediator",
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.e2e:9093",
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": {},
            "startsAt": starts_at,
            "endsAt": if status == "resolved" { json!(starts_at) } else { json!("0001-01-01T00:00:00Z") },
            "generatorURL": "",
            "fingerprint": fingerprint,
        }],
    })
}
