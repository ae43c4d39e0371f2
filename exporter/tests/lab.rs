//! The exporter against real lab clusters (gplab: PostgreSQL 15 servers shaped like
//! Greenplum), gp6 and gp7 flavors. Each test owns one lab; labs run one at a time.

mod common;

use std::os::unix::process::CommandExt;

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

fn segment_dbid(lab: &gplab::Lab, content: i16, role: char) -> String {
    lab.segments()
        .expect("segments")
        .iter()
        .find(|r| r.content == content && r.role == role)
        .map(|r| r.dbid.to_string())
        .expect("the instance exists")
}

/// A primary fails over (values change, series do not), then the standby stops (its catalog
/// row still says up; the exporter says disconnected).
fn failover_then_standby_stopped(flavor: Flavor) {
    let _slot = lab_slot();
    let lab = lab(flavor);
    let exporter = Exporter::for_lab(&lab, &[]);
    let before = exporter.wait_for("a healthy cluster", GUARD, healthy);
    let old_primary = segment_dbid(&lab, 0, 'p');
    let old_mirror = segment_dbid(&lab, 0, 'm');
    lab.fail_primary(0).expect("fail primary");
    let after = exporter.wait_for("the failover", GUARD, |m| {
        m.is("greenplum_segments_role_mismatch", &[], 2.0)
    });
    for name in [
        "greenplum_segment_up",
        "greenplum_segment_is_primary",
        "greenplum_segment_role_mismatch",
        "greenplum_segment_mode",
    ] {
        assert_eq!(
            before.identities(name),
            after.identities(name),
            "{name} churned"
        );
    }
    assert!(
        after.is(
            "greenplum_segment_is_primary",
            &[("dbid", &old_mirror)],
            1.0
        ),
        "{}",
        after.body
    );
    assert!(after.is(
        "greenplum_segment_is_primary",
        &[("dbid", &old_primary)],
        0.0
    ));
    assert!(after.is("greenplum_segment_up", &[("dbid", &old_primary)], 0.0));
    assert!(after.is(
        "greenplum_segment_role_mismatch",
        &[("dbid", &old_mirror)],
        1.0
    ));
    assert!(after.is("greenplum_contents_unprotected", &[], 1.0));
    assert!(after.is("greenplum_contents_unavailable", &[], 0.0));
    assert!(after.is("greenplum_cluster_state", &[("state", "unprotected")], 1.0));
    assert!(
        after.is(
            "greenplum_mirror_replication_state",
            &[("content", "0"), ("state", "disconnected")],
            1.0
        ),
        "{}",
        after.body
    );
    assert!(
        after.value("greenplum_fts_events_total", &[])
            > before.value("greenplum_fts_events_total", &[])
    );

    lab.fail_standby().expect("stop the standby");
    let standby = endpoint(lab.standby_port().expect("standby"));
    let m = exporter.wait_for("the standby to be seen down", GUARD, |m| {
        m.is(
            "greenplum_standby_replication_state",
            &[("state", "disconnected")],
            1.0,
        ) && m.is(
            "greenplum_endpoint_state",
            &[("endpoint", &standby), ("state", "down")],
            1.0,
        )
    });
    assert!(m.is("greenplum_standby_configured", &[], 1.0));
    assert!(m.is("greenplum_standby_sync", &[], 0.0));
    assert!(m
        .matching("greenplum_standby_wal_lag_bytes", &[])
        .is_empty());
    assert!(m.is("greenplum_up", &[], 1.0));
}

#[test]
fn gp6_failover_then_standby_stopped() {
    failover_then_standby_stopped(Flavor::Gp6);
}

#[test]
fn gp7_failover_then_standby_stopped() {
    failover_then_standby_stopped(Flavor::Gp7);
}

