//! The real `greenplum-remediator serve` healing a lab cluster (issue 4, "done when").
//!
//! One lab is shared by the steps, in an order that leaves it healable until the last step
//! (the double fault cannot be undone by any tool):
//! pause -> resolved -> 50 concurrent deliveries with shell syntax in the labels -> approval
//! through the CLI -> SIGKILL while gprecoverseg runs and restart -> double fault.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use greenplum_catalog::reader::{ClusterReader, Endpoint, ReaderConfig};
use serde_json::Value;

const CLUSTER: &str = "gp-lab";

/// Put before [`RECOVER_DOWN_SEGMENTS`]: the first rule that matches decides.
/// Unlike the common `RECOVER_WITH_APPROVAL`, only alerts labelled `approval="required"`.
const RECOVER_WHEN_LABELLED_FOR_APPROVAL: &str = r#"  - name: recover-with-approval
    match:
      alertname: GreenplumSegmentDown
      labels: ['remediation="recover"', 'approval="required"']
    action: recover
    approval: required
"#;

fn alert<'a>(fingerprint: &'a str, starts_at: &'a str) -> AlertSpec<'a> {
    AlertSpec {
        cluster: CLUSTER,
        status: "firing",
        starts_at,
        fingerprint,
        extra_labels: vec![],
    }
}

/// The refusal (gate and why) an action was refused with.
fn refusal(action: &Value) -> &Value {
    let history = action["history"].as_array().expect("history");
    &history.last().expect("a state")["detail"]
}

fn log_of(action: &Value) -> String {
    let path = action["execution"]["log_path"].as_str().expect("log path");
    std::fs::read_to_string(path).expect("command log")
}

#[test]
fn heals_a_lab_once_through_pause_duplicates_approval_crash_and_double_fault() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = lab_up(3);
    let wrap = ToolWrap::install(dir.path(), &lab.bin_dir());
    lab.load(5000).expect("load rows");
    let before = lab.checksum().expect("checksum");
    let policy = write_lab_policy(
        dir.path(),
        CLUSTER,
        &lab,
        &wrap,
        &format!("{RECOVER_WHEN_LABELLED_FOR_APPROVAL}{RECOVER_DOWN_SEGMENTS}"),
    );
    let mut remediator = Remediator::start(ServeConfig::new(dir.path(), &policy));
    let journal = JournalReader::open(&remediator.config.journal);

    paused_refuses(&lab, &remediator, &wrap);
    resolved_starts_nothing(&remediator, &journal, &wrap);
    concurrent_shell_labelled_deliveries_heal_once(dir.path(), &lab, &remediator, &journal, &wrap);
    assert_eq!(lab.checksum().expect("checksum"), before, "data changed");
    approval_through_the_cli(&lab, &remediator, &wrap);
    sigkill_while_running_runs_nothing_twice(&lab, &mut remediator, &journal, &wrap);
    assert_eq!(lab.checksum().expect("checksum"), before, "data changed");
    double_fault_is_refused(&lab, &remediator, &journal, &wrap);
}

/// The kill switch: a firing alert for a failed primary is journalled and refused.
fn paused_refuses(lab: &gplab::Lab, remediator: &Remediator, wrap: &ToolWrap) {
    lab.fail_primary(0).expect("fail primary 0");
    wait_failed_over(lab, 0);
    remediator.cli(&["pause", "--reason", "maintenance window"]);
    let known = remediator.actions().len();
    assert_eq!(
        remediator.post_alerts(&payload(&alert("a000000000000001", "2026-11-21T16:00:00Z"))),
        202
    );
    let action = remediator.wait_new_action(known, TERMINAL);
    assert_eq!(action["state"], "refused", "{action:#}");
    assert_eq!(refusal(&action)["gate"], "paused", "{action:#}");
    assert!(action["execution"].is_null());
    assert!(wrap.invocations().is_empty(), "{:?}", wrap.invocations());
    remediator.cli(&["resume", "--reason", "maintenance over"]);
}

/// A resolved alert is journalled and decided, and never plans anything.
fn resolved_starts_nothing(remediator: &Remediator, journal: &JournalReader, wrap: &ToolWrap) {
    let known = remediator.actions().len();
    let mut resolved = alert("a000000000000002", "2026-11-21T16:05:00Z");
    resolved.status = "resolved";
    assert_eq!(remediator.post_alerts(&payload(&resolved)), 202);
    let decisions = wait_for("the resolved event's decision", || {
        let d = journal.decisions("a000000000000002");
        (!d.is_empty()).then_some(d)
    });
    assert_eq!(decisions, vec!["resolved".to_string()]);
    assert_eq!(remediator.actions().len(), known);
    assert!(wrap.invocations().is_empty());
}

