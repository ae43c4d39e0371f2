//! Issue 8's fault matrix, the rows that need the whole chain (lab, exporter, Prometheus with
//! the shipped rules, Alertmanager, remediator). `heal.rs` holds the rows "primary killed",
//! "mirror killed", "standby killed" and "coordinator killed"; the remediator-only rows live
//! in `remediator/tests/`.
//!
//! Every row states what the metrics, the alerts and the remediator must show, asserts it,
//! and ends by checking that no committed row was lost (the lab's checksum). Waits are guards
//! against hangs, never speed checks.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use gplab::{Flavor, SegmentRow};
use greenplum_e2e::exporter::ExporterOptions;
use greenplum_e2e::faults::{
    advance_wal, create_application_role, delivery, free_bytes, start_by_hand, CatalogLock,
    ConnectionHog,
};
use greenplum_e2e::process::wait_for;
use greenplum_e2e::scenario::{
    acting_primary, all_actions, argv, balanced_and_synchronized, last_action_id, wait_action,
    wait_firing, wait_healthy, Story,
};
use greenplum_e2e::stack::{Stack, StackConfig, CLUSTER};
use serde_json::Value;

/// One whole stack at a time: two on a 2-core machine only slow each other down.
static ONE_STACK: std::sync::Mutex<()> = std::sync::Mutex::new(());

const GUARD: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(500);
/// GreenplumMirrorWalLagHigh's threshold (1 GiB), as shipped.
const LAG_ALERT_BYTES: u64 = 1 << 30;

fn one_stack() -> std::sync::MutexGuard<'static, ()> {
    ONE_STACK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `for:` divided by 4, as heal.rs: the preferred-role alert waits 75 s, so a rebalance's
/// own short failover cannot look like a new fault.
fn healing_config() -> StackConfig {
    StackConfig {
        rule_speedup: 4,
        ..StackConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Small readers over Prometheus, the exporter and the journal.

fn number(stack: &Stack, expr: &str) -> Result<Option<f64>> {
    Ok(stack.prometheus.query(expr)?.first().map(|s| s.number()))
}

/// Waits until `expr` returns at least one sample.
fn wait_query(stack: &Stack, what: &str, expr: &str) -> Result<f64> {
    wait_for(what, GUARD, POLL, || number(stack, expr))
}

/// Waits until Prometheus holds no alert (pending or firing) named `alertname`.
fn wait_cleared(stack: &Stack, alertname: &str) -> Result<()> {
    wait_for(&format!("{alertname} to resolve"), GUARD, POLL, || {
        let alerts = stack.prometheus.alerts()?;
        Ok((!alerts
            .iter()
            .any(|a| a.label("alertname") == Some(alertname)))
        .then_some(()))
    })
}

fn executed(actions: &[Value]) -> Vec<&Value> {
    actions
        .iter()
        .filter(|a| !a["execution"].is_null())
        .collect()
}

/// Waits for a new action of `kind` in a final state and returns its full record.
fn wait_settled(stack: &Stack, kind: &str, after_id: i64) -> Result<Value> {
    wait_for(&format!("a settled {kind} action"), GUARD, POLL, || {
        for action in all_actions(stack, after_id)? {
            let state = action["state"].as_str().unwrap_or_default();
            if action["action"] == kind
                && matches!(
                    state,
                    "refused" | "awaiting_approval" | "no_op" | "succeeded" | "failed"
                )
            {
                return Ok(Some(action));
            }
        }
        Ok(None)
    })
}

/// The refusal (gate and why) journalled for a refused action.
fn refusal(action: &Value) -> &Value {
    action["history"]
        .as_array()
        .and_then(|h| h.iter().find(|c| c["state"] == "refused"))
        .map(|c| &c["detail"])
        .unwrap_or(&Value::Null)
}

/// Series identities (`name{labels}`) of a text-format scrape, without values.
fn series(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(id, _)| id.to_string()))
        .collect()
}

/// The value of the series `id` (exactly `name{labels}` as exposed) in a scrape.
fn sample(body: &str, id: &str) -> Option<f64> {
    body.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(name, _)| *name == id)
        .and_then(|(_, v)| v.parse().ok())
}

fn checksum(stack: &Stack) -> Result<String> {
    let c = stack.lab.checksum()?;
    Ok(format!("{}/{}", c.digest, c.rows))
}

