//! The soak: many clients doing a random mix of everything at once against up to 200 live
//! containers, for a bounded time. Afterwards every container and process that was started has
//! exactly one exit event with its true status, and ctrd is back where it began: no zombies, no
//! runc state, and both of its processes, the daemon (the actor, the server, the workers) and
//! its keeper (the reaper, holding the containers' output), with their fds and threads at their
//! starting counts and their RSS not grown. Each is measured on its own pid: the daemon's from
//! `ctr info`, the keeper's the one the test started.
//!
//! `SOAK_SECONDS` sets the length (default 15 s here; `scripts/soak.sh` runs it longer) and
//! `SOAK_SEED` replays a run: the seed is printed.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use protocol::client::StreamItem;
use protocol::{
    ClientError, EventKind, KillProcessRequest, Since, SubscribeRequest, DEFAULT_NAMESPACE,
};

const CLIENTS: usize = 16;
const MAX_LIVE: usize = 200;

/// A small, reproducible generator: the soak needs variety, not statistics.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the soak expects of the daemon's history, built as the clients go.
#[derive(Default)]
struct Ledger {
    /// Containers running `sleep`, with the execs of each still expected to be running.
    sleepers: HashMap<String, HashSet<String>>,
    /// The exit statuses each started process may truly report, keyed by (container, process):
    /// an exec that exits by itself reports its code, unless its container dies first and takes
    /// it along (137).
    expected: HashMap<(String, String), Vec<i32>>,
    next_exec: u64,
}

#[derive(Debug)]
struct Proc {
    fds: usize,
    threads: usize,
    rss_kib: u64,
}

impl Proc {
    /// No more fds or threads than `floor`.
    fn within(&self, floor: &Proc) -> bool {
        self.fds <= floor.fds && self.threads <= floor.threads
    }
}

/// The counts of ctrd's two processes at one moment.
#[derive(Debug)]
struct Counts {
    daemon: Proc,
    keeper: Proc,
}

/// The pids the counts are read from: the daemon, as `ctr info` names it, and its keeper.
#[derive(Clone, Copy)]
struct Pids {
    daemon: u32,
    keeper: u32,
}

impl Pids {
    fn of(daemon: &Daemon) -> Pids {
        let info = daemon.info();
        assert_eq!(info.keeper_pid, daemon.pid(), "the test started the keeper");
        assert_ne!(
            info.pid, info.keeper_pid,
            "the daemon is a process of its own"
        );
        Pids {
            daemon: info.pid,
            keeper: info.keeper_pid,
        }
    }

    fn read(self) -> Counts {
        Counts {
            daemon: proc_stats(self.daemon),
            keeper: proc_stats(self.keeper),
        }
    }
}

fn proc_stats(pid: u32) -> Proc {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Proc {
        fds: fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count(),
        threads: field("Threads:") as usize,
        rss_kib: field("VmRSS:"),
    }
}

/// Children of `pid` that are zombies: exits nobody reaped.
fn zombies_of(pid: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
                return false;
            };
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            fields.first() == Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str())
        })
        .collect()
}

