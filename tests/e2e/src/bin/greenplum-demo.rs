//! See it heal: starts a lab cluster (or, with `--greenplum real`, a real Greenplum 6.24.3 from
//! the shared assets), greenplum-exporter, greenplum-remediator, a real Prometheus and a real
//! Alertmanager, injects a fault and narrates what happens until the cluster is healthy again.
//! The stack then stays up for exploring until Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use greenplum_e2e::alertmanager::Alertmanager;
use greenplum_e2e::exporter::Exporter;
use greenplum_e2e::prometheus::Prometheus;
use greenplum_e2e::real::{RealCluster, RealVersion};
use greenplum_e2e::real_stack::RealStack;
use greenplum_e2e::real_story;
use greenplum_e2e::remediator::Remediator;
use greenplum_e2e::scenario::{self, Story};
use greenplum_e2e::stack::{Stack, StackConfig};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// Kill a primary: FTS fails over, the remediator recovers, then rebalances.
    Primary,
    /// Kill a mirror: FTS marks it down, the remediator recovers it.
    Mirror,
    /// Stop the standby coordinator: the remediator restarts it (`gpinitstandby -n`).
    Standby,
    /// Kill the coordinator: the remediator plans `gpactivatestandby` and waits for you.
    Coordinator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Greenplum {
    /// The lab: Greenplum's catalog and tools imitated on PostgreSQL 15 (needs nothing else).
    Lab,
    /// A real Greenplum 6.24.3 from ../shared/greenplum-6.24.3 (or GREENPLUM_SHARED_DIR), run
    /// as gpadmin; needs root. Scenarios: primary, coordinator.
    Real,
}

#[derive(Debug, Parser)]
#[command(about = "Start the whole stack on a lab or a real cluster, break it, and watch it heal")]
struct Args {
    #[arg(long, value_enum, default_value = "primary")]
    scenario: Scenario,
    /// Which Greenplum the story runs on.
    #[arg(long, value_enum, default_value = "lab")]
    greenplum: Greenplum,
    /// Where the stack keeps its configuration, logs, journal and data.
    #[arg(long, default_value = "/tmp/greenplum-demo")]
    dir: PathBuf,
    /// Divide the alert rules' `for:` durations (1 = the shipped rules exactly).
    #[arg(long, default_value_t = 4)]
    rule_speedup: u32,
    /// Coordinator scenario: approve the activation without waiting for a person.
    #[arg(long)]
    auto_approve: bool,
    /// Stop everything after the story instead of leaving the stack up.
    #[arg(long)]
    no_wait: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)?;
    }
    if args.greenplum == Greenplum::Real {
        return run_real(&args, &stop);
    }
    println!("Starting a 3-content lab cluster with a standby, the exporter, the remediator,");
    println!("Prometheus and Alertmanager in {} ...", args.dir.display());
    let stack = Stack::up(&StackConfig {
        dir: Some(args.dir.clone()),
        rule_speedup: args.rule_speedup,
        ..StackConfig::default()
    })?;
    print_urls(&stack);
    let mut story = Story::new(true);
    match args.scenario {
        Scenario::Primary => {
            let outcome = scenario::primary_failure(&stack, &mut story)?;
            println!(
                "\nJournal: {} recover and {} rebalance executed.",
                outcome.executed("recover").len(),
                outcome.executed("rebalance").len()
            );
        }
        Scenario::Mirror => {
            scenario::mirror_failure(&stack, &mut story)?;
        }
        Scenario::Standby => {
            scenario::standby_failure(&stack, &mut story)?;
        }
        Scenario::Coordinator => {
            if !args.auto_approve {
                print_approval_hint(&stack.remediator);
            }
            scenario::coordinator_failure(&stack, &mut story, args.auto_approve)?;
            if !args.auto_approve {
                wait_for_operator(&stack, &mut story, &stop)?;
            }
        }
    }
    if args.no_wait {
        return Ok(());
    }
    stay_up(&stop);
    println!("Stopping Prometheus, Alertmanager, the remediator, the exporter and the lab ...");
    drop(stack);
    Ok(())
}

