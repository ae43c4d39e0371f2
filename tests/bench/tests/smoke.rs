//! Runs `greenplum-bench all --smoke` end to end so the benchmark cannot rot. It asserts that
//! every figure was produced and is finite and positive, never anything about speed.
//!
//! Needs what the benchmark needs: PostgreSQL 15 (the lab), `prometheus-postgres-exporter`,
//! `wrk` and `webhook` from Debian; the project's binaries come from GREENPLUM_BIN_DIR or are
//! built (debug) by cargo.

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_greenplum-bench");

fn number(value: &Value, key: &str, context: &str) -> f64 {
    let n = value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{context}: {key} missing or not a number in {value}"));
    assert!(n.is_finite(), "{context}: {key} = {n} is not finite");
    n
}

fn positive(value: &Value, key: &str, context: &str) {
    let n = number(value, key, context);
    assert!(n > 0.0, "{context}: {key} = {n} is not positive");
}

/// Counts that are legitimately zero when a client keeps its connection, or when a short
/// window fits inside one clock tick of CPU accounting (10 ms).
fn non_negative(value: &Value, key: &str, context: &str) {
    let n = number(value, key, context);
    assert!(n >= 0.0, "{context}: {key} = {n} is negative");
}

#[test]
fn smoke_run_produces_every_figure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("results.json");
    let markdown = dir.path().join("results.md");
    let output = Command::new(BIN)
        .args(["all", "--smoke", "--json"])
        .arg(&json)
        .arg("--output")
        .arg(&markdown)
        .output()
        .expect("running greenplum-bench");
    assert!(
        output.status.success(),
        "greenplum-bench all --smoke failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    assert_eq!(results["smoke"], true);

    let sizes = results["exporter"]["sizes"]
        .as_array()
        .expect("exporter sizes");
    assert_eq!(sizes.len(), 2, "gp6 and gp7 at 16 segments");
    for size in sizes {
        let targets = size["targets"].as_array().expect("targets");
        let names: Vec<&str> = targets
            .iter()
            .filter_map(|t| t["target"].as_str())
            .collect();
        assert_eq!(
            names,
            ["floor", "greenplum_exporter", "postgres_exporter"],
            "every target measured"
        );
        for t in targets {
            let context = format!("{} {} {}", t["flavor"], t["segments"], t["target"]);
            positive(&t["latency"], "median_ms", &context);
            positive(&t["latency"], "p99_ms", &context);
            assert_eq!(t["latency"]["samples"], 20, "{context}");
            non_negative(t, "cpu_ms_per_scrape", &context);
            positive(t, "peak_rss_bytes", &context);
            positive(t, "statements_per_scrape", &context);
            non_negative(t, "connections_per_scrape", &context);
            if t["target"] == "floor" {
                assert!(
                    t["exposition_bytes"].is_null(),
                    "{context}: the floor exposes nothing"
                );
            } else {
                positive(t, "exposition_bytes", &context);
            }
        }
        let statements = size["floor_statements"].as_array().expect("statements");
        assert!(statements.len() >= 5, "{statements:?}");
        for s in statements {
            positive(s, "mean_ms", &format!("floor statement {}", s["name"]));
        }
    }

    let webhook = results["webhook"].as_array().expect("webhook results");
    assert_eq!(webhook.len(), 4, "2 receivers x 2 connection counts");
    for r in webhook {
        let context = format!("{} at {} connections", r["receiver"], r["connections"]);
        positive(r, "deliveries_per_second", &context);
        positive(r, "p50_ms", &context);
        positive(r, "p99_ms", &context);
        positive(r, "requests", &context);
        if r["receiver"] == "remediator" {
            positive(r, "new_alerts_per_second", &context);
            positive(r, "duplicate_share", &context);
        }
    }

    let tables = std::fs::read_to_string(&markdown).expect("markdown written");
    for heading in ["### Exporter", "### Goals", "### Where", "### Webhook"] {
        assert!(
            tables.contains(heading),
            "{heading} missing from:\n{tables}"
        );
    }
}
