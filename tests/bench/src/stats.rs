//! Latency summaries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Median and 99th percentile of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Latency {
    pub median_ms: f64,
    pub p99_ms: f64,
    pub samples: usize,
}

impl Latency {
    /// Nearest-rank percentiles; `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Some(Latency {
            median_ms: percentile(&ms, 50.0),
            p99_ms: percentile(&ms, 99.0),
            samples: ms.len(),
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty data.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let samples: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        let l = Latency::of(&samples).unwrap();
        assert_eq!(l.median_ms, 100.0);
        assert_eq!(l.p99_ms, 198.0);
        assert_eq!(l.samples, 200);
        assert!(Latency::of(&[]).is_none());
        let one = Latency::of(&[Duration::from_millis(7)]).unwrap();
        assert_eq!((one.median_ms, one.p99_ms), (7.0, 7.0));
    }
}
