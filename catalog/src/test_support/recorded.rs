//! Snapshots built from the rows a real Greenplum 6.24.3 cluster printed (shared fixtures,
//! `greenplum-6.24.3/*.txt`), plus GP7-only fields where a test needs them. The psql tables are
//! pasted as recorded and parsed here, so a test reads like the recording it comes from.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

pub use super::{at, endpoint, gp6, gp7, lsn};
use super::{gp_walreceiver, mode, role, status};
use crate::snapshot::{
    EndpointObservation, EndpointState, History, MirrorReplication, RecoveryProgress,
    ReplicationState, Segment, Snapshot, StandbyReplication, SyncState, WalSender,
};
use crate::source::{Source, SourceError};

/// A_healthy.txt, `SELECT * FROM gp_segment_configuration ORDER BY content, role`.
pub const HEALTHY_ROWS: &str = "
    8 |      -1 | m    | m              | s    | u      | 6001 | vm       | vm      | /data/gpdemo/standby
    1 |      -1 | p    | p              | n    | u      | 6000 | vm       | vm      | /data/gpdemo/qddir/demoDataDir-1
    5 |       0 | m    | m              | s    | u      | 6005 | vm       | vm      | /data/gpdemo/dbfast_mirror1/demoDataDir0
    2 |       0 | p    | p              | s    | u      | 6002 | vm       | vm      | /data/gpdemo/dbfast1/demoDataDir0
    6 |       1 | m    | m              | s    | u      | 6006 | vm       | vm      | /data/gpdemo/dbfast_mirror2/demoDataDir1
    3 |       1 | p    | p              | s    | u      | 6003 | vm       | vm      | /data/gpdemo/dbfast2/demoDataDir1
    7 |       2 | m    | m              | s    | u      | 6007 | vm       | vm      | /data/gpdemo/dbfast_mirror3/demoDataDir2
    4 |       2 | p    | p              | s    | u      | 6004 | vm       | vm      | /data/gpdemo/dbfast3/demoDataDir2
";

/// C_after_failover.txt: dbid 2 killed, FTS promoted dbid 5.
pub const FAILOVER_ROWS: &str = "
    8 |      -1 | m    | m              | s    | u      | 6001 | vm       | vm      | /data/gpdemo/standby
    1 |      -1 | p    | p              | n    | u      | 6000 | vm       | vm      | /data/gpdemo/qddir/demoDataDir-1
    2 |       0 | m    | p              | n    | d      | 6002 | vm       | vm      | /data/gpdemo/dbfast1/demoDataDir0
    5 |       0 | p    | m              | n    | u      | 6005 | vm       | vm      | /data/gpdemo/dbfast_mirror1/demoDataDir0
    6 |       1 | m    | m              | s    | u      | 6006 | vm       | vm      | /data/gpdemo/dbfast_mirror2/demoDataDir1
    3 |       1 | p    | p              | s    | u      | 6003 | vm       | vm      | /data/gpdemo/dbfast2/demoDataDir1
    7 |       2 | m    | m              | s    | u      | 6007 | vm       | vm      | /data/gpdemo/dbfast_mirror3/demoDataDir2
    4 |       2 | p    | p              | s    | u      | 6004 | vm       | vm      | /data/gpdemo/dbfast3/demoDataDir2
";

/// G_mirror_down.txt: mirror dbid 6 (content 1) killed.
pub const MIRROR_DOWN_ROWS: &str = "
    8 |      -1 | m    | m              | s    | u      | 6001 | vm       | vm      | /data/gpdemo/standby
    1 |      -1 | p    | p              | n    | u      | 6000 | vm       | vm      | /data/gpdemo/qddir/demoDataDir-1
    5 |       0 | m    | m              | s    | u      | 6005 | vm       | vm      | /data/gpdemo/dbfast_mirror1/demoDataDir0
    2 |       0 | p    | p              | s    | u      | 6002 | vm       | vm      | /data/gpdemo/dbfast1/demoDataDir0
    6 |       1 | m    | m              | n    | d      | 6006 | vm       | vm      | /data/gpdemo/dbfast_mirror2/demoDataDir1
    3 |       1 | p    | p              | n    | u      | 6003 | vm       | vm      | /data/gpdemo/dbfast2/demoDataDir1
    7 |       2 | m    | m              | s    | u      | 6007 | vm       | vm      | /data/gpdemo/dbfast_mirror3/demoDataDir2
    4 |       2 | p    | p              | s    | u      | 6004 | vm       | vm      | /data/gpdemo/dbfast3/demoDataDir2
