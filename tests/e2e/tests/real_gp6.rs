//! The exporter and the remediator against a real Greenplum 6.24.3 (issue 12): one cluster,
//! made once from `../shared/greenplum-6.24.3/` and shared by every scenario, which run in
//! order because each puts the one cluster in a state (the double fault last: it ends with the
//! cluster destroyed). Where the asset folder is absent, every scenario is reported ignored
//! after one `SKIP:` line.
//!
//! A custom harness (libtest-mimic): the cluster must be destroyed when the run ends, which a
//! `static` shared by ordinary `#[test]`s cannot promise.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use gplab::SegmentRow;
use greenplum_e2e::bins::binary;
use greenplum_e2e::doc_recipe;
use greenplum_e2e::exporter::Exporter;
use greenplum_e2e::process::wait_for;
use greenplum_e2e::real::{host_address, unavailable, RealCluster, RealVersion};
use greenplum_e2e::real_stack::{real_policy, RealStack};
use greenplum_e2e::real_story;
use greenplum_e2e::scenario::Story;
use libtest_mimic::{Arguments, Failed, Trial};

type Scenario = fn(&RealCluster) -> Result<()>;

/// In the order they run.
const SCENARIOS: &[(&str, Scenario)] = &[
    ("healthy_cluster_reads_like_the_catalog", healthy),
    ("primary_failover_and_gprecoverseg", primary_failover),
    (
        "operations_recipe_for_gp6_and_the_entry_db_login",
        operations_recipe,
    ),
    (
        "the_remediator_heals_a_primary_failure_with_the_real_tools",
        remediator_heals,
    ),
    (
        "coordinator_loss_activation_after_a_remediator_restart",
        coordinator_activation,
    ),
    (
        "double_fault_still_finds_the_coordinator",
        double_fault_coordinator,
    ),
];