/// The start of most rows: `rows` committed rows loaded and the cluster healthy. Returns
/// the checksum the row must end with and the last action id before the fault.
fn loaded_and_healthy(stack: &Stack, story: &mut Story, rows: u64) -> Result<(String, i64)> {
    stack.lab.load(rows)?;
    let before = checksum(stack)?;
    wait_healthy(stack, story)?;
    Ok((before, last_action_id(stack)?))
}

/// The end of a row where nothing may run: no action after `last` executed a command and
/// the committed rows are still `before`.
fn nothing_executed_and_rows_kept(stack: &Stack, last: i64, before: &str) -> Result<()> {
    let actions = all_actions(stack, last)?;
    assert!(executed(&actions).is_empty(), "{actions:#?}");
    assert_eq!(checksum(stack)?, before, "committed rows lost");
    Ok(())
}

fn row(rows: &[SegmentRow], content: i16, role: char) -> Result<SegmentRow> {
    rows.iter()
        .find(|s| s.content == content && s.role == role)
        .cloned()
        .with_context(|| format!("content {content} has no {role} row"))
}

// ---------------------------------------------------------------------------------------
// Row: a whole host killed.

/// **A whole host killed.** `sdw1` holds the primary of content 0 and the mirror of content
/// 2 (group mirroring over three hosts); every instance on it stops at once.
///
/// - Metrics: `greenplum_segment_up == 0` for exactly the dbids on sdw1; role mismatches
///   (two per failed-over primary: the dead one and its promoted mirror);
///   `greenplum_contents_unprotected` counts every content that lost an instance.
/// - Alerts: `GreenplumSegmentDown` fires (for the failed primary first; the mirror's
///   instance is marked down after its grace period and may be healed before its own
///   `for:` ends).
/// - Remediator: ONE `gprecoverseg -a` whose targets are every down dbid, planned from a
///   fresh catalog read on the first alert (the stand-in rewinds the failed primary and
///   restarts the mirror, both on the stopped host), verified; then one
///   `gprecoverseg -ar` once `GreenplumSegmentsNotInPreferredRole` fires. Nothing else runs.
/// - End: every pair up, synchronized and in its preferred role; checksum unchanged.
#[test]
fn a_killed_host_is_recovered_in_one_gprecoverseg_and_rebalanced() -> Result<()> {
    let _one = one_stack();
    let stack = Stack::up(&healing_config())?;
    let lab = &stack.lab;
    let mut story = Story::new(true);
    let (before, last) = loaded_and_healthy(&stack, &mut story, 20_000)?;

    let on_host: Vec<SegmentRow> = lab
        .segments()?
        .into_iter()
        .filter(|s| s.content >= 0 && s.hostname == "sdw1")
        .collect();
    let primaries = on_host.iter().filter(|s| s.role == 'p').count();
    ensure!(
        primaries > 0 && primaries < on_host.len(),
        "sdw1 must hold primaries of some contents and mirrors of others: {on_host:?}"
    );
    let down: BTreeSet<i16> = on_host.iter().map(|s| s.dbid).collect();
    story.restart_clock();
    lab.fail_host("sdw1")?;
    story.say(format!("killed host sdw1: dbids {down:?}"));

    lab.wait_for_catalog("FTS to fail sdw1's primaries over", GUARD, |rows| {
        on_host.iter().all(|victim| {
            rows.iter()
                .any(|r| r.dbid == victim.dbid && r.status == 'd' && r.role == 'm')
        })
    })?;
    story.say("FTS marked every sdw1 instance down and promoted the mirrors of its primaries");

    let seen_down = wait_for("every sdw1 dbid down in Prometheus", GUARD, POLL, || {
        let seen: BTreeSet<i16> = stack
            .prometheus
            .query("greenplum_segment_up == 0")?
            .iter()
            .filter_map(|s| s.label("dbid")?.parse().ok())
            .collect();
        Ok((seen == down).then_some(seen))
    })?;
    assert_eq!(seen_down, down);
    let mismatch = wait_query(
        &stack,
        "role mismatches",
        "greenplum_segments_role_mismatch > 0",
    )?;
    assert_eq!(mismatch, 2.0 * primaries as f64);
    let unprotected = number(&stack, "greenplum_contents_unprotected")?;
    assert_eq!(unprotected, Some(on_host.len() as f64));
    // The first alert to fire is enough: the remediator scopes its plan to every dbid the
    // catalog shows down, so the later alerts may resolve before their `for:` ends.
    wait_firing(&stack, "GreenplumSegmentDown", |a| {
        a.label("dbid")
            .and_then(|d| d.parse::<i16>().ok())
            .is_some_and(|d| down.contains(&d))
    })?;
    story.say("GreenplumSegmentDown fired for an sdw1 dbid");

    let recover = wait_action(&stack, "recover", last, "recover to be verified", |r| {
        r["state"] == "succeeded"
    })?;
    story.say(format!(
        "remediator ran `{}` for {}",
        argv(&recover),
        recover["targets"]
    ));
    let targets: BTreeSet<i16> = recover["targets"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|d| d.as_i64().and_then(|d| i16::try_from(d).ok()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        targets, down,
        "one recover for every down dbid: {recover:#}"
    );
    assert_eq!(recover["argv"], serde_json::json!(["gprecoverseg", "-a"]));

    wait_action(&stack, "rebalance", last, "rebalance to be verified", |r| {
        r["state"] == "succeeded"
    })?;
    lab.wait_for_catalog(
        "balanced and synchronized",
        GUARD,
        balanced_and_synchronized,
    )?;
    wait_healthy(&stack, &mut story)?;

    let actions = all_actions(&stack, last)?;
    let ran = executed(&actions);
    let kinds: Vec<&str> = ran.iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(kinds, ["recover", "rebalance"], "{actions:#?}");
    assert_eq!(checksum(&stack)?, before, "committed rows lost");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Row: a mirror lagging under write load.

/// **Mirror lagging under write load** (GP7 flavor, so the seconds series exists too).
/// Replay on content 0's mirror stops (`recovery_min_apply_delay`) while rows are written and
/// the primary's WAL moves past the alert's 1 GiB threshold; the mirror keeps receiving and
/// flushing in sync.
///
/// - Metrics: `greenplum_mirror_wal_lag_bytes{content="0",stage="replay"}` above 1 GiB while
///   content 1's lag stays small; `greenplum_mirror_replay_lag_seconds{content="0"}` present;
///   content 0 still `streaming` and the cluster `healthy` (nothing is down).
/// - Alerts: `GreenplumMirrorWalLagHigh{content="0"}` fires (its `for:` divided by 20); it
///   carries no `remediation` label.
/// - Remediator: runs nothing (no rule approves an action for lag).
/// - After replay resumes: the lag returns to zero, the alert resolves; checksum unchanged.
#[test]
fn a_lagging_mirror_raises_the_lag_alert_and_nothing_runs() -> Result<()> {
    let _one = one_stack();
    let stack = Stack::up(&StackConfig {
        contents: 2,
        flavor: Flavor::Gp7,
        rule_speedup: 20,
        ..StackConfig::default()
    })?;
    let lab = &stack.lab;
    let mut story = Story::new(true);
    wait_healthy(&stack, &mut story)?;
    let last = last_action_id(&stack)?;
    let primary = row(&lab.segments()?, 0, 'p')?;
    // Without room the servers PANIC on a full disk and the row fails for the wrong reason.
    let free = free_bytes(lab.dir())?;
    ensure!(
        free > 2 * LAG_ALERT_BYTES,
        "this row keeps over 1 GiB of WAL on a mirror (the shipped threshold); only {free} bytes are free under {}",
        lab.dir().display()
    );

    lab.lag(0, true)?;
    story.restart_clock();
    lab.load(20_000)?;
    let moved = advance_wal(primary.port, LAG_ALERT_BYTES + (64 << 20))?;
    story.say(format!(
        "replay paused on content 0's mirror; wrote 20000 rows and moved its primary's WAL by {moved} bytes"
    ));
    let before = checksum(&stack)?;

    let replay = wait_query(
        &stack,
        "content 0's replay lag above the alert threshold",
        &format!(
            r#"greenplum_mirror_wal_lag_bytes{{content="0",stage="replay"}} > {LAG_ALERT_BYTES}"#
        ),
    )?;
    story.say(format!("replay lag of content 0: {replay} bytes"));
    let other = number(
        &stack,
        r#"sum(greenplum_mirror_wal_lag_bytes{content="1"})"#,
    )?
    .context("content 1 has no lag series")?;
    assert!(
        other < LAG_ALERT_BYTES as f64,
        "content 1 lags {other} bytes"
    );
    ensure!(
        number(
            &stack,
            r#"greenplum_mirror_replay_lag_seconds{content="0"}"#
        )?
        .is_some(),
        "no replay lag seconds for content 0"
    );
    assert_eq!(
        number(
            &stack,
            r#"greenplum_mirror_replication_state{content="0",state="streaming"}"#
        )?,
        Some(1.0)
    );
    wait_firing(&stack, "GreenplumMirrorWalLagHigh", |a| {
        a.label("content") == Some("0") && a.label("remediation").is_none()
    })?;
    story.say("GreenplumMirrorWalLagHigh fired for content 0");
    assert_eq!(
        number(&stack, r#"greenplum_cluster_state{state="healthy"}"#)?,
        Some(1.0),
        "a lagging but synchronized mirror leaves the cluster healthy"
    );

    lab.lag(0, false)?;
    wait_query(
        &stack,
        "content 0's mirror to replay everything",
        r#"greenplum_mirror_wal_lag_bytes{content="0",stage="replay"} == 0"#,
    )?;
    wait_cleared(&stack, "GreenplumMirrorWalLagHigh")?;
    story.say("replay resumed: the lag is gone and the alert resolved");

    nothing_executed_and_rows_kept(&stack, last, &before)
}

// ---------------------------------------------------------------------------------------
// Row: a double fault.

/// **Double fault** on content 1: its mirror stops and FTS marks it down, rows are written
/// to the primary alone, then the primary stops too. FTS cannot promote anything and leaves
/// the catalog as it is (the dead primary still says `u`, as recorded on GP 6.24.3).
///
/// - Metrics: `greenplum_segment_up == 0` for the mirror only; the `replication` collector
///   fails (every dispatch fails: "failed to acquire resources"), so the cluster is not
///   healthy and content 1 is unprotected. `greenplum_contents_unavailable` stays 0 because
///   the catalog does not show the fault; `greenplum_contents_suspected_unavailable` is 1.
/// - Alerts: `GreenplumSegmentDown` (critical) fires for the mirror. The shipped
///   `GreenplumContentSuspectedUnavailable` (critical) fires on the suspected count;
///   `GreenplumContentUnavailable` reads `contents_unavailable` only and stays silent.
/// - Remediator: the recover it plans is refused with gate `double_fault`; nothing executes.
/// - By hand: the primary (the newest data) is started with `pg_ctl`, then `gprecoverseg -a`
///   recovers the mirror; every row, including those written while the mirror was down, is
///   there.
#[test]
fn a_double_fault_is_refused_and_healed_by_hand() -> Result<()> {
    let _one = one_stack();
    let stack = Stack::up(&StackConfig {
        contents: 2,
        ..healing_config()
    })?;
    let lab = &stack.lab;
    let mut story = Story::new(true);
    lab.load(10_000)?;
    wait_healthy(&stack, &mut story)?;
    let last = last_action_id(&stack)?;
    let rows = lab.segments()?;
    let primary = row(&rows, 1, 'p')?;
    let mirror = row(&rows, 1, 'm')?;

    story.restart_clock();
    lab.fail_mirror(1)?;
    lab.wait_for_catalog("FTS to mark the mirror down", GUARD, |rows| {
        rows.iter()
            .any(|r| r.dbid == mirror.dbid && r.status == 'd')
    })?;
    lab.load(2_000)?;
    let before = checksum(&stack)?;
    lab.fail_primary(1)?;
    story.say(format!(
        "content 1: mirror dbid {} marked down, 2000 rows written to the primary alone, then primary dbid {} killed",
        mirror.dbid, primary.dbid
    ));

    let mirror_id = mirror.dbid.to_string();
    wait_firing(&stack, "GreenplumSegmentDown", |a| {
        a.label("dbid") == Some(mirror_id.as_str())
    })?;
    wait_query(
        &stack,
        "the replication collector to fail on the dispatch",
        r#"greenplum_exporter_collector_success{collector="replication"} == 0"#,
    )?;
    story.say("GreenplumSegmentDown fired for the mirror; dispatching queries fail");
    let down: BTreeSet<String> = stack
        .prometheus
        .query("greenplum_segment_up == 0")?
        .iter()
        .filter_map(|s| s.label("dbid").map(str::to_string))
        .collect();
    assert_eq!(down, BTreeSet::from([mirror_id.clone()]));
    assert_eq!(
        number(&stack, r#"greenplum_cluster_state{state="healthy"}"#)?,
        Some(0.0)
    );
    assert_eq!(number(&stack, "greenplum_contents_unprotected")?, Some(1.0));
    assert_eq!(number(&stack, "greenplum_contents_unavailable")?, Some(0.0));
    wait_query(
        &stack,
        "the exporter to suspect the double fault",
        "greenplum_contents_suspected_unavailable == 1",
    )?;
    // The catalog shows no double fault, so the catalog-based alert stays silent and the
    // suspicion's own alert (for: 3m, divided by the speed-up) carries the page.
    wait_firing(&stack, "GreenplumContentSuspectedUnavailable", |_| true)?;
    assert!(
        stack
            .prometheus
            .firing("GreenplumContentUnavailable")?
            .is_empty(),
        "GreenplumContentUnavailable reads contents_unavailable, which the catalog keeps at 0"
    );
    story.say("GreenplumContentSuspectedUnavailable fired (critical)");

    let refused = wait_settled(&stack, "recover", last)?;
    story.say(format!(
        "remediator: recover {} ({})",
        refused["state"],
        refusal(&refused)["why"]
    ));
    assert_eq!(refused["state"], "refused", "{refused:#}");
    assert_eq!(refusal(&refused)["gate"], "double_fault", "{refused:#}");
    assert!(refused["execution"].is_null());

    start_by_hand(lab, std::path::Path::new(&primary.datadir), primary.dbid)?;
    let status = lab.command("gprecoverseg").arg("-a").status()?;
    ensure!(status.success(), "gprecoverseg -a by hand: {status}");
    lab.wait_for_catalog("content 1 synchronized again", GUARD, |rows| {
        rows.iter()
            .filter(|r| r.content == 1)
            .all(|r| r.status == 'u' && r.mode == 's')
    })?;
    wait_healthy(&stack, &mut story)?;
    story.say("started the primary by hand and ran gprecoverseg -a: healthy");

    nothing_executed_and_rows_kept(&stack, last, &before)
}

// ---------------------------------------------------------------------------------------
// Row: the catalog blocked by a lock.

/// **Catalog blocked by a lock**: a session holds `LOCK TABLE gp_segment_configuration IN
/// ACCESS EXCLUSIVE MODE` in an open transaction. Prometheus scrapes every 3 s (timeout
/// 3 s, so the exporter's round is bounded at 2.5 s) and the exporter's statement timeout
/// is 1 s, as a production setup keeps the statement timeout below the scrape timeout.
///
/// - Metrics: a scrape during the lock answers (bounded) with `greenplum_up 1`,
///   `greenplum_exporter_collector_success{collector="segments"} 0` and
///   `greenplum_cluster_state{state="unknown"} 1`; the exporter logs the statement timeout.
///   The coordinator never looks down (`min_over_time(greenplum_up)` stays 1).
/// - Alerts: `GreenplumCollectorFailing{collector="segments"}` fires (`for:` divided by 60).
/// - Remediator: a `GreenplumSegmentDown` delivered during the lock (as a late Alertmanager
///   notification would be) is refused with gate `catalog`; nothing executes.
/// - After release: the collector succeeds, the alert resolves, the cluster is healthy;
///   checksum unchanged.
#[test]
fn a_locked_catalog_keeps_scrapes_bounded_and_the_remediator_refuses() -> Result<()> {
    let _one = one_stack();
    let stack = Stack::up(&StackConfig {
        contents: 2,
        rule_speedup: 60,
        prometheus_interval: Duration::from_secs(3),
        exporter: ExporterOptions {
            statement_timeout: Duration::from_secs(1),
            ..ExporterOptions::default()
        },
        ..StackConfig::default()
    })?;
    let lab = &stack.lab;
    let mut story = Story::new(true);
    let (before, last) = loaded_and_healthy(&stack, &mut story, 5_000)?;
    let primary = row(&lab.segments()?, 0, 'p')?;

    let locked_at = Instant::now();
    let mut lock = CatalogLock::take(lab.coordinator_port(), "gp_segment_configuration")?;
    story.restart_clock();
    story.say("a session holds ACCESS EXCLUSIVE on gp_segment_configuration");

    // The scrape answers; the HTTP client's 30 s timeout is the guard against a hang.
    let body = stack.exporter.scrape()?;
    assert_eq!(sample(&body, "greenplum_up"), Some(1.0), "{body}");
    assert_eq!(
        sample(
            &body,
            r#"greenplum_exporter_collector_success{collector="segments"}"#
        ),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, r#"greenplum_cluster_state{state="unknown"}"#),
        Some(1.0),
        "{body}"
    );
    assert!(
        stack.exporter.log().contains("statement timeout"),
        "the exporter's log names the cause:\n{}",
        stack.exporter.log()
    );

    wait_firing(&stack, "GreenplumCollectorFailing", |a| {
        a.label("collector") == Some("segments")
    })?;
    story.say("GreenplumCollectorFailing fired for the segments collector");

    let status = stack.remediator.post_alerts(&delivery(
        &[
            ("alertname", "GreenplumSegmentDown"),
            ("cluster", CLUSTER),
            ("remediation", "recover"),
            ("severity", "critical"),
            ("dbid", &primary.dbid.to_string()),
            ("content", "0"),
            ("hostname", &primary.hostname),
        ],
        "firing",
        &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "e2e0000000000004",
    ))?;
    ensure!((200..300).contains(&status), "webhook answered {status}");
    let refused = wait_settled(&stack, "recover", last)?;
    story.say(format!(
        "remediator: recover {} ({})",
        refused["state"],
        refusal(&refused)["why"]
    ));
    assert_eq!(refused["state"], "refused", "{refused:#}");
    assert_eq!(refusal(&refused)["gate"], "catalog", "{refused:#}");

    let held = locked_at.elapsed().as_secs().max(1);
    assert_eq!(
        number(&stack, &format!("min_over_time(greenplum_up[{held}s])"))?,
        Some(1.0),
        "a locked catalog must not look like a dead coordinator"
    );
    lock.release()?;
    story.say("lock released");

    wait_query(
        &stack,
        "the segments collector to succeed again",
        r#"greenplum_exporter_collector_success{collector="segments"} == 1"#,
    )?;
    wait_cleared(&stack, "GreenplumCollectorFailing")?;
    wait_healthy(&stack, &mut story)?;
    nothing_executed_and_rows_kept(&stack, last, &before)
}

// ---------------------------------------------------------------------------------------
// Row: max_connections reached.

/// **max_connections reached** on the coordinator (40 slots, 3 reserved for superusers).
/// First an application role fills every ordinary slot: the next application login gets
/// "remaining connection slots are reserved". Then superuser sessions take the reserved
/// slots too: "too many clients". The exporter (a superuser in the lab) keeps the
/// coordinator session it already holds, so monitoring goes on; restarted while the server
/// is full, it cannot log in and says so.
///
/// - Metrics with every slot taken, through the held session: `greenplum_up 1` and the
///   `segments` collector succeeds. After an exporter restart: `/metrics` still answers,
///   `greenplum_up 0`, `greenplum_endpoint_state{state="rejecting"} 1` for the coordinator
///   (alive and refusing, not `down`), the standby still `standby_in_recovery`; the exporter
///   logs "too many clients".
/// - Alerts: `GreenplumCoordinatorDown` fires once the restarted exporter cannot log in.
/// - Remediator: its fresh read goes through the session it holds, finds a writable
///   coordinator, and journals `activate_standby` as `no_op` ("a coordinator answers").
///   Restarted while the server is full (no session to reuse), it refuses a new
///   `GreenplumCoordinatorDown` delivery with gate `coordinator_reachable`: the coordinator
///   is alive, only refusing logins. Nothing executes.
/// - After the sessions close: `greenplum_up 1`, the alert resolves, the cluster is healthy,
///   the old coordinator still coordinates; checksum unchanged.
#[test]
fn a_coordinator_out_of_connections_is_reported_and_nothing_runs() -> Result<()> {
    let _one = one_stack();
    let mut stack = Stack::up(&StackConfig {
        contents: 2,
        rule_speedup: 20,
        ..StackConfig::default()
    })?;
    let mut story = Story::new(true);
    let (before, last) = loaded_and_healthy(&stack, &mut story, 5_000)?;
    let port = stack.lab.coordinator_port();
    let coordinator = format!("127.0.0.1:{port}");
    create_application_role(port, "e2e_app")?;

    let mut hog = ConnectionHog::new();
    // Role after role, until the server refuses; 100 is a guard above max_connections.
    let refused = hog.fill(port, "e2e_app", 100)?;
    story.restart_clock();
    story.say(format!(
        "e2e_app holds {} connections; the next one: {}",
        hog.held(),
        refused.message
    ));
    assert_eq!(refused.sqlstate.as_deref(), Some("53300"), "{refused:?}");
    assert!(refused.message.contains("reserved"), "{}", refused.message);
    let refused = hog.fill(port, gplab::conn::USER, 100)?;
    story.say(format!(
        "superuser sessions took the reserved slots too; the next login: {}",
        refused.message
    ));
    assert_eq!(refused.sqlstate.as_deref(), Some("53300"), "{refused:?}");
    assert!(
        refused.message.contains("too many clients"),
        "{}",
        refused.message
    );

    let body = stack.exporter.scrape()?;
    assert_eq!(sample(&body, "greenplum_up"), Some(1.0), "{body}");
    assert_eq!(
        sample(
            &body,
            r#"greenplum_exporter_collector_success{collector="segments"}"#
        ),
        Some(1.0),
        "{body}"
    );
    story.say("the exporter still reads the catalog through the session it holds");

    // The killed exporter's session frees a slot; take it before the new one can.
    let held = hog.held();
    stack.exporter.kill();
    wait_for(
        "the exporter's slot to be freed and taken",
        GUARD,
        POLL,
        || {
            hog.fill(port, gplab::conn::USER, 100)?;
            Ok((hog.held() > held).then_some(()))
        },
    )?;
    stack.exporter.restart()?;
    let rejecting =
        format!(r#"greenplum_endpoint_state{{endpoint="{coordinator}",state="rejecting"}} == 1"#);
    wait_query(
        &stack,
        "the coordinator endpoint to be rejecting",
        &rejecting,
    )?;
    let body = stack.exporter.scrape()?;
    assert_eq!(sample(&body, "greenplum_up"), Some(0.0), "{body}");
    assert!(
        stack.exporter.log().contains("too many clients"),
        "the exporter's log names the cause:\n{}",
        stack.exporter.log()
    );
    let standby = format!(
        "127.0.0.1:{}",
        stack
            .lab
            .standby_port()
            .context("the stack has a standby")?
    );
    assert_eq!(
        number(
            &stack,
            &format!(
                r#"greenplum_endpoint_state{{endpoint="{standby}",state="standby_in_recovery"}}"#
            )
        )?,
        Some(1.0)
    );
    story.say("restarted, the exporter cannot log in: up 0, coordinator rejecting");
    wait_firing(&stack, "GreenplumCoordinatorDown", |_| true)?;
    story.say("GreenplumCoordinatorDown fired");

    let activation = wait_settled(&stack, "activate_standby", last)?;
    let why = activation["history"][0]["detail"]["why"].clone();
    story.say(format!(
        "remediator: activate_standby {} ({why})",
        activation["state"]
    ));
    assert_eq!(activation["state"], "no_op", "{activation:#}");
    assert_eq!(why, "a coordinator answers", "{activation:#}");

    // A remediator without a held session (restarted) cannot log in either: every read
    // says "rejecting", which counts as unreachable, so only the gate that treats a
    // refusing server as alive stands between an approval and two coordinators.
    let held = hog.held();
    stack.remediator.guard().kill();
    wait_for(
        "the remediator's slots to be freed and taken",
        GUARD,
        POLL,
        || {
            hog.fill(port, gplab::conn::USER, 100)?;
            Ok((hog.held() > held).then_some(()))
        },
    )?;
    stack.remediator.restart()?;
    let first = activation["id"].as_i64().unwrap_or(0);
    let status = stack.remediator.post_alerts(&delivery(
        &[
            ("alertname", "GreenplumCoordinatorDown"),
            ("cluster", CLUSTER),
            ("remediation", "activate_standby"),
            ("severity", "critical"),
        ],
        "firing",
        &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "e2e0000000000005",
    ))?;
    ensure!((200..300).contains(&status), "webhook answered {status}");
    let activation = wait_settled(&stack, "activate_standby", first)?;
    story.say(format!(
        "restarted remediator: activate_standby {} ({})",
        activation["state"],
        refusal(&activation)["why"]
    ));
    assert_eq!(activation["state"], "refused", "{activation:#}");
    assert_eq!(
        refusal(&activation)["gate"],
        "coordinator_reachable",
        "{activation:#}"
    );

    hog.release();
    story.say("every session closed");
    wait_query(&stack, "the coordinator back", "greenplum_up == 1")?;
    wait_cleared(&stack, "GreenplumCoordinatorDown")?;
    wait_healthy(&stack, &mut story)?;
    assert_eq!(
        stack.lab.coordinator_port(),
        port,
        "the standby was not activated"
    );
    nothing_executed_and_rows_kept(&stack, last, &before)
}

// ---------------------------------------------------------------------------------------
// Row: the exporter restarted during a failover.

/// **The exporter killed (SIGKILL) right after a primary fails, and restarted** once
/// Prometheus has seen it down.
///
/// - Metrics: right after the restart the exporter exposes exactly the segment series it
///   exposed before the fault (no stale, none missing; the failover changes values only),
///   and after healing exactly the same series as before the fault.
/// - Alerts: `GreenplumSegmentDown` for the failed dbid fires once: its active-since time
///   (`ALERTS_FOR_STATE`) never changes, so it was not resolved and re-fired.
/// - Remediator: exactly one `recover` and one `rebalance` execute.
/// - End: balanced and synchronized; checksum unchanged.
#[test]
fn an_exporter_restarted_during_a_failover_misses_nothing() -> Result<()> {
    let _one = one_stack();
    let mut stack = Stack::up(&healing_config())?;
    let mut story = Story::new(true);
    let (before, last) = loaded_and_healthy(&stack, &mut story, 20_000)?;
    let series_before = series(&stack.exporter.scrape()?);
    let victim = acting_primary(&stack.lab.segments()?, 0)
        .context("content 0 has no primary")?
        .clone();

    story.restart_clock();
    stack.lab.fail_primary(0)?;
    stack.exporter.kill();
    story.say(format!(
        "killed primary dbid {} and, right after, the exporter (SIGKILL)",
        victim.dbid
    ));
    wait_query(
        &stack,
        "Prometheus to see the exporter down",
        r#"up{job="greenplum-exporter"} == 0"#,
    )?;
    stack.exporter.restart()?;
    story.say("exporter restarted");

    // FTS may fail the primary over before the first scrape after the restart: the info
    // series then carries its new `role` label. Identity is every other label.
    let segment_series = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.iter()
            .filter(|s| s.starts_with("greenplum_segment_"))
            .map(|s| without_role_label(s))
            .collect()
    };
    let after_restart = series(&stack.exporter.scrape()?);
    assert_eq!(
        segment_series(&after_restart),
        segment_series(&series_before),
        "segment series changed across the restart"
    );

    let dbid = victim.dbid.to_string();
    wait_firing(&stack, "GreenplumSegmentDown", |a| {
        a.label("dbid") == Some(dbid.as_str())
    })?;
    story.say("GreenplumSegmentDown fired");
    // Checked when it fires, before the recovery: the recovered instance's own brief flaps
    // (up, then marked down again within FTS's grace period) are not the restart's doing.
    let refires = number(
        &stack,
        &format!(
            r#"changes(ALERTS_FOR_STATE{{alertname="GreenplumSegmentDown",dbid="{dbid}"}}[15m])"#
        ),
    )?
    .context("GreenplumSegmentDown left no ALERTS_FOR_STATE series")?;
    assert_eq!(refires, 0.0, "the alert resolved and fired again");
    let recover = wait_action(&stack, "recover", last, "recover to be verified", |r| {
        r["state"] == "succeeded"
    })?;
    story.say(format!("remediator ran `{}`", argv(&recover)));

    wait_action(&stack, "rebalance", last, "rebalance to be verified", |r| {
        r["state"] == "succeeded"
    })?;
    stack.lab.wait_for_catalog(
        "balanced and synchronized",
        GUARD,
        balanced_and_synchronized,
    )?;
    wait_healthy(&stack, &mut story)?;

    let series_after = wait_for("the same series as before the fault", GUARD, POLL, || {
        let now = series(&stack.exporter.scrape()?);
        Ok((now == series_before).then_some(now))
    })
    .or_else(|e| {
        let now = series(&stack.exporter.scrape()?);
        bail!(
            "{e:#}\nmissing: {:?}\nextra: {:?}",
            series_before.difference(&now).collect::<Vec<_>>(),
            now.difference(&series_before).collect::<Vec<_>>()
        )
    })?;
    assert_eq!(series_after, series_before);

    let actions = all_actions(&stack, last)?;
    let kinds: Vec<&str> = executed(&actions)
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(kinds, ["recover", "rebalance"], "{actions:#?}");
    assert_eq!(checksum(&stack)?, before, "committed rows lost");
    Ok(())
}

/// A series' text without its `role="..."` label (`preferred_role` stays).
fn without_role_label(series: &str) -> String {
    let Some(start) = series.find(",role=\"") else {
        return series.to_string();
    };
    let value = start + ",role=\"".len();
    match series[value..].find('"') {
        Some(end) => format!("{}{}", &series[..start], &series[value + end + 1..]),
        None => series.to_string(),
    }
}

#[test]
fn the_role_label_is_left_out_of_a_series_identity() {
    assert_eq!(
        without_role_label(
            r#"greenplum_segment_info{dbid="2",preferred_role="primary",role="mirror",port="1"}"#
        ),
        r#"greenplum_segment_info{dbid="2",preferred_role="primary",port="1"}"#
    );
    assert_eq!(without_role_label("greenplum_up 1"), "greenplum_up 1");
}
