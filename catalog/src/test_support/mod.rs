//! The one place tests build snapshots by hand, shared by the catalog's own unit tests and
//! (through the `test-support` cargo feature) the exporter's and the remediator's.
//!
//! - the primitives below: catalog letters to enums, a `gp_walreceiver` walsender, endpoint
//!   observations, LSNs, timestamps, versions;
//! - [`compact`]: clusters written as compact rows on hosts `sdw1`/`sdw2`, coordinator `mdw`
//!   (what the remediator's planner and gates reason about);
//! - [`recorded`]: the recorded GP 6.24.3 demo cluster on host `vm`, pasted as psql printed it
//!   (what the exporter's metrics are checked against);
//! - [`psql`]: the parser of recorded `psql` tables that the mappings' tests feed on.
//!
//! Builders panic on malformed literals: they only ever see the test's own text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod compact;
pub mod psql;
pub mod recorded;

use chrono::{DateTime, Utc};

use crate::lsn::Lsn;
use crate::snapshot::{
    Dialect, EndpointObservation, EndpointState, Mode, Product, ReplicationState, Role,
    SegmentStatus, SyncState, Version, WalSender,
};

/// `gp_segment_configuration.role`/`preferred_role`: `p` is a primary, anything else a mirror.
pub fn role(letter: char) -> Role {
    if letter == 'p' {
        Role::Primary
    } else {
        Role::Mirror
    }
}

/// `gp_segment_configuration.mode`: `s`, `c`, `r`; anything else is `n`.
pub fn mode(letter: char) -> Mode {
    match letter {
        's' => Mode::Synchronized,
        'c' => Mode::ChangeTracking,
        'r' => Mode::Resynchronizing,
        _ => Mode::NotSynchronized,
    }
}

/// `gp_segment_configuration.status`: `u` is up, anything else down.
pub fn status(letter: char) -> SegmentStatus {
    if letter == 'u' {
        SegmentStatus::Up
    } else {
        SegmentStatus::Down
    }
}

/// A mirror's (or the standby's) walsender in `state`, in sync, positions unknown.
pub fn gp_walreceiver(state: ReplicationState) -> WalSender {
    WalSender {
        application_name: "gp_walreceiver".into(),
        state,
        sync_state: Some(SyncState::Sync),
        sent: None,
        write: None,
        flush: None,
        replay: None,
        write_lag_seconds: None,
        flush_lag_seconds: None,
        replay_lag_seconds: None,
    }
}

/// What the prober saw at `name`, without detail.
pub fn endpoint(name: &str, state: EndpointState) -> EndpointObservation {
    EndpointObservation {
        endpoint: name.into(),
        state,
        detail: None,
        last_replayed: None,
    }
}

/// A WAL position as Greenplum prints it (`0/C0000A8`).
pub fn lsn(text: &str) -> Lsn {
    text.parse().unwrap()
}

/// A time in RFC 3339 (`2026-11-21T16:03:37Z`).
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The recorded cluster's build: Greenplum 6.24.3 on PostgreSQL 9.4.26.
pub fn gp6() -> Version {
    Version {
        product: Product::Greenplum,
        product_version: "6.24.3".into(),
        pg_version: "9.4.26".into(),
        dialect: Dialect::Gp6,
    }
}

/// A Greenplum 7 build (PostgreSQL 12), for the GP7-only fields.
pub fn gp7() -> Version {
    Version {
        product: Product::Greenplum,
        product_version: "7.1.0".into(),
        pg_version: "12.12".into(),
        dialect: Dialect::Gp7,
    }
}

/// A PostgreSQL ErrorResponse message with `fields` (`(b'C', "57M02")`, ...): what a server
/// sends to refuse a login, for tests that stand in for one.
pub fn error_response(fields: &[(u8, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (code, value) in fields {
        body.push(*code);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let length = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut message = vec![b'E'];
    message.extend_from_slice(&length.to_be_bytes());
    message.extend_from_slice(&body);
    message
}
