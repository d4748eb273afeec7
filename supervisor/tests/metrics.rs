//! Telemetry against the real daemon: `ctr metrics`, Prometheus `/metrics` checked with the
//! Python `prometheus_client` parser, the `--metrics-interval` log and the SIGUSR1 state dump.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;

use common::*;
use protocol::EventKind;
use serde_json::Value;

/// Debian's python3-prometheus-client lives with the system interpreter (scripts/setup.sh).
const PYTHON: &str = "/usr/bin/python3";

/// Parses an exposition with the reference parser; one `[name, labels, value]` per sample.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps([s.name, s.labels, s.value]))
"#;

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn metrics_json(daemon: &Daemon) -> Value {
    let out = daemon.ctr(&["metrics", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn named<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    report[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {report:#}"))
}

#[test]
fn ctr_metrics_counts_every_start() {
    let daemon = Daemon::start();
    let sleeper = daemon.bundle("sleep", &["sleep", "1000"]);
    let broken = daemon.bundle("broken", &["/no/such/binary"]);
    let mut events = daemon.events();
    let ids: Vec<String> = (0..6).map(|_| unique_id("metrics")).collect();
    thread::scope(|s| {
        for id in &ids {
            let (daemon, sleeper) = (&daemon, &sleeper);
            s.spawn(move || daemon.start_container(id, sleeper));
        }
    });
    let failed = daemon
        .client()
        .start(start_request(&unique_id("broken"), &broken));
    assert!(failed.is_err(), "{failed:?}");

    let report = metrics_json(&daemon);
    let start_time = named(&report, "timers", "container-start-time");
    assert_eq!(start_time["count"], 6, "{report:#}");
    assert!(start_time["min_us"].as_u64().unwrap() > 0);
    assert!(start_time["max_us"].as_u64() >= start_time["median_us"].as_u64());
    for phase in ["container-start-queued", "container-start-runtime"] {
        assert_eq!(named(&report, "timers", phase)["count"], 6, "{phase}");
    }
    assert_eq!(named(&report, "meters", "containers-started")["count"], 6);
    assert_eq!(
        named(&report, "meters", "container-start-failures")["count"],
        1
    );
    assert_eq!(named(&report, "meters", "events")["count"], 6);
    assert_eq!(named(&report, "gauges", "containers-running")["value"], 6);
    assert_eq!(named(&report, "gauges", "subscribers")["value"], 1);
    assert!(named(&report, "gauges", "threads")["value"].as_i64() > Some(1));
    assert!(named(&report, "gauges", "fds")["value"].as_i64() > Some(6));

    for id in &ids {
        daemon.kill(id, libc::SIGKILL);
    }
    events.wait_for(6, |e| e.kind == EventKind::Exit);
    let report = metrics_json(&daemon);
    assert_eq!(named(&report, "meters", "events")["count"], 12);
    assert_eq!(named(&report, "gauges", "containers-running")["value"], 0);
    // Kept, stopped, until deleted.
    assert_eq!(named(&report, "gauges", "containers")["value"], 6);

    let table = daemon.ctr(&["metrics"]);
    assert!(table.status.success(), "{table:?}");
    let table = String::from_utf8(table.stdout).unwrap();
    let row = table
        .lines()
        .find(|l| l.starts_with("container-start-time "))
        .unwrap_or_else(|| panic!("no start-time row in\n{table}"));
    assert_eq!(row.split_whitespace().nth(1), Some("6"), "{row}");
}

/// The daemon logs the address it bound (port 0 picks a free one).
fn metrics_address(daemon: &Daemon) -> String {
    wait_until("the metrics address in the log", || {
        let log = daemon.log();
        let rest = log.split("serving Prometheus metrics at http://").nth(1)?;
        rest.split("/metrics").next().map(str::to_string)
    })
}

fn scrape(address: &str) -> Vec<Sample> {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(body)
}

fn parse(exposition: &str) -> Vec<Sample> {
    let mut python = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON}: {e} (scripts/setup.sh installs it)"));
    python
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}\n{exposition}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, labels, value): (String, BTreeMap<String, String>, f64) =
                serde_json::from_str(line).unwrap();
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

fn value_of(samples: &[Sample], name: &str, id: Option<&str>) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get("id").map(String::as_str) == id)
        .map(|s| s.value)
}

