//! The stand-ins say what the real tools say (issue 12): each case puts the lab in a state a
//! real Greenplum 6.24.3 was put in, runs the stand-in, and compares its exit code and its
//! messages with the real tool's output recorded in `tests/lab/fixtures/greenplum-6.24.3/`
//! (time stamps, pids and host names left out). The recordings name their commands.

mod common;

use common::*;
use gplab::{Flavor, Lab, LabConfig};

/// The messages of a gp utility's output (the text after `-[LEVEL]:-`), and its exit code
/// from a recording's last line `exit=N`.
fn messages(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once("]:-").map(|(_, m)| m.trim_end().to_string()))
        .collect()
}

fn recorded(name: &str) -> (Vec<String>, i32) {
    let path = format!(
        "{}/fixtures/greenplum-6.24.3/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("recording");
    let exit = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("exit="))
        .and_then(|c| c.trim().parse().ok())
        .expect("the recording ends with exit=N");
    (messages(&text), exit)
}

/// The stand-in's last messages are the recording's, from the first message after the
/// version banner (`Obtaining Segment details from master...`) when there is one.
fn says_what_the_real_tool_says(lab: &Lab, argv: &[&str], recording: &str) {
    let (real, real_exit) = recorded(recording);
    let out = tool(lab, argv);
    let lab_says = messages(&String::from_utf8_lossy(&out.stdout));
    let tail = |all: &[String]| -> Vec<String> {
        let from = all
            .iter()
            .position(|m| m == "Obtaining Segment details from master...")
            .map_or(0, |i| i + 1);
        all[from..].to_vec()
    };
    assert_eq!(
        tail(&lab_says),
        tail(&real),
        "{} vs {recording}",
        argv.join(" ")
    );
    assert_eq!(out.status.code(), Some(real_exit), "{}", argv.join(" "));
}

#[test]
fn on_a_healthy_cluster_the_stand_ins_say_what_the_real_tools_say() {
    init_tracing();
    let lab = Lab::up(LabConfig::for_tests(1, Flavor::Gp6)).expect("lab up");
    says_what_the_real_tool_says(&lab, &["gprecoverseg", "-a"], "recover_nothing.txt");
    says_what_the_real_tool_says(&lab, &["gprecoverseg", "-ar"], "rebalance_balanced.txt");
    says_what_the_real_tool_says(
        &lab,
        &["gpinitstandby", "-n", "-a"],
        "initstandby_n_running.txt",
    );
}
