//! The supervisor's handlers for steering running containers: [`Pause`], [`Resume`] and
//! [`Update`] through runc in the worker pool, a container `runc kill --all` thawed, and OOM
//! kills reported by [`crate::oom`] ([`Oom`]).
//!
//! One pause, resume or update runs at a time per container: two could finish in another order
//! than runc applied them, and the actor would lose track of whether the container is frozen.

use actix::prelude::*;
use protocol::{ErrorKind, ErrorResponse, EventKind, Response};
use runtime::{Cgroup, ResourceUpdate};
use tokio::sync::oneshot;

use super::errors::{invalid, runtime_error};
use super::jobs::{ControlDone, ControlOp, Job, Thawed};
use super::supervisor::Supervisor;
use crate::container::{ContainerPhase, Key, INIT};
use crate::oom::OomNotifier;

// ---- messages -------------------------------------------------------------------------------

/// Freeze a running container (`runc pause`); `reply` is answered once runc has done it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Pause {
    pub namespace: String,
    pub id: String,
    pub reply: oneshot::Sender<Response>,
}

/// Thaw a paused container (`runc resume`); `reply` is answered once runc has done it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resume {
    pub namespace: String,
    pub id: String,
    pub reply: oneshot::Sender<Response>,
}

/// Change a container's resource limits (`runc update`); `reply` is answered once runc has
/// done it, or put back what it changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Update {
    pub namespace: String,
    pub id: String,
    pub resources: ResourceUpdate,
    pub reply: oneshot::Sender<Response>,
}

/// The OOM notifier saw the container's OOM kill count reach `kills`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Oom {
    pub key: Key,
    pub kills: u64,
}

// ---- handlers -------------------------------------------------------------------------------

impl Handler<Pause> for Supervisor {
    type Result = ();

    fn handle(
        &mut self,
        Pause {
            namespace,
            id,
            reply,
        }: Pause,
        ctx: &mut Context<Self>,
    ) {
        self.control(&namespace, &id, ControlOp::Pause, reply, ctx);
    }
}

impl Handler<Resume> for Supervisor {
    type Result = ();

    fn handle(
        &mut self,
        Resume {
            namespace,
            id,
            reply,
        }: Resume,
        ctx: &mut Context<Self>,
    ) {
        self.control(&namespace, &id, ControlOp::Resume, reply, ctx);
    }
}

impl Handler<Update> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Update, ctx: &mut Context<Self>) {
        let Update {
            namespace,
            id,
            resources,
            reply,
        } = msg;
        self.control(&namespace, &id, ControlOp::Update(resources), reply, ctx);
    }
}

impl Handler<ControlDone> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ControlDone, ctx: &mut Context<Self>) {
        let ControlDone {
            key,
            op,
            result,
            reply,
        } = msg;
        if let Some(container) = self.containers.get_mut(&key) {
            container.control = None;
        }
        if let Err(err) = result {
            let what = format!("cannot {} container \"{}\"", op.verb(), key.1);
            let error = runtime_error(what, &err);
            log::info!("{}", error.message);
            let _ = reply.send(Response::Error(error));
            return;
        }
        // runc did it; the container may have exited since (a KILL sent while it was paused
        // lands as it thaws), and then its event still precedes its exit, or it is gone.
        let Some(container) = self.containers.get_mut(&key) else {
            let _ = reply.send(Response::Done);
            return;
        };
        let Some(pid) = container.phase.pid() else {
            let _ = reply.send(Response::Done);
            return;
        };
        if let ContainerPhase::Running { paused, .. } = &mut container.phase {
            match op {
                ControlOp::Pause => *paused = true,
                ControlOp::Resume => *paused = false,
                ControlOp::Update(_) => {}
            }
        }
        let kind = match op {
            ControlOp::Pause => EventKind::Pause,
            ControlOp::Resume => EventKind::Resume,
            ControlOp::Update(_) => EventKind::Update,
        };
        self.emit(kind, &key, INIT, pid, None);
        let _ = reply.send(Response::Done);
        // A pause that finished after shutdown began would hold its container's TERM or KILL.
        if self.shutdown.is_some() {
            self.resume_paused(ctx);
        }
    }
}

