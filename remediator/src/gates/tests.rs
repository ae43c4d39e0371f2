use super::*;
use crate::policy::tests::EXAMPLE;
use crate::policy::Policy;
use greenplum_catalog::test_support::compact::*;

fn policy() -> Policy {
    Policy::parse(EXAMPLE).expect("example policy")
}

fn run(
    snapshot: &Snapshot,
    action: ActionKind,
    ledger: &LedgerFacts,
    observations: Observations,
) -> Result<(), Refusal> {
    let policy = policy();
    let cluster = policy.cluster("gp-prod").expect("cluster");
    let mut rule = policy
        .rules
        .iter()
        .map(|r| r.value.clone())
        .find(|r| r.action == action)
        .unwrap_or_else(|| policy.rules[0].value.clone());
    rule.action = action;
    // Windows and blackouts are exercised separately with fixed clocks.
    rule.windows.clear();
    rule.blackouts.clear();
    check(&GateInput {
        snapshot,
        action,
        rule: &rule,
        cluster,
        ledger,
        observations,
        now: Utc::now(),
        approved: false,
    })
}

fn gate_of(result: Result<(), Refusal>) -> Option<Gate> {
    result.err().map(|r| r.gate)
}

#[test]
fn cluster_gates_over_table_driven_snapshots() {
    let ok = LedgerFacts::default();
    let none = Observations::default();
    let lock = Observations {
        recoverseg_lock_held: true,
        ..Observations::default()
    };
    let mut two_coordinators = after_failover();
    two_coordinators.endpoints[1].state = EndpointState::Coordinator;
    let mut unreadable = after_failover();
    unreadable.segments = Err(greenplum_catalog::SourceError {
        source: greenplum_catalog::Source::Segments,
        message: "timeout".into(),
    });
    let mut lagging = unbalanced();
    if let Ok(mirrors) = &mut lagging.replication {
        mirrors[0].mirror = Some(walsender(ReplicationState::Catchup, false));
    }
    let cases: Vec<(&str, Snapshot, ActionKind, Observations, Option<Gate>)> = vec![
        (
            "failover, recover",
            after_failover(),
            ActionKind::Recover,
            none,
            None,
        ),
        (
            "double fault",
            double_fault(),
            ActionKind::Recover,
            none,
            Some(Gate::DoubleFault),
        ),
        (
            "suspected double fault (catalog unchanged, dispatch failing)",
            suspected_double_fault(),
            ActionKind::Recover,
            none,
            Some(Gate::DoubleFault),
        ),
        (
            "two writable",
            two_coordinators,
            ActionKind::Recover,
            none,
            Some(Gate::Coordinator),
        ),
        (
            "no coordinator",
            coordinator_down(),
            ActionKind::Recover,
            none,
            Some(Gate::Coordinator),
        ),
        (
            "catalog failed",
            unreadable,
            ActionKind::Recover,
            none,
            Some(Gate::Catalog),
        ),
        (
            "lock held",
            after_failover(),
            ActionKind::Recover,
            lock,
            Some(Gate::RecoversegRunning),
        ),
        (
            "rebalance unsynced",
            after_failover(),
            ActionKind::Rebalance,
            none,
            Some(Gate::NotSynchronized),
        ),
        (
            "rebalance ok",
            unbalanced(),
            ActionKind::Rebalance,
            none,
            None,
        ),
        (
            "rebalance catching up",
            lagging,
            ActionKind::Rebalance,
            none,
            Some(Gate::NotSynchronized),
        ),
        (
            "activate, coordinator up",
            healthy(),
            ActionKind::ActivateStandby,
            none,
            Some(Gate::CoordinatorReachable),
        ),
    ];
    for (name, snapshot, action, observations, expected) in cases {
        assert_eq!(
            gate_of(run(&snapshot, action, &ok, observations)),
            expected,
            "{name}"
        );
    }
}

