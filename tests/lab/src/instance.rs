//! One server's files: its configuration, its log, and the copy/rewind/basebackup steps that
//! (re)create a data directory.

use std::fs;
use std::path::{Path, PathBuf};

use crate::conn;
use crate::error::{Context, Result};
use crate::process::{self, chown_to_server};
use crate::state::Instance;

/// Settings shared by every server (appended to the template's postgresql.conf, so copies,
/// rewinds and base backups carry them).
pub const BASE_CONF: &str = "
# --- gplab ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = on
shared_buffers = 16MB
max_connections = 40
max_wal_senders = 10
max_replication_slots = 10
wal_level = replica
wal_log_hints = on
wal_keep_size = '256MB'
wal_receiver_status_interval = 1s
hot_standby = off
dynamic_shared_memory_type = posix
max_worker_processes = 4
logging_collector = off
log_line_prefix = '%m [%p] '
# Per-instance settings (port), rewritten after every copy of a data directory.
include_if_exists = 'gplab_instance.conf'
# `gplab lag CONTENT on` writes recovery_min_apply_delay here.
include_if_exists = 'gplab_lag.conf'
";

pub const INSTANCE_CONF: &str = "gplab_instance.conf";
pub const LAG_CONF: &str = "gplab_lag.conf";

/// Writes a file the server user must be able to rewrite later (pg_rewind copies over it).
pub fn write_server_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).ctx(|| format!("writing {}", path.display()))?;
    chown_to_server(path)
}

/// The per-instance file: a copied data directory keeps its source's port otherwise.
pub fn write_instance_conf(inst: &Instance) -> Result<()> {
    write_server_file(
        &inst.datadir.join(INSTANCE_CONF),
        &format!("port = {}\n", inst.port),
    )?;
    // A lag switch belongs to one mirror, never to a copy of it.
    let lag = inst.datadir.join(LAG_CONF);
    if lag.exists() {
        fs::remove_file(&lag).ctx(|| format!("removing {}", lag.display()))?;
    }
    Ok(())
}

pub fn log_path(lab_dir: &Path, inst: &Instance) -> PathBuf {
    lab_dir.join("logs").join(format!("dbid{}.log", inst.dbid))
}

pub fn start(lab_dir: &Path, inst: &Instance) -> Result<()> {
    if process::is_running(&inst.datadir) {
        return Ok(());
    }
    // A server killed with -m immediate may leave a stale pid file behind that pg_ctl reads
    // as "another server might be running"; postgres itself handles it, pg_ctl start too.
    process::pg_ctl_start(&inst.datadir, &log_path(lab_dir, inst))
}

/// Recreates `inst` as a streaming replica of the server on `source_port` with
/// `pg_basebackup` (full copy): mirrors, standbys and `gprecoverseg -F`.
pub fn basebackup(inst: &Instance, source_port: u16) -> Result<()> {
    if inst.datadir.exists() {
        fs::remove_dir_all(&inst.datadir).ctx(|| format!("removing {}", inst.datadir.display()))?;
    }
    let parent = inst.datadir.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
    process::chown_dir_to_server(parent)?;
    let mut cmd = process::pg_command("pg_basebackup")?;
    cmd.arg("-D")
        .arg(&inst.datadir)
        .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-d"])
        .arg(replication_conninfo(source_port));
    process::run(cmd)?;
    write_instance_conf(inst)
}

/// Brings a stopped former primary back as a replica of `source_port` with `pg_rewind`
/// (incremental recovery).
///
/// Returns `false` when no rewind was needed: a killed mirror was never promoted, so it has no
/// history of its own and simply resumes streaming (what Greenplum prints as "no rewind
/// required"). Crash-recovering such a replica as a primary would write an end-of-recovery
/// checkpoint the primary never had, on the same timeline, which pg_rewind cannot see and on
/// which streaming then stalls for ever ("invalid resource manager ID").
pub fn rewind(inst: &Instance, source_port: u16) -> Result<bool> {
    if stopped_in_recovery(inst)? {
        resume_replica(inst, source_port)?;
        return Ok(false);
    }
    // A just-promoted source still has its old timeline in pg_control until its first
    // checkpoint, and pg_rewind would then pick a wrong divergence point.
    conn::connect(source_port)?
        .batch_execute("CHECKPOINT")
        .ctx(|| format!("checkpointing the recovery source on port {source_port}"))?;
    // pg_rewind first finishes crash recovery of an uncleanly stopped target in single-user
    // mode, which refuses to run in standby mode: a killed mirror must lose its signal file
    // for that (-R writes it back).
    for signal in ["standby.signal", "recovery.signal"] {
        let path = inst.datadir.join(signal);
        if path.exists() {
            fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
        }
    }
    let mut cmd = process::pg_command("pg_rewind")?;
    cmd.arg("--target-pgdata")
        .arg(&inst.datadir)
        .arg("--source-server")
        .arg(replication_conninfo(source_port))
        .args(["-R", "--no-sync"]);
    process::run(cmd)?;
    write_instance_conf(inst)?;
    // pg_rewind copies the source's standby.signal-free state; -R adds standby.signal, but
    // make sure of it: without it the server would start as a second primary.
    let signal = inst.datadir.join("standby.signal");
    if !signal.exists() {
        write_server_file(&signal, "")?;
    }
    Ok(true)
}

/// Whether pg_control says the server was a replica when it stopped (killed or shut down).
fn stopped_in_recovery(inst: &Instance) -> Result<bool> {
    let mut cmd = process::pg_command("pg_controldata")?;
    cmd.arg(&inst.datadir);
    let out = process::run(cmd)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let state = text
        .lines()
        .find_map(|l| l.strip_prefix("Database cluster state:"))
        .map(str::trim)
        .unwrap_or("");
    Ok(matches!(
        state,
        "in archive recovery" | "shut down in recovery"
    ))
}

/// Makes a stopped replica stream from `source_port` again, keeping its data as it is.
fn resume_replica(inst: &Instance, source_port: u16) -> Result<()> {
    let auto = inst.datadir.join("postgresql.auto.conf");
    let text = fs::read_to_string(&auto).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("primary_conninfo"))
        .map(str::to_string)
        .collect();
    lines.push(format!(
        "primary_conninfo = '{}'",
        replication_conninfo(source_port).replace('\'', "''")
    ));
    write_server_file(&auto, &(lines.join("\n") + "\n"))?;
    write_instance_conf(inst)?;
    let signal = inst.datadir.join("standby.signal");
    if !signal.exists() {
        write_server_file(&signal, "")?;
    }
    Ok(())
}

/// How replicas connect: Greenplum's walreceivers call themselves `gp_walreceiver`.
pub fn replication_conninfo(port: u16) -> String {
    format!("{} application_name=gp_walreceiver", conn::conninfo(port))
}
