//! Latency distributions: an HDR histogram of microseconds, summarised in milliseconds with the
//! columns ctrd's own telemetry uses.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency told apart; anything slower is recorded as this.
const MAX_US: u64 = 600_000_000;

pub struct Recorder {
    histogram: Histogram<u64>,
}

/// A distribution in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Distribution {
    pub count: u64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub stddev_ms: f64,
    pub median_ms: f64,
    pub p75_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            histogram: Histogram::new_with_bounds(1, MAX_US, 3)
                .expect("constant histogram bounds are valid"),
        }
    }
}

impl Recorder {
    pub fn record(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(us.clamp(1, MAX_US));
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Both histograms share the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn summary(&self) -> Distribution {
        let h = &self.histogram;
        let ms = |us: u64| us as f64 / 1000.0;
        let q = |quantile: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(quantile))
            }
        };
        Distribution {
            count: h.len(),
            min_ms: if h.is_empty() { 0.0 } else { ms(h.min()) },
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            mean_ms: h.mean() / 1000.0,
            stddev_ms: h.stdev() / 1000.0,
            median_ms: q(0.5),
            p75_ms: q(0.75),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_in_milliseconds() {
        let mut recorder = Recorder::default();
        for ms in 1..=100 {
            recorder.record(Duration::from_millis(ms));
        }
        let d = recorder.summary();
        assert_eq!(d.count, 100);
        assert_eq!(d.min_ms, 1.0);
        assert!((99.9..=100.1).contains(&d.max_ms), "{d:?}");
        assert!((50.0..=50.1).contains(&d.median_ms), "{d:?}");
        assert!((50.4..=50.6).contains(&d.mean_ms), "{d:?}");
        assert_eq!(Recorder::default().summary().max_ms, 0.0);
    }
}
