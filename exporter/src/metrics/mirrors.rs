//! Mirror replication per content, from the acting primaries' walsenders, and the progress
//! of a full recovery.

use greenplum_catalog::{ReplicationState, Snapshot};

use super::{Family, Kind, Out};

pub(super) static REPLICATION_STATE: Family = Family {
    name: "greenplum_mirror_replication_state",
    help: "State of the acting primary's walsender to its mirror (state set; backup while a full recovery copies, disconnected when none)",
    kind: Kind::Gauge,
};

pub(super) static WAL_LAG_BYTES: Family = Family {
    name: "greenplum_mirror_wal_lag_bytes",
    help: "Bytes the mirror is behind its primary, by stage: send (primary's current position minus sent), flush (sent, not flushed), replay (flushed, not replayed)",
    kind: Kind::Gauge,
};

pub(super) static REPLAY_LAG_SECONDS: Family = Family {
    name: "greenplum_mirror_replay_lag_seconds",
    help: "replay_lag of the primary's walsender to its mirror (GP7 and later)",
    kind: Kind::Gauge,
};

pub(super) static RECOVERY_BYTES: Family = Family {
    name: "greenplum_recovery_bytes",
    help: "Bytes a running full recovery has to copy (kind=total) and has copied (kind=streamed), from gp_stat_progress_basebackup (GP7 and later)",
    kind: Kind::Gauge,
};

pub(super) static FAMILIES: &[&Family] = &[
    &REPLICATION_STATE,
    &WAL_LAG_BYTES,
    &REPLAY_LAG_SECONDS,
    &RECOVERY_BYTES,
];

pub(super) fn collect(snapshot: &Snapshot, out: &mut Out) {
    if let Ok(mirrors) = &snapshot.mirrors {
        for mirror in mirrors {
            let content = vec![("content", mirror.content.to_string())];
            out.state_set(
                &REPLICATION_STATE,
                &content,
                "state",
                &ReplicationState::ALL,
                mirror.state(),
                ReplicationState::as_str,
            );
            if let Some(lag) = mirror.lag() {
                for (stage, bytes) in [
                    ("send", lag.send_bytes),
                    ("flush", lag.flush_bytes),
                    ("replay", lag.replay_bytes),
                ] {
                    if let Some(bytes) = bytes {
                        let mut labels = content.clone();
                        labels.push(("stage", stage.to_string()));
                        out.push(&WAL_LAG_BYTES, labels, bytes);
                    }
                }
            }
            if let Some(seconds) = mirror.mirror.as_ref().and_then(|m| m.replay_lag_seconds) {
                out.push(&REPLAY_LAG_SECONDS, content.clone(), seconds);
            }
        }
    }
    if let Ok(progress) = &snapshot.recovery {
        for recovery in progress {
            for (kind, bytes) in [
                ("total", recovery.total_bytes),
                ("streamed", recovery.streamed_bytes),
            ] {
                if let Some(bytes) = bytes {
                    out.push(
                        &RECOVERY_BYTES,
                        vec![
                            ("content", recovery.content.to_string()),
                            ("kind", kind.to_string()),
                        ],
                        bytes,
                    );
                }
            }
        }
    }
}