#[test]
fn prometheus_metrics_parse_and_follow_a_container() {
    let daemon = Daemon::start_with(&["--metrics-address", "127.0.0.1:0"]);
    let address = metrics_address(&daemon);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();

    let before = scrape(&address);
    assert_eq!(
        value_of(&before, "ctrd_container_start_time_seconds_count", None),
        Some(0.0)
    );
    assert!(before.iter().all(|s| !s.labels.contains_key("id")));

    let id = unique_id("prom");
    daemon.start_container(&id, &bundle);
    let running = scrape(&address);
    assert_eq!(
        value_of(&running, "ctrd_container_start_time_seconds_count", None),
        Some(1.0)
    );
    assert!(value_of(&running, "ctrd_container_start_time_seconds_bucket", None).is_some());
    assert_eq!(
        value_of(&running, "ctrd_containers_started_total", None),
        Some(1.0)
    );
    assert_eq!(
        value_of(&running, "ctrd_containers_running", None),
        Some(1.0)
    );
    assert!(value_of(&running, "ctrd_threads", None) > Some(1.0));
    assert!(value_of(&running, "ctrd_container_memory_usage_bytes", Some(&id)) > Some(0.0));
    assert_eq!(
        value_of(&running, "ctrd_container_pids", Some(&id)),
        Some(1.0)
    );
    assert!(value_of(&running, "ctrd_container_cpu_seconds_total", Some(&id)).is_some());
    let labelled = running
        .iter()
        .find(|s| s.labels.get("id") == Some(&id))
        .unwrap();
    assert_eq!(labelled.labels["namespace"], protocol::DEFAULT_NAMESPACE);

    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    let after = scrape(&address);
    assert!(
        after.iter().all(|s| s.labels.get("id") != Some(&id)),
        "gauges of {id} outlived it"
    );
    assert_eq!(value_of(&after, "ctrd_containers_running", None), Some(0.0));
    assert_eq!(value_of(&after, "ctrd_events_total", None), Some(2.0));
}

#[test]
fn other_paths_and_methods_are_refused() {
    let daemon = Daemon::start_with(&["--metrics-address", "127.0.0.1:0"]);
    let address = metrics_address(&daemon);
    for (request, status) in [
        ("GET /other HTTP/1.1", "404"),
        ("POST /metrics HTTP/1.1", "405"),
    ] {
        let mut stream = TcpStream::connect(&address).unwrap();
        write!(stream, "{request}\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request}: {response}"
        );
    }
}

#[test]
fn sigusr1_dumps_the_state_and_the_interval_logs_metrics() {
    let daemon = Daemon::start_with(&["--metrics-interval", "200ms"]);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("dump");
    let pid = daemon.start_container(&id, &bundle);
    wait_until("the periodic metrics log to count the start", || {
        daemon
            .log()
            .contains("timer container-start-time: count 1 ")
            .then_some(())
    });
    daemon.signal(libc::SIGUSR1);
    let line = format!("state dump: container default/{id} running init pid {pid}");
    wait_until("the state dump", || {
        daemon.log().contains(&line).then_some(())
    });
    let log = daemon.log();
    assert!(
        log.contains("state dump: 1 container(s): 0 starting, 1 running"),
        "{log}"
    );
    assert!(log.contains("state dump: worker pool: "), "{log}");
    assert!(log.contains("state dump: 0 event subscriber(s)"), "{log}");
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn many_concurrent_scrapes_cost_a_bounded_number_of_descriptors() {
    // From the daemon's Prometheus server: scrapes served at once (prometheus::MAX_SCRAPES).
    const MAX_SCRAPES: usize = 8;
    let daemon = Daemon::start_with(&["--metrics-address", "127.0.0.1:0"]);
    let address = metrics_address(&daemon);
    let pid = daemon.info().pid;
    let before = open_fds(pid);
    // Scrapers that never send their request: each would hold its connection for the
    // request timeout.
    let count = 200;
    let mut scrapers: Vec<TcpStream> = (0..count)
        .map(|_| {
            let stream = TcpStream::connect(&address).unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect();
    let closed = wait_until("the scrapes past the bound to be closed", || {
        let closed = scrapers
            .iter_mut()
            .map(closed_by_peer)
            .filter(|&c| c)
            .count();
        (closed >= count - MAX_SCRAPES).then_some(closed)
    });
    assert_eq!(closed, count - MAX_SCRAPES);
    let during = open_fds(pid);
    eprintln!("the daemon's descriptors: {before} before, {during} with {count} scrapers");
    assert!(
        during <= before + MAX_SCRAPES,
        "the daemon had {before} descriptors open, and {during} with {count} scrapers"
    );
    drop(scrapers);
    // A scrape that asks is answered again once the silent ones are gone.
    wait_until("a scrape to be served", || {
        let mut stream = TcpStream::connect(&address).ok()?;
        write!(stream, "GET /metrics HTTP/1.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.starts_with("HTTP/1.1 200 OK").then_some(())
    });
}
