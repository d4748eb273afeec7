//! The actor's side of checkpoints: dumping a container, and listing and deleting the
//! checkpoints in its bundle.
//!
//! CRIU runs in a worker and can take seconds. Meanwhile the container is
//! [`ContainerPhase::Checkpointing`]: a kill or a second checkpoint gets a clear error instead of racing
//! the dump. An exit that arrives during the dump (always, with `exit`) waits in the phase until
//! the dump's result is in, so the `checkpoint` event precedes the `exit` event. Listing and
//! deleting read and remove files, so they run in a worker too; the actor only looks up the
//! bundle.

use actix::prelude::*;
use protocol::{
    CheckpointRequest, DeleteCheckpointRequest, ErrorKind, ErrorResponse, EventKind,
    ListCheckpointsRequest, Response,
};
use runtime::{CheckpointName, CheckpointOptions};
use tokio::sync::oneshot;
use worker::CheckpointJob;

use super::errors::{invalid, key, pool_gone, runtime_error};
use super::jobs::{CheckpointDone, Job};
use super::supervisor::Supervisor;
use crate::container::{ContainerPhase, INIT};

// ---- messages -------------------------------------------------------------------------------

/// Checkpoint a running container; `reply` is answered once the checkpoint is on disk.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Checkpoint {
    pub req: CheckpointRequest,
    pub reply: oneshot::Sender<Response>,
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
        let submitted = self.workers.submit(Job::Checkpoint {
            job,
            done: ctx.address().recipient(),
        });
        if submitted.is_err() {
            let _ = reply.send(Response::Error(pool_gone()));
            return;
        }
        let Some(mut container) = self.containers.remove(&key) else {
            return;
        };
        container.phase = match container.phase {
            ContainerPhase::Running {
                pid, pidfd, cgroup, ..
            } => ContainerPhase::Checkpointing {
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
        let ContainerPhase::Checkpointing {
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
        container.phase = ContainerPhase::Running {
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
                let error =
                    runtime_error(format!("cannot checkpoint container \"{}\"", key.1), &err);
                log::info!("{}", error.message);
                Response::Error(error)
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
        let submitted = self.workers.submit(Job::ListCheckpoints {
            id: req.id,
            bundle,
            reply,
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
            .map_err(|e| invalid(e.to_string()))
            .and_then(|name| {
                let (_, container) = self.find(&req.namespace, &req.id)?;
                if let ContainerPhase::Checkpointing { name: taking, .. } = &container.phase {
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
        let submitted = self.workers.submit(Job::DeleteCheckpoint {
            bundle,
            name,
            reply,
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
        let name = CheckpointName::new(&req.name).map_err(|e| invalid(e.to_string()))?;
        let parent = req
            .parent
            .as_deref()
            .map(CheckpointName::new)
            .transpose()
            .map_err(|e| invalid(e.to_string()))?;
        if req.pre_dump && req.exit {
            return Err(invalid(
                "a pre-dump leaves the container running: it cannot be taken with exit",
            ));
        }
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
            ContainerPhase::Running { paused: true, .. } => return not("paused; resume it first"),
            ContainerPhase::Running { pidfd: Some(_), .. } => {}
            ContainerPhase::Running { pidfd: None, .. } => return not("exiting"),
            ContainerPhase::Starting { .. } => return not("still starting"),
            ContainerPhase::Exiting { .. } | ContainerPhase::Stopped(_) => return not("stopped"),
            ContainerPhase::Checkpointing { name, .. } => {
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
            pre_dump: req.pre_dump,
            parent,
        })
    }
}
