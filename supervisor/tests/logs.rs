//! `ctr containers logs`: what a detached container wrote, followed while it runs, kept after it
//! is gone.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;

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
    assert_eq!(out.status.code(), Some(1));
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
