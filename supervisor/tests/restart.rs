//! Restarts and upgrades: the containers outlive the daemon, and every exit is reported once,
//! with its true status, including one that happened while no daemon ran.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::*;
use protocol::{Event, EventKind, Status, DEFAULT_NAMESPACE};

/// A container whose init exits with 71 + the index of the signal it gets in this list.
const SIGNALS: [i32; 10] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGWINCH,
    libc::SIGURG,
    libc::SIGPWR,
];

fn trapping_bundle(daemon: &Daemon) -> std::path::PathBuf {
    let names = [
        "HUP", "INT", "QUIT", "USR1", "USR2", "ALRM", "TERM", "WINCH", "URG", "PWR",
    ];
    let traps: String = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("trap 'exit {}' {name}; ", 71 + i))
        .collect();
    let script = format!("{traps}while :; do sleep 1000 & wait; done");
    daemon.bundle("trapping", &["sh", "-c", &script])
}

fn running_pids(daemon: &Daemon) -> BTreeMap<String, u32> {
    daemon
        .client()
        .list(DEFAULT_NAMESPACE)
        .unwrap()
        .into_iter()
        .filter(|c| c.status == Status::Running)
        .map(|c| (c.id, c.pid.unwrap()))
        .collect()
}

fn events_since(daemon: &Daemon, since: u64) -> Vec<serde_json::Value> {
    let until = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let out = daemon.ctr(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until,
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The acceptance test of the issue: 50 containers, the daemon SIGKILLed, 10 exits with
/// distinct statuses while it is down, and everything accounted for once it is back.
#[test]
fn containers_and_exits_survive_a_killed_daemon() {
    let daemon = Daemon::start();
    let bundle = trapping_bundle(&daemon);
    let ids: Vec<String> = (0..50).map(|_| unique_id("survivor")).collect();
    for id in &ids {
        daemon.start_container(id, &bundle);
    }
    let before = running_pids(&daemon);
    assert_eq!(before.len(), 50);
    let last_seq = events_since(&daemon, 0)
        .last()
        .map(|e| e["seq"].as_u64().unwrap())
        .unwrap();

    // The keeper is stopped so that it cannot start a new daemon before the 10 have exited:
    // they wait as its zombies, and it finds them when it continues.
    let keeper = daemon.info().keeper_pid;
    signal_pid(keeper, libc::SIGSTOP);
    let old = daemon.info();
    signal_pid(old.pid, libc::SIGKILL);
    let dying: Vec<(&String, i32)> = ids[..10].iter().zip(SIGNALS).collect();
    for (id, signal) in &dying {
        signal_pid(before[*id], *signal);
    }
    for (id, _) in &dying {
        wait_until("a container to exit while no daemon runs", || {
            (process_state(before[*id]) == Some('Z')).then_some(())
        });
    }
    signal_pid(keeper, libc::SIGCONT);
    let new = wait_until("the keeper's new daemon", || {
        daemon.client().info().ok().filter(|i| i.pid != old.pid)
    });
    assert_eq!(new.keeper_pid, keeper);
    assert_eq!(new.recovered, 50);

    // The 10 exits, each once, with its true status.
    let exits = wait_until("the 10 exits", || {
        let exits: Vec<serde_json::Value> = events_since(&daemon, last_seq)
            .into_iter()
            .filter(|e| e["type"] == "exit")
            .collect();
        (exits.len() >= 10).then_some(exits)
    });
    let statuses: BTreeMap<String, i64> = exits
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(exits.len(), 10, "{exits:#?}");
    let want: BTreeMap<String, i64> = (0..10).map(|i| (ids[i].clone(), 71 + i as i64)).collect();
    assert_eq!(statuses, want);

    // The 40 still run, with the pids they had.
    let after = running_pids(&daemon);
    let expected: BTreeMap<String, u32> = ids[10..]
        .iter()
        .map(|id| (id.clone(), before[id]))
        .collect();
    assert_eq!(after, expected);

    // The 40 are controllable and reported as usual.
    let mut events = daemon.events();
    for id in &ids[10..] {
        daemon.kill(id, libc::SIGKILL);
    }
    let exits = events.wait_for(40, |e| e.kind == EventKind::Exit);
    assert!(exits.iter().all(|e| e.status == Some(137)), "{exits:#?}");
    let reported: BTreeSet<&str> = exits.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(reported.len(), 40);
    daemon.wait_until_stopped("every container stopped");
    assert!(daemon.runc_leftovers().is_empty());
}

/// A detached container keeps writing while no daemon reads its output: the keeper holds its
/// pipes, and the new daemon copies them on; after an upgrade too, which re-executes the keeper.
#[test]
fn output_goes_on_across_a_restart_and_an_upgrade() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle(
        "counter",
        &[
            "sh",
            "-c",
            "pad=$(printf %01000d 0); i=0; while :; do echo line-$i $pad; i=$((i+1)); sleep 0.005; done",
        ],
    );
    let id = unique_id("counter");
    let pid = daemon.start_container(&id, &bundle);
    wait_for_output(&daemon, &id, "line-5 ");
    daemon.kill_daemon_process();
    let log = daemon.state.join("default").join(&id).join("stdout.log");
    let lines = || std::fs::read_to_string(&log).unwrap().lines().count();
    let seen = lines();
    wait_until("the output to go on", || {
        (lines() > seen + 20).then_some(())
    });
    let upgraded = Command::new(env!("CARGO_BIN_EXE_ctrd"))
        .arg("upgrade")
        .arg("--address")
        .arg(&daemon.socket)
        .output()
        .unwrap();
    assert!(upgraded.status.success(), "{upgraded:?}");
    // Three times what a pipe holds (64 KiB; a line is a kilobyte): only a relay copying on
    // gets there.
    let seen = lines();
    wait_until("the output to go on after the upgrade", || {
        (lines() > seen + 200).then_some(())
    });
    assert_eq!(running_pids(&daemon).get(&id), Some(&pid));
    let text = std::fs::read_to_string(&log).unwrap();
    let numbers: Vec<u64> = text
        .lines()
        .map(|l| {
            l.strip_prefix("line-")
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "a line was lost or repeated"
    );
}

/// An exec survives too, and its exit is reported with its name.
#[test]
fn an_exec_is_recovered_with_its_container() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("exec-host");
    daemon.start_container(&id, &bundle);
    let pid = daemon
        .client()
        .exec(exec_request(
            &id,
            "worker",
            &[
                "sh",
                "-c",
                "trap 'exit 9' USR1; while :; do sleep 1000 & wait; done",
            ],
        ))
        .unwrap();
    daemon.kill_daemon_process();
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    let worker = state.processes.iter().find(|p| p.name == "worker").unwrap();
    assert_eq!(worker.pid, Some(pid));
    let mut events = daemon.events();
    daemon
        .client()
        .kill_process(protocol::KillProcessRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            id: id.clone(),
            process: "worker".into(),
            signal: libc::SIGUSR1,
        })
        .unwrap();
    let exit = events.wait_for(1, |e| e.kind == EventKind::Exit && e.process == "worker");
    assert_eq!(exit[0].status, Some(9));
    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| {
        e.kind == EventKind::Exit && e.id == id && e.process == "init"
    });
}

