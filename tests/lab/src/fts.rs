//! The fault tolerance service: a daemon that probes the acting primaries like Greenplum's
//! FTS does from inside the coordinator, and writes the same catalog changes and history.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use postgres::Client;

use crate::catalog::{self, Change, SegmentRow};
use crate::conn::{self, Probe};
use crate::error::Result;
use crate::process;
use crate::provision::set_sync_standby;
use crate::state::LabState;

pub const PID_FILE: &str = "fts.pid";
pub const LOG_FILE: &str = "fts.log";

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(100);

/// What the walsender of a pair's acting primary says about its mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MirrorLink {
    InSync,
    /// Streaming but asynchronous: sync rep was switched off while the mirror was away.
    StreamingAsync,
    /// Connected but not streaming yet (startup, catchup).
    CatchingUp,
    Absent,
}

pub struct Fts {
    absent_since: HashMap<i16, Instant>,
    double_faults: HashSet<i16>,
    grace: Duration,
}

impl Fts {
    pub fn new(grace: Duration) -> Self {
        Fts {
            absent_since: HashMap::new(),
            double_faults: HashSet::new(),
            grace,
        }
    }

    /// One probe of every acting primary and mirror; applies what it finds to the catalog.
    pub fn probe(&mut self, dir: &Path, state: &LabState) -> Result<()> {
        let _guard = catalog::lock(dir)?;
        let port = state.coordinator()?.port;
        let rows = match catalog::read_segments_at(port) {
            Ok(rows) => rows,
            // Like the real FTS, which lives inside the coordinator: nothing to do without it.
            Err(e) => {
                tracing::debug!(error = %e, "coordinator not answering; skipping probe");
                return Ok(());
            }
        };
        self.standby(port, &rows)?;
        let mut contents: Vec<i16> = rows.iter().map(|r| r.content).filter(|c| *c >= 0).collect();
        contents.dedup();
        for content in contents {
            if let Err(e) = self.probe_content(port, &rows, content) {
                tracing::warn!(content, error = %e, "probe of content failed");
            }
        }
        Ok(())
    }

    /// The standby is never written to the catalog; only the coordinator's sync rep follows it,
    /// so the coordinator does not hang on a dead standby.
    fn standby(&self, port: u16, rows: &[SegmentRow]) -> Result<()> {
        let has_standby = rows.iter().any(|r| r.content == -1 && r.role == 'm');
        let streaming = has_standby
            && matches!(
                walreceiver(port)?,
                MirrorLink::InSync | MirrorLink::StreamingAsync
            );
        set_sync_standby(port, streaming)
    }

    fn probe_content(&mut self, coordinator: u16, rows: &[SegmentRow], content: i16) -> Result<()> {
        let (Some(primary), mirror) = catalog::pair(rows, content) else {
            return Ok(());
        };
        if probe_twice(primary.port) != Probe::Up {
            return self.primary_down(coordinator, primary, mirror);
        }
        self.double_faults.remove(&content);
        let Some(mirror) = mirror else { return Ok(()) };
        let link = walreceiver(primary.port)?;
        let mut change = Change::new();
        match link {
            MirrorLink::InSync => {
                self.absent_since.remove(&mirror.dbid);
                set_sync_standby(primary.port, true)?;
                if primary.mode != 's' || mirror.mode != 's' || !mirror.is_up() {
                    change.fts_set(primary.dbid, content, 'p', 'u', 's');
                    change.fts_set(mirror.dbid, content, 'm', 'u', 's');
                }
            }
            MirrorLink::StreamingAsync => {
                self.absent_since.remove(&mirror.dbid);
                // Back in sync from the next probe on.
                set_sync_standby(primary.port, true)?;
            }
            MirrorLink::CatchingUp => {
                self.absent_since.remove(&mirror.dbid);
                if primary.mode == 's' || mirror.mode == 's' {
                    change.fts_set(primary.dbid, content, 'p', 'u', 'n');
                    change.fts_set(mirror.dbid, content, 'm', mirror.status, 'n');
                }
            }
            MirrorLink::Absent if mirror.is_up() => {
                let since = *self
                    .absent_since
                    .entry(mirror.dbid)
                    .or_insert_with(Instant::now);
                if since.elapsed() >= self.grace {
                    tracing::warn!(
                        content,
                        dbid = mirror.dbid,
                        "mirror gone past the grace period: marking it down"
                    );
                    change.fts_set(primary.dbid, content, 'p', 'u', 'n');
                    change.fts_set(mirror.dbid, content, 'm', 'd', 'n');
                    self.absent_since.remove(&mirror.dbid);
                    // Greenplum stops waiting for a mirror it has marked down.
                    set_sync_standby(primary.port, false)?;
                }
            }
            MirrorLink::Absent => set_sync_standby(primary.port, false)?,
        }
        change.apply(coordinator)
    }

