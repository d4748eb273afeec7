//! The actor's side of checkpoints: dumping a container, and listing and deleting the
//! checkpoints in its bundle.
//!
//! CRIU runs in a worker and can take seconds. Meanwhile the container is
//! [`Phase::Checkpointing`]: a kill or a second checkpoint gets a clear error instead of racing
//! the dump. An exit that arrives during the dump (always, with `exit`) waits in the phase until
//! the dump's result is in, so the `checkpoint` event precedes the `exit` event. Listing and
//! deleting read and remove files, so they run in a worker too; the actor only looks up the
//! bundle.

use actix::prelude::*;
use protocol::{
    CheckpointRequest, DeleteCheckpointRequest, ErrorKind, ErrorResponse, EventKind,
    ListCheckpointsRequest, Response,
};
use runtime::{
    checkpoint, Bundle, CheckpointMeta, CheckpointName, CheckpointOptions, RuntimeError,
};
use tokio::sync::oneshot;
use worker::{checkpoint_container, CheckpointJob, Priority};

use super::{invalid, key, Supervisor, INIT};
use crate::container::{Key, Phase};

// ---- messages -------------------------------------------------------------------------------

/// Checkpoint a running container; `reply` is answered once the checkpoint is on disk.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Checkpoint {
    pub req: CheckpointRequest,
    pub reply: oneshot::Sender<Response>,
}

/// A worker finished a checkpoint.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CheckpointDone {
    key: Key,
    result: Result<CheckpointMeta, RuntimeError>,
}

/// The checkpoints in a container's bundle; `reply` is answered by the worker that reads them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ListCheckpoints {
    pub req: ListCheckpointsRequest,
    pub reply: oneshot::Sender<Response>,
}

/// Remove a checkpoint from a container's bundle; `reply` is answered by the worker.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeleteCheckpoint {
    pub req: DeleteCheckpointRequest,
    pub reply: oneshot::Sender<Response>,
}

// ---- handlers -------------------------------------------------------------------------------

impl Handler<Checkpoint> for Supervisor {
    type Result = ();

    fn handle(&mut self, Checkpoint { req, reply }: Checkpoint, ctx: &mut Context<Self>) {
        let job = match self.admit_checkpoint(&req) {
            Ok(job) => job,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        let key = (job.namespace.clone(), job.id.clone());
        let name = job.name.clone();
        let addr = ctx.address();
        let job_key = key.clone();
        let submitted = self.pool.submit(Priority::Normal, move |runc| {
            let result = checkpoint_container(runc, &job);
            addr.do_send(CheckpointDone {
                key: job_key,
                result,
            });
        });
        if submitted.is_err() {
            let err = ErrorResponse::new(ErrorKind::Internal, "the worker pool is gone");
            let _ = reply.send(Response::Error(err));
            return;
        }
        let Some(mut container) = self.containers.remove(&key) else {
            return;
        };
        container.phase = match container.phase {
            Phase::Running {
                pid, pidfd, cgroup, ..
            } => Phase::Checkpointing {
                pid,
                pidfd,
                cgroup,
                name,
                exited: None,
                reply,
            },
            // admit_checkpoint let only a running container through.
            other => other,
        };
        self.containers.insert(key, container);
    }
}

impl Handler<CheckpointDone> for Supervisor {
    type Result = ();

    fn handle(&mut self, CheckpointDone { key, result }: CheckpointDone, ctx: &mut Context<Self>) {
        let Some(mut container) = self.containers.remove(&key) else {
            log::error!(
                "checkpoint of {}/{} finished for no known container",
                key.0,
                key.1
            );
            return;
        };
        let Phase::Checkpointing {
            pid,
            pidfd,
            cgroup,
            exited,
            reply,
            ..
        } = container.phase
        else {
            log::error!("checkpoint of {}/{} finished twice", key.0, key.1);
            self.containers.insert(key, container);
            return;
        };
        if let (Some(signal), Some(pidfd)) = (self.shutdown, &pidfd) {
            let _ = pidfd.send_signal(signal);
        }
        container.phase = Phase::Running {
            pid,
            pidfd,
            cgroup,
            paused: false,
        };
        self.containers.insert(key.clone(), container);
        let response = match result {
            Ok(meta) => {
                log::info!("checkpointed {}/{} as {}", key.0, key.1, meta.name);
                self.emit(EventKind::Checkpoint, &key, INIT, pid, None);
                Response::Done
            }
            Err(err) => {
                let message = format!("cannot checkpoint container \"{}\": {err}", key.1);
                log::info!("{message}");
                Response::Error(ErrorResponse::new(error_kind(&err), message))
            }
        };
        let _ = reply.send(response);
        if let Some(exit) = exited {
            self.init_exited(key, exit, ctx);
        }
    }
}

impl Handler<ListCheckpoints> for Supervisor {
    type Result = ();

