//! A container as the supervisor actor owns it, and the phases it moves through.
//!
//! ```text
//!   Start ──► Starting ──(runc ok)──► Running ──(init reaped)──► Exiting ──(runc delete and
//!              ▲  │                     │ ▲                         no exec left: `exit`)
//!              │  │          runc pause ▼ │ runc resume                     │
//!              │  │           Running { paused: true }  (status `paused`)   ▼
//!              │  └──(runc failed)──► gone (a first start)             Stopped ──(delete)──► gone
//!              └───────────(start it again, or restore it from a checkpoint)───┘
//!                         Running ──(Checkpoint)──► Checkpointing ──(CRIU done)──► Running
//! ```
//! A start with a checkpoint (a restore) goes through the same phases as any other start. A
//! stopped container is kept, with its exit, until it is deleted; one started with `--rm` (or
//! deleted with `--force` while it ran) is deleted as soon as it is stopped. A start of a
//! stopped container that fails leaves it stopped as it was.
//!
//! A running container also holds its exec processes by name, each `Starting` (runc exec in
//! flight) then `Running` until its exit is reported, which removes it. A container is stopped
//! only once every exec of it is gone, so each exec's exit is reported before the init's.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use protocol::{ContainerExit, ErrorKind, ErrorResponse, Process, Response, Status};
use runtime::{
    Cgroup, CheckpointName, ContainerId, ContainerRecord, ExitRecord, Namespace, PidFd,
    ProcessName, ProcessRecord,
};
use tokio::sync::oneshot;
use worker::Relay;

use crate::keeper_link::ProcessExit;

/// The name of a container's main process in events.
pub const INIT: &str = "init";

/// Containers are unique by id within a namespace.
pub type Key = (Namespace, ContainerId);

pub struct Container {
    pub namespace: Namespace,
    pub id: ContainerId,
    pub bundle: String,
    pub labels: BTreeMap<String, String>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Nanoseconds since the epoch when the start was accepted.
    pub created: u64,
    pub phase: ContainerPhase,
    /// OOM kills already reported as `oom` events.
    pub oom_kills: u64,
    /// The pause, resume or update whose runc command is running: one at a time, or two could
    /// finish in another order than runc applied them and the actor would lose track of whether
    /// the container is frozen.
    pub control: Option<&'static str>,
    /// Copies its output into `stdout` and `stderr`, and counts what it could not write; the
    /// cleanup after its exit gets a clone, to wait for the last bytes before the exit is
    /// reported.
    pub relay: Option<Relay>,
    /// Whether its output goes through pipes the keeper holds a copy of, to be released once
    /// the container is gone.
    pub relayed: bool,
    /// The init's start time (see [`runtime::procstat`]), checked against every exit of its pid.
    pub init_start: Option<u64>,
    /// The init's command line, known once it runs.
    pub args: Vec<String>,
    /// The init's pty master, when it runs on a terminal: kept to resize it.
    pub console: Option<File>,
    pub execs: BTreeMap<ProcessName, Exec>,
    /// Delete it as soon as it is stopped: started with `--rm`, or deleted with `--force`.
    pub remove: bool,
    /// Clients waiting for it to be deleted (`delete --force` of a running one).
    pub deleters: Vec<oneshot::Sender<Response>>,
}

/// A process added with `exec`.
pub struct Exec {
    pub args: Vec<String>,
    pub phase: ExecPhase,
}

pub enum ExecPhase {
    Starting {
        /// When the exec was queued: an exit reaped before this cannot be this process's.
        since: Instant,
        reply: oneshot::Sender<Response>,
    },
    Running {
        pid: u32,
        start_time: Option<u64>,
        /// `None` when it had exited by the time the worker opened it.
        pidfd: Option<PidFd>,
        /// Its pty master, when it has a terminal: kept to resize it.
        console: Option<File>,
    },
}

