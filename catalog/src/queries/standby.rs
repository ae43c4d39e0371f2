//! The standby coordinator as the acting coordinator sees it: its `gp_walreceiver` row in the
//! coordinator's own `pg_stat_replication` (the catalog row for the standby always says
//! `m/s/u`, even when it is dead), and the coordinator's current WAL position.
//!
//! One statement: the current position is the driving row and the walsender is LEFT JOINed,
//! so "no standby connected" is one row with NULL walsender columns rather than no row.

use super::replication::walsender;
use super::{Cells, RawRow, RowError, SourceQuery};
use crate::snapshot::{Dialect, ReplicationState, StandbyReplication};

/// GP5's standby also replicates by walsender and shares the 8.3/9.4 names.
const GP5_GP6: &str = "SELECT cur.lsn AS coordinator_current, r.* FROM \
    (SELECT pg_current_xlog_location()::text AS lsn) cur LEFT JOIN \
    (SELECT pid::text AS pid, application_name::text AS application_name, \
    state::text AS state, sync_state::text AS sync_state, sent_location::text AS sent_location, \
    write_location::text AS write_location, flush_location::text AS flush_location, \
    replay_location::text AS replay_location \
    FROM pg_stat_replication WHERE application_name = 'gp_walreceiver') r ON true";

const GP7: &str = "SELECT cur.lsn AS coordinator_current, r.* FROM \
    (SELECT pg_current_wal_lsn()::text AS lsn) cur LEFT JOIN \
    (SELECT pid::text AS pid, application_name::text AS application_name, \
    state::text AS state, sync_state::text AS sync_state, sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn, \
    flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn, \
    EXTRACT(EPOCH FROM write_lag)::text AS write_lag, \
    EXTRACT(EPOCH FROM flush_lag)::text AS flush_lag, \
    EXTRACT(EPOCH FROM replay_lag)::text AS replay_lag \
    FROM pg_stat_replication WHERE application_name = 'gp_walreceiver') r ON true";

/// The source of [`Snapshot::standby`](crate::Snapshot::standby).
pub struct StandbySource;

impl SourceQuery for StandbySource {
    const NAME: &'static str = "pg_stat_replication";
    type Out = StandbyReplication;

    fn sql(dialect: Dialect) -> Option<&'static str> {
        Some(sql(dialect))
    }

    fn map(dialect: Dialect, rows: &[RawRow]) -> Result<StandbyReplication, RowError> {
        map(dialect, rows)
    }
}

/// The statement for `dialect` (every dialect has one).
pub fn sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Gp5 | Dialect::Gp6 => GP5_GP6,
        Dialect::Gp7 => GP7,
    }
}

/// Rows of other walsenders (e.g. a `pg_basebackup` of `gpinitstandby`) are ignored; when
/// several `gp_walreceiver` rows exist the streaming one wins.
pub fn map(dialect: Dialect, rows: &[RawRow]) -> Result<StandbyReplication, RowError> {
    let mut coordinator_current = None;
    let mut senders = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let cells = Cells::new(index, row);
        if coordinator_current.is_none() {
            coordinator_current = cells.lsn_opt("coordinator_current")?;
        }
        if let Some(sender) = walsender(dialect, &cells)? {
            if sender.is_gp_walreceiver() {
                senders.push(sender);
            }
        }
    }
    let best = senders
        .iter()
        .position(|s| s.state == ReplicationState::Streaming)
        .unwrap_or(0);
    Ok(StandbyReplication {
        walsender: (!senders.is_empty()).then(|| senders.swap_remove(best)),
        coordinator_current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;
    use crate::snapshot::SyncState;
    use crate::test_support::psql::parse_aligned;

    #[test]
    fn healthy_gp6_standby_streams_in_sync() {
        let rows = parse_aligned(include_str!(
            "../../tests/fixtures/gp6_pg_stat_replication_healthy.txt"
        ))
        .unwrap();
        let standby = map(Dialect::Gp6, &rows).unwrap();
        let sender = standby.walsender.unwrap();
        assert_eq!(sender.state, ReplicationState::Streaming);
        assert_eq!(sender.sync_state, Some(SyncState::Sync));
        assert_eq!(sender.replay, Some(Lsn(0xC000128)));
    }

    #[test]
    fn standby_down_has_no_walsender() {
        let rows = parse_aligned(include_str!(
            "../../tests/fixtures/gp6_pg_stat_replication_standby_down.txt"
        ))
        .unwrap();
        assert!(rows.is_empty());
        assert_eq!(
            map(Dialect::Gp6, &rows).unwrap(),
            StandbyReplication {
                walsender: None,
                coordinator_current: None
            }
        );
        // What the reader's LEFT JOIN returns when no standby is connected.
        let joined = RawRow::from_pairs([
            ("coordinator_current", Some("0/C09BDA0")),
            ("application_name", None),
            ("state", None),
        ]);
        let standby = map(Dialect::Gp6, &[joined]).unwrap();
        assert_eq!(standby.walsender, None);
        assert_eq!(standby.coordinator_current, Some(Lsn(0xC09BDA0)));
    }

    #[test]
    fn gp7_standby_lag_and_the_streaming_row_wins() {
        let catchup = RawRow::from_pairs([
            ("coordinator_current", Some("0/5000200")),
            ("application_name", Some("gp_walreceiver")),
            ("state", Some("catchup")),
            ("sent_lsn", Some("0/5000000")),
        ]);
        let streaming = RawRow::from_pairs([
            ("coordinator_current", Some("0/5000200")),
            ("application_name", Some("gp_walreceiver")),
            ("state", Some("streaming")),
            ("sync_state", Some("sync")),
            ("sent_lsn", Some("0/5000100")),
            ("replay_lag", Some("0.5")),
        ]);
        let standby = map(Dialect::Gp7, &[catchup, streaming]).unwrap();
        let sender = standby.walsender.as_ref().unwrap();
        assert_eq!(sender.state, ReplicationState::Streaming);
        assert_eq!(sender.replay_lag_seconds, Some(0.5));
        assert_eq!(
            sender.lag(standby.coordinator_current).send_bytes,
            Some(0x100)
        );
    }

    #[test]
    fn garbage_coordinator_position_is_an_error() {
        let row = RawRow::from_pairs([("coordinator_current", Some("zz"))]);
        let error = map(Dialect::Gp6, &[row]).unwrap_err().to_string();
        assert!(error.contains("coordinator_current"), "{error}");
    }
}
