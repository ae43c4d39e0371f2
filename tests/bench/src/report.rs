//! Markdown tables (and the JSON shape) of a run.

use std::fmt::Write;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::exporter_bench::{ExporterResults, SizeResult, Target, TargetResult};
use crate::webhook_bench::{Receiver, WebhookResult};

/// Goals of issue 7.
const LATENCY_GOAL: f64 = 1.2;
const RESOURCE_GOAL: f64 = 3.0;
const WEBHOOK_RATE_GOAL: f64 = 2000.0;
const WEBHOOK_P99_GOAL_MS: f64 = 10.0;
/// The size the exporter goals are stated at.
const GOAL_SEGMENTS: u32 = 2048;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_gib: f64,
    pub cpu_model: String,
    pub load_at_start: String,
}

impl Machine {
    pub fn now() -> Result<Machine> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").context("reading /proc/cpuinfo")?;
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("/proc/meminfo has no MemTotal")?;
        Ok(Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: kib / 1024.0 / 1024.0,
            cpu_model,
            load_at_start: load_average()?,
        })
    }
}

/// The 1, 5 and 15 minute load averages, as `uptime` prints them.
pub fn load_average() -> Result<String> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    Ok(text
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(", "))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub smoke: bool,
    pub machine: Machine,
    pub load_after_exporter: Option<String>,
    pub load_after_webhook: Option<String>,
    pub exporter: Option<ExporterResults>,
    pub webhook: Option<Vec<WebhookResult>>,
}

pub fn markdown(results: &Results) -> String {
    let mut out = String::new();
    let m = &results.machine;
    let _ = writeln!(
        out,
        "Machine: {} CPUs ({}), {:.1} GiB RAM. Load average at start: {}.{}\n",
        m.cpus,
        m.cpu_model,
        m.memory_gib,
        m.load_at_start,
        if results.smoke {
            " SMOKE RUN: tiny sizes, the figures mean nothing."
        } else {
            ""
        }
    );
    if let Some(exporter) = &results.exporter {
        exporter_tables(&mut out, exporter);
        if let Some(load) = &results.load_after_exporter {
            let _ = writeln!(out, "Load average after the exporter benchmark: {load}.\n");
        }
    }
    if let Some(webhook) = &results.webhook {
        webhook_table(&mut out, webhook);
        if let Some(load) = &results.load_after_webhook {
            let _ = writeln!(out, "Load average after the webhook benchmark: {load}.\n");
        }
    }
    out
}

fn exporter_tables(out: &mut String, results: &ExporterResults) {
    let _ = writeln!(out, "### Exporter: scrapes side by side\n");
    let _ = writeln!(
        out,
        "| flavor | segments | target | median ms | p99 ms | CPU ms/scrape | peak RSS MiB | statements/scrape | new connections/scrape | exposition bytes |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for size in &results.sizes {
        for t in &size.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {:.3} | {} |",
                t.flavor,
                t.segments,
                t.target.label(),
                t.latency.median_ms,
                t.latency.p99_ms,
                t.cpu_ms_per_scrape,
                mib(t.peak_rss_bytes),
                t.statements_per_scrape,
                t.connections_per_scrape,
                t.exposition_bytes
                    .map_or_else(|| "n/a".to_string(), |b| b.to_string()),
            );
        }
    }
    let _ = writeln!(out);
    goals_table(out, &results.sizes);
    let _ = writeln!(
        out,
        "### Where a round's time goes (the floor's statements, timed one by one)\n"
    );
    let _ = writeln!(
        out,
        "| flavor | segments | statement | mean ms | rows |\n|---|---:|---|---:|---:|"
    );
    for size in &results.sizes {
        for s in &size.floor_statements {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.3} | {} |",
                size.flavor, size.segments, s.name, s.mean_ms, s.rows
            );
        }
    }
    let _ = writeln!(out);
    if let Some(soak) = &results.soak {
        let _ = writeln!(
            out,
            "### Memory soak (greenplum-exporter, {}, {} segments)\n\n| RSS after {} scrapes | RSS after {} scrapes | growth |\n|---:|---:|---:|\n| {:.1} MiB | {:.1} MiB | {:+.1} MiB |\n",
            soak.flavor,
            soak.segments,
            soak.early_scrapes,
            soak.late_scrapes,
            mib(soak.rss_after_early_bytes),
            mib(soak.rss_after_late_bytes),
            mib(soak.rss_after_late_bytes) - mib(soak.rss_after_early_bytes),
        );
    }
}

