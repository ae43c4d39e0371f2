//! Fault-matrix rows of the remediator (issue 8), each on a real lab with committed rows
//! whose checksum must survive the fault:
//! - Alertmanager delivering one group 100 times, out of order and concurrently, from two
//!   senders;
//! - a network partition between the remediator and the coordinator during verification
//!   (refused, then timed-out connections);
//! - the journal's disk full, then read-only.
//!
//! The labs are big enough to share two cores badly, so the tests take turns.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::disk::SmallDisk;
use common::proxy::{Mode, Proxy};
use common::*;
use serde_json::Value;

const CLUSTER: &str = "gp-lab";

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_lab_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_LAB_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A lab with `rows` committed rows and its checksum.
fn loaded_lab(contents: u16, rows: u64) -> (gplab::Lab, gplab::Checksum) {
    let lab = lab_up(contents);
    lab.load(rows).expect("load rows");
    let checksum = lab.checksum().expect("checksum");
    (lab, checksum)
}

fn spec<'a>(status: &'a str, starts_at: &'a str, fingerprint: &'a str) -> AlertSpec<'a> {
    AlertSpec {
        cluster: CLUSTER,
        status,
        starts_at,
        fingerprint,
        extra_labels: vec![],
    }
}

fn start(dir: &Path, policy_text: &str, journal: Option<&Path>) -> Remediator {
    let policy = dir.join("policy.yml");
    std::fs::write(&policy, policy_text).expect("policy");
    let mut config = ServeConfig::new(dir, &policy);
    if let Some(journal) = journal {
        config.journal = journal.to_path_buf();
    }
    // Undecided events (a journal write failed) are retried by the sweep.
    config.extra = vec!["--planner.sweep-interval=1s".into()];
    Remediator::start(config)
}

// ---------------------------------------------------------------------------------------
// Row: Alertmanager delivering the same group 100 times, out of order, concurrently.
// ---------------------------------------------------------------------------------------

/// The versions of one alert group that Alertmanager replicas can deliver: the alert
/// firing, resolved, and re-firing with an older and a newer `startsAt`.
const VERSIONS: [(&str, &str); 5] = [
    ("firing", "2026-11-21T17:00:00Z"),
    ("resolved", "2026-11-21T17:00:00Z"),
    ("firing", "2026-11-21T16:00:00Z"),
    ("resolved", "2026-11-21T16:00:00Z"),
    ("firing", "2026-11-21T18:00:00Z"),
];

/// One sender's 50 deliveries in its own order (index into `VERSIONS`).
fn sender_order(sender: usize) -> Vec<usize> {
    (0..50)
        .map(|i| {
            if sender == 0 {
                i % VERSIONS.len()
            } else {
                // The other sender starts with the resolution and walks backwards.
                (VERSIONS.len() * 50 + 1 - i) % VERSIONS.len()
            }
        })
        .collect()
}

