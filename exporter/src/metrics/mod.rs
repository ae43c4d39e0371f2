//! One scrape's [`Snapshot`] as Prometheus metric families.
//!
//! Every family the exporter can expose is a [`Family`] constant in one of the group modules;
//! [`ALL`] lists them for `list-metrics`, and the encoder writes samples only through those
//! same constants, so the list cannot drift from what is exposed. Each scrape builds its
//! families from that scrape's snapshot alone: a series exists only if this scrape saw it.

mod cluster;
mod derived;
mod encoder;
mod exporter;
pub use exporter::{REVISION, VERSION};
mod history;
mod mirrors;
mod segments;
mod standby;

use std::sync::Arc;

use greenplum_catalog::Snapshot;

use encoder::{Encoder, Label};

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
    /// The name OpenMetrics puts in `# HELP` and `# TYPE`: a counter family is named
    /// without `_total` and an info family without `_info`, the suffixes of their samples.
    fn descriptor_name(&self) -> &'static str {
        let suffix = match self.kind {
            Kind::Gauge => "",
            Kind::Counter => "_total",
            Kind::Info => "_info",
        };
        self.name.strip_suffix(suffix).unwrap_or(self.name)
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

/// What one scrape hands to the encoder.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub snapshot: Arc<Snapshot>,
    /// How long the round that produced the snapshot took.
    pub duration_seconds: f64,
}

/// Writes this scrape's families, group by group.
fn collect(scrape: Option<&Scrape>, out: &mut Encoder) {
    if let Some(scrape) = scrape {
        let snapshot = &scrape.snapshot;
        // Derived once: at 2,048 segments it is a tenth of a scrape's CPU.
        let health = snapshot.health();
        cluster::collect(snapshot, health.as_ref(), out);
        standby::collect(snapshot, out);
        segments::collect(snapshot, out);
        mirrors::collect(snapshot, out);
        derived::collect(snapshot, health.as_ref(), out);
        history::collect(snapshot, out);
    }
    exporter::collect(scrape, out);
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
    let instances = scrape
        .as_ref()
        .and_then(|s| s.snapshot.segments.as_ref().ok())
        .map_or(0, Vec::len);
    let mut out = Encoder::new(format, instances);
    collect(scrape.as_ref(), &mut out);
    out.finish()
}

#[cfg(test)]
pub(crate) mod tests;
