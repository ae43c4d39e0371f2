//! One series per segment instance (content >= 0).
//!
//! Labels are the instance's identity only (`dbid, content, hostname, address, port,
//! preferred_role`); the current role is a value, so a failover changes values, not series.
//!
//! Coordinator-tier rows (content -1) appear only in `greenplum_segment_info`, as inventory:
//! their mode and status never change (the standby row says up and synchronized even when the
//! standby is dead), so exporting them as `segment_up` or `segment_mode` would be a lie that
//! alerts would believe. The truth about them is `greenplum_up`, `greenplum_endpoint_state`
//! and the `greenplum_standby_*` families.

use greenplum_catalog::{Dialect, Mode, Segment, Snapshot};

use super::{Encoder, Family, Kind, Label};

pub(super) static UP: Family = Family {
    name: "greenplum_segment_up",
    help: "1 when the segment instance is marked up (status u) in gp_segment_configuration",
    kind: Kind::Gauge,
};

pub(super) static IS_PRIMARY: Family = Family {
    name: "greenplum_segment_is_primary",
    help: "1 when the segment instance currently acts as primary (role p)",
    kind: Kind::Gauge,
};

pub(super) static ROLE_MISMATCH: Family = Family {
    name: "greenplum_segment_role_mismatch",
    help: "1 when the segment instance runs in the role it was not given (role <> preferred_role)",
    kind: Kind::Gauge,
};

pub(super) static MODE: Family = Family {
    name: "greenplum_segment_mode",
    help: "Replication mode of the segment instance (state set: synchronized, not_synchronized; GP5 adds change_tracking, resynchronizing)",
    kind: Kind::Gauge,
};

pub(super) static INFO: Family = Family {
    name: "greenplum_segment_info",
    help: "Every instance of gp_segment_configuration, coordinator and standby included, with its current role and data directory",
    kind: Kind::Info,
};

pub(super) static FAMILIES: &[&Family] = &[&UP, &IS_PRIMARY, &ROLE_MISMATCH, &MODE, &INFO];

/// The identity of an instance: what stays the same across a failover.
fn identity(segment: &Segment) -> [Label<'_>; 6] {
    [
        ("dbid", segment.dbid.into()),
        ("content", segment.content.into()),
        ("hostname", (&segment.hostname).into()),
        ("address", (&segment.address).into()),
        ("port", segment.port.into()),
        ("preferred_role", segment.preferred_role.as_str().into()),
    ]
}

/// The modes a cluster of this dialect can show: GP6 and later only know `s` and `n`, so
/// their clusters get no series that can never be 1.
fn possible_modes(snapshot: &Snapshot, segments: &[Segment]) -> &'static [Mode] {
    let gp5 = snapshot.version.as_ref().map(|v| v.dialect) == Some(Dialect::Gp5);
    let gp5_mode_seen = segments
        .iter()
        .any(|s| matches!(s.mode, Mode::ChangeTracking | Mode::Resynchronizing));
    if gp5 || gp5_mode_seen {
        &Mode::ALL
    } else {
        &[Mode::Synchronized, Mode::NotSynchronized]
    }
}

/// `greenplum_segment_info`: every row, coordinator tier included.
pub(super) fn info(snapshot: &Snapshot, out: &mut Encoder) {
    let Ok(segments) = &snapshot.segments else {
        return;
    };
    let mut info = out.family(&INFO);
    for segment in segments {
        let current = [
            ("role", segment.role.as_str().into()),
            (
                "datadir",
                segment.datadir.as_deref().unwrap_or_default().into(),
            ),
        ];
        info.info(&identity(segment), &current);
    }
}

pub(super) fn up(snapshot: &Snapshot, out: &mut Encoder) {
    per_instance(snapshot, out, &UP, Segment::is_up);
}

pub(super) fn is_primary(snapshot: &Snapshot, out: &mut Encoder) {
    per_instance(snapshot, out, &IS_PRIMARY, |s| {
        s.role == greenplum_catalog::Role::Primary
    });
}

pub(super) fn role_mismatch(snapshot: &Snapshot, out: &mut Encoder) {
    per_instance(snapshot, out, &ROLE_MISMATCH, Segment::role_mismatch);
}

pub(super) fn mode(snapshot: &Snapshot, out: &mut Encoder) {
    let Ok(segments) = &snapshot.segments else {
        return;
    };
    let modes = possible_modes(snapshot, segments);
    let mut mode = out.family(&MODE);
    for segment in segments.iter().filter(|s| !s.is_coordinator_tier()) {
        mode.state_set(
            &identity(segment),
            "mode",
            modes,
            segment.mode,
            Mode::as_str,
        );
    }
}

/// A 0/1 gauge per segment-tier instance.
fn per_instance(
    snapshot: &Snapshot,
    out: &mut Encoder,
    family: &'static Family,
    value: impl Fn(&Segment) -> bool,
) {
    let Ok(segments) = &snapshot.segments else {
        return;
    };
    let mut samples = out.family(family);
    for segment in segments.iter().filter(|s| !s.is_coordinator_tier()) {
        samples.sample(&identity(segment), value(segment));
    }
}
