//! The exporter benchmark: per flavor and size, one catalog-only lab, and on it, one after
//! the other, the floor, this exporter and postgres_exporter, each measured the same way.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use gplab::Flavor;
use serde::{Deserialize, Serialize};

use crate::catalog_lab::{CatalogLab, Counters};
use crate::floor::{FloorReport, StatementTiming};
use crate::procfs;
use crate::scrape::Scraper;
use crate::service::{free_port, Service};
use crate::stats::Latency;

const QUERIES_GP6: &str = include_str!("../postgres_exporter/queries-gp6.yaml");
const QUERIES_GP7: &str = include_str!("../postgres_exporter/queries-gp7.yaml");
const POSTGRES_EXPORTER: &str = "prometheus-postgres-exporter";
/// Unmeasured scrapes first: connections, version detection, allocator warm-up.
const WARMUP: usize = 5;
/// The "after 100 scrapes" point of the memory soak.
const SOAK_EARLY: usize = 100;

#[derive(Debug, Clone)]
pub struct ExporterPlan {
    pub flavors: Vec<Flavor>,
    pub sizes: Vec<u32>,
    pub scrapes: usize,
    /// Memory after `soak_scrapes` vs after 100, for this exporter at `soak_segments`
    /// (first flavor); `None` skips the soak.
    pub soak: Option<Soak>,
}

#[derive(Debug, Clone, Copy)]
pub struct Soak {
    pub segments: u32,
    pub scrapes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Floor,
    GreenplumExporter,
    PostgresExporter,
}

impl Target {
    pub fn label(self) -> &'static str {
        match self {
            Target::Floor => "floor (catalog SQL, 1 connection)",
            Target::GreenplumExporter => "greenplum-exporter",
            Target::PostgresExporter => "postgres_exporter + queries.yaml",
        }
    }
}

