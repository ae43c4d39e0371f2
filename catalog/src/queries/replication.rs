//! Mirror replication from `gp_stat_replication` (GP6+), plus each acting primary's current
//! WAL position for the "not yet sent" part of the lag.
//!
//! The view dispatches to every acting primary: until FTS has acted on a dead primary it fails
//! with "failed to acquire resources on one or more segments". The reader bounds it with
//! `statement_timeout` and runs it apart from the segment source, so that failure costs only
//! this source (and is itself a signal, see [`crate::health`]).
//!
//! GP5 has no such view (file replication): [`sql`] is `None` and the reader reports an
//! empty list, so a GP5 cluster shows no mirror series rather than a permanently failing
//! collector.

use std::collections::BTreeMap;

use super::{id, Cells, RawRow, RowError, SourceQuery};
use crate::lsn::Lsn;
use crate::snapshot::{Dialect, MirrorReplication, ReplicationState, SyncState, WalSender};

const GP6: &str = "SELECT gp_segment_id::text AS gp_segment_id, pid::text AS pid, \
    application_name::text AS application_name, state::text AS state, \
    sync_state::text AS sync_state, sent_location::text AS sent_location, \
    write_location::text AS write_location, flush_location::text AS flush_location, \
    replay_location::text AS replay_location \
    FROM gp_stat_replication WHERE gp_segment_id >= 0 ORDER BY gp_segment_id";

const GP7: &str = "SELECT gp_segment_id::text AS gp_segment_id, pid::text AS pid, \
    application_name::text AS application_name, state::text AS state, \
    sync_state::text AS sync_state, sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn, \
    flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn, \
    EXTRACT(EPOCH FROM write_lag)::text AS write_lag, \
    EXTRACT(EPOCH FROM flush_lag)::text AS flush_lag, \
    EXTRACT(EPOCH FROM replay_lag)::text AS replay_lag \
    FROM gp_stat_replication WHERE gp_segment_id >= 0 ORDER BY gp_segment_id";

/// A separate statement: when it fails only `primary_current` is lost. No `ORDER BY`: the
/// mapping sorts, and the statement stays exactly what `gp_dist_random` is known to answer.
const GP6_CURRENT: &str = "SELECT gp_segment_id::text AS gp_segment_id, \
    pg_current_xlog_location()::text AS pg_current_xlog_location FROM gp_dist_random('gp_id')";
const GP7_CURRENT: &str = "SELECT gp_segment_id::text AS gp_segment_id, \
    pg_current_wal_lsn()::text AS pg_current_wal_lsn FROM gp_dist_random('gp_id')";

/// The source of [`Snapshot::mirrors`](crate::Snapshot::mirrors).
pub struct ReplicationSource;

impl SourceQuery for ReplicationSource {
    const NAME: &'static str = "gp_stat_replication";
    type Out = Vec<MirrorReplication>;

    fn sql(dialect: Dialect) -> Option<&'static str> {
        sql(dialect)
    }

    fn map(dialect: Dialect, rows: &[RawRow]) -> Result<Vec<MirrorReplication>, RowError> {
        map(dialect, rows)
    }
}

/// The acting primaries' current WAL positions, read after [`ReplicationSource`] and
/// [`attach_current`]ed to it; its failure costs only the send lag.
pub struct CurrentWalSource;

impl SourceQuery for CurrentWalSource {
    const NAME: &'static str = "the primaries' current WAL positions";
    type Out = BTreeMap<i16, Lsn>;

    fn sql(dialect: Dialect) -> Option<&'static str> {
        current_sql(dialect)
    }

    fn map(dialect: Dialect, rows: &[RawRow]) -> Result<BTreeMap<i16, Lsn>, RowError> {
        map_current(dialect, rows)
    }
}

/// The `gp_stat_replication` statement for `dialect`; `None` on GP5.
pub fn sql(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Gp5 => None,
        Dialect::Gp6 => Some(GP6),
        Dialect::Gp7 => Some(GP7),
    }
}

