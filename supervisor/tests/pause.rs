//! Pausing and resuming real containers, and signals sent to a paused one.

mod common;

use std::process::Command;
use std::sync::Barrier;

use common::*;
use protocol::{ErrorKind, EventKind, KillRequest, Status, DEFAULT_NAMESPACE};
use runtime::Cgroup;

/// Prints 1, 2, 3, ... to its stdout, a line every 10 ms.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done";

/// The last number a counter container printed.
fn counter(daemon: &Daemon, id: &str) -> u64 {
    let stdout = daemon.state.join("default").join(id).join("stdout.log");
    let out = std::fs::read_to_string(stdout).unwrap_or_default();
    out.lines()
        .rev()
        .find_map(|line| line.parse().ok())
        .unwrap_or(0)
}

/// The scheduler state letter of a process (`D` for a frozen one).
fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.chars().next().unwrap()
}

fn status(daemon: &Daemon, id: &str) -> Status {
    daemon.client().state(DEFAULT_NAMESPACE, id).unwrap().status
}

fn ctr_ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.ctr(args);
    assert!(out.status.success(), "ctr {args:?}: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn pause_freezes_the_container_and_resume_thaws_it() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("counter", &["sh", "-c", COUNTER]);
    let mut events = daemon.events();
    let (id, witness) = (unique_id("pause"), unique_id("witness"));
    let pid = daemon.start_container(&id, &bundle);
    daemon.start_container(&witness, &bundle);
    wait_until("the counter to count", || {
        (counter(&daemon, &id) > 0).then_some(())
    });
    let cgroup = Cgroup::of_pid(pid).unwrap();

    ctr_ok(&daemon, &["containers", "pause", &id]);
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Pause);
    assert_eq!(status(&daemon, &id), Status::Paused);
    let freezer = cgroup.freezer_state().unwrap();
    assert!(freezer == "FROZEN" || freezer == "1", "{freezer}");
    assert_eq!(process_state(pid), 'D');
    // A frozen container's cgroup still reads.
    let stats = daemon
        .client()
        .stats(DEFAULT_NAMESPACE, std::slice::from_ref(&id))
        .unwrap();
    assert_eq!(stats[0].pid, pid);
    // While a running twin counts on by 20, the paused counter does not move.
    let frozen_at = counter(&daemon, &id);
    let witness_at = counter(&daemon, &witness);
    wait_until("the witness to count on", || {
        (counter(&daemon, &witness) >= witness_at + 20).then_some(())
    });
    assert_eq!(counter(&daemon, &id), frozen_at);

    ctr_ok(&daemon, &["containers", "resume", &id]);
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Resume);
    assert_eq!(status(&daemon, &id), Status::Running);
    wait_until("the counter to count again", || {
        (counter(&daemon, &id) > frozen_at).then_some(())
    });
    let pause = events.of(&id, EventKind::Pause);
    let resume = events.of(&id, EventKind::Resume);
    assert_eq!((pause.len(), resume.len()), (1, 1));
    assert_eq!(pause[0].pid, pid);
    for id in [&id, &witness] {
        daemon.kill(id, libc::SIGKILL);
    }
}

#[test]
fn a_kill_sent_to_a_paused_container_lands_when_it_resumes() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let id = unique_id("pkill");
    daemon.start_container(&id, &bundle);
    ctr_ok(&daemon, &["containers", "pause", &id]);

    let note = ctr_ok(&daemon, &["containers", "kill", "--signal", "KILL", &id]);
    assert!(
        note.contains("is paused: signal 9 is delivered when it is resumed"),
        "{note}"
    );
    // A frozen task holds the KILL pending: it cannot have exited yet.
    assert_eq!(status(&daemon, &id), Status::Paused);

    ctr_ok(&daemon, &["containers", "resume", &id]);
    let exits = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exits[0].status, Some(137));
    assert!(!exits[0].oom_killed);
}

#[test]
fn kill_all_thaws_a_paused_container_as_runc_does() {
    let daemon = Daemon::start();
    let script = "trap 'echo usr1' USR1; echo ready; while :; do sleep 0.01; done";
    let bundle = daemon.bundle("trap", &["sh", "-c", script]);
    let mut events = daemon.events();
    let id = unique_id("pall");
    daemon.start_container(&id, &bundle);
    wait_for_output(&daemon, &id, "ready");
    ctr_ok(&daemon, &["containers", "pause", &id]);

    let note = ctr_ok(
        &daemon,
        &["containers", "kill", "--all", "--signal", "USR1", &id],
    );
    assert!(note.contains("thawed it"), "{note}");
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Resume);
    assert_eq!(status(&daemon, &id), Status::Running);
    wait_for_output(&daemon, &id, "usr1");
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn pause_and_resume_refuse_the_wrong_state_and_missing_containers() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("pstate");
    daemon.start_container(&id, &bundle);
    let err = daemon.client().resume(DEFAULT_NAMESPACE, &id).unwrap_err();
    assert_eq!(err.kind(), Some(protocol::ErrorKind::FailedPrecondition));
    assert_eq!(
        err.to_string(),
        format!("cannot resume container \"{id}\": it is running")
    );
    daemon.client().pause(DEFAULT_NAMESPACE, &id).unwrap();
    let err = daemon.client().pause(DEFAULT_NAMESPACE, &id).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot pause container \"{id}\": it is paused")
    );
    let err = daemon
        .client()
        .exec(exec_request(&id, "probe", &["true"]))
        .unwrap_err();
    assert_eq!(err.kind(), Some(protocol::ErrorKind::FailedPrecondition));
    assert_eq!(
        err.to_string(),
        format!("container \"{id}\" is paused; resume it to exec into it")
    );
    let out = daemon.ctr(&["containers", "pause", "nope"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ctr: container \"nope\" not found\n"
    );
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn shutdown_thaws_paused_containers_so_their_term_lands() {
    let mut daemon = Daemon::start();
    let script = "trap 'exit 0' TERM; echo ready; while :; do sleep 0.01; done";
    let bundle = daemon.bundle("term", &["sh", "-c", script]);
    let mut events = daemon.events();
    let id = unique_id("pshut");
    daemon.start_container(&id, &bundle);
    wait_for_output(&daemon, &id, "ready");
    ctr_ok(&daemon, &["containers", "pause", &id]);

    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit().success());
    let exits = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(
        exits[0].status,
        Some(0),
        "TERM, not the KILL after the grace period"
    );
    assert!(daemon.runc_leftovers().is_empty());
}

