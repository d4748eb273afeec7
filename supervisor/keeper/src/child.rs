//! The daemon the keeper runs as its child: starting it (and again after a crash, with a growing
//! delay), its socket (the replay, then exits out and acknowledgements in, never blocking the
//! keeper), and what its exit means.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;

use crate::exitlog::ExitLog;
use crate::reap::{describe, exit_code};
use crate::wire::{self, ToDaemon, ToKeeper, KEEPER_FD_ENV, LISTEN_FD_ENV};
use crate::{Keeper, Phase, RestartPolicy};

/// The first restart delay after a crash; it doubles with each crash, up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A daemon that ran this long before it crashed restarts after `MIN_BACKOFF` again.
const STABLE_RUN: Duration = Duration::from_secs(30);

/// The running daemon, as the keeper sees it.
pub(crate) struct Daemon {
    pub(crate) pid: u32,
    /// `None` once the daemon closed its end (or it failed): the keeper then only waits for
    /// its exit.
    pub(crate) socket: Option<OwnedFd>,
    /// Messages not yet sent, with (copies of) the descriptors they carry: a daemon that does
    /// not read must never block the keeper. Bounded by what the keeper holds anyway: the
    /// replay (one message per kept output and per unacknowledged exit), then one `Exit` per
    /// process reaped since, each unacknowledged in the exit log until the daemon has read it,
    /// and at most one `Handover`.
    pub(crate) outbox: VecDeque<(ToDaemon, Vec<OwnedFd>)>,
    /// The daemon said it serves; one that dies before that failed to start.
    ready: bool,
    started_at: Instant,
}

/// The restart delay after a crash.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { next: MIN_BACKOFF }
    }

    /// The delay before restarting a daemon that crashed after running for `ran`.
    fn after_crash(&mut self, ran: Duration) -> Duration {
        if ran >= STABLE_RUN {
            self.next = MIN_BACKOFF;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        delay
    }
}

impl Keeper {
    /// What the daemon's exit means: an upgrade, the end, or a crash to recover from.
    pub(crate) fn daemon_exited(&mut self, status: i32) -> Option<ExitCode> {
        // What it sent before it died is still in the socket: an Ack there saves a replay.
        self.receive();
        let daemon = self.daemon.take()?;
        let code = exit_code(status);
        match self.phase {
            Phase::Upgrading { .. } => {
                log::info!(
                    "ctrd daemon (pid {}) handed over ({}); re-executing {}",
                    daemon.pid,
                    describe(status),
                    self.exe.display()
                );
                self.reexec();
                self.phase = Phase::Running;
                self.start_daemon()
            }
            Phase::Stopping => {
                log::info!(
                    "ctrd daemon (pid {}) stopped ({})",
                    daemon.pid,
                    describe(status)
                );
                Some(ExitCode::from(code))
            }
            Phase::Running if status == 0 => {
                log::info!(
                    "ctrd daemon (pid {}) exited 0; the keeper exits",
                    daemon.pid
                );
                Some(ExitCode::SUCCESS)
            }
            Phase::Running if !daemon.ready => {
                log::error!(
                    "ctrd daemon (pid {}) failed to start ({}); not restarting it",
                    daemon.pid,
                    describe(status)
                );
                Some(ExitCode::from(code))
            }
            Phase::Running => self.daemon_crashed(&daemon, status),
        }
    }

    fn daemon_crashed(&mut self, daemon: &Daemon, status: i32) -> Option<ExitCode> {
        if self.restart == RestartPolicy::Never {
            log::error!(
                "ctrd daemon (pid {}) died ({}); not restarting it (--restart never)",
                daemon.pid,
                describe(status)
            );
            return Some(ExitCode::FAILURE);
        }
        let delay = self.backoff.after_crash(daemon.started_at.elapsed());
        log::error!(
            "ctrd daemon (pid {}) died ({}); starting a new one in {delay:?}",
            daemon.pid,
            describe(status)
        );
        self.restart_at = Some(Instant::now() + delay);
        None
    }

    /// Starts a daemon and queues its replay: what the keeper holds and every exit it has not
    /// acknowledged. A daemon that cannot even be spawned is a failed start.
    pub(crate) fn start_daemon(&mut self) -> Option<ExitCode> {
        match self.spawn_daemon() {
            Ok(daemon) => {
                log::info!("started the ctrd daemon (pid {})", daemon.pid);
                self.daemon = Some(daemon);
                None
            }
            Err(e) => {
                log::error!("cannot start the ctrd daemon: {e}");
                Some(ExitCode::FAILURE)
            }
        }
    }

