//! `gp_segment_configuration`: one row per instance, coordinator tier included.
//!
//! Columns are named, never `*`: GP5 has `replication_port` instead of `datadir`, Cloudberry
//! adds `warehouseid` (ignored), and a later release may add more.

use super::{id, Cells, RawRow, RowError, SourceQuery};
use crate::snapshot::{Dialect, Mode, Role, Segment, SegmentStatus};

const GP6_PLUS: &str = "SELECT dbid::text AS dbid, content::text AS content, role::text AS role, \
    preferred_role::text AS preferred_role, mode::text AS mode, status::text AS status, \
    port::text AS port, hostname::text AS hostname, address::text AS address, \
    datadir::text AS datadir \
    FROM gp_segment_configuration ORDER BY content, dbid";

/// GP5 keeps data directories in `pg_filespace_entry`; the segment source does not need them.
const GP5: &str = "SELECT dbid::text AS dbid, content::text AS content, role::text AS role, \
    preferred_role::text AS preferred_role, mode::text AS mode, status::text AS status, \
    port::text AS port, hostname::text AS hostname, address::text AS address, \
    NULL::text AS datadir \
    FROM gp_segment_configuration ORDER BY content, dbid";

/// The source of [`Snapshot::segments`](crate::Snapshot::segments).
pub struct SegmentsSource;

impl SourceQuery for SegmentsSource {
    const NAME: &'static str = "gp_segment_configuration";
    type Out = Vec<Segment>;

    fn sql(dialect: Dialect) -> Option<&'static str> {
        Some(sql(dialect))
    }

    fn map(_: Dialect, rows: &[RawRow]) -> Result<Vec<Segment>, RowError> {
        map(rows)
    }
}

/// The statement for `dialect` (every dialect has one).
pub fn sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Gp5 => GP5,
        Dialect::Gp6 | Dialect::Gp7 => GP6_PLUS,
    }
}

/// Maps every row; one bad row fails the source with an error naming it, rather than
/// silently dropping an instance from the picture.
pub fn map(rows: &[RawRow]) -> Result<Vec<Segment>, RowError> {
    rows.iter()
        .enumerate()
        .map(|(index, row)| map_row(&Cells::new(index, row)))
        .collect()
}

