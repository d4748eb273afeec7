//! What a run measured and how it is printed: one row per phase with its rate and its latency
//! distribution, as a table for people or one JSON document for scripts (scripts/bench.sh).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::stats::Distribution;

/// Which path the containers were started through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Ctrd,
    Runc,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub mode: Mode,
    pub count: usize,
    pub concurrency: usize,
    /// Every container started and running: throughput and each start's latency.
    pub start: Phase,
    /// Every container killed and gone: the rate, and each one's latency from the kill to its
    /// exit event (through ctrd) or to its `runc delete` returning (raw runc).
    pub teardown: Phase,
    /// A cheap request through the supervisor every 20 ms while the starts ran (`--probe`).
    pub probe: Option<Distribution>,
    /// Containers killed one at a time while all the others run, each waited for: the latency
    /// of one exit with nothing queued before it.
    pub single_exit: Distribution,
    /// What the daemon costs with every container running (through ctrd only).
    pub daemon: Option<DaemonFigures>,
}

#[derive(Debug, Serialize)]
pub struct DaemonFigures {
    /// ctrd's resident memory with every container running, from its own metrics.
    pub rss_bytes: Option<i64>,
    pub containers: usize,
    /// Round trips of a list request that returns every container.
    pub list: Distribution,
    /// Round trips of the kill requests of the teardown.
    pub kill: Distribution,
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub seconds: f64,
    /// Containers per second.
    pub rate: f64,
    pub latency: Distribution,
}

impl Phase {
    pub fn new(count: usize, took: Duration, latency: Distribution) -> Phase {
        let seconds = took.as_secs_f64();
        Phase {
            seconds,
            rate: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            },
            latency,
        }
    }
}

const COLUMNS: [&str; 13] = [
    "PHASE", "COUNT", "SECONDS", "RATE", "MIN", "MAX", "MEAN", "STDDEV", "MEDIAN", "75%", "95%",
    "99%", "99.9%",
];

pub fn table(report: &RunReport) -> String {
    let through = match report.mode {
        Mode::Ctrd => "through ctrd",
        Mode::Runc => "with raw runc",
    };
    let mut rows = vec![COLUMNS.map(String::from).to_vec()];
    let latency = |d: &Distribution| {
        [
            d.min_ms,
            d.max_ms,
            d.mean_ms,
            d.stddev_ms,
            d.median_ms,
            d.p75_ms,
            d.p95_ms,
            d.p99_ms,
            d.p999_ms,
        ]
        .map(|ms| format!("{ms:.2}ms"))
    };
    let exits = match report.mode {
        Mode::Ctrd => "exit-to-event",
        Mode::Runc => "kill-to-deleted",
    };
    for (name, phase) in [("start", &report.start), (exits, &report.teardown)] {
        let mut row = vec![
            name.to_string(),
            phase.latency.count.to_string(),
            format!("{:.2}", phase.seconds),
            format!("{:.1}/s", phase.rate),
        ];
        row.extend(latency(&phase.latency));
        rows.push(row);
    }
    let mut row = vec![
        format!("{exits} (one)"),
        report.single_exit.count.to_string(),
        "-".into(),
        "-".into(),
    ];
    row.extend(latency(&report.single_exit));
    rows.push(row);
    if let Some(probe) = &report.probe {
        let mut row = vec![
            "probe".to_string(),
            probe.count.to_string(),
            "-".into(),
            "-".into(),
        ];
        row.extend(latency(probe));
        rows.push(row);
    }
    if let Some(daemon) = &report.daemon {
        for (name, d) in [
            (format!("list {}", daemon.containers), &daemon.list),
            ("kill".to_string(), &daemon.kill),
        ] {
            let mut row = vec![name, d.count.to_string(), "-".into(), "-".into()];
            row.extend(latency(d));
            rows.push(row);
        }
    }
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "{} containers {through} at concurrency {}\n",
        report.count, report.concurrency
    );
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("   ").trim_end());
    }
    if let Some(rss) = report.daemon.as_ref().and_then(|d| d.rss_bytes) {
        let _ = writeln!(
            out,
            "ctrd resident memory with {} containers running: {:.1} MiB",
            report.count,
            rss as f64 / 1024.0 / 1024.0
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::LatencyRecorder;

    #[test]
    fn the_table_has_a_row_per_phase() {
        let mut recorder = LatencyRecorder::default();
        recorder.record(Duration::from_millis(20));
        let latency = Distribution::from(&recorder);
        let report = RunReport {
            mode: Mode::Ctrd,
            count: 1,
            concurrency: 1,
            start: Phase::new(1, Duration::from_millis(500), latency),
            teardown: Phase::new(1, Duration::from_millis(250), latency),
            probe: Some(latency),
            single_exit: latency,
            daemon: Some(DaemonFigures {
                rss_bytes: Some(8 << 20),
                containers: 1,
                list: latency,
                kill: latency,
            }),
        };
        let text = table(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "1 containers through ctrd at concurrency 1");
        assert!(lines[1].starts_with("PHASE                 COUNT   SECONDS   RATE"));
        assert!(lines[2].starts_with("start                 1       0.50      2.0/s   20.00ms"));
        assert!(lines[3].starts_with("exit-to-event         1       0.25      4.0/s"));
        assert!(lines[4].starts_with("exit-to-event (one)   1"));
        assert!(lines[5].starts_with("probe                 1       -         -       20.00ms"));
        assert!(lines[6].starts_with("list 1                1       -         -       20.00ms"));
        assert!(lines[7].starts_with("kill                  1"));
        assert_eq!(
            lines[8],
            "ctrd resident memory with 1 containers running: 8.0 MiB"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["mode"], "ctrd");
        assert_eq!(json["start"]["rate"], 2.0);
    }
}
