//! A catalog-only lab instrumented for counting: `pg_stat_statements` (statements per scrape)
//! and `log_connections` (connections per scrape, counted in the server log).
//!
//! Counters are read over one connection opened before any measurement, so the counting
//! itself opens no connection inside a window; its own statements are excluded by text.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use gplab::{process, Flavor, Lab};

/// Settings applied with `ALTER SYSTEM` and a restart (the library needs preloading).
const INSTRUMENTATION: &[(&str, &str)] = &[
    ("shared_preload_libraries", "pg_stat_statements"),
    ("log_connections", "on"),
];

/// Marks our own counting statements so they are left out of the counts.
const SELF_MARK: &str = "greenplum_bench_counter";

pub struct CatalogLab {
    lab: Lab,
    log: PathBuf,
    counter: postgres::Client,
}

/// Server-side totals at one instant; subtract two to get a window's work.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    pub statements: u64,
    pub connections: u64,
}

impl CatalogLab {
    pub fn start(segments: u32, flavor: Flavor) -> Result<CatalogLab> {
        let lab = Lab::catalog_only(segments, flavor)
            .with_context(|| format!("starting a catalog-only lab of {segments} segments"))?;
        let datadir = lab.coordinator_datadir();
        // The lab logs each server to logs/dbid<N>.log; the catalog server is dbid 1.
        let log = lab.dir().join("logs").join("dbid1.log");
        {
            let mut client = lab.client().context("connecting to the catalog server")?;
            for (name, value) in INSTRUMENTATION {
                client
                    .batch_execute(&format!("ALTER SYSTEM SET {name} = '{value}'"))
                    .with_context(|| format!("ALTER SYSTEM SET {name}"))?;
            }
        }
        process::pg_ctl_stop(&datadir, "fast").context("restarting the catalog server")?;
        process::pg_ctl_start(&datadir, &log).context("restarting the catalog server")?;
        let mut counter = lab.client().context("connecting the counting session")?;
        counter
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .context("creating pg_stat_statements")?;
        Ok(CatalogLab { lab, log, counter })
    }

    pub fn port(&self) -> u16 {
        self.lab.coordinator_port()
    }

    pub fn counters(&mut self) -> Result<Counters> {
        let sql = format!(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
             WHERE query NOT LIKE '%{SELF_MARK}%' AND query NOT LIKE '%pg_stat_statements%' \
             /* {SELF_MARK} */"
        );
        let row = self
            .counter
            .query_one(sql.as_str(), &[])
            .context("reading pg_stat_statements")?;
        let statements: i64 = row.get(0);
        let text = fs::read_to_string(&self.log)
            .with_context(|| format!("reading {}", self.log.display()))?;
        let connections = text.matches("connection authorized").count() as u64;
        Ok(Counters {
            statements: u64::try_from(statements).unwrap_or(0),
            connections,
        })
    }
}
