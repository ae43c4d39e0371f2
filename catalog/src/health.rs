//! Facts derived from a [`Snapshot`], computed once so the exporter's metrics and the
//! remediator's gates can never disagree about what "unprotected" or "double fault" means.
//!
//! ## Double faults the catalog cannot show
//!
//! When a primary dies and its mirror is down or not in sync, FTS cannot promote anything
//! and leaves the catalog as it was: the dead primary still says `u`. The content is gone,
//! but [`Health::unavailable_contents`] (which reads the catalog) stays empty. What does
//! change is that every query dispatching to the segments fails with "failed to acquire
//! resources on one or more segments" (recorded on GP 6.24.3).
//!
//! Rule: when the replication source (the one source that dispatches) fails with that error
//! **and** the catalog shows unprotected contents, those contents are
//! [`Health::suspected_unavailable_contents`]: one of them has most likely lost its primary.
//! It is a suspicion, not a proof, for two reasons: the same error also shows for the few
//! seconds to one probe interval before FTS promotes the healthy mirror of a *different*
//! content, and the error does not say which content is affected. So consumers treat it as
//! a double fault once it has persisted longer than FTS needs to act
//! (`gp_fts_probe_interval` + probe timeout x retries, about two minutes by default), and
//! anything that acts on the cluster refuses while it holds. A dispatch failure with every
//! content protected is the normal failover window and raises no suspicion.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::snapshot::{Mode, Role, Segment, Snapshot};

/// The one-word state of a cluster, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterState {
    /// Some content has no up primary: queries touching it fail.
    Unavailable,
    /// The catalog could not be read (no coordinator, or the segment query failed).
    Unknown,
    /// Some content runs without a synchronized mirror: one more failure is an outage.
    Unprotected,
    /// Every content is protected, but some pair runs in the non-preferred roles.
    Unbalanced,
    /// Every content has an up primary and a synchronized mirror, in the preferred roles.
    Healthy,
}

impl ClusterState {
    /// The word used in labels and logs (`unprotected`).
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::Unavailable => "unavailable",
            ClusterState::Unknown => "unknown",
            ClusterState::Unprotected => "unprotected",
            ClusterState::Unbalanced => "unbalanced",
            ClusterState::Healthy => "healthy",
        }
    }
}

/// Derived facts about the segment tier (content >= 0).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Health {
    /// dbids whose current role differs from the preferred one.
    pub role_mismatch_dbids: BTreeSet<i16>,
    /// dbids marked down.
    pub down_dbids: BTreeSet<i16>,
    /// Hostnames carrying at least one down instance.
    pub hosts_with_down: BTreeSet<String>,
    /// Contents with no up primary (double fault): the database cannot serve them.
    pub unavailable_contents: BTreeSet<i16>,
    /// Contents whose primary is up but whose mirror is down or not synchronized.
    pub unprotected_contents: BTreeSet<i16>,
    /// Contents whose primary and mirror live on the same host.
    pub mirror_on_primary_host_contents: BTreeSet<i16>,
    /// Acting primaries per hostname (every hostname that holds a segment appears).
    pub host_acting_primaries: BTreeMap<String, u32>,
    /// Preferred primaries per hostname (what the cluster was given).
    pub host_preferred_primaries: BTreeMap<String, u32>,
    /// Contents whose pair is up and synchronized.
    pub synchronized_contents: BTreeSet<i16>,
    /// Number of contents (distinct content ids >= 0).
    pub contents: u32,
    /// The replication source failed with the segment dispatch error this round.
    pub segment_dispatch_failing: bool,
    /// Contents suspected of a double fault the catalog does not show (see the module
    /// documentation for the rule). Empty unless `segment_dispatch_failing`.
    pub suspected_unavailable_contents: BTreeSet<i16>,
}

