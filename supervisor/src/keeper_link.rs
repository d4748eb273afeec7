//! The daemon's end of the socketpair to its keeper (the keeper's end, and the messages both
//! speak, are the `keeper` crate's).
//!
//! At start-up the daemon reads what the keeper replays ([`Handshake`]): the output pipes it
//! kept for running containers and every exit the daemon has not acknowledged. From then on a
//! reader thread turns the keeper's messages into [`Incoming`] for the rest of the daemon, and any
//! thread may tell the keeper something: each message is one datagram, so sends never interleave,
//! and none waits for the keeper: what does not fit in the socket waits in the [`outbox`].

mod outbox;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keeper::clock_ns;
use keeper::handoff::{inherited_fd, BadInheritedFd};
use keeper::wire::{self, ExitRecord, ToDaemon, ToKeeper};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runtime::ExitStatus;
use worker::{OutputKeeper, RelayPipes};

use self::outbox::Outbox;

/// How long the keeper gets to replay what it holds.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    BadFd(#[from] BadInheritedFd),
    #[error("reading the keeper's replay: {0}")]
    Io(#[from] io::Error),
    #[error("the keeper sent no replay within {HANDSHAKE_TIMEOUT:?}")]
    TimedOut,
    #[error("the keeper closed the connection during its replay")]
    Closed,
    #[error("the keeper's replay began with {0:?}, not a hello")]
    NoHello(Box<ToDaemon>),
    #[error("cannot start the keeper's outbox: {0}")]
    Outbox(io::Error),
}

/// A process the keeper reaped (or one that ended where no keeper could reap it).
#[derive(Debug, Clone, Copy)]
pub struct ProcessExit {
    pub pid: u32,
    /// With the pid, names the process (see [`runtime::procstat`]); `None` if unknown.
    pub start_time: Option<u64>,
    pub outcome: Outcome,
    pub reaped_at: Instant,
    /// The keeper's number for this exit, acknowledged once the exit is dealt with.
    pub ack: Option<u64>,
}

/// How a process ended, as far as anyone can know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(ExitStatus),
    /// Its status went to a process other than the keeper; the reason says why.
    Unknown(&'static str),
}

impl Outcome {
    /// The status as events carry it: none when unknown.
    pub fn code(self) -> Option<i32> {
        match self {
            Outcome::Status(status) => Some(status.code()),
            Outcome::Unknown(_) => None,
        }
    }
}

impl ProcessExit {
    fn from_record(record: &ExitRecord) -> Option<ProcessExit> {
        let status = ExitStatus::from_wait_status(record.status)?;
        let now_mono = clock_ns(libc::CLOCK_MONOTONIC);
        let ago = Duration::from_nanos(now_mono.saturating_sub(record.mono_ns));
        Some(ProcessExit {
            pid: record.pid,
            start_time: record.start_time,
            outcome: Outcome::Status(status),
            reaped_at: Instant::now().checked_sub(ago).unwrap_or_else(Instant::now),
            ack: Some(record.seq),
        })
    }
}

/// What the keeper replayed to a new daemon.
pub struct Handshake {
    pub keeper_pid: u32,
    /// Kept output pipes by token.
    pub outputs: HashMap<String, RelayPipes>,
    /// Exits not acknowledged by an earlier daemon, oldest first.
    pub exits: Vec<ProcessExit>,
}

/// What the keeper tells a running daemon.
#[derive(Debug)]
pub enum Incoming {
    Exit(ProcessExit),
    /// The keeper's answer to [`KeeperLink::sync`]: every exit it reaped before it was asked
    /// has come before this.
    Synced,
    /// Exit without touching the containers: a new daemon takes over.
    Handover,
    /// The keeper is gone: no exit can be reaped or recorded any more.
    Gone(String),
}

/// The daemon's end of the socketpair: read by its own thread ([`KeeperLink::listen`]), written
/// by any, through the [`Outbox`]. The socket is non-blocking, so no thread ever waits on the
/// keeper.
pub struct KeeperLink {
    socket: OwnedFd,
    keeper_pid: u32,
    outbox: Arc<Outbox>,
}

impl KeeperLink {
    /// Takes the socket named by [`wire::KEEPER_FD_ENV`] and reads the keeper's replay; `None`
    /// when the variable is not set, that is when this process is not a keeper's daemon.
    pub fn from_env() -> Option<Result<(KeeperLink, Handshake), LinkError>> {
        let socket = match inherited_fd(wire::KEEPER_FD_ENV) {
            Ok(socket) => socket?,
            Err(e) => return Some(Err(e.into())),
        };
        Some(Self::connect(socket))
    }

    /// Makes `socket` non-blocking, reads the replay and starts the outbox's thread.
    fn connect(socket: OwnedFd) -> Result<(KeeperLink, Handshake), LinkError> {
        fcntl(socket.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| LinkError::Outbox(e.into()))?;
        let handshake = replay(&socket)?;
        let kept = handshake.outputs.keys().cloned().collect();
        let outbox = socket
            .try_clone()
            .and_then(|copy| Outbox::start(copy, kept))
            .map_err(LinkError::Outbox)?;
        let link = KeeperLink {
            socket,
            keeper_pid: handshake.keeper_pid,
            outbox,
        };
        Ok((link, handshake))
    }

    pub fn keeper_pid(&self) -> u32 {
        self.keeper_pid
    }