/// The same delivery 50 times at once, its labels full of shell syntax: one execution of
/// exactly `gprecoverseg -a`, nothing created or removed on disk, a verified recovery.
fn concurrent_shell_labelled_deliveries_heal_once(
    dir: &Path,
    lab: &gplab::Lab,
    remediator: &Remediator,
    journal: &JournalReader,
    wrap: &ToolWrap,
) {
    let canary = dir.join("canary");
    std::fs::write(&canary, "still here").expect("canary");
    let touched = [
        dir.join("pwned-subst"),
        dir.join("pwned-backtick"),
        dir.join("pwned-and"),
    ];
    let labels = [
        format!("$(touch {})", touched[0].display()),
        format!("`touch {}`", touched[1].display()),
        format!("critical && touch {}", touched[2].display()),
        format!("sdw1; rm -rf {}", canary.display()),
        format!("2 | rm -rf {} #", canary.display()),
    ];
    let mut spec = alert("a000000000000003", "2026-11-21T16:10:00Z");
    spec.extra_labels = vec![
        ("dbid", labels[0].as_str()),
        ("content", labels[1].as_str()),
        ("severity", labels[2].as_str()),
        ("hostname", labels[3].as_str()),
        ("instance", labels[4].as_str()),
    ];
    let body = payload(&spec);
    let known = remediator.actions().len();
    let codes: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| s.spawn(|| remediator.post_alerts(&body)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("poster"))
            .collect()
    });
    assert!(codes.iter().all(|c| *c == 202), "{codes:?}");

    let action = remediator.wait_new_action(known, TERMINAL);
    assert_eq!(
        action["state"],
        "succeeded",
        "{action:#}\n{}",
        remediator.log_tail()
    );
    assert_eq!(action["argv"], serde_json::json!(["gprecoverseg", "-a"]));
    assert_eq!(
        action["execution"]["argv"],
        serde_json::json!(["gprecoverseg", "-a"])
    );
    assert_eq!(journal.executions(), 1);
    assert_eq!(wrap.invocations(), vec!["-a".to_string()]);
    // One event; 49 deliveries were duplicates of it.
    assert_eq!(
        journal.decisions("a000000000000003"),
        vec!["executed".to_string()]
    );
    assert_eq!(
        journal.count("SELECT COUNT(*) FROM events WHERE fingerprint = 'a000000000000003'"),
        1
    );
    assert_eq!(remediator.actions().len(), known + 1);

    for path in &touched {
        assert!(!path.exists(), "{} was created", path.display());
    }
    assert_eq!(
        std::fs::read_to_string(&canary).expect("canary survives"),
        "still here"
    );
    let plans = journal.all_plan_text();
    for needle in ["touch", "rm -rf", "`", "$("] {
        assert!(
            !plans.contains(needle),
            "{needle:?} reached a plan: {plans}"
        );
    }

    let rows = wait_all_synchronized(lab);
    assert!(rows.iter().all(|r| r.content < 0 || r.status == 'u'));
    let verification = &action["verifications"][0];
    assert_eq!(verification["succeeded"], true, "{action:#}");
}

/// `approval: required`: the plan waits; `greenplum-remediator actions approve` runs it.
fn approval_through_the_cli(lab: &gplab::Lab, remediator: &Remediator, wrap: &ToolWrap) {
    lab.fail_primary(1).expect("fail primary 1");
    wait_failed_over(lab, 1);
    let known = remediator.actions().len();
    let mut spec = alert("a000000000000004", "2026-11-21T16:20:00Z");
    spec.extra_labels = vec![("approval", "required")];
    assert_eq!(remediator.post_alerts(&payload(&spec)), 202);
    let waiting = remediator.wait_new_action(known, &["awaiting_approval"]);
    assert_eq!(waiting["rule"], "recover-with-approval");
    let id = waiting["id"].as_i64().expect("id");
    assert_eq!(wrap.invocations().len(), 1, "nothing runs before approval");
    let listed = remediator.cli(&["actions", "list", "--state", "awaiting_approval"]);
    assert!(listed.starts_with(&format!("{id}\t")), "{listed}");

    remediator.cli(&[
        "actions",
        "approve",
        &id.to_string(),
        "--reason",
        "checked the hosts",
    ]);
    let done = remediator.wait_action_ends(id, "succeeded");
    assert_eq!(done["approvals"][0]["who"], "integration-test");
    let why = done["approvals"][0]["why"].as_str().unwrap_or("");
    assert!(why.starts_with("checked the hosts"), "{done:#}");
    assert_eq!(wrap.invocations().len(), 2);
    wait_all_synchronized(lab);
}

