//! `stats` read from real containers' cgroups: CPU, memory, pids, and every container at once.

mod common;

use common::*;
use protocol::{ContainerStats, ErrorKind, DEFAULT_NAMESPACE};

fn stats_of(daemon: &Daemon, id: &str) -> ContainerStats {
    let mut stats = daemon
        .client()
        .stats(DEFAULT_NAMESPACE, &[id.to_string()])
        .unwrap();
    assert_eq!(stats.len(), 1);
    stats.remove(0)
}

#[test]
fn cpu_time_grows_while_a_container_burns_cpu() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("burn", &["sh", "-c", "while :; do :; done"]);
    let id = unique_id("burn");
    let pid = daemon.start_container(&id, &bundle);
    let first = stats_of(&daemon, &id);
    assert_eq!((first.id.as_str(), first.pid), (id.as_str(), pid));
    let later = wait_until("cpu time to grow", || {
        let later = stats_of(&daemon, &id);
        (later.cpu.usage_ns > first.cpu.usage_ns).then_some(later)
    });
    assert!(later.read_at > first.read_at);
    if !later.cpu.per_cpu_ns.is_empty() {
        let sum: u64 = later.cpu.per_cpu_ns.iter().sum();
        assert!(sum > 0);
    }
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn memory_shows_what_the_container_allocated() {
    let daemon = Daemon::start();
    let script = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=50 2>/dev/null; echo ready; \
                  exec sleep 1000";
    let bundle = daemon.bundle("fill", &["sh", "-c", script]);
    set_memory_limit(&bundle, 256 << 20);
    let id = unique_id("mem");
    daemon.start_container(&id, &bundle);
    wait_for_output(&daemon, &id, "ready");
    let stats = stats_of(&daemon, &id);
    assert!(stats.memory.usage >= 50 << 20, "{:?}", stats.memory);
    assert_eq!(stats.memory.limit, Some(256 << 20));
    assert!(stats.memory.max_usage.unwrap_or(u64::MAX) >= 50 << 20);
    // tmpfs pages are page cache, not anonymous memory.
    assert!(stats.memory.cache >= 50 << 20, "{:?}", stats.memory);
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn pids_count_the_container_processes() {
    let daemon = Daemon::start();
    let script = "sleep 1000 & sleep 1000 & sleep 1000 & sleep 1000 & echo ready; wait";
    let bundle = daemon.bundle("five", &["sh", "-c", script]);
    let id = unique_id("pids");
    daemon.start_container(&id, &bundle);
    wait_for_output(&daemon, &id, "ready");
    let stats = stats_of(&daemon, &id);
    assert!((4..=6).contains(&stats.pids.current), "{:?}", stats.pids);
    daemon
        .client()
        .kill(protocol::KillRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            id: id.clone(),
            signal: libc::SIGKILL,
            all: true,
        })
        .unwrap();
}

#[test]
fn stats_without_ids_has_one_row_per_running_container() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut ids: Vec<String> = (0..5).map(|_| unique_id("all")).collect();
    for id in &ids {
        daemon.start_container(id, &bundle);
    }
    ids.sort();
    let stats = daemon.client().stats(DEFAULT_NAMESPACE, &[]).unwrap();
    let got: Vec<&str> = stats.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(got, ids);
    // runc's init may still be a threaded Go process for an instant after `runc run -d`
    // returns, until its exec of `sleep` completes.
    wait_until("every container to be one sleep", || {
        let stats = daemon.client().stats(DEFAULT_NAMESPACE, &[]).unwrap();
        stats.iter().all(|s| s.pids.current == 1).then_some(())
    });

    let out = daemon.ctr(&["containers", "stats", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows[0]["cpu_percent"].is_number(), "{json}");
    let out = daemon.ctr(&["containers", "stats", &ids[0], &ids[1]]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("ID "), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");

    let err = daemon
        .client()
        .stats(DEFAULT_NAMESPACE, &[ids[0].clone(), "nope".into()])
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound));
    for id in &ids {
        daemon.kill(id, libc::SIGKILL);
    }
}

#[test]
fn stats_stream_prints_a_json_line_per_container_per_second() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("stream");
    daemon.start_container(&id, &bundle);
    let mut child = std::process::Command::new(ctr_binary())
        .arg("--address")
        .arg(&daemon.socket)
        .args(["containers", "stats", "--stream", "--format", "json", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        let row: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(row["id"], id.as_str());
        assert!(row["cpu_percent"].is_number(), "{row}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    daemon.kill(&id, libc::SIGKILL);
}
