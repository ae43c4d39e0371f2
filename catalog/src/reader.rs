//! The one entry point both services use: [`ClusterReader`] turns a round of catalog reads
//! into a [`Snapshot`].
//!
//! Each round probes every configured endpoint (a standby is only known alive by its
//! rejection), keeps one persistent, read-only connection to the acting coordinator, follows
//! a promoted standby without a restart, and reads each source on its own so a failing query
//! costs only that source.
//!
//! This file owns the session, not the SQL: every statement comes from [`crate::queries`],
//! every source is read by the one generic `ClusterReader::read` (bounded by
//! `statement_timeout` plus a grace), and what a timeout or a closed connection does to the
//! session is decided in one place, `ClusterReader::query`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::join_all;
use tokio_postgres::Client;

use crate::endpoint::{probe, ConnectSettings, Probe};
use crate::error::CatalogError;
use crate::queries::history::HistorySource;
use crate::queries::recovery::RecoverySource;
use crate::queries::replication::{attach_current, CurrentWalSource, ReplicationSource};
use crate::queries::segments::SegmentsSource;
use crate::queries::standby::StandbySource;
use crate::queries::{run, session as sql, RawRow, SourceQuery, Unanswered};
use crate::snapshot::{Dialect, EndpointObservation, EndpointState, Snapshot, Version};
use crate::source::{Source, SourceError, Sourced};
use crate::version::parse_version;

pub use crate::config::{
    ReaderConfig, DEFAULT_APPLICATION_NAME, DEFAULT_CONNECT_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT,
};
pub use crate::endpoint::Endpoint;
pub use crate::tls::TlsConfig;

/// The adopted connection to the acting coordinator.
struct Session {
    index: usize,
    client: Client,
    /// Detected once per connection; retried each round while it fails.
    version: Result<Version, String>,
}

/// Consecutive failed probes of one endpoint and when to try it again.
#[derive(Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
    last: Option<EndpointObservation>,
}

/// Reads a cluster, one [`Snapshot`] per call. Not `Clone`: it owns one connection.
pub struct ClusterReader {
    config: ReaderConfig,
    settings: Result<ConnectSettings, String>,
    session: Option<Session>,
    backoff: Vec<Backoff>,
    backoff_base: Duration,
    backoff_max: Duration,
}

impl fmt::Debug for ClusterReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterReader")
            .field("config", &self.config)
            .field("acting_coordinator", &self.acting_coordinator())
            .finish()
    }
}

/// Upper bound on the client-side wait for a query beyond the server's statement_timeout.
const CLIENT_GRACE: Duration = Duration::from_secs(2);