#[test]
fn blast_radius_counts_down_segments_and_hosts() {
    // Two hosts with down segments, the example allows one.
    let snapshot = snapshot(&[
        COORDINATOR[0],
        (2, 0, 'm', 'p', 'n', 'd', "sdw1"),
        (5, 0, 'p', 'm', 'n', 'u', "sdw2"),
        (3, 1, 'p', 'p', 'n', 'u', "sdw1"),
        (6, 1, 'm', 'm', 'n', 'd', "sdw2"),
    ]);
    let refusal = run(
        &snapshot,
        ActionKind::Recover,
        &LedgerFacts::default(),
        Observations::default(),
    )
    .expect_err("refused");
    assert_eq!(refusal.gate, Gate::BlastRadius);
    assert!(refusal.why.contains("2 hosts"), "{refusal}");
}

#[test]
fn activation_needs_repeated_proof_and_a_synchronized_standby() {
    let ok = LedgerFacts::default();
    let proven = Observations {
        coordinator_unreachable_checks: 3,
        standby_seen: Some(StandbySeen {
            at: Utc::now(),
            in_sync: true,
        }),
        recoverseg_lock_held: false,
    };
    assert_eq!(
        run(
            &coordinator_down(),
            ActionKind::ActivateStandby,
            &ok,
            proven
        ),
        Ok(())
    );
    // Found by the e2e fault matrix: a coordinator out of connection slots refuses every
    // login ("too many clients") and reads as unreachable, yet it is alive.
    let mut full = coordinator_down();
    full.endpoints[0].state = EndpointState::Rejecting;
    full.endpoints[0].detail = Some("sorry, too many clients already".into());
    assert_eq!(
        gate_of(run(&full, ActionKind::ActivateStandby, &ok, proven)),
        Some(Gate::CoordinatorReachable)
    );
    let once = Observations {
        coordinator_unreachable_checks: 1,
        ..proven
    };
    assert_eq!(
        gate_of(run(
            &coordinator_down(),
            ActionKind::ActivateStandby,
            &ok,
            once
        )),
        Some(Gate::CoordinatorReachable)
    );
    let behind = Observations {
        standby_seen: Some(StandbySeen {
            at: Utc::now(),
            in_sync: false,
        }),
        ..proven
    };
    assert_eq!(
        gate_of(run(
            &coordinator_down(),
            ActionKind::ActivateStandby,
            &ok,
            behind
        )),
        Some(Gate::Standby)
    );
    let mut standby_dead = coordinator_down();
    standby_dead.endpoints[1].state = EndpointState::Down;
    assert_eq!(
        gate_of(run(&standby_dead, ActionKind::ActivateStandby, &ok, proven)),
        Some(Gate::Standby)
    );
}

#[test]
fn policy_gates_pause_breaker_budget_cooldown() {
    let snapshot = after_failover();
    let none = Observations::default();
    let cases: Vec<(&str, LedgerFacts, Option<Gate>)> = vec![
        (
            "paused",
            LedgerFacts {
                paused: true,
                ..Default::default()
            },
            Some(Gate::Paused),
        ),
        (
            "breaker",
            LedgerFacts {
                consecutive_failures: 3,
                ..Default::default()
            },
            Some(Gate::Breaker),
        ),
        (
            "below breaker",
            LedgerFacts {
                consecutive_failures: 2,
                ..Default::default()
            },
            None,
        ),
        (
            "hourly budget",
            LedgerFacts {
                executions_last_hour: 2,
                ..Default::default()
            },
            Some(Gate::Budget),
        ),
        (
            "daily budget",
            LedgerFacts {
                executions_last_day: 6,
                ..Default::default()
            },
            Some(Gate::Budget),
        ),
        (
            "cooldown",
            LedgerFacts {
                last_execution_at: Some(Utc::now() - chrono::Duration::minutes(5)),
                ..Default::default()
            },
            Some(Gate::Cooldown),
        ),
        (
            "cooldown over",
            LedgerFacts {
                last_execution_at: Some(Utc::now() - chrono::Duration::minutes(20)),
                ..Default::default()
            },
            None,
        ),
    ];
    for (name, ledger, expected) in cases {
        assert_eq!(
            gate_of(run(&snapshot, ActionKind::Recover, &ledger, none)),
            expected,
            "{name}"
        );
    }
}

