//! The relay thread: one epoll set over every container's output, and one read buffer.
//!
//! Each [`Stream`] is watched on one side at a time: its pipe while it can take more, its
//! destination (for `EPOLLOUT`) while bytes wait for that. A destination epoll cannot watch (a
//! regular file) never makes a write wait, so it never needs watching. Level-triggered: a pipe
//! with data left, or a destination with room left, is reported again.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::stream::{Next, Stream};
use super::{Registration, Shared, BUFFER, WAKE};

/// The low bit of an epoll token: which side of a stream it is for.
const PIPE: u64 = 0;
const DESTINATION: u64 = 1;

/// The relay thread's state: every stream it copies, keyed by id.
pub(super) struct Copier {
    epoll: OwnedFd,
    wake: OwnedFd,
    incoming: Receiver<Registration>,
    streams: HashMap<u64, Entry>,
    next_id: u64,
}

/// A stream, the relay it belongs to, and what that relay's owner has last been told of it.
struct Entry {
    stream: Stream,
    relay: Arc<Shared>,
    /// Its place among the relay's streams.
    index: usize,
    /// What it waits for, so which of its fds is in the epoll set.
    waits_for: Next,
    /// The stall last handed to `relay`.
    told_blocked_since: Option<Instant>,
}

impl Copier {
    pub fn new(epoll: OwnedFd, wake: OwnedFd, incoming: Receiver<Registration>) -> Copier {
        Copier {
            epoll,
            wake,
            incoming,
            streams: HashMap::new(),
            // Ids from 1, so no token is `WAKE`.
            next_id: 1,
        }
    }

    pub fn run(mut self) {
        let mut buf = vec![0u8; BUFFER];
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            // SAFETY: `events` is a live array of the length passed; epoll_wait fills at most
            // that many entries.
            let ready = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    -1,
                )
            };
            if ready < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("relay epoll: {err}; container output is no longer copied");
                return;
            }
            for event in &events[..ready as usize] {
                match event.u64 {
                    WAKE => self.take_registrations(),
                    token => self.step(token >> 1, token & 1, &mut buf),
                }
            }
        }
    }

    fn take_registrations(&mut self) {
        let mut count = [0u8; 8];
        // SAFETY: reads 8 bytes into a live array from an eventfd we own (non-blocking).
        unsafe {
            libc::read(
                self.wake.as_raw_fd(),
                count.as_mut_ptr().cast(),
                count.len(),
            )
        };
        while let Ok(Registration { streams, relay }) = self.incoming.try_recv() {
            for (index, (pipe, destination)) in streams.into_iter().enumerate() {
                let id = self.next_id;
                self.next_id += 1;
                if let Err(e) = watch(&self.epoll, pipe.as_raw_fd(), token(id, PIPE), true) {
                    log::error!("relay: cannot watch a container's output: {e}");
                    relay.finish();
                    continue;
                }
                let name = name_of(&destination);
                let entry = Entry {
                    stream: Stream::new(pipe, destination, name),
                    relay: Arc::clone(&relay),
                    index,
                    waits_for: Next::Read,
                    told_blocked_since: None,
                };
                self.streams.insert(id, entry);
            }
        }
    }

    /// Moves the stream `id` on, as the event on its `side` allows.
    fn step(&mut self, id: u64, side: u64, buf: &mut [u8]) {
        let Some(entry) = self.streams.get_mut(&id) else {
            return;
        };
        let next = match (side, entry.waits_for) {
            (PIPE, Next::Read) => entry.stream.read(buf),
            (DESTINATION, Next::Drain) => entry.stream.drain(),
            // An event already queued for the side it has just stopped watching.
            _ => return,
        };
        let next = self.wait_for(id, next);
        if let Some(entry) = self.streams.get_mut(&id) {
            entry.tell();
        }
        if next == Next::Done {
            self.close(id);
        }
    }

    /// Moves the epoll watch of stream `id` to what it waits for `next`: its destination
    /// (`EPOLLOUT`) once bytes wait, its pipe once they are written. Returns what it waits for
    /// after all: a destination epoll refuses cannot be waited for, so what waits for it is
    /// lost and the pipe stays watched.
    fn wait_for(&mut self, id: u64, next: Next) -> Next {
        let Some(entry) = self.streams.get_mut(&id) else {
            return Next::Done;
        };
        let pipe = entry.stream.pipe().as_raw_fd();
        let destination = entry.stream.destination().as_raw_fd();
        match (entry.waits_for, next) {
            (Next::Read, Next::Drain) => {
                match watch(&self.epoll, destination, token(id, DESTINATION), false) {
                    Ok(()) => {
                        unwatch(&self.epoll, pipe);
                        entry.waits_for = Next::Drain;
                        Next::Drain
                    }
                    Err(e) => entry.stream.discard(&e),
                }
            }
            (Next::Drain, Next::Read) => match watch(&self.epoll, pipe, token(id, PIPE), true) {
                Ok(()) => {
                    unwatch(&self.epoll, destination);
                    entry.waits_for = Next::Read;
                    Next::Read
                }
                Err(e) => {
                    log::error!("relay: cannot watch a container's output again: {e}");
                    Next::Done
                }
            },
            (_, next) => next,
        }
    }

    fn close(&mut self, id: u64) {
        let Some(entry) = self.streams.remove(&id) else {
            return;
        };
        // Closing our fd is not enough: the keeper holds a copy of the pipe's, which keeps the
        // pipe in the epoll set.
        let watched = match entry.waits_for {
            Next::Drain => entry.stream.destination().as_raw_fd(),
            _ => entry.stream.pipe().as_raw_fd(),
        };
        unwatch(&self.epoll, watched);
        entry.relay.finish();
    }
}

impl Entry {
    /// Hands the relay's owner what changed: new losses, a stall begun or ended.
    fn tell(&mut self) {
        let lost = self.stream.take_lost();
        let blocked_since = self.stream.blocked_since();
        if lost.writes > 0 || blocked_since != self.told_blocked_since {
            self.relay.update(self.index, blocked_since, lost);
            self.told_blocked_since = blocked_since;
        }
    }
}

fn token(id: u64, side: u64) -> u64 {
    id << 1 | side
}

/// Adds `fd` to the epoll set, level-triggered, for reading (`input`) or writing.
pub(super) fn watch(epoll: &OwnedFd, fd: RawFd, token: u64, input: bool) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: if input { libc::EPOLLIN } else { libc::EPOLLOUT } as u32,
        u64: token,
    };
    // SAFETY: `event` lives across the call; both fds are open.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn unwatch(epoll: &OwnedFd, fd: RawFd) {
    // SAFETY: removes a fd we own from an epoll set we own; a null event is allowed for DEL.
    unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut(),
        )
    };
}

/// The path a destination was opened at, for log lines.
fn name_of(file: &File) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| format!("fd {}", file.as_raw_fd()))
}
