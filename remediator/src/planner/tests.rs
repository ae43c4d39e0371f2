//! Planner tests: scripted catalog, fake executor, real SQLite journal, real webhook.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use greenplum_catalog::Snapshot;
use tower::ServiceExt;

use super::*;
use crate::alert::tests::recorded_body;
use crate::auth::Authenticator;
use crate::executor::{CommandSpec, ExecError, Started};
use crate::http::AppState;
use crate::journal::{
    ActionRecord, ApprovalDecision, ControlKind, ExecutionStart, NewAction, SqliteJournal,
    StateChange, Verification,
};
use greenplum_catalog::test_support::compact as testutil;

/// The cluster as the scripted catalog shows it; the fake executor changes it.
#[derive(Clone)]
struct World {
    snapshot: Arc<Mutex<Snapshot>>,
    /// What the cluster looks like after a command ran.
    after: Arc<Mutex<Option<Snapshot>>>,
    commands: Arc<Mutex<Vec<CommandSpec>>>,
    probes: Arc<Mutex<u32>>,
    /// Catalog reads so far: the first one tells the lane finished starting up.
    reads: Arc<Mutex<u32>>,
}

impl World {
    fn new(now: Snapshot, after: Option<Snapshot>) -> Self {
        World {
            snapshot: Arc::new(Mutex::new(now)),
            after: Arc::new(Mutex::new(after)),
            commands: Arc::new(Mutex::new(Vec::new())),
            probes: Arc::new(Mutex::new(0)),
            reads: Arc::new(Mutex::new(0)),
        }
    }

    fn commands(&self) -> Vec<CommandSpec> {
        self.commands.lock().expect("lock").clone()
    }
}

struct ScriptedSource(World);

#[async_trait]
impl CatalogSource for ScriptedSource {
    async fn snapshot(&mut self) -> Snapshot {
        *self.0.reads.lock().expect("lock") += 1;
        self.0.snapshot.lock().expect("lock").clone()
    }
    async fn request_fts_probe(&mut self) -> Result<bool, String> {
        *self.0.probes.lock().expect("lock") += 1;
        Ok(true)
    }
}

struct FakeExecutor(World);

#[async_trait]
impl Executor for FakeExecutor {
    async fn start(&self, spec: &CommandSpec) -> Result<Started, ExecError> {
        self.0.commands.lock().expect("lock").push(spec.clone());
        if let Some(after) = self.0.after.lock().expect("lock").clone() {
            *self.0.snapshot.lock().expect("lock") = after;
        }
        Ok(Started {
            pid: None,
            pid_start_ticks: None,
            argv: spec.argv.clone(),
            child: None,
        })
    }
    async fn path_exists(&self, _host: Option<&str>, _path: &str) -> Result<bool, ExecError> {
        Ok(false)
    }
}

impl Backends for World {
    fn source(&self, _cluster: &Cluster) -> Box<dyn CatalogSource> {
        Box::new(ScriptedSource(self.clone()))
    }
    fn executor(&self, _cluster: &Cluster) -> Arc<dyn Executor> {
        Arc::new(FakeExecutor(self.clone()))
    }
}

/// The example's Sunday-night blackout on `recover`: kept, it refused every action of a test
/// run made then (blackouts are tested with fixed clocks in `gates::tests`).
const EXAMPLE_BLACKOUT: &str =
    "    blackouts:\n      - {days: [sun], start: \"01:00\", end: \"05:00\"}\n";

/// The example policy without `for` delays and blackouts, with quick verification.
fn policy_text(extra_rule: &str) -> String {
    assert!(
        crate::policy::tests::EXAMPLE.contains(EXAMPLE_BLACKOUT),
        "the example policy's blackout changed: update EXAMPLE_BLACKOUT"
    );
    let base = crate::policy::tests::EXAMPLE
        .replace(EXAMPLE_BLACKOUT, "")
        .replace("    for: 2m\n", "")
        .replace(
            "  verify_up_deadline: 10m\n  verify_sync_deadline: 6h\n  verify_poll_interval: 10s\n",
            "  verify_up_deadline: 2s\n  verify_sync_deadline: 2s\n  verify_poll_interval: 0s\n",
        );
    base.replace("rules:\n", &format!("rules:\n{extra_rule}"))
}

