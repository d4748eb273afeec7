//! `ctrd`: the container supervisor daemon.
//!
//! Start-up runs in a fixed order: everything that is process-wide (rlimits, the subreaper bit,
//! the socket's umask, the SIGCHLD handler) happens before any thread or the event loop starts.
//! Shutdown has a written order too, in [`shutdown`].

mod access;
mod cli;
mod config;
mod container;
mod dump;
mod journal;
mod keeper;
mod metrics;
mod notify;
mod oom;
mod priority;
mod reaper;
mod server;
mod socket;
mod stats;
mod stream;
mod subscribers;
mod supervisor;

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter};
use clap::Parser;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use runtime::{Namespace, Runc, StateDir};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;
use worker::{Pool, Priority};

use crate::access::Access;
use crate::cli::Args;
use crate::journal::Journal;
use crate::keeper::wire::{KEEPER_FD_ENV, LISTEN_FD_ENV};
use crate::keeper::KeeperSettings;
use crate::reaper::Reaper;
use crate::server::Limits;
use crate::supervisor::{CloseSubscriptions, ExitMsg, Shutdown, Supervisor, WaitEmpty};

/// How long containers get after KILL, once the grace period is over, before ctrd gives up on them.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Where scripts/install-criu.sh puts its CRIU wrapper.
const INSTALLED_CRIU: &str = "/opt/ctrd-criu/criu";

