//! A connection once it has subscribed: the replay from the journal, the `live` marker, the live
//! events, and the end of the stream.
//!
//! The subscription has been registered with the journal ([`super::dispatch`]), which answered
//! with the last sequence number on disk at that moment. Events up to it are read back from the segment files
//! (on a blocking thread) while later ones queue up live; the live queue is read only once the
//! replay is done, so the seam has no gap and no duplicate. The stream ends when the client
//! hangs up, when `until` passes, at shutdown, or, if the subscriber fell behind, with a
//! `lagged` frame naming the last sequence number it was sent, from which it can resume.

use std::future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use protocol::frame::FrameError;
use protocol::{
    ErrorKind, ErrorResponse, Event, Filter, Lagged, Response, Since, SubscribeRequest,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::connection::Connection;
use crate::actor::now_ns;
use crate::journal::{Registration, Replay};

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

impl Stream {
    /// The stream `req` asked for, of the events `registration` delivers.
    pub fn new(
        req: SubscribeRequest,
        filter: Arc<Filter<Event>>,
        registration: Registration,
    ) -> Stream {
        let Registration {
            replay,
            subscription,
        } = registration;
        Stream {
            since: req.since,
            until: req.until,
            namespace: req.namespace,
            filter,
            replay,
            events: subscription.events,
            lag_notice: subscription.lag_notice,
        }
    }

    /// Writes the stream until it ends; the caller has already sent `Subscribed`.
    pub async fn run(mut self, mut connection: Connection) -> Result<(), FrameError> {
        let upto = self.replay.upto();
        // Where a resubscription loses nothing: the last event sent, or a later point when
        // every event up to it failed the filter (a whole replay has been considered).
        let mut last_seq = match self.since {
            Some(Since::Seq(seq)) => seq.min(upto),
            Some(Since::Time(_)) => 0,
            None => upto,
        };
        if let Some(since) = self.since {
            match self.replay(since, &mut connection, &mut last_seq).await? {
                ControlFlow::Break(()) => return Ok(()),
                ControlFlow::Continue(()) => last_seq = last_seq.max(upto),
            }
            if self.until.is_some_and(|until| until < now_ns()) {
                return Ok(());
            }
        }
        connection.write(&Response::Live).await?;
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
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) => {
                        debug_assert!(event.seq > upto, "live event {} was replayed", event.seq);
                        if self.until.is_some_and(|until| event.time > until) {
                            return Ok(());
                        }
                        let seq = event.seq;
                        connection.write(&Response::Event(event)).await?;
                        last_seq = seq;
                    }
                    None if self.lag_notice.try_recv().is_err() => return Ok(()),
                    None => return connection.write(&Response::Lagged(Lagged { last_seq })).await,
                },
                () = &mut until_passes => return Ok(()),
                // A subscriber has nothing more to say: anything it sends, or EOF, ends it.
                () = connection.hangup() => return Ok(()),
            }
        }
    }

    /// Sends the journal's events after `since` up to the registration point. Breaks when the
    /// stream is over: the client hung up, `until` passed, or the journal could not be read.
    async fn replay(
        &self,
        since: Since,
        connection: &mut Connection,
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
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => {
                        if self.until.is_some_and(|until| event.time > until) {
                            return Ok(ControlFlow::Break(()));
                        }
                        *last_seq = event.seq;
                        connection.write(&Response::Event(event)).await?;
                    }
                    None => break,
                },
                () = connection.hangup() => return Ok(ControlFlow::Break(())),
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
        connection.write(&Response::Error(err)).await?;
        Ok(ControlFlow::Break(()))
    }
}
