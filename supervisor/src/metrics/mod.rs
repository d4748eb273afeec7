//! ctrd's telemetry and the ways it leaves the daemon.
//!
//! - [`meter`]: counts and their 1/5/15-minute rates;
//! - [`telemetry`]: what the supervisor actor records (start times and their phases, counters);
//! - [`process`]: the daemon's own threads, fds and memory, from `/proc/self`;
//! - [`prometheus`]: `GET /metrics`, with per-container CPU, memory and pids read from each
//!   container's cgroup (`runtime::cgroup`, v1 or v2) at scrape time.
//!
//! This module ties them together for `ctr metrics` and the `--metrics-interval` log. The actor
//! hands over its numbers in one message; every file read happens afterwards, off the actor.

pub mod meter;
pub mod process;
pub mod prometheus;
pub mod telemetry;

use std::time::Duration;

use actix::Addr;
use protocol::{ErrorKind, ErrorResponse, MetricsReport, Response};

use crate::actor::{Supervisor, TakeMetrics};
pub use telemetry::RunningContainer;
use telemetry::Snapshot;

/// The actor's numbers, and its running containers when `with_containers`; `None` once the
/// actor has stopped.
pub async fn ask(
    supervisor: &Addr<Supervisor>,
    with_containers: bool,
) -> Option<(Snapshot, Vec<RunningContainer>)> {
    supervisor.send(TakeMetrics { with_containers }).await.ok()
}

/// The whole report: the actor's numbers and the process gauges.
pub async fn report(supervisor: &Addr<Supervisor>) -> Option<MetricsReport> {
    let (snapshot, _) = ask(supervisor, false).await?;
    let mut report = snapshot.report;
    let process = tokio::task::spawn_blocking(process::gauges).await.ok()?;
    report.gauges.extend(process);
    Some(report)
}

/// `ctr metrics`' answer.
pub async fn respond(supervisor: &Addr<Supervisor>) -> Response {
    match report(supervisor).await {
        Some(report) => Response::Metrics(report),
        None => Response::Error(ErrorResponse::new(
            ErrorKind::Unavailable,
            "the supervisor stopped before answering",
        )),
    }
}

/// Logs the report every `interval` until the task is dropped.
pub async fn log_every(supervisor: Addr<Supervisor>, interval: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(report) = report(&supervisor).await else {
            return;
        };
        for line in log_lines(&report) {
            log::info!("{line}");
        }
    }
}

/// The original's log layout: one line per metric with its distribution and rates.
pub fn log_lines(report: &MetricsReport) -> Vec<String> {
    let ms = |us: f64| format!("{:.2}ms", us / 1000.0);
    let rates = |r: &protocol::Rates| {
        format!(
            "1-min {:.2}/s 5-min {:.2}/s 15-min {:.2}/s mean {:.2}/s",
            r.m1, r.m5, r.m15, r.mean
        )
    };
    let mut lines = Vec::new();
    for t in &report.timers {
        lines.push(format!(
            "timer {}: count {} min {} max {} mean {} stddev {} median {} 75% {} 95% {} 99% {} 99.9% {} {}",
            t.name,
            t.count,
            ms(t.min_us as f64),
            ms(t.max_us as f64),
            ms(t.mean_us),
            ms(t.stddev_us),
            ms(t.median_us as f64),
            ms(t.p75_us as f64),
            ms(t.p95_us as f64),
            ms(t.p99_us as f64),
            ms(t.p999_us as f64),
            rates(&t.rates)
        ));
    }
    for m in &report.meters {
        lines.push(format!(
            "meter {}: count {} {}",
            m.name,
            m.count,
            rates(&m.rates)
        ));
    }
    for g in &report.gauges {
        lines.push(format!("gauge {}: {}", g.name, g.value));
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn the_log_has_one_line_per_metric() {
        let t0 = Instant::now();
        let gauges = vec![protocol::Gauge {
            name: "threads".into(),
            value: 12,
        }];
        let report = telemetry::Telemetry::new(t0).snapshot(gauges, t0).report;
        let lines = log_lines(&report);
        assert_eq!(lines.len(), report.timers.len() + report.meters.len() + 1);
        assert!(lines[0].starts_with("timer container-start-time: count 0 min 0.00ms"));
        assert_eq!(lines.last().unwrap(), "gauge threads: 12");
    }
}
