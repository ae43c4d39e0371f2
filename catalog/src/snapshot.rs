//! What one read of a cluster saw, as plain data.
//!
//! Nothing here knows SQL, Greenplum versions, HTTP or Prometheus. A `Snapshot` can be built
//! by hand in a unit test. Each source (segments, replication, standby, history, recovery) is
//! a `Result` of its own, so a failing catalog query costs only what came from it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::lsn::Lsn;
use crate::source::{Source, SourceError, Sourced};

/// The product that answered `version()`. The SQL dialect does not follow from it (see
/// [`Dialect`]); it is reported as a label only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// VMware/Broadcom Greenplum Database (or an open-source build of it).
    Greenplum,
    /// Apache Cloudberry (formerly Cloudberry Database), a Greenplum 7 fork.
    Cloudberry,
    /// Greengage DB, a Greenplum 6 fork.
    Greengage,
    /// No known product in `version()`: a plain PostgreSQL (such as the lab's).
    Unknown,
}

impl Product {
    /// The word used in the version label (`greenplum`).
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Greenplum => "greenplum",
            Product::Cloudberry => "cloudberry",
            Product::Greengage => "greengage",
            Product::Unknown => "unknown",
        }
    }
}

/// Which catalog shape to query, chosen by the PostgreSQL base major version
/// (8.3 = GP5, 9.4 = GP6, 12 and later = GP7/Cloudberry), never by product name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// PostgreSQL 8.3 base: `replication_port` instead of `datadir`, file-based replication,
    /// modes `s`/`c`/`r`/`n`, no `gp_stat_replication`.
    Gp5,
    /// PostgreSQL 9.4 base: `*_location` columns, `pg_xlog_*` functions, `desc` in history.
    Gp6,
    /// PostgreSQL 12+ base: `*_lsn` columns, `*_lag` intervals, `pg_wal_*` functions,
    /// `description` in history, `gp_stat_progress_basebackup`.
    Gp7,
}

/// A parsed `version()` string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    /// Which fork answered.
    pub product: Product,
    /// e.g. `6.24.3`, `2.0.0-incubating`.
    pub product_version: String,
    /// PostgreSQL base, e.g. `9.4.26`.
    pub pg_version: String,
    /// The catalog shape the SQL is written for.
    pub dialect: Dialect,
}

/// `gp_segment_configuration.role` (what an instance acts as now) or `preferred_role` (what
/// it was given at initialisation, the state `gprecoverseg -r` restores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `p`: serves queries for its content and sends WAL to its mirror.
    Primary,
    /// `m`: replays the primary's WAL, promoted by FTS when the primary fails.
    Mirror,
}

impl Role {
    /// The catalog letter (`p`/`m`) and the word used in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Mirror => "mirror",
        }
    }
}

/// `gp_segment_configuration.status`, as FTS last marked the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentStatus {
    /// `u`: FTS reaches it.
    Up,
    /// `d`: FTS marked it down; `gprecoverseg` brings it back.
    Down,
}

/// `gp_segment_configuration.mode`. GP6+ only ever shows `s` and `n`; GP5 adds `c` and `r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `s`: the pair is in sync; the mirror can take over without loss.
    Synchronized,
    /// `n`: the pair is not in sync (mirror down, or catching up after a recovery).
    NotSynchronized,
    /// `c` (GP5): the primary records changes while its mirror is down.
    ChangeTracking,
    /// `r` (GP5): the mirror is being brought up to date after a recovery.
    Resynchronizing,
}

impl Mode {
    /// Every mode, in the order metrics list them.
    pub const ALL: [Mode; 4] = [
        Mode::Synchronized,
        Mode::NotSynchronized,
        Mode::ChangeTracking,
        Mode::Resynchronizing,
    ];

    /// The word used in labels (`not_synchronized`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Synchronized => "synchronized",
            Mode::NotSynchronized => "not_synchronized",
            Mode::ChangeTracking => "change_tracking",
            Mode::Resynchronizing => "resynchronizing",
        }
    }
}

