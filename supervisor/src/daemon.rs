//! Start-up and shutdown of `ctrd`'s two processes, as named steps in the order they run.
//!
//! The process started first is the keeper: [`keep`] sets everything that is process-wide
//! (rlimits, the subreaper bit, the state directory, the bound socket) before any thread or
//! child exists, then hands over to [`keeper::run`], which starts the daemon as its child.
//!
//! The daemon goes through [`Daemon::prepare`] (before the event loop: the image store, the
//! worker pool, the keeper's reader, the journal, recovery), then [`Daemon::run`]: `serve` (the actor, the
//! socket server, readiness), `until_stopped` (a signal, or the keeper's news), and `stop`
//! (containers, subscribers, journal, socket). Each step's doc gives its order and why.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter};
use images::ImageStore;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use runtime::{DirectRunner, Runc, StateDir};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use worker::{Pool, Priority};

use crate::access::{self, Access};
use crate::actor::{
    CloseSubscriptions, Exit, Flushed, HandOver, KeeperSynced, Settled, Shutdown, Supervisor,
    WaitEmpty,
};
use crate::cli::Args;
use crate::journal::{self, Journal};
use crate::keeper_link::{Handshake, Incoming, KeeperLink, LinkError};
use crate::notify::Notifier;
use crate::server::{self, ConnectionLimits};
use crate::{dump, metrics, priority, recovery, socket};
use keeper::handoff::{inherited_fd, BadInheritedFd};
use keeper::wire::LISTEN_FD_ENV;
use keeper::{self, KeeperSettings};

/// How long containers get after KILL, once the grace period is over, before ctrd gives up on them.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Where scripts/install-criu.sh puts its CRIU wrapper.
const INSTALLED_CRIU: &str = "/opt/ctrd-criu/criu";