struct Harness {
    dir: tempfile::TempDir,
    journal: Arc<dyn Journal>,
    state: Arc<AppState>,
    world: World,
    handle: Handle,
}

fn start_harness(dir: tempfile::TempDir, policy: &str, world: World) -> Harness {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let journal: Arc<dyn Journal> =
        Arc::new(SqliteJournal::open(&dir.path().join("journal.db")).expect("journal"));
    let metrics = Arc::new(Metrics::new("test"));
    let policy = Arc::new(Policy::parse(policy).expect("policy"));
    let handle = start(
        PlannerConfig {
            journal: journal.clone(),
            metrics: metrics.clone(),
            policy,
            run_dir: dir.path().join("runs"),
            sweep_interval: Duration::from_secs(3600),
        },
        Arc::new(world.clone()),
    );
    let state = Arc::new(AppState {
        journal: journal.clone(),
        metrics,
        auth: Authenticator::default().with_token(b"example-token"),
        mtls: false,
        body_limit: crate::http::DEFAULT_BODY_LIMIT,
        planner: Some(handle.clone()),
    });
    Harness {
        dir,
        journal,
        state,
        world,
        handle,
    }
}

fn harness(policy: &str, world: World) -> Harness {
    start_harness(tempfile::tempdir().expect("tempdir"), policy, world)
}

async fn post(h: &Harness, body: Vec<u8>) -> StatusCode {
    let request = Request::post("/api/v1/alerts")
        .header("content-type", "application/json")
        .header("authorization", "Bearer example-token")
        .body(Body::from(body))
        .expect("request");
    crate::http::router(h.state.clone())
        .oneshot(request)
        .await
        .expect("response")
        .status()
}

/// The recorded delivery, keeping only alert `index` (0: dbid 2, 1: dbid 3), optionally
/// edited.
fn delivery(index: usize, edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mut value: serde_json::Value =
        serde_json::from_slice(&recorded_body("firing-two-segments-down.json")).expect("json");
    let alert = value["alerts"][index].clone();
    value["alerts"] = serde_json::json!([alert]);
    edit(&mut value["alerts"][0]);
    serde_json::to_vec(&value).expect("encode")
}

/// A bounded wait for the lane's asynchronous work (a guard, not a speed assertion).
async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(value) = probe() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn terminal_actions(h: &Harness) -> Vec<ActionRecord> {
    h.journal
        .actions(None)
        .expect("actions")
        .iter()
        .filter_map(|a| h.journal.action(a.id).expect("action"))
        .collect()
}

async fn action_in(h: &Harness, state: ActionState) -> ActionRecord {
    eventually(state.as_str(), || {
        terminal_actions(h).into_iter().find(|a| a.state == state)
    })
    .await
}

