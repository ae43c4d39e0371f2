//! `gpinitstandby`: start a configured standby (`-n`), create one (`-s HOST`), remove it (`-r`).

use std::path::PathBuf;

use clap::Parser;

use super::log::GpLog;
use crate::catalog::{self, Change, SegmentRow};
use crate::conn::{self, port_is_free};
use crate::error::{invalid, Result};
use crate::instance;
use crate::process;
use crate::state::{Instance, LabState};

#[derive(Debug, Parser)]
#[command(
    name = "gpinitstandby",
    about = "gplab stand-in for Greenplum's gpinitstandby"
)]
struct Args {
    /// Do not prompt.
    #[arg(short = 'a')]
    auto: bool,
    /// Start the configured standby.
    #[arg(short = 'n')]
    start: bool,
    /// Create a standby on HOST.
    #[arg(short = 's', value_name = "HOST")]
    host: Option<String>,
    /// Remove the standby.
    #[arg(short = 'r')]
    remove: bool,
    /// Port of the new standby.
    #[arg(short = 'P')]
    port: Option<u16>,
    /// Data directory of the new standby.
    #[arg(short = 'S')]
    datadir: Option<PathBuf>,
    #[arg(short = 'q', hide = true)]
    quiet: bool,
    #[arg(short = 'D', hide = true)]
    debug: bool,
    #[arg(long = "hba-hostnames", hide = true)]
    hba_hostnames: Option<String>,
}

pub fn main(argv: &[String]) -> i32 {
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return 2;
        }
    };
    let log = GpLog::new("gpinitstandby", "cdw");
    let result = super::lab_dir(&argv[0]).and_then(|dir| {
        let state = LabState::load(&dir)?;
        if args.start {
            start(&dir, &state, &log)
        } else if args.remove {
            remove(&dir, &state, &args, &log)
        } else if let Some(host) = &args.host {
            create(&dir, state, host, &args, &log)
        } else {
            invalid("one of -n, -s HOST or -r is required")
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            log.error(&format!("Failed to create standby: {e}"));
            log.error("Error initializing standby master");
            2
        }
    }
}

fn standby_row(port: u16) -> Result<Option<SegmentRow>> {
    Ok(catalog::read_segments_at(port)?
        .into_iter()
        .find(|r| r.content == -1 && r.role == 'm'))
}

fn start(dir: &std::path::Path, state: &LabState, log: &GpLog) -> Result<i32> {
    let Some(row) = standby_row(state.coordinator()?.port)? else {
        log.error("No standby master configured. Use the -s option to initialize a standby.");
        return Ok(2);
    };
    let inst = state.instance(row.dbid)?;
    // The real tool checks first and says only this, its typo included
    // (tests/lab/fixtures/greenplum-6.24.3/initstandby_n_running.txt).
    if process::is_running(&inst.datadir) {
        log.info("Standy master is already up and running.");
        return Ok(0);
    }
    log.info("Starting standby master");
    log.info(&format!(
        "Checking if standby master is running on host: {}  in directory: {}",
        row.hostname, row.datadir
    ));
    instance::start(dir, inst)?;
    log.info("Successfully started standby master");
    Ok(0)
}

fn remove(dir: &std::path::Path, state: &LabState, args: &Args, log: &GpLog) -> Result<i32> {
    let port = state.coordinator()?.port;
    let Some(row) = standby_row(port)? else {
        log.error("No standby master configured.");
        return Ok(2);
    };
    if !args.auto && !super::confirm("Do you want to continue with deleting the standby master?") {
        log.info("User abort requested, Exiting.");
        return Ok(1);
    }
    log.info("Removing standby master from catalog...");
    {
        let _guard = catalog::lock(dir)?;
        let mut change = Change::new();
        change.sql(format!(
            "DELETE FROM pg_catalog.gp_segment_configuration WHERE dbid = {}",
            row.dbid
        ));
        change.apply(port)?;
    }
    log.info("Database catalog updated successfully.");
    log.info("Stopping standby master on host");
    if let Ok(inst) = state.instance(row.dbid) {
        process::pg_ctl_stop(&inst.datadir, "fast")?;
    }
    let mut state = state.clone();
    state.instances.retain(|i| i.dbid != row.dbid);
    state.save(dir)?;
    crate::provision::set_sync_standby(port, false)?;
    log.info("Successfully removed standby master");
    Ok(0)
}

