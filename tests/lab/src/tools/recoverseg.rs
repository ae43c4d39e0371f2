//! `gprecoverseg`: incremental (pg_rewind) or full (`-F`, pg_basebackup) recovery of down
//! instances, rebalancing (`-r`), and the recovery plan (`-o FILE`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;

use super::log::GpLog;
use crate::catalog::{self, Change, SegmentRow};
use crate::conn::{self, Probe};
use crate::error::{invalid, Context, Result};
use crate::instance;
use crate::process;
use crate::state::LabState;

#[derive(Debug, Parser)]
#[command(
    name = "gprecoverseg",
    about = "gplab stand-in for Greenplum's gprecoverseg"
)]
struct Args {
    /// Do not prompt.
    #[arg(short = 'a')]
    auto: bool,
    /// Full recovery: delete the failed instance's data directory and copy it anew.
    #[arg(short = 'F')]
    full: bool,
    /// Rebalance: return every pair to its preferred roles.
    #[arg(short = 'r')]
    rebalance: bool,
    /// Write the recovery plan to FILE and do nothing else.
    #[arg(short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Coordinator data directory (default: $COORDINATOR_DATA_DIRECTORY).
    #[arg(short = 'd')]
    coordinator_dir: Option<PathBuf>,
    #[arg(short = 'B', hide = true)]
    batch: Option<u32>,
    #[arg(short = 'b', hide = true)]
    segment_batch: Option<u32>,
    #[arg(short = 'v', hide = true)]
    verbose: bool,
    #[arg(short = 'q', hide = true)]
    quiet: bool,
    #[arg(short = 's', hide = true)]
    sequential_progress: bool,
    #[arg(long = "no-progress", hide = true)]
    no_progress: bool,
    #[arg(long = "differential", hide = true)]
    differential: bool,
    #[arg(long = "hba-hostnames", hide = true)]
    hba_hostnames: Option<String>,
    #[arg(short = 'l', hide = true)]
    logdir: Option<PathBuf>,
}

pub fn main(argv: &[String]) -> i32 {
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return 2;
        }
    };
    let log = GpLog::new("gprecoverseg", "cdw");
    log.info(&format!(
        "Starting gprecoverseg with args: {}",
        argv[1..].join(" ")
    ));
    match run(&argv[0], &args, &log) {
        Ok(code) => code,
        Err(e) => {
            log.error(&format!("gprecoverseg failed. (Reason='{e}') exiting..."));
            1
        }
    }
}

/// `$COORDINATOR_DATA_DIRECTORY/gprecoverseg.lock`, a directory with the holder's pid, as
/// gpMgmt's SimpleMainLock keeps it. Removed when the run ends, however it ends.
struct RunLock(PathBuf);