fn find(size: &SizeResult, target: Target) -> Option<&TargetResult> {
    size.targets.iter().find(|t| t.target == target)
}

/// The goals at 2,048 segments (or the largest size run, marked as such).
fn goals_table(out: &mut String, sizes: &[SizeResult]) {
    let largest = sizes.iter().map(|s| s.segments).max().unwrap_or(0);
    let at = if sizes.iter().any(|s| s.segments == GOAL_SEGMENTS) {
        GOAL_SEGMENTS
    } else {
        largest
    };
    let _ = writeln!(
        out,
        "### Goals at {at} segments{}\n",
        if at == GOAL_SEGMENTS {
            ""
        } else {
            " (the goals are stated at 2,048: this run did not reach it)"
        }
    );
    let _ = writeln!(
        out,
        "| flavor | median vs floor (goal <= {LATENCY_GOAL}x) | p99 vs floor | postgres_exporter CPU / ours (goal >= {RESOURCE_GOAL}x) | postgres_exporter RSS / ours (goal >= {RESOURCE_GOAL}x) |\n|---|---|---|---|---|"
    );
    for size in sizes.iter().filter(|s| s.segments == at) {
        let (Some(floor), Some(ours), Some(theirs)) = (
            find(size, Target::Floor),
            find(size, Target::GreenplumExporter),
            find(size, Target::PostgresExporter),
        ) else {
            continue;
        };
        let latency = ours.latency.median_ms / floor.latency.median_ms;
        let p99 = ours.latency.p99_ms / floor.latency.p99_ms;
        let cpu = theirs.cpu_ms_per_scrape / ours.cpu_ms_per_scrape;
        let rss = theirs.peak_rss_bytes as f64 / ours.peak_rss_bytes as f64;
        let _ = writeln!(
            out,
            "| {} | {latency:.2}x {} | {p99:.2}x | {cpu:.2}x {} | {rss:.2}x {} |",
            size.flavor,
            verdict(latency <= LATENCY_GOAL),
            verdict(cpu >= RESOURCE_GOAL),
            verdict(rss >= RESOURCE_GOAL),
        );
    }
    let _ = writeln!(out);
}

fn webhook_table(out: &mut String, results: &[WebhookResult]) {
    let _ = writeln!(
        out,
        "### Webhook ingest (wrk, real Alertmanager bodies, 1 in 4 deliveries a duplicate)\n"
    );
    let _ = writeln!(
        out,
        "| receiver | connections | deliveries/s (2xx) | new alerts journalled/s | duplicate share | p50 ms | p99 ms | requests | failed | goal (>= {WEBHOOK_RATE_GOAL} deliveries/s, p99 < {WEBHOOK_P99_GOAL_MS} ms) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in results {
        let goal = match r.receiver {
            Receiver::Remediator => verdict(
                r.deliveries_per_second >= WEBHOOK_RATE_GOAL && r.p99_ms < WEBHOOK_P99_GOAL_MS,
            ),
            Receiver::AdnanhWebhook => "n/a (journals nothing)",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {} | {} | {goal} |",
            r.receiver.label(),
            r.connections,
            r.deliveries_per_second,
            r.new_alerts_per_second
                .map_or_else(|| "n/a".into(), |v| format!("{v:.0}")),
            r.duplicate_share
                .map_or_else(|| "n/a".into(), |v| format!("{:.0}%", v * 100.0)),
            r.p50_ms,
            r.p99_ms,
            r.requests,
            r.failed_requests,
        );
    }
    let _ = writeln!(out);
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}
