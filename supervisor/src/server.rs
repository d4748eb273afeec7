//! The socket server: one task per connection, all on the system's event loop.
//!
//! A connection opens with a [`Hello`] each way, then carries one request and one response at a
//! time, until it subscribes and becomes an event stream. A framing or decoding error ends that
//! connection only (after a best-effort error frame); every other connection keeps being served.

use std::time::Duration;

use actix::Addr;
use protocol::frame::{self, FrameError, HEADER_LEN};
use protocol::{ErrorKind, ErrorResponse, Event, Hello, Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::subscribers::{Subscription, QUEUE_LEN};
use crate::supervisor::{Info, List, Signal, Start, State, Subscribe, Supervisor};

/// How long a client may take to say hello before its connection is closed.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Held by every event stream while it runs; shutdown waits for all of them to be dropped, so
/// the last events reach their subscribers before the daemon exits.
pub type DrainGuard = mpsc::Sender<()>;

/// Accepts connections until the task is dropped.
pub async fn serve(
    listener: UnixListener,
    supervisor: Addr<Supervisor>,
    max_frame: usize,
    drain: DrainGuard,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let supervisor = supervisor.clone();
                let drain = drain.clone();
                actix_rt::spawn(async move {
                    if let Err(e) = connection(stream, supervisor, max_frame, drain).await {
                        log::debug!("connection closed: {e}");
                    }
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

async fn connection(
    stream: UnixStream,
    supervisor: Addr<Supervisor>,
    max_frame: usize,
    drain: DrainGuard,
) -> Result<(), FrameError> {
    let (mut rd, mut wr) = stream.into_split();
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame::<Hello>(&mut rd, max_frame))
        .await
        .map_err(|_| FrameError::Io(std::io::ErrorKind::TimedOut.into()));
    let hello = match hello.and_then(|h| h) {
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
        let request = match read_frame::<Request>(&mut rd, max_frame).await {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(e) => return refuse(&mut wr, e).await,
        };
        let response = match request {
            Request::Subscribe(sub) => {
                let (queue, events) = mpsc::channel(QUEUE_LEN);
                let (lagged, lag_notice) = oneshot::channel();
                let subscription = Subscription { queue, lagged };
                let subscribe = Subscribe {
                    namespace: sub.namespace,
                    subscription,
                };
                let response = ask(&supervisor, subscribe).await;
                let subscribed = response == Response::Subscribed;
                write_frame(&mut wr, &response).await?;
                if subscribed {
                    let result = stream_events(rd, wr, events, lag_notice).await;
                    drop(drain);
                    return result;
                }
                continue;
            }
            Request::Start(req) => {
                let (reply, answer) = oneshot::channel();
                send_then_await(&supervisor, Start { req, reply }, answer).await
            }
            Request::Kill(req) => {
                let (reply, answer) = oneshot::channel();
                send_then_await(&supervisor, Signal { req, reply }, answer).await
            }
            Request::List(req) => {
                ask(
                    &supervisor,
                    List {
                        namespace: req.namespace,
                    },
                )
                .await
            }
            Request::State(req) => {
                ask(
                    &supervisor,
                    State {
                        namespace: req.namespace,
                        id: req.id,
                    },
                )
                .await
            }
            Request::Info(_) => ask(&supervisor, Info).await,
            Request::Metrics(_) => crate::metrics::respond(&supervisor).await,
        };
        write_frame(&mut wr, &response).await?;
    }
}

/// Writes events as they come until the supervisor ends the subscription (at shutdown, or because
/// the subscriber fell behind) or the client hangs up.
async fn stream_events(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    mut events: mpsc::Receiver<Event>,
    mut lag_notice: oneshot::Receiver<()>,
) -> Result<(), FrameError> {
    let mut discard = [0u8; 64];
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => write_frame(&mut wr, &Response::Event(event)).await?,
                None if lag_notice.try_recv().is_err() => return Ok(()),
                None => {
                    let lagged = ErrorResponse::new(
                        ErrorKind::Unavailable,
                        format!("ctrd dropped this subscription: it fell {QUEUE_LEN} events behind"),
                    );
                    return write_frame(&mut wr, &Response::Error(lagged)).await;
                }
            },
            read = rd.read(&mut discard) => match read {
                // A subscriber has nothing more to say: anything it sends, or EOF, ends it.
                Ok(_) | Err(_) => return Ok(()),
            },
        }
    }
}

async fn ask<M>(supervisor: &Addr<Supervisor>, msg: M) -> Response
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

fn gone() -> Response {
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

async fn write_frame<T: Serialize>(
    wr: &mut (impl AsyncWrite + Unpin),
    msg: &T,
) -> Result<(), FrameError> {
    wr.write_all(&frame::encode(msg)?).await?;
    Ok(())
}