impl ExecPhase {
    pub fn pid(&self) -> Option<u32> {
        match self {
            ExecPhase::Starting { .. } => None,
            ExecPhase::Running { pid, .. } => Some(*pid),
        }
    }
}

pub enum ContainerPhase {
    Starting {
        /// When the start was queued: an exit reaped before this cannot be this container's.
        since: Instant,
        /// Answers the client that asked for the start.
        reply: oneshot::Sender<Response>,
        /// A stopped container started again: what it goes back to if the start fails.
        again: Option<Box<Again>>,
    },
    Running {
        pid: u32,
        /// `None` when the init had exited by the time the worker opened it.
        pidfd: Option<PidFd>,
        /// Where its stats and OOM kills are read; `None` if the worker could not find it.
        cgroup: Option<Cgroup>,
        /// Frozen by `runc pause`: its processes run again only after `runc resume`.
        paused: bool,
    },
    /// Its init has exited: runc deletes it, and its execs' exits are reported before its own.
    Exiting {
        exit: ProcessExit,
        /// runc has deleted it; it is stopped once its last exec has gone too.
        deleted: bool,
    },
    /// Its exit is reported; kept until it is deleted or started again.
    Stopped(Ended),
    /// Running, with CRIU dumping it in a worker: nothing else may touch it until that is done.
    Checkpointing {
        pid: u32,
        pidfd: Option<PidFd>,
        /// Kept for when the dump is done and the container is running again.
        cgroup: Option<Cgroup>,
        name: CheckpointName,
        /// The init's exit, when it came during the dump (always, for a checkpoint with exit):
        /// handled once the checkpoint's result is in, so `checkpoint` precedes `exit`.
        exited: Option<ProcessExit>,
        /// Answers the client that asked for the checkpoint.
        reply: oneshot::Sender<Response>,
    },
}

/// How a stopped container's init ended, as its `exit` event reported it.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub pid: u32,
    /// `None` when the status could not be known.
    pub status: Option<i32>,
    /// When the exit was reported, in nanoseconds since the epoch.
    pub time: u64,
    pub oom_killed: bool,
}

impl Ended {
    pub fn from_record(pid: u32, exit: &ExitRecord) -> Ended {
        Ended {
            pid,
            status: exit.status,
            time: exit.time,
            oom_killed: exit.oom_killed,
        }
    }
}

/// A stopped container being started again, as it was before: restored if the start fails.
pub struct Again {
    pub created: u64,
    pub ended: Ended,
    /// The record of its last life, removed once the new one runs (and has its own).
    pub record: Option<ContainerRecord>,
}

impl ContainerPhase {
    pub fn status(&self) -> Status {
        match self {
            ContainerPhase::Starting { .. } => Status::Starting,
            ContainerPhase::Running { paused: true, .. } => Status::Paused,
            ContainerPhase::Running { .. } => Status::Running,
            ContainerPhase::Exiting { .. } | ContainerPhase::Stopped(_) => Status::Stopped,
            ContainerPhase::Checkpointing { .. } => Status::Checkpointing,
        }
    }

    /// The init's pid, while it runs or its exit is being dealt with.
    pub fn pid(&self) -> Option<u32> {
        match self {
            ContainerPhase::Starting { .. } | ContainerPhase::Stopped(_) => None,
            ContainerPhase::Running { pid, .. } | ContainerPhase::Checkpointing { pid, .. } => {
                Some(*pid)
            }
            ContainerPhase::Exiting { exit, .. } => Some(exit.pid),
        }
    }

    /// Whether its init has exited (it may still be being cleaned up).
    pub fn has_exited(&self) -> bool {
        matches!(
            self,
            ContainerPhase::Exiting { .. } | ContainerPhase::Stopped(_)
        )
    }

