//! A connection once it has subscribed: the replay from the journal, the `live` marker, the live
//! events, and the end of the stream.
//!
//! The subscription is registered with the journal first, and the journal answers with the last
//! sequence number on disk at that moment. Events up to it are read back from the segment files
//! (on a blocking thread) while later ones queue up live; the live queue is read only once the
//! replay is done, so the seam has no gap and no duplicate. The stream ends when the client
//! hangs up, when `until` passes, at shutdown, or, if the subscriber fell behind, with a
//! `lagged` frame naming the last sequence number it was sent, from which it can resume.

use std::future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use protocol::frame::FrameError;
use protocol::{
    ErrorKind, ErrorResponse, Event, Filter, Lagged, Response, Since, SubscribeRequest,
};
use tokio::io::AsyncReadExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::journal::{Registration, Replay};
use crate::server::{ask, gone, write_frame};
use crate::supervisor::{now_ns, Subscribe, Supervisor};

/// Replayed events read ahead of the socket.
const REPLAY_AHEAD: usize = 256;

/// A registered subscription, ready to stream.
pub struct Stream {
    since: Option<Since>,
    until: Option<u64>,
    namespace: String,
    filter: Arc<Filter<Event>>,
    replay: Replay,
    events: mpsc::Receiver<Event>,
    lag_notice: oneshot::Receiver<()>,
}

/// Checks the request and registers the subscription; an `Err` is the response to send instead.
pub async fn subscribe(
    supervisor: &Addr<Supervisor>,
    req: SubscribeRequest,
) -> Result<Stream, Response> {
    let filter = Filter::parse(&req.filters).map_err(|e| {
        Response::Error(ErrorResponse::new(
            ErrorKind::InvalidArgument,
            e.to_string(),
        ))
    })?;
    let filter = Arc::new(filter);
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
    let Registration {
        replay,
        subscription,
    } = registration.await.map_err(|_| gone())?;
    Ok(Stream {
        since: req.since,
        until: req.until,
        namespace: req.namespace,
        filter,
        replay,
        events: subscription.events,
        lag_notice: subscription.lag_notice,
    })
}

impl Stream {
    /// Writes the stream until it ends; the caller has already sent `Subscribed`.
    pub async fn run(
        mut self,
        mut rd: OwnedReadHalf,
        mut wr: OwnedWriteHalf,
    ) -> Result<(), FrameError> {
        let upto = self.replay.upto();
        // Where a resubscription loses nothing: the last event sent, or a later point when
        // every event up to it failed the filter (a whole replay has been considered).
        let mut last_seq = match self.since {
            Some(Since::Seq(seq)) => seq.min(upto),
            Some(Since::Time(_)) => 0,
            None => upto,
        };
        if let Some(since) = self.since {
            match self.replay(since, &mut rd, &mut wr, &mut last_seq).await? {
                ControlFlow::Break(()) => return Ok(()),
                ControlFlow::Continue(()) => last_seq = last_seq.max(upto),
            }
            if self.until.is_some_and(|until| until < now_ns()) {
                return Ok(());
            }
        }
        write_frame(&mut wr, &Response::Live).await?;
        let deadline = self
            .until
            .map(|until| Instant::now() + Duration::from_nanos(until.saturating_sub(now_ns())));
        let until_passes = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => future::pending().await,
            }
        };
        tokio::pin!(until_passes);
        let mut discard = [0u8; 64];
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) => {
                        debug_assert!(event.seq > upto, "live event {} was replayed", event.seq);
                        if self.until.is_some_and(|until| event.time > until) {
                            return Ok(());
                        }
                        let seq = event.seq;
                        write_frame(&mut wr, &Response::Event(event)).await?;
                        last_seq = seq;
                    }
                    None if self.lag_notice.try_recv().is_err() => return Ok(()),
                    None => return write_frame(&mut wr, &Response::Lagged(Lagged { last_seq })).await,
                },
                () = &mut until_passes => return Ok(()),
                // A subscriber has nothing more to say: anything it sends, or EOF, ends it.
                _ = rd.read(&mut discard) => return Ok(()),
            }
        }
    }

    /// Sends the journal's events after `since` up to the registration point. Breaks when the
    /// stream is over: the client hung up, `until` passed, or the journal could not be read.
    async fn replay(
        &self,
        since: Since,
        rd: &mut OwnedReadHalf,
        wr: &mut OwnedWriteHalf,
        last_seq: &mut u64,
    ) -> Result<ControlFlow<()>, FrameError> {
        let (tx, mut rx) = mpsc::channel(REPLAY_AHEAD);
        let replay = self.replay.clone();
        let namespace = self.namespace.clone();
        let filter = self.filter.clone();
        let reader = tokio::task::spawn_blocking(move || {
            replay.run(since, |event| {
                if event.namespace != namespace || !filter.matches(&event) {
                    return ControlFlow::Continue(());
                }
                // The connection has gone when nobody receives.
                match tx.blocking_send(event) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            })
        });
        let mut discard = [0u8; 64];
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => {
                        if self.until.is_some_and(|until| event.time > until) {
                            return Ok(ControlFlow::Break(()));
                        }
                        *last_seq = event.seq;
                        write_frame(wr, &Response::Event(event)).await?;
                    }
                    None => break,
                },
                _ = rd.read(&mut discard) => return Ok(ControlFlow::Break(())),
            }
        }
        let failure = match reader.await {
            Ok(Ok(())) => return Ok(ControlFlow::Continue(())),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        log::error!("cannot replay the event journal: {failure}");
        let err = ErrorResponse::new(
            ErrorKind::Internal,
            format!("cannot read the event journal: {failure}"),
        );
        write_frame(wr, &Response::Error(err)).await?;
        Ok(ControlFlow::Break(()))
    }
}
