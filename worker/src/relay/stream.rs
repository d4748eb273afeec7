//! One output stream of a container: its pipe, its destination, and what was read from the one
//! that the other has not taken yet.
//!
//! The destination is written without blocking. What it does not take at once waits here (one
//! read's worth at most), and while anything waits the pipe is not read: the container then
//! fills the pipe and blocks in its own write, so a slow destination holds up its own container
//! and nothing else. Once the destination has taken everything, the pipe is read again.
//!
//! A write that fails (the FIFO's reader gone, the disk full) loses what it carried. The loss is
//! counted, and the first one logged naming the destination; the stream goes on reading, so a
//! container whose output cannot be written runs on as if it wrote to `/dev/null`.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::time::Instant;

use super::Loss;

/// What a stream waits for next, which the relay thread turns into its epoll interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// The pipe to be readable.
    Read,
    /// The destination to be writable: bytes wait for it, and the pipe is left unread.
    Drain,
    /// Nothing: the pipe reached its end and everything read was written or counted lost.
    Done,
}

/// A container's stdout or stderr on its way from `pipe` to `destination`.
pub(super) struct Stream<P = File, D = File> {
    pipe: P,
    destination: D,
    /// Names the destination in the warning about its first lost write.
    name: String,
    /// Read from the pipe and not yet taken by the destination: `pending[written..]`. Empty (and
    /// unallocated) except while the destination is behind.
    pending: Vec<u8>,
    written: usize,
    /// Since when the destination has taken nothing while bytes wait for it.
    blocked_since: Option<Instant>,
    /// Losses not yet handed to the relay's owner (see [`Stream::take_lost`]).
    lost: Loss,
    warned: bool,
}

/// How much of an offer the destination took.
enum Offer {
    All,
    /// It took this many bytes, then would have blocked.
    Full(usize),
    /// It took this many bytes, then failed.
    Failed(usize, io::Error),
}

impl<P: Read, D: Write> Stream<P, D> {
    pub fn new(pipe: P, destination: D, name: String) -> Self {
        Stream {
            pipe,
            destination,
            name,
            pending: Vec::new(),
            written: 0,
            blocked_since: None,
            lost: Loss::default(),
            warned: false,
        }
    }

    pub fn pipe(&self) -> &P {
        &self.pipe
    }

    pub fn destination(&self) -> &D {
        &self.destination
    }

    /// The pipe is readable: copies one read of it, through `buf`, to the destination. Called
    /// only while [`Next::Read`] is what the stream waits for.
    pub fn read(&mut self, buf: &mut [u8]) -> Next {
        debug_assert!(self.pending.is_empty(), "read while bytes wait");
        let n = match self.pipe.read(buf) {
            Ok(0) => return Next::Done,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {
                return Next::Read
            }
            Err(e) => {
                log::warn!("cannot read a container's output for {}: {e}", self.name);
                return Next::Done;
            }
        };
        let bytes = &buf[..n];
        match offer(&mut self.destination, bytes) {
            Offer::All => Next::Read,
            Offer::Full(taken) => {
                self.pending.extend_from_slice(&bytes[taken..]);
                self.written = 0;
                self.behind(taken > 0);
                Next::Drain
            }
            Offer::Failed(taken, e) => {
                self.lose(n - taken, &e);
                Next::Read
            }
        }
    }

    /// The destination is writable (or failed): writes what waits for it.
    pub fn drain(&mut self) -> Next {
        let waiting = &self.pending[self.written..];
        match offer(&mut self.destination, waiting) {
            Offer::All => {
                self.caught_up();
                Next::Read
            }
            Offer::Full(taken) => {
                self.written += taken;
                self.behind(taken > 0);
                Next::Drain
            }
            Offer::Failed(taken, e) => {
                let lost = waiting.len() - taken;
                self.lose(lost, &e);
                self.caught_up();
                Next::Read
            }
        }
    }

    /// Drops what waits for a destination that cannot be waited for (`why`), counting it lost.
    pub fn discard(&mut self, why: &io::Error) -> Next {
        self.lose(self.pending.len() - self.written, why);
        self.caught_up();
        Next::Read
    }

    /// Since when the destination has taken nothing while bytes wait for it; `None` when it is
    /// not behind.
    pub fn blocked_since(&self) -> Option<Instant> {
        self.blocked_since
    }

    /// The losses since the last call.
    pub fn take_lost(&mut self) -> Loss {
        std::mem::take(&mut self.lost)
    }

    /// The destination did not take everything; `progressed` if it took some, which restarts
    /// the clock a stall is measured by.
    fn behind(&mut self, progressed: bool) {
        if progressed || self.blocked_since.is_none() {
            self.blocked_since = Some(Instant::now());
        }
    }

    /// Nothing waits any more: the buffer goes, so an idle stream holds no memory.
    fn caught_up(&mut self) {
        self.pending = Vec::new();
        self.written = 0;
        self.blocked_since = None;
    }

    fn lose(&mut self, bytes: usize, why: &io::Error) {
        self.lost.writes += 1;
        self.lost.bytes += bytes as u64;
        if !self.warned {
            log::warn!(
                "cannot write a container's output to {}: {why}; what cannot be written is lost \
                 (the container's state counts it)",
                self.name
            );
            self.warned = true;
        }
    }
}

