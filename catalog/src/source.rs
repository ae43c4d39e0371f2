//! Which source a failure came from, and what the failure says: a dispatch failure caused by
//! down segments (a suspected double fault) is told from one caused by a login the
//! coordinator could not make (configuration), from the server's own words.

use std::fmt;

use serde::Serialize;

/// Which source a failure came from (one per collector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Probing the configured coordinator endpoints.
    Endpoints,
    /// `gp_segment_configuration`.
    Segments,
    /// `gp_stat_replication`: the mirrors' walsenders.
    Replication,
    /// The coordinator's `pg_stat_replication`: the standby's walsender.
    Standby,
    /// `gp_configuration_history`.
    History,
    /// `gp_stat_progress_basebackup`: full recoveries (GP7+).
    Recovery,
}

impl Source {
    /// Every source, in reading order.
    pub const ALL: [Source; 6] = [
        Source::Endpoints,
        Source::Segments,
        Source::Replication,
        Source::Standby,
        Source::History,
        Source::Recovery,
    ];

    /// The name used in the `collector` label and in errors (`replication`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Endpoints => "endpoints",
            Source::Segments => "segments",
            Source::Replication => "replication",
            Source::Standby => "standby",
            Source::History => "history",
            Source::Recovery => "recovery",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a source has no data this time. Cloneable plain data, so snapshots stay plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceError {
    /// The source that failed.
    pub source: Source,
    /// Why, with the endpoint and the server's own text.
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} source failed: {}", self.source, self.message)
    }
}

impl std::error::Error for SourceError {}

/// What Greenplum answers to any query that dispatches to the segments while an acting
/// primary is unreachable and FTS has not (or cannot) act on it.
const DISPATCH_FAILURES: [&str; 2] = [
    "failed to acquire resources on one or more segments",
    "FTS detected one or more segments are down",
];

/// DETAILs of a dispatch failure that say the coordinator could not log in, to a segment or
/// to its own "entry db" (GP6 reads `gp_stat_replication` through one): a role or
/// `pg_hba.conf` problem, never a down segment. Recorded on a real 6.24.3 with an md5 role:
/// `DETAIL: fe_sendauth: no password supplied (entry db 127.0.0.1:7000)`.
const LOGIN_FAILURES: [&str; 5] = [
    "(entry db ",
    "fe_sendauth",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
];

/// What the collector error says after a dispatch login failure, so the DBA fixes the role
/// instead of looking for a down segment.
const LOGIN_FAILURE_HINT: &str = " [the coordinator could not log in as this role to itself \
    (entry db) or to a segment: a pg_hba.conf or role problem, not a down segment; see the \
    GP6 pg_hba.conf lines in docs/OPERATIONS.md]";

impl SourceError {
    /// A source's failure, its message as the server gave it; a dispatch login failure gets
    /// a hint saying what it is.
    pub fn new(source: Source, message: String) -> SourceError {
        let mut error = SourceError { source, message };
        if error.is_dispatch_login_failure() {
            error.message.push_str(LOGIN_FAILURE_HINT);
        }
        error
    }

    fn is_dispatch_failure(&self) -> bool {
        DISPATCH_FAILURES.iter().any(|m| self.message.contains(m))
    }

    /// The query could not be dispatched because the coordinator could not log in to a
    /// segment or to its own entry db: configuration, not availability.
    pub fn is_dispatch_login_failure(&self) -> bool {
        self.is_dispatch_failure() && LOGIN_FAILURES.iter().any(|m| self.message.contains(m))
    }

    /// The query reached the coordinator but could not be dispatched to every acting primary
    /// (the error seen on GP6 until FTS fails a dead primary over, and for as long as it
    /// cannot). Only the replication source dispatches; other sources never say this. A
    /// login failure is not one: it says nothing about the segments being up.
    pub fn is_segment_dispatch_failure(&self) -> bool {
        self.is_dispatch_failure() && !self.is_dispatch_login_failure()
    }
}

/// What one source gave this round: its data, or why there is none.
pub type Sourced<T> = Result<T, SourceError>;