/// The current-position statement for `dialect`; `None` on GP5.
pub fn current_sql(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Gp5 => None,
        Dialect::Gp6 => Some(GP6_CURRENT),
        Dialect::Gp7 => Some(GP7_CURRENT),
    }
}

/// Column names of the four WAL positions, per dialect.
fn lsn_columns(dialect: Dialect) -> [&'static str; 4] {
    match dialect {
        Dialect::Gp5 | Dialect::Gp6 => [
            "sent_location",
            "write_location",
            "flush_location",
            "replay_location",
        ],
        Dialect::Gp7 => ["sent_lsn", "write_lsn", "flush_lsn", "replay_lsn"],
    }
}

/// PostgreSQL shows a walsender's pid to everyone but its state and positions only to a
/// superuser (9.4, GP6) or to members of `pg_read_all_stats`/`pg_monitor` (10+, GP7).
pub(crate) const DETAILS_HIDDEN: &str = "walsender details are hidden from this role (pid set, \
    state NULL): on GP6 connect as a superuser, on GP7 grant pg_monitor";

/// One walsender row; `None` when the row is the NULL placeholder of a disconnected replica.
pub(crate) fn walsender(
    dialect: Dialect,
    cells: &Cells<'_>,
) -> Result<Option<WalSender>, RowError> {
    let Some(state_text) = cells.opt("state") else {
        // A walsender whose details are hidden from us is not a disconnected mirror: saying
        // so would page someone for nothing. Fail the source with the reason instead.
        if cells.opt("pid").is_some() {
            return Err(RowError::Malformed(DETAILS_HIDDEN.into()));
        }
        return Ok(None);
    };
    let state = ReplicationState::from_walsender(state_text.trim()).ok_or_else(|| {
        cells.invalid(
            "state",
            state_text,
            "startup, catchup, streaming, backup or stopping",
        )
    })?;
    let sync_state = cells
        .opt("sync_state")
        .map(|text| {
            SyncState::parse(text.trim()).ok_or_else(|| {
                cells.invalid("sync_state", text, "sync, async, potential or quorum")
            })
        })
        .transpose()?;
    let [sent, write, flush, replay] = lsn_columns(dialect);
    Ok(Some(WalSender {
        application_name: cells.opt("application_name").unwrap_or("").to_string(),
        state,
        sync_state,
        sent: cells.lsn_opt(sent)?,
        write: cells.lsn_opt(write)?,
        flush: cells.lsn_opt(flush)?,
        replay: cells.lsn_opt(replay)?,
        write_lag_seconds: cells.seconds_opt("write_lag")?,
        flush_lag_seconds: cells.seconds_opt("flush_lag")?,
        replay_lag_seconds: cells.seconds_opt("replay_lag")?,
    }))
}

/// Groups the rows by content. Several rows per content are normal (the `pg_basebackup`
/// walsenders of a full recovery); a content whose only row is the NULL placeholder has its
/// mirror disconnected. Rows for the coordinator tier (-1, the standby) are skipped.
pub fn map(dialect: Dialect, rows: &[RawRow]) -> Result<Vec<MirrorReplication>, RowError> {
    let mut by_content: BTreeMap<i16, MirrorReplication> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        let cells = Cells::new(index, row);
        let content = id(&cells, "gp_segment_id")?;
        if content < 0 {
            continue;
        }
        let entry = by_content
            .entry(content)
            .or_insert_with(|| MirrorReplication {
                content,
                mirror: None,
                others: Vec::new(),
                primary_current: None,
            });
        match walsender(dialect, &cells)? {
            Some(sender) if sender.is_gp_walreceiver() && entry.mirror.is_none() => {
                entry.mirror = Some(sender)
            }
            Some(sender) => entry.others.push(sender),
            None => {}
        }
    }
    Ok(by_content.into_values().collect())
}

/// Per-content current WAL position of the acting primaries.
pub fn map_current(dialect: Dialect, rows: &[RawRow]) -> Result<BTreeMap<i16, Lsn>, RowError> {
    let column = match dialect {
        Dialect::Gp7 => "pg_current_wal_lsn",
        Dialect::Gp5 | Dialect::Gp6 => "pg_current_xlog_location",
    };
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            let cells = Cells::new(index, row);
            Ok((
                id(&cells, "gp_segment_id")?,
                cells.parse(column, "an LSN like 0/C0000A8")?,
            ))
        })
        .collect()
}

