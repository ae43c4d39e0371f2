//! Verification: did the catalog reach the state the action promised? Exit codes are never
//! proof (`gprecoverseg` exits 0 when another run holds its lock or when it skipped
//! everything), so only the catalog decides.

use greenplum_catalog::{Health, Snapshot};
use serde::Serialize;

use crate::actions::ActionKind;
use crate::gates::{standby_in_sync, standby_streaming};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "progress", content = "why")]
pub enum Progress {
    /// Targets not up yet.
    Pending(String),
    /// Targets up, not yet synchronized (or not yet in preferred roles).
    Up(String),
    Done,
}

pub fn progress(
    action: ActionKind,
    targets: &[i16],
    standby_endpoint: Option<&str>,
    snapshot: &Snapshot,
) -> Progress {
    match action {
        ActionKind::ActivateStandby => {
            let acting = snapshot.acting_coordinator.as_deref();
            if acting.is_some() && acting == standby_endpoint {
                Progress::Done
            } else {
                Progress::Pending(format!("acting coordinator is {acting:?}"))
            }
        }
        ActionKind::StartStandby | ActionKind::InitStandby => {
            if standby_in_sync(snapshot) {
                Progress::Done
            } else if standby_streaming(snapshot) {
                Progress::Up("standby streams, not yet in sync".into())
            } else {
                Progress::Pending("no standby walsender streaming".into())
            }
        }
        ActionKind::Recover | ActionKind::RecoverFull | ActionKind::Rebalance => {
            segments(action, targets, snapshot)
        }
    }
}

fn segments(action: ActionKind, targets: &[i16], snapshot: &Snapshot) -> Progress {
    let Some(rows) = snapshot.segments.as_ref().ok() else {
        return Progress::Pending("catalog unreadable".into());
    };
    let health = Health::from_segments(rows);
    let down: Vec<i16> = targets
        .iter()
        .copied()
        .filter(|d| health.down_dbids.contains(d) || !rows.iter().any(|s| s.dbid == *d))
        .collect();
    if !down.is_empty() {
        return Progress::Pending(format!("dbids {down:?} still down"));
    }
    let contents: Vec<i16> = rows
        .iter()
        .filter(|s| targets.contains(&s.dbid))
        .map(|s| s.content)
        .filter(|c| !health.synchronized_contents.contains(c))
        .collect();
    if !contents.is_empty() {
        return Progress::Up(format!("contents {contents:?} not yet synchronized"));
    }
    if action == ActionKind::Rebalance && !health.role_mismatch_dbids.is_empty() {
        return Progress::Up(format!(
            "dbids {:?} not yet in their preferred roles",
            health.role_mismatch_dbids
        ));
    }
    Progress::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use greenplum_catalog::test_support::compact::*;

    #[test]
    fn recovery_goes_pending_up_done() {
        assert!(matches!(
            progress(ActionKind::Recover, &[2], None, &after_failover()),
            Progress::Pending(_)
        ));
        let resyncing = snapshot(&[
            COORDINATOR[0],
            (2, 0, 'm', 'p', 'n', 'u', "sdw1"),
            (5, 0, 'p', 'm', 'n', 'u', "sdw2"),
        ]);
        assert!(matches!(
            progress(ActionKind::Recover, &[2], None, &resyncing),
            Progress::Up(_)
        ));
        assert_eq!(
            progress(ActionKind::Recover, &[2], None, &unbalanced()),
            Progress::Done
        );
    }

    #[test]
    fn rebalance_also_needs_preferred_roles() {
        assert!(matches!(
            progress(ActionKind::Rebalance, &[2, 5], None, &unbalanced()),
            Progress::Up(_)
        ));
        assert_eq!(
            progress(ActionKind::Rebalance, &[2, 5], None, &healthy()),
            Progress::Done
        );
    }

    #[test]
    fn standby_actions_follow_replication() {
        assert_eq!(
            progress(ActionKind::StartStandby, &[8], None, &healthy()),
            Progress::Done
        );
        let mut down = healthy();
        down.standby = Ok(greenplum_catalog::StandbyReplication {
            walsender: None,
            coordinator_current: None,
        });
        assert!(matches!(
            progress(ActionKind::StartStandby, &[8], None, &down),
            Progress::Pending(_)
        ));
        assert!(matches!(
            progress(
                ActionKind::ActivateStandby,
                &[],
                Some("smdw:5432"),
                &coordinator_down()
            ),
            Progress::Pending(_)
        ));
        let mut promoted = healthy();
        promoted.acting_coordinator = Some("smdw:5432".into());
        assert_eq!(
            progress(
                ActionKind::ActivateStandby,
                &[],
                Some("smdw:5432"),
                &promoted
            ),
            Progress::Done
        );
    }
}
