//! Facts derived from the segment rows by `greenplum_catalog::health`, the same facts the
//! remediator's gates use, so an alert and a gate can never disagree.

use greenplum_catalog::{Role, SegmentStatus, Snapshot};

use super::{Family, Kind, Out};

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

pub(super) fn collect(snapshot: &Snapshot, out: &mut Out) {
    let (Ok(segments), Some(health)) = (&snapshot.segments, snapshot.health()) else {
        return;
    };
    // Every role/status pair is exposed, zeros included, so `segments{status="down"} > 0`
    // has a series to compare against in a healthy cluster.
    for role in [Role::Primary, Role::Mirror] {
        for (status, status_name) in [(SegmentStatus::Up, "up"), (SegmentStatus::Down, "down")] {
            let count = segments
                .iter()
                .filter(|s| !s.is_coordinator_tier() && s.role == role && s.status == status)
                .count();
            out.push(
                &SEGMENTS,
                vec![
                    ("role", role.as_str().to_string()),
                    ("status", status_name.to_string()),
                ],
                count,
            );
        }
    }
    out.push(&ROLE_MISMATCH, vec![], health.role_mismatch_dbids.len());
    out.push(&UNAVAILABLE, vec![], health.unavailable_contents.len());
    out.push(
        &SUSPECTED_UNAVAILABLE,
        vec![],
        health.suspected_unavailable_contents.len(),
    );
    out.push(&UNPROTECTED, vec![], health.unprotected_contents.len());
    out.push(
        &MIRROR_ON_PRIMARY_HOST,
        vec![],
        health.mirror_on_primary_host_contents.len(),
    );
    for (host, count) in &health.host_acting_primaries {
        out.push(&HOST_ACTING, vec![("hostname", host.clone())], *count);
    }
    for (host, count) in &health.host_preferred_primaries {
        out.push(&HOST_PREFERRED, vec![("hostname", host.clone())], *count);
    }
}
