//! Verification: the catalog, not the exit code, says whether an action worked.
//!
//! After a command ends (or could not start, or was found gone after a restart) the lane
//! polls fresh reads until the targets are up and synchronized or a deadline passes, then
//! journals the verdict, feeds the breaker and the duration metrics.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::lane::{Lane, LaneResult};
use crate::journal::{ActionState, NewAction, Verification};
use crate::metrics::Metrics;
use crate::verify::{progress, Progress};

impl Lane {
    /// Polls the catalog until the targets are up (short deadline) and synchronized (long
    /// deadline). The exit code plays no part.
    pub(super) async fn verify(
        &mut self,
        id: i64,
        plan: &NewAction,
        started_at: DateTime<Utc>,
    ) -> LaneResult<()> {
        self.transition(id, plan.action, ActionState::Verifying, json!({}))?;
        // The deadlines count from here: the probe request may wait a minute for FTS (its
        // probe timeout and retries) and must not stretch a 45 s deadline past it.
        let begin = tokio::time::Instant::now();
        self.request_fts_probe().await;
        let (succeeded, why) = self.poll_progress(plan, begin).await;
        self.record_verification(id, plan, started_at, succeeded, json!({"why": why}))
    }

    /// Asks FTS to probe now, within the up deadline; polling goes on whatever it answers.
    async fn request_fts_probe(&mut self) {
        let deadline = self.policy.settings.verify_up_deadline.0;
        let probe = tokio::time::timeout(deadline, self.source.request_fts_probe());
        match probe.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(cluster = %self.cluster.name, error = %e, "FTS probe request failed; polling anyway")
            }
            Err(_) => {
                tracing::warn!(cluster = %self.cluster.name, "FTS probe request outlasted the verification deadline; polling anyway")
            }
        }
    }

    /// Fresh reads until the targets are up and synchronized (true) or a deadline counted
    /// from `begin` passes (false, and why).
    async fn poll_progress(
        &mut self,
        plan: &NewAction,
        begin: tokio::time::Instant,
    ) -> (bool, String) {
        let settings = self.policy.settings.clone();
        let standby_endpoint = self.cluster.standby.as_ref().map(|s| s.endpoint.clone());
        loop {
            let snapshot = self.read().await;
            let state = progress(
                plan.action,
                &plan.targets,
                standby_endpoint.as_deref(),
                &snapshot,
            );
            let elapsed = begin.elapsed();
            match state {
                Progress::Done => return (true, "targets up and synchronized".to_string()),
                Progress::Pending(why) if elapsed >= settings.verify_up_deadline.0 => {
                    let deadline = &settings.verify_up_deadline;
                    return (false, format!("not up within {deadline}: {why}"));
                }
                Progress::Up(why) if elapsed >= settings.verify_sync_deadline.0 => {
                    let deadline = &settings.verify_sync_deadline;
                    return (false, format!("not synchronized within {deadline}: {why}"));
                }
                _ => tokio::time::sleep(settings.verify_poll_interval.0).await,
            }
        }
    }

    /// Journals the verification and the final state, and feeds the duration metrics.
    pub(super) fn record_verification(
        &self,
        id: i64,
        plan: &NewAction,
        started_at: DateTime<Utc>,
        succeeded: bool,
        detail: serde_json::Value,
    ) -> LaneResult<()> {
        let now = Utc::now();
        self.journal.record_verification(
            id,
            &self.cluster.name,
            &Verification {
                at: now,
                succeeded,
                detail: detail.clone(),
            },
        )?;
        let state = if succeeded {
            ActionState::Succeeded
        } else {
            ActionState::Failed
        };
        self.transition(id, plan.action, state, detail)?;
        let labels = Metrics::action_labels(&self.cluster.name, plan.action);
        let seconds = (now - started_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.metrics
            .action_duration
            .get_or_create(&labels)
            .observe(seconds);
        if succeeded {
            self.metrics
                .last_verified_success
                .get_or_create(&labels)
                .set(now.timestamp_millis() as f64 / 1000.0);
        }
        self.update_gauges()
    }
}
