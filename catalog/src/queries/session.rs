//! The statements that manage the connection rather than read a source: the probe's
//! "are you in recovery", the session settings (startup options, not statements), `version()`, and the one read-write
//! transaction (asking FTS to probe). Kept here so every statement the crate sends is in
//! `queries/`; the reader and the prober only decide what an answer means for the session.

use std::time::Duration;

use super::RawRow;

/// Asked of every endpoint that lets us log in: `f` is the acting coordinator.
pub const IN_RECOVERY: &str = "SELECT pg_is_in_recovery()::text AS in_recovery";

/// Asked once per connection: the dialect of every source follows from the answer.
pub const VERSION: &str = "SELECT version()::text AS version";

/// Asks FTS to probe now and waits for the probe. FTS may take its probe timeout and retries
/// to answer: the statement is allowed [`FTS_PROBE_TIMEOUT`]. Read-write, because an
/// implementation may need a writable transaction (the lab's does).
pub const FTS_PROBE: &str = "BEGIN TRANSACTION READ WRITE; SET LOCAL statement_timeout = '60s'; \
    SELECT gp_request_fts_probe_scan()::text AS requested; COMMIT";

/// The server-side bound written into [`FTS_PROBE`].
pub const FTS_PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Ends an [`FTS_PROBE`] transaction that failed half-way.
pub const ROLLBACK: &str = "ROLLBACK";

/// Session settings of every catalog connection: bounded, read-only, UTC timestamps (the
/// history mapping parses them). Sent as startup options (libpq `options`), never as `SET`:
/// on Greenplum 6 a `SET` is dispatched to the segments and fails (58M01, "failed to acquire
/// resources on one or more segments") while a content has no primary, which would make the
/// coordinator unreadable exactly during a double fault (issue 12, seen on a real 6.24.3).
pub fn startup_options(statement_timeout: Duration) -> String {
    let millis = statement_timeout.as_millis().max(1);
    format!("-c statement_timeout={millis} -c default_transaction_read_only=on -c TimeZone=UTC")
}

/// The answer to [`IN_RECOVERY`]; `None` when there was no value.
pub fn in_recovery(rows: &[RawRow]) -> Option<bool> {
    rows.first()
        .and_then(|r| r.get("in_recovery").map(|v| v == "t" || v == "true"))
}

/// The text of [`VERSION`]; `None` when there was no row.
pub fn version_text(rows: &[RawRow]) -> Option<&str> {
    rows.first().and_then(|r| r.get("version"))
}

/// Whether FTS accepted the [`FTS_PROBE`] request.
pub fn fts_requested(rows: &[RawRow]) -> bool {
    matches!(
        rows.first().and_then(|r| r.get("requested")),
        Some("t" | "true")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(column: &str, value: Option<&str>) -> Vec<RawRow> {
        vec![RawRow::from_pairs([(column, value)])]
    }

    #[test]
    fn answers_as_psql_and_the_driver_print_them() {
        assert_eq!(in_recovery(&one("in_recovery", Some("f"))), Some(false));
        assert_eq!(in_recovery(&one("in_recovery", Some("t"))), Some(true));
        assert_eq!(in_recovery(&one("in_recovery", Some("true"))), Some(true));
        assert_eq!(in_recovery(&one("in_recovery", None)), None);
        assert_eq!(in_recovery(&[]), None);
        assert!(fts_requested(&one("requested", Some("t"))));
        assert!(!fts_requested(&one("requested", Some("f"))));
        assert!(!fts_requested(&[]));
        assert_eq!(
            version_text(&one("version", Some("PostgreSQL 9.4.26"))),
            Some("PostgreSQL 9.4.26")
        );
        assert_eq!(version_text(&[]), None);
    }

    #[test]
    fn session_settings_never_say_zero() {
        assert!(startup_options(Duration::ZERO).starts_with("-c statement_timeout=1 "));
        let options = startup_options(Duration::from_secs(5));
        assert!(options.contains("statement_timeout=5000 "), "{options}");
        assert!(
            options.contains("-c default_transaction_read_only=on"),
            "{options}"
        );
        assert!(options.ends_with("-c TimeZone=UTC"), "{options}");
        assert!(FTS_PROBE.contains(&format!("'{}s'", FTS_PROBE_TIMEOUT.as_secs())));
    }
}