    pub fn is_paused(&self) -> bool {
        matches!(self, ContainerPhase::Running { paused: true, .. })
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        match self {
            ContainerPhase::Running { cgroup, .. }
            | ContainerPhase::Checkpointing { cgroup, .. } => cgroup.as_ref(),
            _ => None,
        }
    }
}

impl Container {
    /// The handle to signal the init process, or why there is none.
    pub fn signal_target(&self) -> Result<&PidFd, ErrorResponse> {
        let not = |what: &str| {
            ErrorResponse::new(
                ErrorKind::FailedPrecondition,
                format!("container \"{}\" is {what}", self.id),
            )
        };
        match &self.phase {
            ContainerPhase::Running {
                pidfd: Some(pidfd), ..
            } => Ok(pidfd),
            ContainerPhase::Running { pidfd: None, .. } => Err(not("exiting")),
            ContainerPhase::Starting { .. } => Err(not("still starting; signal it once it runs")),
            ContainerPhase::Exiting { .. } | ContainerPhase::Stopped(_) => Err(not("stopped")),
            ContainerPhase::Checkpointing { .. } => Err(not(
                "being checkpointed; try again once the checkpoint is done",
            )),
        }
    }

    pub fn to_wire(&self) -> protocol::Container {
        protocol::Container {
            namespace: self.namespace.to_string(),
            id: self.id.to_string(),
            bundle: self.bundle.clone(),
            status: self.phase.status(),
            pid: self.phase.pid(),
            created: self.created,
            labels: self.labels.clone(),
            stdout: self.stdout.to_string_lossy().into_owned(),
            stderr: self.stderr.to_string_lossy().into_owned(),
            processes: self.processes(),
            limits: None,
            lost_output: self.lost_output(),
            exit: match &self.phase {
                ContainerPhase::Stopped(ended) => Some(ContainerExit {
                    status: ended.status,
                    time: ended.time,
                    oom_killed: ended.oom_killed,
                }),
                _ => None,
            },
        }
    }

    /// Its output that could not be written, as its relay counted it.
    fn lost_output(&self) -> protocol::LostOutput {
        let lost = self.relay.as_ref().map(Relay::lost).unwrap_or_default();
        protocol::LostOutput {
            writes: lost.writes,
            bytes: lost.bytes,
        }
    }

    /// What a restarted daemon needs to take the container over; `None` before its init runs.
    pub fn record(&self) -> Option<ContainerRecord> {
        let (pid, exit) = match &self.phase {
            ContainerPhase::Stopped(ended) => (
                ended.pid,
                Some(ExitRecord {
                    status: ended.status,
                    time: ended.time,
                    oom_killed: ended.oom_killed,
                }),
            ),
            phase => (phase.pid()?, None),
        };
        let execs = self
            .execs
            .iter()
            .filter_map(|(name, exec)| match exec.phase {
                ExecPhase::Running {
                    pid, start_time, ..
                } => Some((
                    name.to_string(),
                    ProcessRecord {
                        pid,
                        start_time,
                        args: exec.args.clone(),
                    },
                )),
                ExecPhase::Starting { .. } => None,
            })
            .collect();
        Some(ContainerRecord {
            namespace: self.namespace.to_string(),
            id: self.id.to_string(),
            bundle: self.bundle.clone(),
            labels: self.labels.clone(),
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            created: self.created,
            init: ProcessRecord {
                pid,
                start_time: self.init_start,
                args: self.args.clone(),
            },
            relayed: self.relayed,
            execs,
            exit,
            remove: self.remove,
        })
    }

    /// The init (once it runs), then the execs by name.
    fn processes(&self) -> Vec<Process> {
        let init = self.phase.pid().map(|pid| Process {
            name: INIT.to_string(),
            pid: Some(pid),
            args: self.args.clone(),
        });
        let execs = self.execs.iter().map(|(name, exec)| Process {
            name: name.to_string(),
            pid: exec.phase.pid(),
            args: exec.args.clone(),
        });
        init.into_iter().chain(execs).collect()
    }
}
