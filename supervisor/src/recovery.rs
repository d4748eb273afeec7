//! Taking over the containers of an earlier daemon, before the actor starts.
//!
//! The earlier daemon left a record of each container it ran (see [`runtime::record`]); the
//! keeper replayed the output pipes it holds and the exits no daemon acknowledged. Each process
//! a record names is checked by pid *and* start time, through a pidfd opened first so the check
//! cannot race a recycled pid:
//! - still running (or a zombie the keeper is about to reap): adopted, its exit to come as usual;
//! - gone, with its exit among the keeper's: that exit reports it;
//! - gone, with no exit in the replay: unaccounted for, until the keeper has synced (below);
//! - running but no longer the keeper's child (the keeper died and it was re-parented): adopted,
//!   and watched through its pidfd, since its status will go to another process;
//! - already reported (its exit is in the journal; the daemon died before the record took it):
//!   stopped, with the exit the journal holds (or, started with `--rm`, deleted).
//!
//! A stopped container (its record holds its exit) runs nothing: it is kept as it was.
//!
//! The replay is what the keeper had logged when it started this daemon; whatever it reaps
//! later comes live on the link, so a process can end, be reaped and be found gone here while
//! its exit is on its way, or it can have ended while no keeper ran (its status then went to
//! another process and is lost). Which of the two is settled by asking, not by timing: once every
//! process is checked, recovery sends the keeper a `Sync`, and the keeper answers `Synced`
//! behind every exit it has reaped so far. That answer follows the exit of every process found
//! gone here that the keeper reaped: the process was reaped before it was found gone, so before
//! the `Sync` was sent and read, and the keeper (one thread) queues a reap pass's exits before
//! it reads its socket again. The link, the reader thread and the actor's mailbox keep that
//! order, so by the time the actor handles `Synced` ([`crate::actor::KeeperSynced`]), the true
//! exit of each unaccounted process the keeper reaped has been claimed by its adopted container;
//! one whose exit has not come can only have ended while no keeper ran, and is reported with an
//! unknown status, never an invented one. This holds whatever the timing, across a crash of the
//! daemon and across an upgrade (the re-executed keeper is the same process, and both replay
//! and `Sync` are the current keeper's).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use runtime::{
    Cgroup, ContainerRecord, ExitRecord, Namespace, PidFd, ProcStat, ProcessName, ProcessRecord,
    Runc, StateDir,
};
use worker::{Relay, RelayPipes};

use crate::journal::{LastExit, ProcessKey};
use crate::keeper_link::{Handshake, KeeperLink, Outcome, ProcessExit};

/// Why the status of a process that ended while no keeper ran is unknown.
const ENDED_WITHOUT_KEEPER: &str =
    "it ended while no keeper was running to collect its status (the keeper had been killed)";

/// A container taken over, with the processes of it that still run.
pub struct Adopted {
    pub record: ContainerRecord,
    /// `None` when the init has exited: its exit is among [`Recovery::exits`], or comes from the
    /// keeper before its `Synced`, or else is among [`Recovery::unaccounted`].
    pub init: Option<PidFd>,
    pub execs: BTreeMap<ProcessName, (ProcessRecord, Option<PidFd>)>,
    pub cgroup: Option<Cgroup>,
    pub paused: bool,
    pub relay: Option<Relay>,
}

/// What the new daemon's actor starts from.
pub struct Recovery {
    pub containers: Vec<Adopted>,
    /// Stopped containers, each record holding its exit: kept until deleted.
    pub stopped: Vec<ContainerRecord>,
    /// The keeper's replayed exits: handled once the containers are in place.
    pub exits: Vec<ProcessExit>,
    /// The unknown exits of processes found gone with no exit in the replay: each stands only if
    /// the keeper's `Synced` comes with no true exit of that process before it.
    pub unaccounted: Vec<ProcessExit>,
    /// Processes no keeper will reap: their exit is seen through these pidfds.
    pub orphans: Vec<(PidFd, Option<u64>)>,
}

