//! Containers' stdout and stderr: pipes, copied into their files by one relay thread for all.
//!
//! CRIU dumps an open file only when the path is reachable inside the container's mount
//! namespace; a log file in ctrd's state dir is not, so a container writing straight to it could
//! never be checkpointed. Pipes it can dump, and on restore runc hands the restored process new
//! pipes in their place (CRIU's inherit-fd). So a detached container writes into pipes, and the
//! relay copies them into its files until the last writer in the container is gone.
//!
//! One thread waits on every container's pipes with epoll and copies through one buffer, so a
//! thousand containers cost a thousand pairs of pipes, not a thousand threads and buffers. It
//! starts with the first relay and runs for the life of the daemon. [`Relay::wait`] lets whoever
//! reports a container's exit do so only after its last output is in the files.
//!
//! The files are written with blocking writes: an output file that is a FIFO nobody reads would
//! hold every container's output up, which is why attached clients' FIFOs never come here.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};

const BUFFER: usize = 64 * 1024;

/// The epoll token of the wake-up eventfd; pipes get tokens from 1.
const WAKE: u64 = 0;

/// Owned by whoever tracks the container; dropping it leaves its copying going until EOF.
#[derive(Debug)]
pub struct Relay {
    /// Disconnected when both pipes have reached EOF and everything is in the files.
    done: Receiver<()>,
}

/// The write ends, for the container's stdout and stderr.
pub struct RelayInputs {
    pub stdout: File,
    pub stderr: File,
}

/// The read ends of a container's output pipes: what the relay copies from. The keeper holds a
/// copy of each, so the container's writes never meet a pipe without a reader while the daemon
/// restarts, and a new daemon takes them back to copy from.
pub struct RelayPipes {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Relay {
    /// Makes the two pipes, close-on-exec: only the process they are handed to as stdio gets
    /// the write ends.
    pub fn pipes() -> io::Result<(RelayPipes, RelayInputs)> {
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        let pipes = RelayPipes {
            stdout: out_read,
            stderr: err_read,
        };
        let inputs = RelayInputs {
            stdout: File::from(out_write),
            stderr: File::from(err_write),
        };
        Ok((pipes, inputs))
    }

    /// Has the relay thread copy the pipes into `stdout` and `stderr` until their writers are
    /// gone.
    pub fn copy(pipes: RelayPipes, stdout: File, stderr: File) -> io::Result<Relay> {
        let (done_tx, done) = bounded::<()>(0);
        hub()?.register(Registration {
            streams: vec![
                (File::from(pipes.stdout), stdout),
                (File::from(pipes.stderr), stderr),
            ],
            done: done_tx,
        })?;
        Ok(Relay { done })
    }

    /// Waits up to `timeout` for the relay to copy its last bytes; false if it has not.
    pub fn wait(&self, timeout: Duration) -> bool {
        matches!(
            self.done.recv_timeout(timeout),
            Err(RecvTimeoutError::Disconnected) | Ok(())
        )
    }
}

/// A container's pipes and where each goes; `done` is dropped once both are drained.
struct Registration {
    streams: Vec<(File, File)>,
    done: Sender<()>,
}

/// The handle on the relay thread: registrations go through a channel, and an eventfd wakes
/// the thread out of `epoll_wait` to take them.
struct Hub {
    registrations: Sender<Registration>,
    wake: OwnedFd,
}

fn hub() -> io::Result<&'static Hub> {
    static HUB: OnceLock<Hub> = OnceLock::new();
    static STARTING: Mutex<()> = Mutex::new(());
    if let Some(hub) = HUB.get() {
        return Ok(hub);
    }
    let _one_at_a_time = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(hub) = HUB.get() {
        return Ok(hub);
    }
    let hub = Hub::start()?;
    Ok(HUB.get_or_init(|| hub))
}

impl Hub {
    fn start() -> io::Result<Hub> {
        // SAFETY: epoll_create1 and eventfd take flags and return a new fd or -1.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let wake = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        watch(&epoll, wake.as_raw_fd(), WAKE)?;
        let (registrations, incoming) = unbounded();
        let wake_read = wake.try_clone()?;
        thread::Builder::new()
            .name("relay".into())
            .spawn(move || Copier::new(epoll, wake_read, incoming).run())?;
        Ok(Hub {
            registrations,
            wake,
        })
    }