async fn all_decided(h: &Harness) {
    eventually("every event decided", || {
        h.journal
            .undecided_events()
            .expect("events")
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_payload_fifty_times_concurrently_gives_one_action() {
    let world = World::new(testutil::after_failover(), Some(testutil::unbalanced()));
    let h = harness(&policy_text(""), world);
    let body = recorded_body("firing-two-segments-down.json");
    let mut posts = Vec::new();
    for _ in 0..50 {
        let state = h.state.clone();
        let body = body.clone();
        posts.push(tokio::spawn(async move {
            let request = Request::post("/api/v1/alerts")
                .header("content-type", "application/json")
                .header("authorization", "Bearer example-token")
                .body(Body::from(body))
                .expect("request");
            crate::http::router(state)
                .oneshot(request)
                .await
                .expect("response")
                .status()
        }));
    }
    for post in posts {
        assert_eq!(post.await.expect("join"), StatusCode::ACCEPTED);
    }
    let done = action_in(&h, ActionState::Succeeded).await;
    all_decided(&h).await;
    assert_eq!(done.plan.targets, vec![2]);
    assert_eq!(done.plan.argv, ["gprecoverseg", "-a"]);
    assert_eq!(h.world.commands().len(), 1);
    // The second alert (dbid 3) found nothing left to do: a recorded no-op, not a run.
    let actions = terminal_actions(&h);
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(actions.iter().any(|a| a.state == ActionState::NoOp));
    assert!(done.verifications.iter().all(|v| v.succeeded));
    assert!(*h.world.probes.lock().expect("lock") >= 1);
    let metrics = h.state.metrics.encode().expect("metrics");
    assert!(metrics.contains(
        "greenplum_remediator_actions_total{cluster=\"gp-prod\",action=\"recover\",result=\"succeeded\"} 1"
    ));
    assert!(metrics.contains("greenplum_remediator_events_total{decision=\"duplicate\"} 98"));
}

#[tokio::test]
async fn resolved_alerts_start_nothing() {
    let world = World::new(testutil::after_failover(), Some(testutil::unbalanced()));
    let h = harness(&policy_text(""), world);
    let resolved = delivery(0, |a| a["status"] = "resolved".into());
    assert_eq!(post(&h, resolved).await, StatusCode::ACCEPTED);
    all_decided(&h).await;
    assert!(h.world.commands().is_empty());
    assert!(terminal_actions(&h).is_empty());
}

#[tokio::test]
async fn a_healthy_cluster_is_a_recorded_no_op() {
    let world = World::new(testutil::healthy(), None);
    let h = harness(&policy_text(""), world);
    assert_eq!(post(&h, delivery(0, |_| {})).await, StatusCode::ACCEPTED);
    let noop = action_in(&h, ActionState::NoOp).await;
    assert!(noop.plan.targets.is_empty());
    assert!(h.world.commands().is_empty());
}

#[tokio::test]
async fn labels_holding_shell_syntax_change_nothing() {
    let world = World::new(testutil::after_failover(), Some(testutil::unbalanced()));
    let h = harness(&policy_text(""), world);
    let marker = h.dir.path().join("pwned");
    let evil = format!("$(touch {0}); `touch {0}`; rm -rf /", marker.display());
    let body = delivery(0, |a| {
        a["labels"]["dbid"] = evil.clone().into();
        a["labels"]["hostname"] = format!("sdw1; touch {}", marker.display()).into();
        a["labels"]["content"] = "0 -F".into();
    });
    assert_eq!(post(&h, body).await, StatusCode::ACCEPTED);
    let done = action_in(&h, ActionState::Succeeded).await;
    let commands = h.world.commands();
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].argv, ["gprecoverseg", "-a"]);
    // Targets and host come from the catalog, not from the labels.
    assert_eq!(done.plan.targets, vec![2]);
    assert_eq!(commands[0].host.as_deref(), Some("mdw"));
    let everything = format!("{:?}", commands[0]);
    assert!(!everything.contains("touch") && !everything.contains("-F"));
    assert!(!marker.exists());
}

#[tokio::test]
async fn double_fault_is_refused_with_its_gate() {
    let world = World::new(testutil::double_fault(), None);
    let h = harness(&policy_text(""), world);
    assert_eq!(post(&h, delivery(0, |_| {})).await, StatusCode::ACCEPTED);
    let refused = action_in(&h, ActionState::Refused).await;
    assert_eq!(refused.history[0].detail["gate"], "double_fault");
    assert!(h.world.commands().is_empty());
}

#[tokio::test]
async fn pause_refuses_and_resume_allows() {
    let world = World::new(testutil::after_failover(), Some(testutil::unbalanced()));
    let h = harness(&policy_text(""), world);
    h.journal
        .record_control(ControlKind::Pause, None, "ops", "maintenance", Utc::now())
        .expect("pause");
    assert_eq!(post(&h, delivery(0, |_| {})).await, StatusCode::ACCEPTED);
    let refused = action_in(&h, ActionState::Refused).await;
    assert_eq!(refused.history[0].detail["gate"], "paused");
    assert!(h.world.commands().is_empty());
    h.journal
        .record_control(ControlKind::Resume, None, "ops", "done", Utc::now())
        .expect("resume");
    let again = delivery(0, |a| a["startsAt"] = "2026-11-21T17:00:00Z".into());
    assert_eq!(post(&h, again).await, StatusCode::ACCEPTED);
    action_in(&h, ActionState::Succeeded).await;
    assert_eq!(h.world.commands().len(), 1);
}

#[tokio::test]
async fn outside_the_window_is_refused() {
    let world = World::new(testutil::after_failover(), Some(testutil::unbalanced()));
    // A window on a day that is not today.
    let tomorrow = (Utc::now() + chrono::Duration::days(1))
        .format("%a")
        .to_string()
        .to_lowercase();
    let rule = format!(
        "  - name: windowed\n    match: {{alertname: GreenplumSegmentDown}}\n    action: recover\n    approval: auto\n    windows: [{{days: [{tomorrow}], start: \"00:00\", end: \"23:59\"}}]\n"
    );
    let h = harness(&policy_text(&rule), world);
    assert_eq!(post(&h, delivery(0, |_| {})).await, StatusCode::ACCEPTED);
    let refused = action_in(&h, ActionState::Refused).await;
    assert_eq!(refused.history[0].detail["gate"], "window");
    assert!(h.world.commands().is_empty());
}

fn past_execution(journal: &dyn Journal, rule: &str, succeeded: bool) {
    let plan = NewAction {
        created_at: Utc::now(),
        cluster: "gp-prod".into(),
        action: crate::actions::ActionKind::Recover,
        rule: rule.into(),
        targets: vec![9],
        intent: "old".into(),
        digest: String::new(),
        argv: vec![],
        host: None,
        approval_required: false,
        expires_at: None,
        event_id: None,
    };
    let first = StateChange {
        at: Utc::now(),
        state: if succeeded {
            ActionState::Succeeded
        } else {
            ActionState::Failed
        },
        detail: serde_json::json!({}),
    };
    let id = journal.create_action(&plan, &first).expect("action");
    journal
        .record_execution_start(
            id,
            &ExecutionStart {
                started_at: Utc::now() - chrono::Duration::minutes(30),
                pid: None,
                pid_start_ticks: None,
                host: None,
                argv: vec![],
                log_path: String::new(),
                replica: None,
            },
        )
        .expect("execution");
    journal
        .record_verification(
            id,
            "gp-prod",
            &Verification {
                at: Utc::now(),
                succeeded,
                detail: serde_json::json!({}),
            },
        )
        .expect("verification");
}

#[tokio::test]
async fn exhausted_budget_is_refused() {
    let world = World::new(testutil::after_failover(), Some(testutil::unbalanced()));
    let h = harness(&policy_text(""), world);
    past_execution(h.journal.as_ref(), "recover-down-segments", true);
    past_execution(h.journal.as_ref(), "recover-down-segments", true);
    assert_eq!(post(&h, delivery(0, |_| {})).await, StatusCode::ACCEPTED);
    let refused = action_in(&h, ActionState::Refused).await;
    assert_eq!(refused.history[0].detail["gate"], "budget");
    assert!(h.world.commands().is_empty());
}

#[tokio::test]
async fn open_breaker_is_refused_until_reset() {
    let world = World::new(testutil::after_failover(), Some(testutil::unbalanced()));
    let h = harness(&policy_text(""), world);
    for _ in 0..3 {
        past_execution(h.journal.as_ref(), "other-rule", false);
    }
    assert_eq!(post(&h, delivery(0, |_| {})).await, StatusCode::ACCEPTED);
    let refused = action_in(&h, ActionState::Refused).await;
    assert_eq!(refused.history[0].detail["gate"], "breaker");
    assert!(h.world.commands().is_empty());
    h.journal
        .record_control(
            ControlKind::BreakerReset,
            Some("gp-prod"),
            "ops",
            "fixed",
            Utc::now(),
        )
        .expect("reset");
    let again = delivery(0, |a| a["startsAt"] = "2026-11-21T17:00:00Z".into());
    assert_eq!(post(&h, again).await, StatusCode::ACCEPTED);
    all_decided(&h).await;
    action_in(&h, ActionState::Succeeded).await;
}

fn required_recover_rule() -> &'static str {
    "  - name: recover-with-approval\n    match: {alertname: GreenplumSegmentDown}\n    action: recover\n    approval: required\n"
}