impl ClusterReader {
    /// Never fails: a bad TLS configuration is reported in every snapshot (and by
    /// [`ClusterReader::request_fts_probe`]) so it is seen where the data would be.
    pub fn new(mut config: ReaderConfig) -> Self {
        // Zero would mean "no bound" to PostgreSQL and "fail at once" to a client timer;
        // neither is what anyone wants from a monitor.
        if config.connect_timeout.is_zero() {
            tracing::warn!("connect_timeout of zero replaced by the default");
            config.connect_timeout = DEFAULT_CONNECT_TIMEOUT;
        }
        if config.statement_timeout.is_zero() {
            tracing::warn!("statement_timeout of zero replaced by the default");
            config.statement_timeout = DEFAULT_STATEMENT_TIMEOUT;
        }
        let settings = config.connect_settings().map_err(|e| e.to_string());
        if let Err(error) = &settings {
            tracing::error!(%error, "catalog reader cannot connect with this configuration");
        }
        let backoff = config
            .endpoints
            .iter()
            .map(|_| Backoff::default())
            .collect();
        ClusterReader {
            config,
            settings,
            session: None,
            backoff,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5),
        }
    }

    /// After `k` consecutive failed probes (down or rejecting), an endpoint is not probed
    /// again before `base * 2^(k-1)` (at most `max`) has passed; meanwhile its last
    /// observation is repeated with a note. `Duration::ZERO` disables the backoff.
    /// Defaults: 1 s doubling to 5 s, shorter than any sensible scrape interval.
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// The version of the acting coordinator, detected after each (re)connect.
    pub fn version(&self) -> Option<&Version> {
        self.session.as_ref()?.version.as_ref().ok()
    }

    /// The endpoint the reader holds a connection to.
    pub fn acting_coordinator(&self) -> Option<&Endpoint> {
        self.config.endpoints.get(self.session.as_ref()?.index)
    }

    /// The configuration in use (zero timeouts already replaced by the defaults).
    pub fn config(&self) -> &ReaderConfig {
        &self.config
    }

    /// One round. Never fails: what could not be read is an `Err` inside the snapshot.
    pub async fn snapshot(&mut self) -> Snapshot {
        let taken_at = Utc::now();
        let started = Instant::now();
        let endpoints = match self.probe_round().await {
            Ok(observations) => observations,
            Err(why) => return Snapshot::without_coordinator(taken_at, Vec::new(), &why),
        };
        let probe_seconds = started.elapsed().as_secs_f64();
        let acting = self.acting_coordinator().map(ToString::to_string);
        let Some(acting) = acting else {
            let why = format!(
                "no endpoint answers as coordinator ({})",
                summarize(&endpoints)
            );
            let mut snapshot = Snapshot::without_coordinator(taken_at, endpoints, &why);
            snapshot
                .durations_seconds
                .insert(Source::Endpoints, probe_seconds);
            return snapshot;
        };
        self.ensure_version().await;
        let mut snapshot = Snapshot::without_coordinator(taken_at, endpoints, "");
        snapshot.acting_coordinator = Some(acting);
        snapshot
            .durations_seconds
            .insert(Source::Endpoints, probe_seconds);
        match self.session.as_ref().map(|s| s.version.clone()) {
            Some(Ok(version)) => {
                snapshot.version = Some(version.clone());
                self.read_sources(version.dialect, &mut snapshot).await;
            }
            Some(Err(why)) => fail_catalog_sources(&mut snapshot, &why),
            None => fail_catalog_sources(&mut snapshot, "the coordinator connection was lost"),
        }
        snapshot
    }

    /// `SELECT gp_request_fts_probe_scan()` on the acting coordinator: asks FTS to probe now
    /// and waits for the probe. This is the reader's only read-write transaction (the
    /// function changes nothing itself, but an implementation may need a writable
    /// transaction, as the lab's does).
    pub async fn request_fts_probe(&mut self) -> Result<bool, CatalogError> {
        if self.session.is_none() {
            let observations = self.probe_round().await.map_err(CatalogError::Tls)?;
            if self.session.is_none() {
                return Err(CatalogError::NoCoordinator(summarize(&observations)));
            }
        }
        let Some(session) = &self.session else {
            return Err(CatalogError::NoCoordinator("connection lost".into()));
        };
        let endpoint = self.config.endpoints[session.index].to_string();
        let limit = sql::FTS_PROBE_TIMEOUT + CLIENT_GRACE;
        match run(&session.client, sql::FTS_PROBE, limit).await {
            Ok(rows) => Ok(sql::fts_requested(&rows)),
            Err(Unanswered::Failed(source)) => {
                if !session.client.is_closed() {
                    let _ = session.client.simple_query(sql::ROLLBACK).await;
                }
                self.drop_session_if_closed();
                Err(CatalogError::query(
                    endpoint,
                    "gp_request_fts_probe_scan()",
                    source,
                ))
            }
            Err(Unanswered::TimedOut) => {
                // The session is mid-statement: it cannot be reused.
                self.session = None;
                Err(CatalogError::NoCoordinator(format!(
                    "{endpoint}: gp_request_fts_probe_scan() did not answer within {}s",
                    sql::FTS_PROBE_TIMEOUT.as_secs()
                )))
            }
        }
    }

    /// Probes every endpoint and adopts (or keeps) the coordinator connection.
    async fn probe_round(&mut self) -> Result<Vec<EndpointObservation>, String> {
        let settings = self.settings.clone()?;
        if self.config.endpoints.is_empty() {
            return Err(CatalogError::NoEndpoints.to_string());
        }
        let mut observations: Vec<Option<EndpointObservation>> =
            vec![None; self.config.endpoints.len()];
        if let Some(kept) = self.check_session().await {
            observations[kept.0] = Some(kept.1);
        }
        let now = Instant::now();
        let mut to_probe = Vec::new();
        for (index, endpoint) in self.config.endpoints.iter().enumerate() {
            if observations[index].is_some() {
                continue;
            }
            match self.backing_off(index, now) {
                Some(skipped) => observations[index] = Some(skipped),
                None => to_probe.push((index, endpoint)),
            }
        }
        let settings = &settings;
        let probes: Vec<(usize, Probe)> = join_all(
            to_probe
                .into_iter()
                .map(|(index, endpoint)| async move { (index, probe(endpoint, settings).await) }),
        )
        .await;
        for (index, probe) in probes {
            self.record(index, &probe.observation);
            observations[index] = Some(probe.observation.clone());
            if let Some(client) = probe.client {
                self.consider(index, client).await;
            }
        }
        let observations: Vec<EndpointObservation> = observations.into_iter().flatten().collect();
        let coordinators = observations
            .iter()
            .filter(|o| o.state == EndpointState::Coordinator)
            .count();
        if coordinators > 1 {
            tracing::warn!(
                endpoints = %summarize(&observations),
                "more than one endpoint answers as a writable coordinator"
            );
        }
        Ok(observations)
    }

    /// Re-checks the kept connection; `Some((index, observation))` while it is still the
    /// coordinator, otherwise the session is dropped and the endpoint probed afresh.
    async fn check_session(&mut self) -> Option<(usize, EndpointObservation)> {
        let session = self.session.as_ref()?;
        let index = session.index;
        let check = run(
            &session.client,
            sql::IN_RECOVERY,
            self.config.connect_timeout,
        )
        .await;
        let in_recovery = check.ok().and_then(|rows| sql::in_recovery(&rows));
        if in_recovery == Some(false) {
            let observation = EndpointObservation {
                endpoint: self.config.endpoints[index].to_string(),
                state: EndpointState::Coordinator,
                detail: None,
                last_replayed: None,
            };
            self.record(index, &observation);
            return Some((index, observation));
        }
        tracing::info!(
            endpoint = %self.config.endpoints[index],
            "lost the coordinator connection; probing again"
        );
        self.session = None;
        None
    }

    /// Adopts a coordinator connection when none is held; a second coordinator's connection
    /// is dropped (the first in preference order stays the one we read). The session settings
    /// came with the connection (startup options), so adopting sends nothing.
    async fn consider(&mut self, index: usize, client: Client) {
        if self.session.is_some() {
            return;
        }
        let endpoint = self.config.endpoints[index].to_string();
        tracing::info!(%endpoint, "connected to the acting coordinator");
        self.session = Some(Session {
            index,
            client,
            version: Err("version not detected yet".into()),
        });
        self.ensure_version().await;
    }

    /// Detects the coordinator's version when the session has none yet (a failed detection
    /// is retried every round, since the dialect of every source follows from it).
    async fn ensure_version(&mut self) {
        let Some(session) = &mut self.session else {
            return;
        };
        if session.version.is_ok() {
            return;
        }
        let endpoint = self.config.endpoints[session.index].to_string();
        let timeout = self.config.statement_timeout + CLIENT_GRACE;
        session.version = match run(&session.client, sql::VERSION, timeout).await {
            Ok(rows) => match sql::version_text(&rows) {
                Some(text) => parse_version(text).map_err(|source| {
                    CatalogError::Version {
                        endpoint: endpoint.clone(),
                        source,
                    }
                    .to_string()
                }),
                None => Err(format!("{endpoint}: version() returned no row")),
            },
            Err(Unanswered::Failed(source)) => {
                Err(CatalogError::query(endpoint.clone(), "version()", source).to_string())
            }
            Err(Unanswered::TimedOut) => {
                Err(format!("{endpoint}: version() did not answer in time"))
            }
        };
        match &session.version {
            Ok(version) => tracing::info!(
                %endpoint,
                product = version.product.as_str(),
                version = %version.product_version,
                pg_version = %version.pg_version,
                "detected the coordinator's version"
            ),
            Err(error) => tracing::warn!(%endpoint, %error, "version detection failed"),
        }
    }

    fn backing_off(&self, index: usize, now: Instant) -> Option<EndpointObservation> {
        let state = &self.backoff[index];
        let retry_at = state.retry_at?;
        if now >= retry_at {
            return None;
        }
        let mut observation = state.last.clone()?;
        let wait = retry_at.duration_since(now).as_secs_f64();
        let note = format!(
            "not probed again yet: backing off {wait:.1}s after {} failed probes",
            state.failures
        );
        observation.detail = Some(match observation.detail {
            Some(detail) => format!("{detail} ({note})"),
            None => note,
        });
        Some(observation)
    }

    fn record(&mut self, index: usize, observation: &EndpointObservation) {
        let state = &mut self.backoff[index];
        let failed = matches!(
            observation.state,
            EndpointState::Down | EndpointState::Rejecting
        );
        if !failed || self.backoff_base.is_zero() {
            *state = Backoff::default();
            return;
        }
        state.failures = state.failures.saturating_add(1);
        let factor = 2u32.saturating_pow(state.failures.saturating_sub(1).min(16));
        let delay = self
            .backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max);
        state.retry_at = Some(Instant::now() + delay);
        state.last = Some(observation.clone());
    }

    /// Reads the sources one after another, each timed and each failing alone.
    async fn read_sources(&mut self, dialect: Dialect, snapshot: &mut Snapshot) {
        let durations = &mut snapshot.durations_seconds;
        snapshot.segments = measured(
            durations,
            Source::Segments,
            self.read::<SegmentsSource>(dialect),
        )
        .await;
        snapshot.replication = measured(
            durations,
            Source::Replication,
            self.read_replication(dialect),
        )
        .await;
        snapshot.standby = measured(
            durations,
            Source::Standby,
            self.read::<StandbySource>(dialect),
        )
        .await;
        snapshot.history = measured(
            durations,
            Source::History,
            self.read::<HistorySource>(dialect),
        )
        .await;
        snapshot.recovery = measured(
            durations,
            Source::Recovery,
            self.read::<RecoverySource>(dialect),
        )
        .await;
    }

    /// Reads one source: its statement for `dialect` (none: the mapping of no rows), bounded
    /// by `ClusterReader::query`, then its mapping, whose errors name the endpoint.
    async fn read<S: SourceQuery>(&mut self, dialect: Dialect) -> Result<S::Out, CatalogError> {
        let rows = match S::sql(dialect) {
            Some(statement) => self.query(statement, S::NAME).await?,
            None => Vec::new(),
        };
        S::map(dialect, &rows).map_err(|source| CatalogError::Row {
            endpoint: self.session_endpoint(),
            what: S::NAME,
            source,
        })
    }

    /// Mirror replication plus, apart, the primaries' positions: losing those costs only the
    /// send lag.
    async fn read_replication(
        &mut self,
        dialect: Dialect,
    ) -> Result<Vec<crate::MirrorReplication>, CatalogError> {
        let mut mirrors = self.read::<ReplicationSource>(dialect).await?;
        if CurrentWalSource::sql(dialect).is_some() {
            match self.read::<CurrentWalSource>(dialect).await {
                Ok(current) => attach_current(&mut mirrors, &current),
                Err(error) => tracing::warn!(%error, "mirror send lag unknown this round"),
            }
        }
        Ok(mirrors)
    }

    fn session_endpoint(&self) -> String {
        self.acting_coordinator()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Runs one statement on the session. A closed connection or a client-side timeout drops
    /// the session, so the next round reconnects.
    async fn query(
        &mut self,
        statement: &str,
        what: &'static str,
    ) -> Result<Vec<RawRow>, CatalogError> {
        let endpoint = self.session_endpoint();
        let Some(session) = &self.session else {
            return Err(CatalogError::NoCoordinator(format!(
                "the connection to {endpoint} was lost during this round"
            )));
        };
        let limit = self.config.statement_timeout + CLIENT_GRACE;
        match run(&session.client, statement, limit).await {
            Ok(rows) => Ok(rows),
            Err(Unanswered::Failed(source)) => {
                self.drop_session_if_closed();
                Err(CatalogError::query(endpoint, what, source))
            }
            Err(Unanswered::TimedOut) => {
                self.session = None;
                Err(CatalogError::NoCoordinator(format!(
                    "{endpoint}: {what} did not answer within {:.1}s; reconnecting",
                    limit.as_secs_f64()
                )))
            }
        }
    }

    fn drop_session_if_closed(&mut self) {
        if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            tracing::info!(endpoint = %self.session_endpoint(), "coordinator connection closed");
            self.session = None;
        }
    }
}

