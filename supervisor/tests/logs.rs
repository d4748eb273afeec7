//! `ctr containers logs`: what a detached container wrote, followed while it runs, kept after it
//! is gone.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use protocol::EventKind;

#[test]
fn logs_show_what_a_detached_container_printed_also_once_it_is_gone() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle(
        "chatty",
        &["sh", "-c", "echo one; echo two; echo three; echo oops >&2"],
    );
    let mut events = daemon.events();
    let id = unique_id("logs");
    daemon.start_container(&id, &bundle);
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);

    let out = daemon.ctr(&["containers", "logs", &id]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\nthree\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");

    let out = daemon.ctr(&["containers", "logs", "--tail", "2", &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "two\nthree\n");

    let out = daemon.ctr(&["containers", "logs", "never-started"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ctr: no logs for container \"never-started\"\n"
    );
}

#[test]
fn logs_follow_streams_new_lines_until_the_container_exits() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("first", &["sh", "-c", "echo first; exec sleep 1000"]);
    let id = unique_id("follow");
    daemon.start_container(&id, &bundle);
    let mut follow = daemon
        .ctr_command(&["containers", "logs", "--follow", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = BufReader::new(follow.stdout.take().unwrap());
    thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || lines.recv_timeout(DEADLINE).expect("a followed line");
    assert_eq!(next(), "first");
    // A detached exec writes where the container does: its line is new output to follow.
    daemon
        .client()
        .exec(exec_request(&id, "later", &["sh", "-c", "echo second"]))
        .unwrap();
    assert_eq!(next(), "second");
    daemon.kill(&id, libc::SIGKILL);
    let status = wait_until("logs --follow to end", || follow.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
}

/// Starts `PRINTERS` containers of `bundle` at once (each prints [`printed_lines`] and exits) and
/// checks, as each exit is reported, that all its lines are in its log file; returns how long
/// they took from the first start to the last exit.
fn run_printers(daemon: &Daemon, bundle: &Path, events: &mut Events) -> Duration {
    const PRINTERS: usize = 20;
    let ids: Vec<String> = (0..PRINTERS).map(|_| unique_id("printer")).collect();
    let began = Instant::now();
    thread::scope(|s| {
        for id in &ids {
            s.spawn(|| daemon.start_container(id, bundle));
        }
    });
    let is_printer_exit = |e: &protocol::Event| e.kind == EventKind::Exit && ids.contains(&e.id);
    for reported in 1..=PRINTERS {
        let exits = events.wait_for(reported, is_printer_exit);
        let exit = &exits[reported - 1];
        let log = daemon
            .state
            .join("default")
            .join(&exit.id)
            .join("stdout.log");
        let printed = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            printed,
            printed_lines(),
            "{}: its exit was reported before its output was in its log",
            exit.id
        );
        assert_eq!(exit.status, Some(0), "{exit:?}");
    }
    began.elapsed()
}

const PRINTER: &str = "i=0; while [ $i -lt 50 ]; do echo line-$i; i=$((i+1)); done";

fn printed_lines() -> String {
    (0..50).map(|i| format!("line-{i}\n")).collect()
}

#[test]
fn a_stdout_fifo_nobody_reads_holds_up_only_its_own_container() {
    let daemon = Daemon::start();
    let printer = daemon.bundle("printer", &["sh", "-c", PRINTER]);
    let mut events = daemon.events();
    let alone = run_printers(&daemon, &printer, &mut events);

    // `yes` as pid 1: it writes as fast as it can, and TERM does nothing to it.
    let flood = daemon.bundle("flood", &["yes"]);
    let fifo = daemon.dir.path().join("stalled.fifo");
    let reader = unread_fifo(&fifo);
    let stuck = unique_id("stuck");
    let request = protocol::StartRequest {
        stdout: Some(fifo.to_string_lossy().into_owned()),
        ..start_request(&stuck, &flood)
    };
    daemon.client().start(request).unwrap();
    wait_until_full(&reader);

    let beside_stuck = run_printers(&daemon, &printer, &mut events);
    assert!(
        beside_stuck < alone * 2 + Duration::from_secs(2),
        "beside a stalled destination the printers took {beside_stuck:?}, alone {alone:?}"
    );

    // Held back, not dropped: nothing of the stuck container's output is lost yet.
    let state = daemon.ctr(&["containers", "state", &stuck, "--format", "json"]);
    assert!(state.status.success(), "{state:?}");
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["status"], "running");
    assert_eq!(state["lost_output"]["writes"], 0, "{state}");

    // Its own exit is not held up either.
    let killed = Instant::now();
    daemon.kill(&stuck, libc::SIGKILL);
    events.wait_for(1, |e| e.id == stuck && e.kind == EventKind::Exit);
    assert!(
        killed.elapsed() < Duration::from_secs(3),
        "the stuck container's exit took {:?}",
        killed.elapsed()
    );
    drop(reader);
}

#[test]
fn output_a_destination_refuses_is_counted_as_lost_in_the_state_and_the_metrics() {
    let daemon = Daemon::start();
    let flood = daemon.bundle("flood", &["yes"]);
    let fifo = daemon.dir.path().join("closing.fifo");
    let reader = unread_fifo(&fifo);
    let id = unique_id("refused");
    let request = protocol::StartRequest {
        stdout: Some(fifo.to_string_lossy().into_owned()),
        ..start_request(&id, &flood)
    };
    daemon.client().start(request).unwrap();
    wait_until_full(&reader);
    // The reader goes: every write from now on fails with EPIPE.
    drop(reader);

    let state = wait_until("the lost writes to show in the state", || {
        let out = daemon.ctr(&["containers", "state", &id, "--format", "json"]);
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (state["lost_output"]["writes"].as_u64()? > 0).then_some(state)
    });
    assert!(
        state["lost_output"]["bytes"].as_u64().unwrap() > 0,
        "{state}"
    );
    let table = daemon.ctr(&["containers", "state", &id]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("LOST OUTPUT"),
        "{table:?}"
    );

    let out = daemon.ctr(&["metrics", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let metrics: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lost = metrics["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "output-lost-writes")
        .unwrap_or_else(|| panic!("no output-lost-writes meter: {metrics}"));
    assert!(lost["count"].as_u64().unwrap() > 0, "{lost}");
    daemon.kill(&id, libc::SIGKILL);
}
