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

use super::{Family, Kind, Labels, Out};

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
pub(super) fn identity(segment: &Segment) -> Labels {
    vec![
        ("dbid", segment.dbid.to_string()),
        ("content", segment.content.to_string()),
        ("hostname", segment.hostname.clone()),
        ("address", segment.address.clone()),
        ("port", segment.port.to_string()),
        (
            "preferred_role",
            segment.preferred_role.as_str().to_string(),
        ),
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

pub(super) fn collect(snapshot: &Snapshot, out: &mut Out) {
    let Ok(segments) = &snapshot.segments else {
        return;
    };
    let modes = possible_modes(snapshot, segments);
    for segment in segments {
        let labels = identity(segment);
        let mut info = labels.clone();
        info.push(("role", segment.role.as_str().to_string()));
        info.push(("datadir", segment.datadir.clone().unwrap_or_default()));
        out.info(&INFO, info);
        if segment.is_coordinator_tier() {
            continue;
        }
        out.push(&UP, labels.clone(), segment.is_up());
        out.push(
            &IS_PRIMARY,
            labels.clone(),
            segment.role == greenplum_catalog::Role::Primary,
        );
        out.push(&ROLE_MISMATCH, labels.clone(), segment.role_mismatch());
        out.state_set(&MODE, &labels, "mode", modes, segment.mode, Mode::as_str);
    }
}