fn main() {
    let mut args = Arguments::from_args();
    // One cluster, one state at a time.
    args.test_threads = Some(1);
    let skip = unavailable(RealVersion::Gp6);
    let cluster = if skip.is_some() || args.list {
        if let Some(why) = &skip {
            println!("SKIP: real Greenplum 6.24.3 tests: {why}");
        }
        None
    } else {
        match RealCluster::create(RealVersion::Gp6, 2, true) {
            Ok(cluster) => cluster.map(Arc::new),
            Err(e) => {
                eprintln!("creating the real cluster failed: {e:#}");
                std::process::exit(101);
            }
        }
    };
    let trials = SCENARIOS
        .iter()
        .map(|&(name, scenario)| {
            let cluster = cluster.clone();
            Trial::test(name, move || match cluster {
                Some(cluster) => scenario(&cluster).map_err(|e| Failed::from(format!("{e:#}"))),
                None => Ok(()),
            })
            .with_ignored_flag(skip.is_some())
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(cluster);
    conclusion.exit();
}

/// The value of the series `name` whose labels include every `label="value"` of `with`.
fn series(body: &str, name: &str, with: &[(&str, &str)]) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            with.iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .find_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
}

/// `greenplum-exporter check` against the cluster as the admin: exit code and output.
fn check(cluster: &RealCluster) -> Result<(i32, String)> {
    check_as(&cluster.endpoints(), &cluster.env())
}

/// `greenplum-exporter check` against `endpoints` with the libpq environment `env`.
fn check_as(endpoints: &[String], env: &[(String, String)]) -> Result<(i32, String)> {
    let mut command = Command::new(binary("greenplum-exporter")?);
    command.arg("check").arg("--connect-timeout=5s");
    command.args(endpoints.iter().map(|e| format!("--coordinator={e}")));
    command.envs(env.iter().cloned());
    let out = command
        .output()
        .context("running greenplum-exporter check")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

fn start_exporter(cluster: &RealCluster, dir: &std::path::Path) -> Result<Exporter> {
    Exporter::start(dir, &cluster.endpoints(), &cluster.env())
}

/// Every instance of the catalog has its `greenplum_segment_up` with the catalog's status.
fn segments_match(body: &str, rows: &[SegmentRow]) -> Result<()> {
    for row in rows.iter().filter(|r| r.content >= 0) {
        let dbid = row.dbid.to_string();
        let up = series(body, "greenplum_segment_up", &[("dbid", &dbid)]);
        let want = if row.status == 'u' { 1.0 } else { 0.0 };
        ensure!(
            up == Some(want),
            "dbid {dbid}: catalog {row:?}, exporter {up:?}\n{body}"
        );
        let primary = series(body, "greenplum_segment_is_primary", &[("dbid", &dbid)]);
        let want = if row.role == 'p' { 1.0 } else { 0.0 };
        ensure!(
            primary == Some(want),
            "dbid {dbid}: catalog {row:?}, exporter {primary:?}"
        );
    }
    Ok(())
}

fn healthy(cluster: &RealCluster) -> Result<()> {
    let (code, text) = check(cluster)?;
    ensure!(
        code == 0,
        "check exited {code} on a healthy cluster:\n{text}"
    );
    let dir = tempfile::tempdir()?;
    let exporter = start_exporter(cluster, dir.path())?;
    let body = exporter.scrape()?;
    ensure!(series(&body, "greenplum_up", &[]) == Some(1.0), "{body}");
    ensure!(
        series(&body, "greenplum_cluster_state", &[("state", "healthy")]) == Some(1.0),
        "{body}"
    );
    ensure!(
        series(&body, "greenplum_standby_sync", &[]) == Some(1.0),
        "{body}"
    );
    segments_match(&body, &cluster.segments(cluster.coordinator_port())?)?;
    // What gpstate says of the same cluster: no instance down, the standby passive.
    let gpstate = cluster.as_admin_ok("gpstate -s")?;
    ensure!(!gpstate.contains("Down"), "{gpstate}");
    Ok(())
}

fn primary_failover(cluster: &RealCluster) -> Result<()> {
    let port = cluster.coordinator_port();
    let rows = cluster.fail_primary(0)?;
    let dir = tempfile::tempdir()?;
    let exporter = start_exporter(cluster, dir.path())?;
    let body = exporter.scrape()?;
    segments_match(&body, &rows)?;
    ensure!(
        series(
            &body,
            "greenplum_cluster_state",
            &[("state", "unprotected")]
        ) == Some(1.0),
        "{body}"
    );
    let (code, text) = check(cluster)?;
    ensure!(
        code == 1,
        "check exited {code} with a primary down:\n{text}"
    );
    cluster.heal()?;
    let body = wait_for(
        "the exporter to see the healed cluster",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let body = exporter.scrape()?;
            Ok(
                (series(&body, "greenplum_cluster_state", &[("state", "healthy")]) == Some(1.0))
                    .then_some(body),
            )
        },
    )?;
    segments_match(&body, &cluster.segments(port)?)
}

/// Issue 12, bug 1: on GP6 a `SET` is dispatched to the segments and fails (58M01) while a
/// content has no primary, so a session set up with `SET`s cannot start in a double fault.
/// A fresh `check` and a fresh exporter must still find the coordinator.
fn double_fault_coordinator(cluster: &RealCluster) -> Result<()> {
    let port = cluster.coordinator_port();
    let rows = cluster.segments(port)?;
    let of_content = |role: char| {
        rows.iter()
            .find(|r| r.content == 1 && r.role == role)
            .cloned()
            .with_context(|| format!("no {role} of content 1"))
    };
    let (primary, mirror) = (of_content('p')?, of_content('m')?);
    cluster.kill_instance(&mirror.datadir)?;
    cluster.kill_instance(&primary.datadir)?;
    cluster.probe_until(
        "FTS sees the double fault",
        Duration::from_secs(90),
        |rows| rows.iter().any(|r| r.content == 1 && r.status == 'd'),
    )?;
    let (code, text) = check(cluster)?;
    ensure!(
        code != 2 && !text.contains("coordinator NONE"),
        "check lost the coordinator in a double fault (exit {code}):\n{text}"
    );
    let dir = tempfile::tempdir()?;
    let exporter = start_exporter(cluster, dir.path())?;
    let body = exporter.scrape()?;
    ensure!(series(&body, "greenplum_up", &[]) == Some(1.0), "{body}");
    ensure!(
        series(&body, "greenplum_contents_unavailable", &[]) == Some(1.0)
            || series(&body, "greenplum_contents_suspected_unavailable", &[]) == Some(1.0),
        "{body}"
    );
    Ok(())
}

/// Issue 12, bug 2, and docs/OPERATIONS.md's GP6 role and pg_hba.conf recipes as written
/// (addresses filled in; `hostssl` becomes `host`, this cluster has no server certificate).
/// With the password line alone, the coordinator's entry-db connection cannot log in: the
/// replication collector must fail with a clear message and a primary failover must not look
/// like a double fault. With the whole recipe, `check` passes on the healthy cluster.
fn operations_recipe(cluster: &RealCluster) -> Result<()> {
    let port = cluster.coordinator_port();
    let password = format!("pw{}", std::process::id());
    let role_sql =
        doc_recipe("docs/OPERATIONS.md", "gp6-role")?.replace("'...'", &format!("'{password}'"));
    let mut admin = cluster.connect(port)?;
    // GP6's psql honours one statement per call; the driver takes them one by one as well.
    for statement in role_sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        admin.batch_execute(statement)?;
    }
    let client = host_address()?;
    let hba = doc_recipe("docs/OPERATIONS.md", "gp6-hba")?
        .replace("COORDINATOR_ADDRESS", "127.0.0.1")
        .replace("10.0.0.15", &client)
        .replace("hostssl", "host   ");
    let password_line = hba
        .lines()
        .find(|l| l.contains(&client))
        .context("the recipe has no line for the exporter's host")?
        .to_string();
    let env = vec![
        ("PGUSER".to_string(), "greenplum_exporter".to_string()),
        ("PGPASSWORD".to_string(), password.clone()),
        ("PGDATABASE".to_string(), "postgres".to_string()),
    ];
    let endpoints: Vec<String> = cluster
        .endpoints()
        .iter()
        .map(|e| e.replace("127.0.0.1", &client))
        .collect();
    let dir = tempfile::tempdir()?;

    // The password line alone (what OPERATIONS.md used to say).
    let saved = cluster.prepend_hba(&password_line)?;
    let result = (|| -> Result<()> {
        let exporter = Exporter::start(dir.path(), &endpoints, &env)?;
        let body = exporter.scrape()?;
        ensure!(series(&body, "greenplum_up", &[]) == Some(1.0), "{body}");
        ensure!(
            series(
                &body,
                "greenplum_exporter_collector_success",
                &[("collector", "replication")]
            ) == Some(0.0),
            "{body}"
        );
        cluster.fail_primary(1)?;
        let body = exporter.scrape()?;
        ensure!(
            series(&body, "greenplum_contents_suspected_unavailable", &[]) == Some(0.0),
            "an ordinary failover read as a double fault:\n{body}"
        );
        ensure!(
            exporter.log().contains("pg_hba.conf or role problem"),
            "the collector error does not say what is wrong:\n{}",
            exporter.log()
        );
        cluster.heal()
    })();
    cluster.restore_hba(saved)?;
    result?;

    // The whole recipe: check passes on the healthy cluster.
    let saved = cluster.prepend_hba(&hba)?;
    let checked = check_as(&endpoints, &env);
    cluster.restore_hba(saved)?;
    admin.batch_execute("DROP ROLE greenplum_exporter")?;
    let (code, text) = checked?;
    ensure!(
        code == 0,
        "check with the OPERATIONS.md recipe exited {code} on a healthy cluster:\n{text}"
    );
    Ok(())
}

