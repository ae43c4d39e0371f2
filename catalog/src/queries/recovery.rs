//! Progress of full recoveries (`gprecoverseg -F`) from `gp_stat_progress_basebackup`
//! (GP7 and Cloudberry). GP5/GP6 have no such view: [`sql`] is `None` and the reader reports
//! an empty list (on GP6 a running copy shows as replication state `backup` instead).

use super::{id, Cells, RawRow, RowError, SourceQuery};
use crate::snapshot::{Dialect, RecoveryProgress};

const GP7: &str = "SELECT gp_segment_id::text AS gp_segment_id, phase::text AS phase, \
    backup_total::text AS backup_total, backup_streamed::text AS backup_streamed \
    FROM gp_stat_progress_basebackup ORDER BY gp_segment_id";

/// The source of [`Snapshot::recovery`](crate::Snapshot::recovery).
pub struct RecoverySource;

impl SourceQuery for RecoverySource {
    const NAME: &'static str = "gp_stat_progress_basebackup";
    type Out = Vec<RecoveryProgress>;

    fn sql(dialect: Dialect) -> Option<&'static str> {
        sql(dialect)
    }

    fn map(_: Dialect, rows: &[RawRow]) -> Result<Vec<RecoveryProgress>, RowError> {
        map(rows)
    }
}

/// The statement for `dialect`; `None` before GP7.
pub fn sql(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Gp5 | Dialect::Gp6 => None,
        Dialect::Gp7 => Some(GP7),
    }
}

/// One entry per copy in progress.
pub fn map(rows: &[RawRow]) -> Result<Vec<RecoveryProgress>, RowError> {
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            let cells = Cells::new(index, row);
            Ok(RecoveryProgress {
                content: id(&cells, "gp_segment_id")?,
                phase: cells.required("phase")?.to_string(),
                // NULL while the size is still being estimated.
                total_bytes: cells.parse_opt("backup_total", "a byte count")?,
                streamed_bytes: cells.parse_opt("backup_streamed", "a byte count")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::psql::parse_aligned;

    #[test]
    fn gp7_copy_in_progress() {
        let rows = parse_aligned(include_str!(
            "../../tests/fixtures/gp7_progress_basebackup.txt"
        ))
        .unwrap();
        assert_eq!(
            map(&rows).unwrap(),
            vec![RecoveryProgress {
                content: 1,
                phase: "streaming database files".into(),
                total_bytes: Some(1_503_238_553),
                streamed_bytes: Some(402_653_184),
            }]
        );
    }

    #[test]
    fn no_view_before_gp7() {
        assert_eq!(sql(Dialect::Gp5), None);
        assert_eq!(sql(Dialect::Gp6), None);
        assert!(sql(Dialect::Gp7).is_some());
    }

    #[test]
    fn estimating_and_garbage() {
        let estimating = RawRow::from_pairs([
            ("gp_segment_id", Some("0")),
            ("phase", Some("estimating backup size")),
            ("backup_total", None),
            ("backup_streamed", Some("0")),
        ]);
        assert_eq!(map(&[estimating]).unwrap()[0].total_bytes, None);
        let negative = RawRow::from_pairs([
            ("gp_segment_id", Some("0")),
            ("phase", Some("x")),
            ("backup_total", Some("-1")),
        ]);
        assert!(map(&[negative])
            .unwrap_err()
            .to_string()
            .contains("backup_total"));
    }
}
