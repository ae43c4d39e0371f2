//! Writes a scrape's exposition straight into text, in either format.
//!
//! prometheus-client was used here before and is bypassed on purpose: its collector API takes
//! every sample's labels as an owned label set and it writes only OpenMetrics, so text format
//! 0.0.4 took a second pass that rewrote the whole body. At 2,048 segments (~44,000 samples,
//! 4.7 MB) building the owned labels, encoding, rewriting and freeing cost ~75% of a
//! scrape's CPU and kept two bodies and their doubled buffers in memory at once. Here labels
//! are borrowed from the snapshot, both formats are written directly (a sample is the same
//! line in both; only the `# HELP`/`# TYPE` metadata differs), and the body is encoded in
//! pieces as it is sent (`Exposition`). The golden files in `golden/` hold what prometheus-client
//! wrote for recorded snapshots; the tests check this encoder writes the same bytes.

use std::fmt::Write as _;

use super::{Family, Format, Kind};

/// One label: its name and a value borrowed from the snapshot.
pub(super) type Label<'a> = (&'static str, LabelValue<'a>);

/// A label value, borrowed or written on the fly: no sample allocates its labels.
#[derive(Debug, Clone, Copy)]
pub(super) enum LabelValue<'a> {
    Str(&'a str),
    Int(i64),
}

impl<'a> From<&'a str> for LabelValue<'a> {
    fn from(s: &'a str) -> Self {
        LabelValue::Str(s)
    }
}

impl<'a> From<&'a String> for LabelValue<'a> {
    fn from(s: &'a String) -> Self {
        LabelValue::Str(s)
    }
}

impl From<i16> for LabelValue<'_> {
    fn from(v: i16) -> Self {
        LabelValue::Int(i64::from(v))
    }
}

