//! OOM kills reported as `oom` events, always before the container's `exit`.

mod common;

use common::*;
use protocol::{Event, EventKind};

/// busybox `dd` allocates its whole block at once: 200 MiB in a 32 MiB cgroup.
const ALLOCATE: &str = "exec dd if=/dev/zero of=/dev/null bs=200M count=1";

/// The events of `id`, waiting for its exit first.
fn events_until_exit(events: &mut Events, id: &str) -> Vec<Event> {
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    events.seen.iter().filter(|e| e.id == id).cloned().collect()
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

#[test]
fn an_oom_kill_is_reported_before_the_exit() {
    let daemon = Daemon::start();
    let script = format!("sleep 0.5; {ALLOCATE}");
    let bundle = daemon.bundle("oom", &["sh", "-c", &script]);
    set_memory_limit(&bundle, 32 << 20);
    let mut events = daemon.events();
    let id = unique_id("oom");
    let pid = daemon.start_container(&id, &bundle);

    let seen = events_until_exit(&mut events, &id);
    assert_eq!(
        kinds(&seen),
        [EventKind::StartContainer, EventKind::Oom, EventKind::Exit]
    );
    assert_eq!(seen[1].pid, pid);
    let exit = &seen[2];
    assert_eq!(exit.status, Some(137));
    assert!(exit.oom_killed);
}

#[test]
fn an_oom_kill_before_the_watch_is_set_up_is_still_reported() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("oom-now", &["sh", "-c", ALLOCATE]);
    set_memory_limit(&bundle, 32 << 20);
    let mut events = daemon.events();
    let ids: Vec<String> = (0..3).map(|_| unique_id("oom-now")).collect();
    for id in &ids {
        daemon.start_container(id, &bundle);
    }
    for id in &ids {
        let seen = events_until_exit(&mut events, id);
        assert_eq!(
            kinds(&seen),
            [EventKind::StartContainer, EventKind::Oom, EventKind::Exit],
            "{id}"
        );
        assert_eq!(seen[2].status, Some(137));
        assert!(seen[2].oom_killed);
    }
}

#[test]
fn no_oom_notify_turns_the_reports_off() {
    let daemon = Daemon::start_with(&["--no-oom-notify"]);
    let bundle = daemon.bundle("oom-now", &["sh", "-c", ALLOCATE]);
    set_memory_limit(&bundle, 32 << 20);
    let mut events = daemon.events();
    let id = unique_id("oom-off");
    daemon.start_container(&id, &bundle);
    let seen = events_until_exit(&mut events, &id);
    assert_eq!(kinds(&seen), [EventKind::StartContainer, EventKind::Exit]);
    assert_eq!(seen[1].status, Some(137));
    assert!(!seen[1].oom_killed);
}

#[test]
fn a_plain_kill_is_not_an_oom_kill() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    set_memory_limit(&bundle, 32 << 20);
    let mut events = daemon.events();
    let id = unique_id("not-oom");
    daemon.start_container(&id, &bundle);
    daemon.kill(&id, libc::SIGKILL);
    let seen = events_until_exit(&mut events, &id);
    assert_eq!(kinds(&seen), [EventKind::StartContainer, EventKind::Exit]);
    assert!(!seen[1].oom_killed);
}

#[test]
fn the_notifier_reports_a_kill_while_the_container_runs_on() {
    let daemon = Daemon::start();
    let script = "sleep 0.5; dd if=/dev/zero of=/dev/null bs=200M count=1; echo survived; \
                  exec sleep 1000";
    let bundle = daemon.bundle("oom-child", &["sh", "-c", script]);
    set_memory_limit(&bundle, 32 << 20);
    let mut events = daemon.events();
    let id = unique_id("oom-child");
    daemon.start_container(&id, &bundle);
    // Only the notifier can report this: the init lives on.
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Oom);
    wait_for_output(&daemon, &id, "survived");
    daemon.kill(&id, libc::SIGKILL);
    let seen = events_until_exit(&mut events, &id);
    assert_eq!(
        kinds(&seen),
        [EventKind::StartContainer, EventKind::Oom, EventKind::Exit]
    );
    assert!(seen[2].oom_killed);
}