";

/// Parses pasted `gp_segment_configuration` rows (GP6 column order, no header).
pub fn segments(table: &str) -> Vec<Segment> {
    let letter = |text: &str| text.chars().next().unwrap_or(' ');
    table
        .lines()
        .filter(|line| line.contains('|'))
        .map(|line| {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            Segment {
                dbid: cols[0].parse().unwrap(),
                content: cols[1].parse().unwrap(),
                role: role(letter(cols[2])),
                preferred_role: role(letter(cols[3])),
                mode: mode(letter(cols[4])),
                status: status(letter(cols[5])),
                port: cols[6].parse().unwrap(),
                hostname: cols[7].to_string(),
                address: cols[8].to_string(),
                datadir: cols.get(9).map(|d| d.to_string()),
            }
        })
        .collect()
}

/// A `gp_walreceiver` walsender as `gp_stat_replication` prints it (GP6: no lag intervals).
pub fn walsender(state: &str, sent: &str, write: &str, flush: &str, replay: &str) -> WalSender {
    let opt = |t: &str| (!t.is_empty()).then(|| lsn(t));
    WalSender {
        sent: opt(sent),
        write: opt(write),
        flush: opt(flush),
        replay: opt(replay),
        ..gp_walreceiver(ReplicationState::from_walsender(state).unwrap())
    }
}

/// One content's replication: its mirror's walsender (`None`: disconnected) and the acting
/// primary's current position.
pub fn mirror(content: i16, sender: Option<WalSender>, current: &str) -> MirrorReplication {
    MirrorReplication {
        content,
        mirror: sender,
        others: vec![],
        primary_current: Some(lsn(current)),
    }
}

/// The recorded healthy cluster (A_healthy.txt), with the coordinator on 6000 and the standby
/// on 6001 rejecting with 57M02.
pub fn healthy() -> Snapshot {
    let synced = |sent| Some(walsender("streaming", sent, sent, sent, sent));
    Snapshot {
        taken_at: at("2026-11-21T16:03:37Z"),
        endpoints: vec![
            endpoint("vm:6000", EndpointState::Coordinator),
            EndpointObservation {
                detail: Some("the database system is in recovery mode".into()),
                last_replayed: Some(lsn("0/C000128")),
                ..endpoint("vm:6001", EndpointState::StandbyInRecovery)
            },
        ],
        acting_coordinator: Some("vm:6000".into()),
        version: Some(gp6()),
        segments: Ok(segments(HEALTHY_ROWS)),
        replication: Ok(vec![
            mirror(0, synced("0/C0000A8"), "0/C0000A8"),
            mirror(1, synced("0/C0000A8"), "0/C0000A8"),
            mirror(2, synced("0/C0000A8"), "0/C0000A8"),
        ]),
        standby: Ok(StandbyReplication {
            walsender: synced("0/C000128"),
            coordinator_current: Some(lsn("0/C000128")),
        }),
        history: Ok(History {
            fts_events: 6,
            total_events: 6,
            last_change: Some(at("2026-11-21T16:02:32.531996Z")),
            recent: vec![],
        }),
        recovery: Ok(vec![]),
        durations_seconds: Source::ALL.iter().map(|s| (*s, 0.01)).collect(),
    }
}

/// C_after_failover.txt: content 0's mirror acts as primary, its old primary is down and
/// its `gp_stat_replication` row is all NULL.
pub fn after_failover() -> Snapshot {
    let mut snapshot = healthy();
    snapshot.segments = Ok(segments(FAILOVER_ROWS));
    snapshot.replication = Ok(vec![
        mirror(0, None, "0/4A0A0000"),
        mirror(
            1,
            Some(walsender(
                "streaming",
                "0/4A088000",
                "0/4A088000",
                "0/4A088000",
                "0/4A087F80",
            )),
            "0/4A088000",
        ),
        mirror(
            2,
            Some(walsender(
                "streaming",
                "0/4A170000",
                "0/4A170000",
                "0/4A170000",
                "0/4A16CA20",
            )),
            "0/4A170000",
        ),
    ]);
    if let Ok(history) = &mut snapshot.history {
        history.fts_events = 8;
        history.total_events = 8;
        history.last_change = Some(at("2026-11-21T16:05:15.007418Z"));
    }
    snapshot
}