/// Awaits one source's read, records how long it took and labels a failure with the source.
async fn measured<T>(
    durations: &mut BTreeMap<Source, f64>,
    source: Source,
    read: impl std::future::Future<Output = Result<T, CatalogError>>,
) -> Sourced<T> {
    let started = Instant::now();
    let value = read.await;
    durations.insert(source, started.elapsed().as_secs_f64());
    value.map_err(|error| SourceError::new(source, error.to_string()))
}

fn fail_catalog_sources(snapshot: &mut Snapshot, why: &str) {
    let failed = |source| SourceError {
        source,
        message: why.to_string(),
    };
    snapshot.segments = Err(failed(Source::Segments));
    snapshot.replication = Err(failed(Source::Replication));
    snapshot.standby = Err(failed(Source::Standby));
    snapshot.history = Err(failed(Source::History));
    snapshot.recovery = Err(failed(Source::Recovery));
}

fn summarize(observations: &[EndpointObservation]) -> String {
    observations
        .iter()
        .map(|o| match &o.detail {
            Some(detail) => format!("{} {}: {detail}", o.endpoint, o.state.as_str()),
            None => format!("{} {}", o.endpoint, o.state.as_str()),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_endpoint_answers_gives_a_full_snapshot_of_failures() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = ReaderConfig::new(
            vec![Endpoint::new("127.0.0.1", port)],
            "gpadmin",
            "postgres",
        );
        let mut reader = ClusterReader::new(config);
        let first = reader.snapshot().await;
        assert!(!first.coordinator_up());
        assert_eq!(first.endpoints.len(), 1);
        assert_eq!(first.endpoints[0].state, EndpointState::Down);
        let error = first.segments.as_ref().unwrap_err();
        assert!(
            error.message.contains("no endpoint answers as coordinator"),
            "{error}"
        );
        assert!(first.durations_seconds.contains_key(&Source::Endpoints));
        assert!(reader.version().is_none());
        // The second round falls inside the backoff and says so.
        let second = reader.snapshot().await;
        let detail = second.endpoints[0].detail.clone().unwrap();
        assert!(detail.contains("backing off"), "{detail}");
        assert!(matches!(
            reader.request_fts_probe().await,
            Err(CatalogError::NoCoordinator(_))
        ));
    }

    #[tokio::test]
    async fn bad_tls_configuration_is_reported_in_every_snapshot() {
        let mut config = ReaderConfig::new(vec![Endpoint::new("127.0.0.1", 1)], "u", "d");
        config.tls = Some(TlsConfig::with_ca("/nonexistent/ca.pem"));
        let mut reader = ClusterReader::new(config);
        let snapshot = reader.snapshot().await;
        assert!(snapshot
            .segments
            .unwrap_err()
            .message
            .contains("/nonexistent/ca.pem"));
        assert!(reader.request_fts_probe().await.is_err());
    }

    #[test]
    fn zero_timeouts_become_the_defaults() {
        let mut config = ReaderConfig::new(vec![Endpoint::new("cdw", 5432)], "u", "d");
        config.connect_timeout = Duration::ZERO;
        config.statement_timeout = Duration::ZERO;
        let reader = ClusterReader::new(config);
        assert_eq!(reader.config().connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(reader.config().statement_timeout, DEFAULT_STATEMENT_TIMEOUT);
    }

    #[tokio::test]
    async fn no_endpoints_configured() {
        let mut reader = ClusterReader::new(ReaderConfig::new(Vec::new(), "u", "d"));
        let snapshot = reader.snapshot().await;
        assert!(snapshot
            .history
            .unwrap_err()
            .message
            .contains("no coordinator endpoint"));
    }
}
