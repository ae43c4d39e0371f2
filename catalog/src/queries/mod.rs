//! Every statement the crate sends, and the one contract a catalog source follows.
//!
//! A source is one module here: its SQL per [`Dialect`], a pure mapping from rows to snapshot
//! types, the recorded-row tests of that mapping, and a unit struct implementing
//! [`SourceQuery`] so the reader reads it through one generic, timeout-bounded call. The
//! statements that manage the session rather than read a source live in [`session`].
//!
//! Every query casts its columns to text (`col::text AS col`) and runs over the simple query
//! protocol, so a row is just column name -> optional text ([`RawRow`]). That keeps the
//! mappings free of driver types (`"char"`, `pg_lsn` and intervals decode the same on every
//! version) and lets unit tests feed them rows copied from recorded `psql` output.
//!
//! [`Dialect`]: crate::snapshot::Dialect

pub mod history;
pub mod recovery;
pub mod replication;
pub mod segments;
pub mod session;
pub mod standby;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::lsn::Lsn;
use crate::snapshot::Dialect;

/// One catalog source: what it reads, its SQL per dialect and its row mapping.
///
/// Adding a source means one module in `queries/` with a unit struct implementing this, a
/// field in [`Snapshot`](crate::Snapshot), and one line in the reader's round.
pub trait SourceQuery {
    /// What the source reads, as error messages and logs name it (`gp_segment_configuration`).
    const NAME: &'static str;
    /// What the rows map to.
    type Out;
    /// The statement for `dialect`; `None` when that version has no such view, in which case
    /// the source reads as the mapping of no rows (an empty list, not a failure).
    fn sql(dialect: Dialect) -> Option<&'static str>;
    /// Maps the rows. Pure, so recorded rows in tests take the same path as live ones.
    fn map(dialect: Dialect, rows: &[RawRow]) -> Result<Self::Out, RowError>;
}

/// Why a bounded statement gave no rows.
#[derive(Debug)]
pub(crate) enum Unanswered {
    /// The server (or the connection) returned an error.
    Failed(tokio_postgres::Error),
    /// No answer within the client-side limit; the connection is mid-statement.
    TimedOut,
}

/// The one way the crate runs a statement: simple query protocol, every row as text, bounded
/// on the client side by `limit` (the server's `statement_timeout` may never fire when the
/// network is what hangs).
pub(crate) async fn run(
    client: &Client,
    sql: &str,
    limit: Duration,
) -> Result<Vec<RawRow>, Unanswered> {
    match tokio::time::timeout(limit, client.simple_query(sql)).await {
        Ok(Ok(messages)) => Ok(raw_rows(&messages)),
        Ok(Err(error)) => Err(Unanswered::Failed(error)),
        Err(_) => Err(Unanswered::TimedOut),
    }
}

fn raw_rows(messages: &[SimpleQueryMessage]) -> Vec<RawRow> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(RawRow::from_simple_row(row)),
            _ => None,
        })
        .collect()
}

/// A mapping failure: which column of which row held what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// A column the mapping needs is NULL or absent from the result.
    #[error("row {row}: column {column} is missing or NULL")]
    Missing {
        /// Index of the row in the result, from 0.
        row: usize,
        /// The column's name.
        column: String,
    },
    /// A column holds text the mapping cannot read (an unknown role letter, a bad LSN...).
    #[error("row {row}: column {column} holds {value:?}, expected {expected}")]
    Invalid {
        /// Index of the row in the result, from 0.
        row: usize,
        /// The column's name.
        column: String,
        /// The value as the server sent it (at most 200 characters).
        value: String,
        /// What the mapping accepts, in words.
        expected: &'static str,
    },
    /// The result as a whole makes no sense (a walsender whose details are hidden, a
    /// recorded table without a header).
    #[error("{0}")]
    Malformed(String),
}

/// One result row as text: column name -> value (`None` for SQL NULL).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawRow {
    columns: BTreeMap<String, Option<String>>,
}

