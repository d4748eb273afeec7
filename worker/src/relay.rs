//! Containers' stdout and stderr: pipes, copied into their files by one relay thread for all.
//!
//! CRIU dumps an open file only when the path is reachable inside the container's mount
//! namespace; a log file in ctrd's state dir is not, so a container writing straight to it could
//! never be checkpointed. Pipes it can dump, and on restore runc hands the restored process new
//! pipes in their place (CRIU's inherit-fd). So a detached container writes into pipes, and the
//! relay copies them into its files until the last writer in the container is gone.
//!
//! One thread ([`copier`]) waits on every container's pipes with epoll and reads through one
//! buffer, so a thousand containers cost a thousand pairs of pipes, not a thousand threads. It
//! starts with the first relay and runs for the life of the daemon.
//!
//! A destination may be slow or stuck (a `--stdout` FIFO whose reader stalls), so it is written
//! without blocking; what it does not take waits in a small buffer of that stream alone, whose
//! pipe is left unread meanwhile ([`stream`]). The back-pressure reaches that container and no
//! other; its copying resumes once its destination has room. A write that fails loses its bytes,
//! and every such loss is counted ([`Relay::lost`], [`lost_in_total`]).
//!
//! [`Relay::wait`] lets whoever reports a container's exit do so only after its last output is
//! in the files, but gives up early on a destination that has stalled: the exit is then
//! reported, and the relay goes on copying what is left whenever the destination takes it.

mod copier;
mod stream;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Sender};

use copier::Copier;

/// What one read of a pipe takes, and so the most a stream holds for a destination that is
/// behind.
const BUFFER: usize = 64 * 1024;

/// How long a destination may take nothing while output waits for it before [`Relay::wait`]
/// stops waiting for it. A reader that reads at all, however slowly, is waited for.
pub const STALL: Duration = Duration::from_secs(1);

/// The epoll token of the wake-up eventfd; streams get tokens from 2.
const WAKE: u64 = 0;

/// Writes of container output that failed, and the bytes they carried, since the daemon
/// started: every relay's [`Loss`] summed.
static LOST_WRITES: AtomicU64 = AtomicU64::new(0);
static LOST_BYTES: AtomicU64 = AtomicU64::new(0);

/// Output that could not be written to its destination (the FIFO's reader gone, the disk full):
/// how many writes failed and the bytes they carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loss {
    pub writes: u64,
    pub bytes: u64,
}

/// Every relay's losses since the daemon started (those of relays long gone included).
pub fn lost_in_total() -> Loss {
    Loss {
        writes: LOST_WRITES.load(Ordering::Relaxed),
        bytes: LOST_BYTES.load(Ordering::Relaxed),
    }
}

/// How [`Relay::wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Everything the container wrote is in its files (or counted lost).
    Done,
    /// A destination has taken nothing for [`STALL`] while output waits for it; the relay
    /// goes on copying if it ever does.
    Stalled,
    /// The pipes are still open: something still holds their write ends.
    TimedOut,
}

/// A container's copying, seen from whoever tracks the container. Clones see the same copying;
/// dropping them all leaves it going until EOF.
#[derive(Debug, Clone)]
pub struct Relay {
    shared: Arc<Shared>,
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
    /// gone. Both ends are made non-blocking: the relay thread must never wait on one of them.
    pub fn copy(pipes: RelayPipes, stdout: File, stderr: File) -> io::Result<Relay> {
        let streams = vec![
            (File::from(pipes.stdout), stdout),
            (File::from(pipes.stderr), stderr),
        ];
        for (pipe, destination) in &streams {
            nonblocking(pipe)?;
            nonblocking(destination)?;
        }
        let shared = Arc::new(Shared::new(streams.len()));
        hub()?.register(Registration {
            streams,
            relay: Arc::clone(&shared),
        })?;
        Ok(Relay { shared })
    }

