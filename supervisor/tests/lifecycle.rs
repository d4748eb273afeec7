//! Starting, listing, signalling and reaping real containers through the daemon.

mod common;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::thread;

use common::*;
use protocol::{EventKind, KillRequest, Status, DEFAULT_NAMESPACE};

#[test]
fn twenty_concurrent_containers_start_run_and_die_with_137() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let ids: Vec<String> = (0..20).map(|_| unique_id("c20")).collect();

    let pids: HashMap<String, u32> = thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let (daemon, bundle) = (&daemon, &bundle);
                s.spawn(move || (id.clone(), daemon.start_container(id, bundle)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let listed = daemon.client().list(DEFAULT_NAMESPACE).unwrap();
    assert_eq!(listed.len(), 20);
    for c in &listed {
        assert_eq!(c.status, Status::Running, "{c:?}");
        let pid = c.pid.expect("a running container has a pid");
        assert_eq!(pids[&c.id], pid);
        assert!(process_exists(pid), "pid {pid} of {} is not in /proc", c.id);
        assert_eq!(c.bundle, bundle.to_string_lossy());
    }

    for id in &ids {
        daemon.kill(id, libc::SIGKILL);
    }
    let exits = events.wait_for(20, |e| e.kind == EventKind::Exit);
    for exit in &exits {
        assert_eq!(exit.status, Some(137), "{exit:?}");
        assert_eq!(exit.pid, pids[&exit.id]);
        assert_eq!(exit.process, "init");
    }
    for id in &ids {
        assert_eq!(events.exits_of(id).len(), 1, "{id} exits");
        let starts = events.of(id, EventKind::StartContainer);
        assert_eq!(starts.len(), 1, "{id} starts");
        let pos = |kind| {
            events
                .seen
                .iter()
                .position(|e| &e.id == id && e.kind == kind)
        };
        assert!(pos(EventKind::StartContainer) < pos(EventKind::Exit));
    }
    // Each is kept, stopped with its status, until deleted.
    let listed = daemon.client().list(DEFAULT_NAMESPACE).unwrap();
    assert_eq!(listed.len(), 20);
    assert!(all_stopped(&listed), "{listed:#?}");
    assert!(listed.iter().all(|c| c.exit.unwrap().status == Some(137)));
    assert!(
        daemon.runc_leftovers().is_empty(),
        "{:?}",
        daemon.runc_leftovers()
    );
}

/// The runtime answers each start only once the keeper has reaped its init, so every start
/// takes the path where the init is gone before the daemon takes hold of it.
#[test]
fn a_container_that_exits_before_its_start_returns_is_reported_once() {
    let daemon = Daemon::with_runc_wrapper("run", "exit3", UNTIL_REAPED);
    let quick = daemon.bundle("exit3", &["sh", "-c", "exit 3"]);
    let sleeper = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let ids: Vec<String> = (0..10).map(|_| unique_id("exit3")).collect();
    thread::scope(|s| {
        for id in &ids {
            let (daemon, quick) = (&daemon, &quick);
            s.spawn(move || daemon.start_container(id, quick));
        }
    });
    events.wait_for(10, |e| e.kind == EventKind::Exit && ids.contains(&e.id));
    events.barrier(&daemon, &sleeper);
    for id in &ids {
        let exits = events.exits_of(id);
        assert_eq!(exits.len(), 1, "{id}: {exits:?}");
        assert_eq!(exits[0].status, Some(3));
        let starts = events.of(id, EventKind::StartContainer);
        assert_eq!(
            starts.len(),
            1,
            "{id}: a start-container event precedes the exit"
        );
        assert_eq!(starts[0].pid, exits[0].pid);
    }
    assert!(all_stopped(
        &daemon.client().list(DEFAULT_NAMESPACE).unwrap()
    ));
}

/// runc's pid file names a process other than the one runc started, as it does when that one
/// exited at once and its pid was taken again before the daemon took hold of it. The runtime
/// here rewrites the pid file to name a process of the test's own: the daemon must treat the
/// init as gone, and never signal the stranger.
#[test]
fn a_start_whose_pid_names_another_process_never_signals_it() {
    let mut stranger = Command::new("sleep").arg("1000").spawn().unwrap();
    let rewrite = format!("echo {} > \"$pid_file\"", stranger.id());
    let mut daemon = Daemon::with_runc_wrapper("run", "stranger", &rewrite);
    let bundle = daemon.bundle("true", &["true"]);
    let id = unique_id("stranger");
    assert_eq!(daemon.start_container(&id, &bundle), stranger.id());
    let out = daemon.ctr(&["containers", "kill", "--signal", "KILL", &id]);
    // A fatal signal sets the status the moment it is sent: the first one sent is the one seen.
    signal_pid(stranger.id(), libc::SIGTERM);
    assert_eq!(
        stranger.wait().unwrap().signal(),
        Some(libc::SIGTERM),
        "ctrd signalled a process that is not its container's"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("ctr: container \"{id}\" is exiting\n"),
        "{out:?}"
    );
    // The daemon waits for an exit of the stranger's pid that its keeper will never see.
    daemon.kill_daemon();
}

#[test]
fn runc_keeps_its_own_exit_status_while_the_reaper_runs() {
    // A start whose runc fails: the worker must see runc's real failure, not lose it to the reaper.
    // A start that succeeds is answered only once the keeper has reaped its init, so the reaper
    // certainly runs while that runc's status is still to be read.
    let daemon = Daemon::with_runc_wrapper("run", "race", UNTIL_REAPED);
    let missing = daemon.bundle("missing", &["/no/such/binary"]);
    let quick = daemon.bundle("true", &["true"]);
    let results: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|n| {
                let bundle = if n % 2 == 0 { &missing } else { &quick };
                let daemon = &daemon;
                s.spawn(move || {
                    let id = unique_id("race");
                    let result = daemon.client().start(start_request(&id, bundle));
                    (n, result)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (n, result) in results {
        if n % 2 == 0 {
            let err = result
                .expect_err("runc fails to exec a missing binary")
                .to_string();
            assert!(err.contains("/no/such/binary"), "{err}");
        } else {
            assert!(result.is_ok(), "{result:?}");
        }
    }
}

#[test]
fn a_fake_runtime_reports_its_true_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("runtime");
    std::fs::write(&fake, "#!/bin/sh\nexit 42\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let daemon = Daemon::start_with(&["--runtime", fake.to_str().unwrap()]);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let err = daemon
        .client()
        .start(start_request(&unique_id("fake"), &bundle))
        .unwrap_err();
    assert!(err.to_string().contains("exited with status 42"), "{err}");
    assert_eq!(err.kind(), Some(protocol::ErrorKind::Runtime));
    assert!(daemon.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());
}

#[test]
fn kill_reaches_the_init_and_a_stopped_or_deleted_container_cannot_be_signalled() {
    let daemon = Daemon::start();
    let script = "trap 'exit 7' USR1; echo ready; while true; do sleep 0.05; done";
    let trap = daemon.bundle("trap", &["sh", "-c", script]);
    let mut events = daemon.events();
    let id = unique_id("usr1");
    daemon.start_container(&id, &trap);
    let stdout = daemon.state.join("default").join(&id).join("stdout.log");
    wait_until("the trap to be installed", || {
        let out = std::fs::read_to_string(&stdout).ok()?;
        out.contains("ready").then_some(())
    });
    daemon.kill(&id, libc::SIGUSR1);
    let exits = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exits[0].status, Some(7));
    let kill = || {
        daemon
            .client()
            .kill(KillRequest {
                namespace: DEFAULT_NAMESPACE.into(),
                id: id.clone(),
                signal: libc::SIGKILL,
                all: false,
            })
            .unwrap_err()
    };
    assert_eq!(kill().to_string(), format!("container \"{id}\" is stopped"));
    daemon.delete(&id);
    assert_eq!(kill().to_string(), format!("container \"{id}\" not found"));
}

/// Without `--all` only the init is signalled; with it, every process of the container is.
/// Each of the four processes (the init and three children) says when USR1 reaches it.
#[test]
fn kill_all_signals_every_process_through_runc() {
    let daemon = Daemon::start();
    let script = "for n in 1 2 3; do \
                      (trap \"echo usr1-child-$n\" USR1; echo ready-$n; \
                       while :; do sleep 0.01; done) & \
                  done; \
                  trap 'echo usr1-init' USR1; while :; do wait; done";
    let bundle = daemon.bundle("four", &["sh", "-c", script]);
    let mut events = daemon.events();
    let id = unique_id("all");
    daemon.start_container(&id, &bundle);
    for n in 1..=3 {
        wait_for_output(&daemon, &id, &format!("ready-{n}"));
    }
    let kill = |all| {
        daemon
            .client()
            .kill(KillRequest {
                namespace: DEFAULT_NAMESPACE.into(),
                id: id.clone(),
                signal: libc::SIGUSR1,
                all,
            })
            .unwrap()
    };
    let stdout = daemon.state.join("default").join(&id).join("stdout.log");
    let signalled = |process: &str| {
        let out = std::fs::read_to_string(&stdout).unwrap();
        out.matches(&format!("usr1-{process}\n")).count()
    };

    kill(false);
    wait_for_output(&daemon, &id, "usr1-init");
    kill(true);
    wait_until("USR1 to reach every process", || {
        let children: Vec<usize> = (1..=3).map(|n| signalled(&format!("child-{n}"))).collect();
        (signalled("init") == 2 && children == [1, 1, 1]).then_some(())
    });

    daemon.kill(&id, libc::SIGKILL);
    let exits = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exits[0].status, Some(137));
}
