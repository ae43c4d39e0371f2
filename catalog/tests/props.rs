//! Property tests (the fuzz targets of issue 8) for the catalog's text parsers: `version()`
//! strings, LSNs, and the classifier of login refusals.
//!
//! Each target checks two things: arbitrary input never panics, and a meaningful property
//! holds (a round trip, agreement with a small independent model, or an error that names
//! the bad input). `PROPTEST_CASES=N` raises the number of cases for a longer run; the
//! defaults keep `cargo test` to a few seconds.

use greenplum_catalog::endpoint::{classify_rejection, last_replayed_from_detail};
use greenplum_catalog::{parse_version, Dialect, EndpointState, Lsn, Product, VersionError};
use greenplum_test_support::proptest_config;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// version()

/// The products a real `version()` names, with the words before the product version.
fn product() -> impl Strategy<Value = (Product, &'static str)> {
    prop_oneof![
        Just((Product::Greenplum, "Greenplum Database")),
        Just((Product::Cloudberry, "Apache Cloudberry")),
        Just((Product::Cloudberry, "Cloudberry Database")),
        Just((Product::Greengage, "Greengage Database")),
    ]
}

/// PostgreSQL bases as the products print them: `8.3.23` (GP5), `9.4.26` (GP6/Greengage),
/// `12.12` (GP7), `14.4` (Cloudberry), plus pre-release suffixes.
fn pg_base() -> impl Strategy<Value = (u32, String)> {
    (
        8u32..=30,
        0u32..100,
        proptest::option::of(0u32..100),
        "(|beta1|rc2|devel)",
    )
        .prop_map(|(major, minor, patch, suffix)| {
            let text = match (patch, suffix.is_empty()) {
                (Some(patch), true) => format!("{major}.{minor}.{patch}"),
                (None, true) => format!("{major}.{minor}"),
                // Pre-releases print as `16beta1`.
                (_, false) => format!("{major}{suffix}"),
            };
            (major, text)
        })
}

/// What a product version looks like: `6.24.3`, `2.0.0-incubating`, `7.1.0+dev.5`.
fn product_version() -> impl Strategy<Value = String> {
    (
        0u32..100,
        0u32..100,
        0u32..100,
        "(|-incubating|-beta\\.[0-9]|\\+dev\\.[0-9]{1,3})",
    )
        .prop_map(|(a, b, c, suffix)| format!("{a}.{b}.{c}{suffix}"))
}

/// The model: the dialect follows the PostgreSQL major version only.
fn expected_dialect(major: u32) -> Dialect {
    match major {
        8 => Dialect::Gp5,
        9 => Dialect::Gp6,
        _ => Dialect::Gp7,
    }
}

proptest! {
    #![proptest_config(proptest_config(512))]

    #[test]
    fn version_never_panics_on_any_text(text in any::<String>()) {
        let _ = parse_version(&text);
    }

    #[test]
    fn version_never_panics_after_the_prefix(rest in any::<String>()) {
        let _ = parse_version(&format!("PostgreSQL {rest}"));
    }

    /// Real-shaped strings of every product parse to the product, both versions and the
    /// dialect of the base, whatever the build trailer says.
    #[test]
    fn real_shaped_version_strings_parse(
        (product, words) in product(),
        (major, base) in pg_base(),
        version in product_version(),
        commit in "[0-9a-f]{7,40}",
        trailer in "[ -~]{0,80}",
    ) {
        let text = format!(
            "PostgreSQL {base} ({words} {version} build commit:{commit}) on \
             x86_64-pc-linux-gnu, {trailer}"
        );
        let parsed = parse_version(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.product, product);
        prop_assert_eq!(parsed.product_version, version);
        prop_assert_eq!(parsed.pg_version, base);
        prop_assert_eq!(parsed.dialect, expected_dialect(major));
    }

    /// A plain PostgreSQL (a distribution build) is Unknown with its own version.
    #[test]
    fn plain_postgresql_is_unknown_with_its_version(
        (major, base) in pg_base(),
        distro in "[A-Za-z]{1,10} [0-9.]{1,8}-[0-9]",
    ) {
        let text = format!("PostgreSQL {base} ({distro}) on x86_64-pc-linux-gnu");
        let parsed = parse_version(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.product, Product::Unknown);
        prop_assert_eq!(&parsed.product_version, &base);
        prop_assert_eq!(parsed.dialect, expected_dialect(major));
    }

    /// Anything that does not start with `PostgreSQL ` is refused as such, quoting the text.
    #[test]
    fn other_servers_are_refused_by_name(text in "[A-Za-z0-9 .()]{1,60}") {
        prop_assume!(!text.trim().starts_with("PostgreSQL "));
        let error = parse_version(&text).expect_err("not PostgreSQL");
        prop_assert!(matches!(error, VersionError::NotPostgres(_)), "{error:?}");
        prop_assert!(error.to_string().contains(&format!("{:?}", text.trim())), "{error}");
    }

    /// A base that is not a version number is refused, and the error names the base.
    #[test]
    fn bad_bases_are_named(base in "[a-z.\\-]{1,12}|[0-9]{5,9}|[0-9]+\\.\\.[0-9]+") {
        let text = format!("PostgreSQL {base} (Greenplum Database 6.24.3) on x86_64");
        let error = parse_version(&text).expect_err("malformed base");
        prop_assert!(matches!(error, VersionError::BadBase { .. }), "{error:?}");
        prop_assert!(error.to_string().contains(&format!("{base:?}")), "{error}");
    }

    /// Bases older than Greenplum 5 have no dialect and say so.
    #[test]
    fn ancient_bases_are_unsupported(major in 0u32..8, minor in 0u32..10) {
        let text = format!("PostgreSQL {major}.{minor}.1 (Greenplum Database 4.3.0) on x86");
        let error = parse_version(&text).expect_err("too old");
        prop_assert!(matches!(error, VersionError::Unsupported { .. }), "{error:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// LSN

/// The model of a valid LSN text, independent of the parser: after trimming whitespace,
/// exactly one `/` between two runs of one to eight hexadecimal digits.
fn model_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    let half = |h: &str| {
        let ok = (1..=8).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit());
        ok.then(|| {
            h.chars().fold(0u64, |acc, c| {
                acc * 16 + u64::from(c.to_digit(16).unwrap_or(0))
            })
        })
    };
    Some((half(high)? << 32) | half(low)?)
}

/// Texts close to LSNs: hex, slashes, signs, spaces and the odd non-ASCII digit.
fn lsn_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            8 => "[0-9A-Fa-f]",
            2 => Just("/".to_string()),
            1 => "[ +\\-xXgG\t\n]",
            1 => Just("\u{FF10}".to_string()), // fullwidth zero: a digit, but not ASCII hex
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(proptest_config(1024))]

    /// Every position prints as `X/Y` and parses back to itself.
    #[test]
    fn lsn_round_trips(position in any::<u64>()) {
        let text = Lsn(position).to_string();
        prop_assert_eq!(text.parse::<Lsn>(), Ok(Lsn(position)));
    }

    /// Lower case, zero-padded halves as other tools print them are the same position.
    #[test]
    fn lsn_accepts_padded_lower_case(high in any::<u32>(), low in any::<u32>()) {
        let text = format!("{high:08x}/{low:08x}");
        let expected = (u64::from(high) << 32) | u64::from(low);
        prop_assert_eq!(text.parse::<Lsn>(), Ok(Lsn(expected)));
    }

    /// On near-LSN garbage the parser agrees with the model, and a refusal quotes the input.
    #[test]
    fn lsn_agrees_with_the_model(text in lsn_like()) {
        match (text.parse::<Lsn>(), model_lsn(&text)) {
            (Ok(parsed), Some(expected)) => prop_assert_eq!(parsed, Lsn(expected)),
            (Err(error), None) => {
                prop_assert!(error.to_string().contains(&format!("{text:?}")), "{error}");
            }
            (got, expected) => {
                prop_assert!(false, "{text:?}: parser {got:?}, model {expected:?}");
            }
        }
    }

    #[test]
    fn lsn_never_panics(text in any::<String>()) {
        prop_assert_eq!(text.parse::<Lsn>().ok().map(|l| l.0), model_lsn(&text));
    }
}