/// One row of `gp_segment_configuration`.
///
/// Rows for content -1 lie: the coordinator row always says mode `n` and the standby row
/// always says `m/s/u`, even when the standby is dead. Use [`Snapshot::standby`] for the truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// The instance's id, unique in the cluster.
    pub dbid: i16,
    /// The data slice the instance holds; -1 is the coordinator tier, primary and mirror of
    /// a pair share it.
    pub content: i16,
    /// What the instance acts as now.
    pub role: Role,
    /// What it was given; differs from `role` after a failover until a rebalance.
    pub preferred_role: Role,
    /// Whether the pair is in sync.
    pub mode: Mode,
    /// Whether FTS reaches it.
    pub status: SegmentStatus,
    /// The instance's PostgreSQL port.
    pub port: i32,
    /// The host it runs on (what host-level alerts and balance are counted by).
    pub hostname: String,
    /// The interface it is reached on (`hostname` when the catalog has none).
    pub address: String,
    /// Absent on GP5 (which has `replication_port` instead).
    pub datadir: Option<String>,
}

impl Segment {
    /// The coordinator or its standby (content -1), whose mode and status do not tell the
    /// truth.
    pub fn is_coordinator_tier(&self) -> bool {
        self.content < 0
    }

    /// Marked up by FTS.
    pub fn is_up(&self) -> bool {
        self.status == SegmentStatus::Up
    }

    /// The pair has failed over and not been rebalanced.
    pub fn role_mismatch(&self) -> bool {
        self.role != self.preferred_role
    }
}

/// `state` of a walsender (`pg_stat_replication.state`), or `Disconnected` when the
/// replication view has a row for the content but no walsender (all columns NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationState {
    /// Caught up and sending WAL as it is written: the normal state.
    Streaming,
    /// Connected and catching up with the sender (after a recovery or a lag spike).
    Catchup,
    /// The walsender is starting.
    Startup,
    /// A `pg_basebackup` copy is running (a full recovery, `gprecoverseg -F`).
    Backup,
    /// The walsender is shutting down.
    Stopping,
    /// No walsender: the mirror or standby is not connected.
    Disconnected,
}

impl ReplicationState {
    /// Every state, in the order metrics list them.
    pub const ALL: [ReplicationState; 6] = [
        ReplicationState::Streaming,
        ReplicationState::Catchup,
        ReplicationState::Startup,
        ReplicationState::Backup,
        ReplicationState::Stopping,
        ReplicationState::Disconnected,
    ];

    /// The word used in labels (`streaming`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationState::Streaming => "streaming",
            ReplicationState::Catchup => "catchup",
            ReplicationState::Startup => "startup",
            ReplicationState::Backup => "backup",
            ReplicationState::Stopping => "stopping",
            ReplicationState::Disconnected => "disconnected",
        }
    }

    /// Parses a walsender state; `None` for a state this code does not know.
    pub fn from_walsender(text: &str) -> Option<Self> {
        Some(match text {
            "streaming" => ReplicationState::Streaming,
            "catchup" => ReplicationState::Catchup,
            "startup" => ReplicationState::Startup,
            "backup" => ReplicationState::Backup,
            "stopping" => ReplicationState::Stopping,
            _ => return None,
        })
    }
}

/// `sync_state` of a walsender: whether commits wait for this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Commits wait for it: Greenplum's mirrors and standby when in sync.
    Sync,
    /// Commits do not wait (e.g. a `pg_basebackup` walsender).
    Async,
    /// Would become synchronous if the current synchronous replica failed.
    Potential,
    /// One of a quorum of synchronous replicas (PostgreSQL 10+).
    Quorum,
}

impl SyncState {
    /// Parses `pg_stat_replication.sync_state`; `None` for an unknown word.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "sync" => SyncState::Sync,
            "async" => SyncState::Async,
            "potential" => SyncState::Potential,
            "quorum" => SyncState::Quorum,
            _ => return None,
        })
    }
}

