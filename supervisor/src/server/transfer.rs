//! An archive's bytes between a connection and the image store's blocking thread, each way.
//!
//! The two sides meet at a bounded channel of chunks, so a slow disk slows the client down
//! instead of filling the daemon's memory, and either side stopping is seen by the other: an
//! import's reader gets an error when the client hangs up before the end, the connection loop
//! sees the import give up when its sends fail; an export's writer fails once the client is gone.

use std::io::{self, Read, Write};

use protocol::frame::FrameError;
use protocol::{Bytes, UploadFrame};
use tokio::sync::mpsc;

use super::connection::Connection;

/// The largest piece of an archive in one frame, either way.
pub const CHUNK: usize = 1 << 20;

/// Chunks in flight between the connection and the store's thread.
pub const IN_FLIGHT: usize = 4;

/// How an upload ended.
pub enum Upload {
    /// The client sent all of it.
    Complete,
    /// The store stopped taking it (the import failed); the client may still be sending.
    Abandoned,
    /// The client hung up before the end.
    HungUp,
    /// The client sent something that is no upload frame, or went silent.
    Broken(FrameError),
}

/// Moves the client's upload frames into `tx` until the end of the archive, or until either side
/// stops.
pub async fn receive(connection: &mut Connection, tx: mpsc::Sender<Piece>) -> Upload {
    loop {
        let piece = match connection.read::<UploadFrame>().await {
            Ok(Some(UploadFrame::Data(Bytes(data)))) => Piece::Data(data),
            Ok(Some(UploadFrame::End)) => Piece::End,
            Ok(None) => return Upload::HungUp,
            Err(e) => return Upload::Broken(e),
        };
        let end = matches!(piece, Piece::End);
        if tx.send(piece).await.is_err() {
            return Upload::Abandoned;
        }
        if end {
            return Upload::Complete;
        }
    }
}

/// What the connection hands the store's thread.
pub enum Piece {
    Data(Vec<u8>),
    End,
}

/// The archive as the store reads it: chunks off the channel, EOF at the client's end marker,
/// and an error if the client stopped before it.
pub struct UploadReader {
    rx: mpsc::Receiver<Piece>,
    chunk: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl UploadReader {
    pub fn new(rx: mpsc::Receiver<Piece>) -> Self {
        UploadReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
            ended: false,
        }
    }

    /// Reads and drops what is left of the archive.
    pub fn drain(&mut self) {
        let _ = io::copy(self, &mut io::sink());
    }
}

impl Read for UploadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(data)) => {
                    self.chunk = data;
                    self.pos = 0;
                }
                Some(Piece::End) => self.ended = true,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client stopped sending before the end of the archive",
                    ))
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The export as the store writes it: [`CHUNK`]-sized pieces onto the channel; an error once
/// the connection is gone.
pub struct DownloadWriter {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Vec<u8>,
}

impl DownloadWriter {
    pub fn new(tx: mpsc::Sender<Vec<u8>>) -> Self {
        DownloadWriter {
            tx,
            pending: Vec::with_capacity(CHUNK),
        }
    }

    fn send_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client hung up"))
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.send_pending()
    }
}

impl Write for DownloadWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == CHUNK {
            self.send_pending()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
