//! Metric families from recorded and hand-made snapshots, checked on the encoded text.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use greenplum_catalog::{Dialect, Mode, Snapshot};

use super::*;
use greenplum_catalog::test_support::recorded as fx;

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the sample lines of an exposition (either format). Label values here never hold
/// quotes, so a simple split is enough.
pub(crate) fn parse(body: &str) -> Vec<Series> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (head, value) = line.rsplit_once(' ').expect("sample has a value");
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels close");
                    let labels = inner
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").expect("label pair");
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (head.to_string(), BTreeMap::new()),
            };
            Series {
                name,
                labels,
                value: value.parse().expect("numeric value"),
            }
        })
        .collect()
}

pub(crate) fn scrape_of(snapshot: Snapshot) -> Scrape {
    Scrape {
        snapshot: Arc::new(snapshot),
        duration_seconds: 0.25,
    }
}

fn series(snapshot: Snapshot) -> Vec<Series> {
    parse(&encode(Some(scrape_of(snapshot)), Format::OpenMetrics))
}

fn matching<'a>(all: &'a [Series], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Series> {
    all.iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The value of the one series that matches, panicking when none or several do.
fn value(all: &[Series], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = matching(all, name, labels);
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    found[0].value
}

fn absent(all: &[Series], name: &str) -> bool {
    all.iter().all(|s| s.name != name)
}

/// The state a state set says is current, checking exactly one is 1.
fn current_state(all: &[Series], name: &str, labels: &[(&str, &str)], label: &str) -> String {
    let ones: Vec<_> = matching(all, name, labels)
        .into_iter()
        .filter(|s| s.value == 1.0)
        .collect();
    assert_eq!(ones.len(), 1, "{name}{labels:?}: {ones:?}");
    ones[0].labels[label].clone()
}

#[test]
fn healthy_cluster() {
    let all = series(fx::healthy());
    assert_eq!(value(&all, "greenplum_up", &[]), 1.0);
    assert_eq!(
        value(
            &all,
            "greenplum_version_info",
            &[
                ("version", "6.24.3"),
                ("flavor", "greenplum"),
                ("pg_version", "9.4.26")
            ]
        ),
        1.0
    );
    assert_eq!(
        current_state(&all, "greenplum_cluster_state", &[], "state"),
        "healthy"
    );
    assert_eq!(
        current_state(
            &all,
            "greenplum_endpoint_state",
            &[("endpoint", "vm:6000")],
            "state"
        ),
        "coordinator"
    );
    assert_eq!(
        current_state(
            &all,
            "greenplum_endpoint_state",
            &[("endpoint", "vm:6001")],
            "state"
        ),
        "standby_in_recovery"
    );
    // Six segment instances, coordinator rows only as inventory.
    assert_eq!(matching(&all, "greenplum_segment_up", &[]).len(), 6);
    assert!(matching(&all, "greenplum_segment_up", &[("content", "-1")]).is_empty());
    assert_eq!(matching(&all, "greenplum_segment_info", &[]).len(), 8);
    assert_eq!(
        value(
            &all,
            "greenplum_segment_info",
            &[
                ("dbid", "8"),
                ("role", "mirror"),
                ("datadir", "/data/gpdemo/standby")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(&all, "greenplum_segment_is_primary", &[("dbid", "2")]),
        1.0
    );
    assert_eq!(
        value(&all, "greenplum_segment_is_primary", &[("dbid", "5")]),
        0.0
    );
    assert_eq!(
        current_state(&all, "greenplum_segment_mode", &[("dbid", "2")], "mode"),
        "synchronized"
    );
    // GP6 can only show s and n: no series that could never be 1.
    assert_eq!(
        matching(&all, "greenplum_segment_mode", &[("dbid", "2")]).len(),
        2
    );
    assert_eq!(value(&all, "greenplum_standby_configured", &[]), 1.0);
    assert_eq!(
        current_state(&all, "greenplum_standby_replication_state", &[], "state"),
        "streaming"
    );
    assert_eq!(value(&all, "greenplum_standby_sync", &[]), 1.0);
    for content in ["0", "1", "2"] {
        assert_eq!(
            current_state(
                &all,
                "greenplum_mirror_replication_state",
                &[("content", content)],
                "state"
            ),
            "streaming"
        );
        for stage in ["send", "flush", "replay"] {
            let labels = [("content", content), ("stage", stage)];
            assert_eq!(value(&all, "greenplum_mirror_wal_lag_bytes", &labels), 0.0);
        }
    }
    assert_eq!(
        value(
            &all,
            "greenplum_segments",
            &[("role", "primary"), ("status", "up")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &all,
            "greenplum_segments",
            &[("role", "mirror"), ("status", "up")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &all,
            "greenplum_segments",
            &[("role", "mirror"), ("status", "down")]
        ),
        0.0
    );
    assert_eq!(value(&all, "greenplum_segments_role_mismatch", &[]), 0.0);
    assert_eq!(value(&all, "greenplum_contents_unavailable", &[]), 0.0);
    assert_eq!(value(&all, "greenplum_contents_unprotected", &[]), 0.0);
    assert_eq!(
        value(&all, "greenplum_contents_mirror_on_primary_host", &[]),
        3.0
    );
    assert_eq!(
        value(
            &all,
            "greenplum_host_acting_primaries",
            &[("hostname", "vm")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &all,
            "greenplum_host_preferred_primaries",
            &[("hostname", "vm")]
        ),
        3.0
    );
    assert_eq!(value(&all, "greenplum_fts_events_total", &[]), 6.0);
    assert_eq!(
        value(
            &all,
            "greenplum_last_configuration_change_timestamp_seconds",
            &[]
        ),
        fx::at("2026-11-21T16:02:32.531Z").timestamp_millis() as f64 / 1000.0
    );
    for collector in [
        "endpoints",
        "segments",
        "replication",
        "standby",
        "history",
        "recovery",
    ] {
        let labels = [("collector", collector)];
        assert_eq!(
            value(&all, "greenplum_exporter_collector_success", &labels),
            1.0
        );
        assert_eq!(
            value(
                &all,
                "greenplum_exporter_collector_duration_seconds",
                &labels
            ),
            0.01
        );
    }
    assert_eq!(
        value(&all, "greenplum_exporter_scrape_duration_seconds", &[]),
        0.25
    );
    assert_eq!(
        matching(&all, "greenplum_exporter_build_info", &[]).len(),
        1
    );
    // GP6 has no lag intervals and no recovery progress view.
    assert!(absent(&all, "greenplum_mirror_replay_lag_seconds"));
    assert!(absent(&all, "greenplum_standby_replay_lag_seconds"));
    assert!(absent(&all, "greenplum_recovery_bytes"));
}

#[test]
fn failover_changes_values_not_series() {
    let before = series(fx::healthy());
    let after = series(fx::after_failover());
    let identities = |all: &[Series], name: &str| -> BTreeSet<BTreeMap<String, String>> {
        matching(all, name, &[])
            .into_iter()
            .map(|s| s.labels.clone())
            .collect()
    };
    for name in [
        "greenplum_segment_up",
        "greenplum_segment_is_primary",
        "greenplum_segment_role_mismatch",
        "greenplum_segment_mode",
    ] {
        assert_eq!(
            identities(&before, name),
            identities(&after, name),
            "{name}"
        );
    }
    assert_eq!(
        value(&after, "greenplum_segment_is_primary", &[("dbid", "5")]),
        1.0
    );
    assert_eq!(
        value(&after, "greenplum_segment_is_primary", &[("dbid", "2")]),
        0.0
    );
    assert_eq!(value(&after, "greenplum_segment_up", &[("dbid", "2")]), 0.0);
    for dbid in ["2", "5"] {
        assert_eq!(
            value(&after, "greenplum_segment_role_mismatch", &[("dbid", dbid)]),
            1.0
        );
        assert_eq!(
            current_state(&after, "greenplum_segment_mode", &[("dbid", dbid)], "mode"),
            "not_synchronized"
        );
    }
    assert_eq!(
        value(&after, "greenplum_segment_role_mismatch", &[("dbid", "3")]),
        0.0
    );
    assert_eq!(value(&after, "greenplum_segments_role_mismatch", &[]), 2.0);
    assert_eq!(value(&after, "greenplum_contents_unprotected", &[]), 1.0);
    assert_eq!(value(&after, "greenplum_contents_unavailable", &[]), 0.0);
    assert_eq!(
        value(
            &after,
            "greenplum_segments",
            &[("role", "mirror"), ("status", "down")]
        ),
        1.0
    );
    assert_eq!(
        current_state(&after, "greenplum_cluster_state", &[], "state"),
        "unprotected"
    );
    assert_eq!(
        current_state(
            &after,
            "greenplum_mirror_replication_state",
            &[("content", "0")],
            "state"
        ),
        "disconnected"
    );
    // An all-NULL replication row has no positions: no lag series for it.
    assert!(matching(
        &after,
        "greenplum_mirror_wal_lag_bytes",
        &[("content", "0")]
    )
    .is_empty());
    assert_eq!(
        value(
            &after,
            "greenplum_mirror_wal_lag_bytes",
            &[("content", "2"), ("stage", "replay")]
        ),
        (0x4A170000 - 0x4A16CA20) as f64
    );
    assert_eq!(value(&after, "greenplum_fts_events_total", &[]), 8.0);
}

#[test]
fn mirror_down_is_unprotected_and_disconnected() {
    let all = series(fx::mirror_down());
    assert_eq!(value(&all, "greenplum_segment_up", &[("dbid", "6")]), 0.0);
    assert_eq!(
        current_state(
            &all,
            "greenplum_mirror_replication_state",
            &[("content", "1")],
            "state"
        ),
        "disconnected"
    );
    assert_eq!(value(&all, "greenplum_contents_unprotected", &[]), 1.0);
    assert_eq!(value(&all, "greenplum_segments_role_mismatch", &[]), 0.0);
    assert_eq!(
        current_state(&all, "greenplum_cluster_state", &[], "state"),
        "unprotected"
    );
}

#[test]
fn lagging_mirror_and_standby_report_every_stage() {
    let all = series(fx::lagging_gp7());
    let lag = |stage| {
        value(
            &all,
            "greenplum_mirror_wal_lag_bytes",
            &[("content", "0"), ("stage", stage)],
        )
    };
    assert_eq!(lag("send"), (0xD100000 - 0xD000000) as f64);
    assert_eq!(lag("flush"), (0xD000000 - 0xCE00000) as f64);
    assert_eq!(lag("replay"), (0xCE00000 - 0xC800000) as f64);
    assert_eq!(
        value(
            &all,
            "greenplum_mirror_replay_lag_seconds",
            &[("content", "0")]
        ),
        2.5
    );
    let standby = |stage| value(&all, "greenplum_standby_wal_lag_bytes", &[("stage", stage)]);
    assert_eq!(standby("send"), (0xC04A000 - 0xC049798) as f64);
    assert_eq!(standby("flush"), 0.0);
    assert_eq!(standby("replay"), (0xC049798 - 0xC000128) as f64);
    assert_eq!(
        value(&all, "greenplum_standby_replay_lag_seconds", &[]),
        0.75
    );
    assert_eq!(
        value(&all, "greenplum_version_info", &[("version", "7.1.0")]),
        1.0
    );
}

#[test]
fn full_recovery_reports_backup_and_progress() {
    let all = series(fx::full_recovery_gp7());
    assert_eq!(
        current_state(
            &all,
            "greenplum_mirror_replication_state",
            &[("content", "1")],
            "state"
        ),
        "backup"
    );
    let bytes = |kind| {
        value(
            &all,
            "greenplum_recovery_bytes",
            &[("content", "1"), ("kind", kind)],
        )
    };
    assert_eq!(bytes("total"), 1_500_000_000.0);
    assert_eq!(bytes("streamed"), 400_000_000.0);
}

#[test]
fn standby_down_is_seen_despite_its_catalog_row() {
    let all = series(fx::standby_down());
    // The catalog row still says up and synchronized; the exporter does not repeat the lie.
    assert_eq!(value(&all, "greenplum_standby_configured", &[]), 1.0);
    assert_eq!(
        current_state(&all, "greenplum_standby_replication_state", &[], "state"),
        "disconnected"
    );
    assert_eq!(value(&all, "greenplum_standby_sync", &[]), 0.0);
    assert!(absent(&all, "greenplum_standby_wal_lag_bytes"));
    assert_eq!(
        current_state(
            &all,
            "greenplum_endpoint_state",
            &[("endpoint", "vm:6001")],
            "state"
        ),
        "down"
    );
    // The segment tier is fine.
    assert_eq!(
        current_state(&all, "greenplum_cluster_state", &[], "state"),
        "healthy"
    );
}

#[test]
fn coordinator_down_still_reports_endpoints() {
    let all = series(fx::coordinator_down());
    assert_eq!(value(&all, "greenplum_up", &[]), 0.0);
    assert_eq!(
        current_state(
            &all,
            "greenplum_endpoint_state",
            &[("endpoint", "vm:6000")],
            "state"
        ),
        "down"
    );
    assert_eq!(
        current_state(
            &all,
            "greenplum_endpoint_state",
            &[("endpoint", "vm:6001")],
            "state"
        ),
        "standby_in_recovery"
    );
    assert_eq!(
        current_state(&all, "greenplum_cluster_state", &[], "state"),
        "unknown"
    );
    assert_eq!(
        value(
            &all,
            "greenplum_exporter_collector_success",
            &[("collector", "endpoints")]
        ),
        1.0
    );
    for collector in ["segments", "replication", "standby", "history", "recovery"] {
        let labels = [("collector", collector)];
        assert_eq!(
            value(&all, "greenplum_exporter_collector_success", &labels),
            0.0
        );
    }
    // Nothing the catalog would have said is invented.
    for name in [
        "greenplum_version_info",
        "greenplum_segment_up",
        "greenplum_segment_info",
        "greenplum_standby_configured",
        "greenplum_standby_replication_state",
        "greenplum_mirror_replication_state",
        "greenplum_segments",
        "greenplum_fts_events_total",
    ] {
        assert!(
            absent(&all, name),
            "{name} must vanish without a coordinator"
        );
    }
}

#[test]
fn a_failed_source_costs_only_its_own_series() {
    let all = series(fx::replication_failed());
    assert_eq!(
        value(
            &all,
            "greenplum_exporter_collector_success",
            &[("collector", "replication")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &all,
            "greenplum_exporter_collector_duration_seconds",
            &[("collector", "replication")]
        ),
        5.0
    );
    assert!(absent(&all, "greenplum_mirror_replication_state"));
    assert!(absent(&all, "greenplum_mirror_wal_lag_bytes"));
    for collector in ["segments", "standby", "history", "recovery"] {
        let labels = [("collector", collector)];
        assert_eq!(
            value(&all, "greenplum_exporter_collector_success", &labels),
            1.0
        );
    }
    assert_eq!(value(&all, "greenplum_up", &[]), 1.0);
    assert_eq!(matching(&all, "greenplum_segment_up", &[]).len(), 6);
    assert_eq!(value(&all, "greenplum_standby_sync", &[]), 1.0);
}

#[test]
fn a_removed_segment_row_loses_its_series() {
    let mut snapshot = fx::healthy();
    if let Ok(rows) = &mut snapshot.segments {
        rows.retain(|s| s.dbid != 7);
    }
    let all = series(snapshot);
    for name in [
        "greenplum_segment_up",
        "greenplum_segment_is_primary",
        "greenplum_segment_role_mismatch",
        "greenplum_segment_mode",
        "greenplum_segment_info",
    ] {
        assert!(matching(&all, name, &[("dbid", "7")]).is_empty(), "{name}");
        assert!(!matching(&all, name, &[("dbid", "4")]).is_empty(), "{name}");
    }
}

#[test]
fn gp5_modes_get_the_wider_state_set() {
    let mut snapshot = fx::healthy();
    snapshot.version = Some(greenplum_catalog::Version {
        product_version: "5.29.0".into(),
        pg_version: "8.3.23".into(),
        dialect: Dialect::Gp5,
        ..fx::gp6()
    });
    if let Ok(rows) = &mut snapshot.segments {
        for row in rows.iter_mut().filter(|r| r.content == 1) {
            row.mode = Mode::ChangeTracking;
            row.datadir = None;
        }
    }
    let all = series(snapshot);
    assert_eq!(
        matching(&all, "greenplum_segment_mode", &[("dbid", "3")]).len(),
        4
    );
    assert_eq!(
        current_state(&all, "greenplum_segment_mode", &[("dbid", "3")], "mode"),
        "change_tracking"
    );
    assert_eq!(
        value(
            &all,
            "greenplum_segment_info",
            &[("dbid", "3"), ("datadir", "")]
        ),
        1.0
    );
}

#[test]
fn no_coordinator_tier_row_is_exported_as_a_segment() {
    // The standby row says up/synchronized even when it is dead (F_standby_down.txt).
    let all = series(fx::standby_down());
    for name in [
        "greenplum_segment_up",
        "greenplum_segment_mode",
        "greenplum_segment_is_primary",
    ] {
        assert!(
            matching(&all, name, &[("content", "-1")]).is_empty(),
            "{name}"
        );
    }
}

/// Every family a rich snapshot can produce, across the fixtures.
fn names_emitted() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for snapshot in [
        fx::healthy(),
        fx::lagging_gp7(),
        fx::full_recovery_gp7(),
        fx::after_failover(),
    ] {
        names.extend(series(snapshot).into_iter().map(|s| s.name));
    }
    names
}

#[test]
fn list_metrics_matches_what_encoding_emits() {
    let listed: BTreeSet<String> = family_names().into_iter().map(String::from).collect();
    assert_eq!(listed, names_emitted());
    let mut sorted = family_names();
    sorted.dedup();
    assert_eq!(sorted.len(), family_names().len(), "duplicate family names");
}

#[test]
fn both_formats_carry_the_same_samples() {
    let scrape = scrape_of(fx::lagging_gp7());
    let om = encode(Some(scrape.clone()), Format::OpenMetrics);
    let text = encode(Some(scrape), Format::Text);
    assert!(om.ends_with("# EOF\n"));
    assert!(!text.contains("# EOF"));
    assert_eq!(parse(&om), parse(&text));
    assert!(om.contains("# TYPE greenplum_fts_events counter\n"));
    assert!(text.contains("# TYPE greenplum_fts_events_total counter\n"));
    assert!(om.contains("# TYPE greenplum_version info\n"));
    assert!(text.contains("# TYPE greenplum_version_info gauge\n"));
    assert!(text.contains("# HELP greenplum_version_info "));
    // Every text-format TYPE line names a family whose samples follow it.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(parse(&text).iter().any(|s| s.name == name), "{name}");
    }
}

#[test]
fn help_texts_need_no_escaping() {
    for family in ALL.iter().flat_map(|g| g.iter()) {
        assert!(!family.help.contains(['\\', '\n', '"']), "{}", family.name);
        assert!(family.name.starts_with("greenplum_"), "{}", family.name);
    }
}

#[test]
fn without_a_scrape_only_build_info_is_exposed() {
    let all = parse(&encode(None, Format::Text));
    let names: BTreeSet<_> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["greenplum_exporter_build_info"]));
}

#[test]
fn unlabelled_series_have_no_empty_braces() {
    let body = encode(Some(scrape_of(fx::healthy())), Format::OpenMetrics);
    assert!(!body.contains("{}"), "{body}");
    assert!(body.contains("\ngreenplum_up 1\n"));
}

/// A double fault on GP6 leaves the catalog as it was (the dead primary still `u`); only the
/// dispatch failure with an unprotected content shows it (found by the e2e fault matrix:
/// `greenplum_contents_unavailable` stays 0 and nothing critical fired).
#[test]
fn a_double_fault_the_catalog_hides_is_suspected() {
    let mut snapshot = fx::mirror_down();
    snapshot.replication = Err(greenplum_catalog::SourceError {
        source: greenplum_catalog::Source::Replication,
        message: "failed to acquire resources on one or more segments".into(),
    });
    let all = series(snapshot);
    assert_eq!(value(&all, "greenplum_contents_unavailable", &[]), 0.0);
    assert_eq!(
        value(&all, "greenplum_contents_suspected_unavailable", &[]),
        1.0
    );
    // A timeout is no dispatch failure, and a failing dispatch with every content
    // protected is the normal failover window.
    for quiet in [fx::mirror_down(), fx::replication_failed(), fx::healthy()] {
        let all = series(quiet);
        assert_eq!(
            value(&all, "greenplum_contents_suspected_unavailable", &[]),
            0.0
        );
    }
}

/// The recorded snapshots whose expositions are kept in `golden/`.
fn golden_cases() -> Vec<(&'static str, Option<Scrape>)> {
    vec![
        ("healthy", Some(scrape_of(fx::healthy()))),
        ("after_failover", Some(scrape_of(fx::after_failover()))),
        ("mirror_down", Some(scrape_of(fx::mirror_down()))),
        ("lagging_gp7", Some(scrape_of(fx::lagging_gp7()))),
        (
            "full_recovery_gp7",
            Some(scrape_of(fx::full_recovery_gp7())),
        ),
        ("standby_down", Some(scrape_of(fx::standby_down()))),
        ("coordinator_down", Some(scrape_of(fx::coordinator_down()))),
        (
            "replication_failed",
            Some(scrape_of(fx::replication_failed())),
        ),
        ("no_scrape", None),
    ]
}

/// The build's version and revision change with every commit; the golden files hold
/// placeholders instead.
fn without_build_identity(body: &str) -> String {
    body.replace(&format!("version=\"{VERSION}\""), "version=\"VERSION\"")
        .replace(&format!("revision=\"{REVISION}\""), "revision=\"REVISION\"")
}

/// Byte for byte, both formats, what the exporter exposed for recorded snapshots when these
/// files were written (by the prometheus-client encoder and its OpenMetrics-to-text rewrite,
/// before the direct encoder replaced them). A change here changes what users scrape: rewrite
/// the files with `GOLDEN_UPDATE=1 cargo test -p greenplum-exporter golden` only on purpose.
#[test]
fn expositions_match_the_golden_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/metrics/golden");
    let update = std::env::var_os("GOLDEN_UPDATE").is_some();
    for (name, scrape) in golden_cases() {
        for (format, ext) in [(Format::OpenMetrics, "om"), (Format::Text, "txt")] {
            let body = without_build_identity(&encode(scrape.clone(), format));
            let path = dir.join(format!("{name}.{ext}"));
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &body).unwrap();
                continue;
            }
            let golden = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(body == golden, "{} differs:\n{body}", path.display());
        }
    }
}

/// The body is sent piece by piece so it is never held whole: the pieces are whole
/// families, none empty, and together the same bytes as the body encoded at once.
#[test]
fn the_exposition_comes_in_pieces_of_whole_families() {
    for format in [Format::OpenMetrics, Format::Text] {
        let pieces: Vec<String> = Exposition::new(Some(scrape_of(fx::healthy())), format).collect();
        assert!(pieces.len() >= PARTS.len(), "{}", pieces.len());
        for piece in &pieces {
            assert!(piece.starts_with("# HELP "), "{piece}");
            assert!(piece.ends_with('\n'));
        }
        assert_eq!(
            pieces.concat(),
            encode(Some(scrape_of(fx::healthy())), format)
        );
    }
}
