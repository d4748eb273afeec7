//! Each request, taken to the actor and answered: one arm per request kind in [`dispatch`].
//!
//! Most requests are one message to the actor and its answer. Those that need more do it here,
//! off the actor: a container's limits and stats are read from its cgroup on a blocking thread,
//! a `wait` ends early when its client hangs up, and a subscription is registered with the
//! journal (through the actor) before it becomes a [`Stream`]. Image store requests go to
//! [`super::images`], which runs them on blocking threads and tells the actor what to emit;
//! `run` to [`super::run`], which makes a bundle from an image before it starts it.

use std::sync::Arc;

use ::images::ImageStore;
use actix::Addr;
use protocol::{ErrorKind, ErrorResponse, Filter, Request, Response, SubscribeRequest};
use runtime::StateDir;
use tokio::sync::oneshot;

use super::connection::Connection;
use super::images;
use super::run;
use super::stream::Stream;
use crate::actor::{
    AddProcess, Checkpoint, Delete, DeleteCheckpoint, Info, KillProcess, List, ListCheckpoints,
    Logs, Pause, Resize, Resume, Signal, Start, StartExisting, State, Stats, Subscribe, Supervisor,
    Update, Wait,
};
use crate::journal::Registration;
use crate::stats;

/// What a request comes to.
pub enum Answer {
    /// The response to write; the connection then reads its next request.
    Reply(Response),
    /// The last response to write: the client is still sending frames of a request that was
    /// given up on (an upload that failed), so the connection cannot read a next request.
    Close(Response),
    /// A registered subscription: the connection becomes its event stream.
    Stream(Stream),
    /// The client hung up before it was answered.
    HungUp,
}

/// Takes `request` to the actor. `connection` is only watched, for a client that stops waiting.
pub async fn dispatch(
    supervisor: &Addr<Supervisor>,
    store: &Arc<ImageStore>,
    state_dir: &StateDir,
    request: Request,
    connection: &mut Connection,
) -> Answer {
    let response = match request {
        Request::Subscribe(req) => match subscribe(supervisor, req).await {
            Ok(stream) => return Answer::Stream(stream),
            Err(response) => response,
        },
        Request::Start(req) => {
            let (reply, answer) = oneshot::channel();
            send_then_await(supervisor, Start { req, reply }, answer).await
        }
        Request::StartExisting(req) => {
            let (reply, answer) = oneshot::channel();
            send_then_await(supervisor, StartExisting { req, reply }, answer).await
        }
        Request::Delete(req) => {
            let (reply, answer) = oneshot::channel();
            send_then_await(supervisor, Delete { req, reply }, answer).await
        }
        Request::Kill(req) => {
            let (reply, answer) = oneshot::channel();
            send_then_await(supervisor, Signal { req, reply }, answer).await
        }
        Request::List(req) => match Filter::parse(&req.filters) {
            Ok(filter) => {
                let list = List {
                    namespace: req.namespace,
                    filter,
                };
                ask(supervisor, list).await
            }
            Err(e) => invalid(e),
        },
        Request::State(req) => state(supervisor, req).await,
        Request::Info(_) => ask(supervisor, Info).await,
        Request::Checkpoint(req) => {
            let (reply, answer) = oneshot::channel();
            send_then_await(supervisor, Checkpoint { req, reply }, answer).await
        }
        Request::ListCheckpoints(req) => {
            let (reply, answer) = oneshot::channel();
            send_then_await(supervisor, ListCheckpoints { req, reply }, answer).await
        }
        Request::DeleteCheckpoint(req) => {
            let (reply, answer) = oneshot::channel();
            send_then_await(supervisor, DeleteCheckpoint { req, reply }, answer).await
        }
        Request::Wait(req) => {
            let (reply, answer) = oneshot::channel();
            tokio::select! {
                response = send_then_await(supervisor, Wait { req, reply }, answer) => response,
                () = connection.hangup() => return Answer::HungUp,
            }
        }
        Request::Exec(req) => {
            let (reply, answer) = oneshot::channel();
            send_then_await(supervisor, AddProcess { req, reply }, answer).await
        }
        Request::KillProcess(req) => ask(supervisor, KillProcess(req)).await,
        Request::Resize(req) => ask(supervisor, Resize(req)).await,
        Request::Logs(req) => {
            let logs = Logs {
                namespace: req.namespace,
                id: req.id,
            };
            ask(supervisor, logs).await
        }
        Request::Pause(req) => {
            let (reply, answer) = oneshot::channel();
            let msg = Pause {
                namespace: req.namespace,
                id: req.id,
                reply,
            };
            send_then_await(supervisor, msg, answer).await
        }
        Request::Resume(req) => {
            let (reply, answer) = oneshot::channel();
            let msg = Resume {
                namespace: req.namespace,
                id: req.id,
                reply,
            };
            send_then_await(supervisor, msg, answer).await
        }
        Request::Update(req) => {
            let (reply, answer) = oneshot::channel();
            let msg = Update {
                namespace: req.namespace,
                id: req.id,
                resources: resource_update(req.resources),
                reply,
            };
            send_then_await(supervisor, msg, answer).await
        }
        Request::Stats(req) => stats(supervisor, req).await,
        Request::Metrics(_) => crate::metrics::respond(supervisor).await,
        Request::ImportImage(req) => {
            return images::import(supervisor, store, req, connection).await;
        }
        Request::ExportImages(req) => return images::export(store, req, connection).await,
        Request::ListImages(req) => images::list(store, req).await,
        Request::RemoveImages(req) => images::remove(supervisor, store, req).await,
        Request::InspectImage(req) => images::inspect(store, req).await,
        Request::Prune(req) => images::prune(supervisor, store, req).await,
        Request::ListSnapshots(req) => images::list_snapshots(store, req).await,
        Request::RemoveSnapshot(req) => images::remove_snapshot(supervisor, store, req).await,
        Request::SnapshotUsage(req) => images::snapshot_usage(store, req).await,
        Request::PrepareSnapshot(req) => images::prepare(supervisor, store, req).await,
        Request::MountSnapshot(req) => images::mount(store, req).await,
        Request::UnmountSnapshot(req) => images::unmount(store, req).await,
        Request::ListContent(req) => images::list_content(store, req).await,
        Request::Run(req) => run::run(supervisor, store, state_dir, req).await,
    };
    Answer::Reply(response)
}

