//! The remediator's own metrics. Names are a public interface (alert rules use them), so they
//! are defined once here and `list-metrics` prints them from the same registry.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::actions::ActionKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionResultLabels {
    pub cluster: String,
    pub action: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub cluster: String,
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub revision: String,
}

pub struct Metrics {
    registry: Registry,
    pub webhook_requests: Family<CodeLabels, Counter>,
    pub events: Family<DecisionLabels, Counter>,
    pub actions: Family<ActionResultLabels, Counter>,
    pub action_duration: Family<ActionLabels, Histogram>,
    pub pending_approvals: Family<ClusterLabels, Gauge>,
    pub breaker_open: Family<ClusterLabels, Gauge>,
    pub paused: Gauge,
    pub last_verified_success: Family<ActionLabels, Gauge<f64, AtomicU64>>,
    pub journal_errors: Counter,
    pub build_info: Family<BuildLabels, Gauge>,
    /// 1 when decisions need operators' own tokens (`--auth.operators-file`); 0 when the
    /// webhook's credentials may approve and the client names itself.
    pub operator_auth_enabled: Gauge,
}

fn duration_histogram() -> Histogram {
    // 1 s .. ~4.5 h: an incremental recovery takes seconds, a full one hours.
    Histogram::new(exponential_buckets(1.0, 2.5, 10))
}

impl Metrics {
    pub fn new(revision: &str) -> Self {
        let mut registry = Registry::default();
        let webhook_requests = Family::<CodeLabels, Counter>::default();
        let events = Family::<DecisionLabels, Counter>::default();
        let actions = Family::<ActionResultLabels, Counter>::default();
        let action_duration = Family::<ActionLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let pending_approvals = Family::<ClusterLabels, Gauge>::default();
        let breaker_open = Family::<ClusterLabels, Gauge>::default();
        let paused = Gauge::default();
        let last_verified_success = Family::<ActionLabels, Gauge<f64, AtomicU64>>::default();
        let journal_errors = Counter::default();
        let build_info = Family::<BuildLabels, Gauge>::default();
        let operator_auth_enabled = Gauge::default();

        // The client library appends `_total` to counters.
        registry.register(
            "greenplum_remediator_webhook_requests",
            "Webhook requests by HTTP status code",
            webhook_requests.clone(),
        );
        registry.register(
            "greenplum_remediator_events",
            "Alert events by planning decision",
            events.clone(),
        );
        registry.register(
            "greenplum_remediator_actions",
            "Planned actions by cluster, action and result",
            actions.clone(),
        );
        registry.register(
            "greenplum_remediator_action_duration_seconds",
            "Time from the start of a command to the end of its verification",
            action_duration.clone(),
        );
        registry.register(
            "greenplum_remediator_pending_approvals",
            "Actions waiting for a person's approval",
            pending_approvals.clone(),
        );
        registry.register(
            "greenplum_remediator_breaker_open",
            "1 while the cluster's circuit breaker stops automatic actions",
            breaker_open.clone(),
        );
        registry.register(
            "greenplum_remediator_paused",
            "1 while the kill switch is on",
            paused.clone(),
        );
        registry.register(
            "greenplum_remediator_last_verified_success_timestamp_seconds",
            "When an action last passed its verification",
            last_verified_success.clone(),
        );
        registry.register(
            "greenplum_remediator_journal_errors",
            "Journal reads or writes that failed",
            journal_errors.clone(),
        );
        registry.register(
            "greenplum_remediator_build_info",
            "Version and revision of this build (always 1)",
            build_info.clone(),
        );
        registry.register(
            "greenplum_remediator_operator_auth_enabled",
            "1 when approvals and controls need an operator's own token and record its name; \
             0 when the webhook's credentials may approve and who is claimed by the client",
            operator_auth_enabled.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                revision: revision.to_string(),
            })
            .set(1);
        Metrics {
            registry,
            webhook_requests,
            events,
            actions,
            action_duration,
            pending_approvals,
            breaker_open,
            paused,
            last_verified_success,
            journal_errors,
            build_info,
            operator_auth_enabled,
        }
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Every exposed family name, as a query would spell it (counters with `_total`),
    /// read from the encoded registry so the list cannot drift from what is served.
    pub fn family_names(&self) -> Result<Vec<String>, std::fmt::Error> {
        let text = self.encode()?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
                let name = words.next()?;
                Some(match words.next()? {
                    "counter" => format!("{name}_total"),
                    _ => name.to_string(),
                })
            })
            .collect())
    }

    pub fn count_webhook(&self, code: u16) {
        self.webhook_requests
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .inc();
    }

    pub fn count_event(&self, decision: &str) {
        self.events
            .get_or_create(&DecisionLabels {
                decision: decision.to_string(),
            })
            .inc();
    }

    pub fn count_action(&self, cluster: &str, action: ActionKind, result: &str) {
        self.actions
            .get_or_create(&ActionResultLabels {
                cluster: cluster.to_string(),
                action: action.as_str().to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn action_labels(cluster: &str, action: ActionKind) -> ActionLabels {
        ActionLabels {
            cluster: cluster.to_string(),
            action: action.as_str().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_exactly_the_documented_families() {
        let metrics = Metrics::new("abc");
        let names = metrics.family_names().expect("names");
        assert_eq!(
            names,
            [
                "greenplum_remediator_webhook_requests_total",
                "greenplum_remediator_events_total",
                "greenplum_remediator_actions_total",
                "greenplum_remediator_action_duration_seconds",
                "greenplum_remediator_pending_approvals",
                "greenplum_remediator_breaker_open",
                "greenplum_remediator_paused",
                "greenplum_remediator_last_verified_success_timestamp_seconds",
                "greenplum_remediator_journal_errors_total",
                "greenplum_remediator_build_info",
                "greenplum_remediator_operator_auth_enabled",
            ]
        );
        let text = metrics.encode().expect("encode");
        assert!(
            text.contains("greenplum_remediator_build_info{version=\"0.1.0\",revision=\"abc\"} 1")
        );
    }
}
