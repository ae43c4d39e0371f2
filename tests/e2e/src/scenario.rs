//! The stories the demo tells and the end-to-end tests check: a fault is injected into the lab,
//! and each step waits for real evidence (the catalog, Prometheus' alerts, the remediator's
//! journal) and records when it happened. Waits are guards against hangs, never speed checks.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use gplab::SegmentRow;
use serde_json::Value;

use crate::process::wait_for;
use crate::stack::Stack;

const POLL: Duration = Duration::from_millis(500);
/// Guard for one step of a story.
const STEP: Duration = Duration::from_secs(300);

/// What happened, when, relative to the fault.
pub struct Story {
    start: Instant,
    steps: Vec<(Duration, String)>,
    narrate: bool,
}

impl Story {
    pub fn new(narrate: bool) -> Story {
        Story {
            start: Instant::now(),
            steps: Vec::new(),
            narrate,
        }
    }

    pub fn restart_clock(&mut self) {
        self.start = Instant::now();
    }

    pub fn say(&mut self, what: impl Into<String>) {
        let what = what.into();
        let at = self.start.elapsed();
        if self.narrate {
            println!("[{:>7.1}s] {what}", at.as_secs_f64());
        }
        self.steps.push((at, what));
    }

    pub fn steps(&self) -> &[(Duration, String)] {
        &self.steps
    }

    /// When the step whose text starts with `prefix` happened.
    pub fn at(&self, prefix: &str) -> Option<Duration> {
        self.steps
            .iter()
            .find(|(_, s)| s.starts_with(prefix))
            .map(|(d, _)| *d)
    }
}

/// What the primary-failure story observed, for assertions.
pub struct HealOutcome {
    pub failed_dbid: i16,
    pub checksum_before: String,
    pub checksum_after: String,
    /// Every action the journal holds, with details.
    pub actions: Vec<Value>,
}

impl HealOutcome {
    /// Actions of `kind` that ran a command.
    pub fn executed(&self, kind: &str) -> Vec<&Value> {
        self.actions
            .iter()
            .filter(|a| a["action"] == kind && !a["execution"].is_null())
            .collect()
    }
}

