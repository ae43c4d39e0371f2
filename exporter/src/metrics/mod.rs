//! One scrape's [`Snapshot`] as Prometheus metric families.
//!
//! Every family the exporter can expose is a [`Family`] constant in one of the group modules;
//! [`ALL`] lists them for `list-metrics`, and the encoder writes samples only through those
//! same constants, so the list cannot drift from what is exposed. Each scrape builds its
//! families from that scrape's snapshot alone: a series exists only if this scrape saw it.

mod cluster;
mod derived;
mod exporter;
pub use exporter::{REVISION, VERSION};
mod history;
mod mirrors;
mod segments;
mod standby;

use std::sync::Arc;

use greenplum_catalog::Snapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// What a family is in the OpenMetrics sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    /// Always 1; the labels carry the information.
    Info,
}

/// One metric family, named exactly as its samples are exposed.
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    /// The sample name, e.g. `greenplum_fts_events_total`, `greenplum_version_info`.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

impl Family {
    /// The name OpenMetrics puts in `# TYPE`: prometheus-client appends `_total` to counter
    /// samples and `_info` to info samples, so the descriptor carries the name without them.
    fn descriptor_name(&self) -> &'static str {
        let suffix = match self.kind {
            Kind::Gauge => "",
            Kind::Counter => "_total",
            Kind::Info => "_info",
        };
        self.name.strip_suffix(suffix).unwrap_or(self.name)
    }

    fn metric_type(&self) -> MetricType {
        match self.kind {
            Kind::Gauge => MetricType::Gauge,
            Kind::Counter => MetricType::Counter,
            Kind::Info => MetricType::Info,
        }
    }
}

/// Every family the exporter can expose, in group order.
pub static ALL: &[&[&Family]] = &[
    cluster::FAMILIES,
    standby::FAMILIES,
    segments::FAMILIES,
    mirrors::FAMILIES,
    derived::FAMILIES,
    history::FAMILIES,
    exporter::FAMILIES,
];

/// Every exposed family name, sorted (what `list-metrics` prints).
pub fn family_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = ALL.iter().flat_map(|g| g.iter().map(|f| f.name)).collect();
    names.sort_unstable();
    names
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Int(i64),
    Unsigned(u64),
    Float(f64),
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Int(i64::from(b))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Unsigned(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Unsigned(u64::from(v))
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Unsigned(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

/// The samples of one family for this scrape.
#[derive(Debug)]
struct Samples {
    family: &'static Family,
    samples: Vec<(Labels, Value)>,
}

/// The families of one scrape, filled by the group modules.
#[derive(Debug, Default)]
struct Out {
    families: Vec<Samples>,
}

impl Out {
    fn push(&mut self, family: &'static Family, labels: Labels, value: impl Into<Value>) {
        let value = value.into();
        match self
            .families
            .iter_mut()
            .find(|s| std::ptr::eq(s.family, family))
        {
            Some(existing) => existing.samples.push((labels, value)),
            None => self.families.push(Samples {
                family,
                samples: vec![(labels, value)],
            }),
        }
    }

    /// A state set (the kube-state-metrics pattern): one series per possible state, 1 for
    /// the current one, so a state change never creates or removes a series.
    fn state_set<S: Copy + PartialEq>(
        &mut self,
        family: &'static Family,
        labels: &Labels,
        label: &'static str,
        states: &[S],
        current: S,
        name: impl Fn(S) -> &'static str,
    ) {
        for &state in states {
            let mut l = labels.clone();
            l.push((label, name(state).to_string()));
            self.push(family, l, state == current);
        }
    }

    fn info(&mut self, family: &'static Family, labels: Labels) {
        debug_assert_eq!(family.kind, Kind::Info);
        self.push(family, labels, 1u64);
    }
}

/// What one scrape hands to the encoder.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub snapshot: Arc<Snapshot>,
    /// How long the round that produced the snapshot took.
    pub duration_seconds: f64,
}

/// Builds this scrape's families; the collector and the tests both start here.
fn collect(scrape: Option<&Scrape>) -> Out {
    let mut out = Out::default();
    if let Some(scrape) = scrape {
        let snapshot = &scrape.snapshot;
        cluster::collect(snapshot, &mut out);
        standby::collect(snapshot, &mut out);
        segments::collect(snapshot, &mut out);
        mirrors::collect(snapshot, &mut out);
        derived::collect(snapshot, &mut out);
        history::collect(snapshot, &mut out);
    }
    exporter::collect(scrape, &mut out);
    out
}

/// A prometheus-client collector that encodes one scrape and nothing else.
#[derive(Debug)]
struct ScrapeCollector(Option<Scrape>);

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for samples in collect(self.0.as_ref()).families {
            let family = samples.family;
            let mut metric = encoder.encode_descriptor(
                family.descriptor_name(),
                family.help,
                None,
                family.metric_type(),
            )?;
            for (labels, value) in &samples.samples {
                if family.kind == Kind::Info {
                    metric.encode_info(labels)?;
                } else if labels.is_empty() {
                    // Without labels, skip the family layer: it would print `name{} 1`.
                    encode_value(&mut metric, family.kind, *value)?;
                } else {
                    encode_value(&mut metric.encode_family(labels)?, family.kind, *value)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(
    metric: &mut MetricEncoder,
    kind: Kind,
    value: Value,
) -> Result<(), std::fmt::Error> {
    let no_exemplar = None::<&Exemplar<NoLabelSet, f64>>;
    match (kind, value) {
        (Kind::Counter, Value::Int(v)) => metric.encode_counter(&(v.max(0) as u64), no_exemplar),
        (Kind::Counter, Value::Unsigned(v)) => metric.encode_counter(&v, no_exemplar),
        (Kind::Counter, Value::Float(v)) => metric.encode_counter(&v, no_exemplar),
        (_, Value::Int(v)) => metric.encode_gauge(&v),
        (_, Value::Unsigned(v)) => metric.encode_gauge(&v),
        (_, Value::Float(v)) => metric.encode_gauge(&v),
    }
}

/// The exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Text,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Encodes one scrape (or, with `None`, only the exporter's own build info: the
/// multi-cluster `/metrics`).
pub fn encode(scrape: Option<Scrape>, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ScrapeCollector(scrape)));
    let mut body = String::new();
    // Writing into a String cannot fail, and our collector only fails on writer errors.
    if let Err(err) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        tracing::error!(%err, "encoding metrics failed");
    }
    match format {
        Format::OpenMetrics => body,
        Format::Text => crate::exposition::openmetrics_to_text(&body),
    }
}

#[cfg(test)]
pub(crate) mod tests;
