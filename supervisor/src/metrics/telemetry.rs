//! The supervisor actor's telemetry: start-time distributions and counters, owned by the actor
//! and updated in its handlers (each update is a few arithmetic operations, no I/O).
//!
//! A start is timed from the moment the actor accepts it to the moment the pid reaches the actor,
//! in two phases: queued (waiting for a worker) and runtime (the worker's call to runc, bundle
//! checks and pidfd included).

use std::time::{Duration, Instant};

use protocol::{Gauge, LatencyRecorder, MetricsReport};

use crate::metrics::meter::Meter;

/// Upper bounds of the Prometheus histogram buckets, in seconds.
pub const BUCKETS_S: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A container whose init runs, as a scrape needs it.
#[derive(Debug, Clone)]
pub struct RunningContainer {
    pub namespace: String,
    pub id: String,
    /// Read at scrape time for the per-container gauges; `None` when none was found at start.
    pub cgroup: Option<runtime::Cgroup>,
}

/// When a worker took a start off the queue and when its runtime call finished; the actor
/// knows when the start was accepted.
#[derive(Debug, Clone, Copy)]
pub struct StartTiming {
    pub picked_up: Instant,
    pub finished: Instant,
}

pub struct Telemetry {
    started: Instant,
    start_time: Timer,
    start_queued: Timer,
    start_runtime: Timer,
    started_containers: Meter,
    start_failures: Meter,
    events: Meter,
    subscriber_drops: Meter,
    /// Container output the relay could not write, as [`worker::relay::lost_in_total`] counts it.
    output_lost_writes: Meter,
    output_lost_bytes: Meter,
}

/// What the actor knows right now, with what Prometheus needs beyond the wire report.
pub struct Snapshot {
    pub report: MetricsReport,
    /// Cumulative bucket counts of each of `report.timers`, in the same order.
    pub buckets: Vec<TimerBuckets>,
}

pub struct TimerBuckets {
    /// `(upper bound in seconds, observations at or below it)`, for [`BUCKETS_S`].
    pub cumulative: Vec<(f64, u64)>,
    pub sum_s: f64,
    pub count: u64,
}

impl Telemetry {
    pub fn new(now: Instant) -> Telemetry {
        Telemetry {
            started: now,
            start_time: Timer::new("container-start-time", now),
            start_queued: Timer::new("container-start-queued", now),
            start_runtime: Timer::new("container-start-runtime", now),
            started_containers: Meter::new(now),
            start_failures: Meter::new(now),
            events: Meter::new(now),
            subscriber_drops: Meter::new(now),
            output_lost_writes: Meter::new(now),
            output_lost_bytes: Meter::new(now),
        }
    }

    /// A start accepted at `accepted` has its pid at `now`.
    pub fn start_succeeded(&mut self, accepted: Instant, timing: StartTiming, now: Instant) {
        self.start_time
            .record(now.saturating_duration_since(accepted), now);
        self.start_queued
            .record(timing.picked_up.saturating_duration_since(accepted), now);
        self.start_runtime.record(
            timing.finished.saturating_duration_since(timing.picked_up),
            now,
        );
        self.started_containers.mark(now);
    }

    pub fn start_failed(&mut self, now: Instant) {
        self.start_failures.mark(now);
    }

    pub fn event(&mut self, now: Instant) {
        self.events.mark(now);
    }

    /// Subscribers dropped for falling behind.
    pub fn subscribers_dropped(&mut self, dropped: u64, now: Instant) {
        self.subscriber_drops.add(dropped, now);
    }

    /// Container output lost so far, in all (the relay thread counts it, outside the actor).
    pub fn output_lost(&mut self, total: worker::Loss, now: Instant) {
        let writes = total.writes.saturating_sub(self.output_lost_writes.count());
        let bytes = total.bytes.saturating_sub(self.output_lost_bytes.count());
        self.output_lost_writes.add(writes, now);
        self.output_lost_bytes.add(bytes, now);
    }

