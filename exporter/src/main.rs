use std::process::ExitCode;

use clap::Parser;
use greenplum_exporter::cli::Cli;
use greenplum_exporter::run::{init_logging, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    run(cli).await
}
