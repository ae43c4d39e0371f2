//! The journal: append-only records of events, decisions, actions and their state changes,
//! approvals, executions, verifications and operator controls.
//!
//! It is the single source of truth for dedup, cooldowns, budgets, the breaker, the kill
//! switch and re-attach after a restart: nothing of that lives only in memory. Rows are never
//! updated; an action's state is its latest `action_states` row.
//!
//! The trait is synchronous and object safe so that a PostgreSQL implementation (several
//! replicas, one advisory lock per cluster lane) fits behind it as well as SQLite.
//!
//! Both backends share their records: `store` writes and reads them through `sql` (one
//! session interface), `rows` maps rows to records and `schema` describes the tables once.
//! `sqlite` and `postgres` keep only their connection, transactions and driver.

pub mod group;
pub mod postgres;
mod reserve;
mod rows;
mod schema;
mod sql;
pub mod sqlite;
mod store;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::actions::ActionKind;
use crate::alert::{Alert, AlertStatus};

pub use self::group::GroupCommit;
pub use self::postgres::PostgresJournal;
pub use sqlite::SqliteJournal;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal storage failed during {what}: {source}")]
    Storage {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("journal database failed during {what}: {source}")]
    Postgres {
        what: &'static str,
        #[source]
        source: ::postgres::Error,
    },
    #[error("journal holds a record it cannot read ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("action {0} does not exist")]
    NoSuchAction(i64),
    #[error("journal is unavailable: {0}")]
    Unavailable(String),
}

pub type JournalResult<T> = Result<T, JournalError>;

/// Where an action is. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    AwaitingApproval,
    Approved,
    Running,
    Verifying,
    Succeeded,
    Failed,
    NoOp,
    Refused,
    Rejected,
    Expired,
    DryRun,
}

impl ActionState {
    pub const ALL: [ActionState; 11] = [
        ActionState::AwaitingApproval,
        ActionState::Approved,
        ActionState::Running,
        ActionState::Verifying,
        ActionState::Succeeded,
        ActionState::Failed,
        ActionState::NoOp,
        ActionState::Refused,
        ActionState::Rejected,
        ActionState::Expired,
        ActionState::DryRun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::AwaitingApproval => "awaiting_approval",
            ActionState::Approved => "approved",
            ActionState::Running => "running",
            ActionState::Verifying => "verifying",
            ActionState::Succeeded => "succeeded",
            ActionState::Failed => "failed",
            ActionState::NoOp => "no_op",
            ActionState::Refused => "refused",
            ActionState::Rejected => "rejected",
            ActionState::Expired => "expired",
            ActionState::DryRun => "dry_run",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// States an intent is still "open" in: a second identical intent is a duplicate.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ActionState::AwaitingApproval
                | ActionState::Approved
                | ActionState::Running
                | ActionState::Verifying
        )
    }

    /// The `result` label of `greenplum_remediator_actions_total`, for states that end a plan
    /// or wait on a person. A human rejection is a refusal by the operator.
    pub fn result_label(self) -> Option<&'static str> {
        match self {
            ActionState::Succeeded => Some("succeeded"),
            ActionState::Failed => Some("failed"),
            ActionState::NoOp => Some("no_op"),
            ActionState::Refused | ActionState::Rejected => Some("refused"),
            ActionState::AwaitingApproval => Some("awaiting_approval"),
            ActionState::Expired => Some("expired"),
            ActionState::DryRun => Some("dry_run"),
            ActionState::Approved | ActionState::Running | ActionState::Verifying => None,
        }
    }
}

/// One alert as journalled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    pub status: AlertStatus,
    pub alertname: String,
    pub labels: BTreeMap<String, String>,
}

/// What `record_delivery` did with each alert, in payload order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventInsert {
    New(i64),
    /// Same (fingerprint, startsAt, status) already journalled.
    Duplicate,
}

/// One webhook delivery to journal: its body as received and the alerts parsed from it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub received_at: DateTime<Utc>,
    pub body: String,
    pub alerts: Vec<Alert>,
}

/// A decision about one journalled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDecision {
    pub event_id: i64,
    pub decision: &'static str,
    pub detail: String,
    pub action_id: Option<i64>,
}