#[test]
fn windows_blackouts_and_approval() {
    use chrono::TimeZone;
    let policy = policy();
    let cluster = policy.cluster("gp-prod").expect("cluster");
    let recover = policy.rule("recover-down-segments").expect("rule");
    let rebalance = policy.rule("rebalance-at-night").expect("rule");
    let ledger = LedgerFacts::default();
    // Sunday 2026-11-22 03:00 UTC is inside the recover rule's blackout.
    let sunday_night = Utc
        .with_ymd_and_hms(2026, 11, 22, 3, 0, 0)
        .single()
        .expect("t");
    let monday_noon = Utc
        .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("t");
    let monday_late = Utc
        .with_ymd_and_hms(2026, 11, 23, 23, 0, 0)
        .single()
        .expect("t");
    let snap = after_failover();
    let at = |rule: &Rule, action, now| {
        check(&GateInput {
            snapshot: &snap,
            action,
            rule,
            cluster,
            ledger: &ledger,
            observations: Observations::default(),
            now,
            approved: false,
        })
    };
    assert_eq!(
        gate_of(at(recover, ActionKind::Recover, sunday_night)),
        Some(Gate::Blackout)
    );
    assert_eq!(at(recover, ActionKind::Recover, monday_noon), Ok(()));
    let mut windowed = recover.clone();
    windowed.windows = rebalance.windows.clone();
    assert_eq!(
        gate_of(at(&windowed, ActionKind::Recover, monday_noon)),
        Some(Gate::Window)
    );
    assert_eq!(at(&windowed, ActionKind::Recover, monday_late), Ok(()));

    // A rebalance outside its window is not refused: it waits for a person.
    assert!(approval_reason(rebalance, cluster, &[2, 5], &ledger, monday_noon).is_some());
    assert!(approval_reason(rebalance, cluster, &[2, 5], &ledger, monday_late).is_none());
    assert!(approval_reason(recover, cluster, &[2], &ledger, monday_noon).is_none());
    let flapping = LedgerFacts {
        executions_by_dbid_24h: [(2, 3)].into_iter().collect(),
        ..Default::default()
    };
    let why = approval_reason(recover, cluster, &[2], &flapping, monday_noon).expect("flap");
    assert!(why.contains("flapping"), "{why}");
    let activate = policy.rule("activate-standby").expect("rule");
    assert!(approval_reason(activate, cluster, &[], &ledger, monday_noon).is_some());
}

#[test]
fn scope_comes_from_the_catalog() {
    assert_eq!(
        scope(ActionKind::Recover, &after_failover()),
        Scope::Targets(vec![2])
    );
    assert!(matches!(
        scope(ActionKind::Recover, &healthy()),
        Scope::NoOp(_)
    ));
    assert_eq!(
        scope(ActionKind::Rebalance, &unbalanced()),
        Scope::Targets(vec![2, 5])
    );
    assert!(matches!(
        scope(ActionKind::Rebalance, &healthy()),
        Scope::NoOp(_)
    ));
    assert!(matches!(
        scope(ActionKind::Recover, &coordinator_down()),
        Scope::Unknown(_)
    ));
    assert!(matches!(
        scope(ActionKind::StartStandby, &healthy()),
        Scope::NoOp(_)
    ));
    let mut standby_down = healthy();
    standby_down.standby = Ok(greenplum_catalog::StandbyReplication {
        walsender: None,
        coordinator_current: None,
    });
    assert_eq!(
        scope(ActionKind::StartStandby, &standby_down),
        Scope::Targets(vec![8])
    );
    assert_eq!(
        scope(ActionKind::ActivateStandby, &coordinator_down()),
        Scope::Targets(vec![])
    );
    assert!(matches!(
        scope(ActionKind::ActivateStandby, &healthy()),
        Scope::NoOp(_)
    ));
}

#[test]
fn digest_tracks_roles_and_status_not_sync_mode() {
    assert_eq!(digest(&after_failover()), digest(&after_failover()));
    assert_ne!(digest(&after_failover()), digest(&unbalanced()));
    assert_ne!(digest(&healthy()), digest(&unbalanced()));
}

#[test]
fn a_refusal_journals_the_gate_by_its_name() {
    let refusal = Refusal {
        gate: Gate::RecoversegRunning,
        why: "lock held".into(),
    };
    assert_eq!(
        serde_json::to_value(&refusal).expect("json"),
        serde_json::json!({"gate": "recoverseg_running", "why": "lock held"})
    );
}