/// G_mirror_down.txt: content 1's mirror is down, its replication row all NULL.
pub fn mirror_down() -> Snapshot {
    let mut snapshot = healthy();
    snapshot.segments = Ok(segments(MIRROR_DOWN_ROWS));
    if let Ok(mirrors) = &mut snapshot.replication {
        mirrors[1].mirror = None;
    }
    snapshot
}

/// B_write_load.txt under load, GP7 shape: the primary is ahead of `sent`, the mirror has
/// not flushed or replayed everything, and lag intervals are known.
pub fn lagging_gp7() -> Snapshot {
    let mut snapshot = healthy();
    snapshot.version = Some(gp7());
    let mut sender = walsender(
        "streaming",
        "0/D000000",
        "0/CF00000",
        "0/CE00000",
        "0/C800000",
    );
    sender.replay_lag_seconds = Some(2.5);
    snapshot.replication = Ok(vec![mirror(0, Some(sender.clone()), "0/D100000")]);
    snapshot.standby = Ok(StandbyReplication {
        walsender: Some(WalSender {
            replay_lag_seconds: Some(0.75),
            ..walsender(
                "streaming",
                "0/C049798",
                "0/C049798",
                "0/C049798",
                "0/C000128",
            )
        }),
        coordinator_current: Some(lsn("0/C04A000")),
    });
    snapshot
}

/// I_full_recoverseg_during.txt: content 2's mirror is copied by pg_basebackup, plus the GP7
/// progress view for the same copy.
pub fn full_recovery_gp7() -> Snapshot {
    let mut snapshot = mirror_down();
    snapshot.version = Some(gp7());
    let basebackup = |state: &str, sent: &str, flush: &str, sync| WalSender {
        application_name: "pg_basebackup".into(),
        sync_state: Some(sync),
        ..walsender(state, sent, flush, flush, "")
    };
    if let Ok(mirrors) = &mut snapshot.replication {
        mirrors[1].mirror = None;
        mirrors[1].others = vec![
            basebackup("streaming", "0/8C0000A8", "0/8C000000", SyncState::Sync),
            basebackup("backup", "0/0", "", SyncState::Async),
        ];
    }
    snapshot.recovery = Ok(vec![RecoveryProgress {
        content: 1,
        phase: "streaming database files".into(),
        total_bytes: Some(1_500_000_000),
        streamed_bytes: Some(400_000_000),
    }]);
    snapshot
}

/// F_standby_down.txt: the standby row still says `m/s/u`, but the coordinator has no
/// walsender for it and the standby port refuses connections.
pub fn standby_down() -> Snapshot {
    let mut snapshot = healthy();
    snapshot.standby = Ok(StandbyReplication {
        walsender: None,
        coordinator_current: Some(lsn("0/C09B518")),
    });
    snapshot.endpoints[1] = EndpointObservation {
        detail: Some("Connection refused".into()),
        ..endpoint("vm:6001", EndpointState::Down)
    };
    snapshot
}

/// K_coordinator_failover_transition.txt: the coordinator is dead, the standby still
/// rejects with 57M02.
pub fn coordinator_down() -> Snapshot {
    Snapshot::without_coordinator(
        Utc.with_ymd_and_hms(2026, 11, 21, 16, 20, 0).unwrap(),
        vec![
            EndpointObservation {
                detail: Some("Connection refused".into()),
                ..endpoint("vm:6000", EndpointState::Down)
            },
            EndpointObservation {
                detail: Some("the database system is in recovery mode".into()),
                last_replayed: Some(lsn("0/C09C000")),
                ..endpoint("vm:6001", EndpointState::StandbyInRecovery)
            },
        ],
        "no configured endpoint accepts logins outside recovery",
    )
}

/// The healthy cluster whose `gp_stat_replication` query hit `statement_timeout`.
pub fn replication_failed() -> Snapshot {
    let mut snapshot = healthy();
    snapshot.replication = Err(SourceError {
        source: Source::Replication,
        message: "canceling statement due to statement timeout".into(),
    });
    snapshot.durations_seconds =
        BTreeMap::from([(Source::Segments, 0.01), (Source::Replication, 5.0)]);
    snapshot
}
