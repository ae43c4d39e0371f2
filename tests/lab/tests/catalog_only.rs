//! `gplab catalog`: one server answering the Greenplum relations of a large cluster.

use gplab::{Flavor, Lab};

#[test]
fn catalog_only_answers_at_2048_segments() {
    let lab = Lab::catalog_only(2048, Flavor::Gp7).expect("catalog");
    let q = |sql: &str| lab.query_catalog(sql).expect(sql);
    assert_eq!(
        q("SELECT count(*) FROM gp_segment_configuration")[0][0].as_deref(),
        Some("4098")
    );
    assert_eq!(
        q("SELECT count(*) FROM gp_segment_configuration WHERE content >= 0 AND role = 'p'")[0][0]
            .as_deref(),
        Some("2048")
    );
    assert_eq!(
        q("SELECT count(*) FROM gp_stat_replication")[0][0].as_deref(),
        Some("2049")
    );
    assert_eq!(
        q("SELECT count(*) FROM gp_configuration_history")[0][0].as_deref(),
        Some("4096")
    );
    assert_eq!(
        q("SELECT count(DISTINCT description) FROM gp_configuration_history")[0][0].as_deref(),
        Some("4096")
    );
    let lsns = q("SELECT gp_segment_id, pg_current_wal_lsn() FROM gp_dist_random('gp_id')");
    assert_eq!(lsns.len(), 2048);
    assert!(lsns.iter().all(|r| r[1].is_some()));
    assert!(q("SELECT version()")[0][0]
        .as_deref()
        .unwrap_or("")
        .contains("Greenplum Database 7.1.0"));
    // Mirrors never share their primary's host.
    assert_eq!(
        q("SELECT count(*) FROM gp_segment_configuration p JOIN gp_segment_configuration m USING (content) WHERE p.role = 'p' AND m.role = 'm' AND p.content >= 0 AND p.hostname = m.hostname")[0][0].as_deref(),
        Some("0")
    );
}

#[test]
fn catalog_only_cloudberry_and_gp6_shapes() {
    let cb = Lab::catalog_only(4, Flavor::Cloudberry).expect("catalog");
    let cols = cb
        .query_catalog("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'gp_segment_configuration'::regclass AND attnum > 0")
        .expect("columns");
    assert_eq!(cols[0][0].as_deref(), Some("dbid,content,role,preferred_role,mode,status,port,hostname,address,datadir,warehouseid"));
    assert!(cb.query_catalog("SELECT version()").expect("v")[0][0]
        .as_deref()
        .unwrap_or("")
        .contains("Apache Cloudberry"));
    let gp6 = Lab::catalog_only(4, Flavor::Gp6).expect("catalog");
    let rep = gp6
        .query_catalog("SELECT gp_segment_id, pg_xlog_location_diff(sent_location, replay_location) FROM gp_stat_replication ORDER BY 1")
        .expect("gp6 names");
    assert_eq!(rep.len(), 5);
    let h = gp6
        .query_catalog("SELECT \"desc\" FROM gp_configuration_history LIMIT 1")
        .expect("desc");
    assert!(h[0][0]
        .as_deref()
        .unwrap_or("")
        .starts_with("FTS: update role, status, and mode for dbid "));
}