#[tokio::test]
async fn approval_flow_runs_once_after_approval() {
    let world = World::new(testutil::after_failover(), Some(testutil::unbalanced()));
    let h = harness(&policy_text(required_recover_rule()), world);
    assert_eq!(post(&h, delivery(0, |_| {})).await, StatusCode::ACCEPTED);
    let waiting = action_in(&h, ActionState::AwaitingApproval).await;
    assert!(waiting.plan.expires_at.is_some());
    assert!(h.world.commands().is_empty());
    // A redelivery with a new startsAt is the same intent: no second plan.
    let again = delivery(0, |a| a["startsAt"] = "2026-11-21T17:00:00Z".into());
    assert_eq!(post(&h, again).await, StatusCode::ACCEPTED);
    all_decided(&h).await;
    assert_eq!(terminal_actions(&h).len(), 1);

    let approval = Approval {
        at: Utc::now(),
        decision: ApprovalDecision::Approve,
        who: "alice".into(),
        why: "checked the host".into(),
    };
    let state = h
        .handle
        .decide(waiting.id, approval.clone())
        .await
        .expect("decide");
    assert_eq!(state, ActionState::Approved);
    let done = action_in(&h, ActionState::Succeeded).await;
    assert_eq!(done.id, waiting.id);
    assert_eq!(done.approvals[0].who, "alice");
    assert_eq!(h.world.commands().len(), 1);
    // A second approval changes nothing.
    assert!(h.handle.decide(waiting.id, approval).await.is_err());
    assert_eq!(h.world.commands().len(), 1);
}

