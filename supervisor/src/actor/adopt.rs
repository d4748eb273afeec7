//! The actor's side of a recovery: the containers [`crate::recovery`] found take their place
//! in the actor's state, then the exits found with them are handled like any other. The
//! processes recovery found gone with no exit wait for the keeper's [`KeeperSynced`]: a true
//! exit that comes before it is claimed as usual, and only the rest are reported as unknown.

use std::time::Instant;

use actix::prelude::*;
use runtime::{ContainerId, ContainerRecord, Namespace, PidFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::lifecycle::Exit;
use super::supervisor::{Member, Supervisor};
use crate::container::{Container, ContainerPhase, Ended, Exec, ExecPhase};
use crate::keeper_link::{Outcome, ProcessExit};
use crate::recovery::{Adopted, Recovery};

/// The keeper has sent every exit it reaped before recovery finished checking the processes
/// (see [`crate::recovery`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeeperSynced;

/// Why the status of a process watched through its pidfd is unknown.
const REPARENTED: &str = "it was no longer a child of the keeper (an earlier keeper was \
     killed), so its status went to another process";

impl Supervisor {
    pub(super) fn adopt(&mut self, recovery: Recovery, ctx: &mut Context<Self>) {
        let Recovery {
            containers,
            stopped,
            exits,
            unaccounted,
            orphans,
        } = recovery;
        self.unaccounted = unaccounted;
        self.recovered = containers.len() as u64;
        for adopted in containers {
            self.adopt_container(adopted);
        }
        for record in stopped {
            self.keep_stopped(record);
        }
        for exit in exits {
            <Self as Handler<Exit>>::handle(self, Exit(exit), ctx);
        }
        for (pidfd, start_time) in orphans {
            watch_orphan(pidfd, start_time, ctx);
        }
        if self.recovered > 0 {
            log::info!("recovered {} container(s)", self.recovered);
        }
    }

    fn adopt_container(&mut self, adopted: Adopted) {
        let Adopted {
            record,
            init,
            execs,
            cgroup,
            paused,
            relay,
        } = adopted;
        let (Ok(namespace), Ok(id)) = (
            Namespace::new(&record.namespace),
            ContainerId::new(&record.id),
        ) else {
            log::warn!(
                "record of {}/{} names no valid container",
                record.namespace,
                record.id
            );
            return;
        };
        let key = (namespace.clone(), id.clone());
        if let (Some(oom), Some(cgroup)) = (&self.oom, &cgroup) {
            oom.watch(key.clone(), cgroup.clone());
        }
        let pid = record.init.pid;
        self.by_pid.insert(pid, (key.clone(), Member::Init));
        let execs = execs
            .into_iter()
            .map(|(name, (exec, pidfd))| {
                self.by_pid
                    .insert(exec.pid, (key.clone(), Member::Exec(name.clone())));
                let phase = ExecPhase::Running {
                    pid: exec.pid,
                    start_time: exec.start_time,
                    pidfd,
                    console: None,
                };
                let args = exec.args;
                (name, Exec { args, phase })
            })
            .collect();
        let container = Container {
            namespace,
            id,
            bundle: record.bundle,
            labels: record.labels,
            stdout: record.stdout,
            stderr: record.stderr,
            created: record.created,
            phase: ContainerPhase::Running {
                pid,
                pidfd: init,
                cgroup,
                paused,
            },
            oom_kills: 0,
            control: None,
            relay,
            relayed: record.relayed,
            init_start: record.init.start_time,
            args: record.init.args,
            console: None,
            execs,
            remove: record.remove,
            deleters: Vec::new(),
        };
        self.containers.insert(key, container);
    }

    /// A stopped container an earlier daemon kept: kept here too, until it is deleted.
    fn keep_stopped(&mut self, record: ContainerRecord) {
        let (Ok(namespace), Ok(id), Some(exit)) = (
            Namespace::new(&record.namespace),
            ContainerId::new(&record.id),
            record.exit,
        ) else {
            log::warn!(
                "record of {}/{} names no valid stopped container",
                record.namespace,
                record.id
            );
            return;
        };
        let container = Container {
            namespace: namespace.clone(),
            id: id.clone(),
            bundle: record.bundle,
            labels: record.labels,
            stdout: record.stdout,
            stderr: record.stderr,
            created: record.created,
            phase: ContainerPhase::Stopped(Ended::from_record(record.init.pid, &exit)),
            oom_kills: 0,
            control: None,
            relay: None,
            relayed: record.relayed,
            init_start: record.init.start_time,
            args: record.init.args,
            console: None,
            execs: Default::default(),
            remove: false,
            deleters: Vec::new(),
        };
        self.containers.insert((namespace, id), container);
    }
}

impl Handler<KeeperSynced> for Supervisor {
    type Result = ();

    /// Reports, with an unknown status, each process recovery found gone whose true exit has not
    /// come: it ended while no keeper ran.
    fn handle(&mut self, _: KeeperSynced, ctx: &mut Context<Self>) {
        for exit in std::mem::take(&mut self.unaccounted) {
            let awaited = self
                .by_pid
                .get(&exit.pid)
                .is_some_and(|(key, member)| self.is_same_process(key, member, exit.start_time));
            if awaited {
                <Self as Handler<Exit>>::handle(self, Exit(exit), ctx);
            }
        }
    }
}

/// Reports the process's exit, with an unknown status, once its pidfd says it has ended.
fn watch_orphan(pidfd: PidFd, start_time: Option<u64>, ctx: &mut Context<Supervisor>) {
    let pid = pidfd.pid();
    // SAFETY: the PidFd owns its descriptor, which stays open and the same for as long as
    // the AsyncFd holds it.
    let registered = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) };
    let watched = match registered {
        Ok(watched) => watched,
        Err(e) => {
            log::warn!("cannot watch pid {pid} for its exit: {e}");
            return;
        }
    };
    let addr = ctx.address();
    actix::spawn(async move {
        if let Err(e) = watched.readable().await {
            log::warn!("waiting for pid {pid} to exit: {e}");
        }
        addr.do_send(Exit(ProcessExit {
            pid,
            start_time,
            outcome: Outcome::Unknown(REPARENTED),
            reaped_at: Instant::now(),
            ack: None,
        }));
    });
}