/// One walsender as seen in `pg_stat_replication` / `gp_stat_replication`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalSender {
    /// `gp_walreceiver` for a mirror or the standby, `pg_basebackup` during a full recovery.
    pub application_name: String,
    /// What the walsender is doing.
    pub state: ReplicationState,
    /// Whether commits wait for it (`None` when NULL).
    pub sync_state: Option<SyncState>,
    /// WAL sent to the replica.
    pub sent: Option<Lsn>,
    /// WAL the replica has written.
    pub write: Option<Lsn>,
    /// WAL the replica has flushed to disk (what a failover keeps).
    pub flush: Option<Lsn>,
    /// WAL the replica has replayed.
    pub replay: Option<Lsn>,
    /// GP7+ only (`*_lag` intervals), in seconds: until the replica wrote recent WAL.
    pub write_lag_seconds: Option<f64>,
    /// GP7+ only, in seconds: until the replica flushed recent WAL.
    pub flush_lag_seconds: Option<f64>,
    /// GP7+ only, in seconds: until the replica replayed recent WAL.
    pub replay_lag_seconds: Option<f64>,
}

/// How far a replica is behind, split by where the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct WalLag {
    /// Written on the sender but not yet sent (sender's current position minus `sent`).
    pub send_bytes: Option<u64>,
    /// Sent but not yet flushed on the replica.
    pub flush_bytes: Option<u64>,
    /// Flushed but not yet replayed on the replica.
    pub replay_bytes: Option<u64>,
}

impl WalSender {
    /// The walsender of a mirror or the standby (not a `pg_basebackup` copy).
    pub fn is_gp_walreceiver(&self) -> bool {
        self.application_name == "gp_walreceiver"
    }

    /// Lag by stage; `sender_current` is the sending instance's own current WAL position.
    pub fn lag(&self, sender_current: Option<Lsn>) -> WalLag {
        WalLag {
            send_bytes: sender_current
                .zip(self.sent)
                .map(|(current, sent)| current.bytes_since(sent)),
            flush_bytes: self.sent.zip(self.flush).map(|(s, f)| s.bytes_since(f)),
            replay_bytes: self.flush.zip(self.replay).map(|(f, r)| f.bytes_since(r)),
        }
    }
}

/// Replication of one content, from the row(s) `gp_stat_replication` has for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MirrorReplication {
    /// The content (data slice) whose pair this is.
    pub content: i16,
    /// The acting primary's walsender to its mirror; `None` when the mirror is not connected.
    pub mirror: Option<WalSender>,
    /// Other walsenders of the acting primary, e.g. the two `pg_basebackup` ones of a full
    /// recovery.
    pub others: Vec<WalSender>,
    /// The acting primary's current WAL position, when it could be read.
    pub primary_current: Option<Lsn>,
}

impl MirrorReplication {
    /// The mirror's replication state; `Backup` during a full recovery's copy,
    /// `Disconnected` when no walsender serves the mirror.
    pub fn state(&self) -> ReplicationState {
        if let Some(sender) = &self.mirror {
            return sender.state;
        }
        // During a full recovery the copy runs under pg_basebackup's name.
        if self
            .others
            .iter()
            .any(|s| s.state == ReplicationState::Backup)
        {
            return ReplicationState::Backup;
        }
        ReplicationState::Disconnected
    }

    /// The mirror's lag by stage; `None` when the mirror is not connected.
    pub fn lag(&self) -> Option<WalLag> {
        self.mirror.as_ref().map(|s| s.lag(self.primary_current))
    }
}

/// The standby coordinator as the acting coordinator sees it: its `gp_walreceiver` row in
/// `pg_stat_replication`, which is the truth the catalog row hides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StandbyReplication {
    /// `None` when no standby is connected.
    pub walsender: Option<WalSender>,
    /// The coordinator's own current WAL position.
    pub coordinator_current: Option<Lsn>,
}

/// One line of `gp_configuration_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// When the configuration changed.
    pub time: DateTime<Utc>,
    /// The instance the line is about.
    pub dbid: i16,
    /// What happened, in Greenplum's words (`FTS: update status and mode for dbid 2...`).
    pub description: String,
}

