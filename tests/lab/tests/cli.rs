//! The `gplab` command line: up, env, fail host, status, checksum, down (idempotent), up again.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn gplab(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gplab"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run gplab");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("$ gplab {}\n{text}", args.join(" "));
    (out.status.success(), text)
}

#[test]
fn cli_up_fail_host_status_and_down() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lab");
    let (ok, text) = gplab(
        &dir,
        &[
            "up",
            "--contents",
            "2",
            "--hosts",
            "2",
            "--no-standby",
            "--fts-interval",
            "1",
            "--mirror-grace",
            "2",
        ],
    );
    // Whatever happens next, stop the servers.
    struct Down<'a>(&'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            gplab::stop_servers(self.0);
        }
    }
    let _down = Down(&dir);
    assert!(ok, "{text}");
    let (ok, env) = gplab(&dir, &["env"]);
    assert!(ok);
    for var in [
        "PATH=",
        "COORDINATOR_DATA_DIRECTORY=",
        "MASTER_DATA_DIRECTORY=",
        "PGHOST=127.0.0.1",
        "PGPORT=",
        "PGUSER=gpadmin",
        "PGDATABASE=postgres",
        "GPLAB_DIR=",
    ] {
        assert!(
            env.contains(&format!("export {var}")),
            "missing {var} in {env}"
        );
    }
    assert!(gplab(&dir, &["load", "100"]).0);
    let (_, sum) = gplab(&dir, &["checksum"]);
    assert!(sum.starts_with("100 rows sha256:"), "{sum}");

    // sdw2 holds content 1's primary and content 0's mirror.
    assert!(gplab(&dir, &["fail", "host", "sdw2"]).0);
    let lab = gplab::Lab::open(&dir).expect("open");
    lab.wait_for_catalog(
        "host sdw2 handled by FTS",
        Duration::from_secs(60),
        |rows| {
            rows.iter()
                .filter(|r| r.hostname == "sdw2")
                .all(|r| r.status == 'd')
        },
    )
    .expect("fts");
    let (_, status) = gplab(&dir, &["status"]);
    assert!(status.contains("DOWN"), "{status}");
    let (_, after) = gplab(&dir, &["checksum"]);
    assert_eq!(after, sum, "failover of a whole host lost rows");

    let t = Instant::now();
    assert!(gplab(&dir, &["down"]).0);
    assert!(gplab(&dir, &["down"]).0, "down is idempotent");
    let state = gplab::LabState::load(&dir).expect("state");
    assert!(
        state
            .instances
            .iter()
            .all(|i| !gplab::process::is_running(&i.datadir)),
        "a server outlived down"
    );
    assert!(!dir.join("fts.pid").exists());
    println!("down: {:.1} s", t.elapsed().as_secs_f64());

    // `up` where a stopped lab was starts anew (issue 12: it used to refuse for ever).
    let (ok, text) = gplab(&dir, &["up", "--contents", "1", "--no-standby"]);
    assert!(ok, "{text}");
    let (ok, text) = gplab(&dir, &["up", "--contents", "1", "--no-standby"]);
    assert!(!ok && text.contains("holds a running lab"), "{text}");
    let (_, sum) = gplab(&dir, &["checksum"]);
    assert!(
        sum.starts_with("0 rows"),
        "the old lab's rows survived: {sum}"
    );
    assert!(gplab(&dir, &["down"]).0);
}
