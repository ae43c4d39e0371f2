//! The standby coordinator: stopped, restarted with gpinitstandby -n, activated with
//! gpactivatestandby (refused while the old coordinator answers), then a new standby.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gplab::{Flavor, Lab, LabConfig};

fn standby_streaming(lab: &Lab) -> bool {
    lab.query_catalog("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'gp_walreceiver' AND state = 'streaming'")
        .map(|r| r[0][0].as_deref() == Some("1"))
        .unwrap_or(false)
}

#[test]
fn standby_stop_restart_and_activation() {
    init_tracing();
    let t0 = Instant::now();
    let lab = Lab::up(LabConfig::for_tests(1, Flavor::Gp6)).expect("lab up");
    assert!(standby_streaming(&lab));
    let standby_port = lab.standby_port().expect("standby");
    let standby_dir = lab.standby_datadir().expect("standby dir");

    lab.fail_standby().expect("fail standby");
    lab.wait_until("standby gone from pg_stat_replication", GUARD, |l| {
        !standby_streaming(l)
    })
    .expect("gone");
    // The catalog does not notice (row stays m/s/u), and the coordinator keeps committing.
    let rows = lab.segments().expect("rows");
    let st = rows
        .iter()
        .find(|r| r.content == -1 && r.role == 'm')
        .expect("standby row");
    assert_eq!((st.mode, st.status), ('s', 'u'));
    lab.wait_until("coordinator commits without its standby", GUARD, |l| {
        l.client()
            .and_then(|mut c| {
                c.batch_execute("SET statement_timeout = '3s'; CREATE TABLE IF NOT EXISTS standby_probe (x int); INSERT INTO standby_probe VALUES (1)")
                    .map_err(|e| gplab::Error::Invalid(e.to_string()))
            })
            .is_ok()
    })
    .expect("no hang on a dead standby");

    let out = tool(&lab, &["gpinitstandby", "-n", "-a"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Successfully started standby master"));
    lab.wait_until("standby streams again", GUARD, standby_streaming)
        .expect("streaming");

    // Refused while the old coordinator answers.
    let mut cmd = lab.command("gpactivatestandby");
    cmd.args(["-a", "-d", standby_dir.to_str().expect("utf8")])
        .env("PGPORT", standby_port.to_string());
    let out = cmd.output().expect("run");
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(lab.coordinator_port(), lab.state().base_port);

    lab.fail_coordinator().expect("fail coordinator");
    let mut cmd = lab.command("gpactivatestandby");
    cmd.args(["-a", "-d", standby_dir.to_str().expect("utf8")])
        .env("PGPORT", standby_port.to_string());
    let out = cmd.output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success());
    assert!(text.contains("The activation of the standby master has completed successfully."));
    assert_eq!(lab.coordinator_port(), standby_port);
    let rows = lab.segments().expect("catalog on the new coordinator");
    let coord: Vec<_> = rows.iter().filter(|r| r.content == -1).collect();
    assert_eq!(coord.len(), 1, "old coordinator row deleted: {rows:?}");
    assert_eq!(
        (
            coord[0].role,
            coord[0].preferred_role,
            coord[0].mode,
            coord[0].status,
            coord[0].port
        ),
        ('p', 'p', 's', 'u', standby_port)
    );
    let env = lab.env();
    assert!(env.contains(&("PGPORT".to_string(), standby_port.to_string())));

    // FTS follows the new coordinator.
    lab.fail_primary(0).expect("fail primary");
    lab.wait_for_catalog("failover under the new coordinator", GUARD, |rows| {
        rows.iter()
            .any(|r| r.content == 0 && r.role == 'p' && r.preferred_role == 'm')
    })
    .expect("failover");

    // A new standby on the old coordinator's port.
    let out = tool(&lab, &["gpinitstandby", "-a", "-s", "cdw"]);
    assert!(out.status.success());
    lab.wait_until(
        "new standby streams",
        Duration::from_secs(60),
        standby_streaming,
    )
    .expect("streaming");
    println!("test total: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn activation_with_the_old_port_in_pgport_fails_after_promoting() {
    init_tracing();
    let lab = Lab::up(LabConfig {
        ..LabConfig::for_tests(1, Flavor::Gp7)
    })
    .expect("lab up");
    let standby_port = lab.standby_port().expect("standby");
    let standby_dir = lab.standby_datadir().expect("standby dir");
    let old_port = lab.coordinator_port();
    lab.fail_coordinator().expect("fail coordinator");
    let mut cmd = lab.command("gpactivatestandby");
    cmd.args(["-a", "-d", standby_dir.to_str().expect("utf8")])
        .env("PGPORT", old_port.to_string())
        .env("GPLAB_ACTIVATE_TIMEOUT", "2");
    let out = cmd.output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("Either the set port is incorrect or the postmaster could not come up."),
        "{text}"
    );
    // ...although the promotion itself worked, as in the recording.
    assert_eq!(lab.coordinator_port(), standby_port);
    let rows = lab.segments().expect("rows");
    assert!(rows
        .iter()
        .any(|r| r.content == -1 && r.role == 'p' && r.port == standby_port));
}
