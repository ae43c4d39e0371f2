//! The floor: the exporter's own catalog SQL (taken from `greenplum_catalog::queries`, never
//! retyped), run by a minimal client over one connection, one round per "scrape".
//!
//! It runs in a child process of its own (`greenplum-bench floor`) so its CPU time and peak
//! RSS are measured exactly as the exporters' are, without the benchmark's bookkeeping.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use greenplum_catalog::queries::{history, recovery, replication, segments, standby};
use greenplum_catalog::{parse_version, Dialect};
use serde::{Deserialize, Serialize};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::procfs;

/// What the floor child prints (JSON) on stdout.
#[derive(Debug, Serialize, Deserialize)]
pub struct FloorReport {
    pub round_ms: Vec<f64>,
    /// Per statement, in the order a round runs them.
    pub statements: Vec<StatementTiming>,
    /// CPU (user + sys) of the measured rounds only, in seconds.
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    /// Rows a round returns (all statements): what every client has to receive.
    pub rows_per_round: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatementTiming {
    pub name: String,
    pub mean_ms: f64,
    pub rows: usize,
}

/// The statements of one round for a dialect, in the exporter's order.
pub fn statements(dialect: Dialect) -> Vec<(&'static str, &'static str)> {
    let mut list = vec![("gp_segment_configuration", segments::sql(dialect))];
    if let Some(sql) = replication::sql(dialect) {
        list.push(("gp_stat_replication", sql));
    }
    if let Some(sql) = replication::current_sql(dialect) {
        list.push(("gp_dist_random current WAL", sql));
    }
    list.push(("pg_stat_replication (standby)", standby::sql(dialect)));
    list.push(("gp_configuration_history", history::sql(dialect)));
    if let Some(sql) = recovery::sql(dialect) {
        list.push(("gp_stat_progress_basebackup", sql));
    }
    list
}

/// Connects, detects the dialect as the exporter does, runs `warmup` unmeasured rounds and
/// `rounds` measured ones.
pub async fn run(port: u16, rounds: usize, warmup: usize) -> Result<FloorReport> {
    let conninfo = format!("host=127.0.0.1 port={port} user=gpadmin dbname=postgres");
    let (client, connection) = tokio_postgres::connect(&conninfo, NoTls)
        .await
        .with_context(|| format!("connecting to {conninfo}"))?;
    let connection = tokio::spawn(connection);
    let version = first_value(&client.simple_query("SELECT version()").await?)
        .context("version() returned no row")?;
    let dialect = parse_version(&version)
        .with_context(|| format!("parsing version() {version:?}"))?
        .dialect;
    let statements = statements(dialect);
    for _ in 0..warmup {
        round(&client, &statements).await?;
    }
    let pid = std::process::id();
    let cpu_before = procfs::cpu_seconds(pid)?;
    let mut round_ms = Vec::with_capacity(rounds);
    let mut totals = vec![Duration::ZERO; statements.len()];
    let mut rows = vec![0; statements.len()];
    for _ in 0..rounds {
        let started = Instant::now();
        let timings = round(&client, &statements).await?;
        round_ms.push(started.elapsed().as_secs_f64() * 1e3);
        for (i, (took, count)) in timings.into_iter().enumerate() {
            totals[i] += took;
            rows[i] = count;
        }
    }
    let cpu_seconds = procfs::cpu_seconds(pid)? - cpu_before;
    let peak_rss_bytes = procfs::memory(pid)?.peak_rss;
    drop(client);
    let _ = connection.await;
    let divisor = rounds.max(1) as f64;
    Ok(FloorReport {
        round_ms,
        statements: statements
            .iter()
            .zip(totals.iter().zip(&rows))
            .map(|((name, _), (total, rows))| StatementTiming {
                name: (*name).to_string(),
                mean_ms: total.as_secs_f64() * 1e3 / divisor,
                rows: *rows,
            })
            .collect(),
        cpu_seconds,
        peak_rss_bytes,
        rows_per_round: rows.iter().sum(),
    })
}

/// One round: every statement in order, each timed; rows are received in full (text).
async fn round(
    client: &tokio_postgres::Client,
    statements: &[(&str, &str)],
) -> Result<Vec<(Duration, usize)>> {
    let mut out = Vec::with_capacity(statements.len());
    for (name, sql) in statements {
        let started = Instant::now();
        let messages = client
            .simple_query(sql)
            .await
            .with_context(|| format!("floor statement {name}"))?;
        let rows = messages
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count();
        out.push((started.elapsed(), rows));
    }
    Ok(out)
}

fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_the_exporters_statements_per_dialect() {
        let gp6: Vec<_> = statements(Dialect::Gp6).into_iter().map(|s| s.0).collect();
        assert_eq!(gp6.len(), 5, "{gp6:?}");
        let gp7 = statements(Dialect::Gp7);
        assert_eq!(gp7.len(), 6);
        assert!(gp7.iter().any(|(_, sql)| sql.contains("gp_stat_progress_basebackup")));
        assert!(statements(Dialect::Gp6)
            .iter()
            .all(|(_, sql)| !sql.contains("_lsn")));
    }
}
