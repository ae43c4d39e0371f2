//! Query on scrape, one round at a time.
//!
//! Concurrent scrapes share one catalog round (single-flight): two Prometheus replicas never
//! make the exporter ask the database twice. A round runs as its own task, so a scraper that
//! gives up (its timeout passed, it disconnected) never cancels a round halfway through a
//! query; the next scraper joins it or uses its result. An optional cache TTL lets many
//! scrapers share one recent round.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::{FutureExt, Shared};
use greenplum_catalog::{Snapshot, Source};

use crate::metrics::Scrape;

/// Something that reads a cluster into a [`Snapshot`]: the catalog's `ClusterReader` in
/// production, a scripted source in tests. A round never fails as a whole: what failed is in
/// the snapshot.
pub trait SnapshotSource: Send + 'static {
    fn snapshot(&mut self) -> Pin<Box<dyn Future<Output = Snapshot> + Send + '_>>;
}

/// One finished catalog round.
#[derive(Debug, Clone)]
struct Round {
    scrape: Scrape,
    finished: Instant,
}

type RoundFuture = Shared<Pin<Box<dyn Future<Output = Round> + Send>>>;

#[derive(Default)]
struct Flight {
    latest: Option<Round>,
    running: Option<RoundFuture>,
    /// Each failing source's error in the last round, so the log says when a failure starts,
    /// changes or ends instead of repeating it every scrape.
    failing: BTreeMap<Source, String>,
}

/// Serves scrapes of one cluster.
pub struct Scraper {
    source: Arc<tokio::sync::Mutex<Box<dyn SnapshotSource>>>,
    flight: Arc<Mutex<Flight>>,
    cache_ttl: Duration,
}

impl std::fmt::Debug for Scraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraper")
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

impl Scraper {
    pub fn new(source: impl SnapshotSource, cache_ttl: Duration) -> Self {
        Scraper {
            source: Arc::new(tokio::sync::Mutex::new(Box::new(source))),
            flight: Arc::new(Mutex::new(Flight::default())),
            cache_ttl,
        }
    }

    /// The snapshot for one scrape, waiting at most `budget` for a round to finish. When the
    /// budget runs out the scrape still answers: no coordinator answered *this* scrape
    /// (`up` 0, every collector failed), while the round goes on for the next one.
    pub async fn scrape(&self, budget: Duration) -> Scrape {
        let round = self.join_or_start();
        match tokio::time::timeout(budget, round).await {
            Ok(round) => round.scrape,
            Err(_) => {
                let why = format!(
                    "the catalog round did not finish within the scrape budget of {budget:?}"
                );
                tracing::warn!(budget = ?budget, "scrape answered before its catalog round finished");
                Scrape {
                    snapshot: Arc::new(Snapshot::without_coordinator(Utc::now(), vec![], &why)),
                    duration_seconds: budget.as_secs_f64(),
                }
            }
        }
    }

    fn join_or_start(&self) -> RoundFuture {
        let mut flight = lock(&self.flight);
        if let Some(latest) = &flight.latest {
            if !self.cache_ttl.is_zero() && latest.finished.elapsed() <= self.cache_ttl {
                let round = latest.clone();
                return futures::future::ready(round).boxed().shared();
            }
        }
        if let Some(running) = &flight.running {
            return running.clone();
        }
        let task = tokio::spawn(run_round(
            self.source.clone(),
            self.flight.clone(),
            !self.cache_ttl.is_zero(),
        ));
        let round: RoundFuture = async move {
            match task.await {
                Ok(round) => round,
                // A panic in a round is a bug; the scrape still answers.
                Err(err) => {
                    tracing::error!(%err, "catalog round panicked");
                    let why = format!("the catalog round failed: {err}");
                    Round {
                        scrape: Scrape {
                            snapshot: Arc::new(Snapshot::without_coordinator(
                                Utc::now(),
                                vec![],
                                &why,
                            )),
                            duration_seconds: 0.0,
                        },
                        finished: Instant::now(),
                    }
                }
            }
        }
        .boxed()
        .shared();
        flight.running = Some(round.clone());
        round
    }
}

/// Runs one round; `keep` keeps its result for the cache TTL. Without a TTL nothing reads it
/// again, and holding it would keep a whole snapshot (~1.3 MB at 2,048 segments) alive
/// through the next round's peak.
async fn run_round(
    source: Arc<tokio::sync::Mutex<Box<dyn SnapshotSource>>>,
    flight: Arc<Mutex<Flight>>,
    keep: bool,
) -> Round {
    let started = Instant::now();
    let snapshot = source.lock().await.snapshot().await;
    let round = Round {
        scrape: Scrape {
            snapshot: Arc::new(snapshot),
            duration_seconds: started.elapsed().as_secs_f64(),
        },
        finished: Instant::now(),
    };
    let mut flight = lock(&flight);
    let failing = source_errors(&round.scrape.snapshot);
    log_source_changes(&flight.failing, &failing);
    flight.failing = failing;
    flight.latest = keep.then(|| round.clone());
    flight.running = None;
    round
}

