//! Property tests for what the exporter reads from scrape requests: the `Accept` header
//! (content negotiation), Prometheus' scrape-timeout header (the catalog budget), and the
//! `--config.file` text. Arbitrary input never panics, and each agrees with a small model.
//! `PROPTEST_CASES=N` raises the number of cases for a longer run.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use greenplum_exporter::clusters::ClustersFile;
use greenplum_exporter::exposition::negotiate;
use greenplum_exporter::http::scrape_budget;
use greenplum_exporter::metrics::Format;
use greenplum_test_support::proptest_config;
use proptest::prelude::*;

const TIMEOUT_HEADER: &str = "X-Prometheus-Scrape-Timeout-Seconds";

fn budget_for(value: &[u8]) -> Option<Duration> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(TIMEOUT_HEADER, value);
    Some(scrape_budget(&headers))
}

/// One media range of an `Accept` header: (media, version, q in thousandths).
type Range = (&'static str, Option<&'static str>, Option<u16>);

fn range() -> impl Strategy<Value = Range> {
    (
        prop::sample::select(vec![
            "application/openmetrics-text",
            "text/plain",
            "text/*",
            "*/*",
            "text/html",
            "application/json",
        ]),
        proptest::option::of(prop::sample::select(vec![
            "1.0.0", "0.0.1", "0.0.4", "2.0.0",
        ])),
        proptest::option::of(0u16..=1000),
    )
}

fn render(ranges: &[Range]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|(media, version, q)| {
            let mut part = media.to_string();
            if let Some(v) = version {
                part.push_str(&format!(";version={v}"));
            }
            if let Some(q) = q {
                part.push_str(&format!(";q={}", f32::from(*q) / 1000.0));
            }
            part
        })
        .collect();
    parts.join(",")
}

/// The model: the best q of acceptable OpenMetrics ranges against the best q of text ones.
fn model(ranges: &[Range]) -> Format {
    let q = |r: &Range| r.2.map_or(1000, |q| q);
    let om = ranges
        .iter()
        .filter(|r| r.0 == "application/openmetrics-text")
        .filter(|r| matches!(r.1, None | Some("1.0.0") | Some("0.0.1")))
        .map(q)
        .max()
        .unwrap_or(0);
    let text = ranges
        .iter()
        .filter(|r| matches!(r.0, "text/plain" | "text/*" | "*/*"))
        .map(q)
        .max()
        .unwrap_or(0);
    if om > 0 && om >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

proptest! {
    #![proptest_config(proptest_config(1024))]

    #[test]
    fn negotiation_never_panics(accept in any::<String>()) {
        let _ = negotiate(Some(&accept));
    }

    #[test]
    fn negotiation_agrees_with_the_model(ranges in proptest::collection::vec(range(), 0..6)) {
        let accept = render(&ranges);
        prop_assert_eq!(negotiate(Some(&accept)), model(&ranges), "{}", accept);
    }

    /// Any header bytes: a budget, never a panic, never more than the scraper allows.
    #[test]
    fn scrape_budget_never_panics(value in proptest::collection::vec(any::<u8>(), 0..40)) {
        if let Some(budget) = budget_for(&value) {
            prop_assert!(budget > Duration::ZERO);
        }
    }

    /// Numbers of every magnitude, including ones no Duration can hold.
    #[test]
    fn scrape_budget_follows_the_header(seconds in prop_oneof![
        0.001f64..1000.0,
        1e10f64..1e300,
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
    ]) {
        let budget = budget_for(seconds.to_string().as_bytes()).expect("a number is a header");
        match Duration::try_from_secs_f64(seconds) {
            Ok(timeout) => {
                let expected = timeout.saturating_sub(Duration::from_millis(500)).max(timeout / 2);
                prop_assert_eq!(budget, expected);
            }
            // Beyond any Duration: the default (10 s less the margin).
            Err(_) => prop_assert_eq!(budget, Duration::from_millis(9500)),
        }
    }

    #[test]
    fn cluster_files_never_panic(text in any::<String>()) {
        let _ = ClustersFile::parse(&text);
    }

    /// Cluster names outside [A-Za-z0-9._-] are refused by name.
    #[test]
    fn odd_cluster_names_are_refused(name in "[a-z]{0,3}[/ :@%?#&\\\\][a-z]{0,3}") {
        let text = format!(
            "clusters:\n  {:?}:\n    endpoints: [\"h:5432\"]\n    user: u\n    database: d\n",
            name
        );
        let error = ClustersFile::parse(&text).expect_err("odd name").to_string();
        prop_assert!(error.contains(&format!("{name:?}")), "{}", error);
    }
}

/// Found by `scrape_budget_follows_the_header`: `Duration::from_secs_f64` panics on a number
/// too large for a Duration, so a scrape with `X-Prometheus-Scrape-Timeout-Seconds: 1e300`
/// panicked in the handler and lost its answer.
#[test]
fn regression_a_huge_scrape_timeout_is_the_default() {
    assert_eq!(budget_for(b"1e300"), Some(Duration::from_millis(9500)));
    assert_eq!(
        budget_for(b"18446744073709551616"),
        Some(Duration::from_millis(9500))
    );
}