/// SIGKILL while `gprecoverseg` runs, restart on the same journal: the command is
/// re-attached (not started again) and the verification finishes.
fn sigkill_while_running_runs_nothing_twice(
    lab: &gplab::Lab,
    remediator: &mut Remediator,
    journal: &JournalReader,
    wrap: &ToolWrap,
) {
    wrap.hold();
    lab.fail_primary(0).expect("fail primary 0 again");
    wait_failed_over(lab, 0);
    let known = remediator.actions().len();
    let executions = journal.executions();
    assert_eq!(
        remediator.post_alerts(&payload(&alert("a000000000000005", "2026-11-21T16:30:00Z"))),
        202
    );
    let id = wait_for("the new action", || {
        remediator
            .actions()
            .get(known)
            .and_then(|a| a["id"].as_i64())
    });
    let running = wait_for("the command to be running", || {
        let action = remediator.action(id);
        (action["state"] == "running" && !action["execution"].is_null()).then_some(action)
    });
    wait_for("the wrapper to start", || {
        (wrap.invocations().len() == 3).then_some(())
    });
    let pid = running["execution"]["pid"].as_u64().expect("pid") as i32;

    remediator.kill();
    // The command outlives the remediator (its own process group, output to a file).
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok(),
        "gprecoverseg died with the remediator"
    );
    remediator.restart();
    wait_for("the re-attach to be journalled", || {
        let action = remediator.action(id);
        action["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|c| c["detail"]["reattach"].is_string()))
            .then_some(())
    });
    assert_eq!(remediator.action(id)["state"], "running");
    wrap.release();

    let done = remediator.wait_action_ends(id, "succeeded");
    assert_eq!(journal.executions(), executions + 1);
    assert_eq!(wrap.invocations().len(), 3, "{:?}", wrap.invocations());
    let log = log_of(&done);
    assert_eq!(
        log.matches("Starting gprecoverseg with args").count(),
        1,
        "{log}"
    );
    let reattach = done["history"]
        .as_array()
        .expect("history")
        .iter()
        .find_map(|c| c["detail"]["reattach"].as_str())
        .expect("reattach detail");
    assert!(reattach.contains("pid alive"), "{reattach}");
    wait_all_synchronized(lab);
}

/// Mirror and then primary of one content lost: FTS cannot act, the catalog still says
/// `u`; the remediator must refuse with the double-fault gate and run nothing.
fn double_fault_is_refused(
    lab: &gplab::Lab,
    remediator: &Remediator,
    journal: &JournalReader,
    wrap: &ToolWrap,
) {
    lab.fail_mirror(2).expect("fail mirror 2");
    lab.wait_for_catalog("mirror 2 marked down", GUARD, |rows| {
        rows.iter()
            .any(|r| r.content == 2 && r.role == 'm' && r.status == 'd')
    })
    .expect("mirror down");
    lab.fail_primary(2).expect("fail primary 2");
    wait_for_suspected_double_fault(lab, 2);

    let known = remediator.actions().len();
    let executions = journal.executions();
    let invocations = wrap.invocations().len();
    assert_eq!(
        remediator.post_alerts(&payload(&alert("a000000000000006", "2026-11-21T16:40:00Z"))),
        202
    );
    let action = remediator.wait_new_action(known, TERMINAL);
    assert_eq!(action["state"], "refused", "{action:#}");
    assert_eq!(refusal(&action)["gate"], "double_fault", "{action:#}");
    assert_eq!(journal.executions(), executions);
    assert_eq!(wrap.invocations().len(), invocations);
}

/// Our own catalog reader, as the remediator reads: waits until the double fault shows.
fn wait_for_suspected_double_fault(lab: &gplab::Lab, content: i16) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut config = ReaderConfig::new(
        vec![Endpoint::new("127.0.0.1", lab.coordinator_port())],
        "gpadmin",
        "postgres",
    );
    config.connect_timeout = Duration::from_secs(5);
    config.statement_timeout = Duration::from_secs(5);
    let mut reader = ClusterReader::new(config).with_backoff(Duration::ZERO, Duration::ZERO);
    wait_for("a suspected double fault", || {
        let snapshot = runtime.block_on(reader.snapshot());
        snapshot
            .health()
            .is_some_and(|h| h.suspected_unavailable_contents.contains(&content))
            .then_some(())
    });
}
