//! `ctrd`: the container supervisor daemon.
//!
//! One `ctrd` is two processes. The one started first becomes the [`keeper`]: the containers'
//! subreaper, which records every exit and starts the daemon proper as its child (again, if it
//! dies; anew, for an upgrade). The daemon (the actor, the socket server, the workers) knows it is
//! one by the socketpair the keeper hands it, and takes over what an earlier daemon left
//! ([`recovery`]) before it serves.
//!
//! Start-up runs in a fixed order: everything that is process-wide (rlimits, the subreaper bit,
//! the socket's umask) happens in the keeper before any thread or child exists. Shutdown has a
//! written order too, in [`shutdown`]; a hand-over to a new daemon, in [`hand_over`].

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
mod recovery;
mod server;
mod socket;
mod stats;
mod subscribers;
mod supervisor;
mod upgrade;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter};
use clap::Parser;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use runtime::{DirectRunner, Namespace, Runc, StateDir};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;
use worker::{Pool, Priority};

use crate::access::Access;
use crate::cli::Args;
use crate::journal::Journal;
use crate::keeper::handoff::{inherited_fd, BadInheritedFd};
use crate::keeper::link::{Incoming, KeeperLink, LinkError};
use crate::keeper::wire::LISTEN_FD_ENV;
use crate::keeper::KeeperSettings;
use crate::server::Limits;
use crate::supervisor::{
    CloseSubscriptions, ExitMsg, Flushed, HandOver, Settled, Shutdown, Supervisor, WaitEmpty,
};

/// How long containers get after KILL, once the grace period is over, before ctrd gives up on them.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Where scripts/install-criu.sh puts its CRIU wrapper.
const INSTALLED_CRIU: &str = "/opt/ctrd-criu/criu";

