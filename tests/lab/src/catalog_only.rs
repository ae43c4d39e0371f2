//! `gplab catalog`: one PostgreSQL server answering the Greenplum relations of a large
//! cluster with synthetic rows, for benchmarks at thousands of segments.
//!
//! `segments` counts primaries: the catalog holds `segments` primaries, as many mirrors (group
//! mirroring, 8 primaries per host), a coordinator and a standby.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::catalog_sql::{self, Mode};
use crate::config::{Flavor, LabConfig};
use crate::conn;
use crate::error::{invalid, Context, Result};
use crate::instance::{self, write_instance_conf};
use crate::ports;
use crate::provision;
use crate::state::{Instance, LabKind, LabState};

const PER_HOST: u32 = 8;

pub fn build(segments: u32, flavor: Flavor, dir: &Path, port: Option<u16>) -> Result<LabState> {
    if segments == 0 || segments > 30000 {
        return invalid(format!(
            "--segments must be between 1 and 30000 (got {segments})"
        ));
    }
    crate::lab::make_room(dir)?;
    fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    let port = match port {
        Some(p) => p,
        None => ports::reserve(1, std::process::id())?,
    };
    let server = Instance {
        dbid: 1,
        content: -1,
        preferred_role: 'p',
        host: "cdw".into(),
        port,
        datadir: dir.join("data").join("catalog"),
    };
    let config = LabConfig {
        contents: u16::try_from(segments).unwrap_or(u16::MAX),
        flavor,
        standby: true,
        hosts: u16::try_from(segments.div_ceil(PER_HOST)).unwrap_or(u16::MAX),
        base_port: Some(port),
        fts_interval: Duration::from_secs(60),
        ..LabConfig::default()
    };
    let state = LabState {
        kind: LabKind::CatalogOnly,
        config,
        base_port: port,
        instances: vec![server.clone()],
        acting_coordinator: 1,
        catalog_segments: segments,
        retired: Vec::new(),
    };
    state.save(dir)?;
    provision::prepare_dirs(dir)?;
    provision::initdb(&server.datadir)?;
    write_instance_conf(&server)?;
    instance::start(dir, &server)?;
    let script = catalog_sql::install_script(flavor, Mode::CatalogOnly);
    let rows = synthetic_rows(segments, port);
    for db in ["template1", "postgres"] {
        let mut c = conn::connect_db(port, db)?;
        c.batch_execute(&script)
            .ctx(|| format!("installing the Greenplum catalog in {db}"))?;
        c.batch_execute(&rows)
            .ctx(|| format!("generating {segments} segments in {db}"))?;
    }
    Ok(state)
}

/// Set-based SQL for the synthetic cluster: content c's primary is dbid c+2 on host
/// sdw(c/8+1), its mirror dbid N+c+2 on the next host; every pair streams in sync, with a
/// little replay lag that varies by content so sums and maxima are not trivial.
fn synthetic_rows(n: u32, port: u16) -> String {
    let hosts = n.div_ceil(PER_HOST);
    format!(
        r#"
SET allow_system_table_mods = on;
INSERT INTO pg_catalog.gp_segment_configuration (dbid, content, role, preferred_role, mode, status, port, hostname, address, datadir)
SELECT 1, -1, 'p', 'p', 'n', 'u', {port}, 'cdw', 'cdw', '/data/coordinator/gpseg-1'
UNION ALL
SELECT {standby}, -1, 'm', 'm', 's', 'u', {port} + 1, 'scdw', 'scdw', '/data/standby/gpseg-1'
UNION ALL
SELECT c + 2, c, 'p', 'p', 's', 'u', 6000 + c % {PER_HOST}, 'sdw' || (c / {PER_HOST} + 1), 'sdw' || (c / {PER_HOST} + 1), '/data/primary/gpseg' || c
FROM generate_series(0, {last}) c
UNION ALL
SELECT {n} + c + 2, c, 'm', 'm', 's', 'u', 7000 + c % {PER_HOST}, 'sdw' || ((c / {PER_HOST} + 1) % {hosts} + 1), 'sdw' || ((c / {PER_HOST} + 1) % {hosts} + 1), '/data/mirror/gpseg' || c
FROM generate_series(0, {last}) c;

INSERT INTO pg_catalog.gp_id VALUES ('Greenplum', {n}, 1, -1);

INSERT INTO pg_catalog.gp_configuration_history
SELECT now() - interval '1 day', dbid,
       format('FTS: update role, status, and mode for dbid %s with contentid %s to %s, u, and s', dbid, content, role)
FROM pg_catalog.gp_segment_configuration WHERE content >= 0 ORDER BY content, role DESC;

INSERT INTO gplab.synthetic_lsn
SELECT c, ('0/' || to_hex(1000000000 + c * 4096))::pg_lsn FROM generate_series(0, {last}) c;

INSERT INTO gplab.synthetic_replication
SELECT seg, 10000 + seg + 1, 10, 'gpadmin', 'gp_walreceiver', '127.0.0.1', NULL, 40000 + seg + 1,
       now() - interval '1 hour', NULL, 'streaming', lsn, lsn, lsn, lsn - (seg % 7) * 512,
       interval '1 ms', interval '2 ms', (seg % 7) * interval '1 ms', 1, 'sync', now(), 'none'
FROM (SELECT -1 AS seg, '0/C000128'::pg_lsn AS lsn
      UNION ALL SELECT content, lsn FROM gplab.synthetic_lsn) s;
"#,
        standby = 2 * n + 2,
        last = n - 1,
    )
}
