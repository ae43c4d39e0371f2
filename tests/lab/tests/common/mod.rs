//! Helpers shared by the lab's integration tests.
#![allow(dead_code)]

use std::process::Output;
use std::time::Duration;

use gplab::{Lab, SegmentRow};

/// Guard for waits: generous, because the machine is shared; never a speed assertion.
pub const GUARD: Duration = Duration::from_secs(60);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
}

/// Runs a stand-in through PATH with the lab's environment, like production would.
pub fn tool(lab: &Lab, argv: &[&str]) -> Output {
    let out = lab
        .command(argv[0])
        .args(&argv[1..])
        .output()
        .expect("running a stand-in");
    println!(
        "$ {}\n{}{}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn row(rows: &[SegmentRow], dbid: i16) -> &SegmentRow {
    rows.iter()
        .find(|r| r.dbid == dbid)
        .expect("dbid in catalog")
}

/// Every content has its preferred primary up, its mirror up, both in sync.
pub fn all_balanced_and_synced(rows: &[SegmentRow]) -> bool {
    rows.iter()
        .filter(|r| r.content >= 0)
        .all(|r| r.role == r.preferred_role && r.status == 'u' && r.mode == 's')
}

pub fn history(lab: &Lab) -> Vec<String> {
    let col = if lab.flavor().is_gp6() {
        "\"desc\""
    } else {
        "description"
    };
    lab.query_catalog(&format!(
        "SELECT {col} FROM gp_configuration_history ORDER BY time"
    ))
    .expect("history")
    .into_iter()
    .filter_map(|r| r.into_iter().next().flatten())
    .collect()
}
