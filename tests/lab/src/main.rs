//! `gplab`: the lab's command line, and the tool stand-ins when called as `gprecoverseg`,
//! `gpinitstandby` or `gpactivatestandby`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use gplab::{Flavor, Lab, LabConfig, MirrorLayout};

#[derive(Debug, Parser)]
#[command(
    name = "gplab",
    version,
    about = "A Greenplum-shaped lab cluster on real PostgreSQL servers"
)]
struct Cli {
    /// The lab's state directory.
    #[arg(long, env = "GPLAB_DIR", global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a cluster: coordinator, standby, N contents of primary + mirror.
    Up {
        #[arg(long, default_value_t = 3)]
        contents: u16,
        #[arg(long, value_enum, default_value_t = Flavor::Gp6)]
        flavor: Flavor,
        #[arg(long)]
        no_standby: bool,
        #[arg(long, value_enum, default_value_t = MirrorLayout::Group)]
        mirrors: MirrorLayout,
        /// Segment hosts (default: min(contents, 3)).
        #[arg(long)]
        hosts: Option<u16>,
        #[arg(long)]
        base_port: Option<u16>,
        /// Seconds between FTS probes.
        #[arg(long, default_value_t = 60)]
        fts_interval: u64,
        /// Seconds a mirror may be gone before FTS marks it down.
        #[arg(long, default_value_t = 30)]
        mirror_grace: u64,
    },
    /// Stop the FTS daemon and every server (idempotent).
    Down,
    /// A gpstate-like summary.
    Status,
    /// Print the exports for the lab (`eval "$(gplab env)"`).
    Env,
    /// Stop an instance, a host, the coordinator or the standby (immediate).
    Fail {
        #[command(subcommand)]
        what: FailWhat,
    },
    /// Pause (on) or resume (off) WAL replay on the mirror of CONTENT.
    Lag {
        content: i16,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Insert ROWS rows spread over the contents.
    Load { rows: u64 },
    /// Digest and count of every committed row.
    Checksum,
    /// A catalog-only server for N segments (N primaries + N mirrors of synthetic rows).
    Catalog {
        #[arg(long)]
        segments: u32,
        #[arg(long, value_enum, default_value_t = Flavor::Gp6)]
        flavor: Flavor,
        #[arg(long)]
        port: Option<u16>,
    },
    /// The FTS loop (started by `up`).
    #[command(hide = true)]
    FtsDaemon {
        #[arg(long)]
        owner_pid: Option<i32>,
    },
}

#[derive(Debug, Subcommand)]
enum FailWhat {
    Primary { content: i16 },
    Mirror { content: i16 },
    Host { host: String },
    Coordinator,
    Standby,
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    if let Some(code) = gplab::tools::dispatch(&args) {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gplab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dir(cli: &Cli) -> Result<PathBuf> {
    cli.dir
        .clone()
        .context("no lab directory: pass --dir or set GPLAB_DIR")
}

fn run(cli: Cli) -> Result<()> {
    let dir = dir(&cli)?;
    match cli.command {
        Cmd::Up {
            contents,
            flavor,
            no_standby,
            mirrors,
            hosts,
            base_port,
            fts_interval,
            mirror_grace,
        } => {
            let config = LabConfig {
                contents,
                flavor,
                standby: !no_standby,
                mirrors,
                hosts: hosts.unwrap_or(contents.clamp(1, 3)),
                base_port,
                fts_interval: Duration::from_secs(fts_interval),
                mirror_grace: Duration::from_secs(mirror_grace),
            };
            let started = Instant::now();
            // A half-started lab is stopped by the dropped `Lab` inside `up_at`; stopping
            // servers here would take down a running lab whose `up` was refused.
            let lab = match Lab::up_at(config, &dir, None) {
                Ok(lab) => lab,
                Err(e) => bail!("starting the lab in {}: {e}", dir.display()),
            };
            // Detached first: the lab must outlive this process whatever happens to stdout.
            lab.detach();
            println!("gplab: up in {:.1} s", started.elapsed().as_secs_f64());
            print!("{}", gplab::status::render(&dir)?);
            println!("eval \"$(gplab env --dir {})\"", dir.display());
        }
        Cmd::Down => gplab::stop_servers(&dir),
        Cmd::Status => print!("{}", gplab::status::render(&dir)?),
        Cmd::Env => {
            for (k, v) in Lab::open(&dir)?.env() {
                println!("export {k}={}", shell_quote(&v));
            }
        }
        Cmd::Fail { what } => {
            let lab = Lab::open(&dir)?;
            match what {
                FailWhat::Primary { content } => lab.fail_primary(content)?,
                FailWhat::Mirror { content } => lab.fail_mirror(content)?,
                FailWhat::Host { host } => lab.fail_host(&host)?,
                FailWhat::Coordinator => lab.fail_coordinator()?,
                FailWhat::Standby => lab.fail_standby()?,
            }
        }
        Cmd::Lag { content, state } => Lab::open(&dir)?.lag(content, state == "on")?,
        Cmd::Load { rows } => {
            let n = Lab::open(&dir)?.load(rows)?;
            println!("loaded {n} rows");
        }
        Cmd::Checksum => println!("{}", Lab::open(&dir)?.checksum()?),
        Cmd::Catalog {
            segments,
            flavor,
            port,
        } => {
            let lab = Lab::catalog_only_at(segments, flavor, &dir, port)?;
            println!(
                "gplab: catalog of {segments} primaries + {segments} mirrors ({flavor}) on port {}",
                lab.coordinator_port()
            );
            lab.detach();
        }
        Cmd::FtsDaemon { owner_pid } => gplab::fts::run_daemon(&dir, owner_pid)?,
    }
    Ok(())
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
