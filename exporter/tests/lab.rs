//! The exporter against real lab clusters (gplab: PostgreSQL 15 servers shaped like
//! Greenplum), gp6 and gp7 flavors. Each test owns one lab; labs run one at a time.

mod common;

use std::time::Duration;

use common::{endpoint, lab, lab_slot, Exporter, Metrics, GUARD};
use gplab::Flavor;

fn healthy(m: &Metrics) -> bool {
    m.is("greenplum_up", &[], 1.0)
        && m.is("greenplum_cluster_state", &[("state", "healthy")], 1.0)
        && m.is(
            "greenplum_standby_replication_state",
            &[("state", "streaming")],
            1.0,
        )
}

fn flavor_label(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Cloudberry => "cloudberry",
        _ => "greenplum",
    }
}

/// Healthy cluster, then a slow catalog query (one collector fails, the others report),
/// then a segment row removed (its series vanish).
fn healthy_slow_query_and_removed_row(flavor: Flavor) {
    let _slot = lab_slot();
    let lab = lab(flavor);
    let exporter = Exporter::for_lab(&lab, &[]);
    let m = exporter.wait_for("a healthy cluster", GUARD, healthy);
    assert_eq!(
        m.matching("greenplum_segment_up", &[]).len(),
        4,
        "{}",
        m.body
    );
    assert_eq!(
        m.matching("greenplum_segment_info", &[]).len(),
        6,
        "{}",
        m.body
    );
    assert!(
        m.is(
            "greenplum_version_info",
            &[("flavor", flavor_label(flavor))],
            1.0
        ),
        "{}",
        m.body
    );
    let coordinator = endpoint(lab.coordinator_port());
    let standby = endpoint(lab.standby_port().expect("lab has a standby"));
    assert!(m.is(
        "greenplum_endpoint_state",
        &[("endpoint", &coordinator), ("state", "coordinator")],
        1.0
    ));
    assert!(
        m.is(
            "greenplum_endpoint_state",
            &[("endpoint", &standby), ("state", "standby_in_recovery")],
            1.0
        ),
        "{}",
        m.body
    );
    for content in ["0", "1"] {
        assert!(
            m.is(
                "greenplum_mirror_replication_state",
                &[("content", content), ("state", "streaming")],
                1.0
            ),
            "{}",
            m.body
        );
    }
    for collector in [
        "endpoints",
        "segments",
        "replication",
        "standby",
        "history",
        "recovery",
    ] {
        assert!(
            m.is(
                "greenplum_exporter_collector_success",
                &[("collector", collector)],
                1.0
            ),
            "{collector}: {}",
            m.body
        );
    }
    assert!(m.is("greenplum_standby_sync", &[], 1.0));
    assert!(m.is("greenplum_contents_unprotected", &[], 0.0));

    // Another session holds an ACCESS EXCLUSIVE lock on the history table: only the
    // history collector runs into statement_timeout.
    let mut locker = lab.client().expect("client");
    locker
        .batch_execute("BEGIN; LOCK TABLE gp_configuration_history IN ACCESS EXCLUSIVE MODE;")
        .expect("lock");
    let m = exporter.scrape();
    assert!(
        m.is(
            "greenplum_exporter_collector_success",
            &[("collector", "history")],
            0.0
        ),
        "{}",
        m.body
    );
    assert!(m.matching("greenplum_fts_events_total", &[]).is_empty());
    assert!(m.is("greenplum_up", &[], 1.0));
    for collector in ["segments", "replication", "standby"] {
        assert!(
            m.is(
                "greenplum_exporter_collector_success",
                &[("collector", collector)],
                1.0
            ),
            "{collector}: {}",
            m.body
        );
    }
    assert_eq!(m.matching("greenplum_segment_up", &[]).len(), 4);
    locker.batch_execute("ROLLBACK").expect("unlock");
    exporter.wait_for("the history collector to recover", GUARD, |m| {
        m.is(
            "greenplum_exporter_collector_success",
            &[("collector", "history")],
            1.0,
        ) && !m.matching("greenplum_fts_events_total", &[]).is_empty()
    });

    // A segment row disappears from the catalog: its series vanish, nothing stale stays.
    let rows = lab.segments().expect("segments");
    let mirror = rows
        .iter()
        .find(|r| r.content == 1 && r.role == 'm')
        .expect("content 1 has a mirror");
    let dbid = mirror.dbid.to_string();
    lab.query_catalog(&format!(
        "DELETE FROM gp_segment_configuration WHERE dbid = {dbid}"
    ))
    .expect("delete the row");
    let m = exporter.wait_for("the removed row's series to vanish", GUARD, |m| {
        m.matching("greenplum_segment_info", &[("dbid", &dbid)])
            .is_empty()
    });
    for name in [
        "greenplum_segment_up",
        "greenplum_segment_is_primary",
        "greenplum_segment_mode",
        "greenplum_segment_role_mismatch",
    ] {
        assert!(
            m.matching(name, &[("dbid", &dbid)]).is_empty(),
            "{name}: {}",
            m.body
        );
    }
    assert_eq!(
        m.matching("greenplum_segment_up", &[]).len(),
        3,
        "{}",
        m.body
    );
}

#[test]
fn gp6_healthy_slow_query_and_removed_row() {
    healthy_slow_query_and_removed_row(Flavor::Gp6);
}

#[test]
fn gp7_healthy_slow_query_and_removed_row() {
    healthy_slow_query_and_removed_row(Flavor::Gp7);
}
