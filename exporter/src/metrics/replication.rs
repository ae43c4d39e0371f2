//! The `replication` collector: mirror replication per content, from the acting primaries' walsenders, and the progress
//! of a full recovery.

use greenplum_catalog::{MirrorReplication, ReplicationState, Snapshot};

use super::{Encoder, Family, Kind, Label};

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

pub(super) fn collect(snapshot: &Snapshot, out: &mut Encoder) {
    if let Ok(mirrors) = &snapshot.replication {
        // A family's samples are written together, so each family takes its own pass.
        let content =
            |m: &MirrorReplication| -> [Label<'static>; 1] { [("content", m.content.into())] };
        let mut states = out.family(&REPLICATION_STATE);
        for mirror in mirrors {
            states.state_set(
                &content(mirror),
                "state",
                &ReplicationState::ALL,
                mirror.state(),
                ReplicationState::as_str,
            );
        }
        let mut lag_bytes = out.family(&WAL_LAG_BYTES);
        for mirror in mirrors {
            let Some(lag) = mirror.lag() else {
                continue;
            };
            for (stage, bytes) in [
                ("send", lag.send_bytes),
                ("flush", lag.flush_bytes),
                ("replay", lag.replay_bytes),
            ] {
                if let Some(bytes) = bytes {
                    lag_bytes.sample_with(&content(mirror), &[("stage", stage.into())], bytes);
                }
            }
        }
        let mut replay_lag = out.family(&REPLAY_LAG_SECONDS);
        for mirror in mirrors {
            if let Some(seconds) = mirror.mirror.as_ref().and_then(|m| m.replay_lag_seconds) {
                replay_lag.sample(&content(mirror), seconds);
            }
        }
    }
    if let Ok(progress) = &snapshot.recovery {
        let mut recovery_bytes = out.family(&RECOVERY_BYTES);
        for recovery in progress {
            for (kind, bytes) in [
                ("total", recovery.total_bytes),
                ("streamed", recovery.streamed_bytes),
            ] {
                if let Some(bytes) = bytes {
                    recovery_bytes.sample(
                        &[("content", recovery.content.into()), ("kind", kind.into())],
                        bytes,
                    );
                }
            }
        }
    }
}
