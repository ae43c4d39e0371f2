//! Command line and the top-level run: which parts, which sizes, where the tables go.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use gplab::Flavor;

use crate::binaries::{self, Profile};
use crate::exporter_bench::{self, ExporterPlan, Soak};
use crate::report::{self, Machine, Results};
use crate::webhook_bench::{self, WebhookPlan};

#[derive(Debug, Parser)]
#[command(
    name = "greenplum-bench",
    about = "The exporter and the remediator side by side with what users would run instead"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// greenplum-exporter vs postgres_exporter vs the floor on catalog-only labs.
    Exporter(RunArgs),
    /// greenplum-remediator's webhook vs Debian's webhook, driven by wrk.
    Webhook(RunArgs),
    /// Both.
    All(RunArgs),
    /// (internal) The floor's client: runs a round of the catalog SQL per line on stdin.
    #[command(hide = true)]
    Floor(FloorArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Catalog sizes in primaries (each has as many mirrors).
    #[arg(long, value_delimiter = ',', default_values_t = [16, 256, 2048])]
    pub sizes: Vec<u32>,
    /// Catalog shapes.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [Flavor::Gp6, Flavor::Gp7])]
    pub flavors: Vec<Flavor>,
    /// Measured scrapes per target and size (after 5 unmeasured ones).
    #[arg(long, default_value_t = 200)]
    pub scrapes: usize,
    /// Scrapes of the memory soak (RSS after 100 vs after this many); 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    pub soak_scrapes: usize,
    /// Catalog size of the memory soak (first flavor). Not 2,048 by default: there the lab's
    /// emulated per-segment WAL query alone takes ~0.45 s a round, 75 minutes for 10,000.
    #[arg(long, default_value_t = 256)]
    pub soak_segments: u32,
    /// Concurrent senders of the webhook benchmark.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    pub connections: Vec<u32>,
    /// Seconds of load per webhook point.
    #[arg(long, default_value_t = 15)]
    pub duration: u64,
    /// Tiny sizes and counts (16 segments, 20 scrapes, 2 s of load, no soak, debug builds):
    /// proves the benchmark still runs end to end; its figures mean nothing.
    #[arg(long)]
    pub smoke: bool,
    /// Write the markdown tables here too.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write every figure as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FloorArgs {
    #[arg(long)]
    pub port: u16,
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
}

impl RunArgs {
    fn exporter_plan(&self) -> ExporterPlan {
        if self.smoke {
            return ExporterPlan {
                flavors: self.flavors.clone(),
                sizes: vec![16],
                scrapes: 20,
                soak: None,
            };
        }
        ExporterPlan {
            flavors: self.flavors.clone(),
            sizes: self.sizes.clone(),
            scrapes: self.scrapes,
            soak: (self.soak_scrapes > 0).then_some(Soak {
                segments: self.soak_segments,
                scrapes: self.soak_scrapes,
            }),
        }
    }

    fn webhook_plan(&self) -> WebhookPlan {
        if self.smoke {
            return WebhookPlan {
                connections: vec![1, 4],
                duration: Duration::from_secs(2),
            };
        }
        WebhookPlan {
            connections: self.connections.clone(),
            duration: Duration::from_secs(self.duration),
        }
    }
}

pub fn run(args: RunArgs, exporter: bool, webhook: bool) -> Result<()> {
    let profile = if args.smoke {
        Profile::Debug
    } else {
        Profile::Release
    };
    let bin_dir = binaries::bin_dir(profile)?;
    let work = tempfile::Builder::new()
        .prefix("greenplum-bench-")
        .tempdir()
        .context("creating a work dir")?;
    let machine = Machine::now()?;
    let exporter_results = if exporter {
        Some(exporter_bench::run(
            &args.exporter_plan(),
            &bin_dir,
            work.path(),
        )?)
    } else {
        None
    };
    let load_after_exporter = exporter.then(report::load_average).transpose()?;
    let webhook_results = if webhook {
        Some(webhook_bench::run(
            &args.webhook_plan(),
            &bin_dir,
            work.path(),
        )?)
    } else {
        None
    };
    let results = Results {
        smoke: args.smoke,
        machine,
        load_after_exporter,
        load_after_webhook: webhook.then(report::load_average).transpose()?,
        exporter: exporter_results,
        webhook: webhook_results,
    };
    let markdown = report::markdown(&results);
    print!("{markdown}");
    if let Some(path) = &args.output {
        std::fs::write(path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&results)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