    fn handle(&mut self, ListCheckpoints { req, reply }: ListCheckpoints, _: &mut Context<Self>) {
        let bundle = match self.find(&req.namespace, &req.id) {
            Ok((_, container)) => container.bundle.clone(),
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        let submitted = self.pool.submit(Priority::Normal, move |_| {
            let listed = Bundle::open(&bundle).and_then(|bundle| checkpoint::list(&bundle));
            let response = match listed {
                Ok(list) => Response::Checkpoints(list.into_iter().map(to_wire).collect()),
                Err(err) => Response::Error(ErrorResponse::new(
                    error_kind(&err),
                    format!("cannot list checkpoints of container \"{}\": {err}", req.id),
                )),
            };
            let _ = reply.send(response);
        });
        if submitted.is_err() {
            log::error!("worker pool is gone; checkpoints not listed");
        }
    }
}

impl Handler<DeleteCheckpoint> for Supervisor {
    type Result = ();

    fn handle(&mut self, DeleteCheckpoint { req, reply }: DeleteCheckpoint, _: &mut Context<Self>) {
        let target = CheckpointName::new(&req.name)
            .map_err(invalid)
            .and_then(|name| {
                let (_, container) = self.find(&req.namespace, &req.id)?;
                if let Phase::Checkpointing { name: taking, .. } = &container.phase {
                    if *taking == name {
                        return Err(ErrorResponse::new(
                            ErrorKind::FailedPrecondition,
                            format!(
                                "checkpoint \"{name}\" of container \"{}\" is still being taken",
                                req.id
                            ),
                        ));
                    }
                }
                Ok((name, container.bundle.clone()))
            });
        let (name, bundle) = match target {
            Ok(target) => target,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        let submitted = self.pool.submit(Priority::Normal, move |_| {
            let deleted =
                Bundle::open(&bundle).and_then(|bundle| checkpoint::delete(&bundle, &name));
            let response = match deleted {
                Ok(()) => Response::Done,
                Err(err) => Response::Error(ErrorResponse::new(error_kind(&err), err.to_string())),
            };
            let _ = reply.send(response);
        });
        if submitted.is_err() {
            log::error!("worker pool is gone; checkpoint not deleted");
        }
    }
}

// ---- admission ------------------------------------------------------------------------------

impl Supervisor {
    /// A checkpoint needs valid names and a running container that nothing else is dumping.
    fn admit_checkpoint(&self, req: &CheckpointRequest) -> Result<CheckpointJob, ErrorResponse> {
        self.accepting()?;
        let (namespace, id) = key(&req.namespace, &req.id)?;
        let name = CheckpointName::new(&req.name).map_err(invalid)?;
        let (_, container) = self.find(&req.namespace, &req.id)?;
        let not = |what: &str| {
            Err(ErrorResponse::new(
                ErrorKind::FailedPrecondition,
                format!("cannot checkpoint container \"{id}\": it is {what}"),
            ))
        };
        if let Some(running) = container.control {
            return not(&format!("being changed (a {running} is in progress)"));
        }
        match &container.phase {
            // CRIU would find its processes frozen; resume it first.
            Phase::Running { paused: true, .. } => return not("paused; resume it first"),
            Phase::Running { pidfd: Some(_), .. } => {}
            Phase::Running { pidfd: None, .. } => return not("exiting"),
            Phase::Starting { .. } => return not("still starting"),
            Phase::Stopped { .. } => return not("stopped"),
            Phase::Checkpointing { name, .. } => {
                return not(&format!("already being checkpointed as \"{name}\""))
            }
        }
        Ok(CheckpointJob {
            namespace,
            id,
            bundle: container.bundle.clone().into(),
            name,
            options: CheckpointOptions {
                tcp_established: req.options.tcp,
                ext_unix_sk: req.options.unix_sockets,
                shell_job: req.options.shell,
            },
            exit: req.exit,
        })
    }
}

fn to_wire(meta: CheckpointMeta) -> protocol::Checkpoint {
    protocol::Checkpoint {
        name: meta.name,
        options: protocol::CheckpointOptions {
            tcp: meta.options.tcp_established,
            unix_sockets: meta.options.ext_unix_sk,
            shell: meta.options.shell_job,
        },
        exit: meta.exit,
        created: meta.created,
    }
}

fn error_kind(err: &RuntimeError) -> ErrorKind {
    match err {
        RuntimeError::InvalidName { .. } | RuntimeError::InvalidBundle { .. } => {
            ErrorKind::InvalidArgument
        }
        RuntimeError::CheckpointExists { .. } => ErrorKind::AlreadyExists,
        RuntimeError::NoCheckpoint { .. } => ErrorKind::NotFound,
        _ => ErrorKind::Runtime,
    }
}