/// A primary really failed; two senders (five concurrent connections each, each sender
/// in its own order) deliver the five versions of its alert 100 times in all.
///
/// Expected: every delivery answered 202 and journalled (100 `deliveries` rows); five
/// events (one per (fingerprint, startsAt, status)), the other 95 deliveries answered as
/// duplicates; each event decided exactly once: one `executed` (one action, one execution
/// of exactly `gprecoverseg -a`, verified), the two resolved versions `resolved`, and the
/// other firing versions `no_op` (planned after the recovery: nothing down) or
/// `duplicate_intent` (planned while the action was open). No committed row lost.
#[test]
fn one_group_delivered_100_times_by_two_senders_heals_once() {
    let _turn = one_lab_at_a_time();
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (lab, before) = loaded_lab(2, 3000);
    let wrap = ToolWrap::install(dir.path(), &lab.bin_dir());
    let remediator = start(
        dir.path(),
        &lab_policy(CLUSTER, &lab, &wrap, RECOVER_DOWN_SEGMENTS),
        None,
    );
    let journal = JournalReader::open(&remediator.config.journal);

    lab.fail_primary(0).expect("fail primary 0");
    wait_failed_over(&lab, 0);
    const FINGERPRINT: &str = "d000000000000001";
    let bodies: Vec<Value> = VERSIONS
        .iter()
        .map(|(status, starts_at)| payload(&spec(status, starts_at, FINGERPRINT)))
        .collect();
    let replies: Vec<(u16, Value)> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..2)
            .map(|sender| {
                let order = sender_order(sender);
                let (remediator, bodies) = (&remediator, &bodies);
                s.spawn(move || {
                    let next = AtomicUsize::new(0);
                    std::thread::scope(|s| {
                        let connections: Vec<_> = (0..5)
                            .map(|_| {
                                s.spawn(|| {
                                    let mut replies = Vec::new();
                                    loop {
                                        let i = next.fetch_add(1, Ordering::SeqCst);
                                        let Some(version) = order.get(i) else {
                                            return replies;
                                        };
                                        replies
                                            .push(remediator.post_alerts_reply(&bodies[*version]));
                                    }
                                })
                            })
                            .collect();
                        connections
                            .into_iter()
                            .flat_map(|c| c.join().expect("connection"))
                            .collect::<Vec<_>>()
                    })
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|s| s.join().expect("sender"))
            .collect()
    });

    assert_eq!(replies.len(), 100);
    assert!(replies.iter().all(|(code, _)| *code == 202), "{replies:?}");
    let sum = |key: &str| -> u64 {
        replies
            .iter()
            .map(|(_, r)| r[key].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(sum("accepted"), VERSIONS.len() as u64, "{replies:?}");
    assert_eq!(sum("duplicates"), 100 - VERSIONS.len() as u64);
    assert_eq!(journal.count("SELECT COUNT(*) FROM deliveries"), 100);
    assert_eq!(
        journal.count("SELECT COUNT(*) FROM events WHERE fingerprint = 'd000000000000001'"),
        VERSIONS.len() as i64
    );

    let action = remediator.wait_new_action(0, TERMINAL);
    assert_eq!(
        action["state"],
        "succeeded",
        "{action:#}\n{}",
        remediator.log_tail()
    );
    let decisions = wait_for("every version decided", || {
        let d = journal.decisions(FINGERPRINT);
        (d.len() == VERSIONS.len()).then_some(d)
    });
    eprintln!("decisions of the five versions: {decisions:?}");
    let count = |what: &str| decisions.iter().filter(|d| *d == what).count();
    assert_eq!(count("executed"), 1, "{decisions:?}");
    assert_eq!(count("resolved"), 2, "{decisions:?}");
    assert_eq!(
        count("no_op") + count("duplicate_intent"),
        2,
        "{decisions:?}"
    );
    assert_eq!(journal.executions(), 1);
    assert_eq!(wrap.invocations(), vec!["-a".to_string()]);
    assert_eq!(
        action["execution"]["argv"],
        serde_json::json!(["gprecoverseg", "-a"])
    );

    assert_rows_kept(&lab, &before);
}

// ---------------------------------------------------------------------------------------
// Row: network partition between the remediator and the coordinator during verification.
// ---------------------------------------------------------------------------------------

/// The policy for the partition: catalog reads through the proxy, a verification deadline
/// short enough to pass during a partition, and a breaker that opens on one failure.
fn partition_policy(lab: &gplab::Lab, wrap: &ToolWrap, proxy: &Proxy) -> String {
    let text = lab_policy_at(CLUSTER, lab, wrap, RECOVER_DOWN_SEGMENTS, proxy.port);
    let text = text.replace(
        "    user: gpadmin\n",
        "    user: gpadmin\n    breaker_failures: 1\n",
    );
    let text = text.replace("  verify_up_deadline: 2m\n", "  verify_up_deadline: 45s\n");
    assert!(text.contains("breaker_failures: 1") && text.contains("verify_up_deadline: 45s"));
    text
}

/// Fails `content`'s primary, holds `gprecoverseg`, delivers its alert and waits until the
/// command runs; returns the action id.
fn recovery_held_running(
    lab: &gplab::Lab,
    remediator: &Remediator,
    wrap: &ToolWrap,
    content: i16,
    fingerprint: &str,
) -> i64 {
    wrap.hold();
    lab.fail_primary(content).expect("fail a primary");
    wait_failed_over(lab, content);
    let known = remediator.actions().len();
    let invoked = wrap.invocations().len();
    let body = payload(&spec("firing", "2026-11-21T19:00:00Z", fingerprint));
    assert_eq!(remediator.post_alerts(&body), 202);
    let id = wait_for("the new action", || {
        remediator
            .actions()
            .get(known)
            .and_then(|a| a["id"].as_i64())
    });
    wait_for("gprecoverseg to start", || {
        (wrap.invocations().len() == invoked + 1).then_some(())
    });
    id
}

/// Waits for `more` connection attempts through the partition while the action stays in
/// `verifying`. With `deadline_may_pass`, the verification deadline may end the wait first:
/// then the action must be `failed`, never `succeeded`.
fn wait_cut_attempts(
    proxy: &Proxy,
    more: u64,
    remediator: &Remediator,
    id: i64,
    deadline_may_pass: bool,
) {
    let seen = proxy.cut_attempts();
    wait_for(
        "the remediator to try the coordinator through the partition",
        || {
            let action = remediator.action(id);
            if deadline_may_pass && action["state"] == "failed" {
                return Some(());
            }
            assert_eq!(
                action["state"], "verifying",
                "verified or failed while the catalog was unreadable: {action:#}"
            );
            (proxy.cut_attempts() >= seen + more).then_some(())
        },
    );
}

/// The remediator reads the catalog through a proxy; `gprecoverseg` reaches the lab
/// directly (it runs on the coordinator's host). Each partition starts while the command
/// runs and lasts through its end, so the partition covers the verification.
///
/// (a) Refused connections, healed before the verification deadline: while the lab's own
/// catalog already shows the pair up and synchronized, the remediator keeps the action in
/// `verifying` (it never claims what it cannot read) through further failed connection
/// attempts; once healed it verifies: `succeeded`, one run of `gprecoverseg`.
///
/// (b) Timed-out connections (accepted, never answered; the established session goes
/// silent) that outlast `verify_up_deadline`: the remediator records the verification as
/// failed ("not up within 45s: catalog unreadable"), the action `failed`, and, with
/// `breaker_failures: 1`, the breaker opens (`greenplum_remediator_breaker_open` 1). It
/// never runs `gprecoverseg` again, and after the heal it does not revisit the action
/// although the pair did recover. No committed row is lost.
#[test]
fn partition_during_verification_is_never_verified_blind_nor_rerun() {
    let _turn = one_lab_at_a_time();
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (lab, before) = loaded_lab(2, 3000);
    let wrap = ToolWrap::install(dir.path(), &lab.bin_dir());
    let proxy = Proxy::start(lab.coordinator_port());
    let remediator = start(dir.path(), &partition_policy(&lab, &wrap, &proxy), None);
    let journal = JournalReader::open(&remediator.config.journal);
    let breaker = format!("greenplum_remediator_breaker_open{{cluster=\"{CLUSTER}\"}}");

    // (a) refused, healed in time.
    let id = recovery_held_running(&lab, &remediator, &wrap, 0, "e000000000000001");
    proxy.set(Mode::Refuse);
    wrap.release();
    remediator.wait_action_state(id, &["verifying"]);
    wait_all_synchronized(&lab);
    wait_cut_attempts(&proxy, 3, &remediator, id, false);
    assert!(remediator.action(id)["verifications"]
        .as_array()
        .is_some_and(Vec::is_empty));
    proxy.set(Mode::Forward);
    remediator.wait_action_ends(id, "succeeded");
    assert_eq!(wrap.invocations().len(), 1, "{:?}", wrap.invocations());
    assert_eq!(remediator.metric(&breaker), Some(0.0));

    // (b) timed out, past the deadline.
    let id = recovery_held_running(&lab, &remediator, &wrap, 1, "e000000000000002");
    let cut_before = proxy.cut_attempts();
    proxy.set(Mode::Blackhole);
    wrap.release();
    remediator.wait_action_state(id, &["verifying"]);
    wait_all_synchronized(&lab);
    // A silent network makes each attempt last its timeouts: the 45 s deadline may pass
    // before two of them, which is the point of this case.
    wait_cut_attempts(&proxy, 2, &remediator, id, true);
    assert!(
        proxy.cut_attempts() > cut_before,
        "no connection attempt met the partition"
    );
    let done = remediator.wait_action_ends(id, "failed");
    eprintln!("timed-out partition: {:#}", done["history"]);
    let verifications = done["verifications"].as_array().expect("verifications");
    assert_eq!(verifications.len(), 1, "{done:#}");
    assert_eq!(verifications[0]["succeeded"], false);
    let why = verifications[0]["detail"]["why"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains("not up within") && why.contains("catalog unreadable"),
        "{why}"
    );
    assert_eq!(remediator.metric(&breaker), Some(1.0));
    proxy.set(Mode::Forward);
    // Healed: the pair is fine, the verdict stays (the journal is append-only) and nothing
    // runs again.
    wait_all_synchronized(&lab);
    assert_eq!(remediator.action(id)["state"], "failed");
    assert_eq!(wrap.invocations().len(), 2, "{:?}", wrap.invocations());
    assert_eq!(journal.executions(), 2);
    assert_eq!(
        lab.checksum().expect("checksum"),
        before,
        "committed rows changed"
    );
}

// ---------------------------------------------------------------------------------------
// Row: the journal's disk full or read-only.
// ---------------------------------------------------------------------------------------

/// A delivery for a new alert instance whose labels carry `pad` bytes, so that one
/// delivery needs more room than a nearly full disk has.
fn padded(status: &str, starts_at: &str, fingerprint: &str, pad: usize) -> Value {
    let padding = "p".repeat(pad);
    let mut alert = spec(status, starts_at, fingerprint);
    alert.extra_labels = vec![("padding", padding.as_str())];
    payload(&alert)
}

fn starts_at(i: usize) -> String {
    format!("2026-11-21T10:{:02}:{:02}Z", i / 60, i % 60)
}

/// A 503 that says why (`reason`, SQLite's words), with the metrics to match.
fn assert_refused_for_the_journal(remediator: &Remediator, reply: &(u16, Value), reason: &str) {
    assert_eq!(reply.0, 503, "{reply:?}");
    let error = reply.1["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot persist") && error.contains(reason),
        "{reply:?}"
    );
    assert!(
        remediator
            .metric("greenplum_remediator_journal_errors_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        remediator
            .metric("greenplum_remediator_webhook_requests_total{code=\"503\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
}

/// A loaded two-content lab healed by a remediator whose SQLite journal lives on an 8 MiB
/// tmpfs, the start of both journal-disk rows. `None` where no tmpfs can be mounted (the
/// row is skipped). Bind the fields in this order: locals drop in reverse, so the
/// remediator goes before the disk it writes to and the disk before the directory it is
/// mounted in.
struct JournalOnSmallDisk {
    _dir: tempfile::TempDir,
    disk: SmallDisk,
    lab: gplab::Lab,
    before: gplab::Checksum,
    wrap: ToolWrap,
    journal_path: std::path::PathBuf,
    remediator: Remediator,
}

impl JournalOnSmallDisk {
    fn start() -> Option<JournalOnSmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = SmallDisk::mount(&dir.path().join("journal-disk"), "8m")?;
        let (lab, before) = loaded_lab(2, 3000);
        let wrap = ToolWrap::install(dir.path(), &lab.bin_dir());
        let journal_path = disk.path.join("journal.db");
        let remediator = start(
            dir.path(),
            &lab_policy(CLUSTER, &lab, &wrap, RECOVER_DOWN_SEGMENTS),
            Some(&journal_path),
        );
        Some(JournalOnSmallDisk {
            _dir: dir,
            disk,
            lab,
            before,
            wrap,
            journal_path,
            remediator,
        })
    }
}

/// The SQLite journal on an 8 MiB tmpfs.
///
/// Full: a filler takes every free byte. Deliveries that still fit (SQLite reuses its WAL)
/// are 202 and journalled; the first that does not is 503 with the reason, counted in
/// `greenplum_remediator_journal_errors_total` and `..._webhook_requests_total{code="503"}`;
/// the alert of a really failed primary is then 503 too, and no action is planned or run.
/// Filler deleted: the same alert is 202, planned, `gprecoverseg -a` runs once and is
/// verified; every delivery answered 202 before is in the journal and decided.
///
/// Read-only: Linux refuses `mount -o remount,ro` while a process holds a file open for
/// writing (EBUSY), so a disk cannot turn read-only under the running journal by a
/// remount; the test proves that, then restarts the remediator on the read-only disk (as
/// after a reboot onto a disk the kernel made read-only). It starts, answers 503 (no
/// action for a second failed primary runs), and after `remount,rw` the next delivery is
/// 202 and heals the cluster, without a restart. No committed row is lost.
#[test]
fn journal_disk_full_or_read_only_answers_503_and_recovers() {
    let _turn = one_lab_at_a_time();
    init_tracing();
    let Some(JournalOnSmallDisk {
        _dir,
        disk,
        lab,
        before,
        wrap,
        journal_path,
        mut remediator,
    }) = JournalOnSmallDisk::start()
    else {
        return;
    };
    let journal = JournalReader::open(&journal_path);

    // Accepted before the fault.
    let first = payload(&spec(
        "resolved",
        "2026-11-21T09:00:00Z",
        "f000000000000001",
    ));
    assert_eq!(remediator.post_alerts(&first), 202);

    // Full.
    lab.fail_primary(0).expect("fail primary 0");
    wait_failed_over(&lab, 0);
    disk.fill("filler");
    let mut accepted = 1;
    let mut refused = None;
    for i in 0..60 {
        let reply = remediator.post_alerts_reply(&padded(
            "resolved",
            &starts_at(i),
            "f000000000000002",
            200_000,
        ));
        match reply.0 {
            202 => accepted += 1,
            _ => {
                refused = Some(reply);
                break;
            }
        }
    }
    let refused = refused.expect("a full disk refuses a delivery");
    assert_refused_for_the_journal(&remediator, &refused, "full");
    // Larger than the refused one: cannot fit in what the failed write left.
    let heal = padded(
        "firing",
        "2026-11-21T11:00:00Z",
        "f000000000000003",
        210_000,
    );
    assert_refused_for_the_journal(&remediator, &remediator.post_alerts_reply(&heal), "full");
    assert!(
        remediator.actions().is_empty(),
        "{:?}",
        remediator.actions()
    );
    assert!(wrap.invocations().is_empty(), "{:?}", wrap.invocations());

    std::fs::remove_file(disk.path.join("filler")).expect("remove the filler");
    assert_eq!(
        remediator.post_alerts(&heal),
        202,
        "{}",
        remediator.log_tail()
    );
    let action = remediator.wait_new_action(0, TERMINAL);
    assert_eq!(
        action["state"],
        "succeeded",
        "{action:#}\n{}",
        remediator.log_tail()
    );
    assert_eq!(wrap.invocations(), vec!["-a".to_string()]);
    assert_eq!(
        journal.count("SELECT COUNT(*) FROM deliveries"),
        accepted + 1,
        "every delivery answered 202 is journalled, and only those"
    );
    wait_for("every accepted event decided", || {
        (journal.count(
            "SELECT COUNT(*) FROM events e LEFT JOIN decisions d ON d.event_id = e.id
             WHERE d.id IS NULL",
        ) == 0)
            .then_some(())
    });
    assert_eq!(journal.count("SELECT COUNT(*) FROM events"), accepted + 1);
    wait_all_synchronized(&lab);

    // Read-only.
    let busy = disk
        .remount("ro")
        .expect_err("remount,ro while the journal is open");
    assert!(busy.contains("busy"), "{busy}");
    remediator.kill();
    // Even a read-only SQLite connection maps the WAL index writable.
    drop(journal);
    disk.remount("ro")
        .expect("remount,ro with the journal closed");
    remediator.restart();
    lab.fail_primary(1).expect("fail primary 1");
    wait_failed_over(&lab, 1);
    let second = payload(&spec("firing", "2026-11-21T12:00:00Z", "f000000000000004"));
    assert_refused_for_the_journal(
        &remediator,
        &remediator.post_alerts_reply(&second),
        "readonly",
    );
    assert_eq!(wrap.invocations().len(), 1);
    disk.remount("rw").expect("remount,rw");
    assert_eq!(
        remediator.post_alerts(&second),
        202,
        "{}",
        remediator.log_tail()
    );
    let action = remediator.wait_new_action(1, TERMINAL);
    assert_eq!(
        action["state"],
        "succeeded",
        "{action:#}\n{}",
        remediator.log_tail()
    );
    assert_eq!(wrap.invocations().len(), 2);
    let journal = JournalReader::open(&journal_path);
    assert_eq!(
        journal.count("SELECT COUNT(*) FROM deliveries"),
        accepted + 2
    );
    assert_rows_kept(&lab, &before);
    drop(remediator);
    drop(journal);
    drop(disk);
}

/// Fills the disk and then the room SQLite's WAL still had: padded deliveries, halving in
/// size, until even a small one is refused. Returns how many were accepted meanwhile.
fn exhaust_the_journal(disk: &SmallDisk, remediator: &Remediator, fingerprint: &str) -> i64 {
    disk.fill("filler");
    let mut accepted = 0;
    let mut pad = 200_000;
    let mut i = 0;
    loop {
        i += 1;
        let reply =
            remediator.post_alerts_reply(&padded("resolved", &starts_at(i), fingerprint, pad));
        match reply.0 {
            202 => accepted += 1,
            503 if pad == 0 => return accepted,
            503 => pad /= 4,
            _ => panic!("unexpected answer {reply:?}"),
        }
    }
}

/// The disk fills while `gprecoverseg` runs (every byte, then what SQLite's WAL had
/// left): the command's end, its verification and the action's last states still have to be
/// written. Expected: the journal spends the room it keeps for this (`journal.db-reserve`),
/// so the action is verified `succeeded` while the disk is still full and nothing runs
/// twice; new deliveries are 503 ("journal disk full") until the room can be taken back;
/// with the filler gone the next delivery is 202. No committed row is lost.
///
/// Without the reserve the planner lost the record of the command's end and left the
/// action `running` until a restart.
#[test]
fn journal_disk_fills_while_gprecoverseg_runs_and_the_reserve_records_the_end() {
    let _turn = one_lab_at_a_time();
    init_tracing();
    let Some(JournalOnSmallDisk {
        _dir,
        disk,
        lab,
        before,
        wrap,
        journal_path,
        remediator,
    }) = JournalOnSmallDisk::start()
    else {
        return;
    };
    wrap.hold();
    lab.fail_primary(0).expect("fail primary 0");
    wait_failed_over(&lab, 0);
    let body = payload(&spec("firing", "2026-11-21T13:00:00Z", "f100000000000001"));
    assert_eq!(remediator.post_alerts(&body), 202);
    let id = wait_for("the command to be journalled as running", || {
        let action = remediator.actions().first()?.clone();
        let action = remediator.action(action["id"].as_i64()?);
        (action["state"] == "running" && !action["execution"].is_null()).then_some(action)
    })["id"]
        .as_i64()
        .expect("id");
    wait_for("gprecoverseg to start", || {
        (wrap.invocations().len() == 1).then_some(())
    });
    exhaust_the_journal(&disk, &remediator, "f100000000000002");
    wrap.release();

    let done = remediator.wait_action_ends(id, "succeeded");
    assert!(done["result"]["finished_at"].is_string(), "{done:#}");
    assert_eq!(wrap.invocations().len(), 1, "{:?}", wrap.invocations());
    assert!(disk.path.join("filler").exists());
    let reserve = journal_path.with_file_name("journal.db-reserve");
    assert!(
        !reserve.exists(),
        "the end was recorded without spending the reserve"
    );
    let next = payload(&spec(
        "resolved",
        "2026-11-21T14:00:00Z",
        "f100000000000003",
    ));
    assert_refused_for_the_journal(&remediator, &remediator.post_alerts_reply(&next), "full");

    std::fs::remove_file(disk.path.join("filler")).expect("remove the filler");
    assert_eq!(
        remediator.post_alerts(&next),
        202,
        "{}",
        remediator.log_tail()
    );
    assert!(reserve.exists(), "the room is taken back before new work");
    assert_rows_kept(&lab, &before);
}
