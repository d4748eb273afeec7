//! Exec processes in running containers, with real runc: their exits, their stdio through the
//! client's FIFOs, terminals, and the bad requests.

mod common;

use std::collections::HashMap;
use std::thread;

use common::*;
use protocol::{ErrorKind, EventKind, KillProcessRequest, Status, DEFAULT_NAMESPACE};

#[test]
fn fifty_concurrent_execs_each_report_their_own_status() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("exec50");
    daemon.start_container(&id, &bundle);
    let mut events = daemon.events();

    let pids: HashMap<String, u32> = thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|n| {
                let (daemon, id) = (&daemon, &id);
                s.spawn(move || {
                    let name = format!("p{n}");
                    let script = format!("exit {n}");
                    let req = exec_request(id, &name, &["sh", "-c", &script]);
                    let pid = daemon
                        .client()
                        .exec(req)
                        .unwrap_or_else(|e| panic!("exec {name}: {e}"));
                    (name, pid)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let exits = events.wait_for(50, |e| e.id == id && e.kind == EventKind::Exit);
    let mut seen = HashMap::new();
    for exit in &exits {
        let n: i32 = exit.process.trim_start_matches('p').parse().unwrap();
        assert_eq!(exit.status, Some(n), "{exit:?}");
        assert_eq!(exit.pid, pids[&exit.process], "{exit:?}");
        assert!(
            seen.insert(exit.process.clone(), ()).is_none(),
            "twice: {exit:?}"
        );
    }
    assert_eq!(seen.len(), 50);
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(state.status, Status::Running);
    let names: Vec<&str> = state.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["init"], "only the init is left");
    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| {
        e.id == id && e.process == "init" && e.kind == EventKind::Exit
    });
}

#[test]
fn an_exec_that_exits_at_once_is_reported_once() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("exectrue");
    daemon.start_container(&id, &bundle);
    let mut events = daemon.events();
    let names: Vec<String> = (0..10).map(|n| format!("t{n}")).collect();
    thread::scope(|s| {
        for name in &names {
            let (daemon, id) = (&daemon, &id);
            s.spawn(move || {
                daemon
                    .client()
                    .exec(exec_request(id, name, &["true"]))
                    .unwrap()
            });
        }
    });
    events.wait_for(10, |e| e.id == id && e.kind == EventKind::Exit);
    // Everything emitted for those execs has arrived once the init's exit has.
    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| {
        e.id == id && e.process == "init" && e.kind == EventKind::Exit
    });
    for name in &names {
        let exits: Vec<_> = events
            .exits_of(&id)
            .into_iter()
            .filter(|e| &e.process == name)
            .collect();
        assert_eq!(exits.len(), 1, "{name}: {exits:?}");
        assert_eq!(exits[0].status, Some(0));
    }
}

#[test]
fn execs_still_running_are_reported_before_the_init() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("execinit");
    daemon.start_container(&id, &bundle);
    let mut events = daemon.events();
    for name in ["a", "b", "c"] {
        daemon
            .client()
            .exec(exec_request(&id, name, &["sleep", "1000"]))
            .unwrap();
    }
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    let listed: Vec<(&str, &[String])> = state
        .processes
        .iter()
        .map(|p| (p.name.as_str(), p.args.as_slice()))
        .collect();
    let sleep = ["sleep".to_string(), "1000".to_string()];
    assert_eq!(
        listed,
        [
            ("init", &sleep[..]),
            ("a", &sleep[..]),
            ("b", &sleep[..]),
            ("c", &sleep[..])
        ]
    );

    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| {
        e.id == id && e.process == "init" && e.kind == EventKind::Exit
    });
    let exits = events.exits_of(&id);
    let order: Vec<&str> = exits.iter().map(|e| e.process.as_str()).collect();
    assert_eq!(order.len(), 4, "{exits:?}");
    assert_eq!(order.last(), Some(&"init"), "{exits:?}");
    for exit in &exits {
        assert_eq!(exit.status, Some(137), "{exit:?}");
    }
    assert!(daemon.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());
    assert!(daemon.runc_leftovers().is_empty());
}

#[test]
fn kill_with_a_process_name_signals_only_that_process() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("execkill");
    daemon.start_container(&id, &bundle);
    let mut events = daemon.events();
    let pid = daemon
        .client()
        .exec(exec_request(&id, "worker", &["sleep", "1000"]))
        .unwrap();
    let out = daemon.ctr(&[
        "containers",
        "kill",
        "--pid",
        "worker",
        "--signal",
        "KILL",
        &id,
    ]);
    assert!(out.status.success(), "{out:?}");
    let exit = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exit[0].process, "worker");
    assert_eq!(exit[0].pid, pid);
    assert_eq!(exit[0].status, Some(137));
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(state.status, Status::Running);

    let err = daemon
        .client()
        .kill_process(KillProcessRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            id: id.clone(),
            process: "worker".into(),
            signal: libc::SIGKILL,
        })
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound), "{err}");
    assert_eq!(
        err.to_string(),
        format!("process \"worker\" not found in container \"{id}\"")
    );
    daemon.kill(&id, libc::SIGKILL);
}
