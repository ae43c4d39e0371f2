//! `gp_configuration_history`, summarised in SQL: the table grows forever, so each round
//! reads the counts and the newest [`RECENT_LINES`] lines, never the whole table.
//!
//! The text column is `"desc"` on GP5/GP6 (quoted: `desc` is a keyword) and `description`
//! on GP7 and later.

use chrono::{DateTime, Utc};

use super::{id, Cells, RawRow, RowError, SourceQuery};
use crate::snapshot::{Dialect, History, HistoryEntry};

/// How many of the newest lines a snapshot carries.
pub const RECENT_LINES: usize = 20;

/// Window aggregates are computed over the whole table before `LIMIT`, so every returned
/// line carries the same summary; an empty table returns no row and an empty summary.
macro_rules! history_sql {
    ($column:literal) => {
        concat!(
            "SELECT time::text AS time, dbid::text AS dbid, ",
            $column,
            "::text AS description, ",
            "count(*) OVER ()::text AS total_events, ",
            "sum(CASE WHEN ",
            $column,
            " LIKE 'FTS:%' THEN 1 ELSE 0 END) OVER ()::text AS fts_events, ",
            "max(time) OVER ()::text AS last_change ",
            "FROM gp_configuration_history ORDER BY time DESC LIMIT 20"
        )
    };
}

const GP5_GP6: &str = history_sql!("\"desc\"");
const GP7: &str = history_sql!("description");

/// The source of [`Snapshot::history`](crate::Snapshot::history).
pub struct HistorySource;

impl SourceQuery for HistorySource {
    const NAME: &'static str = "gp_configuration_history";
    type Out = History;

    fn sql(dialect: Dialect) -> Option<&'static str> {
        Some(sql(dialect))
    }

    fn map(_: Dialect, rows: &[RawRow]) -> Result<History, RowError> {
        map(rows)
    }
}

/// The statement for `dialect` (every dialect has one).
pub fn sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Gp5 | Dialect::Gp6 => GP5_GP6,
        Dialect::Gp7 => GP7,
    }
}

/// Maps the summary and the recent lines (newest first, as the query orders them).
pub fn map(rows: &[RawRow]) -> Result<History, RowError> {
    let Some(first) = rows.first() else {
        return Ok(History::default());
    };
    let summary = Cells::new(0, first);
    let mut history = History {
        total_events: summary.parse("total_events", "a count")?,
        fts_events: summary.parse("fts_events", "a count")?,
        last_change: summary
            .opt("last_change")
            .map(|text| timestamp(&summary, "last_change", text))
            .transpose()?,
        recent: Vec::with_capacity(rows.len()),
    };
    for (index, row) in rows.iter().enumerate() {
        let cells = Cells::new(index, row);
        history.recent.push(HistoryEntry {
            time: timestamp(&cells, "time", cells.required("time")?)?,
            dbid: id(&cells, "dbid")?,
            description: cells.opt("description").unwrap_or("").to_string(),
        });
    }
    Ok(history)
}

/// A `timestamptz` as PostgreSQL prints it (`2026-11-21 16:12:08.525358+00`).
fn timestamp(cells: &Cells<'_>, column: &str, text: &str) -> Result<DateTime<Utc>, RowError> {
    DateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S%.f%#z")
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| cells.invalid(column, text, "a timestamp like 2026-11-21 16:12:08.5+00"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::psql::parse_aligned;

    /// Recorded lines plus the summary columns the real query adds.
    fn with_summary(text: &str, total: &str, fts: &str, last: &str) -> Vec<RawRow> {
        let mut rows = parse_aligned(text).unwrap();
        for row in &mut rows {
            if let Some(desc) = row.get("desc").map(str::to_string) {
                row.insert("description", Some(desc));
            }
            row.insert("total_events", Some(total.into()));
            row.insert("fts_events", Some(fts.into()));
            row.insert("last_change", Some(last.into()));
        }
        rows
    }

    #[test]
    fn recorded_gp6_lines_after_activate_standby() {
        let rows = with_summary(
            include_str!("../../tests/fixtures/gp6_history_after_activate.txt"),
            "42",
            "40",
            "2026-11-21 16:12:08.525358+00",
        );
        let history = map(&rows).unwrap();
        assert_eq!((history.total_events, history.fts_events), (42, 40));
        assert_eq!(
            history.last_change.unwrap().to_rfc3339(),
            "2026-11-21T16:12:08.525358+00:00"
        );
        assert_eq!(history.recent.len(), 5);
        assert_eq!(history.recent[0].dbid, 7);
        assert!(history.recent.iter().all(HistoryEntry::is_fts));
        assert!(history.recent[2].description.ends_with("to m, d, and n"));
    }

    #[test]
    fn gp7_description_column_and_other_offsets() {
        let mut rows = with_summary(
            include_str!("../../tests/fixtures/gp7_history.txt"),
            "2",
            "1",
            "2026-11-21 17:00:01.25+00",
        );
        rows[1].insert("time", Some("2026-11-21 18:59:00.000001+02".into()));
        let history = map(&rows).unwrap();
        assert!(!history.recent[0].is_fts());
        assert!(history.recent[1].is_fts());
        assert_eq!(
            history.recent[1].time.to_rfc3339(),
            "2026-11-21T16:59:00.000001+00:00"
        );
    }

    #[test]
    fn empty_table_is_an_empty_summary() {
        assert_eq!(map(&[]).unwrap(), History::default());
    }

    #[test]
    fn sql_quotes_desc_on_gp6_only() {
        assert!(sql(Dialect::Gp6).contains("\"desc\"::text AS description"));
        assert!(sql(Dialect::Gp5).contains("\"desc\" LIKE 'FTS:%'"));
        assert!(sql(Dialect::Gp7).contains(" description::text AS description"));
        assert!(!sql(Dialect::Gp7).contains("desc\""));
        assert!(sql(Dialect::Gp7).ends_with(&format!("LIMIT {RECENT_LINES}")));
    }

    #[test]
    fn garbage_is_an_error() {
        let rows = with_summary(
            include_str!("../../tests/fixtures/gp6_history_healthy.txt"),
            "six",
            "6",
            "2026-11-21 16:02:32.531996+00",
        );
        assert!(map(&rows).unwrap_err().to_string().contains("total_events"));
        let mut rows = with_summary(
            include_str!("../../tests/fixtures/gp6_history_healthy.txt"),
            "6",
            "6",
            "2026-11-21 16:02:32.531996+00",
        );
        rows[3].insert("time", Some("yesterday".into()));
        let error = map(&rows).unwrap_err().to_string();
        assert!(error.contains("row 3: column time"), "{error}");
    }
}