    fn register(&self, registration: Registration) -> io::Result<()> {
        self.registrations
            .send(registration)
            .map_err(|_| io::Error::other("the relay thread is gone"))?;
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live array to an eventfd we own.
        let wrote = unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        if wrote < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The relay thread's state: every pipe it copies, keyed by its epoll token.
struct Copier {
    epoll: OwnedFd,
    wake: OwnedFd,
    incoming: Receiver<Registration>,
    streams: HashMap<u64, Stream>,
    /// The `done` sender of each container, with how many of its pipes are still open.
    relays: HashMap<u64, (usize, Sender<()>)>,
    next_token: u64,
    warned: bool,
}

struct Stream {
    pipe: File,
    file: File,
    relay: u64,
}

impl Copier {
    fn new(epoll: OwnedFd, wake: OwnedFd, incoming: Receiver<Registration>) -> Copier {
        Copier {
            epoll,
            wake,
            incoming,
            streams: HashMap::new(),
            relays: HashMap::new(),
            next_token: WAKE + 1,
            warned: false,
        }
    }

    fn run(mut self) {
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
                    token => self.copy(token, &mut buf),
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
        while let Ok(Registration { streams, done }) = self.incoming.try_recv() {
            let relay = self.token();
            let mut open = 0;
            for (pipe, file) in streams {
                let token = self.token();
                match watch(&self.epoll, pipe.as_raw_fd(), token) {
                    Ok(()) => {
                        self.streams.insert(token, Stream { pipe, file, relay });
                        open += 1;
                    }
                    Err(e) => log::error!("relay: cannot watch a container's output: {e}"),
                }
            }
            if open > 0 {
                self.relays.insert(relay, (open, done));
            }
        }
    }

    /// Copies what the pipe has into its file; at EOF (or a read error) forgets the pipe.
    fn copy(&mut self, token: u64, buf: &mut [u8]) {
        let Some(stream) = self.streams.get_mut(&token) else {
            return;
        };
        match stream.pipe.read(buf) {
            Ok(0) => self.close(token),
            Ok(n) => {
                if let Err(e) = stream.file.write_all(&buf[..n]) {
                    if !self.warned {
                        log::warn!("cannot write container output: {e}; dropping it");
                        self.warned = true;
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => {
                log::warn!("cannot read container output: {e}");
                self.close(token);
            }
        }
    }

    fn close(&mut self, token: u64) {
        let Some(stream) = self.streams.remove(&token) else {
            return;
        };
        // SAFETY: removes a fd we own from an epoll set we own; a null event is allowed for DEL.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                stream.pipe.as_raw_fd(),
                std::ptr::null_mut(),
            )
        };
        if let Some((open, _)) = self.relays.get_mut(&stream.relay) {
            *open -= 1;
            if *open == 0 {
                // Dropping the sender is what tells `Relay::wait` the output is all in.
                self.relays.remove(&stream.relay);
            }
        }
    }

    fn token(&mut self) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        token
    }
}

/// Adds `fd` to the epoll set, level-triggered: a pipe with data left is reported again.
fn watch(epoll: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: `event` lives across the call; both fds are open.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array, which outlives the call.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these fds to us and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn copies_both_streams_and_ends_when_the_writers_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let (pipes, mut inputs) = Relay::pipes().unwrap();
        let relay = Relay::copy(
            pipes,
            File::create(&out).unwrap(),
            File::create(&err).unwrap(),
        )
        .unwrap();
        inputs.stdout.write_all(b"hello\n").unwrap();
        inputs.stderr.write_all(b"oops\n").unwrap();
        assert!(!relay.wait(Duration::from_millis(1)), "writers still open");
        inputs.stdout.write_all(b"bye\n").unwrap();
        drop(inputs);
        assert!(relay.wait(Duration::from_secs(5)));
        assert_eq!(fs::read_to_string(&out).unwrap(), "hello\nbye\n");
        assert_eq!(fs::read_to_string(&err).unwrap(), "oops\n");
    }

    #[test]
    fn a_child_writes_through_the_pipes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let (pipes, inputs) = Relay::pipes().unwrap();
        let relay = Relay::copy(
            pipes,
            File::create(&out).unwrap(),
            File::create(dir.path().join("err")).unwrap(),
        )
        .unwrap();
        let status = std::process::Command::new("sh")
            .args(["-c", "echo from-child"])
            .stdout(inputs.stdout)
            .stderr(inputs.stderr)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(relay.wait(Duration::from_secs(5)));
        assert_eq!(fs::read_to_string(&out).unwrap(), "from-child\n");
    }
}