/// Replay paused on one mirror under load (replay lag bytes positive and growing), then
/// another mirror stops.
fn mirror_lagging_then_down(flavor: Flavor) {
    let _slot = lab_slot();
    let lab = lab(flavor);
    let exporter = Exporter::for_lab(&lab, &[]);
    exporter.wait_for("a healthy cluster", GUARD, healthy);
    lab.lag(0, true).expect("pause replay");
    let replay = |m: &Metrics| {
        m.value(
            "greenplum_mirror_wal_lag_bytes",
            &[("content", "0"), ("stage", "replay")],
        )
        .unwrap_or(0.0)
    };
    lab.load(20_000).expect("load");
    let first = exporter.wait_for("replay lag", GUARD, |m| replay(m) > 0.0);
    lab.load(20_000).expect("more load");
    let second = exporter.wait_for("growing replay lag", GUARD, |m| replay(m) > replay(&first));
    assert!(replay(&second) > replay(&first));
    // Flushed in sync all along: only replay is behind.
    assert!(second.is(
        "greenplum_mirror_replication_state",
        &[("content", "0"), ("state", "streaming")],
        1.0
    ));
    if flavor != Flavor::Gp6 {
        assert!(
            second
                .value("greenplum_mirror_replay_lag_seconds", &[("content", "0")])
                .is_some(),
            "{}",
            second.body
        );
    }
    lab.lag(0, false).expect("resume replay");

    let mirror = segment_dbid(&lab, 1, 'm');
    lab.fail_mirror(1).expect("stop mirror");
    let m = exporter.wait_for("the mirror to be marked down", GUARD, |m| {
        m.is("greenplum_segment_up", &[("dbid", &mirror)], 0.0)
    });
    assert!(
        m.is(
            "greenplum_mirror_replication_state",
            &[("content", "1"), ("state", "disconnected")],
            1.0
        ),
        "{}",
        m.body
    );
    assert!(m
        .matching("greenplum_mirror_wal_lag_bytes", &[("content", "1")])
        .is_empty());
    assert!(m.value("greenplum_contents_unprotected", &[]) >= Some(1.0));
    assert!(m.is(
        "greenplum_segments",
        &[("role", "mirror"), ("status", "down")],
        1.0
    ));
}

#[test]
fn gp6_mirror_lagging_then_down() {
    mirror_lagging_then_down(Flavor::Gp6);
}

#[test]
fn gp7_mirror_lagging_then_down() {
    mirror_lagging_then_down(Flavor::Gp7);
}

