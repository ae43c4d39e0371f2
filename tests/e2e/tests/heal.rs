//! Issue 6's end-to-end tests: the whole chain with real Prometheus and Alertmanager around the
//! lab, the exporter and the remediator. Timeouts inside the stories are guards, not speed
//! assertions.

use anyhow::Result;
use greenplum_e2e::scenario::{
    coordinator_failure, mirror_failure, primary_failure, standby_failure, Story,
};
use greenplum_e2e::stack::{Stack, StackConfig};

/// One whole stack at a time: two on a 2-core machine only slow each other down.
static ONE_STACK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config() -> StackConfig {
    StackConfig {
        // Rules keep their expressions; `for:` is divided by 4 (SegmentDown 15 s, preferred
        // role 75 s) so that a rebalance's own short failover cannot look like a new fault.
        rule_speedup: 4,
        ..StackConfig::default()
    }
}

#[test]
fn a_killed_primary_is_recovered_and_rebalanced_without_losing_a_row() -> Result<()> {
    let _one = ONE_STACK.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::up(&config())?;
    let mut story = Story::new(true);
    let outcome = primary_failure(&stack, &mut story)?;
    assert_eq!(outcome.checksum_before, outcome.checksum_after);
    let recovers = outcome.executed("recover");
    let rebalances = outcome.executed("rebalance");
    assert_eq!(
        recovers.len(),
        1,
        "exactly one recover ran: {:#?}",
        outcome.actions
    );
    assert_eq!(
        rebalances.len(),
        1,
        "exactly one rebalance ran: {:#?}",
        outcome.actions
    );
    assert!(recovers[0]["targets"].as_array().is_some_and(|t| t
        .iter()
        .any(|d| d.as_i64() == Some(outcome.failed_dbid.into()))));
    assert_eq!(recovers[0]["argv"][0], "gprecoverseg");
    assert_eq!(recovers[0]["argv"][1], "-a");
    assert_eq!(rebalances[0]["argv"][1], "-ar");
    // Every other journalled action (a redelivery, a resolved alert) ran nothing.
    assert_eq!(
        outcome
            .actions
            .iter()
            .filter(|a| !a["execution"].is_null())
            .count(),
        2
    );
    Ok(())
}

#[test]
fn a_killed_coordinator_is_activated_only_after_approval() -> Result<()> {
    let _one = ONE_STACK.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::up(&config())?;
    let mut story = Story::new(true);
    let old_port = stack.lab.coordinator_port();
    let outcome = coordinator_failure(&stack, &mut story, true)?;
    let activations: Vec<_> = outcome
        .actions
        .iter()
        .filter(|a| a["action"] == "activate_standby")
        .collect();
    assert_eq!(activations.len(), 1, "{:#?}", outcome.actions);
    let approvals = activations[0]["approvals"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["who"], "e2e-operator");
    // Never two writable coordinators: at every sample at most one endpoint was coordinator,
    // and at the end it is the former standby.
    assert!(outcome.coordinators_seen.iter().all(|seen| seen.len() <= 1));
    assert_eq!(
        outcome.coordinators_seen.last(),
        Some(&vec![outcome.new_coordinator.clone()])
    );
    // The old coordinator stays dead: nothing restarted it behind the new one's back.
    assert_eq!(
        gplab::conn::probe(old_port, std::time::Duration::from_secs(2)),
        gplab::conn::Probe::Down
    );
    Ok(())
}

#[test]
fn a_killed_mirror_is_recovered_incrementally() -> Result<()> {
    let _one = ONE_STACK.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::up(&config())?;
    let mut story = Story::new(true);
    let actions = mirror_failure(&stack, &mut story)?;
    let ran: Vec<_> = actions
        .iter()
        .filter(|a| !a["execution"].is_null())
        .collect();
    assert_eq!(ran.len(), 1, "{actions:#?}");
    assert_eq!(ran[0]["action"], "recover");
    assert_eq!(ran[0]["state"], "succeeded");
    Ok(())
}

#[test]
fn a_stopped_standby_is_restarted() -> Result<()> {
    let _one = ONE_STACK.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::up(&config())?;
    let mut story = Story::new(true);
    let actions = standby_failure(&stack, &mut story)?;
    let ran: Vec<_> = actions
        .iter()
        .filter(|a| !a["execution"].is_null())
        .collect();
    assert_eq!(ran.len(), 1, "{actions:#?}");
    assert_eq!(ran[0]["action"], "start_standby");
    assert_eq!(
        ran[0]["argv"],
        serde_json::json!(["gpinitstandby", "-n", "-a"])
    );
    Ok(())
}