    fn spawn_daemon(&self) -> io::Result<Daemon> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        fcntl(ours.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let inherited = [theirs.as_raw_fd(), self.listener.as_raw_fd()];
        let mut args = std::env::args_os();
        let mut command = Command::new("/proc/self/exe");
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        command
            .args(args)
            .env(KEEPER_FD_ENV, theirs.as_raw_fd().to_string())
            .env(LISTEN_FD_ENV, self.listener.as_raw_fd().to_string());
        // SAFETY: the closure only calls sigemptyset, sigprocmask and fcntl, which are
        // async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                // The child inherits the keeper's blocked signals; the daemon needs them.
                let mut none = std::mem::zeroed::<libc::sigset_t>();
                libc::sigemptyset(&mut none);
                if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) < 0 {
                    return Err(io::Error::last_os_error());
                }
                for fd in inherited {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        let mut outbox = VecDeque::new();
        outbox.push_back((
            ToDaemon::Hello {
                keeper_pid: std::process::id(),
            },
            Vec::new(),
        ));
        for (token, fds) in &self.outputs {
            let copies = vec![fds[0].try_clone()?, fds[1].try_clone()?];
            outbox.push_back((
                ToDaemon::Outputs {
                    token: token.clone(),
                },
                copies,
            ));
        }
        outbox.extend(
            self.exits
                .unacked()
                .map(|r| (ToDaemon::Exit(*r), Vec::new())),
        );
        outbox.push_back((ToDaemon::ReplayDone, Vec::new()));
        Ok(Daemon {
            pid: child.id(),
            socket: Some(ours),
            outbox,
            ready: false,
            started_at: Instant::now(),
        })
    }

    /// Takes every message the daemon has sent.
    pub(crate) fn receive(&mut self) {
        let Some(daemon) = self.daemon.as_mut() else {
            return;
        };
        while let Some(socket) = &daemon.socket {
            match wire::recv::<ToKeeper>(socket.as_fd()) {
                Ok(Some((message, fds))) => {
                    handle(message, fds, daemon, &mut self.outputs, &mut self.exits)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    log::warn!(
                        "ctrd daemon (pid {}) sent an undecodable message: {e}",
                        daemon.pid
                    )
                }
                // A daemon that exits with messages unread resets the connection.
                Ok(None) => close(daemon, "closed its end"),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    close(daemon, "closed its end")
                }
                Err(e) => close(daemon, &format!("socket failed: {e}")),
            }
        }
    }

    /// Sends what the outbox holds until the socket is full.
    pub(crate) fn flush(&mut self) {
        let Some(daemon) = self.daemon.as_mut() else {
            return;
        };
        while let (Some(socket), Some((message, fds))) = (&daemon.socket, daemon.outbox.front()) {
            let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
            match wire::send(socket.as_fd(), message, &raw) {
                Ok(()) => {
                    daemon.outbox.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => close(daemon, "closed its end"),
                Err(e) => close(daemon, &format!("socket failed: {e}")),
            }
        }
    }
}

/// One message from the daemon.
fn handle(
    message: ToKeeper,
    fds: Vec<OwnedFd>,
    daemon: &mut Daemon,
    outputs: &mut HashMap<String, [OwnedFd; 2]>,
    exits: &mut ExitLog,
) {
    match message {
        ToKeeper::Ready => {
            log::info!("ctrd daemon (pid {}) is ready", daemon.pid);
            daemon.ready = true;
        }
        ToKeeper::Keep { token } => match <[OwnedFd; 2]>::try_from(fds) {
            Ok(pair) => {
                outputs.insert(token, pair);
            }
            Err(fds) => log::warn!(
                "ctrd daemon (pid {}) sent {} descriptors to keep for {token}, not 2",
                daemon.pid,
                fds.len()
            ),
        },
        ToKeeper::Release { token } => {
            outputs.remove(&token);
        }
        ToKeeper::Ack { seq } => exits.ack(seq),
        // A reap pass queues its whole batch before the loop reads the socket again, so every
        // exit reaped before this message was read is already in the outbox ahead of the answer.
        ToKeeper::Sync => daemon.outbox.push_back((ToDaemon::Synced, Vec::new())),
    }
}

/// Drops the keeper's end of a daemon's socket; its exit still arrives as SIGCHLD.
fn close(daemon: &mut Daemon, why: &str) {
    log::info!(
        "ctrd daemon (pid {}) {why}; waiting for it to exit",
        daemon.pid
    );
    daemon.socket = None;
    daemon.outbox.clear();
}

pub(crate) fn signal_daemon(pid: u32, signal: Signal) {
    if let Err(e) = kill(Pid::from_raw(pid as i32), signal) {
        log::warn!("cannot send {signal} to the ctrd daemon (pid {pid}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_after_a_stable_run() {
        let mut backoff = Backoff::new();
        let short = Duration::from_secs(1);
        let delays: Vec<Duration> = (0..8).map(|_| backoff.after_crash(short)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            delays,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(5000),
                ms(5000)
            ]
        );
        assert_eq!(backoff.after_crash(STABLE_RUN), MIN_BACKOFF);
        assert_eq!(backoff.after_crash(short), ms(200));
    }
}
