//! What became of an alert event: the one list of decision names.
//!
//! The journal's `decision` column, the `decision` label of the events metric and the API
//! all show these names; [`Decision::as_str`] is the only place each one is written.

use std::fmt;

/// The decision recorded (and counted) for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// A resolved alert, or one resolved before its rule's minimum firing duration.
    Resolved,
    /// No rule matches the alert.
    Unmatched,
    /// The matching rule is in observe mode.
    Observed,
    /// The cluster already is as the action would leave it.
    NoOp,
    /// A gate (or an unreadable catalog) refused the plan.
    Refused,
    /// An open action already handles the same cluster, action and targets.
    DuplicateIntent,
    /// The rule is in dry-run mode: the plan is recorded, not executed.
    DryRun,
    /// The plan waits for a person.
    AwaitingApproval,
    /// The plan was approved by policy and runs.
    Executed,
    /// The event's cluster label names no configured cluster.
    UnknownCluster,
    /// Alertmanager delivered an event the journal already holds (counted, not journalled).
    Duplicate,
}

impl Decision {
    /// Every decision, for tests and documentation.
    pub const ALL: [Decision; 11] = [
        Decision::Resolved,
        Decision::Unmatched,
        Decision::Observed,
        Decision::NoOp,
        Decision::Refused,
        Decision::DuplicateIntent,
        Decision::DryRun,
        Decision::AwaitingApproval,
        Decision::Executed,
        Decision::UnknownCluster,
        Decision::Duplicate,
    ];

    /// The name the journal, the metrics and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Resolved => "resolved",
            Decision::Unmatched => "unmatched",
            Decision::Observed => "observed",
            Decision::NoOp => "no_op",
            Decision::Refused => "refused",
            Decision::DuplicateIntent => "duplicate_intent",
            Decision::DryRun => "dry_run",
            Decision::AwaitingApproval => "awaiting_approval",
            Decision::Executed => "executed",
            Decision::UnknownCluster => "unknown_cluster",
            Decision::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_decision_has_its_own_snake_case_name() {
        let names: BTreeSet<&str> = Decision::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(names.len(), Decision::ALL.len());
        for decision in Decision::ALL {
            let name = decision.as_str();
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert_eq!(decision.to_string(), name);
        }
    }
}