/// The stories a real cluster can tell here: a primary, or the coordinator (with approval).
fn run_real(args: &Args, stop: &AtomicBool) -> Result<()> {
    if !matches!(args.scenario, Scenario::Primary | Scenario::Coordinator) {
        anyhow::bail!(
            "--greenplum real runs --scenario primary or coordinator; the others run on the lab"
        );
    }
    println!("Creating a real Greenplum 6.24.3 cluster (2 pairs and a standby) ...");
    let Some(cluster) = RealCluster::create(RealVersion::Gp6, 2, true)? else {
        anyhow::bail!(
            "no real Greenplum here (the line above says why); run without --greenplum real"
        );
    };
    std::fs::create_dir_all(&args.dir)?;
    println!(
        "Starting the exporter, the remediator (as gpadmin), Prometheus and Alertmanager in {} ...",
        args.dir.display()
    );
    let mut stack = RealStack::up(&cluster, &args.dir, args.rule_speedup)?;
    print_real_urls(&stack, &cluster);
    let mut story = Story::new(true);
    match args.scenario {
        Scenario::Coordinator => {
            if !args.auto_approve {
                print_approval_hint(&stack.remediator);
            }
            real_story::coordinator_failure(
                &cluster,
                &mut stack,
                &mut story,
                false,
                args.auto_approve,
            )?;
        }
        _ => {
            real_story::primary_failure(&cluster, &stack, &mut story)?;
        }
    }
    if !args.no_wait {
        stay_up(stop);
    }
    println!("Stopping Prometheus, Alertmanager, the remediator, the exporter and the cluster ...");
    drop(stack);
    drop(cluster);
    Ok(())
}

fn print_real_urls(stack: &RealStack, cluster: &RealCluster) {
    print_urls_of(
        &stack.prometheus,
        &stack.alertmanager,
        &stack.exporter,
        &stack.remediator,
        &format!(
            "Greenplum      su gpadmin -c 'source {}/env.sh; gpstate -s' (coordinator port {})",
            cluster.dir().display(),
            cluster.coordinator_port()
        ),
        stack.dir(),
    );
}

/// How to approve from another shell, with this remediator's address and token file.
fn print_approval_hint(remediator: &Remediator) {
    let cli = remediator_cli();
    let (url, token) = (remediator.address(), remediator.token_file().display());
    println!(
        "\nWhen the activation waits for approval, approve it from another shell:\n  \
         {cli} actions list --state awaiting_approval --url http://{url} --auth.token-file {token}\n  \
         {cli} actions approve ID --reason 'old coordinator host is dead' --url http://{url} --auth.token-file {token}\n"
    );
}

/// Keeps the stack up for exploring until Ctrl-C.
fn stay_up(stop: &AtomicBool) {
    println!(
        "\nThe stack stays up for you to explore (URLs above). Press Ctrl-C to stop everything."
    );
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn remediator_cli() -> String {
    greenplum_e2e::bins::binary("greenplum-remediator")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "greenplum-remediator".into())
}

/// Coordinator scenario without --auto-approve: wait until a person approved and the exporter
/// follows the new coordinator.
fn wait_for_operator(stack: &Stack, story: &mut Story, stop: &AtomicBool) -> Result<()> {
    println!("Waiting for your approval (Ctrl-C to give up) ...");
    let standby = format!("127.0.0.1:{}", stack.lab.standby_port().unwrap_or(0));
    while !stop.load(Ordering::SeqCst) {
        if scenario::coordinator_endpoints(stack)? == vec![standby.clone()] {
            story.say(format!(
                "approved and activated: the exporter follows the new coordinator {standby}"
            ));
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

fn print_urls(stack: &Stack) {
    print_urls_of(
        &stack.prometheus,
        &stack.alertmanager,
        &stack.exporter,
        &stack.remediator,
        &format!(
            "Lab            GPLAB_DIR={} (coordinator port {})",
            stack.lab.dir().display(),
            stack.lab.coordinator_port()
        ),
        stack.dir(),
    );
}

/// Where everything the demo started can be reached; `cluster` is the cluster's own line.
fn print_urls_of(
    prometheus: &Prometheus,
    alertmanager: &Alertmanager,
    exporter: &Exporter,
    remediator: &Remediator,
    cluster: &str,
    dir: &std::path::Path,
) {
    println!(
        "\n  Prometheus     {}  (alerts: {}/alerts)",
        prometheus.url(),
        prometheus.url()
    );
    println!("  Alertmanager   {}", alertmanager.url());
    println!("  Exporter       http://{}/metrics", exporter.address());
    println!(
        "  Remediator     http://{}/api/v1/actions  (bearer token in {})",
        remediator.address(),
        remediator.token_file().display()
    );
    println!("  {cluster}");
    println!("  Logs, policy, journal: {}\n", dir.display());
}