impl Health {
    /// Derives the facts from segment rows. Coordinator-tier rows (content -1) are ignored:
    /// their catalog mode and status do not tell the truth.
    pub fn from_segments(segments: &[Segment]) -> Health {
        let mut health = Health::default();
        let mut by_content: BTreeMap<i16, Vec<&Segment>> = BTreeMap::new();
        for segment in segments.iter().filter(|s| !s.is_coordinator_tier()) {
            by_content.entry(segment.content).or_default().push(segment);
            health
                .host_acting_primaries
                .entry(segment.hostname.clone())
                .or_insert(0);
            health
                .host_preferred_primaries
                .entry(segment.hostname.clone())
                .or_insert(0);
            if segment.role == Role::Primary && segment.is_up() {
                *health
                    .host_acting_primaries
                    .entry(segment.hostname.clone())
                    .or_default() += 1;
            }
            if segment.preferred_role == Role::Primary {
                *health
                    .host_preferred_primaries
                    .entry(segment.hostname.clone())
                    .or_default() += 1;
            }
            if segment.role_mismatch() {
                health.role_mismatch_dbids.insert(segment.dbid);
            }
            if !segment.is_up() {
                health.down_dbids.insert(segment.dbid);
                health.hosts_with_down.insert(segment.hostname.clone());
            }
        }
        health.contents = by_content.len() as u32;
        for (content, pair) in &by_content {
            health.classify_pair(*content, pair);
        }
        health
    }

    fn classify_pair(&mut self, content: i16, pair: &[&Segment]) {
        let primary = pair.iter().find(|s| s.role == Role::Primary && s.is_up());
        let mirror = pair.iter().find(|s| s.role == Role::Mirror);
        let Some(primary) = primary else {
            self.unavailable_contents.insert(content);
            return;
        };
        match mirror {
            // A content without a mirror was built unprotected; that is a configuration
            // choice, reported by the absence of a pair, not as an incident.
            None => {}
            Some(mirror) => {
                let synchronized = mirror.is_up()
                    && primary.mode == Mode::Synchronized
                    && mirror.mode == Mode::Synchronized;
                if synchronized {
                    self.synchronized_contents.insert(content);
                } else {
                    self.unprotected_contents.insert(content);
                }
                if mirror.hostname == primary.hostname {
                    self.mirror_on_primary_host_contents.insert(content);
                }
            }
        }
    }

    /// Segment facts plus the dispatch-failure rule over the replication source.
    pub fn from_snapshot(snapshot: &Snapshot) -> Option<Health> {
        let mut health = Health::from_segments(snapshot.segments.as_ref().ok()?);
        if let Err(error) = &snapshot.replication {
            if error.is_segment_dispatch_failure() {
                health.segment_dispatch_failing = true;
                health.suspected_unavailable_contents = health.unprotected_contents.clone();
            }
        }
        Some(health)
    }

    /// A content may be down although the catalog says otherwise: refuse to act.
    pub fn double_fault_suspected(&self) -> bool {
        !self.suspected_unavailable_contents.is_empty()
    }

    /// Every pair up and synchronized: the only state in which a rebalance is safe and the
    /// preferred-role alert is meaningful.
    pub fn all_pairs_synchronized(&self) -> bool {
        self.unavailable_contents.is_empty() && self.unprotected_contents.is_empty()
    }

    /// Hosts that carry more acting primaries than they were given.
    pub fn overloaded_hosts(&self) -> Vec<&str> {
        self.host_acting_primaries
            .iter()
            .filter(|(host, acting)| {
                **acting
                    > self
                        .host_preferred_primaries
                        .get(*host)
                        .copied()
                        .unwrap_or(0)
            })
            .map(|(host, _)| host.as_str())
            .collect()
    }

    /// The one-word state: the worst of unavailable, unprotected, unbalanced, else healthy.
    pub fn state(&self) -> ClusterState {
        if !self.unavailable_contents.is_empty() {
            ClusterState::Unavailable
        } else if !self.unprotected_contents.is_empty() {
            ClusterState::Unprotected
        } else if !self.role_mismatch_dbids.is_empty() {
            ClusterState::Unbalanced
        } else {
            ClusterState::Healthy
        }
    }
}

impl Snapshot {
    /// Derived facts, or `None` when the segment rows could not be read.
    pub fn health(&self) -> Option<Health> {
        Health::from_snapshot(self)
    }

