//! Group commit: one writer thread per journal takes every delivery waiting (up to a cap),
//! writes them in one transaction, syncs the disk once, then answers each sender.
//!
//! With `synchronous=FULL` each commit waits for the disk. One transaction per delivery,
//! run on tokio's blocking pool behind the connection's lock, made the disk the limit: every
//! connection queued behind another's fsync. Batching keeps each delivery durable before
//! its 202, while the number of fsyncs no longer grows with the number of senders.
//!
//! The planner's routine decisions (`unknown_cluster`) ride the same transactions, so they
//! cost no fsync of their own. They need not be durable before anything (an undecided event
//! is planned again by the next sweep), but written one transaction at a time on an async
//! worker they stalled every connection.
//!
//! A failed batch is written again one sender at a time, so that one delivery the journal
//! refuses (say a byte PostgreSQL does not store) cannot fail the deliveries beside it; each
//! sender gets the outcome of its own write.

use std::ops::Range;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::oneshot;

use super::{
    Batch, BatchOutcome, EventInsert, Journal, JournalError, JournalResult, NewDecision,
    NewDelivery,
};

/// Deliveries per transaction at most: bounds how long one commit keeps the journal.
pub const MAX_DELIVERIES: usize = 256;
/// Decisions per transaction at most.
pub const MAX_DECISIONS: usize = 1024;

type DeliveryReply = oneshot::Sender<JournalResult<Vec<EventInsert>>>;

/// Told whether each decision was written (false: the event already had one). Runs on the
/// writer thread, so it must be short: count, log.
pub type DecisionsDone = Box<dyn FnOnce(JournalResult<Vec<bool>>) + Send>;

enum Work {
    Delivery(NewDelivery, DeliveryReply),
    Decisions(Vec<NewDecision>, DecisionsDone),
}

impl Work {
    fn fail(self, error: JournalError) {
        match self {
            // The sender may have gone (client disconnected): nobody is left to tell.
            Work::Delivery(_, reply) => drop(reply.send(Err(error))),
            Work::Decisions(_, done) => done(Err(error)),
        }
    }
}

/// Journals a delivery through the journal's group commit. Returns once the transaction
/// holding it committed, with what happened to each alert (as `Journal::record_delivery`),
/// or with the reason it could not be written. No async worker waits on the disk.
pub async fn record_delivery(
    journal: &Arc<dyn Journal>,
    delivery: NewDelivery,
) -> JournalResult<Vec<EventInsert>> {
    let (reply, answer) = oneshot::channel();
    journal
        .group_commit()
        .send(journal, Work::Delivery(delivery, reply));
    answer.await.unwrap_or_else(|_| {
        Err(JournalError::Unavailable(
            "the journal writer stopped before answering".into(),
        ))
    })
}

/// Queues routine decisions for the journal's next group commit; `done` is told the outcome.
pub fn queue_decisions(
    journal: &Arc<dyn Journal>,
    decisions: Vec<NewDecision>,
    done: impl FnOnce(JournalResult<Vec<bool>>) + Send + 'static,
) {
    if decisions.is_empty() {
        return done(Ok(Vec::new()));
    }
    journal
        .group_commit()
        .send(journal, Work::Decisions(decisions, Box::new(done)));
}

/// A journal's group-commit writer, started on first use. Each journal owns one (see
/// `Journal::group_commit`); its thread holds the journal weakly, so it ends when the
/// journal is dropped.
#[derive(Default)]
pub struct GroupCommit {
    queue: Mutex<Option<Sender<Work>>>,
}

impl GroupCommit {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `work` for the writer of `journal` (the journal owning `self`), starting the
    /// writer when none runs. Work that cannot be queued is answered with the reason.
    fn send(&self, journal: &Arc<dyn Journal>, work: Work) {
        // The lock is held for a channel send (no I/O), and only once longer: to start.
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let work = match queue.as_ref() {
            Some(sender) => match sender.send(work) {
                Ok(()) => return,
                // The writer is gone (it panicked): start another.
                Err(mpsc::SendError(work)) => work,
            },
            None => work,
        };
        let (sender, receiver) = mpsc::channel();
        let writer = Arc::downgrade(journal);
        let started = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || run(writer, receiver));
        if let Err(e) = started {
            return work.fail(JournalError::Unavailable(format!(
                "cannot start the journal writer thread: {e}"
            )));
        }
        if let Err(mpsc::SendError(work)) = sender.send(work) {
            return work.fail(JournalError::Unavailable(
                "the journal writer stopped as it started".into(),
            ));
        }
        *queue = Some(sender);
    }
}

