//! The actor's edge to the worker pool: the work it hands over, described as data ([`Job`]), the
//! messages that bring each result back, and [`Workers`], the seam the jobs go through.
//!
//! The actor never runs a job itself: it describes one and submits it. [`PoolWorkers`] runs each
//! on a pool thread (runc, CRIU, the disk) and sends its result to the recipient the job names.
//! A test's own [`Workers`] holds the jobs instead and completes them, in any order it chooses,
//! by sending the result messages itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use protocol::{ErrorResponse, Response, Status};
use runtime::{
    checkpoint, Bundle, Cgroup, CheckpointMeta, CheckpointName, ContainerRecord, ListedCheckpoint,
    ProcessName, ResourceUpdate, Runc, RuntimeError,
};
use tokio::sync::oneshot;
use worker::pool::PoolClosed;
use worker::{
    checkpoint_container, exec_process, start_container, update_container, CheckpointJob, Drain,
    ExecJob, Execed, OutputKeeper, Pool, Priority, Relay, StartJob, StartedContainer,
};

use super::errors::{error_kind, runtime_error};
use crate::container::Key;
use crate::metrics::telemetry::StartTiming;

/// How long the cleanup after an exit waits for the container's last output to reach its files.
/// A destination that has stalled is not waited for this long (see [`worker::relay::STALL`]):
/// one container's stuck FIFO holds no worker, and so no other exit, for more than that.
const RELAY_WAIT: Duration = Duration::from_secs(5);

/// What the actor hands to the worker pool. Each job names where its result goes: a message
/// back to the actor, or (for one that only answers a client) the client's reply.
pub enum Job {
    /// Start (or restore) a container, unless shutdown began while it was queued
    /// (`cancelled`) → [`StartDone`].
    Start {
        job: StartJob,
        cancelled: Arc<AtomicBool>,
        done: Recipient<StartDone>,
    },
    /// The cleanup after an init's exit: read the cgroup's OOM kill counter (runc delete removes
    /// it), `runc delete`, wait for the last output to reach its files → [`Deleted`].
    Delete {
        key: Key,
        cgroup: Option<Cgroup>,
        relay: Option<Relay>,
        done: Recipient<Deleted>,
    },
    /// Delete a stopped container's files: its record, its runtime state, if any is left, and
    /// its directory in the state dir → [`Removed`].
    Remove {
        key: Key,
        record: Option<ContainerRecord>,
        dir: PathBuf,
        done: Recipient<Removed>,
    },
    /// `runc exec` one more process → [`ExecDone`].
    Exec {
        job: ExecJob,
        done: Recipient<ExecDone>,
    },
    /// CRIU dumps a container → [`CheckpointDone`].
    Checkpoint {
        job: CheckpointJob,
        done: Recipient<CheckpointDone>,
    },
    /// `runc pause`, `resume` or `update` → [`ControlDone`], which carries `reply` back. An
    /// update needs the container's `cgroup` to undo what a failing `runc update` changed.
    Control {
        key: Key,
        op: ControlOp,
        cgroup: Option<Cgroup>,
        reply: oneshot::Sender<Response>,
        done: Recipient<ControlDone>,
    },
    /// `runc kill --all`; answers `reply`, and a container that was `paused` (runc thaws it to
    /// deliver the signal) → [`Thawed`].
    KillAll {
        key: Key,
        signal: i32,
        paused: bool,
        reply: oneshot::Sender<Response>,
        thawed: Recipient<Thawed>,
    },
    /// Read the checkpoints in a bundle; answers `reply`.
    ListCheckpoints {
        id: String,
        bundle: String,
        reply: oneshot::Sender<Response>,
    },
    /// Remove a checkpoint from a bundle; answers `reply`.
    DeleteCheckpoint {
        bundle: String,
        name: CheckpointName,
        reply: oneshot::Sender<Response>,
    },
}

/// What a [`Job::Control`] asks runc to do.
#[derive(Debug, Clone)]
pub enum ControlOp {
    Pause,
    Resume,
    Update(ResourceUpdate),
}

impl ControlOp {
    pub fn verb(&self) -> &'static str {
        match self {
            ControlOp::Pause => "pause",
            ControlOp::Resume => "resume",
            ControlOp::Update(_) => "update",
        }
    }

    /// Whether a container in `status` can take this operation.
    pub fn allowed(&self, status: Status) -> bool {
        match self {
            ControlOp::Pause => status == Status::Running,
            ControlOp::Resume => status == Status::Paused,
            ControlOp::Update(_) => matches!(status, Status::Running | Status::Paused),
        }
    }
}

