//! The reader against the lab: real PostgreSQL servers imitating a Greenplum catalog.
//!
//! The lab's API is blocking (it uses the `postgres` crate, which runs its own runtime), so
//! these are plain tests that drive the async reader on a runtime of their own and call the
//! lab outside of it.

use std::time::{Duration, Instant};

use gplab::{Flavor, Lab, LabConfig};
use greenplum_catalog::{
    ClusterReader, ClusterState, Dialect, Endpoint, EndpointState, Product, ReaderConfig,
    ReplicationState, Role, Snapshot, Source,
};

/// Guards for waits on FTS and failover; never speed assertions.
const WAIT: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn reader_for(lab: &Lab) -> ClusterReader {
    let mut endpoints = vec![Endpoint::new("127.0.0.1", lab.coordinator_port())];
    if let Some(port) = lab.standby_port() {
        endpoints.push(Endpoint::new("127.0.0.1", port));
    }
    let mut config = ReaderConfig::new(endpoints, "gpadmin", "postgres");
    config.application_name = "catalog-integration".into();
    config.connect_timeout = Duration::from_secs(5);
    config.statement_timeout = Duration::from_secs(5);
    // Tests poll quickly; every round must really probe.
    ClusterReader::new(config).with_backoff(Duration::ZERO, Duration::ZERO)
}