impl Handler<Thawed> for Supervisor {
    type Result = ();

    fn handle(&mut self, Thawed { key }: Thawed, _: &mut Context<Self>) {
        let Some(container) = self.containers.get_mut(&key) else {
            return;
        };
        let ContainerPhase::Running { pid, paused, .. } = &mut container.phase else {
            return;
        };
        if *paused {
            *paused = false;
            let pid = *pid;
            self.emit(EventKind::Resume, &key, INIT, pid, None);
        }
    }
}

impl Handler<Oom> for Supervisor {
    type Result = ();

    fn handle(&mut self, Oom { key, kills }: Oom, _: &mut Context<Self>) {
        let Some(container) = self.containers.get_mut(&key) else {
            return;
        };
        let Some(pid) = container.phase.pid() else {
            return;
        };
        if kills > container.oom_kills {
            container.oom_kills = kills;
            self.emit(EventKind::Oom, &key, INIT, pid, None);
        }
    }
}

// ---- the rest -------------------------------------------------------------------------------

impl Supervisor {
    /// Checks a pause, resume or update against the container's state and queues it.
    fn control(
        &mut self,
        namespace: &str,
        id: &str,
        op: ControlOp,
        reply: oneshot::Sender<Response>,
        ctx: &mut Context<Self>,
    ) {
        let checked = self.accepting().and_then(|()| self.find(namespace, id)).and_then(|(key, container)| {
            if let Some(running) = container.control {
                return Err(ErrorResponse::new(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "cannot {} container \"{}\": a {running} of it is in progress; try again once it is done",
                        op.verb(),
                        key.1
                    ),
                ));
            }
            let status = container.phase.status();
            if !op.allowed(status) {
                return Err(ErrorResponse::new(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "cannot {} container \"{}\": it is {status}",
                        op.verb(),
                        key.1
                    ),
                ));
            }
            if let ControlOp::Update(update) = &op {
                update.validate().map_err(|e| invalid(e.to_string()))?;
            }
            Ok((key.clone(), container.phase.cgroup().cloned()))
        });
        let (key, cgroup) = match checked {
            Ok(found) => found,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        self.submit_control(key, op, cgroup, reply, ctx);
    }

    /// Runs the operation's runc command in the pool; [`ControlDone`] brings the result back.
    /// An update needs the container's `cgroup` to undo what a failing `runc update` changed.
    /// The container is marked as changing until then.
    fn submit_control(
        &mut self,
        key: Key,
        op: ControlOp,
        cgroup: Option<Cgroup>,
        reply: oneshot::Sender<Response>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(container) = self.containers.get_mut(&key) {
            container.control = Some(op.verb());
        }
        let what = format!("{}/{}", key.0, key.1);
        let submitted = self.workers.submit(Job::Control {
            key,
            op,
            cgroup,
            reply,
            done: ctx.address().recipient(),
        });
        if submitted.is_err() {
            log::error!("worker pool is gone; {what} not changed");
        }
    }

    /// At shutdown: a frozen container holds the signals sent to it until it is thawed, so
    /// every paused container is resumed to let them land. One with a pause or resume still in
    /// flight is seen to when that finishes ([`ControlDone`]).
    pub(super) fn resume_paused(&mut self, ctx: &mut Context<Self>) {
        let paused: Vec<Key> = self
            .containers
            .iter()
            .filter(|(_, c)| c.phase.is_paused() && c.control.is_none())
            .map(|(key, _)| key.clone())
            .collect();
        for key in paused {
            // Nobody waits for the answer; the `resume` event reports it.
            let (reply, _) = oneshot::channel();
            self.submit_control(key, ControlOp::Resume, None, reply, ctx);
        }
    }

    /// Starts watching for OOM kills; each reaches the actor as an [`Oom`].
    pub(super) fn start_oom_notifier(&mut self, ctx: &mut Context<Self>) {
        let addr = ctx.address();
        match OomNotifier::start(move |key, kills| addr.do_send(Oom { key, kills })) {
            Ok(notifier) => self.oom = Some(notifier),
            Err(e) => log::error!("cannot start the oom notifier; no oom events: {e}"),
        }
    }
}