impl HistoryEntry {
    /// Lines written by the fault tolerance service start with `FTS:`.
    pub fn is_fts(&self) -> bool {
        self.description.starts_with("FTS:")
    }
}

/// What the history table says, summarised (the table grows forever; reading it whole on
/// every scrape would not scale).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct History {
    /// Lines written by FTS (failovers, instances marked down), ever.
    pub fts_events: u64,
    /// Every line, ever (FTS, `gprecoverseg`, `gpactivatestandby`...).
    pub total_events: u64,
    /// The newest line's time; `None` for an empty table.
    pub last_change: Option<DateTime<Utc>>,
    /// The most recent lines, newest first (bounded by the query).
    pub recent: Vec<HistoryEntry>,
}

/// A full recovery copying files (`gp_stat_progress_basebackup`, GP7+).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryProgress {
    /// The content whose mirror is being copied.
    pub content: i16,
    /// `pg_basebackup`'s phase (`streaming database files`...).
    pub phase: String,
    /// Bytes to copy; `None` while the size is being estimated.
    pub total_bytes: Option<u64>,
    /// Bytes copied so far.
    pub streamed_bytes: Option<u64>,
}

/// What a configured coordinator endpoint answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// Accepts logins and is not in recovery: the acting coordinator.
    Coordinator,
    /// Alive and replaying: refused us with the recovery-mode rejection (57M02, or
    /// PostgreSQL's 57P03 "not accepting connections"), or let us in while in recovery.
    StandbyInRecovery,
    /// Answered, but refused for another reason (authentication, too many connections...).
    Rejecting,
    /// Connection refused or timed out.
    Down,
}

impl EndpointState {
    /// Every state, in the order metrics list them.
    pub const ALL: [EndpointState; 4] = [
        EndpointState::Coordinator,
        EndpointState::StandbyInRecovery,
        EndpointState::Rejecting,
        EndpointState::Down,
    ];

    /// The word used in labels (`standby_in_recovery`).
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Coordinator => "coordinator",
            EndpointState::StandbyInRecovery => "standby_in_recovery",
            EndpointState::Rejecting => "rejecting",
            EndpointState::Down => "down",
        }
    }
}

/// What one probe of a configured coordinator endpoint saw this round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointObservation {
    /// `host:port` as configured.
    pub endpoint: String,
    /// What the endpoint answered as.
    pub state: EndpointState,
    /// The server's message, for logs and `check` output.
    pub detail: Option<String>,
    /// From the 57M02 DETAIL `last replayed record at X/Y`, when present.
    pub last_replayed: Option<Lsn>,
}

/// Everything one read of the cluster saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// When the round started.
    pub taken_at: DateTime<Utc>,
    /// Every configured coordinator endpoint, probed this round.
    pub endpoints: Vec<EndpointObservation>,
    /// The endpoint that acts as coordinator (`None`: no coordinator answered).
    pub acting_coordinator: Option<String>,
    /// The acting coordinator's build (`None` without a coordinator or while detection fails).
    pub version: Option<Version>,
    /// Every row of `gp_segment_configuration`, coordinator tier included.
    pub segments: Sourced<Vec<Segment>>,
    /// Mirror replication per content that has a mirror (the `replication` source and
    /// collector: one name for one source).
    pub replication: Sourced<Vec<MirrorReplication>>,
    /// The standby coordinator's replication, as the coordinator sees it.
    pub standby: Sourced<StandbyReplication>,
    /// Summary and newest lines of `gp_configuration_history`.
    pub history: Sourced<History>,
    /// Empty on GP5/GP6 (no progress view) and when no full recovery runs.
    pub recovery: Sourced<Vec<RecoveryProgress>>,
    /// How long each source took this round, in seconds (for per-collector self-metrics).
    pub durations_seconds: BTreeMap<Source, f64>,
}

