//! Policy gates refusing on a live lab (issue 4, "done when"): a closed window, an exhausted
//! budget, and an open circuit breaker, which a person resets through the CLI. Each refusal is
//! journalled with its gate, and nothing runs: no execution in the action or the journal, no
//! `gprecoverseg` invocation, and the catalog still shows the segment down.
//!
//! One lab and one remediator serve all three. Two clusters of the policy point at the same
//! lab: `gp-lab` runs the lab's real stand-in; `gp-lab-noop` runs a `gprecoverseg` that exits 0
//! and does nothing (the real tool's trap), so its verification fails for real and opens the
//! breaker.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chrono::Timelike;
use common::*;
use serde_json::Value;

fn alert<'a>(
    cluster: &'a str,
    case: &'a str,
    fingerprint: &'a str,
    starts_at: &'a str,
) -> AlertSpec<'a> {
    AlertSpec {
        cluster,
        status: "firing",
        starts_at,
        fingerprint,
        extra_labels: vec![("case", case)],
    }
}

fn gate(action: &Value) -> Value {
    let history = action["history"].as_array().expect("history");
    history.last().expect("a state")["detail"]["gate"].clone()
}

/// A refusal leaves no trace on the live system: no execution of the action, none added
/// to the journal since `executions_before`, and content 0 still down in the catalog.
fn assert_nothing_ran(
    lab: &gplab::Lab,
    journal: &JournalReader,
    executions_before: i64,
    action: &Value,
) {
    assert!(action["execution"].is_null(), "{action:#}");
    assert_eq!(journal.executions(), executions_before, "{action:#}");
    let rows = lab.segments().expect("catalog read");
    assert!(
        rows.iter().any(|r| r.content == 0 && r.status == 'd'),
        "the refused fault is still there: {rows:?}"
    );
}

/// A `gprecoverseg` that records its invocation and does nothing, exiting 0.
fn noop_tool(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let bin = dir.join("noop-bin");
    fs::create_dir_all(&bin).expect("noop dir");
    let invocations = dir.join("noop.invocations");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nexit 0\n",
        invocations.display()
    );
    let tool = bin.join("gprecoverseg");
    fs::write(&tool, script).expect("noop tool");
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).expect("chmod");
    (bin, invocations)
}

fn policy(lab: &gplab::Lab, wrap: &ToolWrap, noop_bin: &Path) -> String {
    let now = chrono::Utc::now().hour();
    let (start, end) = ((now + 2) % 24, (now + 3) % 24);
    let rules = format!(
        r#"  - name: window-closed
    match:
      alertname: GreenplumSegmentDown
      labels: ['case="window"']
    action: recover
    approval: auto
    windows:
      - {{start: "{start:02}:00", end: "{end:02}:00"}}
  - name: budget-one
    match:
      alertname: GreenplumSegmentDown
      labels: ['case="budget"']
    action: recover
    approval: auto
    budget: {{per_hour: 1}}
  - name: breaker-noop
    match:
      alertname: GreenplumSegmentDown
      labels: ['case="breaker"']
    action: recover
    approval: auto
"#
    );
    let base = lab_policy("gp-lab", lab, wrap, &rules)
        .replace("verify_up_deadline: 2m", "verify_up_deadline: 15s");
    // The second cluster: same lab, same environment, but the no-op tool first on PATH and a
    // breaker that opens after one failed verification.
    let (clusters, rest) = base.split_once("rules:\n").expect("policy layout");
    let noop = clusters
        .replacen("name: gp-lab", "name: gp-lab-noop", 1)
        .replacen("PATH: \"", &format!("PATH: \"{}:", noop_bin.display()), 1)
        .replacen("clusters:\n", "", 1)
        .replacen(
            "overdue_after: 10m",
            "overdue_after: 10m\n    breaker_failures: 1",
            1,
        );
    format!("{clusters}{noop}rules:\n{rest}")
}