    /// The one-word state; [`ClusterState::Unknown`] when the segment rows could not be read.
    pub fn cluster_state(&self) -> ClusterState {
        self.health()
            .map(|h| h.state())
            .unwrap_or(ClusterState::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::compact::{self, seg};

    /// The recorded GP 6.24.3 cluster right after FTS promoted dbid 5 (C_after_failover.txt).
    fn after_failover() -> Vec<Segment> {
        vec![
            seg((8, -1, 'm', 'm', 's', 'u', "vm")),
            seg((1, -1, 'p', 'p', 'n', 'u', "vm")),
            seg((2, 0, 'm', 'p', 'n', 'd', "vm")),
            seg((5, 0, 'p', 'm', 'n', 'u', "vm")),
            seg((6, 1, 'm', 'm', 's', 'u', "vm")),
            seg((3, 1, 'p', 'p', 's', 'u', "vm")),
            seg((7, 2, 'm', 'm', 's', 'u', "vm")),
            seg((4, 2, 'p', 'p', 's', 'u', "vm")),
        ]
    }

    #[test]
    fn failover_is_unprotected_and_mismatched() {
        let health = Health::from_segments(&after_failover());
        assert_eq!(health.contents, 3);
        assert_eq!(health.role_mismatch_dbids, BTreeSet::from([2, 5]));
        assert_eq!(health.down_dbids, BTreeSet::from([2]));
        assert_eq!(health.unprotected_contents, BTreeSet::from([0]));
        assert!(health.unavailable_contents.is_empty());
        assert_eq!(health.state(), ClusterState::Unprotected);
        assert!(!health.all_pairs_synchronized());
    }

    #[test]
    fn coordinator_rows_are_ignored() {
        let health = Health::from_segments(&after_failover());
        assert!(!health.down_dbids.contains(&1) && !health.down_dbids.contains(&8));
        assert_eq!(
            health.mirror_on_primary_host_contents,
            BTreeSet::from([0, 1, 2])
        );
    }

    #[test]
    fn double_fault_is_unavailable() {
        let rows = vec![
            seg((2, 0, 'm', 'p', 'n', 'd', "sdw1")),
            seg((5, 0, 'p', 'm', 'n', 'd', "sdw2")),
        ];
        let health = Health::from_segments(&rows);
        assert_eq!(health.unavailable_contents, BTreeSet::from([0]));
        assert_eq!(health.state(), ClusterState::Unavailable);
    }

    fn snapshot_with(segments: Vec<Segment>, replication_error: Option<&str>) -> Snapshot {
        use crate::source::{Source, SourceError};
        let mut snapshot = compact::snapshot(&[]);
        snapshot.segments = Ok(segments);
        snapshot.replication = match replication_error {
            Some(message) => Err(SourceError {
                source: Source::Replication,
                message: message.into(),
            }),
            None => Ok(Vec::new()),
        };
        snapshot
    }

    /// The text the reader puts in the replication source error (C_failover_transition.txt).
    const DISPATCH_ERROR: &str = "cdw:6000: gp_stat_replication failed: db error: ERROR: \
        failed to acquire resources on one or more segments\nDETAIL: FTS detected one or more \
        segments are down";

    /// Content 0's mirror is down (G_mirror_down.txt shape), everything else in sync.
    fn mirror0_down() -> Vec<Segment> {
        vec![
            seg((2, 0, 'p', 'p', 'n', 'u', "sdw1")),
            seg((5, 0, 'm', 'm', 'n', 'd', "sdw2")),
            seg((3, 1, 'p', 'p', 's', 'u', "sdw2")),
            seg((6, 1, 'm', 'm', 's', 'u', "sdw1")),
        ]
    }

    #[test]
    fn dispatch_failure_with_an_unprotected_content_is_a_suspected_double_fault() {
        let snapshot = snapshot_with(mirror0_down(), Some(DISPATCH_ERROR));
        let health = snapshot.health().unwrap();
        assert!(health.segment_dispatch_failing);
        assert_eq!(health.suspected_unavailable_contents, BTreeSet::from([0]));
        assert!(health.double_fault_suspected());
        assert!(
            health.unavailable_contents.is_empty(),
            "the catalog does not show it"
        );
    }

    #[test]
    fn dispatch_failure_with_every_content_protected_is_the_failover_window() {
        // C_failover_transition.txt: primary dead, catalog still all s/u, FTS about to act.
        let rows = vec![
            seg((2, 0, 'p', 'p', 's', 'u', "sdw1")),
            seg((5, 0, 'm', 'm', 's', 'u', "sdw2")),
        ];
        let health = snapshot_with(rows, Some(DISPATCH_ERROR)).health().unwrap();
        assert!(health.segment_dispatch_failing);
        assert!(!health.double_fault_suspected());
    }

    /// Recorded on a real 6.24.3 with a password-authenticated role and no pg_hba.conf line
    /// for the coordinator's own address: the entry db cannot log in.
    const ENTRY_DB_LOGIN_ERROR: &str = "127.0.0.1:7000: gp_stat_replication failed: db error: \
        ERROR: failed to acquire resources on one or more segments\nDETAIL: fe_sendauth: no \
        password supplied\n (entry db 127.0.0.1:7000)";

    #[test]
    fn a_dispatch_login_failure_is_a_configuration_error_not_a_double_fault() {
        use crate::source::{Source, SourceError};
        let health = snapshot_with(mirror0_down(), Some(ENTRY_DB_LOGIN_ERROR))
            .health()
            .unwrap();
        assert!(!health.segment_dispatch_failing);
        assert!(!health.double_fault_suspected());
        for detail in [
            "FATAL: no pg_hba.conf entry for host \"10.0.0.5\", user \"x\" (seg0 sdw1:6000)",
            "FATAL: password authentication failed for user \"x\" (seg1 sdw2:6001)",
        ] {
            let message = format!(
                "ERROR: failed to acquire resources on one or more segments\nDETAIL: {detail}"
            );
            let error = SourceError::new(Source::Replication, message);
            assert!(error.is_dispatch_login_failure(), "{error}");
            assert!(!error.is_segment_dispatch_failure(), "{error}");
            assert!(
                error.message.contains("pg_hba.conf or role problem"),
                "{error}"
            );
        }
        let down = SourceError::new(Source::Replication, DISPATCH_ERROR.into());
        assert!(down.is_segment_dispatch_failure());
        assert_eq!(
            down.message, DISPATCH_ERROR,
            "no hint on a real dispatch failure"
        );
    }

    #[test]
    fn other_replication_failures_raise_no_suspicion() {
        let timeout = "canceling statement due to statement timeout";
        let health = snapshot_with(mirror0_down(), Some(timeout))
            .health()
            .unwrap();
        assert!(!health.segment_dispatch_failing);
        assert!(!health.double_fault_suspected());
        let health = snapshot_with(mirror0_down(), None).health().unwrap();
        assert!(!health.double_fault_suspected());
        assert_eq!(health.unprotected_contents, BTreeSet::from([0]));
    }

    #[test]
    fn resynchronized_but_switched_is_unbalanced_and_overloads_a_host() {
        let rows = vec![
            seg((2, 0, 'm', 'p', 's', 'u', "sdw1")),
            seg((5, 0, 'p', 'm', 's', 'u', "sdw2")),
            seg((3, 1, 'p', 'p', 's', 'u', "sdw2")),
            seg((6, 1, 'm', 'm', 's', 'u', "sdw1")),
        ];
        let health = Health::from_segments(&rows);
        assert_eq!(health.state(), ClusterState::Unbalanced);
        assert!(health.all_pairs_synchronized());
        assert_eq!(health.host_acting_primaries.get("sdw2"), Some(&2));
        assert_eq!(health.host_acting_primaries.get("sdw1"), Some(&0));
        assert_eq!(health.overloaded_hosts(), vec!["sdw2"]);
        assert!(health.mirror_on_primary_host_contents.is_empty());
    }
}