    /// Waits up to `timeout` for the relay to write the container's last bytes, but not for a
    /// destination that has stalled.
    pub fn wait(&self, timeout: Duration) -> Drain {
        let deadline = Instant::now() + timeout;
        let mut progress = self.shared.lock();
        loop {
            if progress.open == 0 {
                return Drain::Done;
            }
            let now = Instant::now();
            let stalls_at = progress
                .blocked_since
                .iter()
                .flatten()
                .min()
                .map(|&since| since + STALL);
            if stalls_at.is_some_and(|at| at <= now) {
                return Drain::Stalled;
            }
            if deadline <= now {
                return Drain::TimedOut;
            }
            let until = stalls_at.map_or(deadline, |at| at.min(deadline));
            progress = self
                .shared
                .changed
                .wait_timeout(progress, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The container's output lost so far.
    pub fn lost(&self) -> Loss {
        self.shared.lock().lost
    }
}

/// What the relay thread tells a relay's owner, and the condition it signals on a change.
#[derive(Debug)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

#[derive(Debug)]
struct Progress {
    /// Streams not yet at EOF with everything written (or lost).
    open: usize,
    /// Per stream, since when its destination has taken nothing while bytes wait for it.
    blocked_since: Vec<Option<Instant>>,
    lost: Loss,
}

impl Shared {
    fn new(streams: usize) -> Shared {
        Shared {
            progress: Mutex::new(Progress {
                open: streams,
                blocked_since: vec![None; streams],
                lost: Loss::default(),
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stream `index` is behind since `blocked_since` (or caught up), and lost `lost` more.
    fn update(&self, index: usize, blocked_since: Option<Instant>, lost: Loss) {
        LOST_WRITES.fetch_add(lost.writes, Ordering::Relaxed);
        LOST_BYTES.fetch_add(lost.bytes, Ordering::Relaxed);
        let mut progress = self.lock();
        progress.blocked_since[index] = blocked_since;
        progress.lost.writes += lost.writes;
        progress.lost.bytes += lost.bytes;
        self.changed.notify_all();
    }

    /// One more stream is done.
    fn finish(&self) {
        let mut progress = self.lock();
        progress.open = progress.open.saturating_sub(1);
        self.changed.notify_all();
    }
}

/// A container's pipes, each with where it goes, and what its owner sees of their copying.
struct Registration {
    streams: Vec<(File, File)>,
    relay: Arc<Shared>,
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
        copier::watch(&epoll, wake.as_raw_fd(), WAKE, true)?;
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

/// Sets `O_NONBLOCK` on the open file description of `fd`.
fn nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let fd = fd.as_fd().as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL read and set the flags of a fd we hold; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
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
    use std::io::{ErrorKind, Read, Write};

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
        assert_eq!(relay.wait(Duration::from_millis(1)), Drain::TimedOut);
        inputs.stdout.write_all(b"bye\n").unwrap();
        drop(inputs);
        assert_eq!(relay.wait(Duration::from_secs(5)), Drain::Done);
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
        assert_eq!(relay.wait(Duration::from_secs(5)), Drain::Done);
        assert_eq!(fs::read_to_string(&out).unwrap(), "from-child\n");
    }

    /// Polls `done` until it holds; panics naming `what` after a few seconds.
    fn poll(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Bytes waiting in the pipe `reader` reads, and how many it can hold.
    fn queued(reader: &impl AsRawFd) -> (usize, usize) {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int into `queued`; F_GETPIPE_SZ passes no memory.
        let capacity = unsafe {
            assert_eq!(
                libc::ioctl(reader.as_raw_fd(), libc::FIONREAD, &mut queued),
                0
            );
            libc::fcntl(reader.as_raw_fd(), libc::F_GETPIPE_SZ)
        };
        (queued as usize, capacity as usize)
    }

    #[test]
    fn a_destination_nobody_reads_holds_up_its_own_container_alone_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // A destination whose reader never reads: a pipe whose read end is held.
        let (stalled, destination) = pipe().unwrap();
        let mut stalled = File::from(stalled);
        let (pipes, mut inputs) = Relay::pipes().unwrap();
        let stuck = Relay::copy(
            pipes,
            File::from(destination),
            File::create(dir.path().join("stuck-err")).unwrap(),
        )
        .unwrap();
        // The container writes for as long as its pipe takes it; once the destination, the
        // stream's buffer and the pipe are full, it cannot write any more.
        nonblocking(&inputs.stdout).unwrap();
        let mut written = 0;
        let mut sent = Vec::new();
        poll("the back-pressure to reach the container", || {
            loop {
                let chunk = [b'a' + (written / 4096 % 26) as u8; 4096];
                match inputs.stdout.write(&chunk) {
                    Ok(n) => {
                        written += n;
                        sent.extend_from_slice(&chunk[..n]);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            let (held, capacity) = queued(&stalled);
            held == capacity && stuck.shared.lock().blocked_since[0].is_some()
        });
        let (destination_holds, _) = queued(&stalled);
        let (pipe_holds, _) = queued(&inputs.stdout);
        assert!(
            written <= destination_holds + BUFFER + pipe_holds,
            "{written} bytes taken from a container whose destination holds \
             {destination_holds}: more than the stream may buffer"
        );

        // Another container's output flows as ever.
        let (pipes, mut other) = Relay::pipes().unwrap();
        let out = dir.path().join("out");
        let free = Relay::copy(
            pipes,
            File::create(&out).unwrap(),
            File::create(dir.path().join("err")).unwrap(),
        )
        .unwrap();
        other.stdout.write_all(b"free\n").unwrap();
        drop(other);
        assert_eq!(free.wait(Duration::from_secs(5)), Drain::Done);
        assert_eq!(fs::read_to_string(&out).unwrap(), "free\n");

        // The stuck one's exit is not waited for past the stall.
        drop(inputs);
        let began = Instant::now();
        assert_eq!(stuck.wait(Duration::from_secs(30)), Drain::Stalled);
        assert!(began.elapsed() <= STALL + Duration::from_millis(500));
        assert_eq!(stuck.lost(), Loss::default());

        // Once its reader reads, the rest follows, whole and in order.
        let mut received = Vec::new();
        stalled.read_to_end(&mut received).unwrap();
        assert_eq!(received.len(), sent.len());
        assert!(received == sent, "the output arrived altered");
        assert_eq!(stuck.wait(Duration::from_secs(5)), Drain::Done);
    }

    #[test]
    fn every_write_a_gone_reader_refuses_is_counted_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (reader, destination) = pipe().unwrap();
        drop(reader);
        let (pipes, mut inputs) = Relay::pipes().unwrap();
        let relay = Relay::copy(
            pipes,
            File::from(destination),
            File::create(dir.path().join("err")).unwrap(),
        )
        .unwrap();
        let before = lost_in_total();
        inputs.stdout.write_all(b"lost\n").unwrap();
        drop(inputs);
        assert_eq!(relay.wait(Duration::from_secs(5)), Drain::Done);
        assert_eq!(
            relay.lost(),
            Loss {
                writes: 1,
                bytes: 5
            }
        );
        let after = lost_in_total();
        assert!(after.writes > before.writes && after.bytes >= before.bytes + 5);
    }
}
