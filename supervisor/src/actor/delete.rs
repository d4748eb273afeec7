//! Deleting containers: [`Delete`] of a stopped one (or, with `force`, of a running one, killed
//! first), and the deletion of a container started with `--rm` once it stops.
//!
//! A deleted container leaves the actor's state at once. Once the events before are on disk (so
//! a daemon killed meanwhile never lacks both the record and the journaled exit of a container
//! deleted at its exit) → [`RemoveFiles`], a worker removes its record, its runtime state, if
//! any is left, and its directory in the state dir (the default logs) → [`Removed`], and the
//! client is answered. Until then the id stays in [`Supervisor::removing`]: a start of it waits
//! there and runs once the files are gone, so it never meets the old container's files being
//! removed under it.

use actix::prelude::*;
use protocol::{DeleteRequest, ErrorKind, ErrorResponse, Response};
use runtime::ContainerRecord;
use tokio::sync::oneshot;

use super::errors::{container_state, key, not_found, pool_gone};
use super::jobs::{Job, Removed};
use super::lifecycle::Start;
use super::supervisor::Supervisor;
use crate::container::{ContainerPhase, Key};

// ---- messages -------------------------------------------------------------------------------

/// Delete a container; `reply` is answered once its files are gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Delete {
    pub req: DeleteRequest,
    pub reply: oneshot::Sender<Response>,
}

/// The events before a deletion are on disk: its files may go.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveFiles {
    key: Key,
    record: Option<ContainerRecord>,
}

/// A container whose files are being removed.
#[derive(Default)]
pub struct Removal {
    /// Clients to answer once its files are gone.
    pub waiters: Vec<oneshot::Sender<Response>>,
    /// Starts of its id that came meanwhile, in order.
    pub starts: Vec<Start>,
}

// ---- handlers -------------------------------------------------------------------------------

impl Handler<Delete> for Supervisor {
    type Result = ();

    fn handle(&mut self, Delete { req, reply }: Delete, ctx: &mut Context<Self>) {
        let key = match key(&req.namespace, &req.id) {
            Ok(key) => key,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        if let Some(removal) = self.removing.get_mut(&key) {
            removal.waiters.push(reply);
            return;
        }
        let Some(container) = self.containers.get_mut(&key) else {
            let _ = reply.send(Response::Error(not_found(&key.1)));
            return;
        };
        let refusal = match &container.phase {
            ContainerPhase::Stopped(_) => {
                container.deleters.push(reply);
                self.remove_stopped(&key, ctx);
                return;
            }
            // Its exit is on its way: it is deleted once stopped.
            ContainerPhase::Exiting { .. } => None,
            ContainerPhase::Running { .. } if req.force => None,
            ContainerPhase::Running { paused, .. } => {
                let status = if *paused { "paused" } else { "running" };
                Some(format!(
                    "{status}; stop it first, or delete it with --force"
                ))
            }
            ContainerPhase::Starting { .. } => {
                Some("still starting; delete it once it runs".into())
            }
            ContainerPhase::Checkpointing { .. } => {
                Some("being checkpointed; delete it once the checkpoint is done".into())
            }
        };
        if let Some(why) = refusal {
            let _ = reply.send(Response::Error(container_state(&key.1, &why)));
            return;
        }
        container.remove = true;
        container.deleters.push(reply);
        if let ContainerPhase::Running { pidfd, paused, .. } = &container.phase {
            if *paused {
                // A KILL to a frozen init waits for a thaw; runc kill --all thaws it to deliver.
                let (reply, _) = oneshot::channel();
                let submitted = self.workers.submit(Job::KillAll {
                    key: key.clone(),
                    signal: libc::SIGKILL,
                    paused: true,
                    reply,
                    thawed: ctx.address().recipient(),
                });
                if submitted.is_err() {
                    log::error!("worker pool is gone; {}/{} not killed", key.0, key.1);
                }
            } else if let Some(pidfd) = pidfd {
                // ESRCH: it has exited already, and its exit is on its way.
                let _ = pidfd.send_signal(libc::SIGKILL);
            }
        }
        // A daemon restarted before it stops deletes it too.
        self.persist(&key);
    }
}

impl Handler<RemoveFiles> for Supervisor {
    type Result = ();

    fn handle(&mut self, RemoveFiles { key, record }: RemoveFiles, ctx: &mut Context<Self>) {
        let submitted = self.workers.submit(Job::Remove {
            key: key.clone(),
            record,
            dir: self.state_dir.container_dir(&key.0, &key.1),
            done: ctx.address().recipient(),
        });
        if submitted.is_err() {
            let removed = Removed {
                key,
                result: Err(pool_gone().message),
            };
            <Self as Handler<Removed>>::handle(self, removed, ctx);
        }
    }
}

impl Handler<Removed> for Supervisor {
    type Result = ();

    fn handle(&mut self, Removed { key, result }: Removed, ctx: &mut Context<Self>) {
        let Some(removal) = self.removing.remove(&key) else {
            return;
        };
        let response = match result {
            Ok(()) => Response::Done,
            Err(why) => {
                log::warn!("container {}/{} is deleted, but {why}", key.0, key.1);
                Response::Error(ErrorResponse::new(
                    ErrorKind::Internal,
                    format!("container \"{}\" is deleted, but {why}", key.1),
                ))
            }
        };
        for waiter in removal.waiters {
            let _ = waiter.send(response.clone());
        }
        for start in removal.starts {
            <Self as Handler<Start>>::handle(self, start, ctx);
        }
        self.notify_if_empty();
    }
}

impl Supervisor {
    /// Deletes a stopped container: out of the actor's state now, its files once the events
    /// before are on disk.
    pub(super) fn remove_stopped(&mut self, key: &Key, ctx: &mut Context<Self>) {
        let Some(container) = self.containers.remove(key) else {
            return;
        };
        let files = RemoveFiles {
            key: key.clone(),
            record: container.record(),
        };
        let addr = ctx.address();
        self.journal.after_write(move || addr.do_send(files));
        let removal = Removal {
            waiters: container.deleters,
            starts: Vec::new(),
        };
        self.removing.insert(key.clone(), removal);
    }
}
