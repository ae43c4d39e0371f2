//! `greenplum-exporter check`: one snapshot as a gpstate-like table, and a verdict for scripts.

use std::fmt::Write;

use greenplum_catalog::{
    ClusterState, MirrorReplication, ReplicationState, Segment, Snapshot, SyncState, WalLag,
};

/// What `check` exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Healthy = 0,
    Unhealthy = 1,
    NoCoordinator = 2,
}

/// Healthy means: a coordinator answered, every source was read, every pair is up,
/// synchronized and in its preferred role, and a configured standby streams.
pub fn verdict(snapshot: &Snapshot) -> Verdict {
    if !snapshot.coordinator_up() {
        return Verdict::NoCoordinator;
    }
    let all_read = snapshot.segments.is_ok()
        && snapshot.replication.is_ok()
        && snapshot.standby.is_ok()
        && snapshot.history.is_ok()
        && snapshot.recovery.is_ok();
    let standby_ok = snapshot.standby_row().is_none()
        || snapshot.standby.as_ref().is_ok_and(|s| {
            s.walsender
                .as_ref()
                .is_some_and(|w| w.state == ReplicationState::Streaming)
        });
    if all_read && standby_ok && snapshot.cluster_state() == ClusterState::Healthy {
        Verdict::Healthy
    } else {
        Verdict::Unhealthy
    }
}

fn lag_text(lag: Option<WalLag>) -> String {
    let part = |b: Option<u64>| b.map_or("-".to_string(), |b| b.to_string());
    match lag {
        Some(l) => format!(
            "{}/{}/{}",
            part(l.send_bytes),
            part(l.flush_bytes),
            part(l.replay_bytes)
        ),
        None => "-".to_string(),
    }
}

/// The snapshot as text, for a person at a terminal.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, snapshot);
    out
}

fn write_report(out: &mut String, snapshot: &Snapshot) -> std::fmt::Result {
    let version = snapshot
        .version
        .as_ref()
        .map_or("unknown version".to_string(), |v| {
            format!(
                "{} {} (PostgreSQL {})",
                v.product.as_str(),
                v.product_version,
                v.pg_version
            )
        });
    writeln!(
        out,
        "Cluster      {version}, coordinator {}, state {}",
        snapshot.acting_coordinator.as_deref().unwrap_or("NONE"),
        snapshot.cluster_state().as_str()
    )?;
    writeln!(out, "\nEndpoints")?;
    for e in &snapshot.endpoints {
        let replayed = e
            .last_replayed
            .map(|l| format!(" (last replayed {l})"))
            .unwrap_or_default();
        let detail = e
            .detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  {:<28} {}{replayed}{detail}",
            e.endpoint,
            e.state.as_str()
        )?;
    }
    write_standby(out, snapshot)?;
    write_segments(out, snapshot)?;
    write_failures(out, snapshot)
}

fn write_standby(out: &mut String, snapshot: &Snapshot) -> std::fmt::Result {
    let configured = match &snapshot.segments {
        Ok(_) if snapshot.standby_row().is_some() => "configured",
        Ok(_) => "not configured",
        Err(_) => "unknown",
    };
    let replication = match &snapshot.standby {
        Ok(s) => match &s.walsender {
            Some(w) => format!(
                "{}, {}, lag send/flush/replay bytes {}",
                w.state.as_str(),
                if w.sync_state == Some(SyncState::Sync) {
                    "sync"
                } else {
                    "async"
                },
                lag_text(Some(w.lag(s.coordinator_current)))
            ),
            None => "disconnected".to_string(),
        },
        Err(e) => format!("not read ({})", e.message),
    };
    writeln!(out, "\nStandby      {configured}, {replication}")
}

