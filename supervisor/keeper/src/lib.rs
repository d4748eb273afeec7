//! The keeper: the small process that outlives the daemon.
//!
//! `ctrd` starts as the keeper. It is the child subreaper, so every container ends up its child;
//! it reaps every exit, logs it (fsync'd) in `exitlog`, and streams it to the daemon, which it
//! runs as its own child (the same binary, re-executed with [`wire::KEEPER_FD_ENV`] set). When
//! the daemon crashes the keeper goes on reaping and starts a new one, which gets every exit it
//! has not acknowledged and every container output the keeper holds. On SIGHUP the keeper hands
//! over: the daemon exits, the keeper re-executes itself from the binary on disk (an upgrade),
//! and the new keeper starts a new daemon. Containers are never signalled from here.
//!
//! The keeper has no threads and no async runtime: one `poll` loop over a signalfd and the
//! daemon's socket, so nothing in it can stall on a lock or on the daemon. It is a crate of its
//! own so that Cargo holds it to that: neither tokio nor actix is among its dependencies.
//!
//! - [`wire`]: what the keeper and the daemon say to each other, which both ends use (the daemon's
//!   end of the socket is `keeper_link` in the `ctrd` daemon);
//! - [`handoff`]: the descriptors handed down across `exec`, to a daemon or a re-executed keeper;
//! - `exitlog`: the exit log on disk (its records framed by [`crclog`]);
//! - `reap`: the keeper's `waitid`/`waitpid` calls.

mod exitlog;
pub mod handoff;
mod reap;
pub mod wire;

pub use self::reap::clock_ns;

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;

use self::exitlog::{ExitLog, Reaped};
use self::handoff::{exec, outputs_lines, set_cloexec, take_outputs, OUTPUTS_FILE};
use self::reap::{describe, exit_code, next_zombie, reap_pid};
use self::wire::{ToDaemon, ToKeeper, KEEPER_FD_ENV, LISTEN_FD_ENV};

/// The exit log's name in the state dir.
const EXIT_LOG: &str = "keeper-exits.log";

/// How long a daemon gets to hand over on SIGHUP before it is killed.
const HANDOVER_WAIT: Duration = Duration::from_secs(60);

/// The first restart delay after a crash; it doubles with each crash, up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A daemon that ran this long before it crashed restarts after `MIN_BACKOFF` again.
const STABLE_RUN: Duration = Duration::from_secs(30);

/// What `main` has set up for the keeper.
pub struct KeeperSettings {
    /// The state dir: the exit log is `<state>/keeper-exits.log`, the outputs hand-off file for a
    /// re-exec `<state>/keeper-outputs`.
    pub state_dir: PathBuf,
    /// The bound, listening client socket; handed to each daemon (and across a re-exec) through
    /// LISTEN_FD_ENV so clients queue in its backlog while a daemon restarts.
    pub listener: OwnedFd,
    pub restart: RestartPolicy,
    /// This keeper was re-executed by another (an upgrade), which left the output pipes it held
    /// open and named them in `<state>/keeper-outputs`.
    pub reexecuted: bool,
}

/// What the keeper does when the daemon crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestartPolicy {
    /// Start a new daemon, after a delay that grows while it keeps crashing.
    OnFailure,
    /// Exit 1, leaving the containers running and their exits in the log.
    Never,
}

