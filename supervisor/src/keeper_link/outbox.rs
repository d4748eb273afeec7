//! What the daemon tells the keeper, queued when the keeper does not read.
//!
//! The daemon's end of the socketpair is non-blocking. A keeper that does not read (stopped, or
//! busy in a long `fdatasync` or a compaction of its log) fills the socket's buffer, and a
//! blocking send would then stall whichever thread made it: the actor, the journal's writer, a
//! worker. Instead a message that does not fit waits here, in order, and the `keeper-outbox`
//! thread sends it once the socket is writable again. A message with nothing waiting before it
//! is sent at once by the thread that has it, so usually nothing queues and no thread is woken.
//!
//! # Why the outbox is bounded
//!
//! Only the daemon's own bookkeeping goes in, never something a client can add at will:
//! - `Ready` and `Sync`: once each;
//! - `Ack`: one per exit the keeper sent this daemon. The keeper is one thread: while it does
//!   not read it sends nothing either, so the acknowledgements waiting are at most the exits it
//!   sent before it stalled, which it still holds itself as unacknowledged;
//! - `Keep` and `Release`: at most one per token, since a `Release` whose `Keep` still waits
//!   here cancels both, and a `Release` of a token the keeper was never given (a start that
//!   failed before it made its relay) is not sent at all. So they are at most one per container
//!   whose output pipes the keeper holds or is about to, which [`Queue::kept`] counts.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use keeper::wire::{self, ToKeeper};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// The messages not yet sent, shared by every thread that tells the keeper something and the
/// thread that sends what they could not.
pub struct Outbox {
    /// A copy of the daemon's end of the socketpair (non-blocking, like the original).
    socket: OwnedFd,
    queue: Mutex<Queue>,
    /// Wakes the sending thread when a message is queued.
    queued: Condvar,
    /// Wakes [`Outbox::flushed`] when the queue is empty (or the socket failed).
    emptied: Condvar,
}

struct Queue {
    /// Oldest first, each with copies of the descriptors it carries.
    messages: VecDeque<(ToKeeper, Vec<OwnedFd>)>,
    /// The tokens the keeper holds output pipes under, or will once their queued `Keep` is
    /// sent: a `Release` of any other token has nothing to release.
    kept: HashSet<String>,
    /// The socket failed (the keeper is gone): nothing more is sent, or queued.
    closed: bool,
}

/// What became of one attempt to send.
enum Sent {
    Yes,
    /// The socket's buffer is full: try again once it is writable.
    Full,
    /// The message can never be sent (too large); it is dropped.
    Dropped,
    /// The socket failed: the keeper is gone.
    Failed,
}

impl Outbox {
    /// An outbox on `socket` (which must be non-blocking), with its sending thread started;
    /// `kept` are the tokens the keeper replayed outputs for.
    pub fn start(socket: OwnedFd, kept: HashSet<String>) -> io::Result<Arc<Outbox>> {
        let outbox = Arc::new(Outbox {
            socket,
            queue: Mutex::new(Queue {
                messages: VecDeque::new(),
                kept,
                closed: false,
            }),
            queued: Condvar::new(),
            emptied: Condvar::new(),
        });
        let sender = outbox.clone();
        std::thread::Builder::new()
            .name("keeper-outbox".into())
            .spawn(move || sender.send_queued())?;
        Ok(outbox)
    }

    /// Sends `message` with `fds` now if the socket has room and nothing waits before it, else
    /// queues it; never waits for the keeper. An error only when the keeper is gone.
    pub fn tell(&self, message: ToKeeper, fds: Vec<OwnedFd>) -> io::Result<()> {
        let mut queue = self.lock();
        if queue.closed {
            return Err(gone());
        }
        match &message {
            ToKeeper::Keep { token } => {
                queue.kept.insert(token.clone());
            }
            ToKeeper::Release { token } => {
                if !queue.kept.remove(token) {
                    return Ok(());
                }
                let waiting = queue
                    .messages
                    .iter()
                    .position(|(m, _)| matches!(m, ToKeeper::Keep { token: t } if t == token));
                if let Some(at) = waiting {
                    // Never sent, so nothing to release: its descriptor copies close here.
                    queue.messages.remove(at);
                    return Ok(());
                }
            }
            ToKeeper::Ready | ToKeeper::Ack { .. } | ToKeeper::Sync => {}
        }
        if queue.messages.is_empty() {
            match self.send(&message, &fds) {
                Sent::Yes | Sent::Dropped => return Ok(()),
                Sent::Full => log::debug!("the keeper is not reading; queuing for it"),
                Sent::Failed => {
                    self.close(&mut queue);
                    return Err(gone());
                }
            }
        }
        queue.messages.push_back((message, fds));
        self.queued.notify_one();
        Ok(())
    }

    /// Waits up to `within` for every queued message to be sent; says whether they were (or the
    /// keeper is gone, so they never will be).
    pub fn flushed(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut queue = self.lock();
        while !queue.messages.is_empty() && !queue.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queue = self
                .emptied
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// How many messages wait.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().messages.len()
    }

