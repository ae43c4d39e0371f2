//! The exporter benchmark: per flavor and size, one catalog-only lab, and on it the floor,
//! this exporter and postgres_exporter, their rounds interleaved, each measured the same way.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use gplab::Flavor;
use serde::{Deserialize, Serialize};

use crate::catalog_lab::{CatalogLab, Counters};
use crate::floor::{self, FloorReady, FloorRound, StatementTiming};
use crate::procfs;
use crate::scrape::Scraper;
use crate::service::{free_port, Service};
use crate::stats::Latency;

const QUERIES_GP6: &str = include_str!("../postgres_exporter/queries-gp6.yaml");
const QUERIES_GP7: &str = include_str!("../postgres_exporter/queries-gp7.yaml");
const POSTGRES_EXPORTER: &str = "prometheus-postgres-exporter";
/// Unmeasured scrapes first: connections, version detection, allocator warm-up.
const WARMUP: usize = 5;
/// Rounds of each target alone around which the server-side counters are read.
const COUNT_ROUNDS: usize = 10;
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
            sizes.push(measure_size(
                &mut lab,
                flavor,
                segments,
                plan.scrapes,
                bin_dir,
                work,
            )?);
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
    let mut floor = FloorChild::start(lab.port())?;
    let ours = start_exporter(Target::GreenplumExporter, lab.port(), flavor, bin_dir, work)?;
    let theirs = start_exporter(Target::PostgresExporter, lab.port(), flavor, bin_dir, work)?;
    let mut runners = [
        Runner::floor(&mut floor),
        Runner::http(Target::GreenplumExporter, &ours),
        Runner::http(Target::PostgresExporter, &theirs),
    ];
    for runner in runners.iter_mut() {
        for _ in 0..WARMUP {
            runner.once()?;
        }
    }
    // Server-side counters cannot tell the three clients apart, so they are read around a
    // short run of each target alone.
    let count_rounds = COUNT_ROUNDS.min(scrapes).max(1);
    let mut counts = Vec::new();
    for runner in runners.iter_mut() {
        let before = lab.counters()?;
        for _ in 0..count_rounds {
            runner.once()?;
        }
        let after = lab.counters()?;
        counts.push(per_round(before, after, count_rounds));
    }
    // Timed rounds interleave the targets, rotating who goes first, so that all three meet
    // the same machine load: the ratios stay meaningful on a busy machine.
    let cpu_before = runners
        .iter()
        .map(|r| procfs::cpu_seconds(r.pid()))
        .collect::<Result<Vec<_>>>()?;
    let mut took = vec![Vec::with_capacity(scrapes); runners.len()];
    for i in 0..scrapes {
        for k in 0..runners.len() {
            let which = (i + k) % runners.len();
            took[which].push(runners[which].once()?);
        }
    }
    let divisor = scrapes.max(1) as f64;
    let mut targets = Vec::new();
    for (i, runner) in runners.iter().enumerate() {
        let cpu = procfs::cpu_seconds(runner.pid())? - cpu_before[i];
        let (statements, connections) = counts[i];
        targets.push(TargetResult {
            target: runner.target,
            flavor: flavor.to_string(),
            segments,
            latency: Latency::of(&took[i]).context("no round measured")?,
            cpu_ms_per_scrape: cpu * 1e3 / divisor,
            peak_rss_bytes: procfs::memory(runner.pid())?.peak_rss,
            statements_per_scrape: statements,
            connections_per_scrape: connections,
            exposition_bytes: runner.bytes,
        });
    }
    drop(runners);
    let floor_statements = floor.statement_timings(scrapes);
    Ok(SizeResult {
        flavor: flavor.to_string(),
        segments,
        targets,
        floor_statements,
    })
}

fn per_round(before: Counters, after: Counters, rounds: usize) -> (f64, f64) {
    let divisor = rounds as f64;
    (
        after.statements.saturating_sub(before.statements) as f64 / divisor,
        after.connections.saturating_sub(before.connections) as f64 / divisor,
    )
}

/// The floor's child process, driven a round at a time.
struct FloorChild {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    names: Vec<String>,
    rounds: Vec<FloorRound>,
}

impl FloorChild {
    fn start(port: u16) -> Result<FloorChild> {
        let exe = std::env::current_exe().context("locating the benchmark binary")?;
        let mut child = Command::new(&exe)
            .args(["floor", "--port", &port.to_string()])
            .args(["--warmup", &WARMUP.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the floor")?;
        let input = child.stdin.take().context("the floor's stdin")?;
        let output = BufReader::new(child.stdout.take().context("the floor's stdout")?);
        let mut floor = FloorChild {
            child,
            input,
            output,
            names: Vec::new(),
            rounds: Vec::new(),
        };
        let ready: FloorReady = floor.read_line()?;
        floor.names = ready.statements;
        Ok(floor)
    }

    fn round(&mut self) -> Result<Duration> {
        writeln!(self.input).context("asking the floor for a round")?;
        self.input.flush().context("asking the floor for a round")?;
        let round: FloorRound = self.read_line()?;
        let took = Duration::from_secs_f64(round.ms / 1e3);
        self.rounds.push(round);
        Ok(took)
    }

    fn read_line<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T> {
        let mut line = String::new();
        if self
            .output
            .read_line(&mut line)
            .context("reading the floor")?
            == 0
        {
            let status = self.child.wait().context("waiting for the floor")?;
            bail!("the floor exited ({status}); its errors are above");
        }
        serde_json::from_str(&line).with_context(|| format!("parsing the floor's line {line:?}"))
    }

    /// Per-statement means over the last `measured` rounds (the interleaved ones).
    fn statement_timings(&self, measured: usize) -> Vec<StatementTiming> {
        let from = self.rounds.len().saturating_sub(measured);
        floor::statement_timings(&self.names, &self.rounds[from..])
    }
}

impl Drop for FloorChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One target as the timed loop sees it: something that runs a round and has a pid.
struct Runner<'a> {
    target: Target,
    kind: RunnerKind<'a>,
    /// Body size of the latest scrape (exporters only).
    bytes: Option<usize>,
}

enum RunnerKind<'a> {
    Floor(&'a mut FloorChild),
    Http {
        scraper: Scraper,
        pid: u32,
        marker: &'static str,
        name: &'a str,
    },
}

impl<'a> Runner<'a> {
    fn floor(floor: &'a mut FloorChild) -> Runner<'a> {
        Runner {
            target: Target::Floor,
            kind: RunnerKind::Floor(floor),
            bytes: None,
        }
    }

    fn http(target: Target, exporter: &'a Exporter) -> Runner<'a> {
        Runner {
            target,
            kind: RunnerKind::Http {
                scraper: Scraper::new(exporter.port),
                pid: exporter.service.pid(),
                marker: ready_marker(target),
                name: exporter.service.name(),
            },
            bytes: None,
        }
    }

    fn pid(&self) -> u32 {
        match &self.kind {
            RunnerKind::Floor(floor) => floor.child.id(),
            RunnerKind::Http { pid, .. } => *pid,
        }
    }

    fn once(&mut self) -> Result<Duration> {
        match &mut self.kind {
            RunnerKind::Floor(floor) => floor.round(),
            RunnerKind::Http {
                scraper,
                marker,
                name,
                ..
            } => {
                let scrape = scraper.scrape()?;
                if !scrape.body.contains(*marker) {
                    bail!("{name} answered a scrape without {marker}");
                }
                self.bytes = Some(scrape.bytes);
                Ok(scrape.took)
            }
        }
    }
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
            eprintln!(
                "  {done} scrapes, RSS {} KiB",
                procfs::memory(pid)?.rss / 1024
            );
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