#[tokio::test]
async fn rejected_and_stale_approvals_never_run() {
    let world = World::new(testutil::after_failover(), Some(testutil::unbalanced()));
    let h = harness(&policy_text(required_recover_rule()), world);
    assert_eq!(post(&h, delivery(0, |_| {})).await, StatusCode::ACCEPTED);
    let waiting = action_in(&h, ActionState::AwaitingApproval).await;
    let reject = Approval {
        at: Utc::now(),
        decision: ApprovalDecision::Reject,
        who: "bob".into(),
        why: "host is being replaced".into(),
    };
    assert_eq!(
        h.handle.decide(waiting.id, reject).await.expect("decide"),
        ActionState::Rejected
    );
    assert!(h.world.commands().is_empty());

    // Approved, but the catalog changed meanwhile (another failure): the plan is stale.
    let again = delivery(0, |a| a["startsAt"] = "2026-11-21T17:00:00Z".into());
    assert_eq!(post(&h, again).await, StatusCode::ACCEPTED);
    let waiting = eventually("second plan", || {
        terminal_actions(&h)
            .into_iter()
            .find(|a| a.state == ActionState::AwaitingApproval)
    })
    .await;
    *h.world.snapshot.lock().expect("lock") = testutil::snapshot(&[
        testutil::COORDINATOR[0],
        (2, 0, 'm', 'p', 'n', 'd', "sdw1"),
        (5, 0, 'p', 'm', 'n', 'u', "sdw2"),
        (3, 1, 'm', 'p', 'n', 'd', "sdw1"),
        (6, 1, 'p', 'm', 'n', 'u', "sdw2"),
    ]);
    let approve = Approval {
        at: Utc::now(),
        decision: ApprovalDecision::Approve,
        who: "alice".into(),
        why: "go".into(),
    };
    h.handle.decide(waiting.id, approve).await.expect("decide");
    let refused = action_in(&h, ActionState::Refused).await;
    assert_eq!(
        refused.history.last().expect("state").detail["gate"],
        "plan_changed"
    );
    assert!(h.world.commands().is_empty());
}