// ---- results --------------------------------------------------------------------------------

/// A worker finished a start.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartDone {
    pub key: Key,
    pub result: Result<StartedContainer, RuntimeError>,
    pub timing: StartTiming,
}

/// A worker ran `runc delete` for a container whose init exited.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deleted {
    pub key: Key,
    pub result: Result<(), RuntimeError>,
    /// The cgroup's OOM kill counter, read just before runc deleted it.
    pub oom_kills: u64,
}

/// A worker removed a deleted container's files; `Err` says what it could not remove.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Removed {
    pub key: Key,
    pub result: Result<(), String>,
}

/// A worker finished an exec: the process runs, or `runc exec` failed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExecDone {
    pub key: Key,
    pub name: ProcessName,
    pub result: Result<Execed, RuntimeError>,
}

/// A worker finished a checkpoint.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CheckpointDone {
    pub key: Key,
    pub result: Result<CheckpointMeta, RuntimeError>,
}

/// A worker ran the runc command of a pause, resume or update.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ControlDone {
    pub key: Key,
    pub op: ControlOp,
    pub result: Result<(), RuntimeError>,
    pub reply: oneshot::Sender<Response>,
}

/// `runc kill --all` thawed a paused container.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Thawed {
    pub key: Key,
}

// ---- the seam -------------------------------------------------------------------------------

/// Where the actor's jobs run.
pub trait Workers: Send {
    /// Queues `job`; its result goes where the job says, once it has run.
    fn submit(&self, job: Job) -> Result<(), PoolClosed>;
    /// How busy the workers are, for the state dump and the hand-over.
    fn load(&self) -> Load;
}

/// Jobs queued and running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub queued: usize,
    pub busy: usize,
    pub workers: usize,
    /// No job submitted and not yet finished: counted from submission, so a job between the
    /// queue and a worker is not missed (`queued` and `busy` are read apart and can both be 0).
    pub idle: bool,
}

/// The daemon's [`Workers`]: the pool's threads, with the keeper to hand a new container's
/// output pipes to.
pub struct PoolWorkers {
    pool: Arc<Pool>,
    keeper: Arc<dyn OutputKeeper>,
}

impl PoolWorkers {
    pub fn new(pool: Arc<Pool>, keeper: Arc<dyn OutputKeeper>) -> Self {
        PoolWorkers { pool, keeper }
    }
}

impl Workers for PoolWorkers {
    fn submit(&self, job: Job) -> Result<(), PoolClosed> {
        let keeper = self.keeper.clone();
        self.pool
            .submit(job.priority(), move |runc| job.run(runc, &*keeper))
    }

    fn load(&self) -> Load {
        Load {
            queued: self.pool.queued(),
            busy: self.pool.busy(),
            workers: self.pool.size(),
            idle: self.pool.idle(),
        }
    }
}

impl Job {
    /// The cleanup after an exit, and a kill, never wait behind a thousand queued starts.
    fn priority(&self) -> Priority {
        match self {
            Job::Delete { .. } | Job::KillAll { .. } => Priority::Urgent,
            _ => Priority::Normal,
        }
    }

