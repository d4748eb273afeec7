//! `ctr containers stats`: resource usage per container, like `docker stats`, once or every
//! second with `--stream`.
//!
//! CPU % is the share of one CPU used between two samples (so 200% is two CPUs busy): a single
//! reading takes two samples half a second apart, a stream uses the previous refresh.

use std::collections::HashMap;
use std::io::Write;
use std::thread;
use std::time::Duration;

use protocol::{Client, ContainerStats, CpuStats, IoStats, MemoryStats, NetworkStats, PidsStats};
use serde::Serialize;

use crate::error::Error;
use crate::output::{self, Format, Table};
use crate::{Global, StatsArgs};

/// How far apart the two samples of a single reading are.
const ONE_SHOT_WINDOW: Duration = Duration::from_millis(500);

/// How often `--stream` refreshes.
const STREAM_INTERVAL: Duration = Duration::from_secs(1);

/// A sample as ctr prints it: the wire type, with its time readable and the percentages.
#[derive(Debug, Serialize)]
struct StatsView<'a> {
    id: &'a str,
    namespace: &'a str,
    pid: u32,
    /// RFC 3339, UTC, nanoseconds.
    read_at: String,
    /// Percent of one CPU since the previous sample; `null` without one.
    cpu_percent: Option<f64>,
    /// Percent of the memory limit; `null` when unlimited.
    memory_percent: Option<f64>,
    cpu: &'a CpuStats,
    memory: &'a MemoryStats,
    pids: &'a PidsStats,
    io: &'a IoStats,
    network: &'a NetworkStats,
}

impl<'a> StatsView<'a> {
    fn new(s: &'a ContainerStats, before: Option<&ContainerStats>) -> Self {
        StatsView {
            id: &s.id,
            namespace: &s.namespace,
            pid: s.pid,
            read_at: output::rfc3339(s.read_at),
            cpu_percent: before.and_then(|b| cpu_percent(b, s)),
            memory_percent: s
                .memory
                .limit
                .filter(|&limit| limit > 0)
                .map(|limit| s.memory.usage as f64 * 100.0 / limit as f64),
            cpu: &s.cpu,
            memory: &s.memory,
            pids: &s.pids,
            io: &s.io,
            network: &s.network,
        }
    }
}

/// CPU time used over wall time elapsed between two samples of the same container.
fn cpu_percent(before: &ContainerStats, after: &ContainerStats) -> Option<f64> {
    if before.pid != after.pid {
        return None;
    }
    let wall = after.read_at.checked_sub(before.read_at)?;
    let used = after.cpu.usage_ns.checked_sub(before.cpu.usage_ns)?;
    (wall > 0).then(|| used as f64 * 100.0 / wall as f64)
}

pub fn stats(global: &Global, args: &StatsArgs, out: &mut impl Write) -> Result<(), Error> {
    let mut client = global.connect()?;
    let mut previous = sample(&mut client, global, &args.ids)?;
    if !args.stream {
        thread::sleep(ONE_SHOT_WINDOW);
        let current = sample(&mut client, global, &args.ids)?;
        return print(out, args.format, &current, &previous, false);
    }
    loop {
        thread::sleep(STREAM_INTERVAL);
        let current = sample(&mut client, global, &args.ids)?;
        print(out, args.format, &current, &previous, true)?;
        out.flush()?;
        previous = current;
    }
}

/// Samples keyed by container, so the next reading finds each one's previous sample.
fn sample(
    client: &mut Client,
    global: &Global,
    ids: &[String],
) -> Result<HashMap<String, ContainerStats>, Error> {
    let stats = client.stats(&global.namespace, ids)?;
    Ok(stats.into_iter().map(|s| (s.id.clone(), s)).collect())
}

fn print(
    out: &mut impl Write,
    format: Format,
    current: &HashMap<String, ContainerStats>,
    previous: &HashMap<String, ContainerStats>,
    stream: bool,
) -> Result<(), Error> {
    let mut samples: Vec<&ContainerStats> = current.values().collect();
    samples.sort_by(|a, b| a.id.cmp(&b.id));
    let views: Vec<StatsView> = samples
        .iter()
        .map(|s| StatsView::new(s, previous.get(&s.id)))
        .collect();
    match (format, stream) {
        (Format::Table, false) => out.write_all(table(&views).as_bytes())?,
        (Format::Table, true) => {
            out.write_all(table(&views).as_bytes())?;
            out.write_all(b"\n")?;
        }
        (Format::Json, false) => output::json_document(out, &views)?,
        (Format::Json, true) => {
            for view in &views {
                output::json_line(out, view)?;
            }
        }
    }
    Ok(())
}

/// `docker stats`'s columns.
fn table(views: &[StatsView]) -> String {
    let mut table = Table::with_header(&[
        "ID",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]);
    for v in views {
        let limit = v.memory.limit.map_or_else(|| "-".to_string(), bytes);
        table.row([
            v.id.to_string(),
            percent(v.cpu_percent),
            format!("{} / {limit}", bytes(v.memory.usage)),
            percent(v.memory_percent),
            format!(
                "{} / {}",
                bytes(v.network.rx_bytes),
                bytes(v.network.tx_bytes)
            ),
            format!("{} / {}", bytes(v.io.read_bytes), bytes(v.io.write_bytes)),
            v.pids.current.to_string(),
        ]);
    }
    table.render()
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |p| format!("{p:.2}%"))
}

/// Binary units, as the limits are given (`64MiB`).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str, read_at: u64, usage_ns: u64) -> ContainerStats {
        ContainerStats {
            namespace: "default".into(),
            id: id.into(),
            pid: 42,
            read_at,
            cpu: CpuStats {
                usage_ns,
                ..CpuStats::default()
            },
            memory: MemoryStats {
                usage: 50 << 20,
                limit: Some(64 << 20),
                ..MemoryStats::default()
            },
            pids: PidsStats {
                current: 5,
                limit: None,
            },
            io: IoStats::default(),
            network: NetworkStats {
                rx_bytes: 1536,
                ..NetworkStats::default()
            },
        }
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let before = sample("web", 1_000_000_000, 0);
        let after = sample("web", 1_500_000_000, 250_000_000);
        assert_eq!(cpu_percent(&before, &after), Some(50.0));
        assert_eq!(cpu_percent(&after, &before), None);
    }

    #[test]
    fn table_reads_like_docker_stats() {
        let before = sample("web", 0, 0);
        let after = sample("web", 1_000_000_000, 1_000_000_000);
        let table = table(&[StatsView::new(&after, Some(&before))]);
        assert_eq!(
            table,
            "ID    CPU %     MEM USAGE / LIMIT   MEM %    NET I/O       BLOCK I/O   PIDS\n\
             web   100.00%   50.0MiB / 64.0MiB   78.12%   1.5KiB / 0B   0B / 0B     5\n"
        );
    }

    #[test]
    fn json_has_percentages_and_null_without_a_previous_sample() {
        let s = sample("web", 0, 0);
        let json = serde_json::to_value(StatsView::new(&s, None)).unwrap();
        assert!(json["cpu_percent"].is_null());
        assert_eq!(json["memory"]["usage"], 50 << 20);
        assert_eq!(json["pids"]["current"], 5);
        assert_eq!(json["read_at"], "1970-01-01T00:00:00.000000000Z");
    }
}
