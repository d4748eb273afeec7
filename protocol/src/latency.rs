//! Latency distributions, recorded one way for ctrd's telemetry (the [`Timer`]s of a
//! [`MetricsReport`](crate::MetricsReport)) and for `ctrd-bench`, so the daemon's figures and the
//! benchmark's mean the same: an HDR histogram of microseconds, three significant figures.
//!
//! It lives here, beside the wire type its summary fills, because both the daemon and the
//! benchmark link this crate; the histogram crate is built without its serialisation features,
//! so a client pays little for it.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::{Rates, Timer};

/// Longest latency told apart (an hour); anything slower is recorded as this.
const MAX_US: u64 = 3_600_000_000;

/// Records durations; owned by whoever times something, merged when several threads did.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
    /// The exact sum, which the histogram only approximates (Prometheus reports it).
    sum_us: u128,
}

/// What a [`LatencyRecorder`] holds, in microseconds; all zero when nothing was recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub min_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub stddev_us: f64,
    pub median_us: u64,
    pub p75_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder {
            histogram: Histogram::new_with_bounds(1, MAX_US, 3)
                .expect("constant histogram bounds are valid"),
            sum_us: 0,
        }
    }
}

impl LatencyRecorder {
    pub fn record(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(us.clamp(1, MAX_US));
        self.sum_us += u128::from(us);
    }

    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Both histograms share the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.sum_us += other.sum_us;
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The exact sum of every duration recorded.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.sum_us).unwrap_or(u64::MAX))
    }

    /// How many were at most `bound` (a histogram bucket's cumulative count).
    pub fn count_at_most(&self, bound: Duration) -> u64 {
        let bound_us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        self.histogram.count_between(0, bound_us)
    }

    pub fn summary(&self) -> Latency {
        let h = &self.histogram;
        if h.is_empty() {
            return Latency {
                count: 0,
                min_us: 0,
                max_us: 0,
                mean_us: 0.0,
                stddev_us: 0.0,
                median_us: 0,
                p75_us: 0,
                p95_us: 0,
                p99_us: 0,
                p999_us: 0,
            };
        }
        Latency {
            count: h.len(),
            min_us: h.min(),
            max_us: h.max(),
            mean_us: h.mean(),
            stddev_us: h.stdev(),
            median_us: h.value_at_quantile(0.5),
            p75_us: h.value_at_quantile(0.75),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
        }
    }
}

impl Timer {
    /// The wire form of a named distribution and the rates it was recorded at.
    pub fn new(name: impl Into<String>, latency: Latency, rates: Rates) -> Timer {
        Timer {
            name: name.into(),
            count: latency.count,
            min_us: latency.min_us,
            max_us: latency.max_us,
            mean_us: latency.mean_us,
            stddev_us: latency.stddev_us,
            median_us: latency.median_us,
            p75_us: latency.p75_us,
            p95_us: latency.p95_us,
            p99_us: latency.p99_us,
            p999_us: latency.p999_us,
            rates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_distribution_in_microseconds() {
        let mut recorder = LatencyRecorder::default();
        for ms in 1..=100 {
            recorder.record(Duration::from_millis(ms));
        }
        let latency = recorder.summary();
        assert_eq!(latency.count, 100);
        assert_eq!(latency.min_us, 1000);
        assert!((99_900..=100_100).contains(&latency.max_us), "{latency:?}");
        assert!(
            (50_000..=50_100).contains(&latency.median_us),
            "{latency:?}"
        );
        assert!(
            (50_400.0..=50_600.0).contains(&latency.mean_us),
            "{latency:?}"
        );
        assert_eq!(recorder.sum(), Duration::from_millis(5050));
        assert_eq!(recorder.count_at_most(Duration::from_millis(10)), 10);
    }

    #[test]
    fn merging_adds_counts_and_sums() {
        let (mut a, mut b) = (LatencyRecorder::default(), LatencyRecorder::default());
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(3));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.sum(), Duration::from_millis(4));
        assert!((2_999..=3_001).contains(&a.summary().max_us));
    }

    #[test]
    fn nothing_recorded_is_all_zero_and_extremes_are_clamped() {
        let mut recorder = LatencyRecorder::default();
        assert_eq!(recorder.summary().max_us, 0);
        assert_eq!(recorder.summary().mean_us, 0.0);
        recorder.record(Duration::ZERO);
        recorder.record(Duration::from_secs(10 * 3600));
        let latency = recorder.summary();
        assert_eq!(latency.min_us, 1);
        assert!(latency.max_us <= MAX_US + MAX_US / 1000, "{latency:?}");
    }
}