/// What one group commit writes (see `group`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Batch<'a> {
    pub deliveries: &'a [NewDelivery],
    pub decisions: &'a [NewDecision],
}

/// What `record_batch` did with each delivery and decision, in batch order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchOutcome {
    /// Per delivery, per alert (as `record_delivery`).
    pub deliveries: Vec<Vec<EventInsert>>,
    /// Per decision: false when the event already had one.
    pub decisions: Vec<bool>,
}

/// A plan, as created by the planner. Never updated afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAction {
    pub created_at: DateTime<Utc>,
    pub cluster: String,
    pub action: ActionKind,
    pub rule: String,
    pub targets: Vec<i16>,
    /// `cluster/action/dbids`: the intent dedup key.
    pub intent: String,
    /// Digest of the catalog state the plan was made on (an approval binds to it).
    pub digest: String,
    pub argv: Vec<String>,
    pub host: Option<String>,
    pub approval_required: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub event_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    pub at: DateTime<Utc>,
    pub state: ActionState,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    Approve,
    Reject,
}

impl ApprovalDecision {
    pub const ALL: [ApprovalDecision; 2] = [ApprovalDecision::Approve, ApprovalDecision::Reject];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDecision::Approve => "approve",
            ApprovalDecision::Reject => "reject",
        }
    }

    /// The decision `as_str` names, if `text` is one.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub at: DateTime<Utc>,
    pub decision: ApprovalDecision,
    pub who: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionStart {
    pub started_at: DateTime<Utc>,
    pub pid: Option<u32>,
    /// `/proc/PID/stat` start time, so a recycled pid is never mistaken for our command.
    pub pid_start_ticks: Option<u64>,
    pub host: Option<String>,
    pub argv: Vec<String>,
    pub log_path: String,
    /// Host of the remediator replica that started it: its pid means nothing elsewhere.
    #[serde(default)]
    pub replica: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionEnd {
    pub finished_at: DateTime<Utc>,
    /// `None` when the command was re-attached after a restart (not our child any more).
    pub exit_code: Option<i32>,
    /// Bounded: see `executor::OUTPUT_LIMIT`.
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub at: DateTime<Utc>,
    pub succeeded: bool,
    pub detail: serde_json::Value,
}

/// Everything about one action, for the API and re-attach.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    pub id: i64,
    #[serde(flatten)]
    pub plan: NewAction,
    pub state: ActionState,
    pub history: Vec<StateChange>,
    pub approvals: Vec<Approval>,
    pub execution: Option<ExecutionStart>,
    pub result: Option<ExecutionEnd>,
    pub verifications: Vec<Verification>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionSummary {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub cluster: String,
    pub action: ActionKind,
    pub rule: String,
    pub targets: Vec<i16>,
    pub state: ActionState,
}

/// What the journal says about a cluster and a rule, for the gates (which stay pure).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LedgerFacts {
    pub paused: bool,
    /// Failed verifications since the last success or breaker reset of the cluster.
    pub consecutive_failures: u32,
    pub executions_last_hour: u32,
    pub executions_last_day: u32,
    pub last_execution_at: Option<DateTime<Utc>>,
    /// How often each dbid was a target of an executed action in the last 24 h.
    pub executions_by_dbid_24h: BTreeMap<i16, u32>,
}

/// What a remediator last saw of a cluster's standby while the coordinator answered: the
/// proof `activate_standby` needs ("last seen streaming in sync") once the coordinator is gone.
/// Journalled, so a remediator restarted during a coordinator outage still has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandbySighting {
    /// When the catalog read that saw it was taken.
    pub at: DateTime<Utc>,
    /// Streaming with `sync_state = 'sync'`.
    pub in_sync: bool,
    /// The walsender's state, sync state and LSNs as read (or why there were none).
    pub detail: serde_json::Value,
    /// Which remediator saw it (host name and process id).
    pub seen_by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    Pause,
    Resume,
    BreakerReset,
}

impl ControlKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlKind::Pause => "pause",
            ControlKind::Resume => "resume",
            ControlKind::BreakerReset => "breaker_reset",
        }
    }
}

