//! Mirror loss and the grace period, replay lag, full recovery, double faults and the
//! gprecoverseg lock; gp7 relation names.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;
use gplab::{Flavor, Lab, LabConfig};

fn replay_gap(lab: &Lab, content: i32) -> i64 {
    let r = lab
        .query_catalog(&format!(
            "SELECT coalesce(pg_wal_lsn_diff(sent_lsn, replay_lsn), -1)::bigint FROM gp_stat_replication WHERE gp_segment_id = {content}"
        ))
        .expect("gp_stat_replication");
    r[0][0].as_deref().unwrap_or("-1").parse().expect("bytes")
}

#[test]
fn mirror_loss_lag_and_full_recovery_on_gp7() {
    init_tracing();
    let t0 = Instant::now();
    let lab = Lab::up(LabConfig {
        standby: false,
        ..LabConfig::for_tests(2, Flavor::Gp7)
    })
    .expect("lab up");
    lab.load(1000).expect("load");
    let before = lab.checksum().expect("checksum");

    // gp7 names: *_lsn and *_lag, description, pg_current_wal_lsn through gp_dist_random.
    let rep = lab
        .query_catalog("SELECT gp_segment_id, state, sent_lsn, replay_lsn, replay_lag, reply_time, sync_state FROM gp_stat_replication ORDER BY 1")
        .expect("gp7 replication");
    assert_eq!(
        rep.len(),
        2,
        "no standby: one row per content only: {rep:?}"
    );
    assert!(lab
        .query_catalog("SELECT sent_location FROM gp_stat_replication")
        .is_err());
    let lsns = lab
        .query_catalog("SELECT gp_segment_id, pg_current_wal_lsn() FROM gp_dist_random('gp_id')")
        .expect("dist");
    assert_eq!(lsns.len(), 2);
    assert!(!history(&lab).is_empty());
    assert!(lab
        .query_catalog("SELECT * FROM gp_stat_progress_basebackup")
        .expect("progress view")
        .is_empty());

    // Replay paused on content 0's mirror: replay lag grows under load while it stays in sync.
    lab.lag(0, true).expect("lag on");
    lab.load(2000).expect("load");
    let first = replay_gap(&lab, 0);
    lab.load(5000).expect("load");
    lab.wait_until("replay lag to grow", GUARD, |l| {
        replay_gap(l, 0) > first.max(0)
    })
    .expect("lag grows");
    lab.lag(0, false).expect("lag off");
    lab.wait_until("replay to catch up", GUARD, |l| replay_gap(l, 0) == 0)
        .expect("catch up");
    let loaded = lab.checksum().expect("checksum");
    assert_eq!(loaded.rows, before.rows + 7000);

    // Mirror of content 1 (dbid 5) dies: within the grace period the catalog still says s/u.
    lab.fail_mirror(1).expect("fail mirror");
    let rows = lab.segments().expect("rows");
    assert_eq!(
        (row(&rows, 5).status, row(&rows, 5).mode),
        ('u', 's'),
        "marked before the grace period"
    );
    let rows = lab
        .wait_for_catalog("mirror marked down", GUARD, |rows| {
            row(rows, 5).status == 'd'
        })
        .expect("mirror down");
    assert_eq!(row(&rows, 5).mode, 'n');
    assert_eq!((row(&rows, 3).status, row(&rows, 3).mode), ('u', 'n'));
    assert!(history(&lab).contains(
        &"FTS: update role, status, and mode for dbid 5 with contentid 1 to m, d, and n"
            .to_string()
    ));
    // Writes do not hang once the mirror is marked down.
    lab.load(500).expect("load with the mirror down");
    let with_mirror_down = lab.checksum().expect("checksum");

    let plan = lab.dir().join("plan.txt");
    let out = tool(&lab, &["gprecoverseg", "-o", plan.to_str().expect("utf8")]);
    assert!(out.status.success());
    let text = fs::read_to_string(&plan).expect("plan");
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with("sdw"), "{text}");
    assert!(text.trim_end().ends_with("/mirror/gpseg1"), "{text}");

    let out = tool(&lab, &["gprecoverseg", "-aF"]);
    assert!(out.status.success());
    lab.wait_for_catalog("full recovery in sync", GUARD, all_balanced_and_synced)
        .expect("resync");
    assert_eq!(lab.checksum().expect("checksum"), with_mirror_down);
    println!("test total: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn held_lock_and_double_fault_make_gprecoverseg_stop() {
    init_tracing();
    let t0 = Instant::now();
    let lab = Lab::up(LabConfig {
        standby: false,
        hosts: 1,
        mirror_grace: Duration::from_secs(2),
        ..LabConfig::for_tests(1, Flavor::Gp6)
    })
    .expect("lab up");

    // Another gprecoverseg holds the lock: an error line, and exit 0 like the real one.
    let lock = lab.coordinator_datadir().join("gprecoverseg.lock");
    fs::create_dir(&lock).expect("lock dir");
    fs::write(lock.join("PID"), "4242").expect("pid");
    lab.fail_mirror(0).expect("fail mirror");
    lab.wait_for_catalog("mirror marked down", GUARD, |rows| {
        row(rows, 3).status == 'd'
    })
    .expect("down");
    let out = tool(&lab, &["gprecoverseg", "-a"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[ERROR]:-Lockfile") && text.contains("is already running with PID 4242"),
        "{text}"
    );
    assert_eq!(
        row(&lab.segments().expect("rows"), 3).status,
        'd',
        "nothing recovered under a held lock"
    );
    fs::remove_dir_all(&lock).expect("unlock");

    // Now the primary dies too: a double fault. FTS leaves the catalog, gprecoverseg refuses.
    lab.fail_primary(0).expect("fail primary");
    let out = tool(&lab, &["gprecoverseg", "-a"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("double fault"));
    let rows = lab.segments().expect("rows");
    assert_eq!(
        (row(&rows, 2).role, row(&rows, 2).status),
        ('p', 'u'),
        "FTS must not touch a double fault"
    );
    assert!(!lock.exists(), "the lock is released after a refusal");
    // Dispatching queries fail the way Greenplum's do.
    let err = lab
        .query_catalog("SELECT * FROM gp_stat_replication")
        .expect_err("dispatch must fail");
    assert!(
        err.to_string()
            .contains("failed to acquire resources on one or more segments"),
        "{err}"
    );
    println!("test total: {:.1} s", t0.elapsed().as_secs_f64());
}

/// A mirror killed while its primary keeps writing comes back with a plain `gprecoverseg -a`:
/// it was never promoted, so it resumes streaming ("no rewind required") instead of being
/// crash-recovered as a primary, which would fork its WAL from the primary's on the same
/// timeline and leave it stuck for ever.
#[test]
fn killed_mirror_recovers_incrementally_after_writes() {
    init_tracing();
    let lab = Lab::up(LabConfig {
        standby: false,
        ..LabConfig::for_tests(2, Flavor::Gp6)
    })
    .expect("lab up");
    lab.load(2000).expect("load");
    let mirror = lab
        .segments()
        .expect("segments")
        .into_iter()
        .find(|s| s.content == 1 && s.role == 'm')
        .expect("mirror of content 1");
    lab.fail_mirror(1).expect("fail mirror");
    lab.wait_for_catalog("the mirror marked down", GUARD, |rows| {
        row(rows, mirror.dbid).status == 'd'
    })
    .expect("mirror down");
    // The primary writes on without its mirror: the mirror's WAL now ends behind it.
    lab.load(5000).expect("load while the mirror is down");
    let before = lab.checksum().expect("checksum");

    let out = tool(&lab, &["gprecoverseg", "-a"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("no rewind required"), "{text}");
    lab.wait_for_catalog("the pair back in sync", GUARD, all_balanced_and_synced)
        .expect("pair in sync");
    lab.load(1000).expect("load after recovery");
    assert_eq!(
        lab.checksum().expect("checksum").rows,
        before.rows + 1000,
        "every committed row is still there"
    );
}

/// FTS promoted a mirror but died (or failed) before the catalog said so. The next probe sees
/// the primary down and the mirror already out of recovery: it must record the failover, not
/// call it a double fault for ever (which is what made `gprecoverseg -r` wait out its 120 s).
#[test]
fn a_promotion_the_catalog_missed_is_recorded_by_the_next_probe() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    init_tracing();
    let lab = Lab::up(LabConfig {
        standby: false,
        ..LabConfig::for_tests(1, Flavor::Gp6)
    })
    .expect("lab up");
    lab.load(500).expect("load");
    let before = lab.checksum().expect("checksum");
    let rows = lab.segments().expect("segments");
    let (primary, mirror) = (
        rows.iter()
            .find(|r| r.content == 0 && r.role == 'p')
            .expect("primary")
            .clone(),
        rows.iter()
            .find(|r| r.content == 0 && r.role == 'm')
            .expect("mirror")
            .clone(),
    );

    let fts = Pid::from_raw(
        fs::read_to_string(lab.dir().join(gplab::fts::PID_FILE))
            .expect("fts pid file")
            .trim()
            .parse()
            .expect("fts pid"),
    );
    kill(fts, Signal::SIGSTOP).expect("freeze FTS");
    lab.fail_primary(0).expect("fail primary");
    gplab::process::pg_ctl_promote(std::path::Path::new(&mirror.datadir)).expect("promote");
    let untouched = lab.segments().expect("segments");
    assert_eq!(
        row(&untouched, mirror.dbid).role,
        'm',
        "the catalog missed it"
    );
    kill(fts, Signal::SIGCONT).expect("thaw FTS");

    let rows = lab
        .wait_for_catalog("the failover recorded", GUARD, |rows| {
            row(rows, mirror.dbid).role == 'p' && row(rows, primary.dbid).status == 'd'
        })
        .expect("failover recorded");
    assert_eq!(row(&rows, mirror.dbid).status, 'u');
    assert_eq!(row(&rows, mirror.dbid).mode, 'n');
    assert!(
        history(&lab).iter().any(|h| h
            == &format!(
                "FTS: update role, status, and mode for dbid {} with contentid 0 to p, u, and n",
                mirror.dbid
            )),
        "{:?}",
        history(&lab)
    );
    // The new primary takes writes (sync rep off: its mirror is down) and kept every row.
    lab.load(100).expect("load on the promoted mirror");
    assert_eq!(lab.checksum().expect("checksum").rows, before.rows + 100);
}
