//! The supervisor's handlers for steering running containers: pause, resume and update through
//! runc in the worker pool, the containers a stats request reads (the reading itself happens
//! off the actor, in [`crate::stats`]), and OOM kills reported by [`crate::oom`].

use actix::prelude::*;
use protocol::{ErrorKind, ErrorResponse, EventKind, Response, Status};
use runtime::{Cgroup, Namespace, ResourceUpdate, RuntimeError};
use tokio::sync::oneshot;
use worker::{update_container, Priority};

use super::{invalid, key, not_found, Supervisor, INIT};
use crate::container::{Key, Phase};

/// What a [`Control`] request asks runc to do.
#[derive(Debug, Clone)]
pub enum ControlOp {
    Pause,
    Resume,
    Update(ResourceUpdate),
}

impl ControlOp {
    fn verb(&self) -> &'static str {
        match self {
            ControlOp::Pause => "pause",
            ControlOp::Resume => "resume",
            ControlOp::Update(_) => "update",
        }
    }

    /// Whether a container in `status` can take this operation.
    fn allowed(&self, status: Status) -> bool {
        match self {
            ControlOp::Pause => status == Status::Running,
            ControlOp::Resume => status == Status::Paused,
            ControlOp::Update(_) => matches!(status, Status::Running | Status::Paused),
        }
    }
}

/// Pause, resume or update a container; `reply` is answered once runc has done it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Control {
    pub namespace: String,
    pub id: String,
    pub op: ControlOp,
    pub reply: oneshot::Sender<Response>,
}

/// A worker ran the runc command of a [`Control`].
#[derive(Message)]
#[rtype(result = "()")]
struct ControlDone {
    key: Key,
    op: ControlOp,
    result: Result<(), RuntimeError>,
    reply: oneshot::Sender<Response>,
}

/// The containers whose stats a request reads: those named, or every running (or paused) one
/// in the namespace. Answered with where to read them, not with the reading.
#[derive(Message)]
#[rtype(result = "Result<Vec<StatsTarget>, ErrorResponse>")]
pub struct StatsTargets {
    pub namespace: String,
    pub ids: Vec<String>,
}

/// Where one container's stats are read from.
#[derive(Debug, Clone)]
pub struct StatsTarget {
    pub key: Key,
    pub pid: u32,
    pub cgroup: Cgroup,
}

/// `runc kill --all` thawed a paused container.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Thawed {
    pub key: Key,
}

/// The OOM notifier saw the container's OOM kill count reach `kills`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OomKilled {
    pub key: Key,
    pub kills: u64,
}

impl Handler<Control> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        let Control {
            namespace,
            id,
            op,
            reply,
        } = msg;
        let checked = self.accepting().and_then(|()| self.find(&namespace, &id)).and_then(|(key, container)| {
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
                update.validate().map_err(invalid)?;
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
}

impl Supervisor {
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
        let addr = ctx.address();
        let what = format!("{}/{}", key.0, key.1);
        let submitted = self.pool.submit(Priority::Normal, move |runc| {
            let (ns, id) = (&key.0, &key.1);
            let result = match &op {
                ControlOp::Pause => runc.pause(ns, id),
                ControlOp::Resume => runc.resume(ns, id),
                ControlOp::Update(update) => {
                    update_container(runc, ns, id, update, cgroup.as_ref())
                }
            };
            addr.do_send(ControlDone {
                key,
                op,
                result,
                reply,
            });
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
            let message = format!("cannot {} container \"{}\": {err}", op.verb(), key.1);
            log::info!("{message}");
            let _ = reply.send(Response::Error(ErrorResponse::new(
                ErrorKind::Runtime,
                message,
            )));
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
        if let Phase::Running { paused, .. } = &mut container.phase {
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

impl Handler<StatsTargets> for Supervisor {
    type Result = MessageResult<StatsTargets>;

    fn handle(&mut self, msg: StatsTargets, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats_targets(&msg.namespace, &msg.ids))
    }
}

impl Supervisor {
    fn stats_targets(
        &self,
        namespace: &str,
        ids: &[String],
    ) -> Result<Vec<StatsTarget>, ErrorResponse> {
        let target = |key: &Key, phase: &Phase| match phase {
            Phase::Running {
                pid,
                cgroup: Some(cgroup),
                ..
            } => Some(StatsTarget {
                key: key.clone(),
                pid: *pid,
                cgroup: cgroup.clone(),
            }),
            _ => None,
        };
        if ids.is_empty() {
            let ns = Namespace::new(namespace).map_err(invalid)?;
            let mut targets: Vec<StatsTarget> = self
                .containers
                .iter()
                .filter(|(key, _)| key.0 == ns)
                .filter_map(|(key, c)| target(key, &c.phase))
                .collect();
            targets.sort_by(|a, b| a.key.1.as_str().cmp(b.key.1.as_str()));
            return Ok(targets);
        }
        ids.iter()
            .map(|id| {
                let key = key(namespace, id)?;
                let container = self.containers.get(&key).ok_or_else(|| not_found(&key.1))?;
                target(&key, &container.phase).ok_or_else(|| {
                    let status = container.phase.status();
                    let why = if matches!(status, Status::Running | Status::Paused) {
                        "its cgroup is unknown".to_string()
                    } else {
                        format!("it is {status}")
                    };
                    ErrorResponse::new(
                        ErrorKind::FailedPrecondition,
                        format!("no stats for container \"{}\": {why}", key.1),
                    )
                })
            })
            .collect()
    }
}

impl Handler<Thawed> for Supervisor {
    type Result = ();

    fn handle(&mut self, Thawed { key }: Thawed, _: &mut Context<Self>) {
        let Some(container) = self.containers.get_mut(&key) else {
            return;
        };
        let Phase::Running { pid, paused, .. } = &mut container.phase else {
            return;
        };
        if *paused {
            *paused = false;
            let pid = *pid;
            self.emit(EventKind::Resume, &key, INIT, pid, None);
        }
    }
}

impl Handler<OomKilled> for Supervisor {
    type Result = ();

    fn handle(&mut self, OomKilled { key, kills }: OomKilled, _: &mut Context<Self>) {
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