/// Writes as much of `bytes` as `destination` takes without blocking.
fn offer(destination: &mut impl Write, bytes: &[u8]) -> Offer {
    let mut taken = 0;
    while taken < bytes.len() {
        match destination.write(&bytes[taken..]) {
            Ok(0) => return Offer::Failed(taken, ErrorKind::WriteZero.into()),
            Ok(n) => taken += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Offer::Full(taken),
            Err(e) => return Offer::Failed(taken, e),
        }
    }
    Offer::All
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A destination that takes up to `room` bytes, then would block until given more room; or
    /// fails every write with `error`.
    #[derive(Default)]
    struct Destination {
        taken: Vec<u8>,
        room: usize,
        error: Option<i32>,
    }

    impl Write for Destination {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(errno) = self.error {
                return Err(io::Error::from_raw_os_error(errno));
            }
            if self.room == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.taken.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn stream(input: &[u8], destination: Destination) -> Stream<Cursor<Vec<u8>>, Destination> {
        Stream::new(Cursor::new(input.to_vec()), destination, "test".into())
    }

    #[test]
    fn a_destination_that_keeps_up_is_written_straight_from_the_read() {
        let room = usize::MAX;
        let mut s = stream(
            b"hello",
            Destination {
                room,
                ..Default::default()
            },
        );
        let mut buf = [0; 16];
        assert_eq!(s.read(&mut buf), Next::Read);
        assert_eq!(s.read(&mut buf), Next::Done);
        assert_eq!(s.destination.taken, b"hello");
        assert_eq!(s.pending.capacity(), 0);
        assert_eq!(s.blocked_since(), None);
    }

    #[test]
    fn what_a_full_destination_does_not_take_waits_and_stops_the_reading() {
        let mut s = stream(
            b"0123456789",
            Destination {
                room: 4,
                ..Default::default()
            },
        );
        let mut buf = [0; 6];
        assert_eq!(s.read(&mut buf), Next::Drain, "2 of 6 bytes wait");
        assert_eq!(s.pending[s.written..], *b"45");
        let since = s.blocked_since().expect("behind");

        // Still full: the stall goes on from when it began.
        assert_eq!(s.drain(), Next::Drain);
        assert_eq!(s.blocked_since(), Some(since));

        // Room for one byte: progress, so the stall clock starts again.
        s.destination.room = 1;
        assert_eq!(s.drain(), Next::Drain);
        assert!(s.blocked_since().unwrap() >= since);
        assert_eq!(s.destination.taken, b"01234");

        s.destination.room = usize::MAX;
        assert_eq!(s.drain(), Next::Read, "caught up: read the pipe again");
        assert_eq!(s.blocked_since(), None);
        assert_eq!(s.pending.capacity(), 0, "the buffer is gone once drained");
        assert_eq!(s.read(&mut buf), Next::Read);
        assert_eq!(s.read(&mut buf), Next::Done);
        assert_eq!(s.destination.taken, b"0123456789");
        assert_eq!(s.take_lost(), Loss::default());
    }

    #[test]
    fn the_pending_bytes_never_exceed_one_read() {
        let input = vec![b'x'; 10_000];
        let mut s = stream(&input, Destination::default());
        let mut buf = [0; 1024];
        assert_eq!(s.read(&mut buf), Next::Drain);
        for _ in 0..5 {
            assert_eq!(s.drain(), Next::Drain);
        }
        assert_eq!(s.pending.len(), 1024);
        assert_eq!(s.pipe.position(), 1024, "the pipe is left unread");
    }

    #[test]
    fn every_failed_write_is_counted_with_its_bytes_and_the_reading_goes_on() {
        let epipe = Destination {
            error: Some(libc::EPIPE),
            ..Default::default()
        };
        let mut s = stream(b"0123456789", epipe);
        let mut buf = [0; 4];
        assert_eq!(s.read(&mut buf), Next::Read);
        assert_eq!(s.read(&mut buf), Next::Read);
        assert_eq!(
            s.take_lost(),
            Loss {
                writes: 2,
                bytes: 8
            }
        );
        assert_eq!(s.read(&mut buf), Next::Read);
        assert_eq!(s.read(&mut buf), Next::Done);
        assert_eq!(
            s.take_lost(),
            Loss {
                writes: 1,
                bytes: 2
            }
        );
    }

    #[test]
    fn a_destination_that_fails_while_bytes_wait_loses_them_and_catches_up() {
        let mut s = stream(
            b"0123456789",
            Destination {
                room: 3,
                ..Default::default()
            },
        );
        let mut buf = [0; 10];
        assert_eq!(s.read(&mut buf), Next::Drain);
        s.destination.error = Some(libc::ENOSPC);
        assert_eq!(s.drain(), Next::Read);
        assert_eq!(
            s.take_lost(),
            Loss {
                writes: 1,
                bytes: 7
            }
        );
        assert_eq!(s.blocked_since(), None);

        let mut s = stream(
            b"0123456789",
            Destination {
                room: 3,
                ..Default::default()
            },
        );
        assert_eq!(s.read(&mut buf), Next::Drain);
        let why = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(s.discard(&why), Next::Read);
        assert_eq!(
            s.take_lost(),
            Loss {
                writes: 1,
                bytes: 7
            }
        );
    }
}