fn one_client(
    daemon: &Daemon,
    sleep: &std::path::Path,
    quick: &std::path::Path,
    ledger: &Mutex<Ledger>,
    seed: u64,
    until: Instant,
) {
    let mut rng = Rng(seed);
    while Instant::now() < until {
        let pick = |rng: &mut Rng, ledger: &Ledger| -> Option<String> {
            let ids: Vec<&String> = ledger.sleepers.keys().collect();
            (!ids.is_empty()).then(|| ids[rng.below(ids.len())].clone())
        };
        match rng.below(12) {
            0 | 1 => {
                let live = ledger.lock().unwrap().sleepers.len();
                if live >= MAX_LIVE {
                    continue;
                }
                let id = unique_id("soak");
                let (bundle, status) = if rng.below(4) == 0 {
                    (quick, 3)
                } else {
                    (sleep, 137)
                };
                // Deleted at their exits, so that deletions are part of the mix.
                let request = protocol::StartRequest {
                    remove: true,
                    ..start_request(&id, bundle)
                };
                if daemon.client().start(request).is_ok() {
                    let mut ledger = ledger.lock().unwrap();
                    ledger
                        .expected
                        .insert((id.clone(), "init".into()), vec![status]);
                    if status == 137 {
                        ledger.sleepers.insert(id, HashSet::new());
                    }
                }
            }
            2 | 3 => {
                let (id, name, code) = {
                    let mut ledger = ledger.lock().unwrap();
                    let Some(id) = pick(&mut rng, &ledger) else {
                        continue;
                    };
                    ledger.next_exec += 1;
                    (id, format!("x{}", ledger.next_exec), rng.below(4))
                };
                // Code 0 makes a process that sleeps until killed; others exit with their code.
                let script = if code == 0 {
                    "exec sleep 1000".to_string()
                } else {
                    format!("exit {code}")
                };
                let req = exec_request(&id, &name, &["sh", "-c", &script]);
                if daemon.client().exec(req).is_ok() {
                    let mut ledger = ledger.lock().unwrap();
                    let statuses = if code == 0 {
                        vec![137]
                    } else {
                        vec![code as i32, 137]
                    };
                    ledger.expected.insert((id.clone(), name.clone()), statuses);
                    if code == 0 {
                        if let Some(execs) = ledger.sleepers.get_mut(&id) {
                            execs.insert(name);
                        }
                    }
                }
            }
            4 => {
                let target = {
                    let ledger = ledger.lock().unwrap();
                    pick(&mut rng, &ledger).and_then(|id| {
                        let execs: Vec<&String> = ledger.sleepers[&id].iter().collect();
                        (!execs.is_empty())
                            .then(|| (id.clone(), execs[rng.below(execs.len())].clone()))
                    })
                };
                if let Some((id, name)) = target {
                    let _ = daemon.client().kill_process(KillProcessRequest {
                        namespace: DEFAULT_NAMESPACE.into(),
                        id: id.clone(),
                        process: name.clone(),
                        signal: libc::SIGKILL,
                    });
                    if let Some(execs) = ledger.lock().unwrap().sleepers.get_mut(&id) {
                        execs.remove(&name);
                    }
                }
            }
            5 => {
                let id = {
                    let mut ledger = ledger.lock().unwrap();
                    let Some(id) = pick(&mut rng, &ledger) else {
                        continue;
                    };
                    ledger.sleepers.remove(&id);
                    id
                };
                daemon.kill(&id, libc::SIGKILL);
            }
            6 => {
                daemon.client().list(DEFAULT_NAMESPACE).unwrap();
            }
            7 => {
                let id = pick(&mut rng, &ledger.lock().unwrap());
                if let Some(id) = id {
                    match daemon.client().state(DEFAULT_NAMESPACE, &id) {
                        Ok(_) => {}
                        Err(e) => assert_eq!(e.kind(), Some(protocol::ErrorKind::NotFound), "{e}"),
                    }
                }
            }
            8 => {
                // Frozen for a moment: whatever arrives meanwhile (a kill, an exec) waits or is
                // refused, and nothing is lost once it thaws.
                let id = pick(&mut rng, &ledger.lock().unwrap());
                if let Some(id) = id {
                    if daemon.client().pause(DEFAULT_NAMESPACE, &id).is_ok() {
                        let _ = daemon
                            .client()
                            .stats(DEFAULT_NAMESPACE, std::slice::from_ref(&id));
                        // Another client may have killed it meanwhile.
                        if let Err(e) = daemon.client().resume(DEFAULT_NAMESPACE, &id) {
                            let kind = e.kind();
                            assert!(
                                matches!(
                                    kind,
                                    Some(
                                        protocol::ErrorKind::FailedPrecondition
                                            | protocol::ErrorKind::NotFound
                                    )
                                ),
                                "{e}"
                            );
                        }
                    }
                }
            }
            9 => {
                daemon.client().stats(DEFAULT_NAMESPACE, &[]).unwrap();
            }
            _ => {
                // A subscriber that takes a few events and goes away.
                let mut stream = daemon.client().subscribe(DEFAULT_NAMESPACE).unwrap();
                stream.set_timeout(Some(Duration::from_millis(50))).unwrap();
                for _ in 0..rng.below(5) {
                    if stream.next_event().is_err() {
                        break;
                    }
                }
            }
        }
    }
}