/// The whole stack on the real cluster: a primary dies, FTS fails it over, the shipped rules
/// fire in a real Prometheus, Alertmanager delivers, and the remediator (as gpadmin, local
/// executor) runs the real `gprecoverseg -a` and then `gprecoverseg -ar`; the cluster ends
/// healthy and balanced, as the catalog and `gpstate` say.
fn remediator_heals(cluster: &RealCluster) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("gp-real-stack-")
        .tempdir_in("/tmp")?;
    let stack = RealStack::up(cluster, dir.path(), 10)?;
    let mut story = Story::new(true);
    let (recover, rebalance) = real_story::primary_failure(cluster, &stack, &mut story)?;
    // The real tools ran: their own words are in the journalled output.
    for (record, words) in [
        (&recover, "Starting gprecoverseg with args: -a"),
        (
            &rebalance,
            "The rebalance operation has completed successfully.",
        ),
    ] {
        ensure!(record.to_string().contains(words), "{record:#}");
    }
    let gpstate = cluster.as_admin("gpstate -e")?;
    let text = String::from_utf8_lossy(&gpstate.stdout);
    // GP6's words for a healthy pair set (A_healthy.txt of the recorded fixtures).
    ensure!(text.contains("All segments are running normally"), "{text}");
    Ok(())
}

/// Issue 12, bugs 3 and 4, on a real cluster of its own (activation leaves no standby): the
/// policy names the endpoints `localhost:*` and the standby `127.0.0.1` (two spellings of one
/// address), and the remediator is restarted while the coordinator is down. It must still
/// plan the activation (the standby's journalled sighting, matched by address), wait for a
/// person, and run the real `gpactivatestandby` once approved.
fn coordinator_activation(_shared: &RealCluster) -> Result<()> {
    let cluster = RealCluster::create(RealVersion::Gp6, 1, true)?
        .context("the asset vanished during the run")?;
    let dir = tempfile::Builder::new()
        .prefix("gp-real-activation-")
        .tempdir_in("/tmp")?;
    let policy = real_policy(&cluster, "localhost")?;
    let mut stack = RealStack::up_with(&cluster, dir.path(), 10, &policy)?;
    let log = dir.path().join("remediator.log");
    wait_for(
        "the remediator to journal the standby in sync",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let text = strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default());
            Ok(text
                .lines()
                .any(|l| l.contains("standby sighting journalled") && l.contains("in_sync=true"))
                .then_some(()))
        },
    )
    .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;
    let mut story = Story::new(true);
    let planned = real_story::coordinator_failure(&cluster, &mut stack, &mut story, true, false)?;
    ensure!(
        planned
            .to_string()
            .contains("standby last seen streaming in sync"),
        "the approver is not shown the evidence: {planned:#}"
    );
    let id = planned["id"].as_i64().context("action without id")?;
    real_story::approve_activation(&stack.remediator, &mut story, id)?;
    let standby_port = cluster.standby_port().context("no standby port")?;
    let mut new = cluster.connect(standby_port)?;
    let in_recovery: bool = new.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
    ensure!(!in_recovery, "the old standby is still in recovery");
    let body = wait_for(
        "the exporter to follow the new coordinator",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let body = stack.exporter.scrape()?;
            Ok((series(&body, "greenplum_up", &[]) == Some(1.0)).then_some(body))
        },
    )?;
    ensure!(
        series(
            &body,
            "greenplum_endpoint_state",
            &[
                ("endpoint", &format!("127.0.0.1:{standby_port}")),
                ("state", "coordinator")
            ]
        ) == Some(1.0),
        "{body}"
    );
    Ok(())
}

/// The text of a log without its terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