/// Checks the request and registers the subscription with the journal; an `Err` is the
/// response to send instead.
async fn subscribe(
    supervisor: &Addr<Supervisor>,
    req: SubscribeRequest,
) -> Result<Stream, Response> {
    let filter = Arc::new(Filter::parse(&req.filters).map_err(invalid)?);
    let (registered, registration) = oneshot::channel();
    let subscribe = Subscribe {
        namespace: req.namespace.clone(),
        filter: filter.clone(),
        registered,
    };
    match ask(supervisor, subscribe).await {
        Response::Subscribed => {}
        other => return Err(other),
    }
    let registration: Registration = registration.await.map_err(|_| gone())?;
    Ok(Stream::new(req, filter, registration))
}

/// The container as the actor knows it, with the limits its cgroup holds read here, off the
/// actor.
async fn state(supervisor: &Addr<Supervisor>, req: protocol::StateRequest) -> Response {
    let msg = State {
        namespace: req.namespace,
        id: req.id,
    };
    let (mut container, cgroup) = match supervisor.send(msg).await {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => return Response::Error(err),
        Err(_) => return gone(),
    };
    if let Some(cgroup) = cgroup {
        container.limits = tokio::task::spawn_blocking(move || stats::limits(&cgroup))
            .await
            .ok()
            .flatten()
            .map(Box::new);
    }
    Response::Container(container)
}

/// The actor names the containers; their cgroup files are read on a blocking thread.
async fn stats(supervisor: &Addr<Supervisor>, req: protocol::StatsRequest) -> Response {
    let all = req.ids.is_empty();
    let msg = Stats {
        namespace: req.namespace,
        ids: req.ids,
    };
    let targets = match supervisor.send(msg).await {
        Ok(Ok(targets)) => targets,
        Ok(Err(err)) => return Response::Error(err),
        Err(_) => return gone(),
    };
    match tokio::task::spawn_blocking(move || stats::sample(targets, all)).await {
        Ok(Ok(sampled)) => Response::Stats(sampled),
        Ok(Err(err)) => Response::Error(err),
        Err(_) => Response::Error(ErrorResponse::new(
            ErrorKind::Internal,
            "reading stats failed",
        )),
    }
}

fn resource_update(r: protocol::Resources) -> runtime::ResourceUpdate {
    runtime::ResourceUpdate {
        // Beyond i64 is beyond any machine: the largest limit is as good as unlimited.
        memory: r.memory.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
        memory_swap: r.memory_swap,
        cpu_shares: r.cpu_shares,
        cpu_quota: r.cpu_quota,
        cpu_period: r.cpu_period,
        cpuset_cpus: r.cpuset_cpus,
        pids_limit: r.pids_limit,
        blkio_weight: r.blkio_weight,
    }
}

/// A message the actor answers itself.
async fn ask<M>(supervisor: &Addr<Supervisor>, msg: M) -> Response
where
    M: actix::Message<Result = Response> + Send + 'static,
    Supervisor: actix::Handler<M>,
{
    supervisor.send(msg).await.unwrap_or_else(|_| gone())
}

/// A message the actor answers later, through `answer`, once work it handed off is done.
async fn send_then_await<M>(
    supervisor: &Addr<Supervisor>,
    msg: M,
    answer: oneshot::Receiver<Response>,
) -> Response
where
    M: actix::Message<Result = ()> + Send + 'static,
    Supervisor: actix::Handler<M>,
{
    if supervisor.send(msg).await.is_err() {
        return gone();
    }
    answer.await.unwrap_or_else(|_| gone())
}

pub(super) fn invalid(err: protocol::FilterError) -> Response {
    Response::Error(ErrorResponse::new(
        ErrorKind::InvalidArgument,
        err.to_string(),
    ))
}

pub(super) fn gone() -> Response {
    Response::Error(ErrorResponse::new(
        ErrorKind::Unavailable,
        "the supervisor stopped before answering",
    ))
}