fn map_row(cells: &Cells<'_>) -> Result<Segment, RowError> {
    let letter = |column: &str| cells.required(column).map(str::trim);
    let role = |column: &str| {
        let value = letter(column)?;
        match value {
            "p" => Ok(Role::Primary),
            "m" => Ok(Role::Mirror),
            _ => Err(cells.invalid(column, value, "p or m")),
        }
    };
    let mode = match letter("mode")? {
        "s" => Mode::Synchronized,
        "n" => Mode::NotSynchronized,
        "c" => Mode::ChangeTracking,
        "r" => Mode::Resynchronizing,
        other => return Err(cells.invalid("mode", other, "s, n, c or r")),
    };
    let status = match letter("status")? {
        "u" => SegmentStatus::Up,
        "d" => SegmentStatus::Down,
        other => return Err(cells.invalid("status", other, "u or d")),
    };
    let hostname = cells.required("hostname")?.to_string();
    Ok(Segment {
        dbid: id(cells, "dbid")?,
        content: id(cells, "content")?,
        role: role("role")?,
        preferred_role: role("preferred_role")?,
        mode,
        status,
        port: cells.parse("port", "a port number")?,
        // `address` is nullable in the catalog; the hostname is the best stand-in.
        address: cells
            .opt("address")
            .map(str::to_string)
            .unwrap_or_else(|| hostname.clone()),
        hostname,
        datadir: cells.opt("datadir").map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{ClusterState, Health};
    use crate::test_support::psql::parse_aligned;

    fn recorded(name: &str) -> Vec<Segment> {
        let text = match name {
            "healthy" => include_str!("../../tests/fixtures/gp6_segments_healthy.txt"),
            "after_failover" => {
                include_str!("../../tests/fixtures/gp6_segments_after_failover.txt")
            }
            "after_activate" => {
                include_str!("../../tests/fixtures/gp6_segments_after_activate_standby.txt")
            }
            "gp5" => include_str!("../../tests/fixtures/gp5_segments_change_tracking.txt"),
            "cloudberry" => include_str!("../../tests/fixtures/cloudberry_segments.txt"),
            _ => unreachable!(),
        };
        map(&parse_aligned(text).unwrap()).unwrap()
    }

    #[test]
    fn healthy_gp6() {
        let segments = recorded("healthy");
        assert_eq!(segments.len(), 8);
        let standby = segments.iter().find(|s| s.dbid == 8).unwrap();
        assert_eq!(
            (standby.content, standby.role, standby.mode, standby.port),
            (-1, Role::Mirror, Mode::Synchronized, 6001)
        );
        assert_eq!(
            standby.datadir.as_deref(),
            Some("/data/gpdemo/standby"),
            "datadir read on GP6"
        );
        assert_eq!(
            Health::from_segments(&segments).state(),
            ClusterState::Healthy
        );
    }

    #[test]
    fn after_failover_gp6() {
        let segments = recorded("after_failover");
        let dead = segments.iter().find(|s| s.dbid == 2).unwrap();
        assert_eq!(
            (dead.role, dead.preferred_role, dead.mode, dead.status),
            (
                Role::Mirror,
                Role::Primary,
                Mode::NotSynchronized,
                SegmentStatus::Down
            )
        );
        assert!(dead.role_mismatch());
        assert_eq!(
            Health::from_segments(&segments).state(),
            ClusterState::Unprotected
        );
    }

    #[test]
    fn coordinator_rows_that_lie_after_activate_standby() {
        // After gpactivatestandby the old standby row says p/p/s/u and the old coordinator
        // row is gone; the segment tier is untouched and healthy.
        let segments = recorded("after_activate");
        assert_eq!(segments.len(), 7);
        let coordinator: Vec<_> = segments.iter().filter(|s| s.content == -1).collect();
        assert_eq!(coordinator.len(), 1);
        assert_eq!(coordinator[0].mode, Mode::Synchronized);
        assert_eq!(
            Health::from_segments(&segments).state(),
            ClusterState::Healthy
        );
    }

    #[test]
    fn gp5_modes_and_no_datadir() {
        let segments = recorded("gp5");
        assert!(segments.iter().all(|s| s.datadir.is_none()));
        let modes: Vec<Mode> = segments
            .iter()
            .filter(|s| s.content == 0)
            .map(|s| s.mode)
            .collect();
        assert_eq!(modes, vec![Mode::ChangeTracking, Mode::ChangeTracking]);
        // Change tracking (mirror down) and resynchronizing both leave a content unprotected.
        let health = Health::from_segments(&segments);
        assert_eq!(
            health.unprotected_contents.into_iter().collect::<Vec<_>>(),
            vec![0, 1]
        );
    }

    #[test]
    fn cloudberry_extra_column_is_ignored() {
        let segments = recorded("cloudberry");
        assert_eq!(segments.len(), 6);
        assert_eq!(
            Health::from_segments(&segments).state(),
            ClusterState::Healthy
        );
    }

    #[test]
    fn gp5_sql_never_names_datadir_column() {
        assert!(!sql(Dialect::Gp5).contains("datadir::text"));
        for dialect in [Dialect::Gp5, Dialect::Gp6, Dialect::Gp7] {
            assert!(!sql(dialect).contains('*'));
        }
    }

    #[test]
    fn garbage_rows_fail_with_the_column_named() {
        let base = [
            ("dbid", Some("2")),
            ("content", Some("0")),
            ("role", Some("p")),
            ("preferred_role", Some("p")),
            ("mode", Some("s")),
            ("status", Some("u")),
            ("port", Some("6002")),
            ("hostname", Some("sdw1")),
            ("address", None),
            ("datadir", None),
        ];
        let ok = map(&[RawRow::from_pairs(base)]).unwrap();
        assert_eq!(ok[0].address, "sdw1");
        let cases = [
            ("role", Some("x"), "column role holds \"x\""),
            ("mode", Some("q"), "column mode holds \"q\""),
            ("status", Some(""), "column status holds \"\""),
            ("dbid", Some("70000"), "column dbid"),
            ("port", None, "column port is missing"),
            ("hostname", None, "column hostname is missing"),
        ];
        for (column, value, expected) in cases {
            let mut row = RawRow::from_pairs(base);
            row.insert(column, value.map(str::to_string));
            let error = map(&[row]).unwrap_err().to_string();
            assert!(error.contains(expected), "{column}: {error}");
        }
    }
}