/// The coordinator stops (the scrape still answers: up 0, the standby seen alive by its
/// rejection), then the standby is activated and the exporter follows it without a restart.
fn coordinator_stopped_then_standby_activated(flavor: Flavor) {
    let _slot = lab_slot();
    let lab = lab(flavor);
    let exporter = Exporter::for_lab(&lab, &[]);
    exporter.wait_for("a healthy cluster", GUARD, healthy);
    let coordinator = endpoint(lab.coordinator_port());
    let standby_port = lab.standby_port().expect("standby");
    let standby = endpoint(standby_port);
    lab.fail_coordinator().expect("stop the coordinator");
    let m = exporter.wait_for("the coordinator to be seen down", GUARD, |m| {
        m.is("greenplum_up", &[], 0.0)
    });
    assert!(
        m.is(
            "greenplum_endpoint_state",
            &[("endpoint", &coordinator), ("state", "down")],
            1.0
        ),
        "{}",
        m.body
    );
    assert!(
        m.is(
            "greenplum_endpoint_state",
            &[("endpoint", &standby), ("state", "standby_in_recovery")],
            1.0
        ),
        "{}",
        m.body
    );
    assert!(m.is(
        "greenplum_exporter_collector_success",
        &[("collector", "segments")],
        0.0
    ));
    assert!(m.matching("greenplum_segment_up", &[]).is_empty());
    assert!(m.is("greenplum_cluster_state", &[("state", "unknown")], 1.0));

    let datadir = lab.standby_datadir().expect("standby datadir");
    let status = lab
        .command("gpactivatestandby")
        .args(["-a", "-d"])
        .arg(&datadir)
        .env("PGPORT", standby_port.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run gpactivatestandby");
    assert!(status.success(), "gpactivatestandby failed: {status}");
    let m = exporter.wait_for("the exporter to follow the new coordinator", GUARD, |m| {
        m.is("greenplum_up", &[], 1.0)
            && m.is(
                "greenplum_endpoint_state",
                &[("endpoint", &standby), ("state", "coordinator")],
                1.0,
            )
    });
    assert_eq!(
        m.matching("greenplum_segment_up", &[]).len(),
        4,
        "{}",
        m.body
    );
    assert!(m.is(
        "greenplum_exporter_collector_success",
        &[("collector", "segments")],
        1.0
    ));
    // The new coordinator's catalog has no standby until gpinitstandby runs.
    let m = exporter.wait_for("no standby configured", GUARD, |m| {
        m.is("greenplum_standby_configured", &[], 0.0)
    });
    assert!(m.is(
        "greenplum_endpoint_state",
        &[("endpoint", &coordinator), ("state", "down")],
        1.0
    ));
}

#[test]
fn gp6_coordinator_stopped_then_standby_activated() {
    coordinator_stopped_then_standby_activated(Flavor::Gp6);
}

#[test]
fn gp7_coordinator_stopped_then_standby_activated() {
    coordinator_stopped_then_standby_activated(Flavor::Gp7);
}

/// A full recovery copying files. `gprecoverseg -F` on a lab-sized cluster copies too fast
/// to be caught in the act, so the copy is the same `pg_basebackup -X stream` it runs, from
/// the acting primary of a content whose mirror is down, throttled so scrapes see it.
fn full_recovery_in_progress(flavor: Flavor) {
    let _slot = lab_slot();
    let lab = lab(flavor);
    let exporter = Exporter::for_lab(&lab, &[]);
    exporter.wait_for("a healthy cluster", GUARD, healthy);
    let mirror = segment_dbid(&lab, 0, 'm');
    lab.fail_mirror(0).expect("stop mirror");
    exporter.wait_for("the mirror to be marked down", GUARD, |m| {
        m.is("greenplum_segment_up", &[("dbid", &mirror)], 0.0)
    });
    let primary_port = lab
        .segments()
        .expect("segments")
        .iter()
        .find(|r| r.content == 0 && r.role == 'p')
        .map(|r| r.port)
        .expect("content 0 has a primary");
    let target = tempfile::tempdir().expect("temp dir");
    gplab::process::chown_to_server(target.path()).expect("chown");
    let mut copy = gplab::process::pg_command("pg_basebackup")
        .expect("pg_basebackup")
        .arg("-D")
        .arg(target.path().join("copy"))
        .args(["-X", "stream", "-c", "fast", "--max-rate=64k", "-d"])
        .arg(gplab::conn::conninfo(primary_port))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // Its own process group: `-X stream` forks a WAL streamer that must stop with it.
        .process_group(0)
        .spawn()
        .expect("start pg_basebackup");
    let gp6 = flavor == Flavor::Gp6;
    let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        exporter.wait_for("the copy to be seen", GUARD, |m| {
            m.is(
                "greenplum_mirror_replication_state",
                &[("content", "0"), ("state", "backup")],
                1.0,
            ) && (gp6
                || m.value(
                    "greenplum_recovery_bytes",
                    &[("content", "0"), ("kind", "total")],
                )
                .is_some())
        })
    }));
    let group = nix::unistd::Pid::from_raw(copy.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
    let _ = copy.wait();
    let m = seen.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if gp6 {
        // GP6 has no progress view: only the walsender state tells.
        assert!(m.matching("greenplum_recovery_bytes", &[]).is_empty());
    } else {
        let total = m.value(
            "greenplum_recovery_bytes",
            &[("content", "0"), ("kind", "total")],
        );
        let streamed = m.value(
            "greenplum_recovery_bytes",
            &[("content", "0"), ("kind", "streamed")],
        );
        assert!(total > Some(0.0), "{}", m.body);
        assert!(streamed <= total, "{}", m.body);
    }
    // When the copy ends its series go with it.
    exporter.wait_for("the copy to be gone", GUARD, |m| {
        m.is(
            "greenplum_mirror_replication_state",
            &[("content", "0"), ("state", "disconnected")],
            1.0,
        ) && m.matching("greenplum_recovery_bytes", &[]).is_empty()
    });
}

#[test]
fn gp6_full_recovery_in_progress() {
    full_recovery_in_progress(Flavor::Gp6);
}

#[test]
fn gp7_full_recovery_in_progress() {
    full_recovery_in_progress(Flavor::Gp7);
}