/// The writer: waits for work, takes everything else already waiting, writes it.
fn run(journal: Weak<dyn Journal>, queue: Receiver<Work>) {
    while let Ok(first) = queue.recv() {
        let mut pending = Pending::default();
        pending.add(first);
        while !pending.is_full() {
            match queue.try_recv() {
                Ok(work) => pending.add(work),
                Err(_) => break,
            }
        }
        // Dropping the last reference here ends the loop: the journal owns the sender.
        match journal.upgrade() {
            Some(journal) => pending.write(journal.as_ref()),
            None => pending.fail("the journal was closed"),
        }
    }
}

/// The work taken for one transaction.
#[derive(Default)]
struct Pending {
    deliveries: Vec<NewDelivery>,
    replies: Vec<DeliveryReply>,
    decisions: Vec<NewDecision>,
    /// Each sender's decisions, as a range of `decisions`.
    decided: Vec<(Range<usize>, DecisionsDone)>,
}

impl Pending {
    fn add(&mut self, work: Work) {
        match work {
            Work::Delivery(delivery, reply) => {
                self.deliveries.push(delivery);
                self.replies.push(reply);
            }
            Work::Decisions(decisions, done) => {
                let start = self.decisions.len();
                self.decisions.extend(decisions);
                self.decided.push((start..self.decisions.len(), done));
            }
        }
    }

    fn is_full(&self) -> bool {
        self.deliveries.len() >= MAX_DELIVERIES || self.decisions.len() >= MAX_DECISIONS
    }

    fn senders(&self) -> usize {
        self.replies.len() + self.decided.len()
    }

    fn fail(self, why: &str) {
        for reply in self.replies {
            let _ = reply.send(Err(JournalError::Unavailable(why.into())));
        }
        for (_, done) in self.decided {
            done(Err(JournalError::Unavailable(why.into())));
        }
    }

    /// One transaction for everything; if it fails, one per sender.
    fn write(self, journal: &dyn Journal) {
        let batch = Batch {
            deliveries: &self.deliveries,
            decisions: &self.decisions,
        };
        let error = match journal.record_batch(&batch) {
            Ok(outcome)
                if outcome.deliveries.len() == self.deliveries.len()
                    && outcome.decisions.len() == self.decisions.len() =>
            {
                return self.answer(outcome);
            }
            Ok(outcome) => JournalError::Corrupt {
                what: "batch",
                detail: format!(
                    "{} and {} outcomes for {} deliveries and {} decisions",
                    outcome.deliveries.len(),
                    outcome.decisions.len(),
                    self.deliveries.len(),
                    self.decisions.len()
                ),
            },
            Err(error) => error,
        };
        if self.senders() == 1 {
            return self.answer_one(error);
        }
        tracing::warn!(%error, deliveries = self.deliveries.len(), decisions = self.decisions.len(), "journal batch failed; writing each sender's part alone");
        self.write_each(journal);
    }

    fn answer(self, outcome: BatchOutcome) {
        for (reply, inserts) in self.replies.into_iter().zip(outcome.deliveries) {
            let _ = reply.send(Ok(inserts));
        }
        for (range, done) in self.decided {
            done(Ok(outcome.decisions[range].to_vec()));
        }
    }

    fn answer_one(self, error: JournalError) {
        if let Some(reply) = self.replies.into_iter().next() {
            let _ = reply.send(Err(error));
        } else if let Some((_, done)) = self.decided.into_iter().next() {
            done(Err(error));
        }
    }