/// Journals a recover of dbid 2 as `running`, with the spawn of a command that is gone now
/// (its pid exited): what a crash, or a journal lost mid-action, leaves behind.
fn journal_running_recover(
    journal: &dyn Journal,
    dir: &std::path::Path,
) -> (i64, NewAction, StateChange) {
    let plan = NewAction {
        created_at: Utc::now(),
        cluster: "gp-prod".into(),
        action: crate::actions::ActionKind::Recover,
        rule: "recover-down-segments".into(),
        targets: vec![2],
        intent: "gp-prod/recover/2".into(),
        digest: String::new(),
        argv: vec!["gprecoverseg".into(), "-a".into()],
        host: Some("mdw".into()),
        approval_required: false,
        expires_at: None,
        event_id: None,
    };
    let running = StateChange {
        at: Utc::now(),
        state: ActionState::Running,
        detail: serde_json::json!({"phase": "starting"}),
    };
    let id = journal.create_action(&plan, &running).expect("action");
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let pid = child.id();
    child.wait().expect("wait");
    journal
        .record_execution_start(
            id,
            &ExecutionStart {
                started_at: Utc::now(),
                pid: Some(pid),
                pid_start_ticks: Some(1),
                host: Some("mdw".into()),
                argv: plan.argv.clone(),
                log_path: dir.join("runs/gp-prod/1.log").display().to_string(),
                replica: None,
            },
        )
        .expect("execution");
    (id, plan, running)
}

#[tokio::test]
async fn restart_with_a_running_action_does_not_start_it_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A previous run journalled "running" and the spawn of a command that is gone now.
    {
        let journal = SqliteJournal::open(&dir.path().join("journal.db")).expect("journal");
        let (_, plan, running) = journal_running_recover(&journal, dir.path());
        // A second one crashed between "running" and the spawn record.
        let second = NewAction {
            intent: "gp-prod/recover/3".into(),
            targets: vec![3],
            ..plan
        };
        journal.create_action(&second, &running).expect("action");
    }
    // The cluster recovered meanwhile: verification succeeds without running anything.
    let world = World::new(testutil::unbalanced(), None);
    let h = start_harness(dir, &policy_text(""), world);
    let done = eventually("both verified", || {
        let actions = terminal_actions(&h);
        actions
            .iter()
            .all(|a| a.state == ActionState::Succeeded)
            .then_some(actions)
    })
    .await;
    assert_eq!(done.len(), 2);
    assert!(h.world.commands().is_empty());
    let reattach = done[1]
        .history
        .iter()
        .any(|c| c.detail.get("reattach").is_some());
    assert!(reattach, "{:?}", done[1].history);
}

/// The journal lost the end of an action while the lane ran it (a PostgreSQL journal gone
/// in the middle, back later): the action stays `running` with its spawn journalled. The
/// next tick takes it up as a restart would, by verifying, without a restart and without
/// running the command again.
#[tokio::test]
async fn a_tick_takes_up_an_action_that_lost_its_end_to_the_journal() {
    let world = World::new(testutil::unbalanced(), None);
    let h = harness(&policy_text(""), world);
    // The lane has started (its start-up re-attach is behind it) once it read the catalog.
    eventually("the lane's first read", || {
        (*h.world.reads.lock().expect("lock") > 0).then_some(())
    })
    .await;
    let (id, _, _) = journal_running_recover(h.journal.as_ref(), h.dir.path());

    h.handle.tick();
    let done = action_in(&h, ActionState::Succeeded).await;
    assert_eq!(done.id, id);
    assert!(h.world.commands().is_empty(), "never started again");
    assert!(
        done.history
            .iter()
            .any(|c| c.detail.get("reattach").is_some()),
        "{:?}",
        done.history
    );
}

