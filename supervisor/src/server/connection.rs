//! One client connection's bytes: the framing, the limits it is held to, and nothing else.
//!
//! A [`Connection`] owns both halves of the socket and a read buffer. Frames are taken off the
//! buffer with [`protocol::frame::parse`], the same rules the client's blocking reader follows,
//! so a length over the limit is refused on its header alone, a clean end of stream between
//! frames is `None`, and an end inside one is an error. Everything above it sees typed requests
//! and responses, never bytes.

use std::time::Duration;

use protocol::frame::{self, FrameError};
use protocol::{ErrorKind, ErrorResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// What a connection is read into before anything is known of its frames; it grows as a frame
/// needs (up to the frame limit).
const INITIAL_BUFFER: usize = 4 * 1024;

/// What every connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_frame: usize,
    /// How long a connection may stay silent before a request (the hello included); event
    /// streams are exempt, since listening is all a subscriber does.
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// A client's socket, read and written a frame at a time. Dropping it closes the connection.
pub struct Connection {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    /// Bytes read but not yet taken as a frame.
    buffer: Vec<u8>,
    limits: ConnectionLimits,
}

impl Connection {
    pub fn new(stream: UnixStream, limits: ConnectionLimits) -> Connection {
        let (rd, wr) = stream.into_split();
        Connection {
            rd,
            wr,
            buffer: Vec::with_capacity(INITIAL_BUFFER),
            limits,
        }
    }

    /// Reads the next frame, giving up once the connection has been silent for the idle
    /// timeout. `Ok(None)` when the client hung up between frames.
    pub async fn read<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let idle_timeout = self.limits.idle_timeout;
        tokio::time::timeout(idle_timeout, self.read_frame())
            .await
            .unwrap_or_else(|_| {
                Err(FrameError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no request within {idle_timeout:?}"),
                )))
            })
    }

    async fn read_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        loop {
            if let Some((msg, used)) = frame::parse(&self.buffer, self.limits.max_frame)? {
                self.buffer.drain(..used);
                // A large frame's room is given back, not kept for the connection's life.
                self.buffer.shrink_to(INITIAL_BUFFER);
                return Ok(Some(msg));
            }
            if self.rd.read_buf(&mut self.buffer).await? == 0 {
                return frame::at_end(&self.buffer);
            }
        }
    }

    /// The largest frame this connection reads.
    pub fn max_frame(&self) -> usize {
        self.limits.max_frame
    }

    pub async fn write<T: Serialize>(&mut self, msg: &T) -> Result<(), FrameError> {
        self.wr.write_all(&frame::encode(msg)?).await?;
        Ok(())
    }

    /// Returns once the client sends anything or hangs up. A client waiting for an answer (a
    /// `wait`, an event stream) has nothing to say, so either means it has stopped listening.
    /// Cancel-safe: it can lose a `select!` without losing bytes.
    pub async fn hangup(&mut self) {
        if self.buffer.is_empty() {
            let _ = self.rd.read_buf(&mut self.buffer).await;
        }
    }

    /// Tells the client why its connection is being closed, if it still listens, and hands the
    /// error back for the caller to end with.
    pub async fn refuse(&mut self, err: FrameError) -> FrameError {
        log::info!("closing a connection: {err}");
        let response = Response::Error(ErrorResponse::new(ErrorKind::Protocol, err.to_string()));
        let _ = self.write(&response).await;
        err
    }
}