/// With the keeper killed too, nothing can collect the containers' statuses: the next ctrd
/// adopts the ones still running and reports each exit with no status, never an invented one.
#[test]
fn a_killed_keeper_loses_statuses_but_not_containers() {
    let mut daemon = Daemon::start();
    let bundle = trapping_bundle(&daemon);
    let ids: Vec<String> = (0..3).map(|_| unique_id("orphan")).collect();
    let pids: Vec<u32> = ids
        .iter()
        .map(|id| daemon.start_container(id, &bundle))
        .collect();
    let last_seq = events_since(&daemon, 0)
        .last()
        .map(|e| e["seq"].as_u64().unwrap())
        .unwrap();
    daemon.kill_daemon();
    // Exits while nothing of ctrd runs: its status goes to whoever adopted the orphan.
    signal_pid(pids[0], libc::SIGUSR1);
    wait_until("the first container to be gone", || {
        (!process_exists(pids[0])).then_some(())
    });
    daemon.spawn(&[]);
    assert_eq!(daemon.info().recovered, 3);
    let running = running_pids(&daemon);
    assert_eq!(
        running,
        ids[1..]
            .iter()
            .cloned()
            .zip(pids[1..].iter().copied())
            .collect()
    );
    let mut events = daemon.events();
    daemon.kill(&ids[1], libc::SIGKILL);
    signal_pid(pids[2], libc::SIGUSR2);
    events.wait_for(2, |e| e.kind == EventKind::Exit);
    let exits = wait_until("the three exits", || {
        let exits: Vec<serde_json::Value> = events_since(&daemon, last_seq)
            .into_iter()
            .filter(|e| e["type"] == "exit")
            .collect();
        (exits.len() >= 3).then_some(exits)
    });
    assert_eq!(exits.len(), 3, "{exits:#?}");
    assert!(exits.iter().all(|e| e["status"].is_null()), "{exits:#?}");
    let log = daemon.log();
    assert!(log.contains("ended while no keeper was running"), "{log}");
    assert!(log.contains("no longer a child of the keeper"), "{log}");
    daemon.wait_until_stopped("every container stopped");
}