    /// Everything counted so far, with the gauges the caller knows.
    pub fn snapshot(&mut self, gauges: Vec<Gauge>, now: Instant) -> Snapshot {
        let timers = [
            &mut self.start_time,
            &mut self.start_queued,
            &mut self.start_runtime,
        ];
        let buckets = timers.iter().map(|t| t.buckets()).collect();
        let timers = timers.into_iter().map(|t| t.report(now)).collect();
        let meters = [
            ("containers-started", &mut self.started_containers),
            ("container-start-failures", &mut self.start_failures),
            ("events", &mut self.events),
            ("subscriber-drops", &mut self.subscriber_drops),
            ("output-lost-writes", &mut self.output_lost_writes),
            ("output-lost-bytes", &mut self.output_lost_bytes),
        ];
        let meters = meters
            .into_iter()
            .map(|(name, meter)| protocol::Meter {
                name: name.to_string(),
                count: meter.count(),
                rates: meter.rates(now),
            })
            .collect();
        Snapshot {
            report: MetricsReport {
                uptime_s: now.saturating_duration_since(self.started).as_secs(),
                timers,
                meters,
                gauges,
            },
            buckets,
        }
    }
}

/// A latency distribution (see [`protocol::latency`]) and the rate it is recorded at.
struct Timer {
    name: &'static str,
    latency: LatencyRecorder,
    meter: Meter,
}

impl Timer {
    fn new(name: &'static str, now: Instant) -> Timer {
        Timer {
            name,
            latency: LatencyRecorder::default(),
            meter: Meter::new(now),
        }
    }

    fn record(&mut self, took: Duration, now: Instant) {
        self.latency.record(took);
        self.meter.mark(now);
    }

    fn report(&mut self, now: Instant) -> protocol::Timer {
        protocol::Timer::new(self.name, self.latency.summary(), self.meter.rates(now))
    }

    fn buckets(&self) -> TimerBuckets {
        let cumulative = BUCKETS_S
            .iter()
            .map(|&bound| {
                let count = self.latency.count_at_most(Duration::from_secs_f64(bound));
                (bound, count)
            })
            .collect();
        TimerBuckets {
            cumulative,
            sum_s: self.latency.sum().as_secs_f64(),
            count: self.latency.count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_is_split_into_its_phases() {
        let t0 = Instant::now();
        let mut telemetry = Telemetry::new(t0);
        let ms = Duration::from_millis;
        for n in 1..=100u64 {
            let accepted = t0 + ms(n);
            let timing = StartTiming {
                picked_up: accepted + ms(n),
                finished: accepted + ms(n) + ms(10),
            };
            telemetry.start_succeeded(accepted, timing, timing.finished + ms(1));
        }
        telemetry.start_failed(t0);
        telemetry.subscribers_dropped(2, t0);
        let snapshot = telemetry.snapshot(Vec::new(), t0 + Duration::from_secs(10));
        let timers = &snapshot.report.timers;
        let [total, queued, runtime] = [&timers[0], &timers[1], &timers[2]];
        assert_eq!(total.name, "container-start-time");
        assert_eq!(total.count, 100);
        assert_eq!(queued.min_us, 1000);
        assert!((99_900..=100_100).contains(&queued.max_us), "{queued:?}");
        assert!(
            (10_000..=10_010).contains(&runtime.median_us),
            "{runtime:?}"
        );
        assert!((12_000..=111_100).contains(&total.p99_us), "{total:?}");
        let meters = &snapshot.report.meters;
        assert_eq!(meters[0].count, 100);
        assert_eq!(meters[1].count, 1);
        assert_eq!(meters[3].count, 2);
        let buckets = &snapshot.buckets[2];
        assert_eq!(buckets.count, 100);
        assert_eq!(buckets.cumulative[0], (0.005, 0));
        assert_eq!(buckets.cumulative[2], (0.025, 100));
        assert!((buckets.sum_s - 1.0).abs() < 1e-6, "{}", buckets.sum_s);
    }

    #[test]
    fn an_empty_timer_reports_zeros() {
        let t0 = Instant::now();
        let report = Telemetry::new(t0).snapshot(Vec::new(), t0).report;
        assert!(report.timers.iter().all(|t| t.count == 0 && t.max_us == 0));
    }
}
