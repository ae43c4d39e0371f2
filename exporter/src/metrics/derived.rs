//! Facts derived from the segment rows by `greenplum_catalog::health`, the same facts the
//! remediator's gates use, so an alert and a gate can never disagree.

use greenplum_catalog::health::Health;
use greenplum_catalog::{Role, SegmentStatus, Snapshot};

use super::{Encoder, Family, Kind};

pub(super) static SEGMENTS: Family = Family {
    name: "greenplum_segments",
    help: "Segment instances (content >= 0) by current role and status",
    kind: Kind::Gauge,
};

pub(super) static ROLE_MISMATCH: Family = Family {
    name: "greenplum_segments_role_mismatch",
    help: "Segment instances running in the role they were not given (failed over, not rebalanced)",
    kind: Kind::Gauge,
};

pub(super) static UNAVAILABLE: Family = Family {
    name: "greenplum_contents_unavailable",
    help: "Contents with no up primary (double fault): queries touching them fail",
    kind: Kind::Gauge,
};

pub(super) static SUSPECTED_UNAVAILABLE: Family = Family {
    name: "greenplum_contents_suspected_unavailable",
    help: "Unprotected contents while every dispatch to the segments fails: a double fault the catalog cannot show (GP6 leaves a dead primary marked up)",
    kind: Kind::Gauge,
};

pub(super) static UNPROTECTED: Family = Family {
    name: "greenplum_contents_unprotected",
    help: "Contents whose primary is up but whose mirror is down or not synchronized",
    kind: Kind::Gauge,
};

pub(super) static MIRROR_ON_PRIMARY_HOST: Family = Family {
    name: "greenplum_contents_mirror_on_primary_host",
    help: "Contents whose mirror lives on the same host as its primary",
    kind: Kind::Gauge,
};

pub(super) static HOST_ACTING: Family = Family {
    name: "greenplum_host_acting_primaries",
    help: "Up primaries each host runs now",
    kind: Kind::Gauge,
};

pub(super) static HOST_PREFERRED: Family = Family {
    name: "greenplum_host_preferred_primaries",
    help: "Primaries each host was given (preferred_role p)",
    kind: Kind::Gauge,
};

pub(super) static FAMILIES: &[&Family] = &[
    &SEGMENTS,
    &ROLE_MISMATCH,
    &UNAVAILABLE,
    &SUSPECTED_UNAVAILABLE,
    &UNPROTECTED,
    &MIRROR_ON_PRIMARY_HOST,
    &HOST_ACTING,
    &HOST_PREFERRED,
];

pub(super) fn collect(snapshot: &Snapshot, health: Option<&Health>, out: &mut Encoder) {
    let (Ok(segments), Some(health)) = (&snapshot.segments, health) else {
        return;
    };
    // Every role/status pair is exposed, zeros included, so `segments{status="down"} > 0`
    // has a series to compare against in a healthy cluster.
    let mut counts = out.family(&SEGMENTS);
    for role in [Role::Primary, Role::Mirror] {
        for (status, status_name) in [(SegmentStatus::Up, "up"), (SegmentStatus::Down, "down")] {
            let count = segments
                .iter()
                .filter(|s| !s.is_coordinator_tier() && s.role == role && s.status == status)
                .count();
            counts.sample(
                &[
                    ("role", role.as_str().into()),
                    ("status", status_name.into()),
                ],
                count,
            );
        }
    }
    out.family(&ROLE_MISMATCH)
        .sample(&[], health.role_mismatch_dbids.len());
    out.family(&UNAVAILABLE)
        .sample(&[], health.unavailable_contents.len());
    out.family(&SUSPECTED_UNAVAILABLE)
        .sample(&[], health.suspected_unavailable_contents.len());
    out.family(&UNPROTECTED)
        .sample(&[], health.unprotected_contents.len());
    out.family(&MIRROR_ON_PRIMARY_HOST)
        .sample(&[], health.mirror_on_primary_host_contents.len());
    for (family, hosts) in [
        (&HOST_ACTING, &health.host_acting_primaries),
        (&HOST_PREFERRED, &health.host_preferred_primaries),
    ] {
        let mut per_host = out.family(family);
        for (host, count) in hosts {
            per_host.sample(&[("hostname", host.into())], *count);
        }
    }
}