impl From<i32> for LabelValue<'_> {
    fn from(v: i32) -> Self {
        LabelValue::Int(i64::from(v))
    }
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value {
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

/// The exposition of one scrape, written family by family.
#[derive(Debug)]
pub(super) struct Encoder {
    body: String,
    format: Format,
    /// Families already written: a family's samples must be contiguous, and a second block
    /// of the same family would repeat its metadata.
    #[cfg(debug_assertions)]
    written: Vec<&'static str>,
}

impl Encoder {
    pub(super) fn new(format: Format) -> Self {
        Encoder {
            body: String::new(),
            format,
            #[cfg(debug_assertions)]
            written: Vec::new(),
        }
    }

    /// Starts `family`. Its metadata is written with its first sample, so a family without
    /// samples this scrape is not exposed at all.
    pub(super) fn family(&mut self, family: &'static Family) -> FamilyEncoder<'_> {
        #[cfg(debug_assertions)]
        {
            debug_assert!(
                !self.written.contains(&family.name),
                "{} written in two blocks",
                family.name
            );
            self.written.push(family.name);
        }
        FamilyEncoder {
            body: &mut self.body,
            format: self.format,
            family,
            started: false,
        }
    }

    /// Ends the exposition (OpenMetrics marks its end).
    pub(super) fn finish(&mut self) {
        if self.format == Format::OpenMetrics {
            self.body.push_str("# EOF\n");
        }
    }

    /// What was written since the last call. Each piece is allocated as it grows (large
    /// pieces are mapped memory that glibc grows without copying, see `memory.rs`), so no
    /// size hint is needed.
    pub(super) fn take(&mut self) -> String {
        std::mem::take(&mut self.body)
    }
}

/// Writes the samples of one family.
#[derive(Debug)]
pub(super) struct FamilyEncoder<'e> {
    body: &'e mut String,
    format: Format,
    family: &'static Family,
    started: bool,
}

impl FamilyEncoder<'_> {
    pub(super) fn sample(&mut self, labels: &[Label<'_>], value: impl Into<Value>) {
        self.sample_with(labels, &[], value);
    }

    /// A sample whose labels are `labels` followed by `extra`, so a shared label set is
    /// extended without copying it.
    pub(super) fn sample_with(
        &mut self,
        labels: &[Label<'_>],
        extra: &[Label<'_>],
        value: impl Into<Value>,
    ) {
        if !self.started {
            self.metadata();
            self.started = true;
        }
        let body = &mut *self.body;
        body.push_str(self.family.name);
        if !labels.is_empty() || !extra.is_empty() {
            body.push('{');
            for (i, (name, value)) in labels.iter().chain(extra).enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(name);
                body.push_str("=\"");
                push_label_value(body, *value);
                body.push('"');
            }
            body.push('}');
        }
        body.push(' ');
        push_value(body, self.family.kind, value.into());
        body.push('\n');
    }

    /// An info sample: the labels carry the information, the value is always 1.
    pub(super) fn info(&mut self, labels: &[Label<'_>], extra: &[Label<'_>]) {
        debug_assert_eq!(self.family.kind, Kind::Info);
        self.sample_with(labels, extra, 1u64);
    }

    /// A state set (the kube-state-metrics pattern): one series per possible state, 1 for
    /// the current one, so a state change never creates or removes a series.
    pub(super) fn state_set<S: Copy + PartialEq>(
        &mut self,
        labels: &[Label<'_>],
        label: &'static str,
        states: &[S],
        current: S,
        name: impl Fn(S) -> &'static str,
    ) {
        for &state in states {
            let extra = [(label, LabelValue::Str(name(state)))];
            self.sample_with(labels, &extra, state == current);
        }
    }

    /// `# HELP` and `# TYPE`. OpenMetrics names a counter family without `_total` and an info
    /// family without `_info`; text format 0.0.4 names them as their samples and has no info
    /// type (an info family is a gauge there).
    fn metadata(&mut self) {
        let family = self.family;
        let (name, kind) = match (self.format, family.kind) {
            (Format::OpenMetrics, Kind::Gauge) => (family.name, "gauge"),
            (Format::OpenMetrics, Kind::Counter) => (family.descriptor_name(), "counter"),
            (Format::OpenMetrics, Kind::Info) => (family.descriptor_name(), "info"),
            (Format::Text, Kind::Gauge | Kind::Info) => (family.name, "gauge"),
            (Format::Text, Kind::Counter) => (family.name, "counter"),
        };
        let body = &mut *self.body;
        for line in [
            ["# HELP ", name, " ", family.help],
            ["# TYPE ", name, " ", kind],
        ] {
            line.iter().for_each(|part| body.push_str(part));
            body.push('\n');
        }
    }
}

/// Both formats escape `\`, `"` and newlines in label values the same way.
fn push_label_value(body: &mut String, value: LabelValue<'_>) {
    match value {
        LabelValue::Int(v) => body.push_str(itoa::Buffer::new().format(v)),
        LabelValue::Str(s) if !s.contains(['\\', '"', '\n']) => body.push_str(s),
        LabelValue::Str(s) => {
            for c in s.chars() {
                match c {
                    '\\' => body.push_str("\\\\"),
                    '"' => body.push_str("\\\""),
                    '\n' => body.push_str("\\n"),
                    c => body.push(c),
                }
            }
        }
    }
}

fn push_value(body: &mut String, kind: Kind, value: Value) {
    match (kind, value) {
        // A counter never goes below zero.
        (Kind::Counter, Value::Int(v)) => body.push_str(itoa::Buffer::new().format(v.max(0))),
        (_, Value::Int(v)) => body.push_str(itoa::Buffer::new().format(v)),
        (_, Value::Unsigned(v)) => body.push_str(itoa::Buffer::new().format(v)),
        (_, Value::Float(v)) if v.is_finite() => {
            body.push_str(dtoa::Buffer::new().format_finite(v));
        }
        (_, Value::Float(v)) if v.is_nan() => body.push_str("NaN"),
        (_, Value::Float(v)) => {
            // Writing to a String cannot fail.
            let _ = write!(body, "{}Inf", if v > 0.0 { '+' } else { '-' });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static GAUGE: Family = Family {
        name: "t_gauge",
        help: "A gauge.",
        kind: Kind::Gauge,
    };

    fn one_sample(labels: &[Label<'_>], value: Value) -> String {
        let mut out = Encoder::new(Format::Text);
        out.family(&GAUGE).sample(labels, value);
        out.finish();
        let body = out.take();
        body.lines().nth(2).unwrap_or_default().to_string()
    }

    #[test]
    fn label_values_are_escaped() {
        let line = one_sample(&[("datadir", "/data/a\"b\\c\nd".into())], Value::Int(1));
        assert_eq!(line, r#"t_gauge{datadir="/data/a\"b\\c\nd"} 1"#);
    }

    #[test]
    fn non_finite_values_use_the_format_spelling() {
        assert_eq!(one_sample(&[], Value::Float(f64::NAN)), "t_gauge NaN");
        assert_eq!(one_sample(&[], Value::Float(f64::INFINITY)), "t_gauge +Inf");
        assert_eq!(
            one_sample(&[], Value::Float(f64::NEG_INFINITY)),
            "t_gauge -Inf"
        );
        assert_eq!(one_sample(&[], Value::Float(2.0)), "t_gauge 2.0");
        assert_eq!(one_sample(&[], Value::Int(-3)), "t_gauge -3");
    }

    #[test]
    fn a_family_without_samples_is_not_exposed() {
        let mut out = Encoder::new(Format::OpenMetrics);
        out.family(&GAUGE);
        out.finish();
        assert_eq!(out.take(), "# EOF\n");
    }
}