    /// Reads the keeper's messages on a thread of its own until it goes away.
    pub fn listen(
        self: &std::sync::Arc<Self>,
        on: impl Fn(Incoming) + Send + 'static,
    ) -> io::Result<()> {
        let this = self.clone();
        std::thread::Builder::new()
            .name("keeper-link".into())
            .spawn(move || loop {
                if let Err(e) = wait_for(&this.socket, PollFlags::POLLIN, None) {
                    return on(Incoming::Gone(format!(
                        "cannot wait for the keeper (pid {}): {e}",
                        this.keeper_pid
                    )));
                }
                match wire::recv::<ToDaemon>(this.socket.as_fd()) {
                    Ok(Some((ToDaemon::Exit(record), _))) => {
                        match ProcessExit::from_record(&record) {
                            Some(exit) => on(Incoming::Exit(exit)),
                            None => this.ack(record.seq),
                        }
                    }
                    Ok(Some((ToDaemon::Synced, _))) => on(Incoming::Synced),
                    Ok(Some((ToDaemon::Handover, _))) => on(Incoming::Handover),
                    Ok(Some((other, _))) => {
                        log::warn!("the keeper sent {other:?} after its replay; ignored");
                    }
                    Ok(None) => {
                        return on(Incoming::Gone(format!(
                            "the keeper (pid {}) closed its connection",
                            this.keeper_pid
                        )))
                    }
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        log::warn!("undecodable message from the keeper: {e}");
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        return on(Incoming::Gone(format!(
                            "cannot read from the keeper (pid {}): {e}",
                            this.keeper_pid
                        )))
                    }
                }
            })
            .map(drop)
    }

    /// Tells the keeper the daemon serves: from now on it restarts a daemon that dies.
    pub fn ready(&self) {
        self.tell(ToKeeper::Ready);
    }

    /// The container whose pipes the keeper holds under `token` is gone.
    pub fn release(&self, token: String) {
        self.tell(ToKeeper::Release { token });
    }

    /// The exit the keeper numbered `seq` is dealt with.
    pub fn ack(&self, seq: u64) {
        self.tell(ToKeeper::Ack { seq });
    }

    /// Waits up to `within` for what the outbox holds to reach the keeper, before the daemon
    /// exits; says whether it did. An acknowledgement that does not is an exit replayed to the
    /// next daemon, which finds it in the journal.
    pub fn flushed(&self, within: Duration) -> bool {
        self.outbox.flushed(within)
    }

    /// Asks the keeper to answer [`Incoming::Synced`] once every exit it has reaped so far is
    /// on its way (see [`crate::recovery`]). An error means the keeper is gone and the answer
    /// will not come.
    pub fn sync(&self) -> io::Result<()> {
        self.outbox.tell(ToKeeper::Sync, Vec::new())
    }

    /// Sends or queues `message`; a keeper that is gone is the reader's to report.
    fn tell(&self, message: ToKeeper) {
        let _ = self.outbox.tell(message, Vec::new());
    }
}

impl OutputKeeper for KeeperLink {
    /// Queues copies of the read ends for the keeper: the worker goes on at once.
    fn keep(&self, token: &str, pipes: &RelayPipes) -> io::Result<()> {
        let message = ToKeeper::Keep {
            token: token.to_string(),
        };
        let fds = vec![pipes.stdout.try_clone()?, pipes.stderr.try_clone()?];
        self.outbox.tell(message, fds)
    }
}

/// Reads the keeper's hello, kept outputs and unacknowledged exits, up to its `ReplayDone`.
fn replay(socket: &OwnedFd) -> Result<Handshake, LinkError> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let next = || -> Result<(ToDaemon, Vec<OwnedFd>), LinkError> {
        loop {
            if !wait_for(socket, PollFlags::POLLIN, Some(deadline))? {
                return Err(LinkError::TimedOut);
            }
            match wire::recv::<ToDaemon>(socket.as_fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                received => return received?.ok_or(LinkError::Closed),
            }
        }
    };
    let keeper_pid = match next()? {
        (ToDaemon::Hello { keeper_pid }, _) => keeper_pid,
        (other, _) => return Err(LinkError::NoHello(Box::new(other))),
    };
    let mut handshake = Handshake {
        keeper_pid,
        outputs: HashMap::new(),
        exits: Vec::new(),
    };
    loop {
        match next()? {
            (ToDaemon::ReplayDone, _) => return Ok(handshake),
            (ToDaemon::Exit(record), _) => match ProcessExit::from_record(&record) {
                Some(exit) => handshake.exits.push(exit),
                None => log::warn!("the keeper replayed exit {record:?}, which is no exit"),
            },
            (ToDaemon::Outputs { token }, fds) => {
                let mut fds = fds.into_iter();
                match (fds.next(), fds.next()) {
                    (Some(stdout), Some(stderr)) => {
                        handshake
                            .outputs
                            .insert(token, RelayPipes { stdout, stderr });
                    }
                    _ => log::warn!("the keeper replayed outputs {token} without their pipes"),
                }
            }
            (other, _) => log::warn!("the keeper sent {other:?} during its replay; ignored"),
        }
    }
}

/// Waits until the socket is ready for `events` (or has failed, which the next call on it
/// reports); `false` when `deadline` passed first.
fn wait_for(socket: &OwnedFd, events: PollFlags, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let timeout = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let mut fds = [PollFd::new(socket.as_fd(), events)];
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