    fn write_each(self, journal: &dyn Journal) {
        for (delivery, reply) in self.deliveries.iter().zip(self.replies) {
            let _ = reply.send(journal.record_delivery(
                delivery.received_at,
                &delivery.body,
                &delivery.alerts,
            ));
        }
        for (range, done) in self.decided {
            let alone = Batch {
                deliveries: &[],
                decisions: &self.decisions[range],
            };
            done(
                journal
                    .record_batch(&alone)
                    .map(|outcome| outcome.decisions),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use chrono::{DateTime, TimeZone, Utc};

    use super::*;
    use crate::alert::{Alert, AlertStatus};
    use crate::journal::{
        ActionRecord, ActionState, ActionSummary, Approval, ControlKind, ExecutionEnd,
        ExecutionStart, LedgerFacts, NewAction, SqliteJournal, StandbySighting, StateChange,
        StoredEvent, Verification,
    };

    /// A SQLite journal that refuses every delivery whose body is `poison` (as PostgreSQL
    /// refuses a NUL byte): a batch holding one fails whole, as a transaction does.
    struct Refusing {
        inner: SqliteJournal,
        poison: &'static str,
        group: GroupCommit,
    }

    impl Refusing {
        fn refuse(&self, body: &str) -> JournalResult<()> {
            if body == self.poison {
                return Err(JournalError::Unavailable(format!("refused {body:?}")));
            }
            Ok(())
        }
    }

    macro_rules! delegate {
        ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
            $(fn $name(&self, $($arg: $ty),*) -> JournalResult<$ret> {
                self.inner.$name($($arg),*)
            })*
        };
    }

    impl Journal for Refusing {
        fn record_delivery(
            &self,
            received_at: DateTime<Utc>,
            body: &str,
            alerts: &[Alert],
        ) -> JournalResult<Vec<EventInsert>> {
            self.refuse(body)?;
            self.inner.record_delivery(received_at, body, alerts)
        }

        fn record_batch(&self, batch: &Batch<'_>) -> JournalResult<BatchOutcome> {
            for delivery in batch.deliveries {
                self.refuse(&delivery.body)?;
            }
            self.inner.record_batch(batch)
        }

        fn group_commit(&self) -> &GroupCommit {
            &self.group
        }

        delegate! {
            undecided_events() -> Vec<StoredEvent>;
            event_decided(id: i64) -> bool;
            event_resolved(fingerprint: &str, starts_at: DateTime<Utc>) -> bool;
            record_decision(id: i64, decision: &str, detail: &str, action: Option<i64>) -> ();
            create_action(plan: &NewAction, first: &StateChange) -> i64;
            record_state(id: i64, change: &StateChange) -> ();
            record_approval(id: i64, approval: &Approval) -> ();
            record_execution_start(id: i64, start: &ExecutionStart) -> ();
            record_execution_end(id: i64, end: &ExecutionEnd) -> ();
            record_verification(id: i64, cluster: &str, v: &Verification) -> ();
            action(id: i64) -> Option<ActionRecord>;
            actions(state: Option<ActionState>) -> Vec<ActionSummary>;
            open_action_with_intent(intent: &str) -> Option<i64>;
            ledger(cluster: &str, rule: &str, now: DateTime<Utc>) -> LedgerFacts;
            record_control(kind: ControlKind, cluster: Option<&str>, who: &str, why: &str, at: DateTime<Utc>) -> ();
            paused() -> bool;
            try_acquire_lane(cluster: &str) -> bool;
            record_standby_sighting(cluster: &str, sighting: &StandbySighting) -> ();
            standby_sighting(cluster: &str) -> Option<StandbySighting>;
        }
    }

    fn refusing(poison: &'static str) -> (tempfile::TempDir, Arc<dyn Journal>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = SqliteJournal::open(&dir.path().join("journal.db")).expect("open");
        let journal = Refusing {
            inner,
            poison,
            group: GroupCommit::new(),
        };
        (dir, Arc::new(journal))
    }

    /// A journal that refuses nothing.
    fn sqlite() -> (tempfile::TempDir, Arc<dyn Journal>) {
        refusing("\0never sent")
    }

    /// The fingerprints of the events waiting for a decision, in journal order.
    fn undecided_fingerprints(journal: &dyn Journal) -> Vec<String> {
        journal
            .undecided_events()
            .expect("events")
            .into_iter()
            .map(|e| e.fingerprint)
            .collect()
    }

    /// Journals a delivery of one alert and returns the id of the event it created.
    fn new_event(journal: &dyn Journal, fingerprint: &str) -> i64 {
        let inserted = journal
            .record_delivery(Utc::now(), "{}", &[alert(fingerprint)])
            .expect("delivery");
        let Some(EventInsert::New(id)) = inserted.first().copied() else {
            panic!("not written: {inserted:?}");
        };
        id
    }

    fn alert(fingerprint: &str) -> Alert {
        Alert {
            status: AlertStatus::Firing,
            labels: BTreeMap::from([("alertname".into(), "GreenplumSegmentDown".into())]),
            annotations: BTreeMap::new(),
            starts_at: Utc
                .with_ymd_and_hms(2026, 11, 21, 16, 27, 55)
                .single()
                .expect("a valid time"),
            ends_at: None,
            generator_url: String::new(),
            fingerprint: fingerprint.into(),
        }
    }

    fn delivery(body: &str, fingerprints: &[&str]) -> NewDelivery {
        NewDelivery {
            received_at: Utc::now(),
            body: body.into(),
            alerts: fingerprints.iter().map(|f| alert(f)).collect(),
        }
    }

    /// Writes `deliveries` as one batch, in order; returns each sender's answer.
    fn write_batch(
        journal: &dyn Journal,
        deliveries: Vec<NewDelivery>,
    ) -> Vec<JournalResult<Vec<EventInsert>>> {
        let mut batch = Pending::default();
        let mut answers = Vec::new();
        for delivery in deliveries {
            let (reply, answer) = oneshot::channel();
            batch.add(Work::Delivery(delivery, reply));
            answers.push(answer);
        }
        batch.write(journal);
        answers
            .into_iter()
            .map(|mut answer| answer.try_recv().expect("every sender is answered"))
            .collect()
    }

    fn shape(inserts: &[EventInsert]) -> Vec<&'static str> {
        inserts
            .iter()
            .map(|i| match i {
                EventInsert::New(_) => "new",
                EventInsert::Duplicate => "duplicate",
            })
            .collect()
    }

    fn shapes(answers: &[JournalResult<Vec<EventInsert>>]) -> Vec<Vec<&'static str>> {
        answers
            .iter()
            .map(|a| shape(a.as_ref().expect("written")))
            .collect()
    }