    /// The `keeper-outbox` thread: waits for a message to be queued, then for the socket to be
    /// writable, then sends what fits; until the socket fails.
    fn send_queued(&self) {
        loop {
            {
                let mut queue = self.lock();
                while queue.messages.is_empty() && !queue.closed {
                    queue = self
                        .queued
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if queue.closed {
                    return;
                }
            }
            // Without the lock: senders may queue meanwhile, and the keeper may take long.
            if let Err(e) = wait_writable(&self.socket) {
                log::warn!("waiting to write to the keeper: {e}");
            }
            let mut queue = self.lock();
            while let Some((message, fds)) = queue.messages.front() {
                match self.send(message, fds) {
                    Sent::Yes | Sent::Dropped => {
                        queue.messages.pop_front();
                    }
                    Sent::Full => break,
                    Sent::Failed => self.close(&mut queue),
                }
            }
            if queue.messages.is_empty() {
                self.emptied.notify_all();
            }
        }
    }

    fn send(&self, message: &ToKeeper, fds: &[OwnedFd]) -> Sent {
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        match wire::send(self.socket.as_fd(), message, &raw) {
            Ok(()) => Sent::Yes,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Sent::Full,
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                log::warn!("cannot tell the keeper {message:?}: {e}");
                Sent::Dropped
            }
            Err(e) => {
                log::warn!("cannot tell the keeper {message:?}: {e}; it is gone");
                Sent::Failed
            }
        }
    }

    /// The keeper is gone: what waits is dropped, and the daemon learns of it from the reader.
    fn close(&self, queue: &mut Queue) {
        queue.closed = true;
        queue.messages.clear();
        self.emptied.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the keeper is gone")
}

/// Blocks until the socket has room (or has failed, which the next send reports).
fn wait_writable(socket: &OwnedFd) -> nix::Result<()> {
    loop {
        let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => return Ok(()),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    /// An outbox on one end of a socketpair nobody reads yet, and the other end.
    fn outbox(kept: &[&str]) -> (Arc<Outbox>, OwnedFd) {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )
        .unwrap();
        let kept = kept.iter().map(|t| t.to_string()).collect();
        (Outbox::start(ours, kept).unwrap(), theirs)
    }

    fn received(socket: &OwnedFd) -> Vec<ToKeeper> {
        let mut messages = Vec::new();
        loop {
            match wire::recv::<ToKeeper>(socket.as_fd()) {
                Ok(Some((message, _))) => messages.push(message),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return messages,
                other => panic!("{other:?}"),
            }
        }
    }

    fn pipe_pair() -> Vec<OwnedFd> {
        let (read, write) = nix::unistd::pipe().unwrap();
        vec![read, write]
    }

    #[test]
    fn a_keeper_that_does_not_read_queues_messages_then_gets_them_in_order() {
        let (outbox, keeper) = outbox(&[]);
        // Far more than the socket's buffer holds (a few hundred small datagrams).
        let count = 5_000;
        let started = Instant::now();
        for seq in 0..count {
            outbox.tell(ToKeeper::Ack { seq }, Vec::new()).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "telling took {:?}",
            started.elapsed()
        );
        assert!(outbox.waiting() > 0, "the socket's buffer never filled");
        let mut acks = Vec::new();
        while acks.len() < count as usize {
            let mut fds = [PollFd::new(keeper.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(10_000u16)).unwrap();
            acks.extend(received(&keeper).into_iter().map(|m| match m {
                ToKeeper::Ack { seq } => seq,
                other => panic!("{other:?}"),
            }));
        }
        assert_eq!(acks, (0..count).collect::<Vec<_>>());
        assert!(outbox.flushed(Duration::from_secs(10)));
    }

    #[test]
    fn a_release_cancels_its_keep_while_both_wait_and_is_not_sent_for_a_token_never_kept() {
        let (outbox, keeper) = outbox(&["replayed"]);
        let mut filled = 0;
        while outbox.waiting() == 0 {
            outbox
                .tell(ToKeeper::Ack { seq: filled }, Vec::new())
                .unwrap();
            filled += 1;
        }
        let keep = |token: &str| ToKeeper::Keep {
            token: token.into(),
        };
        let release = |token: &str| ToKeeper::Release {
            token: token.into(),
        };
        outbox.tell(keep("short-lived"), pipe_pair()).unwrap();
        outbox.tell(keep("long-lived"), pipe_pair()).unwrap();
        outbox.tell(release("short-lived"), Vec::new()).unwrap();
        outbox.tell(release("failed-start"), Vec::new()).unwrap();
        outbox.tell(release("replayed"), Vec::new()).unwrap();
        // The first Ack that did not fit, the long-lived Keep, the replayed token's Release.
        assert_eq!(outbox.waiting(), 3);

        let mut messages = Vec::new();
        while !messages.contains(&release("replayed")) {
            let mut fds = [PollFd::new(keeper.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(10_000u16)).unwrap();
            messages.extend(received(&keeper));
        }
        let tail: Vec<_> = messages.split_off(filled as usize - 1);
        assert_eq!(
            tail,
            [
                ToKeeper::Ack { seq: filled - 1 },
                keep("long-lived"),
                release("replayed")
            ]
        );
    }

    #[test]
    fn a_keeper_that_is_gone_is_an_error_not_a_hang() {
        let (outbox, keeper) = outbox(&[]);
        drop(keeper);
        let err = outbox.tell(ToKeeper::Ready, Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(outbox.flushed(Duration::ZERO));
    }
}
