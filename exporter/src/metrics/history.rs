//! `gp_configuration_history`, summarised.

use greenplum_catalog::Snapshot;

use super::{Encoder, Family, Kind};

pub(super) static FTS_EVENTS: Family = Family {
    name: "greenplum_fts_events_total",
    help: "Lines the fault tolerance service wrote to gp_configuration_history (descriptions starting with FTS:)",
    kind: Kind::Counter,
};

pub(super) static LAST_CHANGE: Family = Family {
    name: "greenplum_last_configuration_change_timestamp_seconds",
    help: "Unix time of the newest line in gp_configuration_history",
    kind: Kind::Gauge,
};

pub(super) static FAMILIES: &[&Family] = &[&FTS_EVENTS, &LAST_CHANGE];

pub(super) fn collect(snapshot: &Snapshot, out: &mut Encoder) {
    let Ok(history) = &snapshot.history else {
        return;
    };
    out.family(&FTS_EVENTS).sample(&[], history.fts_events);
    if let Some(last) = history.last_change {
        out.family(&LAST_CHANGE)
            .sample(&[], last.timestamp_millis() as f64 / 1000.0);
    }
}