/// Runs the keeper until the daemon has shut down for good; returns the exit code for the process.
/// Called by the daemon crate's `keep` BEFORE any thread exists, after logging, rlimits, PR_SET_CHILD_SUBREAPER, the
/// state dirs and the socket bind are done.
pub fn run(settings: KeeperSettings) -> ExitCode {
    match Keeper::new(settings) {
        Ok(mut keeper) => keeper.serve(),
        Err(e) => {
            log::error!("keeper: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the keeper is doing about its daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// SIGTERM/SIGINT was passed on: when the daemon exits, so does the keeper.
    Stopping,
    /// SIGHUP: the daemon was told to hand over; `deadline` is when it gets SIGKILL (`None`
    /// once it has).
    Upgrading {
        deadline: Option<Instant>,
    },
}

/// The running daemon, as the keeper sees it.
struct Daemon {
    pid: u32,
    /// `None` once the daemon closed its end (or it failed): the keeper then only waits for
    /// its exit.
    socket: Option<OwnedFd>,
    /// Messages not yet sent, with (copies of) the descriptors they carry: a daemon that does
    /// not read must never block the keeper. Bounded by what the keeper holds anyway: the
    /// replay (one message per kept output and per unacknowledged exit), then one `Exit` per
    /// process reaped since, each unacknowledged in the exit log until the daemon has read it,
    /// and at most one `Handover`.
    outbox: VecDeque<(ToDaemon, Vec<OwnedFd>)>,
    /// The daemon said it serves; one that dies before that failed to start.
    ready: bool,
    started_at: Instant,
}

/// The restart delay after a crash.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
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

struct Keeper {
    state_dir: PathBuf,
    listener: OwnedFd,
    restart: RestartPolicy,
    /// The binary as it was when this keeper started: an upgrade replaces the file at this path,
    /// and the re-exec must run the new one.
    exe: PathBuf,
    signals: SignalFd,
    exits: ExitLog,
    /// The read ends of containers' stdout and stderr pipes, held for the daemon by token.
    outputs: HashMap<String, [OwnedFd; 2]>,
    daemon: Option<Daemon>,
    phase: Phase,
    backoff: Backoff,
    /// When to start the next daemon, after a crash.
    restart_at: Option<Instant>,
}

impl Keeper {
    fn new(settings: KeeperSettings) -> io::Result<Keeper> {
        let exe = std::env::current_exe()?;
        let mut mask = SigSet::empty();
        for signal in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGUSR1,
        ] {
            mask.add(signal);
        }
        mask.thread_block()?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let exits = ExitLog::open(&settings.state_dir.join(EXIT_LOG))?;
        let outputs = if settings.reexecuted {
            take_outputs(&settings.state_dir.join(OUTPUTS_FILE))
        } else {
            HashMap::new()
        };
        Ok(Keeper {
            state_dir: settings.state_dir,
            listener: settings.listener,
            restart: settings.restart,
            exe,
            signals,
            exits,
            outputs,
            daemon: None,
            phase: Phase::Running,
            backoff: Backoff::new(),
            restart_at: None,
        })
    }

    /// The main loop: returns when the keeper should exit.
    fn serve(&mut self) -> ExitCode {
        // Zombies may already wait (after a re-exec they certainly do): reap them before a
        // daemon exists, so they are in the replay.
        if let Some(code) = self.reap() {
            return code;
        }
        if let Some(code) = self.start_daemon() {
            return code;
        }
        loop {
            let (signals_ready, socket_events) = match self.wait() {
                Ok(ready) => ready,
                Err(e) => {
                    log::error!("keeper: poll: {e}");
                    continue;
                }
            };
            if let Some(code) = self.on_timers() {
                return code;
            }
            if signals_ready {
                if let Some(code) = self.on_signals() {
                    return code;
                }
            }
            if let Some(events) = socket_events {
                if events.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                    self.receive();
                }
            }
            self.flush();
        }
    }

    /// Polls the signalfd and the daemon's socket until one is ready or a timer is due; says
    /// whether signals wait and what the socket is ready for.
    fn wait(&self) -> nix::Result<(bool, Option<PollFlags>)> {
        let deadline = match self.phase {
            Phase::Upgrading { deadline } => deadline.into_iter().chain(self.restart_at).min(),
            _ => self.restart_at,
        };
        let timeout = match deadline {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                // Rounded up, so the loop does not spin until the deadline.
                PollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        let socket = self.daemon.as_ref().and_then(|d| {
            let socket = d.socket.as_ref()?;
            let mut flags = PollFlags::POLLIN;
            if !d.outbox.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            Some(PollFd::new(socket.as_fd(), flags))
        });
        fds.extend(socket);
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => return Ok((false, None)),
            Err(e) => return Err(e),
        }
        let signals = fds[0].any().unwrap_or(false);
        let socket = fds.get(1).and_then(|fd| fd.revents());
        Ok((signals, socket))
    }

    /// Starts the daemon whose restart delay is over; kills the one whose handover is late.
    fn on_timers(&mut self) -> Option<ExitCode> {
        let now = Instant::now();
        if self.restart_at.is_some_and(|at| at <= now) {
            self.restart_at = None;
            return self.start_daemon();
        }
        if let Phase::Upgrading { deadline: Some(at) } = self.phase {
            if at <= now {
                if let Some(daemon) = &self.daemon {
                    log::warn!(
                        "ctrd daemon (pid {}) did not hand over within {HANDOVER_WAIT:?}; killing it",
                        daemon.pid
                    );
                    signal_daemon(daemon.pid, Signal::SIGKILL);
                }
                self.phase = Phase::Upgrading { deadline: None };
            }
        }
        None
    }

    fn on_signals(&mut self) -> Option<ExitCode> {
        loop {
            let info = match self.signals.read_signal() {
                Ok(Some(info)) => info,
                Ok(None) => return None,
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    log::error!("keeper: reading signals: {e}");
                    return None;
                }
            };
            let code = match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap(),
                Ok(signal @ (Signal::SIGTERM | Signal::SIGINT)) => self.stop(signal),
                Ok(Signal::SIGHUP) => self.upgrade(),
                Ok(Signal::SIGUSR1) => self.pass_on_dump_request(),
                _ => None,
            };
            if code.is_some() {
                return code;
            }
        }
    }

    /// SIGTERM/SIGINT: the daemon shuts down (stopping the containers) and the keeper with it.
    fn stop(&mut self, signal: Signal) -> Option<ExitCode> {
        let Some(daemon) = &self.daemon else {
            log::info!("{signal}: no daemon is running; the keeper exits");
            return Some(ExitCode::SUCCESS);
        };
        log::info!(
            "{signal}: passing it on to the ctrd daemon (pid {})",
            daemon.pid
        );
        signal_daemon(daemon.pid, signal);
        self.phase = Phase::Stopping;
        None
    }

    /// SIGUSR1 asks for the daemon's state dump (in its log); an operator sends it to the pid
    /// systemd knows, which is the keeper's.
    fn pass_on_dump_request(&mut self) -> Option<ExitCode> {
        match &self.daemon {
            Some(daemon) => signal_daemon(daemon.pid, Signal::SIGUSR1),
            None => log::info!("SIGUSR1: no daemon is running to dump its state"),
        }
        None
    }

    /// SIGHUP: the daemon hands over, then the keeper re-executes itself from the binary on
    /// disk and starts a new daemon.
    fn upgrade(&mut self) -> Option<ExitCode> {
        if self.phase != Phase::Running {
            log::info!("SIGHUP: ignored while the daemon is stopping or handing over");
            return None;
        }
        let Some(daemon) = &mut self.daemon else {
            log::info!(
                "SIGHUP: no daemon is running; re-executing {}",
                self.exe.display()
            );
            self.reexec();
            self.restart_at = None;
            return self.start_daemon();
        };
        log::info!(
            "SIGHUP: asking the ctrd daemon (pid {}) to hand over",
            daemon.pid
        );
        daemon.outbox.push_back((ToDaemon::Handover, Vec::new()));
        self.phase = Phase::Upgrading {
            deadline: Some(Instant::now() + HANDOVER_WAIT),
        };
        None
    }

    /// Reaps every zombie child: logs the containers' exits in one batch and queues them to the
    /// daemon, then deals with the daemon's own exit if it is among them.
    fn reap(&mut self) -> Option<ExitCode> {
        let daemon_pid = self.daemon.as_ref().map(|d| d.pid);
        let mut batch = Vec::new();
        let mut daemon_status = None;
        while let Some(pid) = next_zombie() {
            // Read while it is a zombie: once reaped, the pid may belong to someone else.
            let start_time = runtime::procstat::start_time(pid).ok();
            let Some(status) = reap_pid(pid) else {
                break;
            };
            if Some(pid) == daemon_pid {
                daemon_status = Some(status);
                continue;
            }
            log::debug!("keeper: reaped pid {pid} ({})", describe(status));
            batch.push(Reaped {
                pid,
                start_time,
                status,
                wall_ns: clock_ns(libc::CLOCK_REALTIME),
                mono_ns: clock_ns(libc::CLOCK_MONOTONIC),
            });
        }
        if !batch.is_empty() {
            let records = self.exits.append(&batch);
            if let Some(daemon) = self.daemon.as_mut().filter(|d| d.socket.is_some()) {
                let queued = records.into_iter().map(|r| (ToDaemon::Exit(r), Vec::new()));
                daemon.outbox.extend(queued);
            }
        }
        daemon_status.and_then(|status| self.daemon_exited(status))
    }

    /// What the daemon's exit means: an upgrade, the end, or a crash to recover from.
    fn daemon_exited(&mut self, status: i32) -> Option<ExitCode> {
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
    fn start_daemon(&mut self) -> Option<ExitCode> {
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
    fn receive(&mut self) {
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
    fn flush(&mut self) {
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

    /// Replaces this process with the binary on disk, keeping the listener, the outputs, the
    /// zombies and the pending signals. Returns only if that failed (logged); the caller then
    /// starts a daemon as after a crash.
    fn reexec(&mut self) {
        if let Err(e) = self.exits.compact() {
            log::warn!("cannot compact the exit log before re-executing: {e}");
        }
        let outputs_file = self.state_dir.join(OUTPUTS_FILE);
        let kept: Vec<RawFd> = self
            .outputs
            .values()
            .flatten()
            .map(|fd| fd.as_raw_fd())
            .collect();
        let result = fs::write(&outputs_file, outputs_lines(&self.outputs))
            .and_then(|()| set_cloexec(&kept, false))
            .and_then(|()| set_cloexec(&[self.listener.as_raw_fd()], false))
            .and_then(|()| exec(&self.exe, self.listener.as_raw_fd()));
        let Err(e) = result;
        log::error!(
            "cannot re-execute {}: {e}; starting a new daemon from the running binary",
            self.exe.display()
        );
        // Whatever the daemon is given from here on, the outputs are not among it.
        if let Err(e) = set_cloexec(&kept, true) {
            log::error!("keeper: cannot close outputs on exec: {e}");
        }
        let _ = fs::remove_file(&outputs_file);
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

fn signal_daemon(pid: u32, signal: Signal) {
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