pub fn wait_healthy(stack: &Stack, story: &mut Story) -> Result<()> {
    wait_for(
        "the cluster to be healthy in Prometheus",
        STEP,
        POLL,
        || {
            let healthy = stack
                .prometheus
                .query(r#"greenplum_cluster_state{state="healthy"} == 1"#)?;
            Ok((!healthy.is_empty()).then_some(()))
        },
    )?;
    story
        .say("Prometheus sees a healthy cluster (greenplum_cluster_state{state=\"healthy\"} == 1)");
    Ok(())
}

pub fn acting_primary(rows: &[SegmentRow], content: i16) -> Option<&SegmentRow> {
    rows.iter().find(|s| s.content == content && s.role == 'p')
}

pub fn balanced_and_synchronized(rows: &[SegmentRow]) -> bool {
    rows.iter()
        .filter(|s| s.content >= 0)
        .all(|s| s.role == s.preferred_role && s.status == 'u' && s.mode == 's')
}

/// Waits for a firing alert named `alertname` whose labels satisfy `pick`.
pub fn wait_firing(
    stack: &Stack,
    alertname: &str,
    pick: impl Fn(&crate::prometheus::Alert) -> bool,
) -> Result<()> {
    wait_for(&format!("{alertname} to fire"), STEP, POLL, || {
        Ok(stack
            .prometheus
            .firing(alertname)?
            .iter()
            .any(&pick)
            .then_some(()))
    })
}

/// Waits for the journal to hold an action of `kind` (created after `after_id`) that
/// satisfies `done`, and returns its full record.
pub fn wait_action(
    stack: &Stack,
    kind: &str,
    after_id: i64,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    wait_for(what, STEP, POLL, || {
        for summary in stack.remediator.actions()? {
            let id = summary["id"].as_i64().unwrap_or(0);
            if summary["action"] != kind || id <= after_id {
                continue;
            }
            let record = stack.remediator.action(id)?;
            if matches!(
                record["state"].as_str(),
                Some("failed" | "refused" | "expired")
            ) {
                bail!("{kind} action {id} ended {}: {record}", record["state"]);
            }
            if done(&record) {
                return Ok(Some(record));
            }
        }
        Ok(None)
    })
}

pub fn argv(record: &Value) -> String {
    record["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Kill the primary of content 0 and watch the system heal and rebalance it.
pub fn primary_failure(stack: &Stack, story: &mut Story) -> Result<HealOutcome> {
    let lab = &stack.lab;
    let rows = lab.load(20_000)?;
    let checksum_before = lab.checksum()?;
    story.say(format!(
        "loaded {rows} rows; checksum {} over {} rows",
        checksum_before.digest, checksum_before.rows
    ));
    wait_healthy(stack, story)?;
    let last_action = last_action_id(stack)?;
    let victim = acting_primary(&lab.segments()?, 0)
        .context("content 0 has no acting primary")?
        .clone();
    story.restart_clock();
    lab.fail_primary(0)?;
    story.say(format!(
        "killed the primary of content 0 (dbid {} on {}, port {})",
        victim.dbid, victim.hostname, victim.port
    ));

    lab.wait_for_catalog("FTS to fail content 0 over", STEP, |rows| {
        rows.iter()
            .any(|s| s.dbid == victim.dbid && s.status == 'd' && s.role == 'm')
    })?;
    let promoted = acting_primary(&lab.segments()?, 0)
        .map(|s| s.dbid)
        .unwrap_or(-1);
    story.say(format!(
        "FTS failed over: dbid {} marked down, mirror dbid {promoted} promoted to primary",
        victim.dbid
    ));

    let dbid = victim.dbid.to_string();
    wait_firing(stack, "GreenplumSegmentDown", |a| {
        a.label("dbid") == Some(dbid.as_str())
    })?;
    story.say(format!(
        "alert GreenplumSegmentDown fired for dbid {dbid} (remediation=\"recover\")"
    ));

    let started = wait_action(
        stack,
        "recover",
        last_action,
        "the remediator to run recover",
        |r| !r["execution"].is_null(),
    )?;
    story.say(format!(
        "remediator: webhook received, plan recover of dbids {} from a fresh catalog read; ran `{}`",
        started["targets"],
        argv(&started)
    ));
    let recover_id = started["id"].as_i64().unwrap_or(0);
    let recovered = wait_action(
        stack,
        "recover",
        last_action,
        "recover to be verified",
        |r| r["id"].as_i64() == Some(recover_id) && r["state"] == "succeeded",
    )?;
    ensure!(recovered["id"] == started["id"], "a second recover ran");
    story.say(
        "remediator verified: the recovered instance is up and its pair synchronized (mode s)",
    );

    wait_firing(stack, "GreenplumSegmentsNotInPreferredRole", |_| true)?;
    story.say("alert GreenplumSegmentsNotInPreferredRole fired once every pair was synchronized (remediation=\"rebalance\")");

    let rebalanced = wait_action(
        stack,
        "rebalance",
        last_action,
        "rebalance to be verified",
        |r| r["state"] == "succeeded",
    )?;
    story.say(format!(
        "remediator ran `{}` and verified the preferred roles",
        argv(&rebalanced)
    ));

    lab.wait_for_catalog(
        "every pair balanced and synchronized",
        STEP,
        balanced_and_synchronized,
    )?;
    wait_healthy(stack, story)?;
    story.say("the catalog shows every instance up, synchronized and in its preferred role");

    let checksum_after = lab.checksum()?;
    story.say(format!(
        "checksum {} over {} rows: {}",
        checksum_after.digest,
        checksum_after.rows,
        if checksum_after == checksum_before {
            "unchanged, nothing lost"
        } else {
            "CHANGED"
        }
    ));
    let actions = all_actions(stack, last_action)?;
    for line in breakdown(story, &actions) {
        story.say(line);
    }
    Ok(HealOutcome {
        failed_dbid: victim.dbid,
        checksum_before: format!("{}/{}", checksum_before.digest, checksum_before.rows),
        checksum_after: format!("{}/{}", checksum_after.digest, checksum_after.rows),
        actions,
    })
}

fn timestamp(value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    value.as_str()?.parse().ok()
}

/// Seconds between two journal timestamps of one action.
fn span(from: &Value, to: &Value) -> Option<f64> {
    Some((timestamp(to)? - timestamp(from)?).num_milliseconds() as f64 / 1000.0)
}

/// Where the time to heal went, from the story's observations and the journal's timestamps.
pub fn breakdown(story: &Story, actions: &[Value]) -> Vec<String> {
    let mut rows: Vec<(String, f64)> = Vec::new();
    let at = |prefix: &str| story.at(prefix).map(|d| d.as_secs_f64());
    if let (Some(failover), Some(fired)) = (at("FTS failed over"), at("alert GreenplumSegmentDown"))
    {
        rows.push(("FTS detection and failover".into(), failover));
        rows.push((
            "alert `for`, scrape and evaluation".into(),
            fired - failover,
        ));
    }
    for kind in ["recover", "rebalance"] {
        let Some(action) = actions
            .iter()
            .find(|a| a["action"] == kind && !a["execution"].is_null())
        else {
            continue;
        };
        let started = &action["execution"]["started_at"];
        let finished = &action["result"]["finished_at"];
        if let Some(s) = span(&action["created_at"], started) {
            rows.push((format!("{kind}: remediator, plan to command"), s));
        }
        if let Some(s) = span(started, finished) {
            rows.push((format!("{kind}: gprecoverseg ran"), s));
        }
        let verified = action["history"]
            .as_array()
            .and_then(|h| h.iter().find(|c| c["state"] == "succeeded"))
            .map(|c| &c["at"]);
        if let Some(s) = verified.and_then(|v| span(finished, v)) {
            rows.push((format!("{kind}: resync and verification"), s));
        }
    }
    if let (Some(recovered), Some(fired)) = (
        at("remediator verified"),
        at("alert GreenplumSegmentsNotInPreferredRole"),
    ) {
        rows.push((
            "preferred-role alert `for` after the resync".into(),
            fired - recovered,
        ));
    }
    let mut lines = vec!["time to heal, broken down:".to_string()];
    lines.extend(
        rows.iter()
            .map(|(what, seconds)| format!("  {what:<46}{seconds:>8.3} s")),
    );
    lines
}

/// What the coordinator-failure story observed.
pub struct ActivationOutcome {
    pub actions: Vec<Value>,
    /// Endpoints that were `coordinator` at each sample taken while the story ran.
    pub coordinators_seen: Vec<Vec<String>>,
    pub new_coordinator: String,
}

/// Kill the coordinator; the remediator plans `activate_standby` and waits for a person; the
/// operator approves through the CLI; the exporter follows the new coordinator.
pub fn coordinator_failure(
    stack: &Stack,
    story: &mut Story,
    approve: bool,
) -> Result<ActivationOutcome> {
    let lab = &stack.lab;
    wait_healthy(stack, story)?;
    let last_action = last_action_id(stack)?;
    let old = format!("127.0.0.1:{}", lab.coordinator_port());
    let standby = format!(
        "127.0.0.1:{}",
        lab.standby_port().context("this story needs a standby")?
    );
    let mut coordinators_seen = Vec::new();
    story.restart_clock();
    lab.fail_coordinator()?;
    story.say(format!("killed the coordinator ({old})"));

    wait_firing(stack, "GreenplumCoordinatorDown", |_| true)?;
    story.say("alert GreenplumCoordinatorDown fired (remediation=\"activate_standby\")");

    let planned = wait_action(
        stack,
        "activate_standby",
        last_action,
        "activate_standby to await approval",
        |r| r["state"] == "awaiting_approval",
    )?;
    let id = planned["id"].as_i64().context("action without id")?;
    coordinators_seen.push(coordinator_endpoints(stack)?);
    story.say(format!(
        "remediator planned `{}` (action {id}) and waits for a person: never automatic",
        argv(&planned)
    ));
    if !approve {
        return Ok(ActivationOutcome {
            actions: all_actions(stack, last_action)?,
            coordinators_seen,
            new_coordinator: String::new(),
        });
    }
    stack.remediator.cli(&[
        "actions",
        "approve",
        &id.to_string(),
        "--reason",
        "coordinator host confirmed dead by the on-call",
    ])?;
    story.say(format!(
        "operator approved action {id}: `greenplum-remediator actions approve {id} --reason ...`"
    ));

    wait_action(
        stack,
        "activate_standby",
        last_action,
        "the activation to be verified",
        |r| r["id"].as_i64() == Some(id) && r["state"] == "succeeded",
    )?;
    coordinators_seen.push(coordinator_endpoints(stack)?);
    story.say("remediator ran gpactivatestandby and verified the standby now accepts writes");

    wait_for(
        "the exporter to follow the new coordinator",
        STEP,
        POLL,
        || {
            let seen = coordinator_endpoints(stack)?;
            coordinators_seen.push(seen.clone());
            let up = stack.prometheus.query("greenplum_up == 1")?;
            Ok((!up.is_empty() && seen == vec![standby.clone()]).then_some(()))
        },
    )?;
    story.say(format!(
        "the exporter follows the new coordinator {standby} without a restart"
    ));
    Ok(ActivationOutcome {
        actions: all_actions(stack, last_action)?,
        coordinators_seen,
        new_coordinator: standby,
    })
}

/// Endpoints the exporter currently reports as `coordinator`.
pub fn coordinator_endpoints(stack: &Stack) -> Result<Vec<String>> {
    let mut endpoints: Vec<String> = stack
        .prometheus
        .query(r#"greenplum_endpoint_state{state="coordinator"} == 1"#)?
        .iter()
        .filter_map(|s| s.label("endpoint").map(str::to_string))
        .collect();
    endpoints.sort();
    Ok(endpoints)
}

pub fn last_action_id(stack: &Stack) -> Result<i64> {
    Ok(stack
        .remediator
        .actions()?
        .iter()
        .filter_map(|a| a["id"].as_i64())
        .max()
        .unwrap_or(0))
}

pub fn all_actions(stack: &Stack, after_id: i64) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for summary in stack.remediator.actions()? {
        let id = summary["id"].as_i64().unwrap_or(0);
        if id > after_id {
            out.push(stack.remediator.action(id)?);
        }
    }
    Ok(out)
}

/// Kill the mirror of content 1 and watch it recovered and resynchronized.
pub fn mirror_failure(stack: &Stack, story: &mut Story) -> Result<Vec<Value>> {
    let lab = &stack.lab;
    wait_healthy(stack, story)?;
    let last_action = last_action_id(stack)?;
    let victim = lab
        .segments()?
        .into_iter()
        .find(|s| s.content == 1 && s.role == 'm')
        .context("content 1 has no mirror")?;
    story.restart_clock();
    lab.fail_mirror(1)?;
    story.say(format!(
        "killed the mirror of content 1 (dbid {} on {}); writes go on without it",
        victim.dbid, victim.hostname
    ));
    lab.wait_for_catalog("FTS to mark the mirror down", STEP, |rows| {
        rows.iter()
            .any(|s| s.dbid == victim.dbid && s.status == 'd')
    })?;
    story.say(format!(
        "FTS marked dbid {} down after its grace period; the primary stopped waiting for it",
        victim.dbid
    ));
    let dbid = victim.dbid.to_string();
    wait_firing(stack, "GreenplumSegmentDown", |a| {
        a.label("dbid") == Some(dbid.as_str())
    })?;
    story.say(format!("alert GreenplumSegmentDown fired for dbid {dbid}"));
    let done = wait_action(
        stack,
        "recover",
        last_action,
        "recover to be verified",
        |r| r["state"] == "succeeded",
    )?;
    story.say(format!(
        "remediator ran `{}` and verified the mirror up and synchronized",
        argv(&done)
    ));
    wait_healthy(stack, story)?;
    all_actions(stack, last_action)
}

/// Stop the standby coordinator and watch it restarted with `gpinitstandby -n`.
pub fn standby_failure(stack: &Stack, story: &mut Story) -> Result<Vec<Value>> {
    wait_healthy(stack, story)?;
    let last_action = last_action_id(stack)?;
    story.restart_clock();
    stack.lab.fail_standby()?;
    story.say("stopped the standby coordinator; its catalog row still says up (it always does)");
    wait_firing(stack, "GreenplumStandbyNotStreaming", |_| true)?;
    story.say("alert GreenplumStandbyNotStreaming fired: the coordinator has no gp_walreceiver");
    let done = wait_action(
        stack,
        "start_standby",
        last_action,
        "start_standby to be verified",
        |r| r["state"] == "succeeded",
    )?;
    story.say(format!(
        "remediator ran `{}` and verified the standby streams again",
        argv(&done)
    ));
    wait_for("the standby to stream in Prometheus", STEP, POLL, || {
        let streaming = stack
            .prometheus
            .query(r#"greenplum_standby_replication_state{state="streaming"} == 1"#)?;
        Ok((!streaming.is_empty()).then_some(()))
    })?;
    story.say("Prometheus sees the standby streaming again");
    all_actions(stack, last_action)
}