/// One target on one lab. Per-scrape figures are means over the measured scrapes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetResult {
    pub target: Target,
    pub flavor: String,
    pub segments: u32,
    pub latency: Latency,
    pub cpu_ms_per_scrape: f64,
    pub peak_rss_bytes: u64,
    /// Statements the server executed per scrape (pg_stat_statements calls).
    pub statements_per_scrape: f64,
    /// Connections the server authorized per scrape (log_connections); 0 when the client
    /// keeps one connection.
    pub connections_per_scrape: f64,
    /// Body of one scrape; `None` for the floor, which exposes nothing.
    pub exposition_bytes: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SizeResult {
    pub flavor: String,
    pub segments: u32,
    pub targets: Vec<TargetResult>,
    /// The floor's statements, timed one by one: where a round's time goes.
    pub floor_statements: Vec<StatementTiming>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakResult {
    pub flavor: String,
    pub segments: u32,
    pub rss_after_early_bytes: u64,
    pub early_scrapes: usize,
    pub rss_after_late_bytes: u64,
    pub late_scrapes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExporterResults {
    pub sizes: Vec<SizeResult>,
    pub soak: Option<SoakResult>,
}

pub fn run(plan: &ExporterPlan, bin_dir: &Path, work: &Path) -> Result<ExporterResults> {
    let mut sizes = Vec::new();
    let mut soak = None;
    for &flavor in &plan.flavors {
        for &segments in &plan.sizes {
            eprintln!("exporter benchmark: {flavor}, {segments} segments");
            let mut lab = CatalogLab::start(segments, flavor)?;
            sizes.push(measure_size(&mut lab, flavor, segments, plan.scrapes, bin_dir, work)?);
        }
    }
    if let (Some(plan_soak), Some(&flavor)) = (plan.soak, plan.flavors.first()) {
        eprintln!(
            "memory soak: {} scrapes of greenplum-exporter, {flavor}, {} segments",
            plan_soak.scrapes, plan_soak.segments
        );
        let lab = CatalogLab::start(plan_soak.segments, flavor)?;
        soak = Some(run_soak(&lab, flavor, plan_soak, bin_dir, work)?);
    }
    Ok(ExporterResults { sizes, soak })
}

fn measure_size(
    lab: &mut CatalogLab,
    flavor: Flavor,
    segments: u32,
    scrapes: usize,
    bin_dir: &Path,
    work: &Path,
) -> Result<SizeResult> {
    let (floor, floor_report) = measure_floor(lab, flavor, segments, scrapes)?;
    let mut targets = vec![floor];
    for target in [Target::GreenplumExporter, Target::PostgresExporter] {
        let exporter = start_exporter(target, lab.port(), flavor, bin_dir, work)?;
        targets.push(measure_http(
            lab,
            &exporter,
            target,
            flavor,
            segments,
            scrapes,
        )?);
    }
    Ok(SizeResult {
        flavor: flavor.to_string(),
        segments,
        targets,
        floor_statements: floor_report.statements,
    })
}

/// Runs the floor in a child process and converts its report.
fn measure_floor(
    lab: &mut CatalogLab,
    flavor: Flavor,
    segments: u32,
    rounds: usize,
) -> Result<(TargetResult, FloorReport)> {
    let before = lab.counters()?;
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let output = Command::new(&exe)
        .args(["floor", "--port", &lab.port().to_string()])
        .args(["--rounds", &rounds.to_string(), "--warmup", &WARMUP.to_string()])
        .output()
        .context("running the floor")?;
    if !output.status.success() {
        bail!(
            "the floor failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: FloorReport =
        serde_json::from_slice(&output.stdout).context("parsing the floor's report")?;
    let after = lab.counters()?;
    let per_round = report.statements.len() as u64;
    // Outside the measured rounds the floor ran version() once and the warm-up rounds.
    let setup = 1 + WARMUP as u64 * per_round;
    let statements = after.statements.saturating_sub(before.statements + setup);
    let divisor = rounds.max(1) as f64;
    let durations: Vec<Duration> = report
        .round_ms
        .iter()
        .map(|ms| Duration::from_secs_f64(ms / 1e3))
        .collect();
    let result = TargetResult {
        target: Target::Floor,
        flavor: flavor.to_string(),
        segments,
        latency: Latency::of(&durations).context("the floor measured no round")?,
        cpu_ms_per_scrape: report.cpu_seconds * 1e3 / divisor,
        peak_rss_bytes: report.peak_rss_bytes,
        statements_per_scrape: statements as f64 / divisor,
        // Its one connection, spread over the rounds it served.
        connections_per_scrape: (after.connections - before.connections) as f64 / divisor,
        exposition_bytes: None,
    };
    Ok((result, report))
}

/// A running exporter and the port it serves on.
struct Exporter {
    service: Service,
    port: u16,
}

fn start_exporter(
    target: Target,
    db_port: u16,
    flavor: Flavor,
    bin_dir: &Path,
    work: &Path,
) -> Result<Exporter> {
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let (name, command) = match target {
        Target::GreenplumExporter => {
            let mut c = Command::new(bin_dir.join(crate::binaries::EXPORTER));
            c.args(["--coordinator", &format!("127.0.0.1:{db_port}")])
                .args(["--db.user", "gpadmin", "--db.name", "postgres"])
                .args(["--web.listen-address", &listen, "--log.level", "warn"]);
            ("greenplum-exporter", c)
        }
        Target::PostgresExporter => {
            let queries = work.join(format!("queries-{flavor}.yaml"));
            let text = if flavor.is_gp6() {
                QUERIES_GP6
            } else {
                QUERIES_GP7
            };
            std::fs::write(&queries, text)
                .with_context(|| format!("writing {}", queries.display()))?;
            let mut c = Command::new(POSTGRES_EXPORTER);
            c.env(
                "DATA_SOURCE_NAME",
                format!("postgresql://gpadmin@127.0.0.1:{db_port}/postgres?sslmode=disable"),
            )
            .args(["--disable-default-metrics", "--disable-settings-metrics"])
            .arg("--extend.query-path")
            .arg(&queries)
            .args(["--web.listen-address", &listen, "--log.level", "warn"]);
            ("postgres_exporter", c)
        }
        Target::Floor => bail!("the floor is not an HTTP exporter"),
    };
    let mut service = Service::spawn(name, command, work)?;
    let scraper = Scraper::new(port);
    let marker = ready_marker(target);
    service.wait_ready(Duration::from_secs(60), || {
        scraper.scrape().is_ok_and(|s| s.body.contains(marker))
    })?;
    Ok(Exporter { service, port })
}

/// A series that only appears once the exporter has read the catalog.
fn ready_marker(target: Target) -> &'static str {
    match target {
        Target::GreenplumExporter => "greenplum_segment_up{",
        _ => "gp_segment_up{",
    }
}

fn measure_http(
    lab: &mut CatalogLab,
    exporter: &Exporter,
    target: Target,
    flavor: Flavor,
    segments: u32,
    scrapes: usize,
) -> Result<TargetResult> {
    let scraper = Scraper::new(exporter.port);
    let service = &exporter.service;
    let marker = ready_marker(target);
    for _ in 0..WARMUP {
        scraper.scrape()?;
    }
    let pid = service.pid();
    let before: Counters = lab.counters()?;
    let cpu_before = procfs::cpu_seconds(pid)?;
    let mut took = Vec::with_capacity(scrapes);
    let mut bytes = 0;
    for _ in 0..scrapes {
        let scrape = scraper.scrape()?;
        if !scrape.body.contains(marker) {
            bail!("{} answered a scrape without {marker}", service.name());
        }
        took.push(scrape.took);
        bytes = scrape.bytes;
    }
    let cpu = procfs::cpu_seconds(pid)? - cpu_before;
    let after = lab.counters()?;
    let memory = procfs::memory(pid)?;
    let divisor = scrapes.max(1) as f64;
    Ok(TargetResult {
        target,
        flavor: flavor.to_string(),
        segments,
        latency: Latency::of(&took).context("no scrape measured")?,
        cpu_ms_per_scrape: cpu * 1e3 / divisor,
        peak_rss_bytes: memory.peak_rss,
        statements_per_scrape: (after.statements - before.statements) as f64 / divisor,
        connections_per_scrape: (after.connections - before.connections) as f64 / divisor,
        exposition_bytes: Some(bytes),
    })
}

/// Resident memory of this exporter after `SOAK_EARLY` scrapes and after `soak.scrapes`.
fn run_soak(
    lab: &CatalogLab,
    flavor: Flavor,
    soak: Soak,
    bin_dir: &Path,
    work: &Path,
) -> Result<SoakResult> {
    let exporter = start_exporter(Target::GreenplumExporter, lab.port(), flavor, bin_dir, work)?;
    let scraper = Scraper::new(exporter.port);
    let pid = exporter.service.pid();
    let late = soak.scrapes.max(SOAK_EARLY);
    let mut early_rss = 0;
    for done in 1..=late {
        scraper.scrape()?;
        if done == SOAK_EARLY {
            early_rss = procfs::memory(pid)?.rss;
        }
        if done % 1000 == 0 {
            eprintln!("  {done} scrapes, RSS {} KiB", procfs::memory(pid)?.rss / 1024);
        }
    }
    Ok(SoakResult {
        flavor: flavor.to_string(),
        segments: soak.segments,
        rss_after_early_bytes: early_rss,
        early_scrapes: SOAK_EARLY,
        rss_after_late_bytes: procfs::memory(pid)?.rss,
        late_scrapes: late,
    })
}