impl RawRow {
    /// An empty row; fill it with [`RawRow::insert`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a row from `(column, value)` pairs; handy in tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        RawRow {
            columns: pairs
                .into_iter()
                .map(|(c, v)| (c.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    /// Sets a column (`None` for SQL NULL), replacing any earlier value.
    pub fn insert(&mut self, column: impl Into<String>, value: Option<String>) {
        self.columns.insert(column.into(), value);
    }

    /// A row as the simple query protocol returned it.
    pub fn from_simple_row(row: &tokio_postgres::SimpleQueryRow) -> Self {
        let columns = row
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name().to_string(), row.get(i).map(str::to_string)))
            .collect();
        RawRow { columns }
    }

    /// The value, `None` when NULL or when the query has no such column.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.columns.get(column).and_then(|v| v.as_deref())
    }
}

/// Column access with errors that name the row and the column.
pub(crate) struct Cells<'a> {
    pub row: &'a RawRow,
    pub index: usize,
}

impl<'a> Cells<'a> {
    pub fn new(index: usize, row: &'a RawRow) -> Self {
        Cells { row, index }
    }

    pub fn opt(&self, column: &str) -> Option<&'a str> {
        self.row.get(column)
    }

    pub fn required(&self, column: &str) -> Result<&'a str, RowError> {
        self.opt(column).ok_or_else(|| RowError::Missing {
            row: self.index,
            column: column.to_string(),
        })
    }

    pub fn invalid(&self, column: &str, value: &str, expected: &'static str) -> RowError {
        RowError::Invalid {
            row: self.index,
            column: column.to_string(),
            value: value.chars().take(200).collect(),
            expected,
        }
    }

    pub fn parse<T: FromStr>(&self, column: &str, expected: &'static str) -> Result<T, RowError> {
        let value = self.required(column)?;
        value
            .trim()
            .parse()
            .map_err(|_| self.invalid(column, value, expected))
    }

    pub fn parse_opt<T: FromStr>(
        &self,
        column: &str,
        expected: &'static str,
    ) -> Result<Option<T>, RowError> {
        self.opt(column)
            .map(|value| {
                value
                    .trim()
                    .parse()
                    .map_err(|_| self.invalid(column, value, expected))
            })
            .transpose()
    }

    pub fn lsn_opt(&self, column: &str) -> Result<Option<Lsn>, RowError> {
        self.parse_opt(column, "an LSN like 0/C0000A8")
    }

    /// A lag in seconds: either a number (`EXTRACT(EPOCH FROM lag)`) or an interval as
    /// PostgreSQL prints it (`00:00:01.5`, `1 day 02:00:00`), so recorded rows parse too.
    pub fn seconds_opt(&self, column: &str) -> Result<Option<f64>, RowError> {
        let Some(value) = self.opt(column) else {
            return Ok(None);
        };
        parse_seconds(value)
            .map(Some)
            .ok_or_else(|| self.invalid(column, value, "seconds or an interval like 00:00:01.5"))
    }
}

fn parse_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds.is_finite().then_some(seconds);
    }
    let (days, clock) = match text.split_once(" day") {
        Some((days, rest)) => {
            let rest = rest.trim_start_matches('s').trim();
            (days.trim().parse::<f64>().ok()?, rest)
        }
        None => (0.0, text),
    };
    let mut parts = clock.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let total = days * 86_400.0 + hours * 3_600.0 + minutes * 60.0 + seconds;
    total.is_finite().then_some(total)
}