#[test]
fn concurrent_pauses_and_resumes_never_leave_the_daemon_wrong_about_the_freezer() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let id = unique_id("racepause");
    let pid = daemon.start_container(&id, &bundle);
    let cgroup = Cgroup::of_pid(pid).unwrap();
    for _ in 0..5 {
        std::thread::scope(|s| {
            for n in 0..8 {
                let (daemon, id) = (&daemon, &id);
                s.spawn(move || {
                    let mut client = daemon.client();
                    let result = if n % 2 == 0 {
                        client.pause(DEFAULT_NAMESPACE, id)
                    } else {
                        client.resume(DEFAULT_NAMESPACE, id)
                    };
                    if let Err(e) = result {
                        let kind = e.kind();
                        assert_eq!(kind, Some(protocol::ErrorKind::FailedPrecondition), "{e}");
                    }
                });
            }
        });
        // Whatever won, the daemon's word and the kernel's agree.
        let frozen = matches!(cgroup.freezer_state().unwrap().as_str(), "FROZEN" | "1");
        let paused = status(&daemon, &id) == Status::Paused;
        assert_eq!(
            paused, frozen,
            "daemon says paused={paused}, freezer frozen={frozen}"
        );
    }
    if status(&daemon, &id) == Status::Paused {
        daemon.client().resume(DEFAULT_NAMESPACE, &id).unwrap();
    }
    daemon.kill(&id, libc::SIGKILL);
    let exits = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exits[0].status, Some(137));
}

/// A resume can reach runc after the container stopped being paused: a kill thawed it, or it
/// exited. Thawed here with runc behind the daemon's back, the resume meets runc's refusal every
/// time, and the client is told the container is in no state for it, not that the runtime failed.
#[test]
fn a_resume_runc_refuses_as_not_paused_is_a_failed_precondition() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let id = unique_id("pthawed");
    daemon.start_container(&id, &bundle);
    daemon.client().pause(DEFAULT_NAMESPACE, &id).unwrap();
    let thawed = Command::new("runc")
        .arg("--root")
        .arg(daemon.state.join("runc").join(DEFAULT_NAMESPACE))
        .args(["resume", &id])
        .status()
        .unwrap();
    assert!(thawed.success(), "runc resume: {thawed}");

    let err = daemon.client().resume(DEFAULT_NAMESPACE, &id).unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::FailedPrecondition), "{err}");
    assert_eq!(
        err.to_string(),
        format!("cannot resume container \"{id}\": runc resume {id}: container not paused")
    );
    daemon.kill(&id, libc::SIGKILL);
    let exits = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exits[0].status, Some(137));
}

/// A resume sent while another client's `kill --all` ends the paused container: whichever comes
/// first (the kill's thaw, the exit, runc deleting it), the resume succeeds, or is refused as a
/// failed precondition or a missing container, and the exit is reported once with its status.
#[test]
fn a_resume_racing_a_kill_all_is_refused_with_a_kind_a_client_can_act_on() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let mut raced = Vec::new();
    for _ in 0..10 {
        let id = unique_id("prace");
        daemon.start_container(&id, &bundle);
        daemon.client().pause(DEFAULT_NAMESPACE, &id).unwrap();
        let both = Barrier::new(2);
        std::thread::scope(|s| {
            let (mut killer, mut resumer) = (daemon.client(), daemon.client());
            let id = &id;
            let both = &both;
            s.spawn(move || {
                both.wait();
                let kill = KillRequest {
                    namespace: DEFAULT_NAMESPACE.into(),
                    id: id.clone(),
                    signal: libc::SIGKILL,
                    all: true,
                };
                killer.kill(kill).unwrap();
            });
            both.wait();
            if let Err(e) = resumer.resume(DEFAULT_NAMESPACE, id) {
                let kind = e.kind();
                assert!(
                    matches!(
                        kind,
                        Some(ErrorKind::FailedPrecondition | ErrorKind::NotFound)
                    ),
                    "{e}"
                );
            }
        });
        let exits = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
        assert_eq!(exits[0].status, Some(137));
        raced.push(id);
    }
    events.barrier(&daemon, &bundle);
    for id in &raced {
        assert_eq!(events.exits_of(id).len(), 1, "{id}");
    }
}