pub fn recover(
    state: &StateDir,
    runc: &Runc,
    handshake: Handshake,
    reported: &HashMap<ProcessKey, LastExit>,
    keeper: &KeeperLink,
) -> Recovery {
    let Handshake {
        keeper_pid,
        mut outputs,
        exits,
    } = handshake;
    let (records, unreadable) = runtime::record::load_all(state).unwrap_or_else(|e| {
        log::error!(
            "cannot read the container records in {}: {e}; no container is recovered",
            state.path().display()
        );
        Default::default()
    });
    for bad in unreadable {
        log::warn!(
            "container record {} is unreadable ({}); that container is not recovered",
            bad.path.display(),
            bad.reason
        );
    }
    let logged: HashSet<(u32, Option<u64>)> = exits.iter().map(|e| (e.pid, e.start_time)).collect();
    let mut recovery = Recovery {
        containers: Vec::new(),
        stopped: Vec::new(),
        exits,
        unaccounted: Vec::new(),
        orphans: Vec::new(),
    };
    let check = |process: &ProcessRecord, recovery: &mut Recovery| -> Option<PidFd> {
        match running(process) {
            Some((pidfd, stat)) => {
                if stat.ppid != keeper_pid {
                    match pidfd.try_clone() {
                        Ok(watch) => recovery.orphans.push((watch, process.start_time)),
                        Err(e) => log::warn!("cannot watch pid {}: {e}", process.pid),
                    }
                }
                Some(pidfd)
            }
            None => {
                if !logged.contains(&(process.pid, process.start_time)) {
                    recovery.unaccounted.push(ProcessExit {
                        pid: process.pid,
                        start_time: process.start_time,
                        outcome: Outcome::Unknown(ENDED_WITHOUT_KEEPER),
                        reaped_at: Instant::now(),
                        ack: None,
                    });
                }
                None
            }
        }
    };
    for mut record in records {
        let reported_exit = |process: &str, pid: u32| {
            let key = ProcessKey {
                namespace: record.namespace.clone(),
                id: record.id.clone(),
                process: process.to_string(),
            };
            reported
                .get(&key)
                .filter(|exit| exit.pid == pid && exit.time >= record.created)
                .copied()
        };
        let was_reported = |process: &str, pid: u32| reported_exit(process, pid).is_some();
        if record.exit.is_none() {
            if let Some(exit) = reported_exit(crate::container::INIT, record.init.pid) {
                log::info!(
                    "container {}/{}: its exit was reported before the restart",
                    record.namespace,
                    record.id
                );
                record.exit = Some(ExitRecord {
                    status: exit.status,
                    time: exit.time,
                    oom_killed: exit.oom_killed,
                });
                record.execs.clear();
                if record.remove {
                    forget(state, keeper, &record, &mut outputs);
                    remove_dir(state, &record);
                    continue;
                }
                if let Err(e) = record.write(state) {
                    log::warn!("cannot record the exit of {}: {e}", record.id);
                }
            }
        }
        if record.exit.is_some() {
            if outputs.remove(&record.token()).is_some() {
                keeper.release(record.token());
            }
            recovery.stopped.push(record);
            continue;
        }
        let execs_reported: Vec<String> = record
            .execs
            .iter()
            .filter(|(name, exec)| was_reported(name, exec.pid))
            .map(|(name, _)| name.clone())
            .collect();
        for name in execs_reported {
            record.execs.remove(&name);
        }
        let init = check(&record.init, &mut recovery);
        let mut execs = BTreeMap::new();
        for (name, exec) in &record.execs {
            let Ok(process_name) = ProcessName::new(name) else {
                log::warn!("container {}: skipping exec {name:?}", record.id);
                continue;
            };
            let pidfd = check(exec, &mut recovery);
            execs.insert(process_name, (exec.clone(), pidfd));
        }
        let cgroup = cgroup_of(runc, &record);
        let paused = cgroup
            .as_ref()
            .and_then(|c| c.freezer_state().ok())
            .is_some_and(|s| s == "FROZEN" || s == "1");
        let relay = if record.relayed {
            outputs
                .remove(&record.token())
                .and_then(|pipes| resume_relay(&record, pipes))
        } else {
            None
        };
        log::info!(
            "recovered container {}/{} (pid {}, {}{} exec(s))",
            record.namespace,
            record.id,
            record.init.pid,
            if init.is_some() {
                "running, "
            } else {
                "exited, "
            },
            execs.len()
        );
        recovery.containers.push(Adopted {
            record,
            init,
            execs,
            cgroup,
            paused,
            relay,
        });
    }
    for token in outputs.into_keys() {
        keeper.release(token);
    }
    // Only now: the answer must follow the exit of every process found gone above.
    if let Err(e) = keeper.sync() {
        log::warn!(
            "cannot ask the keeper for the exits it reaped during recovery: {e}; {} process(es) \
             found gone are reported with an unknown status",
            recovery.unaccounted.len()
        );
        recovery.exits.append(&mut recovery.unaccounted);
    }
    recovery
}