/// How long subscribers get to take their last events at shutdown.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
enum DaemonError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot become child subreaper: {0}")]
    Subreaper(nix::Error),
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
    #[error("--group: {0}")]
    Access(#[from] access::AccessError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("cannot start {what}: {source}")]
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot listen for metrics scrapes on {address}: {source}")]
    MetricsAddress {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("event loop: {0}")]
    EventLoop(std::io::Error),
    #[error("{LISTEN_FD_ENV}={value:?} is not an open socket's descriptor")]
    ListenFd { value: String },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(command) = &args.command {
        return cli::run(command);
    }
    let args = match config::load(args) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("ctrd: {err}");
            return ExitCode::FAILURE;
        }
    };
    let level = if args.debug { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    if std::env::var_os(KEEPER_FD_ENV).is_none() {
        return match keeper_settings(&args) {
            Ok(settings) => keeper::run(settings),
            Err(err) => {
                log::error!("{err}");
                eprintln!("ctrd: {err}");
                ExitCode::FAILURE
            }
        };
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err}");
            eprintln!("ctrd: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), DaemonError> {
    let notifier = notify::Notifier::from_env().unwrap_or_else(|e| {
        log::warn!("{e}");
        None
    });
    raise_nofile_limit();
    nix::sys::prctl::set_child_subreaper(true).map_err(DaemonError::Subreaper)?;
    let state = StateDir::new(&args.state_dir);
    for dir in [
        state.path().to_path_buf(),
        state.runc_base(),
        state.runc_logs(),
    ] {
        std::fs::create_dir_all(&dir)
            .map_err(|source| DaemonError::StateDir { path: dir, source })?;
    }
    let socket_path = args
        .socket
        .clone()
        .unwrap_or_else(|| state.path().join("ctrd.sock"));
    let access = Access::new(args.group.as_deref())?;
    let listener = socket::bind(&socket_path, access.group())?;
    listener
        .set_nonblocking(true)
        .map_err(|source| DaemonError::Thread {
            what: "the socket server",
            source,
        })?;

    let metrics_listener = args
        .metrics_address
        .map(|address| {
            std::net::TcpListener::bind(address)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| DaemonError::MetricsAddress { address, source })
        })
        .transpose()?;

    // Exits can arrive before the actor exists; they wait in this channel until it does.
    let (exit_tx, exit_rx) = crossbeam_channel::unbounded();
    let reaper = Reaper::start(args.server_nice, move |exit| {
        let _ = exit_tx.send(exit);
    })
    .map_err(|source| DaemonError::Thread {
        what: "the reaper",
        source,
    })?;
    let criu = args.criu.clone().unwrap_or_else(default_criu);
    let runc = Arc::new(
        Runc::new(&args.runtime, state.clone(), reaper)
            .with_timeout(args.runtime_timeout)
            .with_criu(&criu),
    );
    let pool = Arc::new(
        Pool::new(usize::from(args.concurrency), runc).map_err(|source| DaemonError::Thread {
            what: "the worker pool",
            source,
        })?,
    );
    let _ = pool.submit(Priority::Normal, report_leftovers);
    // Every thread created from here on (the event loop is this one; the actor's, the exit
    // forwarder's) inherits this; the workers above keep the daemon's own priority.
    if let Err(e) = priority::set_this_thread(args.server_nice) {
        log::warn!(
            "cannot set the server's nice value to {}: {e}",
            args.server_nice
        );
    }
    let (journal, last_seq) = Journal::open(
        &state.events_dir(),
        args.events_retention,
        args.subscriber_queue as usize,
    )?;

    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let listener =
            tokio::net::UnixListener::from_std(listener).map_err(DaemonError::EventLoop)?;
        let usr1 = dump::listen().map_err(DaemonError::EventLoop)?;
        // The actor gets a thread of its own, so socket traffic never delays its handlers.
        let arbiter = Arbiter::new();
        let sup = Supervisor::new(state, pool, journal, last_seq).oom_notify(!args.no_oom_notify);
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| sup);
        forward_exits(exit_rx, addr.clone())?;
        actix_rt::spawn(dump::log_on(usr1, addr.clone()));
        if !args.metrics_interval.is_zero() {
            actix_rt::spawn(metrics::log_every(addr.clone(), args.metrics_interval));
        }
        if let Some(listener) = metrics_listener {
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(DaemonError::EventLoop)?;
            if let Ok(address) = listener.local_addr() {
                log::info!("serving Prometheus metrics at http://{address}/metrics");
            }
            actix_rt::spawn(metrics::prometheus::serve(listener, addr.clone()));
        }
        let (drain, mut drained) = tokio::sync::mpsc::channel(1);
        let server = actix_rt::spawn(server::serve(
            listener,
            addr.clone(),
            Limits {
                max_frame: args.max_frame_size,
                idle_timeout: args.idle_timeout,
                max_connections: args.max_connections as usize,
            },
            access,
            drain,
        ));
        if let Some(notifier) = notifier.clone() {
            notifier
                .ready_when_serving(socket_path.clone())
                .map_err(|source| DaemonError::Thread {
                    what: "the readiness probe",
                    source,
                })?;
        }
        log::info!(
            "ctrd {} serving on {} (runtime {}, criu {}, {} workers)",
            protocol::VERSION,
            socket_path.display(),
            args.runtime.display(),
            criu.display(),
            args.concurrency
        );
        wait_for_termination()
            .await
            .map_err(DaemonError::EventLoop)?;
        if let Some(notifier) = &notifier {
            if let Err(e) = notifier.notify("STOPPING=1") {
                log::warn!("{e}");
            }
        }
        server.abort();
        shutdown(&addr, args.shutdown_timeout).await;
        if addr.send(CloseSubscriptions).await.is_ok()
            && tokio::time::timeout(DRAIN_WAIT, drained.recv())
                .await
                .is_err()
        {
            log::warn!("subscribers did not take their last events within {DRAIN_WAIT:?}");
        }
        if let Err(e) = std::fs::remove_file(&socket_path) {
            log::warn!("cannot remove {}: {e}", socket_path.display());
        }
        arbiter.stop();
        log::info!("ctrd stopped");
        Ok(())
    });
    result
}

/// Everything process-wide the keeper needs before it starts: the state dirs, the subreaper bit
/// and the listening socket (bound here, or inherited from the keeper that re-executed this one).
fn keeper_settings(args: &Args) -> Result<KeeperSettings, DaemonError> {
    raise_nofile_limit();
    nix::sys::prctl::set_child_subreaper(true).map_err(DaemonError::Subreaper)?;
    let state = StateDir::new(&args.state_dir);
    for dir in [
        state.path().to_path_buf(),
        state.runc_base(),
        state.runc_logs(),
    ] {
        std::fs::create_dir_all(&dir)
            .map_err(|source| DaemonError::StateDir { path: dir, source })?;
    }
    let listener = match std::env::var(LISTEN_FD_ENV) {
        Ok(value) => inherited_listener(&value)?,
        Err(_) => {
            let socket_path = args
                .socket
                .clone()
                .unwrap_or_else(|| state.path().join("ctrd.sock"));
            let access = Access::new(args.group.as_deref())?;
            OwnedFd::from(socket::bind(&socket_path, access.group())?)
        }
    };
    Ok(KeeperSettings {
        state_dir: state.path().to_path_buf(),
        listener,
        restart: args.restart,
    })
}

