//! Two replicas on one PostgreSQL journal (a database on the lab's coordinator): the same
//! delivery sent to both runs `gprecoverseg` once; the replica running it is SIGKILLed, the
//! other takes the lane over (its advisory lock died with the session), re-attaches to the
//! command and verifies. Nothing runs twice, and no committed row is lost.

mod common;

use std::path::Path;

use common::*;
use postgres::Client;

const CLUSTER: &str = "gp-lab";
const DATABASE: &str = "remediator_journal";

fn replica(dir: &Path, name: &str, policy: &Path, port: u16) -> Remediator {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("replica dir");
    let password = dir.join("journal.password");
    // The lab trusts local connections; the file proves the password path is wired.
    std::fs::write(&password, "not-needed-with-trust\n").expect("password file");
    let mut config = ServeConfig::new(&dir, policy);
    config.name = name.into();
    config.extra = vec![
        format!("--journal.url=postgres://gpadmin@127.0.0.1:{port}/{DATABASE}"),
        format!("--journal.password-file={}", password.display()),
        "--planner.sweep-interval=1s".into(),
    ];
    Remediator::start(config)
}

/// The pid of the replica whose lock session holds a lane, if any.
fn lane_holder(db: &mut Client) -> Option<u32> {
    let rows = db
        .query(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND a.application_name LIKE 'greenplum-remediator/%/lanes'",
            &[],
        )
        .expect("pg_locks");
    assert!(rows.len() <= 1, "one lane, at most one holder");
    rows.first()
        .and_then(|r| r.get::<_, &str>(0).split('/').nth(1)?.parse().ok())
}

fn count(db: &mut Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).expect(sql).get(0)
}

#[test]
fn two_replicas_on_a_postgres_journal_run_once_and_take_over() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = lab_up(2);
    let port = lab.coordinator_port();
    lab.load(3000).expect("load rows");
    let before = lab.checksum().expect("checksum");
    lab.client()
        .expect("coordinator")
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .expect("create the journal database");
    let wrap = ToolWrap::install(dir.path(), &lab.bin_dir());
    let policy = write_lab_policy(dir.path(), CLUSTER, &lab, &wrap, RECOVER_DOWN_SEGMENTS);

    let mut replicas = [
        replica(dir.path(), "a", &policy, port),
        replica(dir.path(), "b", &policy, port),
    ];
    let mut db = gplab::conn::connect_db(port, DATABASE).expect("journal database");
    let first = wait_for("a replica to take the lane", || lane_holder(&mut db));
    assert!(replicas.iter().any(|r| r.pid() == Some(first)));

    wrap.hold();
    lab.fail_primary(0).expect("fail primary 0");
    wait_failed_over(&lab, 0);
    let body = payload(&AlertSpec {
        cluster: CLUSTER,
        status: "firing",
        starts_at: "2026-11-21T17:00:00Z",
        fingerprint: "b000000000000001",
        extra_labels: vec![],
    });
    // Alertmanager replicas deliver the same group to every receiver URL.
    let codes: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let target = &replicas[i % 2];
                let body = &body;
                s.spawn(move || target.post_alerts(body))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("poster"))
            .collect()
    });
    assert!(codes.iter().all(|c| *c == 202), "{codes:?}");

    let action = wait_for("the action to run", || {
        let actions = replicas[1].actions();
        let id = actions.first()?["id"].as_i64()?;
        let action = replicas[1].action(id);
        (action["state"] == "running" && !action["execution"].is_null()).then_some(action)
    });
    let id = action["id"].as_i64().expect("id");
    wait_for("the wrapper to start", || {
        (!wrap.invocations().is_empty()).then_some(())
    });
    let owner = lane_holder(&mut db).expect("a holder");
    let (dead, survivor) = if replicas[0].pid() == Some(owner) {
        (0, 1)
    } else {
        (1, 0)
    };
    assert_eq!(replicas[dead].pid(), Some(owner));

    replicas[dead].kill();
    let next = wait_for("the other replica to take the lane", || {
        lane_holder(&mut db).filter(|pid| Some(*pid) != Some(owner))
    });
    assert_eq!(replicas[survivor].pid(), Some(next));
    let survivor = &replicas[survivor];
    wait_for("the re-attach to be journalled", || {
        survivor.action(id)["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|c| c["detail"]["reattach"].is_string()))
            .then_some(())
    });
    wrap.release();

    let done = survivor.wait_action_state(id, &["succeeded", "failed", "refused", "no_op"]);
    assert_eq!(
        done["state"],
        "succeeded",
        "{done:#}\n{}",
        survivor.log_tail()
    );
    assert_eq!(wrap.invocations(), vec!["-a".to_string()]);
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM executions"), 1);
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM actions"), 1);
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM events WHERE fingerprint = 'b000000000000001'"
        ),
        1
    );
    assert_eq!(
        count(&mut db, "SELECT COUNT(*) FROM deliveries"),
        20,
        "every delivery is journalled"
    );
    assert_rows_kept(&lab, &before);
}

#[test]
fn a_password_in_the_journal_url_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = minimal_policy(dir.path());
    let output = std::process::Command::new(BIN)
        .arg("serve")
        .arg(format!("--policy={}", policy.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg("--journal.url=postgres://gpadmin:s3cret@127.0.0.1:1/journal")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("holds a password"), "{stderr}");
    assert!(
        !stderr.contains("s3cret"),
        "the password is echoed: {stderr}"
    );
}
