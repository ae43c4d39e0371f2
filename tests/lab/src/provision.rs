//! Building a lab: one initdb, copies for the coordinator and primaries (they share the
//! system identifier as in Greenplum), base backups for mirrors and the standby, then the
//! Greenplum catalog on the coordinator.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::catalog::{self, Change, SegmentRow};
use crate::catalog_sql::{self, Mode};
use crate::conn;
use crate::error::{invalid, Context, Error, Result};
use crate::instance::{self, write_instance_conf, write_server_file, BASE_CONF};
use crate::process::{self, chown_to_server};
use crate::state::{Instance, LabState};

/// Creates the lab's directories and a template cluster to copy from.
pub fn prepare_dirs(dir: &Path) -> Result<()> {
    for sub in ["data", "logs", "bin"] {
        let p = dir.join(sub);
        fs::create_dir_all(&p).ctx(|| format!("creating {}", p.display()))?;
    }
    chown_to_server(dir)
}

pub fn initdb(target: &Path) -> Result<()> {
    let mut cmd = process::pg_command("initdb")?;
    cmd.arg("-D").arg(target).args([
        "-U",
        "gpadmin",
        "-A",
        "trust",
        "--no-sync",
        "--data-checksums",
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    process::run(cmd)?;
    let conf = target.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf).ctx(|| format!("reading {}", conf.display()))?;
    text.push_str(BASE_CONF);
    write_server_file(&conf, &text)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
        process::chown_dir_to_server(parent)?;
    }
    let mut cmd = std::process::Command::new("cp");
    cmd.arg("-a").arg(from).arg(to);
    process::run(cmd).map(|_| ())
}

/// Runs `f` for every item on its own thread; returns the first error.
fn parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|i| s.spawn(|| f(i))).collect();
        let mut first = Ok(());
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| invalid("a provisioning thread panicked"));
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}

/// Starts every server of a fresh layout and installs the catalog. `state` is saved by the
/// caller once this returns.
pub fn build(dir: &Path, state: &LabState) -> Result<()> {
    prepare_dirs(dir)?;
    let template = dir.join("data").join("template");
    initdb(&template)?;

    let coordinator = state.coordinator()?.clone();
    let copies: Vec<Instance> = state
        .instances
        .iter()
        .filter(|i| i.preferred_role == 'p')
        .cloned()
        .collect();
    let replicas: Vec<Instance> = state
        .instances
        .iter()
        .filter(|i| i.preferred_role == 'm')
        .cloned()
        .collect();

    parallel(&copies, |i| {
        copy_dir(&template, &i.datadir)?;
        write_instance_conf(i)?;
        instance::start(dir, i)
    })?;
    fs::remove_dir_all(&template).ctx(|| format!("removing {}", template.display()))?;

    install_catalog(&coordinator, state, Mode::Cluster)?;
    let primaries: Vec<&Instance> = copies.iter().filter(|i| i.content >= 0).collect();
    for p in &primaries {
        crate::data::create_table(p.port)?;
    }

    parallel(&replicas, |m| {
        let source = if m.content == -1 {
            coordinator.port
        } else {
            state
                .instances
                .iter()
                .find(|p| p.content == m.content && p.preferred_role == 'p')
                .map(|p| p.port)
                .ok_or_else(|| Error::Invalid(format!("no primary for content {}", m.content)))?
        };
        instance::basebackup(m, source)?;
        instance::start(dir, m)
    })?;

    // Synchronous replication only once every replica streams: a commit on a primary
    // without its mirror would wait forever.
    for p in &copies {
        if replicas.iter().any(|m| m.content == p.content) {
            wait_streaming(p.port, Duration::from_secs(60))?;
            set_sync_standby(p.port, true)?;
        }
    }
    Ok(())
}

/// Installs the catalog relations in template1 and postgres and fills them from the layout.
pub fn install_catalog(coordinator: &Instance, state: &LabState, mode: Mode) -> Result<()> {
    let script = catalog_sql::install_script(state.config.flavor, mode);
    for db in ["template1", "postgres"] {
        let mut c = conn::connect_db(coordinator.port, db)?;
        c.batch_execute(&script)
            .ctx(|| format!("installing the Greenplum catalog in database {db}"))?;
    }
    let mut change = Change::new();
    for i in &state.instances {
        change.sql(catalog::insert_row_sql(&SegmentRow {
            dbid: i.dbid,
            content: i.content,
            role: i.preferred_role,
            preferred_role: i.preferred_role,
            // The coordinator row always says n, the standby row always s (gp6 and later).
            mode: if i.content == -1 && i.preferred_role == 'p' {
                'n'
            } else {
                's'
            },
            status: 'u',
            port: i.port,
            hostname: i.host.clone(),
            address: i.host.clone(),
            datadir: i.datadir.display().to_string(),
        }));
    }
    let contents = state.config.contents;
    change.sql(format!(
        "INSERT INTO pg_catalog.gp_id VALUES ('Greenplum', {contents}, {}, -1)",
        coordinator.dbid
    ));
    // The history a fresh cluster has: FTS saw every pair in sync once.
    for c in 0..contents as i16 {
        for i in state.instances.iter().filter(|i| i.content == c) {
            change.fts_set(i.dbid, c, i.preferred_role, 'u', 's');
        }
    }
    change.apply(coordinator.port)
}

/// Waits until a `gp_walreceiver` streams from the server on `port`.
pub fn wait_streaming(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut c) = conn::connect(port) {
            // pg_stat_get_wal_senders() is the same on every server, whatever the flavor did
            // to the pg_stat_replication view.
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_catalog.pg_stat_get_wal_senders() w \
                     WHERE w.state = 'streaming'",
                    &[],
                )
                .map(|r| r.get(0))
                .unwrap_or(0);
            if n > 0 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                what: format!("a walreceiver to stream from port {port}"),
                secs: timeout.as_secs(),
            });
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Turns synchronous replication to `gp_walreceiver` on or off (ALTER SYSTEM + reload).
pub fn set_sync_standby(port: u16, on: bool) -> Result<()> {
    let mut c = conn::connect(port)?;
    let want = if on { "gp_walreceiver" } else { "" };
    let current: String = c
        .query_one("SELECT current_setting('synchronous_standby_names')", &[])
        .ctx(|| format!("reading synchronous_standby_names on port {port}"))?
        .get(0);
    if current == want {
        return Ok(());
    }
    // ALTER SYSTEM refuses to run in a transaction block: two separate statements.
    c.batch_execute(&format!(
        "ALTER SYSTEM SET synchronous_standby_names = '{want}'"
    ))
    .ctx(|| format!("setting synchronous_standby_names on port {port}"))?;
    c.batch_execute("SELECT pg_reload_conf()")
        .ctx(|| format!("reloading the configuration on port {port}"))
}
