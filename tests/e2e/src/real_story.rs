//! The demo's stories on a real Greenplum: the same faults as the lab's (scenario.rs), each
//! step waiting for real evidence (the real catalog, the remediator's journal) and narrated.
//! The real-cluster suite checks them; `scripts/demo --greenplum real` tells them.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::process::wait_for;
use crate::real::RealCluster;
use crate::real_stack::RealStack;
use crate::remediator::Remediator;
use crate::scenario::Story;

/// Guard for one step on a real cluster (`gprecoverseg` resyncs, FTS, `for:` windows).
const STEP: Duration = Duration::from_secs(480);

/// The action of `kind` in the journal once `done` holds for it, or an error as soon as an
/// action ends failed, refused or expired.
pub fn wait_for_action(
    remediator: &Remediator,
    kind: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    wait_for(what, STEP, Duration::from_secs(1), || {
        for summary in remediator.actions()? {
            if summary["action"] != kind {
                continue;
            }
            let record = remediator.action(summary["id"].as_i64().unwrap_or(0))?;
            if matches!(
                record["state"].as_str(),
                Some("failed" | "refused" | "expired")
            ) {
                bail!("{kind} ended {}: {record:#}", record["state"]);
            }
            if done(&record) {
                return Ok(Some(record));
            }
        }
        Ok(None)
    })
}

fn argv(record: &Value) -> String {
    crate::scenario::argv(record)
}

/// A primary dies; FTS fails over; the remediator recovers with the real `gprecoverseg -a`,
/// then rebalances with `gprecoverseg -ar`. Returns the two journalled actions.
pub fn primary_failure(
    cluster: &RealCluster,
    stack: &RealStack,
    story: &mut Story,
) -> Result<(Value, Value)> {
    story.restart_clock();
    // FTS probes every 60 s: fail_primary asks it to probe now, as its next probe would.
    let rows = cluster.fail_primary(0)?;
    let down = rows
        .iter()
        .find(|r| r.content == 0 && r.status == 'd')
        .context("no down instance of content 0")?;
    story.say(format!(
        "killed the primary of content 0 (dbid {}, port {}); FTS marked it down",
        down.dbid, down.port
    ));
    let recover = wait_for_action(&stack.remediator, "recover", "recover to succeed", |r| {
        r["state"] == "succeeded"
    })?;
    story.say(format!(
        "remediator ran `{}` (the real tool) and verified the pair synchronized",
        argv(&recover)
    ));
    let rebalance = wait_for_action(
        &stack.remediator,
        "rebalance",
        "rebalance to succeed",
        |r| r["state"] == "succeeded",
    )?;
    story.say(format!(
        "remediator ran `{}` and verified the preferred roles",
        argv(&rebalance)
    ));
    let rows = cluster.segments(cluster.coordinator_port())?;
    if !rows
        .iter()
        .all(|r| r.status == 'u' && r.role == r.preferred_role && (r.content < 0 || r.mode == 's'))
    {
        bail!("not healthy and balanced after both actions: {rows:?}");
    }
    story.say("the catalog shows every instance up, synchronized and in its preferred role");
    Ok((recover, rebalance))
}

/// The coordinator dies (and, with `restart_remediator`, the remediator restarts during the
/// outage); the remediator plans `gpactivatestandby` and waits for a person. With `approve`
/// the story approves as an operator would and waits for the activation to be verified.
/// Returns the activation's record.
pub fn coordinator_failure(
    cluster: &RealCluster,
    stack: &mut RealStack,
    story: &mut Story,
    restart_remediator: bool,
    approve: bool,
) -> Result<Value> {
    let coordinator = cluster
        .segments(cluster.coordinator_port())?
        .into_iter()
        .find(|r| r.content == -1 && r.role == 'p')
        .context("no coordinator row")?;
    story.restart_clock();
    cluster.kill_instance(&coordinator.datadir)?;
    story.say(format!(
        "killed the coordinator (port {})",
        coordinator.port
    ));
    if restart_remediator {
        stack.remediator.restart()?;
        story.say("restarted the remediator during the outage (what it knew in memory is gone)");
    }
    let planned = wait_for_action(
        &stack.remediator,
        "activate_standby",
        "activate_standby to await approval",
        |r| r["state"] == "awaiting_approval",
    )?;
    let id = planned["id"].as_i64().context("action without id")?;
    story.say(format!(
        "remediator planned `{}` (action {id}) and waits for a person",
        argv(&planned)
    ));
    if !approve {
        return Ok(planned);
    }
    approve_activation(&stack.remediator, story, id)
}

/// Approves activation `id` as an operator would (the remediator's CLI) and waits for it to
/// be verified; returns its record.
pub fn approve_activation(remediator: &Remediator, story: &mut Story, id: i64) -> Result<Value> {
    remediator.cli(&[
        "actions",
        "approve",
        &id.to_string(),
        "--reason",
        "the coordinator host is gone",
    ])?;
    story.say(format!("operator approved action {id}"));
    let done = wait_for_action(
        remediator,
        "activate_standby",
        "the activation to be verified",
        |r| r["id"].as_i64() == Some(id) && r["state"] == "succeeded",
    )?;
    story.say("remediator ran the real gpactivatestandby and verified the new coordinator");
    Ok(done)
}
