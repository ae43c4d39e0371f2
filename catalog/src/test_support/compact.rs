//! Snapshots built by hand from compact rows, in the shape of the recorded GP 6.24.3 cluster
//! spread over hosts `sdw1`/`sdw2` with the coordinator on `mdw` and the standby on `smdw`.
//! Each scenario is a cluster state a DBA would name (after a failover, unbalanced...).

use std::collections::BTreeMap;

use chrono::Utc;

use super::{endpoint, gp_walreceiver, mode, role, status};
use crate::snapshot::{
    EndpointObservation, EndpointState, History, MirrorReplication, Mode, ReplicationState, Role,
    Segment, Snapshot, StandbyReplication, SyncState, WalSender,
};
use crate::source::{Source, SourceError};

/// `(dbid, content, role, preferred_role, mode, status, host)`, the letters as in
/// `gp_segment_configuration`.
pub type Row = (i16, i16, char, char, char, char, &'static str);

/// One `gp_segment_configuration` row; port `6000 + dbid`, datadir `/data/gpseg<content>`.
pub fn seg(row: Row) -> Segment {
    let (dbid, content, role_letter, pref, mode_letter, status_letter, host) = row;
    Segment {
        dbid,
        content,
        role: role(role_letter),
        preferred_role: role(pref),
        mode: mode(mode_letter),
        status: status(status_letter),
        port: 6000 + i32::from(dbid),
        hostname: host.to_string(),
        address: host.to_string(),
        datadir: Some(format!("/data/gpseg{content}")),
    }
}

/// A `gp_walreceiver` walsender in `state`, sync or async, positions unknown.
pub fn walsender(state: ReplicationState, sync: bool) -> WalSender {
    WalSender {
        sync_state: Some(if sync {
            SyncState::Sync
        } else {
            SyncState::Async
        }),
        ..gp_walreceiver(state)
    }
}

/// A snapshot read from `mdw:5432` (coordinator) with `smdw:5432` in recovery.
pub fn snapshot(rows: &[Row]) -> Snapshot {
    let segments: Vec<Segment> = rows.iter().copied().map(seg).collect();
    let mirrors = segments
        .iter()
        .filter(|s| s.content >= 0 && s.role == Role::Primary)
        .map(|p| {
            let mirror_ok = segments
                .iter()
                .any(|m| m.content == p.content && m.role == Role::Mirror && m.is_up())
                && p.mode == Mode::Synchronized;
            MirrorReplication {
                content: p.content,
                mirror: mirror_ok.then(|| walsender(ReplicationState::Streaming, true)),
                others: vec![],
                primary_current: None,
            }
        })
        .collect();
    Snapshot {
        taken_at: Utc::now(),
        endpoints: vec![
            endpoint("mdw:5432", EndpointState::Coordinator),
            endpoint("smdw:5432", EndpointState::StandbyInRecovery),
        ],
        acting_coordinator: Some("mdw:5432".into()),
        version: None,
        segments: Ok(segments),
        replication: Ok(mirrors),
        standby: Ok(StandbyReplication {
            walsender: Some(walsender(ReplicationState::Streaming, true)),
            coordinator_current: None,
        }),
        history: Ok(History::default()),
        recovery: Ok(vec![]),
        durations_seconds: BTreeMap::new(),
    }
}

/// The coordinator (`mdw`) and standby (`smdw`) rows, as the catalog always shows them.
pub const COORDINATOR: [Row; 2] = [
    (1, -1, 'p', 'p', 'n', 'u', "mdw"),
    (8, -1, 'm', 'm', 's', 'u', "smdw"),
];

/// Every pair up, synchronized, in preferred roles.
pub fn healthy() -> Snapshot {
    snapshot(&[
        COORDINATOR[0],
        COORDINATOR[1],
        (2, 0, 'p', 'p', 's', 'u', "sdw1"),
        (5, 0, 'm', 'm', 's', 'u', "sdw2"),
        (3, 1, 'p', 'p', 's', 'u', "sdw1"),
        (6, 1, 'm', 'm', 's', 'u', "sdw2"),
        (4, 2, 'p', 'p', 's', 'u', "sdw2"),
        (7, 2, 'm', 'm', 's', 'u', "sdw1"),
    ])
}

/// FTS promoted dbid 5 after dbid 2 failed (the recorded C_after_failover state).
pub fn after_failover() -> Snapshot {
    snapshot(&[
        COORDINATOR[0],
        COORDINATOR[1],
        (2, 0, 'm', 'p', 'n', 'd', "sdw1"),
        (5, 0, 'p', 'm', 'n', 'u', "sdw2"),
        (3, 1, 'p', 'p', 's', 'u', "sdw1"),
        (6, 1, 'm', 'm', 's', 'u', "sdw2"),
        (4, 2, 'p', 'p', 's', 'u', "sdw2"),
        (7, 2, 'm', 'm', 's', 'u', "sdw1"),
    ])
}

/// Recovered and resynchronized but still in the switched roles.
pub fn unbalanced() -> Snapshot {
    snapshot(&[
        COORDINATOR[0],
        COORDINATOR[1],
        (2, 0, 'm', 'p', 's', 'u', "sdw1"),
        (5, 0, 'p', 'm', 's', 'u', "sdw2"),
        (3, 1, 'p', 'p', 's', 'u', "sdw1"),
        (6, 1, 'm', 'm', 's', 'u', "sdw2"),
        (4, 2, 'p', 'p', 's', 'u', "sdw2"),
        (7, 2, 'm', 'm', 's', 'u', "sdw1"),
    ])
}

/// Content 0 lost both instances.
pub fn double_fault() -> Snapshot {
    snapshot(&[
        COORDINATOR[0],
        COORDINATOR[1],
        (2, 0, 'm', 'p', 'n', 'd', "sdw1"),
        (5, 0, 'p', 'm', 'n', 'd', "sdw2"),
        (3, 1, 'p', 'p', 's', 'u', "sdw1"),
        (6, 1, 'm', 'm', 's', 'u', "sdw2"),
    ])
}

/// GP6 after a double fault: FTS could not act, so the catalog still shows content 0's primary
/// up (its mirror already down), but every query dispatched to the segments fails.
pub fn suspected_double_fault() -> Snapshot {
    let mut snapshot = snapshot(&[
        COORDINATOR[0],
        COORDINATOR[1],
        (2, 0, 'p', 'p', 'n', 'u', "sdw1"),
        (5, 0, 'm', 'm', 'n', 'd', "sdw2"),
        (3, 1, 'p', 'p', 's', 'u', "sdw1"),
        (6, 1, 'm', 'm', 's', 'u', "sdw2"),
    ]);
    snapshot.replication = Err(SourceError {
        source: Source::Replication,
        message: "ERROR: failed to acquire resources on one or more segments (SQLSTATE 58M01) DETAIL: FTS detected one or more segments are down".into(),
    });
    snapshot
}

/// No coordinator answers; the standby is alive in recovery.
pub fn coordinator_down() -> Snapshot {
    let mut snapshot = Snapshot::without_coordinator(
        Utc::now(),
        vec![
            EndpointObservation {
                endpoint: "mdw:5432".into(),
                state: EndpointState::Down,
                detail: Some("connection refused".into()),
                last_replayed: None,
            },
            endpoint("smdw:5432", EndpointState::StandbyInRecovery),
        ],
        "no coordinator answered",
    );
    snapshot.acting_coordinator = None;
    snapshot
}
