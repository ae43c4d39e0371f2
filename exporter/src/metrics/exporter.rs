//! The exporter's own health: which collector worked this scrape and how long it took.

use greenplum_catalog::{Snapshot, Source};

use super::{Encoder, Family, Kind, Scrape};

pub(super) static COLLECTOR_SUCCESS: Family = Family {
    name: "greenplum_exporter_collector_success",
    help: "1 when the collector's catalog source answered this scrape",
    kind: Kind::Gauge,
};

pub(super) static COLLECTOR_DURATION: Family = Family {
    name: "greenplum_exporter_collector_duration_seconds",
    help: "How long the collector's catalog source took this scrape",
    kind: Kind::Gauge,
};

pub(super) static SCRAPE_DURATION: Family = Family {
    name: "greenplum_exporter_scrape_duration_seconds",
    help: "How long the catalog round behind this scrape took",
    kind: Kind::Gauge,
};

pub(super) static BUILD_INFO: Family = Family {
    name: "greenplum_exporter_build_info",
    help: "Version and git revision the exporter was built from",
    kind: Kind::Info,
};

pub(super) static FAMILIES: &[&Family] = &[
    &COLLECTOR_SUCCESS,
    &COLLECTOR_DURATION,
    &SCRAPE_DURATION,
    &BUILD_INFO,
];

/// The crate version and the git revision recorded by build.rs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("GREENPLUM_EXPORTER_REVISION");

fn succeeded(snapshot: &Snapshot, source: Source) -> bool {
    match source {
        // Probing cannot fail as a whole; it failed when it classified no endpoint (the
        // round was cut short, or nothing was configured).
        Source::Endpoints => !snapshot.endpoints.is_empty(),
        Source::Segments => snapshot.segments.is_ok(),
        Source::Replication => snapshot.replication.is_ok(),
        Source::Standby => snapshot.standby.is_ok(),
        Source::History => snapshot.history.is_ok(),
        Source::Recovery => snapshot.recovery.is_ok(),
    }
}

pub(super) fn collect(scrape: Option<&Scrape>, out: &mut Encoder) {
    if let Some(scrape) = scrape {
        let snapshot = &scrape.snapshot;
        let mut success = out.family(&COLLECTOR_SUCCESS);
        for source in Source::ALL {
            success.sample(
                &[("collector", source.as_str().into())],
                succeeded(snapshot, source),
            );
        }
        let mut durations = out.family(&COLLECTOR_DURATION);
        for (source, seconds) in &snapshot.durations_seconds {
            durations.sample(&[("collector", source.as_str().into())], *seconds);
        }
        out.family(&SCRAPE_DURATION)
            .sample(&[], scrape.duration_seconds);
    }
    out.family(&BUILD_INFO).info(
        &[("version", VERSION.into()), ("revision", REVISION.into())],
        &[],
    );
}