pub trait Journal: Send + Sync {
    /// Writes a delivery and its alerts in one durable transaction. Alerts whose event key
    /// is already journalled are reported as duplicates and not stored again.
    fn record_delivery(
        &self,
        received_at: DateTime<Utc>,
        body: &str,
        alerts: &[Alert],
    ) -> JournalResult<Vec<EventInsert>>;

    /// Writes deliveries and routine decisions in one durable transaction (one fsync), with
    /// the outcome of each in batch order. Dedup is the same as one delivery at a time: the
    /// second of two identical alerts in a batch is a duplicate. A decision for an event that
    /// already has one is not written (the sweeper may submit an event again while its
    /// decision waits in the queue). Unlike `record_decision`, decisions never spend the disk
    /// reserve: an event left undecided is planned again by the next sweep. If the batch
    /// fails, nothing of it is kept.
    fn record_batch(&self, batch: &Batch<'_>) -> JournalResult<BatchOutcome>;

    /// The writer that batches this journal's deliveries and routine decisions; use it
    /// through [`group::record_delivery`] and [`group::queue_decisions`].
    fn group_commit(&self) -> &GroupCommit;

    /// Events that have no decision yet (work left over from a restart, or not yet planned).
    fn undecided_events(&self) -> JournalResult<Vec<StoredEvent>>;

    /// Whether the event already has a decision.
    fn event_decided(&self, event_id: i64) -> JournalResult<bool>;

    /// Whether the alert (fingerprint, startsAt) has been journalled as resolved.
    fn event_resolved(&self, fingerprint: &str, starts_at: DateTime<Utc>) -> JournalResult<bool>;

    fn record_decision(
        &self,
        event_id: i64,
        decision: &str,
        detail: &str,
        action_id: Option<i64>,
    ) -> JournalResult<()>;

    /// Creates the plan and its first state in one transaction.
    fn create_action(&self, plan: &NewAction, first: &StateChange) -> JournalResult<i64>;
    fn record_state(&self, action_id: i64, change: &StateChange) -> JournalResult<()>;
    fn record_approval(&self, action_id: i64, approval: &Approval) -> JournalResult<()>;
    fn record_execution_start(&self, action_id: i64, start: &ExecutionStart) -> JournalResult<()>;
    fn record_execution_end(&self, action_id: i64, end: &ExecutionEnd) -> JournalResult<()>;
    fn record_verification(
        &self,
        action_id: i64,
        cluster: &str,
        verification: &Verification,
    ) -> JournalResult<()>;

    fn action(&self, id: i64) -> JournalResult<Option<ActionRecord>>;
    fn actions(&self, state: Option<ActionState>) -> JournalResult<Vec<ActionSummary>>;
    /// An action with this intent that is still open, if any.
    fn open_action_with_intent(&self, intent: &str) -> JournalResult<Option<i64>>;

    fn ledger(&self, cluster: &str, rule: &str, now: DateTime<Utc>) -> JournalResult<LedgerFacts>;

    /// Keeps `sighting` as the cluster's latest sight of its standby (replacing the last).
    fn record_standby_sighting(
        &self,
        cluster: &str,
        sighting: &StandbySighting,
    ) -> JournalResult<()>;
    /// The cluster's latest journalled sight of its standby, if any.
    fn standby_sighting(&self, cluster: &str) -> JournalResult<Option<StandbySighting>>;

    /// Pause, resume (global) or reset a cluster's breaker (`cluster` `None` = every cluster).
    fn record_control(
        &self,
        kind: ControlKind,
        cluster: Option<&str>,
        who: &str,
        why: &str,
        at: DateTime<Utc>,
    ) -> JournalResult<()>;
    fn paused(&self) -> JournalResult<bool>;

    /// Takes the right to run a cluster's lane. A single-process journal always grants it; a
    /// shared one (PostgreSQL) grants it to one replica at a time.
    fn try_acquire_lane(&self, cluster: &str) -> JournalResult<bool>;
}

/// One timestamp format everywhere, so text comparison in SQL orders correctly.
pub(crate) fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(text: &str, what: &'static str) -> JournalResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| JournalError::Corrupt {
            what,
            detail: format!("{text:?}: {e}"),
        })
}
