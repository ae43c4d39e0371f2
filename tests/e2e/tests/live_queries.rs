//! Issue 5's live check: a real Prometheus scrapes the real exporter on a lab cluster, every
//! alert expression and every dashboard query evaluates without error, and the expressions that
//! describe the current state return the right series, before and after a primary fails.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Result};
use gplab::{Flavor, Lab, LabConfig};
use greenplum_e2e::exporter::Exporter;
use greenplum_e2e::process::wait_for;
use greenplum_e2e::prometheus::{Prometheus, PrometheusConfig};
use greenplum_e2e::{repo_root, rule_and_panel_exprs};

const CLUSTER: &str = "lab";

fn every_expression_evaluates(prometheus: &Prometheus) -> Result<()> {
    let exprs = rule_and_panel_exprs(CLUSTER)?;
    ensure!(exprs.len() > 50, "only {} expressions listed", exprs.len());
    let failures: Vec<String> = exprs
        .iter()
        .filter_map(|(place, expr)| {
            prometheus
                .query(expr)
                .err()
                .map(|e| format!("{place}: {expr}: {e:#}"))
        })
        .collect();
    ensure!(
        failures.is_empty(),
        "expressions failed:\n{}",
        failures.join("\n")
    );
    Ok(())
}

fn values(prometheus: &Prometheus, expr: &str, label: &str) -> Result<BTreeSet<String>> {
    Ok(prometheus
        .query(expr)?
        .iter()
        .filter_map(|s| s.label(label).map(str::to_string))
        .collect())
}

#[test]
fn rules_and_panels_evaluate_on_a_live_lab() -> Result<()> {
    let lab = Lab::up(LabConfig::for_tests(3, Flavor::Gp6))?;
    let dir = tempfile::tempdir()?;
    let mut endpoints = vec![format!("127.0.0.1:{}", lab.coordinator_port())];
    endpoints.extend(lab.standby_port().map(|p| format!("127.0.0.1:{p}")));
    let exporter = Exporter::start(dir.path(), &endpoints, &lab.env())?;
    let root = repo_root();
    let prometheus = Prometheus::start(
        dir.path(),
        &PrometheusConfig {
            jobs: vec![greenplum_e2e::prometheus::ScrapeJob {
                job: "greenplum-exporter".into(),
                targets: vec![exporter.address().to_string()],
                labels: vec![("cluster".into(), CLUSTER.into())],
            }],
            rule_files: vec![
                root.join("alerts/greenplum.rules.yml"),
                root.join("alerts/remediator.rules.yml"),
            ],
            alertmanager: None,
            interval: Duration::from_secs(1),
        },
    )?;

    // Healthy: every pair synchronized, the standby streaming.
    wait_for(
        "the exporter's first healthy scrape",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            Ok((!prometheus
                .query(r#"greenplum_cluster_state{state="healthy"} == 1"#)?
                .is_empty())
            .then_some(()))
        },
    )?;
    every_expression_evaluates(&prometheus)?;
    let up = prometheus.query(r#"greenplum_segment_up{cluster="lab"} == 1"#)?;
    assert_eq!(up.len(), 6, "3 primaries and 3 mirrors up");
    assert_eq!(
        values(
            &prometheus,
            r#"greenplum_standby_replication_state{cluster="lab"} == 1"#,
            "state"
        )?,
        BTreeSet::from(["streaming".to_string()])
    );
    assert!(prometheus.query("greenplum_segment_up == 0")?.is_empty());

    // A primary fails: FTS promotes its mirror; the segment-down expression names its dbid.
    let dbid = lab
        .segments()?
        .into_iter()
        .find(|s| s.content == 0 && s.role == 'p')
        .map(|s| s.dbid.to_string())
        .ok_or_else(|| anyhow::anyhow!("no primary for content 0"))?;
    lab.fail_primary(0)?;
    let down = wait_for(
        "greenplum_segment_up == 0 for the failed primary",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let down = values(&prometheus, "greenplum_segment_up == 0", "dbid")?;
            Ok((!down.is_empty()).then_some(down))
        },
    )?;
    assert_eq!(down, BTreeSet::from([dbid]));
    wait_for(
        "the failover to show as a role mismatch and an unprotected content",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let mismatch = prometheus.query("greenplum_segments_role_mismatch > 0")?;
            let unprotected = prometheus.query("greenplum_contents_unprotected == 1")?;
            Ok((!mismatch.is_empty() && !unprotected.is_empty()).then_some(()))
        },
    )?;
    every_expression_evaluates(&prometheus)?;
    Ok(())
}
