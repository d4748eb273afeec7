//! The socket server: one task per connection, all on the system's event loop.
//!
//! A connection opens with a [`Hello`] each way, then carries one request and one response at a
//! time, until it subscribes and becomes an event stream. A framing or decoding error ends that
//! connection only (after a best-effort error frame); every other connection keeps being served.
//!
//! - [`connection`]: a client's socket, its framing and its limits;
//! - [`dispatch`]: each request, taken to the actor and answered;
//! - [`images`]: image store requests, run on blocking threads beside the actor;
//!   [`transfer`]: the archives they upload and download;
//! - [`run`]: a container from an image, its bundle made off the actor then started by it;
//! - [`stream`]: a subscribed connection's events.
//!
//! This module accepts, turns away what it cannot serve, and runs each connection's handshake
//! and request loop.
//!
//! What a client can make the daemon hold is bounded: at most `--max-connections` served
//! connections, each with one request in flight to the actor at a time (an event stream's queue
//! is the journal's, bounded by `--subscriber-queue`), and at most [`TURN_AWAY_SLOTS`]
//! connections being told why they are not served; past those, a connection is closed as soon as
//! it is accepted. So the daemon's descriptors for clients never exceed the sum of the two.

mod connection;
mod dispatch;
mod images;
mod run;
mod stream;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

use ::images::ImageStore;
use actix::Addr;
use protocol::frame::FrameError;
use protocol::{ErrorKind, ErrorResponse, Hello, Request, Response};
use runtime::StateDir;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, Semaphore};

use crate::access::Access;
use crate::actor::Supervisor;
use connection::Connection;
pub use connection::ConnectionLimits;
use dispatch::Answer;

/// How many turned-away connections are answered at once (each is read and written once, and
/// closed after at most twice the idle timeout); past this, they are closed unanswered.
pub const TURN_AWAY_SLOTS: usize = 16;

/// Held by every connection while it runs, an event stream's included; shutdown waits for all
/// of them to be dropped, so the last events reach their subscribers before the daemon exits.
pub type DrainGuard = mpsc::Sender<()>;

/// Accepts connections until the task is dropped.
pub async fn serve(
    listener: UnixListener,
    supervisor: Addr<Supervisor>,
    images: Arc<ImageStore>,
    state: StateDir,
    limits: ConnectionLimits,
    access: Access,
    drain: DrainGuard,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(TURN_AWAY_SLOTS));
    // Closing unanswered is logged at debug only: a flood must not flood the log either.
    let refuse = |stream, why: &str, kind, answer: String| {
        let Ok(refusal) = refusals.clone().try_acquire_owned() else {
            log::debug!("closed a connection unanswered ({why}): too many being turned away");
            return;
        };
        log::warn!("refused a connection: {why}");
        actix_rt::spawn(async move {
            turn_away(stream, limits, kind, answer).await;
            drop(refusal);
        });
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    let why = format!(
                        "ctrd is serving its limit of {} connections; try again later",
                        limits.max_connections
                    );
                    refuse(stream, &why, ErrorKind::Unavailable, why.clone());
                    continue;
                };
                if let Err(why) = access.check(&stream) {
                    let answer = format!("permission denied: {why}");
                    refuse(stream, &why, ErrorKind::PermissionDenied, answer);
                    continue;
                }
                let supervisor = supervisor.clone();
                let images = images.clone();
                let state = state.clone();
                let drain = drain.clone();
                actix_rt::spawn(async move {
                    let connection = Connection::new(stream, limits);
                    if let Err(e) = run(connection, supervisor, images, state).await {
                        log::debug!("connection closed: {e}");
                    }
                    drop((slot, drain));
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
async fn turn_away(stream: UnixStream, limits: ConnectionLimits, kind: ErrorKind, why: String) {
    let mut connection = Connection::new(stream, limits);
    if let Ok(Some(_)) = connection.read::<Hello>().await {
        let _ = connection.write(&Hello::ours()).await;
        let _ = connection.read::<Request>().await;
        let error = Response::Error(ErrorResponse::new(kind, why));
        let _ = connection.write(&error).await;
    }
}

/// Serves one connection: the handshake, then requests until the client hangs up, subscribes
/// (the stream then runs to its end), or sends something that is no request.
async fn run(
    mut connection: Connection,
    supervisor: Addr<Supervisor>,
    images: Arc<ImageStore>,
    state: StateDir,
) -> Result<(), FrameError> {
    let hello = match connection.read::<Hello>().await {
        Ok(Some(hello)) => hello,
        Ok(None) => return Ok(()),
        Err(e) => return Err(connection.refuse(e).await),
    };
    connection.write(&Hello::ours()).await?;
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
        let request = match connection.read::<Request>().await {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(e) => return Err(connection.refuse(e).await),
        };
        match dispatch::dispatch(&supervisor, &images, &state, request, &mut connection).await {
            Answer::Reply(response) => connection.write(&response).await?,
            Answer::Close(response) => return connection.write(&response).await,
            Answer::Stream(stream) => {
                connection.write(&Response::Subscribed).await?;
                return stream.run(connection).await;
            }
            Answer::HungUp => return Ok(()),
        }
    }
}
