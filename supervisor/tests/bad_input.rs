//! Requests that must fail with a clear error, leave nothing behind, and keep the daemon serving.

mod common;

use common::*;
use protocol::{ErrorKind, KillRequest, StartRequest, Status, DEFAULT_NAMESPACE};

fn start_err(daemon: &Daemon, req: StartRequest) -> (ErrorKind, String) {
    let err = daemon.client().start(req).unwrap_err();
    (err.kind().expect("a typed daemon error"), err.to_string())
}

#[test]
fn bad_bundles_are_refused_and_leave_no_state() {
    let daemon = Daemon::start();
    let good = daemon.bundle("sleep", &["sleep", "1000"]);
    let no_config = daemon.dir.path().join("empty");
    std::fs::create_dir(&no_config).unwrap();
    let cases = [
        ("relative/bundle".to_string(), "must be absolute"),
        ("/no/such/bundle".to_string(), "No such file or directory"),
        (no_config.to_string_lossy().into_owned(), "no config.json"),
        (
            good.join("config.json").to_string_lossy().into_owned(),
            "not a directory",
        ),
    ];
    for (bundle, expected) in cases {
        let id = unique_id("badbundle");
        let mut req = start_request(&id, &good);
        req.bundle = bundle.clone();
        let (kind, msg) = start_err(&daemon, req);
        assert_eq!(kind, ErrorKind::InvalidArgument, "{bundle}: {msg}");
        assert!(msg.contains(expected), "{bundle}: {msg}");
        assert!(!daemon.state.join("default").join(&id).exists());
    }
    assert!(daemon.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());
    assert!(daemon.runc_leftovers().is_empty());
    // Still serving.
    let id = unique_id("after");
    daemon.start_container(&id, &good);
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn invalid_ids_are_refused_before_touching_a_path() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let long = "x".repeat(300);
    for id in ["../x", "", long.as_str(), "a/b", ".hidden"] {
        let (kind, msg) = start_err(&daemon, start_request(id, &bundle));
        assert_eq!(kind, ErrorKind::InvalidArgument, "{id:?}: {msg}");
        assert!(msg.starts_with("invalid container id"), "{id:?}: {msg}");
    }
    let mut req = start_request("fine", &bundle);
    req.namespace = "../etc".into();
    let (kind, msg) = start_err(&daemon, req);
    assert_eq!(kind, ErrorKind::InvalidArgument);
    assert!(msg.starts_with("invalid namespace"), "{msg}");
    // Nothing was created next to the state dir or in it besides the daemon's own directories.
    let mut entries: Vec<String> = std::fs::read_dir(&daemon.state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["events", "keeper-exits.log", "runc", "runc-logs"]);
    assert!(!daemon.dir.path().join("x").exists());
}

#[test]
fn a_duplicate_id_is_refused_and_the_first_container_keeps_running() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("dup");
    let pid = daemon.start_container(&id, &bundle);
    let (kind, msg) = start_err(&daemon, start_request(&id, &bundle));
    assert_eq!(kind, ErrorKind::AlreadyExists);
    assert_eq!(msg, format!("container \"{id}\" already exists"));
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!((state.status, state.pid), (Status::Running, Some(pid)));
    assert!(process_exists(pid));
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn unknown_containers_and_bad_signals_are_clear_errors() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let err = daemon
        .client()
        .state(DEFAULT_NAMESPACE, "nope")
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound));
    assert_eq!(err.to_string(), "container \"nope\" not found");
    let id = unique_id("sig");
    daemon.start_container(&id, &bundle);
    for signal in [0, -1, 65, 1000] {
        let err = daemon
            .client()
            .kill(KillRequest {
                namespace: DEFAULT_NAMESPACE.into(),
                id: id.clone(),
                signal,
                all: false,
            })
            .unwrap_err();
        assert_eq!(err.kind(), Some(ErrorKind::InvalidArgument), "{signal}");
    }
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn ctr_reports_errors_on_one_line_with_a_non_zero_exit() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let bundle = bundle.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["containers", "kill", "ghost"],
            "ctr: container \"ghost\" not found\n",
        ),
        (
            &["containers", "start", "../x", bundle],
            "ctr: invalid container id",
        ),
        (
            &["containers", "state", "ghost"],
            "ctr: container \"ghost\" not found\n",
        ),
        (&["containers", "kill", "--signal", "BOGUS", "x"], "ctr: "),
    ];
    for (args, expected) in cases {
        let out = daemon.ctr(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {stderr:?}");
        assert!(stderr.starts_with(expected), "{args:?}: {stderr:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
    }
    let unreachable = std::process::Command::new(ctr_binary())
        .args(["--address", "/nonexistent/ctrd.sock", "containers"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(unreachable.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.starts_with("ctr: cannot connect to ctrd at /nonexistent/ctrd.sock"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
}