    fn primary_down(
        &mut self,
        coordinator: u16,
        primary: &SegmentRow,
        mirror: Option<&SegmentRow>,
    ) -> Result<()> {
        let content = primary.content;
        let candidate = mirror
            .filter(|m| m.is_up() && m.mode == 's')
            .map(|m| (m, mirror_state(m.port)));
        let mirror = match candidate {
            Some((m, MirrorState::InRecovery)) => {
                tracing::warn!(
                    content,
                    dead = primary.dbid,
                    promoted = m.dbid,
                    "primary down: promoting its mirror"
                );
                process::pg_ctl_promote(Path::new(&m.datadir))?;
                m
            }
            // An earlier probe promoted it but failed before the catalog said so: finish the
            // failover instead of leaving a promoted mirror recorded as a mirror for ever.
            Some((m, MirrorState::Promoted)) => {
                tracing::warn!(
                    content,
                    dead = primary.dbid,
                    promoted = m.dbid,
                    "primary down and its mirror already promoted: recording the failover"
                );
                m
            }
            _ => {
                if self.double_faults.insert(content) {
                    tracing::error!(content, dbid = primary.dbid, "double fault: primary down and no in-sync mirror to promote; leaving the catalog as it is");
                }
                return Ok(());
            }
        };
        // Its mirror is gone: stop waiting for it before anything commits there. A failure
        // must not keep the catalog from recording the failover: the next probe sees no
        // walsender on the new primary and turns sync rep off again.
        if let Err(e) = set_sync_standby(mirror.port, false) {
            tracing::warn!(content, error = %e, "could not turn sync rep off on the promoted mirror yet");
        }
        let mut change = Change::new();
        change.fts_set(primary.dbid, content, 'm', 'd', 'n');
        change.fts_set(mirror.dbid, content, 'p', 'u', 'n');
        change.apply(coordinator)
    }
}

/// What a mirror that should take over answers.
enum MirrorState {
    /// Rejecting connections: still replaying (the lab's mirrors run without hot standby).
    InRecovery,
    /// Accepting connections and out of recovery.
    Promoted,
    Unreachable,
}

fn mirror_state(port: u16) -> MirrorState {
    match conn::probe(port, PROBE_TIMEOUT) {
        Probe::Rejecting => MirrorState::InRecovery,
        Probe::Up => {
            // Unknown counts as in recovery: promoting a promoted server only fails.
            let in_recovery = conn::connect(port)
                .ok()
                .and_then(|mut c| c.query_one("SELECT pg_is_in_recovery()", &[]).ok())
                .is_none_or(|r| r.get::<_, bool>(0));
            if in_recovery {
                MirrorState::InRecovery
            } else {
                MirrorState::Promoted
            }
        }
        Probe::Down => MirrorState::Unreachable,
    }
}

fn probe_twice(port: u16) -> Probe {
    match conn::probe(port, PROBE_TIMEOUT) {
        Probe::Up => Probe::Up,
        _ => {
            thread::sleep(Duration::from_millis(200));
            conn::probe(port, PROBE_TIMEOUT)
        }
    }
}