#[tokio::test]
async fn restart_replans_undecided_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let journal = SqliteJournal::open(&dir.path().join("journal.db")).expect("journal");
        let payload = crate::alert::WebhookPayload::parse(&delivery(0, |_| {})).expect("payload");
        journal
            .record_delivery(Utc::now(), "{}", &payload.alerts)
            .expect("delivery");
    }
    let world = World::new(testutil::after_failover(), Some(testutil::unbalanced()));
    let h = start_harness(dir, &policy_text(""), world);
    action_in(&h, ActionState::Succeeded).await;
    assert_eq!(h.world.commands().len(), 1);
}

#[tokio::test]
async fn failed_verifications_record_failure() {
    // The command "runs" but the catalog never changes.
    let world = World::new(testutil::after_failover(), None);
    let h = harness(&policy_text(""), world);
    assert_eq!(post(&h, delivery(0, |_| {})).await, StatusCode::ACCEPTED);
    let failed = action_in(&h, ActionState::Failed).await;
    assert!(!failed.verifications[0].succeeded);
    let metrics = h.state.metrics.encode().expect("metrics");
    assert!(metrics.contains("result=\"failed\"} 1"), "{metrics}");
    let _ = BTreeMap::<i16, u32>::new();
}

/// Issue 12, bug 4: what the lane sees of the standby while the coordinator answers is
/// journalled (in sync or not, who saw it), not only kept in memory.
#[tokio::test]
async fn the_lane_journals_what_it_sees_of_the_standby() {
    let h = harness(&policy_text(""), World::new(testutil::healthy(), None));
    let seen = eventually("the standby sighting in the journal", || {
        h.journal.standby_sighting("gp-prod").expect("read")
    })
    .await;
    assert!(seen.in_sync, "{seen:?}");
    assert!(
        seen.seen_by.ends_with(&format!(":{}", std::process::id())),
        "{seen:?}"
    );
    assert_eq!(seen.detail["walsender"]["state"], "streaming", "{seen:?}");
}

/// Issue 12, bug 4: a remediator restarted during a coordinator outage used to start with
/// "never seen in sync" and could not activate the standby even with approval. The journalled
/// sight is used, and the approver sees its age.
#[tokio::test]
async fn a_restart_during_a_coordinator_outage_uses_the_journalled_standby_sighting() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // What the previous run saw a minute before the coordinator died.
        let journal = SqliteJournal::open(&dir.path().join("journal.db")).expect("journal");
        let seen = crate::journal::StandbySighting {
            at: Utc::now() - chrono::Duration::seconds(60),
            in_sync: true,
            detail: serde_json::json!({"walsender": {"state": "streaming"}}),
            seen_by: "previous-run:1".into(),
        };
        journal
            .record_standby_sighting("gp-prod", &seen)
            .expect("sighting");
    }
    let world = World::new(testutil::coordinator_down(), None);
    let h = start_harness(dir, &policy_text(""), world);
    let body = delivery(0, |a| {
        a["labels"]["alertname"] = "GreenplumCoordinatorDown".into();
        a["labels"]["remediation"] = "activate_standby".into();
    });
    assert_eq!(post(&h, body).await, StatusCode::ACCEPTED);
    let waiting = action_in(&h, ActionState::AwaitingApproval).await;
    let why = waiting.history[0].detail["why"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains("standby last seen streaming in sync") && why.contains("by previous-run:1"),
        "{why}"
    );
    let approval = Approval {
        at: Utc::now(),
        decision: ApprovalDecision::Approve,
        who: "alice".into(),
        why: "the coordinator host is gone".into(),
    };
    h.handle.decide(waiting.id, approval).await.expect("decide");
    eventually("gpactivatestandby started", || {
        (!h.world.commands().is_empty()).then_some(())
    })
    .await;
    assert!(
        h.world.commands()[0]
            .argv
            .iter()
            .any(|a| a.contains("gpactivatestandby")),
        "{:?}",
        h.world.commands()
    );
}
