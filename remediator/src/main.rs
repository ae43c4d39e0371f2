//! greenplum-remediator: parse the flags and run the command; the wiring lives in the
//! library (`run`), where tests can reach it.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::process::ExitCode;

use clap::Parser;
use greenplum_remediator::cli::Cli;
use greenplum_remediator::run::run;

fn main() -> ExitCode {
    run(Cli::parse())
}
