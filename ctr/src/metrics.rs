//! `ctr metrics`: ctrd's telemetry in the original's layout — timers with their distribution
//! (`count / min / max / mean / stddev / median / 75% / 95% / 99% / 99.9%`) and rates
//! (`1-min / 5-min / 15-min / mean rate`), meters with their count and rates, then gauges.

use std::io::Write;

use protocol::{MetricsReport, Rates};

use crate::error::Error;
use crate::output::{self, Format, Table};
use crate::Global;

pub fn show(global: &Global, format: Format, out: &mut impl Write) -> Result<(), Error> {
    let report = global.connect()?.metrics()?;
    match format {
        Format::Table => out.write_all(metrics_table(&report).as_bytes())?,
        Format::Json => output::json_document(out, &report)?,
    }
    Ok(())
}

/// Three tables, one per kind of metric, separated by a blank line; durations in milliseconds,
/// rates per second.
fn metrics_table(report: &MetricsReport) -> String {
    let mut timers = Table::with_header(&[
        "TIMER",
        "COUNT",
        "MIN",
        "MAX",
        "MEAN",
        "STDDEV",
        "MEDIAN",
        "75%",
        "95%",
        "99%",
        "99.9%",
        "1-MIN",
        "5-MIN",
        "15-MIN",
        "MEAN RATE",
    ]);
    for t in &report.timers {
        let mut row = vec![t.name.clone(), t.count.to_string()];
        row.extend(
            [
                t.min_us as f64,
                t.max_us as f64,
                t.mean_us,
                t.stddev_us,
                t.median_us as f64,
                t.p75_us as f64,
                t.p95_us as f64,
                t.p99_us as f64,
                t.p999_us as f64,
            ]
            .map(ms),
        );
        row.extend(rates(&t.rates));
        timers.row(row);
    }
    let mut meters =
        Table::with_header(&["METER", "COUNT", "1-MIN", "5-MIN", "15-MIN", "MEAN RATE"]);
    for m in &report.meters {
        let mut row = vec![m.name.clone(), m.count.to_string()];
        row.extend(rates(&m.rates));
        meters.row(row);
    }
    let mut gauges = Table::with_header(&["GAUGE", "VALUE"]);
    for g in &report.gauges {
        gauges.row([g.name.clone(), g.value.to_string()]);
    }
    format!(
        "{}\n{}\n{}",
        timers.render(),
        meters.render(),
        gauges.render()
    )
}

fn ms(us: f64) -> String {
    format!("{:.2}ms", us / 1000.0)
}

fn rates(r: &Rates) -> [String; 4] {
    [r.m1, r.m5, r.m15, r.mean].map(|rate| format!("{rate:.2}/s"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Gauge, Meter, Timer};

    #[test]
    fn the_table_has_the_original_columns() {
        let rates = Rates {
            m1: 1.5,
            m5: 0.25,
            m15: 0.0,
            mean: 2.0,
        };
        let report = MetricsReport {
            uptime_s: 10,
            timers: vec![Timer {
                name: "container-start-time".into(),
                count: 3,
                min_us: 23_000,
                max_us: 355_000,
                mean_us: 73_500.0,
                stddev_us: 1_000.0,
                median_us: 73_000,
                p75_us: 80_000,
                p95_us: 200_000,
                p99_us: 287_000,
                p999_us: 355_000,
                rates,
            }],
            meters: vec![Meter {
                name: "events".into(),
                count: 6,
                rates,
            }],
            gauges: vec![Gauge {
                name: "threads".into(),
                value: 14,
            }],
        };
        let text = metrics_table(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TIMER                  COUNT   MIN       MAX"));
        assert!(lines[0].ends_with("1-MIN    5-MIN    15-MIN   MEAN RATE"));
        assert!(lines[1].starts_with("container-start-time   3       23.00ms   355.00ms   73.50ms"));
        assert!(lines[1].ends_with("1.50/s   0.25/s   0.00/s   2.00/s"));
        assert_eq!(lines[2], "");
        assert_eq!(
            lines[4],
            "events   6       1.50/s   0.25/s   0.00/s   2.00/s"
        );
        assert_eq!(lines[7], "threads   14");
    }
}