/// A record whose pid now belongs to another process (same pid, another start time) is never
/// adopted, and that process is never signalled.
#[test]
fn a_recycled_pid_is_not_adopted() {
    let mut daemon = Daemon::start();
    let stranger = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = stranger.id();
    let start_time: u64 = {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap()
    };
    daemon.kill_daemon();
    let id = unique_id("recycled");
    let record = serde_json::json!({
        "namespace": "default",
        "id": id,
        "bundle": "/nonexistent",
        "labels": {},
        "stdout": daemon.state.join("default").join(&id).join("stdout.log"),
        "stderr": daemon.state.join("default").join(&id).join("stderr.log"),
        "created": 1,
        "init": { "pid": pid, "start_time": start_time - 1, "args": ["sleep"] },
        "relayed": false,
        "execs": {}
    });
    std::fs::create_dir_all(daemon.state.join("default")).unwrap();
    std::fs::write(
        daemon.state.join("default").join(format!("{id}@1.json")),
        record.to_string(),
    )
    .unwrap();
    daemon.spawn(&[]);
    daemon.wait_until_stopped("the stale record to be reported");
    let exits = wait_until("the stale record's exit", || {
        let exits: Vec<serde_json::Value> = events_since(&daemon, 0)
            .into_iter()
            .filter(|e| e["type"] == "exit" && e["id"] == id.as_str())
            .collect();
        (!exits.is_empty()).then_some(exits)
    });
    assert_eq!(exits.len(), 1);
    assert!(exits[0]["status"].is_null());
    assert_eq!(
        process_state(pid).map(|s| s != 'Z'),
        Some(true),
        "the stranger runs on"
    );
    let mut stranger = stranger;
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

/// `ctrd upgrade` with 100 containers: none restarts, no exit is lost, and a subscriber that
/// reconnects with --since misses nothing.
#[test]
fn upgrade_keeps_every_container_and_event() {
    let daemon = Daemon::start();
    let bundle = trapping_bundle(&daemon);
    let ids: Vec<String> = (0..100).map(|_| unique_id("upgrade")).collect();
    let mut stream = daemon.client().subscribe(DEFAULT_NAMESPACE).unwrap();
    for id in &ids {
        daemon.start_container(id, &bundle);
    }
    let before = running_pids(&daemon);
    assert_eq!(before.len(), 100);
    let old = daemon.info();

    let mut upgrade = Command::new(env!("CARGO_BIN_EXE_ctrd"));
    upgrade.arg("upgrade").arg("--address").arg(&daemon.socket);
    let upgrade = std::thread::spawn(move || upgrade.output().unwrap());
    // Exits during the upgrade: before, during or after the hand-over, each must be reported.
    for id in &ids[..5] {
        signal_pid(before[id], libc::SIGUSR1);
    }
    let output = upgrade.join().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("ctrd upgraded"), "{said}");
    let new = daemon.info();
    assert_ne!(new.pid, old.pid);
    assert_eq!(new.keeper_pid, old.keeper_pid);

    // The old stream ended; what it delivered, then a new one from where it stopped.
    let mut seen: Vec<Event> = Vec::new();
    while let Ok(Some(event)) = stream.next_event() {
        seen.push(event);
    }
    let resume = seen.last().map_or(0, |e| e.seq);
    let mut again = daemon
        .client()
        .subscribe_with(protocol::SubscribeRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            since: Some(protocol::Since::Seq(resume)),
            until: None,
            filters: Vec::new(),
        })
        .unwrap();
    let exits_of_five = |seen: &[Event]| {
        seen.iter()
            .filter(|e| e.kind == EventKind::Exit && ids[..5].contains(&e.id))
            .count()
    };
    while exits_of_five(&seen) < 5 {
        seen.push(again.next_event().unwrap().expect("an event"));
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "a gap or a repeat"
    );
    assert!(seen
        .iter()
        .filter(|e| e.kind == EventKind::Exit)
        .all(|e| e.status == Some(74)));

    let after = running_pids(&daemon);
    let expected: BTreeMap<String, u32> =
        ids[5..].iter().map(|id| (id.clone(), before[id])).collect();
    assert_eq!(after, expected, "a container restarted or vanished");
    let mut events = daemon.events();
    for id in &ids[5..] {
        daemon.kill(id, libc::SIGKILL);
    }
    events.wait_for(95, |e| e.kind == EventKind::Exit);
    daemon.wait_until_stopped("every container stopped");
}