/// The listening socket a re-executing keeper handed over by number.
fn inherited_listener(value: &str) -> Result<OwnedFd, DaemonError> {
    let bad = || DaemonError::ListenFd {
        value: value.to_string(),
    };
    let fd: RawFd = value.parse().map_err(|_| bad())?;
    // Only a descriptor that is open here is taken; CLOEXEC again, so no runc inherits it.
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|_| bad())?;
    // SAFETY: the descriptor is open and was handed to this process image to own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Containers that runc still holds from an earlier ctrd (one that crashed, say) are not this
/// daemon's children and it cannot supervise them: say so, with what to do about each.
fn report_leftovers(runc: &Runc) {
    let base = runc.state_dir().runc_base();
    let Ok(entries) = std::fs::read_dir(&base) else {
        return;
    };
    let namespaces = entries
        .flatten()
        .filter_map(|e| Namespace::new(&e.file_name().to_string_lossy()).ok());
    for ns in namespaces {
        match runc.list(&ns) {
            Ok(left) => {
                for c in left {
                    log::warn!(
                        "container {ns}/{} ({}, pid {}) is left over from an earlier ctrd and is not \
                         supervised; remove it with `{} --root {} delete --force {}`",
                        c.id,
                        c.status,
                        c.pid,
                        runc.binary().display(),
                        runc.state_dir().runc_root(&ns).display(),
                        c.id
                    );
                }
            }
            Err(e) => log::warn!("cannot list left-over containers in {ns}: {e}"),
        }
    }
}

/// The CRIU that scripts/setup.sh installs when the system's own fails `criu check`, if it did;
/// else the system's.
fn default_criu() -> PathBuf {
    let installed = PathBuf::from(INSTALLED_CRIU);
    if installed.exists() {
        installed
    } else {
        PathBuf::from("criu")
    }
}

/// A thousand containers mean a thousand pidfds, plus a socket per client.
fn raise_nofile_limit() {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log::warn!("cannot raise the open file limit from {soft} to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => log::warn!("cannot read the open file limit: {e}"),
    }
}

/// Moves exits from the reaper's channel into the actor's mailbox.
fn forward_exits(
    exits: crossbeam_channel::Receiver<reaper::Exit>,
    addr: Addr<Supervisor>,
) -> Result<(), DaemonError> {
    std::thread::Builder::new()
        .name("exits".into())
        .spawn(move || {
            for exit in exits {
                addr.do_send(ExitMsg(exit));
            }
        })
        .map(drop)
        .map_err(|source| DaemonError::Thread {
            what: "the exit forwarder",
            source,
        })
}

async fn wait_for_termination() -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM: shutting down"),
        _ = int.recv() => log::info!("SIGINT: shutting down"),
    }
    Ok(())
}

/// The shutdown order: (the caller has stopped accepting) TERM every container and wait up to
/// the grace period for them to exit and be deleted; then KILL the rest and wait a little more.
/// (The caller then ends the subscriptions, waits for them to drain, and removes the socket.)
async fn shutdown(addr: &Addr<Supervisor>, grace: Duration) {
    for (signal, wait) in [(libc::SIGTERM, grace), (libc::SIGKILL, KILL_WAIT)] {
        if addr.send(Shutdown { signal }).await.is_err() {
            return;
        }
        let (reply, empty) = oneshot::channel();
        if addr.send(WaitEmpty { reply }).await.is_err() {
            return;
        }
        if tokio::time::timeout(wait, empty).await.is_ok() {
            return;
        }
        log::warn!("containers still running after {wait:?}");
    }
}