/// A pidfd on the process if it still runs (or waits to be reaped) with the recorded start
/// time, with what `/proc` says of it; read after the pidfd is open, so the pid cannot have
/// been recycled in between.
fn running(process: &ProcessRecord) -> Option<(PidFd, ProcStat)> {
    let pidfd = PidFd::open(process.pid).ok()?;
    let stat = ProcStat::of(process.pid).ok()?;
    match process.start_time {
        Some(start) if start != stat.start_time => None,
        _ => Some((pidfd, stat)),
    }
}

/// Drops the record of a container whose exit is already in the journal.
fn forget(
    state: &StateDir,
    keeper: &KeeperLink,
    record: &ContainerRecord,
    outputs: &mut HashMap<String, RelayPipes>,
) {
    if let Err(e) = record.remove(state) {
        log::warn!("cannot remove the record of {}: {e}", record.id);
    }
    if outputs.remove(&record.token()).is_some() {
        keeper.release(record.token());
    }
}

/// Removes the directory of a container deleted at its exit (`--rm`).
fn remove_dir(state: &StateDir, record: &ContainerRecord) {
    let (Ok(ns), Ok(id)) = (
        Namespace::new(&record.namespace),
        runtime::ContainerId::new(&record.id),
    ) else {
        return;
    };
    let dir = state.container_dir(&ns, &id);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("cannot remove {}: {e}", dir.display());
        }
    }
}

fn cgroup_of(runc: &Runc, record: &ContainerRecord) -> Option<Cgroup> {
    let ns = runtime::Namespace::new(&record.namespace).ok()?;
    let id = runtime::ContainerId::new(&record.id).ok()?;
    Cgroup::from_runc_state(&runc.container_state_dir(&ns, &id)).ok()
}

/// Copies the kept pipes into the container's files again, from where the old daemon stopped.
fn resume_relay(record: &ContainerRecord, pipes: RelayPipes) -> Option<Relay> {
    let open = |path| worker::stdio::open_output(path);
    let result = open(&record.stdout)
        .and_then(|out| Ok((out, open(&record.stderr)?)))
        .map_err(|e| e.to_string())
        .and_then(|(out, err)| Relay::copy(pipes, out, err).map_err(|e| e.to_string()));
    match result {
        Ok(relay) => Some(relay),
        Err(e) => {
            log::warn!(
                "container {}/{}: cannot copy its output again: {e}",
                record.namespace,
                record.id
            );
            None
        }
    }
}

/// Containers that runc holds but no record names (not started by ctrd, or by one that died
/// between runc's start and writing the record) are not supervised: say so, with what to do.
/// Runs on a worker, since it calls runc.
pub fn report_leftovers(runc: &Runc, recovered: &[(String, String)]) {
    let base = runc.state_dir().runc_base();
    let Ok(entries) = std::fs::read_dir(&base) else {
        return;
    };
    let namespaces = entries
        .flatten()
        .filter_map(|e| Namespace::new(&e.file_name().to_string_lossy()).ok());
    for ns in namespaces {
        match runc.list(&ns) {
            Ok(left) => {
                let known = |id: &str| recovered.iter().any(|(n, i)| n == ns.as_str() && i == id);
                for c in left.into_iter().filter(|c| !known(&c.id)) {
                    log::warn!(
                        "container {ns}/{} ({}, pid {}) has no record and is not supervised; \
                         remove it with `{} --root {} delete --force {}`",
                        c.id,
                        c.status,
                        c.pid,
                        runc.binary().display(),
                        runc.state_dir().runc_root(&ns).display(),
                        c.id
                    );
                }
            }
            Err(e) => log::warn!("cannot list left-over containers in {ns}: {e}"),
        }
    }
}