/// Holds a new daemon's recovery where it reads the container records: a FIFO named like a
/// record blocks that read until the test lets go. By then the daemon has its keeper's replay and
/// has checked no process yet, so whatever the keeper reaps meanwhile falls between the two, as
/// it does by chance around any restart (the keeper starts the new daemon 100 ms after a crash;
/// an upgrade takes as long).
struct RecoveryHold {
    fifo: std::path::PathBuf,
    writer: Option<std::fs::File>,
}

impl RecoveryHold {
    /// Puts the FIFO among the records; the next daemon to start stops on it.
    fn prepare(daemon: &Daemon) -> RecoveryHold {
        let dir = daemon.state.join(DEFAULT_NAMESPACE);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join(format!("{}@1.json", unique_id("hold")));
        let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) reads a NUL-terminated path that outlives the call.
        let made = unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
        assert_eq!(made, 0, "mkfifo: {}", std::io::Error::last_os_error());
        RecoveryHold { fifo, writer: None }
    }

    /// Returns once a daemon's recovery has opened the FIFO (a non-blocking open for writing
    /// fails until a reader has it open), and takes its name away so that no later recovery
    /// stops on it.
    fn wait_held(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        let writer = wait_until("a new daemon's recovery to read the records", || {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.fifo)
                .ok()
        });
        std::fs::remove_file(&self.fifo).unwrap();
        self.writer = Some(writer);
    }

    /// Lets the recovery go on: it reads an empty record, logs it as unreadable and checks the
    /// processes.
    fn release(mut self) {
        assert!(self.writer.take().is_some(), "the recovery was never held");
    }
}

/// How the daemon is replaced in a round of [`exits_around_a_restart_keep_their_status`].
#[derive(Debug, Clone, Copy)]
enum Replace {
    Crash,
    Upgrade,
}