/// How long subscribers get to take their last events at shutdown.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// How often a hand-over checks whether the work in flight is done.
const SETTLE_POLL: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
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
    #[error("--root: {0}")]
    Images(#[from] images::Error),
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

/// Runs as the keeper: everything process-wide is set here, before the keeper's only child
/// exists, and the daemon inherits it. A keeper re-executed for an upgrade inherits the
/// listening socket instead of binding it.
pub fn keep(args: Args) -> Result<ExitCode, DaemonError> {
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

fn socket_path(args: &Args) -> PathBuf {
    args.socket
        .clone()
        .unwrap_or_else(|| args.state_dir.join("ctrd.sock"))
}

/// The daemon, the keeper's child, prepared to serve: what start-up made before the event loop
/// runs. [`Daemon::run`] consumes it.
pub struct Daemon {
    args: Args,
    socket_path: PathBuf,
    access: Access,
    listener: UnixListener,
    metrics_listener: Option<TcpListener>,
    notifier: Option<Notifier>,
    link: Arc<KeeperLink>,
    criu: PathBuf,
    pool: Arc<Pool>,
    /// Shared with the server, whose image requests run on blocking threads, off the actor.
    images: Arc<ImageStore>,
    /// The keeper's messages, queued since before the actor existed.
    from_keeper: crossbeam_channel::Receiver<Incoming>,
    /// Built with the recovered containers; started by [`Daemon::serve`].
    actor: Supervisor,
}

impl Daemon {
    /// Everything before the event loop, in this order:
    /// 1. name the process and take `$NOTIFY_SOCKET` out of the environment, before any thread
    ///    exists (runc must not inherit it);
    /// 2. take the listening socket the keeper handed down, bind the metrics address and open
    ///    the image store (which another ctrd may hold), so a bad address or a taken store
    ///    fails start-up before anything runs;
    /// 3. start the worker pool, then lower the nice value: the workers keep the daemon's
    ///    priority, every thread made after them (the event loop, the actor, the keeper's
    ///    reader, the exit forwarder) answers clients and collects exits at `--server-nice`;
    /// 4. listen to the keeper, whose messages queue until the actor exists;
    /// 5. open the journal, then recover the earlier daemon's containers (which needs the
    ///    journal's last exits and the keeper's replay), and build the actor holding them.
    pub fn prepare(
        args: Args,
        link: KeeperLink,
        handshake: Handshake,
    ) -> Result<Daemon, DaemonError> {
        // Started as /proc/self/exe, the daemon would be called `exe` in ps and top; threads
        // created from here on inherit the name unless they are given one.
        if let Err(e) = nix::sys::prctl::set_name(c"ctrd") {
            log::warn!("cannot name the daemon's process: {e}");
        }
        let notifier = Notifier::from_env().unwrap_or_else(|e| {
            log::warn!("{e}");
            None
        });
        let state = StateDir::new(&args.state_dir);
        let access = Access::new(args.group.as_deref())?;
        let listener =
            UnixListener::from(inherited_fd(LISTEN_FD_ENV)?.ok_or(DaemonError::NoListenFd)?);
        listener
            .set_nonblocking(true)
            .map_err(|source| DaemonError::Thread {
                what: "the socket server",
                source,
            })?;
        let metrics_listener = args
            .metrics_address
            .map(|address| {
                TcpListener::bind(address)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|source| DaemonError::MetricsAddress { address, source })
            })
            .transpose()?;
        let images = Arc::new(ImageStore::open(&args.root)?);

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
        if let Err(e) = priority::set_this_thread(args.server_nice) {
            log::warn!(
                "cannot set the server's nice value to {}: {e}",
                args.server_nice
            );
        }

        let (incoming_tx, from_keeper) = crossbeam_channel::unbounded();
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
            recovery::report_leftovers(runc, &recovered)
        });
        let actor = Supervisor::new(state, pool.clone(), journal, opened.last_seq, link.clone())
            .oom_notify(!args.no_oom_notify)
            .recover(recovery);

        Ok(Daemon {
            socket_path: socket_path(&args),
            args,
            access,
            listener,
            metrics_listener,
            notifier,
            link,
            criu,
            pool,
            images,
            from_keeper,
            actor,
        })
    }

    /// Runs the event loop: serves until a signal or the keeper says to stop, then stops.
    pub fn run(self) -> Result<ExitCode, DaemonError> {
        actix_rt::System::new().block_on(async move {
            let mut serving = self.serve().await?;
            let stop = serving.until_stopped().await?;
            Ok(serving.stop(stop).await)
        })
    }

    /// Starts serving, in this order: SIGUSR1 taken over (its default would end the daemon),
    /// the actor on a thread of its own (so socket traffic never delays its handlers), what
    /// feeds it (the keeper's messages, the dump, the metrics), then the socket server. Only
    /// then is anyone told the daemon is ready: the service manager (once a probe is answered)
    /// and the keeper (a daemon that dies before this failed to start; after it, it crashed
    /// and is restarted).
    async fn serve(self) -> Result<Serving, DaemonError> {
        let Daemon {
            args,
            socket_path,
            access,
            listener,
            metrics_listener,
            notifier,
            link,
            criu,
            pool,
            images,
            from_keeper,
            actor,
        } = self;
        let listener =
            tokio::net::UnixListener::from_std(listener).map_err(DaemonError::EventLoop)?;
        let usr1 = dump::listen().map_err(DaemonError::EventLoop)?;
        let arbiter = Arbiter::new();
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        let (stop_tx, stops) = mpsc::unbounded_channel();
        forward_incoming(from_keeper, addr.clone(), stop_tx)?;
        actix_rt::spawn(dump::log_on(usr1, addr.clone().recipient()));
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
        let (drain, drained) = mpsc::channel(1);
        let server = actix_rt::spawn(server::serve(
            listener,
            addr.clone(),
            images,
            StateDir::new(&args.state_dir),
            ConnectionLimits {
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
            "ctrd {} serving on {} (images in {}, runtime {}, criu {}, {} workers, keeper pid {})",
            protocol::VERSION,
            socket_path.display(),
            args.root.display(),
            args.runtime.display(),
            criu.display(),
            args.concurrency,
            link.keeper_pid()
        );
        Ok(Serving {
            addr,
            link,
            arbiter,
            server,
            drained,
            stops,
            notifier,
            pool,
            socket_path,
            shutdown_timeout: args.shutdown_timeout,
            runtime_timeout: args.runtime_timeout,
        })
    }
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

/// The daemon while it serves: what [`Serving::stop`] takes down.
struct Serving {
    addr: Addr<Supervisor>,
    link: Arc<KeeperLink>,
    /// The actor's thread.
    arbiter: Arbiter,
    /// The accept loop; connections already accepted run as tasks of their own.
    server: JoinHandle<()>,
    /// Ends once every connection has dropped its [`server::DrainGuard`].
    drained: mpsc::Receiver<()>,
    /// The keeper's hand-over or its death, from the exit forwarder.
    stops: mpsc::UnboundedReceiver<Stop>,
    notifier: Option<Notifier>,
    pool: Arc<Pool>,
    socket_path: PathBuf,
    shutdown_timeout: Duration,
    runtime_timeout: Duration,
}

impl Serving {
    /// Waits for a reason to stop: SIGTERM, SIGINT, or news from the keeper.
    async fn until_stopped(&mut self) -> Result<Stop, DaemonError> {
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::EventLoop)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::EventLoop)?;
        Ok(tokio::select! {
            _ = term.recv() => {
                log::info!("SIGTERM: shutting down");
                Stop::Terminate
            }
            _ = int.recv() => {
                log::info!("SIGINT: shutting down");
                Stop::Terminate
            }
            Some(stop) = self.stops.recv() => {
                if matches!(stop, Stop::HandOver) {
                    log::info!("handing over to a new daemon; the containers keep running");
                }
                stop
            }
        })
    }

    /// Takes the daemon down, in this order:
    /// 1. stop accepting (connections already open are served to the end);
    /// 2. the containers: for SIGTERM/SIGINT, tell the service manager and stop them
    ///    ([`Serving::stop_containers`]); for a hand-over, or with the keeper gone, leave them
    ///    running and let the work in flight finish ([`Serving::settle`]);
    /// 3. end the subscriptions, and give subscribers [`DRAIN_WAIT`] to take their last events;
    /// 4. wait until the journal is on disk, then (up to [`DRAIN_WAIT`]) until the keeper has
    ///    taken the acknowledgements that follow it, which may wait in the link's outbox;
    /// 5. for SIGTERM/SIGINT only, remove the socket: after a hand-over the next daemon serves
    ///    the same listener;
    /// 6. stop the actor's thread.
    async fn stop(mut self, stop: Stop) -> ExitCode {
        self.server.abort();
        let code = match &stop {
            Stop::Terminate => {
                if let Some(notifier) = &self.notifier {
                    if let Err(e) = notifier.notify("STOPPING=1") {
                        log::warn!("{e}");
                    }
                }
                self.stop_containers().await;
                ExitCode::SUCCESS
            }
            Stop::HandOver => {
                self.settle().await;
                ExitCode::SUCCESS
            }
            Stop::KeeperGone(why) => {
                log::error!(
                    "{why}: no exit can be collected any more; stopping with the containers left \
                     running, for the next ctrd to recover (their exit statuses while no keeper \
                     runs are lost)"
                );
                self.settle().await;
                ExitCode::FAILURE
            }
        };
        if self.addr.send(CloseSubscriptions).await.is_ok()
            && tokio::time::timeout(DRAIN_WAIT, self.drained.recv())
                .await
                .is_err()
        {
            log::warn!("subscribers did not take their last events within {DRAIN_WAIT:?}");
        }
        let (flushed, on_disk) = oneshot::channel();
        if self.addr.send(Flushed { reply: flushed }).await.is_ok() {
            let _ = on_disk.await;
        }
        let link = self.link.clone();
        let delivered = tokio::task::spawn_blocking(move || link.flushed(DRAIN_WAIT)).await;
        if !matches!(delivered, Ok(true)) {
            log::warn!(
                "the keeper did not take the last acknowledgements within {DRAIN_WAIT:?}; it \
                 replays those exits to the next daemon, which finds them in the journal"
            );
        }
        if matches!(stop, Stop::Terminate) {
            if let Err(e) = std::fs::remove_file(&self.socket_path) {
                log::warn!("cannot remove {}: {e}", self.socket_path.display());
            }
        }
        self.arbiter.stop();
        log::info!("ctrd stopped");
        code
    }

    /// TERM every container and wait up to the grace period for them to exit and be deleted;
    /// then KILL the rest and wait a little more.
    async fn stop_containers(&self) {
        let grace = self.shutdown_timeout;
        for (signal, wait) in [(libc::SIGTERM, grace), (libc::SIGKILL, KILL_WAIT)] {
            if self.addr.send(Shutdown { signal }).await.is_err() {
                return;
            }
            let (reply, empty) = oneshot::channel();
            if self.addr.send(WaitEmpty { reply }).await.is_err() {
                return;
            }
            if tokio::time::timeout(wait, empty).await.is_ok() {
                return;
            }
            log::warn!("containers still running after {wait:?}");
        }
    }

    /// Refuse new work, and wait until what is in flight (starts, execs, the cleanup after an
    /// exit) is done, so the next daemon finds every container in a record and every reply has
    /// gone out. Containers are not touched.
    async fn settle(&self) {
        if self.addr.send(HandOver).await.is_err() {
            return;
        }
        let limit = self.runtime_timeout;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let idle = self.pool.idle();
            // Asked after the pool is seen idle: the actor has by then handled what the last
            // jobs sent it, and says whether it started anything since.
            if idle && matches!(self.addr.send(Settled).await, Ok(true)) {
                return;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
        log::warn!("work still in flight after {limit:?}; handing over anyway");
    }
}

/// Moves the keeper's exits and its `Synced` into the actor's mailbox, in the order they came
/// (recovery relies on it), and its other news to [`Serving::until_stopped`]. Neither queue is
/// bounded, nor needs to be: what passes here is one message per process the keeper reaped
/// (and one `Synced`), never more than the keeper sends, and the actor takes each in
/// microseconds.
fn forward_incoming(
    incoming: crossbeam_channel::Receiver<Incoming>,
    addr: Addr<Supervisor>,
    stop: mpsc::UnboundedSender<Stop>,
) -> Result<(), DaemonError> {
    std::thread::Builder::new()
        .name("exits".into())
        .spawn(move || {
            for message in incoming {
                match message {
                    Incoming::Exit(exit) => addr.do_send(Exit(exit)),
                    Incoming::Synced => addr.do_send(KeeperSynced),
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
