//! Latency distributions as the benchmark prints them: what a [`LatencyRecorder`] (the one ctrd's
//! own telemetry uses) holds, in milliseconds.

use protocol::LatencyRecorder;
use serde::Serialize;

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

impl From<&LatencyRecorder> for Distribution {
    fn from(recorder: &LatencyRecorder) -> Distribution {
        let l = recorder.summary();
        let ms = |us: u64| us as f64 / 1000.0;
        Distribution {
            count: l.count,
            min_ms: ms(l.min_us),
            max_ms: ms(l.max_us),
            mean_ms: l.mean_us / 1000.0,
            stddev_ms: l.stddev_us / 1000.0,
            median_ms: ms(l.median_us),
            p75_ms: ms(l.p75_us),
            p95_ms: ms(l.p95_us),
            p99_ms: ms(l.p99_us),
            p999_ms: ms(l.p999_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn summary_is_in_milliseconds() {
        let mut recorder = LatencyRecorder::default();
        for ms in 1..=100 {
            recorder.record(Duration::from_millis(ms));
        }
        let d = Distribution::from(&recorder);
        assert_eq!(d.count, 100);
        assert_eq!(d.min_ms, 1.0);
        assert!((99.9..=100.1).contains(&d.max_ms), "{d:?}");
        assert!((50.0..=50.1).contains(&d.median_ms), "{d:?}");
        assert!((50.4..=50.6).contains(&d.mean_ms), "{d:?}");
        assert_eq!(Distribution::from(&LatencyRecorder::default()).max_ms, 0.0);
    }
}