/// Containers exit in the moments around a restart, before, during and after the new daemon's
/// recovery (the moment after its keeper's replay and before its check of each process is held
/// open, so exits certainly fall there): every exit is reported once with its true status, never
/// as unknown, after a crash of the daemon and after an upgrade, which re-executes the keeper.
#[test]
fn exits_around_a_restart_keep_their_status() {
    let daemon = Daemon::start();
    let bundle = trapping_bundle(&daemon);
    for replace in [
        Replace::Crash,
        Replace::Upgrade,
        Replace::Crash,
        Replace::Upgrade,
    ] {
        exits_around(&daemon, &bundle, replace);
    }
    let log = daemon.log();
    assert!(!log.contains("unknown status"), "{log}");
}

/// One round: 20 containers, two of them with an exec; 4 inits exit as the daemon goes, 12
/// inits and the 2 execs while the new daemon's recovery is held, the last 4 inits right after.
fn exits_around(daemon: &Daemon, bundle: &std::path::Path, replace: Replace) {
    const EXEC: &str = "worker";
    let ids: Vec<String> = (0..20).map(|_| unique_id("around")).collect();
    let pids: Vec<u32> = ids
        .iter()
        .map(|id| daemon.start_container(id, bundle))
        .collect();
    let exec_script = "trap 'exit 9' USR1; while :; do sleep 1000 & wait; done";
    let exec_pids: Vec<u32> = ids[16..18]
        .iter()
        .map(|id| {
            let request = exec_request(id, EXEC, &["sh", "-c", exec_script]);
            daemon.client().exec(request).unwrap()
        })
        .collect();
    let last_seq = events_since(daemon, 0)
        .last()
        .map_or(0, |e| e["seq"].as_u64().unwrap());
    let exit_init = |i: usize| signal_pid(pids[i], SIGNALS[i % SIGNALS.len()]);

    let mut hold = RecoveryHold::prepare(daemon);
    let old = daemon.info();
    let upgrade = match replace {
        Replace::Crash => {
            signal_pid(old.pid, libc::SIGKILL);
            None
        }
        Replace::Upgrade => {
            let mut upgrade = Command::new(env!("CARGO_BIN_EXE_ctrd"));
            upgrade.arg("upgrade").arg("--address").arg(&daemon.socket);
            Some(std::thread::spawn(move || upgrade.output().unwrap()))
        }
    };
    (0..4).for_each(exit_init);
    hold.wait_held();
    (4..16).for_each(exit_init);
    for pid in &exec_pids {
        signal_pid(*pid, libc::SIGUSR1);
    }
    for pid in pids[4..16].iter().chain(&exec_pids) {
        wait_until("the keeper to reap an exit while recovery is held", || {
            (!process_exists(*pid)).then_some(())
        });
    }
    hold.release();
    (16..20).for_each(exit_init);

    if let Some(upgrade) = upgrade {
        let output = upgrade.join().unwrap();
        assert!(output.status.success(), "{replace:?}: {output:?}");
    }
    let new = wait_until("the new daemon", || {
        daemon.client().info().ok().filter(|i| i.pid != old.pid)
    });
    assert_eq!(new.keeper_pid, old.keeper_pid, "{replace:?}");

    let mut want: BTreeMap<(String, String), Option<i64>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let status = 71 + (i % SIGNALS.len()) as i64;
            ((id.clone(), "init".to_string()), Some(status))
        })
        .collect();
    for id in &ids[16..18] {
        want.insert((id.clone(), EXEC.to_string()), Some(9));
    }
    let exits = wait_until("every exit of the round", || {
        let exits: Vec<serde_json::Value> = events_since(daemon, last_seq)
            .into_iter()
            .filter(|e| e["type"] == "exit")
            .collect();
        (exits.len() >= want.len()).then_some(exits)
    });
    let got: BTreeMap<(String, String), Option<i64>> = exits
        .iter()
        .map(|e| {
            let key = (
                e["id"].as_str().unwrap().to_string(),
                e["process"].as_str().unwrap().to_string(),
            );
            (key, e["status"].as_i64())
        })
        .collect();
    assert_eq!(exits.len(), want.len(), "{replace:?}: an exit repeated");
    assert_eq!(
        got, want,
        "{replace:?}: an exit lost or with a wrong status"
    );
    daemon.wait_until_stopped("every container of the round stopped");
}