    /// Runs the job on a worker thread and sends its result on.
    fn run(self, runc: &Runc, keeper: &dyn OutputKeeper) {
        match self {
            Job::Start {
                job,
                cancelled,
                done,
            } => {
                let picked_up = Instant::now();
                let result = if cancelled.load(Ordering::Relaxed) {
                    Err(RuntimeError::Failed {
                        op: "run",
                        id: job.id.to_string(),
                        message: "ctrd is shutting down".into(),
                    })
                } else {
                    start_container(runc, &job, keeper)
                };
                let timing = StartTiming {
                    picked_up,
                    finished: Instant::now(),
                };
                done.do_send(StartDone {
                    key: (job.namespace, job.id),
                    result,
                    timing,
                });
            }
            Job::Delete {
                key,
                cgroup,
                relay,
                done,
            } => {
                let oom_kills = cgroup.map_or(0, |c| c.oom_kills().unwrap_or(0));
                // A checkpoint with exit has had runc delete the container already.
                let result = if runc.has_state(&key.0, &key.1) {
                    runc.delete(&key.0, &key.1, true)
                } else {
                    Ok(())
                };
                if let Some(relay) = relay {
                    wait_for_output(&key, &relay);
                }
                done.do_send(Deleted {
                    key,
                    result,
                    oom_kills,
                });
            }
            Job::Remove {
                key,
                record,
                dir,
                done,
            } => {
                let result = remove_files(runc, &key, record.as_ref(), &dir);
                done.do_send(Removed { key, result });
            }
            Job::Exec { job, done } => {
                let result = exec_process(runc, &job);
                done.do_send(ExecDone {
                    key: (job.namespace, job.id),
                    name: job.name,
                    result,
                });
            }
            Job::Checkpoint { job, done } => {
                let result = checkpoint_container(runc, &job);
                done.do_send(CheckpointDone {
                    key: (job.namespace, job.id),
                    result,
                });
            }
            Job::Control {
                key,
                op,
                cgroup,
                reply,
                done,
            } => {
                let (ns, id) = (&key.0, &key.1);
                let result = match &op {
                    ControlOp::Pause => runc.pause(ns, id),
                    ControlOp::Resume => runc.resume(ns, id),
                    ControlOp::Update(update) => {
                        update_container(runc, ns, id, update, cgroup.as_ref())
                    }
                };
                done.do_send(ControlDone {
                    key,
                    op,
                    result,
                    reply,
                });
            }
            Job::KillAll {
                key,
                signal,
                paused,
                reply,
                thawed,
            } => {
                let response = match runc.kill(&key.0, &key.1, signal, true) {
                    // runc freezes the container, signals every process, then thaws it.
                    Ok(()) if paused => {
                        let note = format!(
                            "container \"{}\" was paused: runc kill --all thawed it to deliver \
                             signal {signal}, so it runs again",
                            key.1
                        );
                        thawed.do_send(Thawed { key });
                        Response::Noted(note)
                    }
                    Ok(()) => Response::Done,
                    Err(err) => {
                        Response::Error(ErrorResponse::new(error_kind(&err), err.to_string()))
                    }
                };
                let _ = reply.send(response);
            }
            Job::ListCheckpoints { id, bundle, reply } => {
                let listed = Bundle::open(&bundle).and_then(|bundle| checkpoint::list(&bundle));
                let response = match listed {
                    Ok(list) => Response::Checkpoints(list.into_iter().map(to_wire).collect()),
                    Err(err) => Response::Error(runtime_error(
                        format!("cannot list checkpoints of container \"{id}\""),
                        &err,
                    )),
                };
                let _ = reply.send(response);
            }
            Job::DeleteCheckpoint {
                bundle,
                name,
                reply,
            } => {
                let deleted =
                    Bundle::open(&bundle).and_then(|bundle| checkpoint::delete(&bundle, &name));
                let response = match deleted {
                    Ok(()) => Response::Done,
                    Err(err) => {
                        Response::Error(ErrorResponse::new(error_kind(&err), err.to_string()))
                    }
                };
                let _ = reply.send(response);
            }
        }
    }
}

/// Removes what is left of a deleted container: its record, runc's state (normally deleted at
/// its exit already) and its directory (pid file, default logs, checkpoint work dirs).
fn remove_files(
    runc: &Runc,
    (namespace, id): &Key,
    record: Option<&ContainerRecord>,
    dir: &std::path::Path,
) -> Result<(), String> {
    if let Some(record) = record {
        record
            .remove(runc.state_dir())
            .map_err(|e| format!("cannot remove its record: {e}"))?;
    }
    if runc.has_state(namespace, id) {
        runc.delete(namespace, id, true)
            .map_err(|e| format!("runc could not delete it: {e}"))?;
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Waits for an exited container's last output to reach its files, up to [`RELAY_WAIT`] and not
/// past a stall, and says what did not make it.
fn wait_for_output((namespace, id): &Key, relay: &Relay) {
    match relay.wait(RELAY_WAIT) {
        Drain::Done => {}
        Drain::Stalled => log::warn!(
            "container {namespace}/{id}: its output destination has stopped taking output; the \
             exit is reported before its last output, which follows if the destination resumes"
        ),
        Drain::TimedOut => log::warn!(
            "container {namespace}/{id}: output still open {RELAY_WAIT:?} after its exit"
        ),
    }
    let lost = relay.lost();
    if lost.writes > 0 {
        log::warn!(
            "container {namespace}/{id}: {} write(s) of its output failed, {} bytes lost",
            lost.writes,
            lost.bytes
        );
    }
}

fn to_wire(ListedCheckpoint { meta, size }: ListedCheckpoint) -> protocol::CheckpointInfo {
    protocol::CheckpointInfo {
        name: meta.name,
        options: protocol::CheckpointOptions {
            tcp: meta.options.tcp_established,
            unix_sockets: meta.options.ext_unix_sk,
            shell: meta.options.shell_job,
        },
        exit: meta.exit,
        created: meta.created,
        pre_dump: meta.pre_dump,
        parent: meta.parent,
        size,
    }
}