/// Takes snapshots until `check` holds; panics with the last snapshot when the guard expires.
fn wait_for(
    rt: &tokio::runtime::Runtime,
    reader: &mut ClusterReader,
    what: &str,
    mut check: impl FnMut(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let snapshot = rt.block_on(reader.snapshot());
        if check(&snapshot) {
            return snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {WAIT:?}; last snapshot: {snapshot:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn assert_healthy(snapshot: &Snapshot, dialect: Dialect) {
    assert!(snapshot.coordinator_up(), "{snapshot:#?}");
    let version = snapshot.version.as_ref().expect("version detected");
    assert_eq!(version.dialect, dialect);
    let segments = snapshot.segments.as_ref().expect("segments read");
    assert_eq!(segments.iter().filter(|s| s.content >= 0).count(), 6);
    assert_eq!(snapshot.cluster_state(), ClusterState::Healthy);
    let mirrors = snapshot.replication.as_ref().expect("replication read");
    assert_eq!(mirrors.len(), 3);
    for mirror in mirrors {
        assert_eq!(mirror.state(), ReplicationState::Streaming, "{mirror:?}");
        assert!(
            mirror.primary_current.is_some(),
            "send lag needs {mirror:?}"
        );
        assert!(mirror.lag().is_some());
    }
    let standby = snapshot.standby.as_ref().expect("standby read");
    assert_eq!(
        standby.walsender.as_ref().map(|s| s.state),
        Some(ReplicationState::Streaming)
    );
    assert!(standby.coordinator_current.is_some());
    assert!(snapshot.history.is_ok(), "{:?}", snapshot.history);
    assert_eq!(snapshot.recovery, Ok(Vec::new()));
    for source in Source::ALL {
        assert!(
            snapshot.durations_seconds.contains_key(&source),
            "no duration for {source}"
        );
    }
    let states: Vec<EndpointState> = snapshot.endpoints.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        vec![EndpointState::Coordinator, EndpointState::StandbyInRecovery]
    );
}

/// gp6: healthy, a primary failed over by FTS, then the coordinator lost and the standby
/// activated: the same reader follows it with no restart.
#[test]
fn gp6_failover_and_coordinator_activation() {
    let rt = runtime();
    let lab = Lab::up(LabConfig::for_tests(3, Flavor::Gp6)).expect("lab up");
    let mut reader = reader_for(&lab);

    let healthy = rt.block_on(reader.snapshot());
    assert_healthy(&healthy, Dialect::Gp6);
    assert_eq!(
        reader.version().map(|v| v.product),
        Some(Product::Greenplum)
    );
    let fts_before = healthy.history.as_ref().map(|h| h.fts_events).unwrap_or(0);

    lab.fail_primary(0).expect("fail primary 0");
    let failed_over = wait_for(&rt, &mut reader, "FTS failover of content 0", |s| {
        s.segments.as_ref().is_ok_and(|rows| {
            rows.iter()
                .any(|r| r.content == 0 && r.role == Role::Primary && r.role_mismatch())
        })
    });
    let health = failed_over.health().expect("health");
    assert_eq!(health.state(), ClusterState::Unprotected);
    assert!(health.unprotected_contents.contains(&0));
    let history = wait_for(&rt, &mut reader, "history lines of the failover", |s| {
        s.history.as_ref().is_ok_and(|h| h.fts_events > fts_before)
    });
    assert!(history.history.unwrap().last_change.is_some());

    lab.fail_coordinator().expect("fail coordinator");
    let lost = rt.block_on(reader.snapshot());
    assert!(!lost.coordinator_up());
    assert_eq!(lost.endpoints[0].state, EndpointState::Down);
    assert_eq!(lost.endpoints[1].state, EndpointState::StandbyInRecovery);
    assert!(lost.segments.is_err());

    let standby_port = lab.standby_port().expect("standby port");
    let standby_dir = lab.standby_datadir().expect("standby datadir");
    let status = lab
        .command("gpactivatestandby")
        .args(["-a", "-d"])
        .arg(&standby_dir)
        .env("PGPORT", standby_port.to_string())
        .status()
        .expect("run gpactivatestandby");
    assert!(status.success(), "gpactivatestandby: {status}");
    let followed = wait_for(
        &rt,
        &mut reader,
        "the promoted standby as coordinator",
        |s| {
            s.acting_coordinator.as_deref() == Some(&format!("127.0.0.1:{standby_port}")[..])
                && s.segments.is_ok()
        },
    );
    assert_eq!(followed.endpoints[1].state, EndpointState::Coordinator);
    assert_eq!(reader.version().map(|v| v.dialect), Some(Dialect::Gp6));
    assert!(followed
        .standby
        .as_ref()
        .is_ok_and(|s| s.walsender.is_none()));
}

/// gp7: the PostgreSQL 12+ dialect end to end, and a lost mirror.
#[test]
fn gp7_sources_and_mirror_down() {
    let rt = runtime();
    let lab = Lab::up(LabConfig::for_tests(3, Flavor::Gp7)).expect("lab up");
    let mut reader = reader_for(&lab);
    assert_healthy(&rt.block_on(reader.snapshot()), Dialect::Gp7);

    lab.fail_mirror(1).expect("fail mirror 1");
    let disconnected = wait_for(&rt, &mut reader, "mirror 1 disconnected", |s| {
        s.replication.as_ref().is_ok_and(|m| {
            m.iter()
                .any(|r| r.content == 1 && r.state() == ReplicationState::Disconnected)
        })
    });
    assert!(disconnected.segments.is_ok());
    let marked = wait_for(&rt, &mut reader, "mirror 1 marked down", |s| {
        s.health()
            .is_some_and(|h| h.unprotected_contents.contains(&1) && !h.down_dbids.is_empty())
    });
    assert_eq!(marked.cluster_state(), ClusterState::Unprotected);
    assert!(!marked.health().unwrap().double_fault_suspected());

    // Now its primary dies too: FTS cannot promote, the catalog keeps saying `u`, every
    // dispatching query fails. The catalog alone shows no double fault; the rule does.
    lab.fail_primary(1).expect("fail primary 1");
    let suspected = wait_for(
        &rt,
        &mut reader,
        "suspected double fault of content 1",
        |s| {
            s.health()
                .is_some_and(|h| h.suspected_unavailable_contents.contains(&1))
        },
    );
    let health = suspected.health().unwrap();
    assert!(health.segment_dispatch_failing);
    assert!(health.unavailable_contents.is_empty(), "{health:?}");
    let message = &suspected.replication.as_ref().unwrap_err().message;
    assert!(
        message.contains("failed to acquire resources on one or more segments"),
        "the server's text is kept: {message}"
    );
    assert!(suspected.segments.is_ok() && suspected.history.is_ok());
}

/// Cloudberry: FTS probe requests, replay lag under load, and a slow catalog query that
/// costs only its own source.
#[test]
fn cloudberry_probe_lag_and_slow_query() {
    let rt = runtime();
    let lab = Lab::up(LabConfig::for_tests(2, Flavor::Cloudberry)).expect("lab up");
    let mut reader = reader_for(&lab);
    let snapshot = rt.block_on(reader.snapshot());
    assert!(snapshot.segments.is_ok(), "{:?}", snapshot.segments);
    assert_eq!(
        reader.version().map(|v| v.product),
        Some(Product::Cloudberry)
    );
    assert_eq!(reader.version().map(|v| v.dialect), Some(Dialect::Gp7));
    let requested = rt.block_on(reader.request_fts_probe());
    assert!(matches!(requested, Ok(true)), "{requested:?}");

    lab.lag(0, true).expect("pause replay on mirror 0");
    let replay_of = |s: &Snapshot| {
        let mirrors = s.replication.as_ref().ok()?;
        let sender = mirrors.iter().find(|r| r.content == 0)?.mirror.clone()?;
        Some((sender.replay?, sender.lag(None).replay_bytes?))
    };
    lab.load(2_000).expect("load");
    // Replay runs on to the next commit record and stalls there: wait for two rounds in a
    // row at the same position with bytes behind it.
    let mut previous = None;
    let stalled = wait_for(&rt, &mut reader, "replay stalled on mirror 0", |s| {
        let now = replay_of(s);
        let same = now.is_some() && now.map(|n| n.0) == previous.map(|p: (_, u64)| p.0);
        previous = now;
        same && now.is_some_and(|n| n.1 > 0)
    });
    let stalled_bytes = replay_of(&stalled).map(|n| n.1).unwrap_or(0);
    lab.load(2_000).expect("more load");
    wait_for(&rt, &mut reader, "growing replay lag", |s| {
        replay_of(s).is_some_and(|n| n.1 > stalled_bytes)
    });
    lab.lag(0, false).expect("resume replay");

    // Replace the progress view by one that sleeps past the statement timeout.
    lab.query_catalog(
        "SET allow_system_table_mods = on; \
         ALTER VIEW pg_catalog.gp_stat_progress_basebackup RENAME TO gp_stat_progress_basebackup_saved; \
         CREATE VIEW pg_catalog.gp_stat_progress_basebackup AS SELECT 0 AS gp_segment_id, \
         'x'::text AS phase, NULL::bigint AS backup_total, NULL::bigint AS backup_streamed \
         FROM pg_sleep(30)",
    )
    .expect("slow view");
    let mut config = reader.config().clone();
    config.statement_timeout = Duration::from_secs(1);
    let mut impatient = ClusterReader::new(config).with_backoff(Duration::ZERO, Duration::ZERO);
    for _ in 0..2 {
        // Twice: the session survives a cancelled statement.
        let slow = rt.block_on(impatient.snapshot());
        let error = slow.recovery.as_ref().unwrap_err();
        assert!(error.message.contains("statement timeout"), "{error}");
        assert!(slow.segments.is_ok() && slow.replication.is_ok() && slow.history.is_ok());
        assert!(slow.standby.is_ok());
    }
}