/// The smallint ids of the catalog (`dbid`, `content`, `gp_segment_id`).
pub(crate) fn id(cells: &Cells<'_>, column: &str) -> Result<i16, RowError> {
    cells.parse(column, "a smallint")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Dialect;
    use proptest::prelude::*;

    const COLUMNS: &[&str] = &[
        "dbid",
        "content",
        "role",
        "preferred_role",
        "mode",
        "status",
        "port",
        "hostname",
        "address",
        "datadir",
        "gp_segment_id",
        "application_name",
        "state",
        "sync_state",
        "sent_location",
        "write_location",
        "flush_location",
        "replay_location",
        "sent_lsn",
        "write_lsn",
        "flush_lsn",
        "replay_lsn",
        "write_lag",
        "flush_lag",
        "replay_lag",
        "pg_current_xlog_location",
        "pg_current_wal_lsn",
        "coordinator_current",
        "time",
        "description",
        "total_events",
        "fts_events",
        "last_change",
        "phase",
        "backup_total",
        "backup_streamed",
    ];

    /// Values that are sometimes well-formed, so mappings get past their first column.
    fn value() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            "[0-9]{1,6}".prop_map(Some),
            "-?[0-9]{1,3}".prop_map(Some),
            "[psmnucrd]".prop_map(Some),
            "(streaming|catchup|backup|sync|async|gp_walreceiver)".prop_map(Some),
            "[0-9A-F]{1,9}/[0-9A-F]{1,9}".prop_map(Some),
            "2026-11-21 16:0[0-9]:3[0-9](\\.[0-9]{1,6})?\\+0[0-9]".prop_map(Some),
            "[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?".prop_map(Some),
            ".*".prop_map(Some),
        ]
    }

    fn rows() -> impl Strategy<Value = Vec<RawRow>> {
        prop::collection::vec(
            prop::collection::vec((prop::sample::select(COLUMNS), value()), 0..24).prop_map(
                |cells| {
                    let mut row = RawRow::new();
                    for (column, value) in cells {
                        row.insert(column, value);
                    }
                    row
                },
            ),
            0..6,
        )
    }

    proptest! {
        /// Whatever the server sends, mappings answer Ok or Err, never panic.
        #[test]
        fn mappings_never_panic(rows in rows()) {
            let _ = segments::map(&rows);
            let _ = history::map(&rows);
            let _ = recovery::map(&rows);
            for dialect in [Dialect::Gp5, Dialect::Gp6, Dialect::Gp7] {
                let _ = replication::map(dialect, &rows);
                let _ = replication::map_current(dialect, &rows);
                let _ = standby::map(dialect, &rows);
            }
        }

        #[test]
        fn text_parsers_never_panic(text in ".*") {
            let _ = crate::test_support::psql::parse_aligned(&text);
            let _ = parse_seconds(&text);
            let _ = crate::endpoint::classify_rejection("57M02", &text, Some(&text));
            let _ = crate::endpoint::last_replayed_from_detail(&text);
            let _ = text.parse::<crate::endpoint::Endpoint>();
            let _ = crate::pgpass::lookup(&text, "h", 1, "d", "u");
            let _ = text.parse::<crate::lsn::Lsn>();
        }
    }

    #[test]
    fn seconds_from_numbers_and_intervals() {
        assert_eq!(parse_seconds("0.25"), Some(0.25));
        assert_eq!(parse_seconds("00:00:01.5"), Some(1.5));
        assert_eq!(parse_seconds("01:02:03"), Some(3723.0));
        assert_eq!(parse_seconds("2 days 00:00:01"), Some(172_801.0));
        assert_eq!(parse_seconds("1 day 00:00:00"), Some(86_400.0));
        for bad in ["", "abc", "1:2", "1:2:3:4", "NaN", "inf", "x day 00:00:00"] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn errors_name_row_and_column() {
        let row = RawRow::from_pairs([("dbid", Some("x")), ("content", None)]);
        let cells = Cells::new(3, &row);
        assert_eq!(
            id(&cells, "dbid").unwrap_err().to_string(),
            "row 3: column dbid holds \"x\", expected a smallint"
        );
        assert_eq!(
            id(&cells, "content").unwrap_err().to_string(),
            "row 3: column content is missing or NULL"
        );
    }
}
