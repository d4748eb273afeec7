//! SIGTERM to the daemon, and the socket's life around it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use protocol::{EventKind, DEFAULT_NAMESPACE};

#[test]
fn sigterm_terms_every_container_then_exits_zero_and_removes_the_socket() {
    let mut daemon = Daemon::start();
    let script = "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.05; done";
    let bundle = daemon.bundle("trap", &["sh", "-c", script]);
    let mut events = daemon.events();
    let ids: Vec<String> = (0..5).map(|_| unique_id("term")).collect();
    let logs = daemon.state.join("default");
    let stdout =
        |id: &str| std::fs::read_to_string(logs.join(id).join("stdout.log")).unwrap_or_default();
    for id in &ids {
        daemon.start_container(id, &bundle);
    }
    for id in &ids {
        wait_until("the TERM trap", || {
            stdout(id).contains("ready").then_some(())
        });
    }

    let signalled = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(5),
        "exit took {took:?}, the grace period is 5s"
    );
    assert!(!daemon.socket.exists());
    for id in &ids {
        assert!(stdout(id).contains("got-term"), "{id}: {}", stdout(id));
    }
    let exits = events.wait_for(5, |e| e.kind == EventKind::Exit);
    assert!(exits.iter().all(|e| e.status == Some(0)), "{exits:?}");
    assert!(daemon.runc_leftovers().is_empty());
}

#[test]
fn containers_that_ignore_term_are_killed_after_the_grace_period() {
    let mut daemon = Daemon::start_with(&["--shutdown-timeout", "300ms"]);
    // A pid-1 `sleep` has no handler for TERM, so TERM does nothing to it.
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let id = unique_id("stubborn");
    daemon.start_container(&id, &bundle);
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit().success());
    let exits = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exits[0].status, Some(137));
    assert!(daemon.runc_leftovers().is_empty());
}

#[test]
fn a_stalled_output_destination_does_not_hold_shutdown_past_its_grace() {
    let grace = Duration::from_secs(3);
    let mut daemon = Daemon::start_with(&["--shutdown-timeout", "3s"]);
    // Floods its stdout, and exits at once on TERM: all a shutdown then waits for is the
    // cleanup after its exit, which would wait for output its destination never takes.
    let bundle = daemon.bundle("flood", &["sh", "-c", "trap 'exit 0' TERM; yes & wait"]);
    let fifo = daemon.dir.path().join("stalled.fifo");
    let reader = unread_fifo(&fifo);
    let mut events = daemon.events();
    let id = unique_id("stalled");
    let request = protocol::StartRequest {
        stdout: Some(fifo.to_string_lossy().into_owned()),
        ..start_request(&id, &bundle)
    };
    daemon.client().start(request).unwrap();
    wait_until_full(&reader);

    let signalled = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < grace,
        "exit took {took:?}, the grace period is {grace:?}"
    );
    assert!(!daemon.log().contains("still running"), "{}", daemon.log());
    let exits = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exits[0].status, Some(0));
    drop(reader);
}

#[test]
fn a_second_daemon_on_a_live_socket_is_refused_and_a_stale_socket_is_replaced() {
    let mut daemon = Daemon::start();
    let second = Command::new(env!("CARGO_BIN_EXE_ctrd"))
        .arg("--state-dir")
        .arg(daemon.dir.path().join("other-state"))
        .arg("--socket")
        .arg(&daemon.socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another ctrd is already serving on"),
        "{stderr}"
    );
    assert!(
        daemon.client().list(DEFAULT_NAMESPACE).is_ok(),
        "the first one still serves"
    );

    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let orphan = unique_id("orphan");
    let pid = daemon.start_container(&orphan, &bundle);
    daemon.kill_daemon();
    assert!(
        daemon.socket.exists(),
        "a killed daemon leaves its socket behind"
    );
    daemon.spawn(&[]);
    assert!(daemon.log().contains("replacing stale socket"));
    // The container the killed ctrd started is this one's now.
    let listed = daemon.client().list(DEFAULT_NAMESPACE).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].pid),
        (orphan.as_str(), Some(pid))
    );
}

#[test]
fn the_socket_is_private_to_root() {
    use std::os::unix::fs::PermissionsExt;
    let daemon = Daemon::start();
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