/// The error of every source that failed in `snapshot`. The alert on
/// `greenplum_exporter_collector_success` sends operators to the log for the reason.
fn source_errors(snapshot: &Snapshot) -> BTreeMap<Source, String> {
    let results = [
        (Source::Segments, snapshot.segments.as_ref().err()),
        (Source::Replication, snapshot.replication.as_ref().err()),
        (Source::Standby, snapshot.standby.as_ref().err()),
        (Source::History, snapshot.history.as_ref().err()),
        (Source::Recovery, snapshot.recovery.as_ref().err()),
    ];
    results
        .into_iter()
        .filter_map(|(source, error)| error.map(|e| (source, e.message.clone())))
        .collect()
}

fn log_source_changes(before: &BTreeMap<Source, String>, now: &BTreeMap<Source, String>) {
    for (source, error) in now {
        if before.get(source) != Some(error) {
            tracing::warn!(collector = %source, %error, "catalog source failed");
        }
    }
    for source in before.keys().filter(|s| !now.contains_key(s)) {
        tracing::info!(collector = %source, "catalog source recovered");
    }
}

/// The flight state stays consistent even if a holder panicked (every write is a single
/// assignment), so a poisoned lock is simply taken over.
fn lock(flight: &Mutex<Flight>) -> std::sync::MutexGuard<'_, Flight> {
    flight
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use greenplum_catalog::test_support::recorded as fx;

    /// A failing source's SQL error is kept for the log (the fault matrix found it was
    /// reported only as `collector_success 0`, with nothing to read in the log).
    #[test]
    fn failing_sources_keep_their_errors() {
        let why = "canceling statement due to statement timeout";
        let snapshot = Snapshot::without_coordinator(Utc::now(), vec![], why);
        let errors = source_errors(&snapshot);
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            [
                Source::Segments,
                Source::Replication,
                Source::Standby,
                Source::History,
                Source::Recovery
            ]
        );
        assert!(errors.values().all(|e| e == why));
        assert!(source_errors(&fx::healthy()).is_empty());
    }

    /// Counts rounds; each round waits for a permit of `gate`, so tests decide when it ends,
    /// and answers whatever `snapshot` holds at that moment.
    pub(crate) struct Scripted {
        pub rounds: Arc<AtomicUsize>,
        pub gate: Arc<tokio::sync::Semaphore>,
        pub snapshot: Arc<Mutex<Snapshot>>,
    }

    impl Scripted {
        /// A source whose rounds finish at once.
        pub(crate) fn open(snapshot: Snapshot) -> (Self, Arc<AtomicUsize>) {
            let (source, rounds, gate) = gated(snapshot);
            gate.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
            (source, rounds)
        }
    }

    impl SnapshotSource for Scripted {
        fn snapshot(&mut self) -> Pin<Box<dyn Future<Output = Snapshot> + Send + '_>> {
            Box::pin(async move {
                self.rounds.fetch_add(1, Ordering::SeqCst);
                if let Ok(permit) = self.gate.acquire().await {
                    permit.forget();
                }
                self.snapshot.lock().unwrap().clone()
            })
        }
    }

    pub(crate) fn gated(
        snapshot: Snapshot,
    ) -> (Scripted, Arc<AtomicUsize>, Arc<tokio::sync::Semaphore>) {
        let rounds = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        (
            Scripted {
                rounds: rounds.clone(),
                gate: gate.clone(),
                snapshot: Arc::new(Mutex::new(snapshot)),
            },
            rounds,
            gate,
        )
    }

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn concurrent_scrapes_share_one_round() {
        let (source, rounds, gate) = gated(fx::healthy());
        let scraper = Arc::new(Scraper::new(source, Duration::ZERO));
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let scraper = scraper.clone();
                tokio::spawn(async move { scraper.scrape(LONG).await })
            })
            .collect();
        // Let every scrape join before the round may finish.
        while rounds.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        for scrape in waiting {
            let scrape = scrape.await.unwrap();
            assert!(scrape.snapshot.coordinator_up());
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
        // Without a TTL the next scrape reads the cluster again.
        gate.add_permits(1);
        scraper.scrape(LONG).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn cache_ttl_serves_the_recent_round() {
        let (source, rounds) = Scripted::open(fx::healthy());
        let scraper = Scraper::new(source, Duration::from_secs(3600));
        for _ in 0..3 {
            assert!(scraper.scrape(LONG).await.snapshot.coordinator_up());
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_hung_round_still_answers_within_the_budget() {
        let (source, rounds, gate) = gated(fx::healthy());
        let scraper = Scraper::new(source, Duration::ZERO);
        let scrape = scraper.scrape(Duration::from_millis(50)).await;
        assert!(!scrape.snapshot.coordinator_up());
        assert!(scrape.snapshot.segments.is_err());
        // The round was not cancelled: the next scrape joins it instead of starting another.
        gate.add_permits(1);
        let next = scraper.scrape(LONG).await;
        assert!(next.snapshot.coordinator_up());
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
    }
}
