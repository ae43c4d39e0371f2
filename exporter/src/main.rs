//! greenplum-exporter: tune malloc, parse the flags and run the command; the wiring lives in
//! the library (`run`), where tests can reach it.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::process::ExitCode;

use clap::Parser;
use greenplum_exporter::cli::Cli;
use greenplum_exporter::memory::tune_malloc;
use greenplum_exporter::run::{init_logging, run};

fn main() -> ExitCode {
    // Before the runtime starts its threads: see memory.rs.
    let refused = tune_malloc();
    exporter(refused)
}

#[tokio::main]
async fn exporter(refused_malloc_settings: Vec<&'static str>) -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    for setting in refused_malloc_settings {
        tracing::warn!(
            setting,
            "glibc refused a malloc setting; memory use may be higher"
        );
    }
    run(cli).await
}