    #[test]
    fn duplicates_inside_one_batch_dedupe_as_across_batches() {
        let deliveries = || {
            vec![
                delivery("a", &["f1", "f2"]),
                delivery("b", &["f2", "f3"]),
                delivery("c", &["f1"]),
                delivery("d", &["f3", "f4"]),
            ]
        };
        let (_dir, batched) = sqlite();
        let together = write_batch(batched.as_ref(), deliveries());
        let (_dir2, alone) = sqlite();
        let one_by_one: Vec<_> = deliveries()
            .iter()
            .map(|d| {
                Ok(shape(&alone.record_delivery(
                    d.received_at,
                    &d.body,
                    &d.alerts,
                )?))
            })
            .collect::<JournalResult<_>>()
            .expect("written");
        assert_eq!(shapes(&together), one_by_one);
        assert_eq!(
            one_by_one,
            vec![
                vec!["new", "new"],
                vec!["duplicate", "new"],
                vec!["duplicate"],
                vec!["duplicate", "new"],
            ]
        );
        // A later batch sees the earlier one's events.
        let again = write_batch(batched.as_ref(), vec![delivery("e", &["f4", "f5"])]);
        assert_eq!(shapes(&again), vec![vec!["duplicate", "new"]]);
        assert_eq!(batched.undecided_events().expect("events").len(), 5);
    }

    #[test]
    fn a_batch_is_written_in_the_order_it_was_queued() {
        let (_dir, journal) = sqlite();
        let answers = write_batch(
            journal.as_ref(),
            vec![
                delivery("1", &["f1"]),
                delivery("2", &["f2", "f3"]),
                delivery("3", &["f4"]),
            ],
        );
        let ids: Vec<i64> = answers
            .into_iter()
            .flat_map(|a| a.expect("written"))
            .map(|i| match i {
                EventInsert::New(id) => id,
                EventInsert::Duplicate => panic!("nothing here is a duplicate"),
            })
            .collect();
        assert_eq!(ids.len(), 4);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let journalled = undecided_fingerprints(journal.as_ref());
        assert_eq!(journalled, ["f1", "f2", "f3", "f4"]);
    }