#[test]
fn a_random_mix_from_many_clients_loses_nothing_and_leaks_nothing() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("soak: {seconds} s, {CLIENTS} clients, SOAK_SEED={seed}");
    let daemon = Daemon::start_with(&["--concurrency", "10", "--subscriber-queue", "100000"]);
    let sleep = daemon.bundle("sleep", &["sleep", "1000"]);
    let quick = daemon.bundle("quick", &["sh", "-c", "exit 3"]);
    // Warm up every kind of work once, so the baseline includes what stays (worker threads).
    let warm = unique_id("warm");
    daemon.start_container(&warm, &sleep);
    daemon.kill(&warm, libc::SIGKILL);
    daemon.wait_until_stopped("the warm-up to end");
    let pids = Pids::of(&daemon);
    let idle = settled(pids, None);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // Two rounds: the first finds the allocator's high-water mark for this load, the second
    // must not grow past it (a leak grows with every round).
    let mut rounds = Vec::new();
    for round in 0..2 {
        let until = Instant::now() + Duration::from_secs(seconds.div_ceil(2));
        thread::scope(|s| {
            for n in 0..CLIENTS {
                let (daemon, sleep, quick, ledger) = (&daemon, &sleep, &quick, &ledger);
                let seed = seed.wrapping_add((round * CLIENTS + n) as u64 * 7919) | 1;
                s.spawn(move || one_client(daemon, sleep, quick, ledger, seed, until));
            }
        });
        kill_everything(&daemon, &ledger);
        rounds.push(settled(pids, Some(&idle)));
    }
    let (before, after) = (&rounds[0], &rounds[1]);
    for (what, idle, after) in [
        ("daemon", &idle.daemon, &after.daemon),
        ("keeper", &idle.keeper, &after.keeper),
    ] {
        assert!(
            after.within(idle),
            "{what}: fds {} -> {}, threads {} -> {}",
            idle.fds,
            after.fds,
            idle.threads,
            after.threads
        );
    }
    assert_eq!(
        Pids::of(&daemon).daemon,
        pids.daemon,
        "the same daemon served the whole soak"
    );

    // The whole history, from the journal.
    let mut req = SubscribeRequest::live(DEFAULT_NAMESPACE);
    req.since = Some(Since::Seq(0));
    let mut stream = daemon.client().subscribe_with(req).unwrap();
    let mut exits: HashMap<(String, String), Vec<i32>> = HashMap::new();
    loop {
        match stream.next_item() {
            Ok(Some(StreamItem::Event(e))) if e.kind == EventKind::Exit => {
                exits
                    .entry((e.id, e.process))
                    .or_default()
                    .push(e.status.unwrap_or(-1));
            }
            Ok(Some(StreamItem::Event(_))) => {}
            Ok(Some(StreamItem::Live)) => break,
            other => panic!(
                "the replay ended with {:?}",
                other.map_err(|e: ClientError| e.to_string())
            ),
        }
    }
    let ledger = ledger.lock().unwrap();
    let mut wrong = Vec::new();
    for (key, statuses) in &ledger.expected {
        match exits.get(key).map(Vec::as_slice) {
            Some([got]) if statuses.contains(got) => {}
            other => wrong.push(format!(
                "{key:?}: expected one of {statuses:?}, got {other:?}"
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} processes: {wrong:#?}",
        wrong.len(),
        ledger.expected.len()
    );
    let unknown: Vec<_> = exits
        .keys()
        .filter(|k| !ledger.expected.contains_key(*k) && !k.0.starts_with("warm"))
        .collect();
    assert!(
        unknown.is_empty(),
        "exits of processes nobody started: {unknown:?}"
    );

    // The keeper reaps the containers; the daemon its own runc children.
    for (what, pid) in [("keeper", pids.keeper), ("daemon", pids.daemon)] {
        let zombies = zombies_of(pid);
        assert!(zombies.is_empty(), "zombies of the {what}: {zombies:?}");
    }
    assert!(
        daemon.runc_leftovers().is_empty(),
        "{:?}",
        daemon.runc_leftovers()
    );
    drop(stream);
    println!(
        "soak: {} processes, each one exit with its status",
        ledger.expected.len()
    );
    for (what, idle, before, after) in [
        ("daemon", &idle.daemon, &before.daemon, &after.daemon),
        ("keeper", &idle.keeper, &before.keeper, &after.keeper),
    ] {
        println!(
            "soak: {what}: after each round: fds {} / {}, threads {} / {}, RSS {} KiB / {} KiB \
             (before any load: fds {}, threads {}, RSS {} KiB)",
            before.fds,
            after.fds,
            before.threads,
            after.threads,
            before.rss_kib,
            after.rss_kib,
            idle.fds,
            idle.threads,
            idle.rss_kib
        );
    }
    for (what, before, after) in [
        ("daemon", &before.daemon, &after.daemon),
        ("keeper", &before.keeper, &after.keeper),
    ] {
        let grown_kib = after.rss_kib.saturating_sub(before.rss_kib);
        assert!(
            grown_kib < 4 * 1024,
            "the {what}'s RSS grew by {grown_kib} KiB in the second round"
        );
    }
}

/// Kills every container still running and waits until the daemon has reported them all.
fn kill_everything(daemon: &Daemon, ledger: &Mutex<Ledger>) {
    for container in daemon.client().list(DEFAULT_NAMESPACE).unwrap() {
        let _ = daemon.client().kill(protocol::KillRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            id: container.id,
            signal: libc::SIGKILL,
            all: false,
        });
    }
    daemon.wait_until_stopped("every container to stop");
    ledger.lock().unwrap().sleepers.clear();
}

/// Both processes' counts once relay threads, connections and idle blocking-pool threads (kept
/// 10 s by tokio) have wound down: polled until neither is higher than `floor`, or taken at
/// once when there is none.
fn settled(pids: Pids, floor: Option<&Counts>) -> Counts {
    let start = Instant::now();
    loop {
        let now = pids.read();
        let Some(floor) = floor else {
            return now;
        };
        if now.daemon.within(&floor.daemon) && now.keeper.within(&floor.keeper) {
            return now;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "fds or threads never came back down: {now:?}, before any load {floor:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}
