//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4), served by a minimal
//! HTTP/1.1 responder on the daemon's event loop: one request per connection, then close.
//!
//! Everything is collected when a scrape arrives and nothing in between: the actor hands over
//! its counters and its running containers, and the file reads (process gauges, cgroup files)
//! run on tokio's blocking pool, never on the actor or the event loop.
//!
//! At most [`MAX_SCRAPES`] are served at once, each given [`REQUEST_TIMEOUT`] to send its
//! request and as long to take the answer; a connection past those is closed as soon as it is
//! accepted, so scrapers, however many, hold a bounded number of descriptors, tasks and
//! requests to the actor.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use runtime::Cgroup;

use crate::metrics::telemetry::Snapshot;

use crate::actor::Supervisor;
use crate::metrics::{self, RunningContainer};

/// How long a client may take to send its request head, and to take the response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Scrapes served at once; a Prometheus server sends one at a time.
pub const MAX_SCRAPES: usize = 8;

/// Largest request head read; a scrape's is a few hundred bytes.
const MAX_HEAD: usize = 8192;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves scrapes until the task is dropped.
pub async fn serve(listener: TcpListener, supervisor: Addr<Supervisor>) {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    log::debug!(
                        "closed a scrape from {peer} unanswered: {MAX_SCRAPES} in progress"
                    );
                    continue;
                };
                let supervisor = supervisor.clone();
                actix_rt::spawn(async move {
                    if let Err(e) = respond(stream, supervisor).await {
                        log::debug!("metrics connection: {e}");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                log::warn!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn respond(mut stream: TcpStream, supervisor: Addr<Supervisor>) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let request_line = head.lines().next().unwrap_or_default();
    let mut words = request_line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET", "/metrics") => match scrape(&supervisor).await {
            Some(text) => ("200 OK", text),
            None => (
                "503 Service Unavailable",
                "ctrd is shutting down\n".to_string(),
            ),
        },
        (_, "/metrics") => ("405 Method Not Allowed", "only GET\n".to_string()),
        _ => ("404 Not Found", "try /metrics\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let sent = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    // A client that does not take its answer is given up on, not waited for.
    tokio::time::timeout(REQUEST_TIMEOUT, sent)
        .await
        .unwrap_or(Ok(()))
}

/// Reads up to the blank line that ends the request head.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        match stream.read(&mut buf).await? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// One container's readings; `None` where its cgroup could not be read (it exited meanwhile),
/// so the container is left out of that gauge rather than reported as zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
}

impl Usage {
    /// A file read of the container's cgroup (v1 or v2): callers run it off the actor.
    fn read(cgroup: &Cgroup) -> Usage {
        match cgroup.stats() {
            Ok(stats) => Usage {
                cpu_ns: Some(stats.cpu.usage_ns),
                memory_bytes: Some(stats.memory.usage),
                pids: Some(stats.pids.current),
            },
            Err(_) => Usage::default(),
        }
    }
}

/// The whole exposition, or `None` once the supervisor has stopped.
async fn scrape(supervisor: &Addr<Supervisor>) -> Option<String> {
    let (snapshot, running) = metrics::ask(supervisor, true).await?;
    tokio::task::spawn_blocking(move || {
        let process = metrics::process::gauges();
        let usage: Vec<(RunningContainer, Usage)> = running
            .into_iter()
            .map(|c| {
                let usage = c.cgroup.as_ref().map(Usage::read).unwrap_or_default();
                (c, usage)
            })
            .collect();
        render(&snapshot, &process, &usage)
    })
    .await
    .ok()
}

/// Renders the exposition: timers as histograms, meters as counters, gauges, then one gauge
/// family per container reading (a container without a reading is left out of that family).
pub fn render(
    snapshot: &Snapshot,
    process: &[protocol::Gauge],
    containers: &[(RunningContainer, Usage)],
) -> String {
    let mut out = String::new();
    for (timer, buckets) in snapshot.report.timers.iter().zip(&snapshot.buckets) {
        let name = format!("ctrd_{}_seconds", snake(&timer.name));
        family(&mut out, &name, "histogram", timer_help(&timer.name));
        for (bound, count) in &buckets.cumulative {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", buckets.count);
        let _ = writeln!(out, "{name}_sum {}", buckets.sum_s);
        let _ = writeln!(out, "{name}_count {}", buckets.count);
    }
    for meter in &snapshot.report.meters {
        let name = format!("ctrd_{}_total", snake(&meter.name));
        family(&mut out, &name, "counter", meter_help(&meter.name));
        let _ = writeln!(out, "{name} {}", meter.count);
    }
    for gauge in snapshot.report.gauges.iter().chain(process) {
        let name = format!("ctrd_{}", snake(&gauge.name));
        family(&mut out, &name, "gauge", gauge_help(&gauge.name));
        let _ = writeln!(out, "{name} {}", gauge.value);
    }
    type Reading = fn(&Usage) -> Option<f64>;
    let readings: [(&str, &str, &str, Reading); 3] = [
        (
            "ctrd_container_cpu_seconds_total",
            "counter",
            "CPU time used by the container's cgroup (cpuacct.usage).",
            |u| u.cpu_ns.map(|ns| ns as f64 / 1e9),
        ),
        (
            "ctrd_container_memory_usage_bytes",
            "gauge",
            "Memory charged to the container's cgroup (memory.usage_in_bytes).",
            |u| u.memory_bytes.map(|b| b as f64),
        ),
        (
            "ctrd_container_pids",
            "gauge",
            "Processes in the container's cgroup (pids.current).",
            |u| u.pids.map(|p| p as f64),
        ),
    ];
    for (name, kind, help, read) in readings {
        family(&mut out, name, kind, help);
        for (container, usage) in containers {
            if let Some(value) = read(usage) {
                let _ = writeln!(
                    out,
                    "{name}{{id=\"{}\",namespace=\"{}\"}} {value}",
                    label(&container.id),
                    label(&container.namespace)
                );
            }
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn snake(name: &str) -> String {
    name.replace('-', "_")
}

/// Escapes a label value as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn timer_help(name: &str) -> &'static str {
    match name {
        "container-start-time" => "Container start, from request accepted to init pid known.",
        "container-start-queued" => "Container start, time spent waiting for a worker.",
        "container-start-runtime" => "Container start, time spent in the runtime call.",
        _ => "A latency distribution.",
    }
}

fn meter_help(name: &str) -> &'static str {
    match name {
        "containers-started" => "Containers started.",
        "container-start-failures" => "Container starts that failed.",
        "events" => "Events emitted.",
        "subscriber-drops" => "Event subscribers dropped for falling behind.",
        "output-lost-writes" => "Writes of container output to its destination that failed.",
        "output-lost-bytes" => "Bytes of container output lost to failed writes.",
        _ => "A count.",
    }
}

fn gauge_help(name: &str) -> &'static str {
    match name {
        "containers" => "Containers known to the daemon, in every phase.",
        "containers-running" => "Containers whose init process runs.",
        "subscribers" => "Connected event subscribers.",
        "threads" => "Threads of the daemon process.",
        "fds" => "Open file descriptors of the daemon process.",
        "rss-bytes" => "Resident memory of the daemon process.",
        _ => "A current value.",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::metrics::telemetry::{StartTiming, Telemetry};

    #[test]
    fn renders_families_with_help_type_and_labels() {
        let t0 = Instant::now();
        let mut telemetry = Telemetry::new(t0);
        let timing = StartTiming {
            picked_up: t0,
            finished: t0 + Duration::from_millis(30),
        };
        telemetry.start_succeeded(t0, timing, t0 + Duration::from_millis(40));
        let snapshot = telemetry.snapshot(Vec::new(), t0);
        let container = RunningContainer {
            namespace: "default".into(),
            id: "web".into(),
            cgroup: None,
        };
        let usage = Usage {
            cpu_ns: Some(2_500_000_000),
            memory_bytes: Some(4096),
            pids: None,
        };
        let text = render(&snapshot, &[], &[(container, usage)]);
        assert!(text.contains("# TYPE ctrd_container_start_time_seconds histogram\n"));
        assert!(text.contains("ctrd_container_start_time_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("ctrd_container_start_time_seconds_bucket{le=\"0.025\"} 0\n"));
        assert!(text.contains("ctrd_containers_started_total 1\n"));
        assert!(text
            .contains("ctrd_container_cpu_seconds_total{id=\"web\",namespace=\"default\"} 2.5\n"));
        assert!(text.contains("# TYPE ctrd_container_pids gauge\n"));
        assert!(!text.contains("ctrd_container_pids{"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