#[test]
fn window_budget_and_breaker_refuse_on_a_live_lab() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = lab_up(2);
    let wrap = ToolWrap::install(dir.path(), &lab.bin_dir());
    let (noop_bin, noop_invocations) = noop_tool(dir.path());
    let policy_path = dir.path().join("policy.yml");
    fs::write(&policy_path, policy(&lab, &wrap, &noop_bin)).expect("policy");
    let remediator = Remediator::start(ServeConfig::new(dir.path(), &policy_path));
    let journal = JournalReader::open(&remediator.config.journal);
    let noop_runs = || {
        fs::read_to_string(&noop_invocations)
            .unwrap_or_default()
            .lines()
            .count()
    };

    lab.fail_primary(0).expect("fail primary 0");
    wait_failed_over(&lab, 0);

    // Window: the rule's only window opens two hours from now.
    let known = remediator.actions().len();
    let body = payload(&alert(
        "gp-lab",
        "window",
        "b000000000000001",
        "2026-11-21T17:00:00Z",
    ));
    assert_eq!(remediator.post_alerts(&body), 202);
    let action = remediator.wait_new_action(known, TERMINAL);
    assert_eq!(action["state"], "refused", "{action:#}");
    assert_eq!(gate(&action), "window", "{action:#}");
    assert_nothing_ran(&lab, &journal, 0, &action);
    assert!(wrap.invocations().is_empty(), "{:?}", wrap.invocations());

    // Budget: one execution per hour. The first delivery heals for real...
    let known = remediator.actions().len();
    let body = payload(&alert(
        "gp-lab",
        "budget",
        "b000000000000002",
        "2026-11-21T17:01:00Z",
    ));
    assert_eq!(remediator.post_alerts(&body), 202);
    let action = remediator.wait_new_action(known, TERMINAL);
    assert_eq!(action["state"], "succeeded", "{action:#}");
    assert_eq!(wrap.invocations(), vec!["-a".to_string()]);
    assert_eq!(journal.executions(), 1);
    wait_all_synchronized(&lab);
    // ...the next fault of the same rule within the hour is refused.
    lab.fail_primary(0).expect("fail primary 0 again");
    wait_failed_over(&lab, 0);
    let known = remediator.actions().len();
    let body = payload(&alert(
        "gp-lab",
        "budget",
        "b000000000000003",
        "2026-11-21T17:05:00Z",
    ));
    assert_eq!(remediator.post_alerts(&body), 202);
    let action = remediator.wait_new_action(known, TERMINAL);
    assert_eq!(action["state"], "refused", "{action:#}");
    assert_eq!(gate(&action), "budget", "{action:#}");
    assert_nothing_ran(&lab, &journal, 1, &action);
    assert_eq!(
        wrap.invocations().len(),
        1,
        "nothing ran after the budget was spent"
    );

    // Breaker: a tool that exits 0 and does nothing fails verification and opens it...
    let known = remediator.actions().len();
    let body = payload(&alert(
        "gp-lab-noop",
        "breaker",
        "b000000000000004",
        "2026-11-21T17:06:00Z",
    ));
    assert_eq!(remediator.post_alerts(&body), 202);
    let action = remediator.wait_new_action(known, TERMINAL);
    assert_eq!(action["state"], "failed", "exit 0 is no proof: {action:#}");
    assert_eq!(noop_runs(), 1);
    assert_eq!(journal.executions(), 2);
    // ...so the next delivery is refused without running anything...
    let known = remediator.actions().len();
    let body = payload(&alert(
        "gp-lab-noop",
        "breaker",
        "b000000000000005",
        "2026-11-21T17:07:00Z",
    ));
    assert_eq!(remediator.post_alerts(&body), 202);
    let action = remediator.wait_new_action(known, TERMINAL);
    assert_eq!(action["state"], "refused", "{action:#}");
    assert_eq!(gate(&action), "breaker", "{action:#}");
    assert_nothing_ran(&lab, &journal, 2, &action);
    assert_eq!(noop_runs(), 1, "an open breaker runs nothing");
    // ...until a person resets it; then a new delivery runs again.
    remediator.cli(&[
        "breaker",
        "reset",
        "--cluster",
        "gp-lab-noop",
        "--reason",
        "tool fixed",
    ]);
    let known = remediator.actions().len();
    let body = payload(&alert(
        "gp-lab-noop",
        "breaker",
        "b000000000000006",
        "2026-11-21T17:08:00Z",
    ));
    assert_eq!(remediator.post_alerts(&body), 202);
    let action =
        remediator.wait_new_action(known, &["running", "verifying", "failed", "succeeded"]);
    assert!(
        !action["execution"].is_null(),
        "runs after the reset: {action:#}"
    );
    assert_eq!(journal.executions(), 3);
    assert_eq!(
        wrap.invocations().len(),
        1,
        "the real cluster's tool never ran again"
    );
}
