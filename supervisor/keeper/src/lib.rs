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
//! - `child`: the daemon the keeper runs as its child: starting and restarting it, its socket;
//! - `upgrade`: SIGHUP, the hand-over and the re-exec from the binary on disk;
//! - `exitlog`: the exit log on disk (its records framed by [`crclog`]);
//! - `reap`: the keeper's `waitid`/`waitpid` calls.

mod child;
mod exitlog;
pub mod handoff;
mod reap;
mod upgrade;
pub mod wire;

pub use self::reap::clock_ns;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use self::child::{signal_daemon, Backoff, Daemon};
use self::exitlog::{ExitLog, Reaped};
use self::handoff::{take_outputs, OUTPUTS_FILE};
use self::reap::{describe, next_zombie, reap_pid};
use self::upgrade::HANDOVER_WAIT;
use self::wire::ToDaemon;

/// The exit log's name in the state dir.
const EXIT_LOG: &str = "keeper-exits.log";

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
}