// ---------------------------------------------------------------------------------------------
// Refusal classifier (57M02 / 57P03)

fn sqlstate() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("57M02".to_string()),
        Just("57P03".to_string()),
        Just("57P01".to_string()),
        Just("28P01".to_string()),
        Just("53300".to_string()),
        "[0-9A-Z]{5}",
        any::<String>(),
    ]
}

fn message() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("the database system is in recovery mode".to_string()),
        Just("the database system is starting up".to_string()),
        Just("the database system is shutting down".to_string()),
        Just("the database system is not accepting connections".to_string()),
        any::<String>(),
    ]
}

/// The model: alive-and-replaying iff Greenplum's recovery rejection, or PostgreSQL's
/// "cannot connect now" that is not a shutdown.
fn model_in_recovery(sqlstate: &str, message: &str) -> bool {
    sqlstate == "57M02" || (sqlstate == "57P03" && !message.contains("shutting down"))
}

proptest! {
    #![proptest_config(proptest_config(1024))]

    #[test]
    fn classifier_agrees_with_the_model(
        sqlstate in sqlstate(),
        message in message(),
        detail in proptest::option::of(any::<String>()),
    ) {
        let rejection = classify_rejection(&sqlstate, &message, detail.as_deref());
        let expected = if model_in_recovery(&sqlstate, &message) {
            EndpointState::StandbyInRecovery
        } else {
            EndpointState::Rejecting
        };
        prop_assert_eq!(rejection.state, expected);
        // A replay position is only ever reported for an instance in recovery.
        if rejection.state != EndpointState::StandbyInRecovery {
            prop_assert_eq!(rejection.last_replayed, None);
        }
    }

    /// Greenplum's DETAIL carries the replay position; any position, surrounded by any
    /// first-line prefix and following lines, is found.
    #[test]
    fn recovery_detail_yields_its_position(
        position in any::<u64>(),
        prefix in "[^l]{0,40}",
        rest in "(\n[ -~]{0,80}){0,3}",
    ) {
        let detail = format!("{prefix}last replayed record at {}{rest}", Lsn(position));
        prop_assert_eq!(last_replayed_from_detail(&detail), Some(Lsn(position)));
        let rejection = classify_rejection(
            "57M02",
            "the database system is in recovery mode",
            Some(&detail),
        );
        prop_assert_eq!(rejection.state, EndpointState::StandbyInRecovery);
        prop_assert_eq!(rejection.last_replayed, Some(Lsn(position)));
    }

    /// A damaged position is no position, never a wrong one.
    #[test]
    fn damaged_detail_positions_are_ignored(garbage in lsn_like()) {
        let detail = format!("last replayed record at {garbage}");
        let first_word = garbage.split(char::is_whitespace).next().unwrap_or("");
        prop_assert_eq!(
            last_replayed_from_detail(&detail).map(|l| l.0),
            model_lsn(first_word)
        );
    }
}

/// A fullwidth digit is a Unicode digit but no hexadecimal digit (the generator's odd case,
/// pinned here so it holds whatever the case count).
#[test]
fn fullwidth_digits_are_not_an_lsn() {
    assert!("\u{FF10}/0".parse::<Lsn>().is_err());
    assert!("0/\u{FF11}".parse::<Lsn>().is_err());
}
