//! The standby coordinator, from the acting coordinator's `gp_walreceiver` walsender (its
//! catalog row always says up and in sync, so it is not used here beyond "configured").

use greenplum_catalog::{ReplicationState, Snapshot, SyncState};

use super::{Encoder, Family, Kind};

pub(super) static CONFIGURED: Family = Family {
    name: "greenplum_standby_configured",
    help: "1 when the catalog has a standby coordinator row",
    kind: Kind::Gauge,
};

pub(super) static REPLICATION_STATE: Family = Family {
    name: "greenplum_standby_replication_state",
    help: "State of the coordinator's walsender to the standby (state set; disconnected when none)",
    kind: Kind::Gauge,
};

pub(super) static SYNC: Family = Family {
    name: "greenplum_standby_sync",
    help: "1 when the standby replicates synchronously (sync_state = sync)",
    kind: Kind::Gauge,
};

pub(super) static WAL_LAG_BYTES: Family = Family {
    name: "greenplum_standby_wal_lag_bytes",
    help: "Bytes the standby is behind the coordinator, by stage: send (not yet sent), flush (sent, not flushed), replay (flushed, not replayed)",
    kind: Kind::Gauge,
};

pub(super) static REPLAY_LAG_SECONDS: Family = Family {
    name: "greenplum_standby_replay_lag_seconds",
    help: "replay_lag of the standby's walsender (GP7 and later)",
    kind: Kind::Gauge,
};

pub(super) static FAMILIES: &[&Family] = &[
    &CONFIGURED,
    &REPLICATION_STATE,
    &SYNC,
    &WAL_LAG_BYTES,
    &REPLAY_LAG_SECONDS,
];

pub(super) fn collect(snapshot: &Snapshot, out: &mut Encoder) {
    // "Configured" is a catalog fact: it needs the segment rows.
    if snapshot.segments.is_ok() {
        out.family(&CONFIGURED)
            .sample(&[], snapshot.standby_row().is_some());
    }
    let Ok(standby) = &snapshot.standby else {
        return;
    };
    let sender = standby.walsender.as_ref();
    let state = sender.map_or(ReplicationState::Disconnected, |s| s.state);
    out.family(&REPLICATION_STATE).state_set(
        &[],
        "state",
        &ReplicationState::ALL,
        state,
        ReplicationState::as_str,
    );
    out.family(&SYNC).sample(
        &[],
        sender.is_some_and(|s| s.sync_state == Some(SyncState::Sync)),
    );
    let Some(sender) = sender else {
        return;
    };
    let lag = sender.lag(standby.coordinator_current);
    let mut lag_bytes = out.family(&WAL_LAG_BYTES);
    for (stage, bytes) in [
        ("send", lag.send_bytes),
        ("flush", lag.flush_bytes),
        ("replay", lag.replay_bytes),
    ] {
        if let Some(bytes) = bytes {
            lag_bytes.sample(&[("stage", stage.into())], bytes);
        }
    }
    if let Some(seconds) = sender.replay_lag_seconds {
        out.family(&REPLAY_LAG_SECONDS).sample(&[], seconds);
    }
}
