//! `greenplum-bench`: the exporter and the remediator side by side with what users would
//! run instead (issue 7). Prints markdown tables; see BENCHMARKS.md at the repository root.

mod binaries;
mod catalog_lab;
mod cli;
mod exporter_bench;
mod floor;
mod procfs;
mod report;
mod scrape;
mod service;
mod stats;
mod webhook_bench;

use anyhow::{Context, Result};
use clap::Parser;

use cli::{Cli, Command};

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Floor(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building the floor's runtime")?;
            runtime.block_on(floor::serve(args.port, args.warmup))
        }
        Command::Exporter(args) => cli::run(args, true, false),
        Command::Webhook(args) => cli::run(args, false, true),
        Command::All(args) => cli::run(args, true, true),
    }
}
