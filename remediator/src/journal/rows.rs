//! Rows to records, for both backends: each `SELECT` list sits next to the function that
//! maps its row, and a value the journal cannot read is a `Corrupt` error naming what it was.

use serde::{Deserialize, Serialize};

use super::sql::Row;
use super::{
    parse_ts, ActionState, ActionSummary, Approval, ApprovalDecision, JournalError, JournalResult,
    NewAction, StateChange, StoredEvent, Verification,
};
use crate::alert::AlertStatus;

fn corrupt(what: &'static str, text: &str) -> JournalError {
    JournalError::Corrupt {
        what,
        detail: text.to_string(),
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T, what: &'static str) -> JournalResult<String> {
    serde_json::to_string(value).map_err(|e| JournalError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(
    text: &str,
    what: &'static str,
) -> JournalResult<T> {
    serde_json::from_str(text).map_err(|e| JournalError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

pub(crate) fn parse_state(text: &str) -> JournalResult<ActionState> {
    ActionState::parse(text).ok_or_else(|| corrupt("action state", text))
}

/// Columns of [`event`], from `events e`.
pub(crate) const EVENT: &str =
    "e.id, e.received_at, e.fingerprint, e.starts_at, e.status, e.alertname, e.labels";

pub(crate) fn event(r: &Row) -> JournalResult<StoredEvent> {
    let status = r.text(4)?;
    Ok(StoredEvent {
        id: r.int(0)?,
        received_at: parse_ts(&r.text(1)?, "event received_at")?,
        fingerprint: r.text(2)?,
        starts_at: parse_ts(&r.text(3)?, "event startsAt")?,
        status: AlertStatus::parse(&status).ok_or_else(|| corrupt("event status", &status))?,
        alertname: r.text(5)?,
        labels: from_json(&r.text(6)?, "event labels")?,
    })
}

/// Columns of [`state_change`], from `action_states`.
pub(crate) const STATE_CHANGE: &str = "at, state, detail";

pub(crate) fn state_change(r: &Row) -> JournalResult<StateChange> {
    Ok(StateChange {
        at: parse_ts(&r.text(0)?, "state time")?,
        state: parse_state(&r.text(1)?)?,
        detail: from_json(&r.text(2)?, "state detail")?,
    })
}

/// Columns of [`approval`], from `approvals`.
pub(crate) const APPROVAL: &str = "at, decision, who, why";

pub(crate) fn approval(r: &Row) -> JournalResult<Approval> {
    let decision = r.text(1)?;
    Ok(Approval {
        at: parse_ts(&r.text(0)?, "approval time")?,
        decision: ApprovalDecision::parse(&decision)
            .ok_or_else(|| corrupt("approval decision", &decision))?,
        who: r.text(2)?,
        why: r.text(3)?,
    })
}

/// Columns of [`verification`], from `verifications`.
pub(crate) const VERIFICATION: &str = "at, succeeded, detail";

pub(crate) fn verification(r: &Row) -> JournalResult<Verification> {
    Ok(Verification {
        at: parse_ts(&r.text(0)?, "verification time")?,
        succeeded: r.flag(1)?,
        detail: from_json(&r.text(2)?, "verification detail")?,
    })
}

/// An action listed with its current state (columns: id, plan, current state); `None` when
/// the state is not the `wanted` one (the plan is then not read).
pub(crate) fn summary(
    r: &Row,
    wanted: Option<ActionState>,
) -> JournalResult<Option<ActionSummary>> {
    let state = parse_state(&r.text(2)?)?;
    if wanted.is_some_and(|wanted| wanted != state) {
        return Ok(None);
    }
    let plan: NewAction = from_json(&r.text(1)?, "plan")?;
    Ok(Some(ActionSummary {
        id: r.int(0)?,
        created_at: plan.created_at,
        cluster: plan.cluster,
        action: plan.action,
        rule: plan.rule,
        targets: plan.targets,
        state,
    }))
}