    #[test]
    fn one_refused_delivery_fails_only_its_own_sender() {
        let (_dir, journal) = refusing("poison");
        let answers = write_batch(
            journal.as_ref(),
            vec![
                delivery("ok-1", &["f1"]),
                delivery("poison", &["f2"]),
                delivery("ok-2", &["f3"]),
            ],
        );
        assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
        let refused = answers[1].as_ref().expect_err("the poison is refused");
        assert!(
            refused.to_string().contains("refused \"poison\""),
            "{refused}"
        );
        let journalled = undecided_fingerprints(journal.as_ref());
        assert_eq!(journalled, ["f1", "f3"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_journal_answers_every_sender_with_the_reason() {
        let (_dir, journal) = refusing("disk is full");
        let senders = (0..8).map(|i| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let fingerprint = format!("f{i}");
                record_delivery(&journal, delivery("disk is full", &[&fingerprint])).await
            })
        });
        for sender in senders {
            let answer = sender.await.expect("sender task");
            let error = answer.expect_err("nothing can be written");
            assert!(error.to_string().contains("disk is full"), "{error}");
        }
        assert!(journal.undecided_events().expect("events").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_each_get_their_own_outcome() {
        let (_dir, journal) = sqlite();
        // 64 deliveries of 32 distinct alerts: each alert arrives twice, from two senders.
        let senders: Vec<_> = (0..64)
            .map(|i| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    let fingerprint = format!("f{}", i % 32);
                    let body = format!("delivery {i}");
                    record_delivery(&journal, delivery(&body, &[&fingerprint])).await
                })
            })
            .collect();
        let mut new = 0;
        for sender in senders {
            let inserts = sender.await.expect("sender task").expect("written");
            assert_eq!(inserts.len(), 1);
            new += shape(&inserts).iter().filter(|s| **s == "new").count();
        }
        assert_eq!(new, 32);
        assert_eq!(journal.undecided_events().expect("events").len(), 32);
    }

    /// Queues decisions and waits (bounded) for their outcome.
    fn decide(journal: &Arc<dyn Journal>, decisions: Vec<NewDecision>) -> JournalResult<Vec<bool>> {
        let (done, outcome) = std::sync::mpsc::channel();
        queue_decisions(journal, decisions, move |written| {
            let _ = done.send(written);
        });
        outcome
            .recv_timeout(Duration::from_secs(30))
            .expect("the writer answers")
    }

    fn decision(event_id: i64) -> NewDecision {
        NewDecision {
            event_id,
            decision: "unknown_cluster",
            detail: "test".into(),
            action_id: None,
        }
    }

    #[test]
    fn a_decision_is_written_once_however_often_it_is_queued() {
        let (_dir, journal) = sqlite();
        let inserted = journal
            .record_delivery(Utc::now(), "{}", &[alert("f1"), alert("f2")])
            .expect("delivery");
        let ids: Vec<i64> = inserted
            .iter()
            .filter_map(|i| match i {
                EventInsert::New(id) => Some(*id),
                EventInsert::Duplicate => None,
            })
            .collect();
        assert_eq!(
            decide(&journal, vec![decision(ids[0])]).expect("written"),
            [true]
        );
        // The sweeper submitting the same event again, beside a new one.
        assert_eq!(
            decide(&journal, vec![decision(ids[0]), decision(ids[1])]).expect("written"),
            [false, true]
        );
        assert!(journal.undecided_events().expect("events").is_empty());
        assert_eq!(
            decide(&journal, Vec::new()).expect("nothing to write"),
            [] as [bool; 0]
        );
    }

    #[test]
    fn a_refused_decision_fails_only_its_own_sender() {
        let (_dir, journal) = sqlite();
        let id = new_event(journal.as_ref(), "f1");
        let (first, first_outcome) = std::sync::mpsc::channel();
        let (second, second_outcome) = std::sync::mpsc::channel();
        let (reply, mut delivered) = oneshot::channel();
        let mut batch = Pending::default();
        // No event 9999: the foreign key refuses it, and with it the whole transaction.
        batch.add(Work::Decisions(
            vec![decision(9999)],
            Box::new(move |w| drop(first.send(w))),
        ));
        batch.add(Work::Delivery(delivery("beside", &["f2"]), reply));
        batch.add(Work::Decisions(
            vec![decision(id)],
            Box::new(move |w| drop(second.send(w))),
        ));
        batch.write(journal.as_ref());
        assert!(first_outcome.try_recv().expect("answered").is_err());
        assert_eq!(
            second_outcome
                .try_recv()
                .expect("answered")
                .expect("written"),
            [true]
        );
        let inserts = delivered.try_recv().expect("answered").expect("written");
        assert_eq!(shape(&inserts), ["new"]);
        assert!(journal.event_decided(id).expect("read"));
    }

    #[test]
    fn deliveries_and_decisions_share_one_transaction() {
        let (_dir, journal) = sqlite();
        let id = new_event(journal.as_ref(), "f1");
        let deliveries = [delivery("d", &["f1", "f2"])];
        let decisions = [decision(id)];
        let outcome = journal
            .record_batch(&Batch {
                deliveries: &deliveries,
                decisions: &decisions,
            })
            .expect("written");
        assert_eq!(shape(&outcome.deliveries[0]), ["duplicate", "new"]);
        assert_eq!(outcome.decisions, [true]);
        // A refused part rolls back the rest.
        let bad = [decision(9999)];
        let more = [delivery("e", &["f3"])];
        journal
            .record_batch(&Batch {
                deliveries: &more,
                decisions: &bad,
            })
            .expect_err("no event 9999");
        let undecided: Vec<String> = journal
            .undecided_events()
            .expect("events")
            .into_iter()
            .map(|e| e.fingerprint)
            .collect();
        assert_eq!(undecided, ["f2"]);
    }
}