/// The `gp_walreceiver` walsender of the server on `port`, read from PostgreSQL's own view
/// (`gplab.stat_replication` on a flavored coordinator, `pg_stat_replication` elsewhere).
fn walreceiver(port: u16) -> Result<MirrorLink> {
    let mut c = conn::connect(port)?;
    let view: bool = c
        .query_one(
            "SELECT to_regclass('gplab.stat_replication') IS NOT NULL",
            &[],
        )
        .map(|r| r.get(0))
        .unwrap_or(false);
    let from = if view {
        "gplab.stat_replication"
    } else {
        "pg_catalog.pg_stat_replication"
    };
    let rows = c
        .query(
            &format!(
                "SELECT state, sync_state FROM {from} WHERE application_name = 'gp_walreceiver'"
            ),
            &[],
        )
        .map_err(|e| crate::Error::Sql {
            context: format!("reading walsenders on port {port}"),
            source: e,
        })?;
    let mut link = MirrorLink::Absent;
    for r in rows {
        let state: Option<String> = r.get(0);
        let sync: Option<String> = r.get(1);
        link = match (state.as_deref(), sync.as_deref()) {
            (Some("streaming"), Some("sync")) => return Ok(MirrorLink::InSync),
            (Some("streaming"), _) => MirrorLink::StreamingAsync,
            _ if link == MirrorLink::Absent => MirrorLink::CatchingUp,
            _ => link,
        };
    }
    Ok(link)
}

/// Reads how many probes were requested and how many were served.
fn requests(client: &mut Client) -> Option<(i64, i64)> {
    let row = client
        .query_one(
            "SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM gplab.fts_probe_requested), \
                    (SELECT last_value FROM gplab.fts_probe_done)",
            &[],
        )
        .ok()?;
    Some((row.get(0), row.get(1)))
}

/// The daemon's main loop: probe every interval or when `gp_request_fts_probe_scan()` asks.
/// Exits when the lab's state disappears, or stops the lab when `owner_pid` dies (so a killed
/// test run leaves no server behind).
pub fn run_daemon(dir: &Path, owner_pid: Option<i32>) -> Result<()> {
    std::fs::write(dir.join(PID_FILE), std::process::id().to_string()).map_err(|e| {
        crate::Error::Io {
            context: "writing the FTS pid file".into(),
            source: e,
        }
    })?;
    let mut state = LabState::load(dir)?;
    let mut fts = Fts::new(state.config.mirror_grace);
    let mut next = Instant::now() + state.config.fts_interval;
    let mut client: Option<(u16, Client)> = None;
    tracing::info!(interval = ?state.config.fts_interval, grace = ?state.config.mirror_grace, "FTS started");
    loop {
        if !LabState::path(dir).exists() {
            tracing::info!("lab state gone: FTS exits");
            return Ok(());
        }
        if let Some(pid) = owner_pid {
            if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
                tracing::warn!(
                    pid,
                    "the process that owns this lab is gone: stopping the lab"
                );
                crate::lab::stop_servers(dir);
                return Ok(());
            }
        }
        if let Ok(s) = LabState::load(dir) {
            state = s;
        }
        let port = state.coordinator()?.port;
        if client.as_ref().map(|(p, _)| *p) != Some(port)
            || client.as_mut().is_some_and(|(_, c)| c.is_closed())
        {
            client = conn::connect(port).ok().map(|mut c| {
                let _ = c.batch_execute("SET synchronous_commit = local");
                (port, c)
            });
        }
        let pending = client
            .as_mut()
            .and_then(|(_, c)| requests(c))
            .filter(|(req, done)| req > done);
        if pending.is_some() || Instant::now() >= next {
            if let Err(e) = fts.probe(dir, &state) {
                tracing::warn!(error = %e, "FTS probe failed");
            }
            next = Instant::now() + state.config.fts_interval;
            if let (Some((req, _)), Some((_, c))) = (pending, client.as_mut()) {
                if let Err(e) = c.execute("SELECT setval('gplab.fts_probe_done', $1)", &[&req]) {
                    tracing::warn!(error = %e, "could not acknowledge the probe request");
                    client = None;
                }
            }
        }
        thread::sleep(POLL);
    }
}
