//! The lifecycle model on real runc: a stopped container is kept, with its exit, until it is
//! deleted; it survives daemon restarts; it can be started again; `--rm` keeps nothing.

mod common;

use std::path::Path;

use common::*;
use protocol::{EventKind, Status, DEFAULT_NAMESPACE};

/// Runs ctr and returns its stdout; panics with its stderr if it fails.
fn ctr_ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.ctr(args);
    assert!(
        out.status.success(),
        "ctr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The ids `ctr containers list --filter FILTER` prints, and each one's JSON.
fn listed(daemon: &Daemon, filter: &str) -> Vec<serde_json::Value> {
    let out = ctr_ok(
        daemon,
        &["containers", "list", "--filter", filter, "--format", "json"],
    );
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    list.as_array().unwrap().clone()
}

/// The record files under the state dir's namespace directory.
fn records(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join(DEFAULT_NAMESPACE))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_stopped_container_is_kept_with_its_exit_until_deleted() {
    let daemon = Daemon::start();
    let script = "echo hello; exit 3";
    let bundle = daemon.bundle("three", &["sh", "-c", script]);
    let sleeper = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let (id, running) = (unique_id("kept"), unique_id("running"));
    daemon.start_container(&running, &sleeper);
    daemon.start_container(&id, &bundle);
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);

    // Listed with every status; the filter picks one; JSON carries the status and the exit.
    let all = listed(&daemon, "id~=.");
    assert_eq!(all.len(), 2, "{all:?}");
    let stopped = listed(&daemon, "status==stopped");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(stopped[0]["id"], id.as_str());
    assert_eq!(stopped[0]["status"], "stopped");
    assert_eq!(stopped[0]["exit_status"], 3);
    assert_eq!(stopped[0]["oom_killed"], false);
    assert!(stopped[0]["exited"].is_string(), "{}", stopped[0]);
    let running_now = listed(&daemon, "status==running");
    assert_eq!(running_now.len(), 1);
    assert_eq!(running_now[0]["id"], running.as_str());
    assert!(running_now[0]["exit_status"].is_null());
    let table = ctr_ok(&daemon, &["containers", "list"]);
    assert!(table.contains("stopped (3)"), "{table}");

    // State shows the exit; the logs are still there.
    let state = ctr_ok(&daemon, &["containers", "state", &id]);
    assert!(state.contains("EXIT STATUS   3"), "{state}");
    let logs = ctr_ok(&daemon, &["containers", "logs", &id]);
    assert_eq!(logs, "hello\n");

    // A running one is not deleted without --force: one line, nothing changed.
    let out = daemon.ctr(&["containers", "delete", &running]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "ctr: container \"{running}\" is running; stop it first, or delete it with --force\n"
        )
    );
    assert_eq!(listed(&daemon, "status==running").len(), 1);

    // Started again from its bundle: the same id, a new life.
    ctr_ok(&daemon, &["containers", "start", &id]);
    let exits = events.wait_for(2, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exits[1].status, Some(3));
    // The last life's record goes once the new one runs; one record per container.
    wait_until("one record per container", || {
        (records(&daemon.state).len() == 2).then_some(())
    });

    // `rm --force` kills the running one and returns once it is gone; `rm` the stopped one.
    ctr_ok(&daemon, &["containers", "rm", "--force", &running, &id]);
    assert!(daemon.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());
    assert!(
        records(&daemon.state).is_empty(),
        "{:?}",
        records(&daemon.state)
    );
    assert!(daemon.runc_leftovers().is_empty());
    assert!(!daemon.state.join(DEFAULT_NAMESPACE).join(&id).exists());
    let exit = events.wait_for(1, |e| e.id == running && e.kind == EventKind::Exit);
    assert_eq!(exit[0].status, Some(137));
    // The id is free again.
    daemon.start_container(&id, &bundle);
}

#[test]
fn a_stopped_container_survives_a_daemon_sigkill_and_a_restart() {
    let mut daemon = Daemon::start();
    let bundle = daemon.bundle("seven", &["sh", "-c", "exit 7"]);
    let mut events = daemon.events();
    let id = unique_id("survivor");
    daemon.start_container(&id, &bundle);
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);

    let stopped = |daemon: &Daemon| {
        let c = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
        (c.status, c.exit.and_then(|e| e.status))
    };
    assert_eq!(stopped(&daemon), (Status::Stopped, Some(7)));
    daemon.kill_daemon_process();
    assert_eq!(stopped(&daemon), (Status::Stopped, Some(7)));
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit().success());
    daemon.spawn(&[]);
    assert_eq!(stopped(&daemon), (Status::Stopped, Some(7)));
    ctr_ok(&daemon, &["containers", "delete", &id]);
    assert!(records(&daemon.state).is_empty());
}

#[test]
fn a_container_started_with_rm_leaves_nothing() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("hello", &["sh", "-c", "echo hello"]);
    let mut events = daemon.events();
    let id = unique_id("rm");
    let bundle_arg = bundle.to_str().unwrap();
    ctr_ok(&daemon, &["containers", "start", "--rm", &id, bundle_arg]);
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    // A delete meanwhile returns once the deletion in flight is done; after it, not found.
    let request = protocol::DeleteRequest {
        namespace: DEFAULT_NAMESPACE.into(),
        id: id.clone(),
        force: false,
    };
    match daemon.client().delete(request) {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind(), Some(protocol::ErrorKind::NotFound), "{e}"),
    }
    assert!(daemon.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());
    assert!(
        records(&daemon.state).is_empty(),
        "{:?}",
        records(&daemon.state)
    );
    assert!(daemon.runc_leftovers().is_empty());
    let dir = daemon.state.join(DEFAULT_NAMESPACE);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|e| e.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?} left in {}", dir.display());
}