impl RunLock {
    /// Ok(None) when another run holds it (its pid is returned in the Err branch).
    fn acquire(coordinator_dir: &Path) -> Result<std::result::Result<RunLock, String>> {
        let dir = coordinator_dir.join("gprecoverseg.lock");
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::write(dir.join("PID"), std::process::id().to_string())
                    .ctx(|| format!("writing {}/PID", dir.display()))?;
                Ok(Ok(RunLock(dir)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let pid = fs::read_to_string(dir.join("PID")).unwrap_or_default();
                Ok(Err(pid.trim().to_string()))
            }
            Err(e) => Err(crate::Error::Io {
                context: format!("creating {}", dir.display()),
                source: e,
            }),
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(argv0: &str, args: &Args, log: &GpLog) -> Result<i32> {
    let dir = super::lab_dir(argv0)?;
    let state = LabState::load(&dir)?;
    let coordinator = state.coordinator()?.clone();
    let flavor = state.config.flavor;
    log.info(&format!(
        "local Greenplum Version: '{}'",
        flavor.local_version()
    ));
    let mut client = conn::connect(coordinator.port)?;
    let version: String = client
        .query_one("SELECT version()", &[])
        .ctx(|| "reading version()".into())?
        .get(0);
    log.info(&format!("master Greenplum Version: '{version}'"));
    log.info("Obtaining Segment details from master...");

    let coordinator_dir = args
        .coordinator_dir
        .clone()
        .unwrap_or(coordinator.datadir.clone());
    let _lock = match RunLock::acquire(&coordinator_dir)? {
        Ok(l) => l,
        Err(pid) => {
            let path = coordinator_dir.join("gprecoverseg.lock");
            log.error(&format!(
                "Lockfile {} indicates that an instance of gprecoverseg is already running with PID {pid}",
                path.display()
            ));
            log.error(&format!(
                "If this is not the case, remove the lockfile directory at {}",
                path.display()
            ));
            // gpMgmt's simple_main returns here: the exit code is 0.
            return Ok(0);
        }
    };

    let rows = catalog::read_segments(&mut client)?;
    if let Some(fault) = double_fault(&rows) {
        log.error(&fault);
        return Ok(1);
    }
    if args.rebalance {
        return rebalance(&dir, &state, &rows, log);
    }
    let down: Vec<SegmentRow> = rows
        .iter()
        .filter(|r| r.content >= 0 && !r.is_up())
        .cloned()
        .collect();
    if let Some(file) = &args.output {
        let plan: String = down
            .iter()
            .map(|r| format!("{}|{}|{}\n", r.address, r.port, r.datadir))
            .collect();
        fs::write(file, plan).ctx(|| format!("writing the recovery plan to {}", file.display()))?;
        log.info(&format!(
            "Configuration file output to {} successfully.",
            file.display()
        ));
        return Ok(0);
    }
    if down.is_empty() {
        log.info("No segments to recover");
        return Ok(0);
    }
    print_plan(log, &rows, &down, args.full);
    if !args.auto && !super::confirm("Continue with segment recovery procedure") {
        log.info("User abort requested, Exiting.");
        return Ok(1);
    }
    recover(&dir, &state, &rows, &down, args.full, log)?;
    log.info("********************************");
    log.info("Segments successfully recovered.");
    log.info("********************************");
    log.info("Recovered mirror segments need to sync WAL with primary segments.");
    log.info("Use 'gpstate -e' to check progress of WAL sync remaining bytes");
    Ok(0)
}

/// A content whose acting primary does not answer has no source to recover from.
fn double_fault(rows: &[SegmentRow]) -> Option<String> {
    let mut contents: Vec<i16> = rows.iter().map(|r| r.content).filter(|c| *c >= 0).collect();
    contents.dedup();
    for c in contents {
        let (p, m) = catalog::pair(rows, c);
        let primary_alive = p
            .is_some_and(|p| p.is_up() && conn::probe(p.port, Duration::from_secs(3)) == Probe::Up);
        if !primary_alive {
            let ids: Vec<String> = [p, m]
                .iter()
                .flatten()
                .map(|r| r.dbid.to_string())
                .collect();
            return Some(format!(
                "Segment recovery cannot proceed: content {c} has no running primary (dbids {}): double fault. \
                 Both instances of the pair are down or the mirror is not in sync; recover the primary manually.",
                ids.join(", ")
            ));
        }
    }
    None
}

fn print_plan(log: &GpLog, rows: &[SegmentRow], down: &[SegmentRow], full: bool) {
    log.info("Greenplum instance recovery parameters");
    log.rule();
    log.info("Recovery type              = Standard");
    log.rule();
    for (i, r) in down.iter().enumerate() {
        let (source, _) = catalog::pair(rows, r.content);
        log.info(&format!("Recovery {} of {}", i + 1, down.len()));
        log.rule();
        log.info(&format!(
            "   Synchronization mode                 = {}",
            if full { "Full" } else { "Incremental" }
        ));
        log.info(&format!(
            "   Failed instance host                 = {}",
            r.hostname
        ));
        log.info(&format!(
            "   Failed instance address              = {}",
            r.address
        ));
        log.info(&format!(
            "   Failed instance directory            = {}",
            r.datadir
        ));
        log.info(&format!(
            "   Failed instance port                 = {}",
            r.port
        ));
        if let Some(s) = source {
            log.info(&format!(
                "   Recovery Source instance host        = {}",
                s.hostname
            ));
            log.info(&format!(
                "   Recovery Source instance address     = {}",
                s.address
            ));
            log.info(&format!(
                "   Recovery Source instance directory   = {}",
                s.datadir
            ));
            log.info(&format!(
                "   Recovery Source instance port        = {}",
                s.port
            ));
        }
        log.info("   Recovery Target                      = in-place");
        log.rule();
    }
}

/// Recovers each down instance as a mirror of its pair's acting primary.
fn recover(
    dir: &Path,
    state: &LabState,
    rows: &[SegmentRow],
    down: &[SegmentRow],
    full: bool,
    log: &GpLog,
) -> Result<()> {
    log.info(&format!("{} segment(s) to recover", down.len()));
    log.info(&format!(
        "Ensuring {} failed segment(s) are stopped",
        down.len()
    ));
    for r in down {
        process::pg_ctl_stop(Path::new(&r.datadir), "fast")?;
    }
    log.info("Setting up the required segments for recovery");
    log.info("Updating configuration for mirrors");
    log.info("Initiating segment recovery. Upon completion, will start the successfully recovered segments");
    for r in down {
        let (Some(source), _) = catalog::pair(rows, r.content) else {
            return invalid(format!("content {} has no acting primary", r.content));
        };
        let target = state.instance(r.dbid)?;
        let rewound = if full {
            instance::basebackup(target, source.port)?;
            true
        } else {
            instance::rewind(target, source.port)?
        };
        if rewound {
            println!("{} (dbid {}): Done!", r.hostname, r.dbid);
        } else {
            println!("{} (dbid {}): no rewind required", r.hostname, r.dbid);
        }
        instance::start(dir, target)?;
    }
    {
        let _guard = catalog::lock(dir)?;
        let mut change = Change::new();
        for r in down {
            change.set(r.dbid, 'm', 'u', 'n');
            if let (Some(p), _) = catalog::pair(rows, r.content) {
                change.set(p.dbid, 'p', 'u', 'n');
            }
        }
        change.apply(state.coordinator()?.port)?;
    }
    log.info("Triggering FTS probe");
    request_probe(state)
}

fn request_probe(state: &LabState) -> Result<()> {
    let mut c = conn::connect(state.coordinator()?.port)?;
    c.query_one("SELECT gp_request_fts_probe_scan()", &[])
        .ctx(|| "requesting an FTS probe".into())?;
    Ok(())
}

/// `-r`: for each pair up, in sync and out of its preferred roles, stop the acting primary so
/// FTS fails over to the preferred one, then recover the stopped instance incrementally.
/// Pairs not up and in sync are skipped with a warning and the tool still exits 0, as the real
/// one does (tests/lab/fixtures/greenplum-6.24.3/rebalance_pair_not_synchronized.txt).
fn rebalance(dir: &Path, state: &LabState, rows: &[SegmentRow], log: &GpLog) -> Result<i32> {
    let unbalanced: Vec<&SegmentRow> = rows
        .iter()
        .filter(|r| r.content >= 0 && !r.in_preferred_role())
        .collect();
    if unbalanced.is_empty() {
        // tests/lab/fixtures/greenplum-6.24.3/rebalance_balanced.txt: no banner, exit 0.
        log.info("No segments are running in their non-preferred role and need to be rebalanced.");
        return Ok(0);
    }
    log.info("Greenplum instance recovery parameters");
    log.rule();
    log.info("Recovery type              = Rebalance");
    log.rule();
    for (i, r) in unbalanced.iter().enumerate() {
        log.info(&format!(
            "Unbalanced segment {} of {}",
            i + 1,
            unbalanced.len()
        ));
        log.rule();
        log.info(&format!(
            "   Unbalanced instance host        = {}",
            r.hostname
        ));
        log.info(&format!(
            "   Unbalanced instance address     = {}",
            r.address
        ));
        log.info(&format!(
            "   Unbalanced instance directory   = {}",
            r.datadir
        ));
        log.info(&format!("   Unbalanced instance port        = {}", r.port));
        log.info(&format!(
            "   Balanced role                   = {}",
            role_name(r.preferred_role)
        ));
        log.info(&format!(
            "   Current role                    = {}",
            role_name(r.role)
        ));
        log.rule();
    }
    log.info("Determining primary and mirror segment pairs to rebalance");
    let to_stop: Vec<&SegmentRow> = unbalanced
        .iter()
        .copied()
        .filter(|r| r.role == 'p')
        .filter(|p| {
            let (_, m) = catalog::pair(rows, p.content);
            p.is_up() && p.mode == 's' && m.is_some_and(|m| m.is_up() && m.mode == 's')
        })
        .collect();
    for p in unbalanced.iter().filter(|r| r.role == 'p') {
        if !to_stop.iter().any(|s| s.dbid == p.dbid) {
            let mirror = catalog::pair(rows, p.content).1.map_or(-1, |m| m.dbid);
            log.warn(&format!(
                "Not rebalancing primary segment dbid {} with its mirror dbid {mirror} because \
                 one is either down, unreachable, or not synchronized",
                p.dbid
            ));
        }
    }
    if to_stop.is_empty() {
        log.info("No segments to rebalance");
    } else {
        log.info("Stopping unbalanced primary segments...");
        for p in &to_stop {
            process::pg_ctl_stop(Path::new(&p.datadir), "fast")?;
        }
        log.info("Triggering segment reconfiguration");
        let port = state.coordinator()?.port;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            request_probe(state)?;
            let now = catalog::read_segments_at(port)?;
            if to_stop.iter().all(|p| {
                now.iter()
                    .any(|r| r.dbid == p.dbid && r.role == 'm' && !r.is_up())
            }) {
                break;
            }
            if Instant::now() > deadline {
                return invalid("FTS did not fail the unbalanced primaries over within 120 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        log.info("Starting segment synchronization");
        log.info("=============================START ANOTHER RECOVER=========================================");
        log.info(&format!(
            "local Greenplum Version: '{}'",
            state.config.flavor.local_version()
        ));
        log.info("Obtaining Segment details from master...");
        let rows = catalog::read_segments_at(port)?;
        let down: Vec<SegmentRow> = rows
            .iter()
            .filter(|r| r.content >= 0 && !r.is_up())
            .cloned()
            .collect();
        print_plan(log, &rows, &down, false);
        recover(dir, state, &rows, &down, false, log)?;
        log.info("==============================END ANOTHER RECOVER==========================================");
    }
    log.info("******************************************************************");
    log.info("The rebalance operation has completed successfully.");
    log.info("******************************************************************");
    Ok(0)
}

fn role_name(r: char) -> &'static str {
    if r == 'p' {
        "Primary"
    } else {
        "Mirror"
    }
}
