//! The socket server: one task per connection, all on the system's event loop.
//!
//! A connection opens with a [`Hello`] each way, then carries one request and one response at a
//! time, until it subscribes and becomes an event stream. A framing or decoding error ends that
//! connection only (after a best-effort error frame); every other connection keeps being served.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use protocol::frame::{self, FrameError, HEADER_LEN};
use protocol::{ErrorKind, ErrorResponse, Filter, Hello, Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::access::Access;
use crate::stats;
use crate::stream;
use crate::supervisor::{
    Checkpoint, Control, ControlOp, DeleteCheckpoint, Exec, Info, KillProcess, List,
    ListCheckpoints, Logs, Resize, Signal, Start, State, StatsTargets, Supervisor, Wait,
};

/// Held by every event stream while it runs; shutdown waits for all of them to be dropped, so
/// the last events reach their subscribers before the daemon exits.
pub type DrainGuard = mpsc::Sender<()>;

/// What every connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_frame: usize,
    /// How long a connection may stay silent before a request (the hello included); event
    /// streams are exempt, since listening is all a subscriber does.
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts connections until the task is dropped.
pub async fn serve(
    listener: UnixListener,
    supervisor: Addr<Supervisor>,
    limits: Limits,
    access: Access,
    drain: DrainGuard,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    let why = format!(
                        "ctrd is serving its limit of {} connections; try again later",
                        limits.max_connections
                    );
                    log::warn!("refused a connection: {why}");
                    actix_rt::spawn(turn_away(stream, limits, ErrorKind::Unavailable, why));
                    continue;
                };
                if let Err(why) = access.check(&stream) {
                    log::warn!("refused a connection: {why}");
                    let why = format!("permission denied: {why}");
                    actix_rt::spawn(turn_away(stream, limits, ErrorKind::PermissionDenied, why));
                    continue;
                }
                let supervisor = supervisor.clone();
                let drain = drain.clone();
                actix_rt::spawn(async move {
                    if let Err(e) = connection(stream, supervisor, limits, drain).await {
                        log::debug!("connection closed: {e}");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers a connection that will not be served: the handshake, so the client can read what
/// follows, then one error frame as the answer to its first request (read first, so the client's
/// write of it does not meet a closed socket).
async fn turn_away(stream: UnixStream, limits: Limits, kind: ErrorKind, why: String) {
    let (mut rd, mut wr) = stream.into_split();
    if let Ok(Some(_)) = read_within::<Hello>(&mut rd, limits).await {
        let _ = write_frame(&mut wr, &Hello::ours()).await;
        let _ = read_within::<Request>(&mut rd, limits).await;
        let _ = write_frame(&mut wr, &Response::Error(ErrorResponse::new(kind, why))).await;
    }
}

async fn connection(
    stream: UnixStream,
    supervisor: Addr<Supervisor>,
    limits: Limits,
    drain: DrainGuard,
) -> Result<(), FrameError> {
    let (mut rd, mut wr) = stream.into_split();
    let hello = match read_within::<Hello>(&mut rd, limits).await {
        Ok(Some(hello)) => hello,
        Ok(None) => return Ok(()),
        Err(e) => return refuse(&mut wr, e).await,
    };
    write_frame(&mut wr, &Hello::ours()).await?;
    if hello.protocol != protocol::PROTOCOL_VERSION {
        log::info!(
            "refused a client speaking protocol {} (version {}); ctrd speaks {}",
            hello.protocol,
            hello.version,
            protocol::PROTOCOL_VERSION
        );
        return Ok(());
    }
    loop {
        let request = match read_within::<Request>(&mut rd, limits).await {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(e) => return refuse(&mut wr, e).await,
        };
        let response = match request {
            Request::Subscribe(req) => match stream::subscribe(&supervisor, req).await {
                Ok(stream) => {
                    write_frame(&mut wr, &Response::Subscribed).await?;
                    let result = stream.run(rd, wr).await;
                    drop(drain);
                    return result;
                }
                Err(response) => response,
            },
            Request::Start(req) => {
                let (reply, answer) = oneshot::channel();
                send_then_await(&supervisor, Start { req, reply }, answer).await
            }
            Request::Kill(req) => {
                let (reply, answer) = oneshot::channel();
                send_then_await(&supervisor, Signal { req, reply }, answer).await
            }
            Request::List(req) => match Filter::parse(&req.filters) {
                Ok(filter) => {
                    let list = List {
                        namespace: req.namespace,
                        filter,
                    };
                    ask(&supervisor, list).await
                }
                Err(e) => Response::Error(ErrorResponse::new(
                    ErrorKind::InvalidArgument,
                    e.to_string(),
                )),
            },
            Request::State(req) => state(&supervisor, req).await,
            Request::Info(_) => ask(&supervisor, Info).await,
            Request::Checkpoint(req) => {
                let (reply, answer) = oneshot::channel();
                send_then_await(&supervisor, Checkpoint { req, reply }, answer).await
            }
            Request::ListCheckpoints(req) => {
                let (reply, answer) = oneshot::channel();
                send_then_await(&supervisor, ListCheckpoints { req, reply }, answer).await
            }
            Request::DeleteCheckpoint(req) => {
                let (reply, answer) = oneshot::channel();
                send_then_await(&supervisor, DeleteCheckpoint { req, reply }, answer).await
            }
            Request::Wait(req) => {
                let (reply, answer) = oneshot::channel();
                let mut hangup = [0u8; 1];
                tokio::select! {
                    response = send_then_await(&supervisor, Wait { req, reply }, answer) => response,
                    // A waiter has nothing to say until answered: anything, or EOF, ends the wait.
                    _ = rd.read(&mut hangup) => return Ok(()),
                }
            }
            Request::Exec(req) => {
                let (reply, answer) = oneshot::channel();
                send_then_await(&supervisor, Exec { req, reply }, answer).await
            }
            Request::KillProcess(req) => ask(&supervisor, KillProcess(req)).await,
            Request::Resize(req) => ask(&supervisor, Resize(req)).await,
            Request::Logs(req) => {
                ask(
                    &supervisor,
                    Logs {
                        namespace: req.namespace,
                        id: req.id,
                    },
                )
                .await
            }
            Request::Pause(req) => {
                control(&supervisor, req.namespace, req.id, ControlOp::Pause).await
            }
            Request::Resume(req) => {
                control(&supervisor, req.namespace, req.id, ControlOp::Resume).await
            }
            Request::Update(req) => {
                let op = ControlOp::Update(resource_update(req.resources));
                control(&supervisor, req.namespace, req.id, op).await
            }
            Request::Stats(req) => stats(&supervisor, req).await,
            Request::Metrics(_) => crate::metrics::respond(&supervisor).await,
        };
        write_frame(&mut wr, &response).await?;
    }
}

/// Reads the next frame, giving up once the connection has been silent for the idle timeout.
async fn read_within<T: DeserializeOwned>(
    rd: &mut OwnedReadHalf,
    limits: Limits,
) -> Result<Option<T>, FrameError> {
    tokio::time::timeout(limits.idle_timeout, read_frame(rd, limits.max_frame))
        .await
        .unwrap_or_else(|_| {
            Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no request within {:?}", limits.idle_timeout),
            )))
        })
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

async fn control(
    supervisor: &Addr<Supervisor>,
    namespace: String,
    id: String,
    op: ControlOp,
) -> Response {
    let (reply, answer) = oneshot::channel();
    let msg = Control {
        namespace,
        id,
        op,
        reply,
    };
    send_then_await(supervisor, msg, answer).await
}

/// The actor names the containers; their cgroup files are read on a blocking thread.
async fn stats(supervisor: &Addr<Supervisor>, req: protocol::StatsRequest) -> Response {
    let all = req.ids.is_empty();
    let msg = StatsTargets {
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

pub(crate) async fn ask<M>(supervisor: &Addr<Supervisor>, msg: M) -> Response
where
    M: actix::Message<Result = Response> + Send + 'static,
    Supervisor: actix::Handler<M>,
{
    supervisor.send(msg).await.unwrap_or_else(|_| gone())
}

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

pub(crate) fn gone() -> Response {
    Response::Error(ErrorResponse::new(
        ErrorKind::Unavailable,
        "the supervisor stopped before answering",
    ))
}

/// Tells the client why its connection is being closed, if it still listens.
async fn refuse(wr: &mut OwnedWriteHalf, err: FrameError) -> Result<(), FrameError> {
    log::info!("closing a connection: {err}");
    let response = Response::Error(ErrorResponse::new(ErrorKind::Protocol, err.to_string()));
    let _ = write_frame(wr, &response).await;
    Err(err)
}

async fn read_frame<T: DeserializeOwned>(
    rd: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(rd, &mut header).await?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(FrameError::Truncated {
            expected: HEADER_LEN,
            got,
        });
    }
    let len = frame::payload_len(header, max)?;
    let mut payload = vec![0u8; len];
    let got = read_full(rd, &mut payload).await?;
    if got < len {
        return Err(FrameError::Truncated { expected: len, got });
    }
    frame::decode(&payload).map(Some)
}

async fn read_full(rd: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match rd.read(&mut buf[got..]).await? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

pub(crate) async fn write_frame<T: Serialize>(
    wr: &mut (impl AsyncWrite + Unpin),
    msg: &T,
) -> Result<(), FrameError> {
    wr.write_all(&frame::encode(msg)?).await?;
    Ok(())
}
