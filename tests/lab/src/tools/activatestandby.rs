//! `gpactivatestandby -a -d DIR [-f]`: promote the standby at DIR to coordinator.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use super::log::GpLog;
use crate::catalog::{self, Change};
use crate::conn::{self, Probe};
use crate::error::{invalid, Context, Result};
use crate::process;
use crate::provision::set_sync_standby;
use crate::state::LabState;

#[derive(Debug, Parser)]
#[command(
    name = "gpactivatestandby",
    about = "gplab stand-in for Greenplum's gpactivatestandby"
)]
struct Args {
    /// Do not prompt.
    #[arg(short = 'a')]
    auto: bool,
    /// Data directory of the standby to activate.
    #[arg(short = 'd', value_name = "DIR")]
    datadir: PathBuf,
    /// Activate even though the old coordinator still answers.
    #[arg(short = 'f')]
    force: bool,
    #[arg(short = 'q', hide = true)]
    quiet: bool,
    #[arg(short = 'v', hide = true)]
    verbose: bool,
}

pub fn main(argv: &[String]) -> i32 {
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return 2;
        }
    };
    let log = GpLog::new("gpactivatestandby", "scdw");
    match run(&argv[0], &args, &log) {
        Ok(code) => code,
        Err(e) => {
            log.critical(&format!("Error activating standby master: {e}"));
            2
        }
    }
}

fn run(argv0: &str, args: &Args, log: &GpLog) -> Result<i32> {
    let dir = super::lab_dir(argv0)?;
    let mut state = LabState::load(&dir)?;
    let Some(standby) = state.by_datadir(&args.datadir).cloned() else {
        return invalid(format!(
            "{} is not the data directory of an instance of this lab",
            args.datadir.display()
        ));
    };
    if standby.content != -1 || standby.dbid == state.acting_coordinator {
        return invalid(format!(
            "{} is not a standby coordinator",
            args.datadir.display()
        ));
    }
    // The real tool takes the port from PGPORT, not from the standby: keep that trap.
    let pgport: Option<u16> = std::env::var("PGPORT").ok().and_then(|p| p.parse().ok());
    let running = process::is_running(&standby.datadir);
    log.info("------------------------------------------------------");
    log.info(&format!(
        "Standby data directory    = {}",
        standby.datadir.display()
    ));
    log.info(&format!(
        "Standby port              = {}",
        pgport.map(|p| p.to_string()).unwrap_or_default()
    ));
    log.info(&format!(
        "Standby running           = {}",
        if running { "yes" } else { "no" }
    ));
    log.info(&format!(
        "Force standby activation  = {}",
        if args.force { "yes" } else { "no" }
    ));
    log.info("------------------------------------------------------");
    if !args.auto && !super::confirm("Do you want to continue with standby master activation?") {
        log.info("User abort requested, Exiting.");
        return Ok(1);
    }
    if !running {
        log.critical("Standby postmaster is not running: start it with gpinitstandby -n first.");
        return Ok(2);
    }
    log.info("found standby postmaster process");
    let old = state.coordinator()?.clone();
    if !args.force && conn::probe(old.port, Duration::from_secs(3)) == Probe::Up {
        log.critical(&format!(
            "Error activating standby master: the master on port {} is still running; stop it first or use -f",
            old.port
        ));
        return Ok(2);
    }
    log.info("Promoting standby...");
    process::pg_ctl_promote(&standby.datadir)?;
    // Nothing streams from the new coordinator yet.
    set_sync_standby(standby.port, false)?;
    {
        // What the promoted server does to its own catalog in Greenplum: the old coordinator's
        // row goes, the standby's row becomes the coordinator's.
        let _guard = catalog::lock(&dir)?;
        let mut change = Change::new();
        change.sql(format!(
            "DELETE FROM pg_catalog.gp_segment_configuration WHERE content = -1 AND dbid <> {}",
            standby.dbid
        ));
        change.sql(format!(
            "UPDATE pg_catalog.gp_segment_configuration SET role = 'p', preferred_role = 'p', mode = 's', status = 'u' WHERE dbid = {}",
            standby.dbid
        ));
        change.sql(format!(
            "UPDATE pg_catalog.gp_id SET dbid = {}",
            standby.dbid
        ));
        change.apply(standby.port)?;
        state.acting_coordinator = standby.dbid;
        state.instances.retain(|i| i.dbid != old.dbid);
        // `down` must still stop the old coordinator if someone restarts it.
        state.retired.push(old.datadir.clone());
        state.save(&dir)?;
    }
    log.info("Standby master is promoted");
    let timeout = std::env::var("GPLAB_ACTIVATE_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600u64);
    let port = pgport.unwrap_or(standby.port);
    if !wait_coordinator(port, Duration::from_secs(timeout)) {
        log.critical("Error activating standby master: Either the set port is incorrect or the postmaster could not come up.");
        return Ok(2);
    }
    log.info("Reading current configuration...");
    let _ = conn::connect(standby.port).and_then(|mut c| {
        c.query_one("SELECT 1", &[])
            .ctx(|| "checking the new master".into())
    });
    for line in [
        "------------------------------------------------------".to_string(),
        "The activation of the standby master has completed successfully.".into(),
        format!("{} is now the new primary master.", standby.host),
        "You will need to update your user access mechanism to reflect".into(),
        "the change of master hostname.".into(),
        "Do not re-start the failed master while the fail-over master is".into(),
        "operational, this could result in database corruption!".into(),
        format!(
            "MASTER_DATA_DIRECTORY is now {} if",
            standby.datadir.display()
        ),
        "this has changed as a result of the standby master activation, remember".into(),
        "to change this in any startup scripts etc, that may be configured".into(),
        "to set this value.".into(),
        format!(
            "MASTER_PORT is now {}, if this has changed, you",
            standby.port
        ),
        "may need to make additional configuration changes to allow access".into(),
        "to the Greenplum instance.".into(),
        "------------------------------------------------------".into(),
    ] {
        log.info(&line);
    }
    Ok(0)
}

/// Waits until a server on `port` logs in and is not in recovery.
fn wait_coordinator(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut c) = conn::connect(port) {
            if let Ok(row) = c.query_one("SELECT NOT pg_is_in_recovery()", &[]) {
                if row.get::<_, bool>(0) {
                    return true;
                }
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