/// Fills `primary_current` from [`map_current`].
pub fn attach_current(mirrors: &mut [MirrorReplication], current: &BTreeMap<i16, Lsn>) {
    for mirror in mirrors {
        mirror.primary_current = current.get(&mirror.content).copied();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::WalLag;
    use crate::test_support::psql::parse_aligned;

    fn rows(text: &str) -> Vec<RawRow> {
        parse_aligned(text).unwrap()
    }

    fn gp6(text: &str) -> Vec<MirrorReplication> {
        map(Dialect::Gp6, &rows(text)).unwrap()
    }

    #[test]
    fn hidden_walsender_details_fail_the_source_instead_of_saying_disconnected() {
        let hidden = RawRow::from_pairs([
            ("gp_segment_id", Some("0")),
            ("pid", Some("14751")),
            ("application_name", Some("gp_walreceiver")),
            ("state", None),
        ]);
        let error = map(Dialect::Gp6, &[hidden]).unwrap_err().to_string();
        assert!(
            error.contains("superuser") && error.contains("pg_monitor"),
            "{error}"
        );

        let disconnected =
            RawRow::from_pairs([("gp_segment_id", Some("0")), ("pid", None), ("state", None)]);
        let mirrors = map(Dialect::Gp6, &[disconnected]).unwrap();
        assert_eq!(mirrors[0].state(), ReplicationState::Disconnected);
    }

    #[test]
    fn healthy_gp6_with_send_lag() {
        let mut mirrors = gp6(include_str!(
            "../../tests/fixtures/gp6_replication_healthy.txt"
        ));
        assert_eq!(
            mirrors.iter().map(|m| m.content).collect::<Vec<_>>(),
            vec![0, 1, 2],
            "the standby's -1 row is not a mirror"
        );
        let current = map_current(
            Dialect::Gp6,
            &rows(include_str!(
                "../../tests/fixtures/gp6_current_lsn_healthy.txt"
            )),
        )
        .unwrap();
        attach_current(&mut mirrors, &current);
        for mirror in &mirrors {
            assert_eq!(mirror.state(), ReplicationState::Streaming);
            let sender = mirror.mirror.as_ref().unwrap();
            assert_eq!(sender.sync_state, Some(SyncState::Sync));
            assert_eq!(sender.replay, Some(Lsn(0xC0000A8)));
            assert_eq!(sender.replay_lag_seconds, None, "GP6 has no lag intervals");
            assert_eq!(
                mirror.lag(),
                Some(WalLag {
                    send_bytes: Some(0),
                    flush_bytes: Some(0),
                    replay_bytes: Some(0)
                })
            );
        }
    }

    #[test]
    fn after_failover_the_null_row_is_a_disconnected_mirror() {
        let mirrors = gp6(include_str!(
            "../../tests/fixtures/gp6_replication_after_failover.txt"
        ));
        let content0 = &mirrors[0];
        assert_eq!(content0.content, 0);
        assert!(content0.mirror.is_none() && content0.others.is_empty());
        assert_eq!(content0.state(), ReplicationState::Disconnected);
        assert_eq!(content0.lag(), None);
        let content2 = mirrors[2].mirror.as_ref().unwrap();
        assert_eq!(
            content2.lag(None).replay_bytes,
            Some(0x4A170000 - 0x4A16CA20)
        );
        assert_eq!(content2.lag(None).send_bytes, None);
    }

    #[test]
    fn standby_down_has_no_coordinator_row_and_changes_no_mirror() {
        let mirrors = gp6(include_str!(
            "../../tests/fixtures/gp6_replication_standby_down.txt"
        ));
        assert_eq!(mirrors.len(), 3);
        assert!(mirrors
            .iter()
            .all(|m| m.state() == ReplicationState::Streaming));
    }

    #[test]
    fn full_recovery_basebackup_walsenders() {
        let mirrors = gp6(include_str!(
            "../../tests/fixtures/gp6_replication_full_recovery.txt"
        ));
        let content2 = &mirrors[2];
        assert!(
            content2.mirror.is_none(),
            "no gp_walreceiver during the copy"
        );
        assert_eq!(content2.others.len(), 2);
        assert!(content2
            .others
            .iter()
            .all(|s| s.application_name == "pg_basebackup"));
        let backup = content2
            .others
            .iter()
            .find(|s| s.state == ReplicationState::Backup)
            .unwrap();
        assert_eq!(
            (backup.sent, backup.write, backup.sync_state),
            (Some(Lsn(0)), None, Some(SyncState::Async))
        );
        assert_eq!(content2.state(), ReplicationState::Backup);
        assert_eq!(mirrors[0].state(), ReplicationState::Streaming);
    }

    #[test]
    fn gp7_lsn_columns_lag_intervals_and_catchup() {
        let mut mirrors = map(
            Dialect::Gp7,
            &rows(include_str!(
                "../../tests/fixtures/gp7_replication_lagging.txt"
            )),
        )
        .unwrap();
        let current = map_current(
            Dialect::Gp7,
            &rows(include_str!("../../tests/fixtures/gp7_current_lsn.txt")),
        )
        .unwrap();
        attach_current(&mut mirrors, &current);
        let content0 = mirrors[0].mirror.as_ref().unwrap();
        assert_eq!(content0.replay_lag_seconds, Some(42.5));
        assert_eq!(content0.write_lag_seconds, Some(0.000412));
        assert_eq!(
            mirrors[0].lag(),
            Some(WalLag {
                send_bytes: Some(0x800),
                flush_bytes: Some(0x10000),
                replay_bytes: Some(0x0FFF_0000),
            })
        );
        assert_eq!(mirrors[1].state(), ReplicationState::Catchup);
        assert_eq!(
            mirrors[1].mirror.as_ref().unwrap().sync_state,
            Some(SyncState::Potential)
        );
        assert_eq!(mirrors[2].state(), ReplicationState::Disconnected);
    }

    #[test]
    fn gp7_lag_as_epoch_seconds() {
        let row = RawRow::from_pairs([
            ("gp_segment_id", Some("0")),
            ("application_name", Some("gp_walreceiver")),
            ("state", Some("streaming")),
            ("replay_lag", Some("1.25")),
        ]);
        let mirrors = map(Dialect::Gp7, &[row]).unwrap();
        assert_eq!(
            mirrors[0].mirror.as_ref().unwrap().replay_lag_seconds,
            Some(1.25)
        );
    }

    #[test]
    fn gp5_has_no_replication_query() {
        assert_eq!(sql(Dialect::Gp5), None);
        assert_eq!(current_sql(Dialect::Gp5), None);
        assert!(sql(Dialect::Gp6).unwrap().contains("gp_segment_id >= 0"));
        assert!(sql(Dialect::Gp7)
            .unwrap()
            .contains("EXTRACT(EPOCH FROM replay_lag)"));
    }

    #[test]
    fn garbage_is_an_error_naming_the_column() {
        let bad_state = RawRow::from_pairs([("gp_segment_id", Some("0")), ("state", Some("zzz"))]);
        let error = map(Dialect::Gp6, &[bad_state]).unwrap_err().to_string();
        assert!(error.contains("column state"), "{error}");
        let bad_lsn = RawRow::from_pairs([
            ("gp_segment_id", Some("0")),
            ("state", Some("streaming")),
            ("sent_location", Some("nope")),
        ]);
        let error = map(Dialect::Gp6, &[bad_lsn]).unwrap_err().to_string();
        assert!(error.contains("sent_location"), "{error}");
        let no_id = RawRow::from_pairs([("state", Some("streaming"))]);
        assert!(map(Dialect::Gp6, &[no_id]).is_err());
        let bad_current = RawRow::from_pairs([
            ("gp_segment_id", Some("0")),
            ("pg_current_xlog_location", None),
        ]);
        assert!(map_current(Dialect::Gp6, &[bad_current]).is_err());
    }
}
