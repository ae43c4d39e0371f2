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
mod replication;
mod segments;
mod standby;

use std::sync::Arc;

use greenplum_catalog::health::Health;
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
    replication::FAMILIES,
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

/// One part of the exposition: a few small families, or one family per instance.
type Part = fn(&Snapshot, Option<&Health>, &mut Encoder);

/// The exposition in order, in parts small enough that the body is encoded as it is sent,
/// never held whole: at 2,048 segments the largest part is ~1.3 MB of a 4.7 MB body.
const PARTS: &[Part] = &[
    cluster::collect,
    |snapshot, _, out| standby::collect(snapshot, out),
    |snapshot, _, out| segments::info(snapshot, out),
    |snapshot, _, out| segments::up(snapshot, out),
    |snapshot, _, out| segments::is_primary(snapshot, out),
    |snapshot, _, out| segments::role_mismatch(snapshot, out),
    |snapshot, _, out| segments::mode(snapshot, out),
    |snapshot, _, out| replication::collect(snapshot, out),
    derived::collect,
    |snapshot, _, out| history::collect(snapshot, out),
];

/// One scrape's exposition (or, without a scrape, only the exporter's own build info: the
/// multi-cluster `/metrics`), encoded part by part as it is iterated.
#[derive(Debug)]
pub struct Exposition {
    scrape: Option<Scrape>,
    /// Derived once: at 2,048 segments it is a tenth of a scrape's CPU.
    health: Option<Health>,
    out: Encoder,
    /// The next part of [`PARTS`]; past its end come the exporter's own families.
    next: usize,
    done: bool,
}

impl Exposition {
    pub fn new(scrape: Option<Scrape>, format: Format) -> Self {
        let health = scrape.as_ref().and_then(|s| s.snapshot.health());
        Exposition {
            scrape,
            health,
            out: Encoder::new(format),
            next: 0,
            done: false,
        }
    }
}

impl Iterator for Exposition {
    type Item = String;

    /// The next non-empty piece of the body.
    fn next(&mut self) -> Option<String> {
        while !self.done {
            match (&self.scrape, PARTS.get(self.next)) {
                (Some(scrape), Some(part)) => {
                    part(&scrape.snapshot, self.health.as_ref(), &mut self.out);
                    self.next += 1;
                }
                _ => {
                    exporter::collect(self.scrape.as_ref(), &mut self.out);
                    self.out.finish();
                    self.done = true;
                }
            }
            let piece = self.out.take();
            if !piece.is_empty() {
                return Some(piece);
            }
        }
        None
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

/// Encodes one scrape whole (see [`Exposition`]).
pub fn encode(scrape: Option<Scrape>, format: Format) -> String {
    Exposition::new(scrape, format).collect()
}

#[cfg(test)]
pub(crate) mod tests;