fn create(
    dir: &std::path::Path,
    mut state: LabState,
    host: &str,
    args: &Args,
    log: &GpLog,
) -> Result<i32> {
    let coordinator = state.coordinator()?.clone();
    if standby_row(coordinator.port)?.is_some() {
        log.error("Standby master already configured");
        return Ok(2);
    }
    // Hosts are symbolic and share one address: the default port is the first of the lab's
    // two coordinator ports that is free.
    let port = match args.port {
        Some(p) => p,
        None => [state.base_port + 1, state.base_port]
            .into_iter()
            .find(|p| *p != coordinator.port && port_is_free(*p))
            .map_or_else(|| invalid("no free port for the standby: pass -P"), Ok)?,
    };
    let dbid = catalog::read_segments_at(coordinator.port)?
        .iter()
        .map(|r| r.dbid)
        .chain(state.instances.iter().map(|i| i.dbid))
        .max()
        .unwrap_or(0)
        + 1;
    let datadir = args
        .datadir
        .clone()
        .unwrap_or_else(|| dir.join("data").join(format!("standby-dbid{dbid}")));
    if datadir.exists()
        && datadir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        log.error(&format!(
            "Data directory {} already exists on host {host}",
            datadir.display()
        ));
        return Ok(2);
    }
    log.info("Validating environment and parameters for standby initialization...");
    log.info(&format!(
        "Checking for data directory {} on {host}",
        datadir.display()
    ));
    log.info("------------------------------------------------------");
    log.info("Greenplum standby master initialization parameters");
    log.info("------------------------------------------------------");
    log.info(&format!(
        "Greenplum master hostname               = {}",
        coordinator.host
    ));
    log.info(&format!(
        "Greenplum master data directory         = {}",
        coordinator.datadir.display()
    ));
    log.info(&format!(
        "Greenplum master port                   = {}",
        coordinator.port
    ));
    log.info(&format!("Greenplum standby master hostname       = {host}"));
    log.info(&format!("Greenplum standby master port           = {port}"));
    log.info(&format!(
        "Greenplum standby master data directory = {}",
        datadir.display()
    ));
    log.info("Greenplum update system catalog         = On");
    if !args.auto && !super::confirm("Do you want to continue with standby master initialization?")
    {
        log.info("User abort requested, Exiting.");
        return Ok(1);
    }
    let inst = Instance {
        dbid,
        content: -1,
        preferred_role: 'm',
        host: host.to_string(),
        port,
        datadir: datadir.clone(),
    };
    log.info("Adding standby master to catalog...");
    {
        let _guard = catalog::lock(dir)?;
        let mut change = Change::new();
        change.sql(catalog::insert_row_sql(&SegmentRow {
            dbid,
            content: -1,
            role: 'm',
            preferred_role: 'm',
            mode: 's',
            status: 'u',
            port,
            hostname: host.to_string(),
            address: host.to_string(),
            datadir: datadir.display().to_string(),
        }));
        change.apply(coordinator.port)?;
    }
    log.info("Database catalog updated successfully.");
    state.instances.push(inst.clone());
    state.save(dir)?;
    log.info("Updating pg_hba.conf file...");
    log.info("pg_hba.conf files updated successfully.");
    instance::basebackup(&inst, coordinator.port)?;
    log.info("Starting standby master");
    log.info(&format!(
        "Checking if standby master is running on host: {host}  in directory: {}",
        datadir.display()
    ));
    instance::start(dir, &inst)?;
    crate::provision::wait_streaming(coordinator.port, std::time::Duration::from_secs(60))?;
    crate::provision::set_sync_standby(coordinator.port, true)?;
    let _ = conn::probe(port, std::time::Duration::from_secs(1));
    log.info("Cleaning up pg_hba.conf backup files...");
    log.info("Backup files of pg_hba.conf cleaned up successfully.");
    log.info(&format!("Successfully created standby master on {host}"));
    Ok(0)
}