/// How long subscribers get to take their last events at shutdown.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// How often a hand-over checks whether the work in flight is done.
const SETTLE_POLL: Duration = Duration::from_millis(5);

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
    #[error("the keeper's connection: {0}")]
    Link(#[from] LinkError),
    #[error(transparent)]
    ListenFd(#[from] BadInheritedFd),
    #[error("the keeper handed down no listening socket ({LISTEN_FD_ENV} is not set)")]
    NoListenFd,
}

/// Why the daemon stops serving.
enum Stop {
    /// SIGTERM or SIGINT: stop every container, then exit.
    Terminate,
    /// The keeper starts a new daemon in this one's place: leave the containers running.
    HandOver,
    /// The keeper died: nothing can reap or record an exit any more, so exit and let a new
    /// `ctrd` recover the containers.
    KeeperGone(String),
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
    let result = match KeeperLink::from_env() {
        None => keep(args),
        Some(link) => link
            .map_err(DaemonError::from)
            .and_then(|(link, handshake)| run(args, link, handshake)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            log::error!("{err}");
            eprintln!("ctrd: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs as the keeper: everything process-wide is set here, before the keeper's only child
/// exists, and the daemon inherits it. A keeper re-executed for an upgrade inherits the
/// listening socket instead of binding it.
fn keep(args: Args) -> Result<ExitCode, DaemonError> {
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
    let inherited = inherited_fd(LISTEN_FD_ENV)?;
    let reexecuted = inherited.is_some();
    let listener = match inherited {
        Some(listener) => listener,
        None => {
            let access = Access::new(args.group.as_deref())?;
            OwnedFd::from(socket::bind(&socket_path(&args), access.group())?)
        }
    };
    Ok(keeper::run(KeeperSettings {
        state_dir: args.state_dir.clone(),
        listener,
        restart: args.restart,
        reexecuted,
    }))
}

fn socket_path(args: &Args) -> PathBuf {
    args.socket
        .clone()
        .unwrap_or_else(|| args.state_dir.join("ctrd.sock"))
}

/// Runs as the daemon, the keeper's child.
fn run(
    args: Args,
    link: KeeperLink,
    handshake: keeper::link::Handshake,
) -> Result<ExitCode, DaemonError> {
    // Started as /proc/self/exe, the daemon would be called `exe` in ps and top; threads
    // created from here on inherit the name unless they are given one.
    if let Err(e) = nix::sys::prctl::set_name(c"ctrd") {
        log::warn!("cannot name the daemon's process: {e}");
    }
    let notifier = notify::Notifier::from_env().unwrap_or_else(|e| {
        log::warn!("{e}");
        None
    });
    let state = StateDir::new(&args.state_dir);
    let socket_path = socket_path(&args);
    let access = Access::new(args.group.as_deref())?;
    let listener = UnixListener::from(inherited_fd(LISTEN_FD_ENV)?.ok_or(DaemonError::NoListenFd)?);
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

    let link = Arc::new(link);
    let criu = args.criu.clone().unwrap_or_else(default_criu);
    // The daemon is no subreaper and reaps nothing but its own runc processes.
    let runc = Arc::new(
        Runc::new(&args.runtime, state.clone(), Arc::new(DirectRunner))
            .with_timeout(args.runtime_timeout)
            .with_criu(&criu),
    );
    let pool = Arc::new(
        Pool::new(usize::from(args.concurrency), runc.clone()).map_err(|source| {
            DaemonError::Thread {
                what: "the worker pool",
                source,
            }
        })?,
    );
    // Every thread created from here on (the event loop is this one; the actor's, the keeper's
    // reader, the exit forwarder) inherits this; the workers above keep the daemon's own
    // priority.
    if let Err(e) = priority::set_this_thread(args.server_nice) {
        log::warn!(
            "cannot set the server's nice value to {}: {e}",
            args.server_nice
        );
    }
    // The keeper's messages can arrive before the actor exists; they wait in this channel.
    let (incoming_tx, incoming_rx) = crossbeam_channel::unbounded();
    link.listen(move |incoming| {
        let _ = incoming_tx.send(incoming);
    })
    .map_err(|source| DaemonError::Thread {
        what: "the keeper's reader",
        source,
    })?;
    let (journal, opened) = Journal::open(
        &state.events_dir(),
        args.events_retention,
        args.subscriber_queue as usize,
    )?;
    let recovery = recovery::recover(&state, &runc, handshake, &opened.exits, &link);
    let recovered: Vec<(String, String)> = recovery
        .containers
        .iter()
        .map(|c| (c.record.namespace.clone(), c.record.id.clone()))
        .collect();
    let _ = pool.submit(Priority::Normal, move |runc| {
        report_leftovers(runc, &recovered)
    });

    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let listener =
            tokio::net::UnixListener::from_std(listener).map_err(DaemonError::EventLoop)?;
        let usr1 = dump::listen().map_err(DaemonError::EventLoop)?;
        // The actor gets a thread of its own, so socket traffic never delays its handlers.
        let arbiter = Arbiter::new();
        let sup = Supervisor::new(state, pool.clone(), journal, opened.last_seq, link.clone())
            .oom_notify(!args.no_oom_notify)
            .recover(recovery);
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| sup);
        let (stop_tx, stop_rx) = tokio::sync::mpsc::unbounded_channel();
        forward_incoming(incoming_rx, addr.clone(), stop_tx)?;
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
        link.ready();
        log::info!(
            "ctrd {} serving on {} (runtime {}, criu {}, {} workers, keeper pid {})",
            protocol::VERSION,
            socket_path.display(),
            args.runtime.display(),
            criu.display(),
            args.concurrency,
            link.keeper_pid()
        );
        let stop = wait_for_stop(stop_rx)
            .await
            .map_err(DaemonError::EventLoop)?;
        server.abort();
        let code = match &stop {
            Stop::Terminate => {
                if let Some(notifier) = &notifier {
                    if let Err(e) = notifier.notify("STOPPING=1") {
                        log::warn!("{e}");
                    }
                }
                shutdown(&addr, args.shutdown_timeout).await;
                ExitCode::SUCCESS
            }
            Stop::HandOver => {
                hand_over(&addr, &pool, args.runtime_timeout).await;
                ExitCode::SUCCESS
            }
            Stop::KeeperGone(why) => {
                log::error!(
                    "{why}: no exit can be collected any more; stopping with the containers left \
                     running, for the next ctrd to recover (their exit statuses while no keeper \
                     runs are lost)"
                );
                hand_over(&addr, &pool, args.runtime_timeout).await;
                ExitCode::FAILURE
            }
        };
        if addr.send(CloseSubscriptions).await.is_ok()
            && tokio::time::timeout(DRAIN_WAIT, drained.recv())
                .await
                .is_err()
        {
            log::warn!("subscribers did not take their last events within {DRAIN_WAIT:?}");
        }
        let (flushed, on_disk) = oneshot::channel();
        if addr.send(Flushed { reply: flushed }).await.is_ok() {
            let _ = on_disk.await;
        }
        if matches!(stop, Stop::Terminate) {
            if let Err(e) = std::fs::remove_file(&socket_path) {
                log::warn!("cannot remove {}: {e}", socket_path.display());
            }
        }
        arbiter.stop();
        log::info!("ctrd stopped");
        Ok(code)
    });
    result
}

/// Containers that runc holds but no record names (not started by ctrd, or by one that died
/// between runc's start and writing the record) are not supervised: say so, with what to do.
fn report_leftovers(runc: &Runc, recovered: &[(String, String)]) {
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
                let known = |id: &str| recovered.iter().any(|(n, i)| n == ns.as_str() && i == id);
                for c in left.into_iter().filter(|c| !known(&c.id)) {
                    log::warn!(
                        "container {ns}/{} ({}, pid {}) has no record and is not supervised; \
                         remove it with `{} --root {} delete --force {}`",
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

/// Moves the keeper's exits into the actor's mailbox, and its other news to the main loop.
fn forward_incoming(
    incoming: crossbeam_channel::Receiver<Incoming>,
    addr: Addr<Supervisor>,
    stop: tokio::sync::mpsc::UnboundedSender<Stop>,
) -> Result<(), DaemonError> {
    std::thread::Builder::new()
        .name("exits".into())
        .spawn(move || {
            for message in incoming {
                match message {
                    Incoming::Exit(exit) => addr.do_send(ExitMsg(exit)),
                    Incoming::Handover => {
                        let _ = stop.send(Stop::HandOver);
                    }
                    Incoming::Gone(why) => {
                        let _ = stop.send(Stop::KeeperGone(why));
                    }
                }
            }
        })
        .map(drop)
        .map_err(|source| DaemonError::Thread {
            what: "the exit forwarder",
            source,
        })
}

async fn wait_for_stop(
    mut from_keeper: tokio::sync::mpsc::UnboundedReceiver<Stop>,
) -> std::io::Result<Stop> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => {
            log::info!("SIGTERM: shutting down");
            Stop::Terminate
        }
        _ = int.recv() => {
            log::info!("SIGINT: shutting down");
            Stop::Terminate
        }
        Some(stop) = from_keeper.recv() => {
            if matches!(stop, Stop::HandOver) {
                log::info!("handing over to a new daemon; the containers keep running");
            }
            stop
        }
    })
}

/// The hand-over order: (the caller has stopped accepting) refuse new work, and wait until what
/// is in flight (starts, execs, the cleanup after an exit) is done, so the new daemon finds
/// every container in a record and every reply has gone out. Containers are not touched. (The
/// caller then ends the subscriptions and waits for the journal to be on disk.)
async fn hand_over(addr: &Addr<Supervisor>, pool: &Pool, limit: Duration) {
    if addr.send(HandOver).await.is_err() {
        return;
    }
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let idle = pool.busy() == 0 && pool.queued() == 0;
        // Asked after the pool is seen idle: the actor has by then handled what the last jobs
        // sent it, and says whether it started anything since.
        if idle && matches!(addr.send(Settled).await, Ok(true)) {
            return;
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
    log::warn!("work still in flight after {limit:?}; handing over anyway");
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
