//! The floor: the exporter's own catalog SQL (taken from `greenplum_catalog::queries`, never
//! retyped), run by a minimal client over one connection, one round per "scrape".
//!
//! It runs in a child process of its own (`greenplum-bench floor`) so its CPU time and peak
//! RSS are read from `/proc` exactly as the exporters' are, without the benchmark's
//! bookkeeping. The parent drives it a round at a time (a line on stdin asks for a round, a
//! JSON line on stdout answers), so its rounds interleave with the exporters' scrapes and all
//! three meet the same machine load.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use greenplum_catalog::queries::{history, recovery, replication, segments, standby};
use greenplum_catalog::{parse_version, Dialect};
use serde::{Deserialize, Serialize};
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// The first line the child prints: the statements of a round, in order.
#[derive(Debug, Serialize, Deserialize)]
pub struct FloorReady {
    pub statements: Vec<String>,
}

/// One round, as the child prints it.
#[derive(Debug, Serialize, Deserialize)]
pub struct FloorRound {
    pub ms: f64,
    /// Per statement, in the order of `FloorReady::statements`.
    pub statement_ms: Vec<f64>,
    pub rows: Vec<usize>,
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

/// The child's main loop: connects, detects the dialect as the exporter does, runs `warmup`
/// unmeasured rounds, prints [`FloorReady`], then one [`FloorRound`] per line read from stdin
/// until stdin closes.
pub async fn serve(port: u16, warmup: usize) -> Result<()> {
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
    let mut out = std::io::stdout().lock();
    let ready = FloorReady {
        statements: statements.iter().map(|(n, _)| (*n).to_string()).collect(),
    };
    writeln!(out, "{}", serde_json::to_string(&ready)?)?;
    out.flush()?;
    let mut line = String::new();
    let mut input = std::io::stdin().lock();
    while input
        .read_line(&mut line)
        .context("reading a round request")?
        > 0
    {
        line.clear();
        let started = Instant::now();
        let timings = round(&client, &statements).await?;
        let answer = FloorRound {
            ms: started.elapsed().as_secs_f64() * 1e3,
            statement_ms: timings.iter().map(|(d, _)| d.as_secs_f64() * 1e3).collect(),
            rows: timings.iter().map(|(_, r)| *r).collect(),
        };
        writeln!(out, "{}", serde_json::to_string(&answer)?)?;
        out.flush()?;
    }
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// Per-statement means over measured rounds.
pub fn statement_timings(names: &[String], rounds: &[FloorRound]) -> Vec<StatementTiming> {
    let divisor = rounds.len().max(1) as f64;
    names
        .iter()
        .enumerate()
        .map(|(i, name)| StatementTiming {
            name: name.clone(),
            mean_ms: rounds
                .iter()
                .filter_map(|r| r.statement_ms.get(i))
                .sum::<f64>()
                / divisor,
            rows: rounds
                .last()
                .and_then(|r| r.rows.get(i).copied())
                .unwrap_or(0),
        })
        .collect()
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
    fn statement_means_are_over_the_measured_rounds() {
        let names = vec!["a".to_string(), "b".to_string()];
        let rounds = [
            FloorRound {
                ms: 3.0,
                statement_ms: vec![1.0, 2.0],
                rows: vec![4, 1],
            },
            FloorRound {
                ms: 5.0,
                statement_ms: vec![3.0, 2.0],
                rows: vec![4, 1],
            },
        ];
        let t = statement_timings(&names, &rounds);
        assert_eq!((t[0].mean_ms, t[0].rows), (2.0, 4));
        assert_eq!((t[1].mean_ms, t[1].rows), (2.0, 1));
    }

    #[test]
    fn a_round_is_the_exporters_statements_per_dialect() {
        let gp6: Vec<_> = statements(Dialect::Gp6).into_iter().map(|s| s.0).collect();
        assert_eq!(gp6.len(), 5, "{gp6:?}");
        let gp7 = statements(Dialect::Gp7);
        assert_eq!(gp7.len(), 6);
        assert!(gp7
            .iter()
            .any(|(_, sql)| sql.contains("gp_stat_progress_basebackup")));
        assert!(statements(Dialect::Gp6)
            .iter()
            .all(|(_, sql)| !sql.contains("_lsn")));
    }
}