impl Snapshot {
    /// A snapshot in which no coordinator answered: every catalog source failed for the same
    /// reason.
    pub fn without_coordinator(
        taken_at: DateTime<Utc>,
        endpoints: Vec<EndpointObservation>,
        why: &str,
    ) -> Self {
        let failed = |source| SourceError {
            source,
            message: why.to_string(),
        };
        Snapshot {
            taken_at,
            endpoints,
            acting_coordinator: None,
            version: None,
            segments: Err(failed(Source::Segments)),
            replication: Err(failed(Source::Replication)),
            standby: Err(failed(Source::Standby)),
            history: Err(failed(Source::History)),
            recovery: Err(failed(Source::Recovery)),
            durations_seconds: BTreeMap::new(),
        }
    }

    /// An endpoint answered as the acting coordinator this round.
    pub fn coordinator_up(&self) -> bool {
        self.acting_coordinator.is_some()
    }

    /// Segment rows by dbid, when the segment source succeeded.
    pub fn segments_by_dbid(&self) -> Option<BTreeMap<i16, &Segment>> {
        self.segments
            .as_ref()
            .ok()
            .map(|rows| rows.iter().map(|s| (s.dbid, s)).collect())
    }

    /// The configured standby row (content -1, preferred role mirror), if any.
    pub fn standby_row(&self) -> Option<&Segment> {
        self.segments.as_ref().ok()?.iter().find(|s| {
            s.is_coordinator_tier() && (s.role == Role::Mirror || s.preferred_role == Role::Mirror)
        })
    }

    /// The row of the acting coordinator: the coordinator tier's primary, and only while the
    /// catalog says it is up. After a standby was activated it is the old standby's row (its
    /// role turned primary), so its host and data directory are where coordinator-side
    /// commands run. `None` when the segment source failed or no such row is up.
    pub fn acting_coordinator_row(&self) -> Option<&Segment> {
        self.segments
            .as_ref()
            .ok()?
            .iter()
            .find(|s| s.is_coordinator_tier() && s.role == Role::Primary && s.is_up())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(dbid: i16, content: i16, role: Role, status: SegmentStatus, host: &str) -> Segment {
        Segment {
            dbid,
            content,
            role,
            preferred_role: role,
            mode: Mode::NotSynchronized,
            status,
            port: 5432,
            hostname: host.to_string(),
            address: host.to_string(),
            datadir: Some(format!("/data/{host}/{content}")),
        }
    }

    fn with_rows(rows: Vec<Segment>) -> Snapshot {
        let mut snapshot = Snapshot::without_coordinator(Utc::now(), Vec::new(), "test");
        snapshot.acting_coordinator = Some("cdw:5432".into());
        snapshot.segments = Ok(rows);
        snapshot
    }

    #[test]
    fn the_acting_coordinator_row_is_the_up_coordinator_tier_primary() {
        use SegmentStatus::{Down, Up};
        let snapshot = with_rows(vec![
            row(2, 0, Role::Primary, Up, "sdw1"),
            row(8, -1, Role::Mirror, Up, "scdw"),
            row(1, -1, Role::Primary, Up, "cdw"),
        ]);
        let acting = snapshot.acting_coordinator_row().map(|s| s.dbid);
        assert_eq!(acting, Some(1));

        // Activated standby: its row turned primary; the old coordinator's row is down.
        let activated = with_rows(vec![
            row(1, -1, Role::Primary, Down, "cdw"),
            row(8, -1, Role::Primary, Up, "scdw"),
        ]);
        let acting = activated
            .acting_coordinator_row()
            .map(|s| s.hostname.as_str());
        assert_eq!(acting, Some("scdw"));

        // A segment primary is never the coordinator, nor is a down coordinator row.
        let none_up = with_rows(vec![
            row(2, 0, Role::Primary, Up, "sdw1"),
            row(1, -1, Role::Primary, Down, "cdw"),
        ]);
        assert_eq!(none_up.acting_coordinator_row(), None);

        let unread = Snapshot::without_coordinator(Utc::now(), Vec::new(), "down");
        assert_eq!(unread.acting_coordinator_row(), None);
    }
}