fn write_segments(out: &mut String, snapshot: &Snapshot) -> std::fmt::Result {
    let Ok(segments) = &snapshot.segments else {
        return Ok(());
    };
    let mirrors: Vec<&MirrorReplication> = snapshot
        .replication
        .as_ref()
        .map_or(vec![], |m| m.iter().collect());
    writeln!(out, "\nSegments")?;
    write_row(
        out,
        [
            "dbid",
            "content",
            "role",
            "preferred",
            "status",
            "mode",
            "address:port",
            "replication",
            "lag send/flush/replay",
        ]
        .map(String::from),
    )?;
    let mut rows: Vec<&Segment> = segments.iter().collect();
    rows.sort_by_key(|s| (s.content, s.preferred_role, s.dbid));
    for s in rows {
        // Replication belongs to the pair; show it on the acting primary's line.
        let pair = mirrors
            .iter()
            .find(|m| m.content == s.content)
            .filter(|_| s.role == greenplum_catalog::Role::Primary && !s.is_coordinator_tier());
        let (replication, lag) = match pair {
            Some(m) => (m.state().as_str().to_string(), lag_text(m.lag())),
            None => (String::new(), String::new()),
        };
        let mode = if s.is_coordinator_tier() {
            "-"
        } else {
            s.mode.as_str()
        };
        let status = if s.is_coordinator_tier() {
            "-"
        } else if s.is_up() {
            "up"
        } else {
            "DOWN"
        };
        write_row(
            out,
            [
                s.dbid.to_string(),
                s.content.to_string(),
                s.role.as_str().to_string(),
                s.preferred_role.as_str().to_string(),
                status.to_string(),
                mode.to_string(),
                format!("{}:{}", s.address, s.port),
                replication,
                lag,
            ],
        )?;
    }
    Ok(())
}

fn write_row(out: &mut String, c: [String; 9]) -> std::fmt::Result {
    writeln!(
        out,
        "  {:>4} {:>7} {:<7} {:<9} {:<6} {:<16} {:<28} {:<12} {}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
    )
}

fn write_failures(out: &mut String, snapshot: &Snapshot) -> std::fmt::Result {
    let failures: Vec<String> = [
        snapshot.segments.as_ref().err(),
        snapshot.replication.as_ref().err(),
        snapshot.standby.as_ref().err(),
        snapshot.history.as_ref().err(),
        snapshot.recovery.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    .map(|e| e.to_string())
    .collect();
    if !failures.is_empty() {
        writeln!(out, "\nNot read")?;
        for failure in failures {
            writeln!(out, "  {failure}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use greenplum_catalog::test_support::recorded as fx;

    #[test]
    fn verdicts() {
        assert_eq!(verdict(&fx::healthy()), Verdict::Healthy);
        assert_eq!(verdict(&fx::after_failover()), Verdict::Unhealthy);
        assert_eq!(verdict(&fx::mirror_down()), Verdict::Unhealthy);
        assert_eq!(verdict(&fx::standby_down()), Verdict::Unhealthy);
        assert_eq!(verdict(&fx::replication_failed()), Verdict::Unhealthy);
        assert_eq!(verdict(&fx::coordinator_down()), Verdict::NoCoordinator);
    }

    #[test]
    fn table_shows_what_gpstate_would() {
        let text = render(&fx::after_failover());
        assert!(
            text.contains("coordinator vm:6000, state unprotected"),
            "{text}"
        );
        assert!(
            text.contains("standby_in_recovery (last replayed 0/C000128)"),
            "{text}"
        );
        assert!(
            text.contains("Standby      configured, streaming, sync"),
            "{text}"
        );
        let line = |dbid: &str| {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(dbid))
                .unwrap_or_else(|| panic!("no line for dbid {dbid}: {text}"))
                .to_string()
        };
        assert!(
            line("2").contains("mirror  primary   DOWN"),
            "{}",
            line("2")
        );
        assert!(line("5").contains("disconnected"), "{}", line("5"));
        assert!(
            line("4").contains("streaming") && line("4").contains("0/0/"),
            "{}",
            line("4")
        );
    }

    #[test]
    fn failures_are_listed() {
        let text = render(&fx::coordinator_down());
        assert!(text.contains("coordinator NONE, state unknown"), "{text}");
        assert!(text.contains("segments source failed"), "{text}");
        assert!(text.contains("vm:6000") && text.contains("down"), "{text}");
    }
}
