//! A primary fails, FTS fails it over, gprecoverseg recovers and rebalances; no row is lost.
//! Also the gp6 relations answer the documented queries.

mod common;

use std::time::Instant;

use common::*;
use gplab::{Flavor, Lab, LabConfig};

#[test]
fn primary_failover_recovery_and_rebalance_keep_every_row() {
    init_tracing();
    let t0 = Instant::now();
    let lab = Lab::up(LabConfig::for_tests(3, Flavor::Gp6)).expect("lab up");
    println!(
        "Lab::up (3 contents, standby): {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    lab.load(3000).expect("load");
    let before = lab.checksum().expect("checksum");
    assert_eq!(before.rows, 3000);

    // A healthy gp6 catalog answers the documented GP6 queries.
    let rep = lab
        .query_catalog("SELECT gp_segment_id, state, sync_state, sync_error, pg_xlog_location_diff(sent_location, replay_location) FROM gp_stat_replication ORDER BY gp_segment_id")
        .expect("gp_stat_replication");
    assert_eq!(
        rep.len(),
        4,
        "coordinator walsender + one row per content: {rep:?}"
    );
    assert!(
        rep.iter().all(|r| r[1].as_deref() == Some("streaming")
            && r[2].as_deref() == Some("sync")
            && r[3].as_deref() == Some("none")),
        "{rep:?}"
    );
    let lsns = lab
        .query_catalog("SELECT gp_segment_id, pg_current_xlog_location() FROM gp_dist_random('gp_id') ORDER BY 1")
        .expect("per-segment LSN");
    assert_eq!(lsns.len(), 3);
    for r in &lsns {
        let content: u16 = r[0].as_deref().unwrap_or("").parse().expect("content");
        let primary_port = lab
            .segments()
            .expect("rows")
            .iter()
            .find(|s| s.content == content as i16 && s.role == 'p')
            .map(|s| s.port)
            .expect("primary");
        let mut c = gplab::conn::connect(primary_port).expect("primary");
        let own: String = c
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .expect("lsn")
            .get(0);
        assert_eq!(
            r[1].as_deref(),
            Some(own.as_str()),
            "content {content} LSN must come from its primary"
        );
    }
    let version = lab.query_catalog("SELECT version()").expect("version");
    assert!(version[0][0]
        .as_deref()
        .unwrap_or("")
        .starts_with("PostgreSQL 9.4.26 (Greenplum Database 6.24.3"));

    // Fail the primary of content 0 (dbid 2); its mirror is dbid 5.
    let failed_at = Instant::now();
    lab.fail_primary(0).expect("fail primary");
    let rows = lab
        .wait_for_catalog("FTS failover of content 0", GUARD, |rows| {
            row(rows, 2).status == 'd' && row(rows, 5).role == 'p'
        })
        .expect("failover");
    println!(
        "failover seen in the catalog after {:.1} s (FTS interval 1 s)",
        failed_at.elapsed().as_secs_f64()
    );
    let (dead, promoted) = (row(&rows, 2), row(&rows, 5));
    assert_eq!((dead.role, dead.status, dead.mode), ('m', 'd', 'n'));
    assert_eq!(
        (promoted.role, promoted.status, promoted.mode),
        ('p', 'u', 'n')
    );
    let h = history(&lab);
    assert!(
        h.contains(
            &"FTS: update role, status, and mode for dbid 2 with contentid 0 to m, d, and n"
                .to_string()
        ),
        "{h:?}"
    );
    assert!(
        h.contains(
            &"FTS: update role, status, and mode for dbid 5 with contentid 0 to p, u, and n"
                .to_string()
        ),
        "{h:?}"
    );
    let content0 = lab
        .query_catalog("SELECT pid, state, sent_location, sync_error FROM gp_stat_replication WHERE gp_segment_id = 0")
        .expect("replication after failover");
    assert_eq!(
        content0,
        vec![vec![None, None, None, Some("none".to_string())]]
    );
    assert_eq!(
        lab.checksum().expect("checksum"),
        before,
        "failover lost rows"
    );

    // Writes go on while the pair is unprotected.
    lab.load(300).expect("load during failover");
    let during = lab.checksum().expect("checksum");

    // A rebalance while the pair is not synchronized changes nothing, warns and exits 0, as
    // the real GP6 tool does (tests/lab/fixtures/greenplum-6.24.3/rebalance_pair_not_synchronized.txt).
    let out = tool(&lab, &["gprecoverseg", "-ar"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "[WARNING]:-Not rebalancing primary segment dbid 5 with its mirror dbid 2 because one \
             is either down, unreachable, or not synchronized"
        ),
        "{text}"
    );
    assert!(text.contains("[INFO]:-No segments to rebalance"), "{text}");
    let unchanged = lab.segments().expect("rows");
    assert_eq!(
        (row(&unchanged, 5).role, row(&unchanged, 2).status),
        ('p', 'd')
    );

    let out = tool(&lab, &["gprecoverseg", "-a"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Segments successfully recovered."));
    let rows = lab
        .wait_for_catalog("content 0 back in sync", GUARD, |rows| {
            row(rows, 2).status == 'u' && row(rows, 2).mode == 's' && row(rows, 5).mode == 's'
        })
        .expect("resync");
    assert_eq!(
        row(&rows, 2).role,
        'm',
        "incremental recovery keeps roles switched"
    );
    assert_eq!(lab.checksum().expect("checksum"), during);

    let out = tool(&lab, &["gprecoverseg", "-ar"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("The rebalance operation has completed successfully."));
    lab.wait_for_catalog(
        "preferred roles restored and in sync",
        GUARD,
        all_balanced_and_synced,
    )
    .expect("rebalance");
    assert_eq!(
        lab.checksum().expect("checksum"),
        during,
        "rebalance lost rows"
    );
    let h = history(&lab);
    assert!(
        h.iter()
            .filter(|l| l.contains("dbid 2 with contentid 0 to p, u, and s"))
            .count()
            >= 2,
        "{h:?}"
    );
    println!("test total: {:.1} s", t0.elapsed().as_secs_f64());
}
