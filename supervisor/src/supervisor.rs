//! The supervisor actor: the one owner of all container state.
//!
//! Every handler runs in microseconds. runc calls go to the worker [`Pool`] and come back as
//! messages ([`StartDone`], [`Deleted`]); exits come from the reaper as [`Exit`]. Events are
//! emitted here, in the order the actor decides them: a container's `start-container` always
//! precedes its `exit`, and its `exit` is emitted only once runc has deleted it, so an id is free
//! for reuse the moment a client sees the exit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use protocol::{
    DaemonInfo, ErrorKind, ErrorResponse, Event, EventKind, KillRequest, Response, StartRequest,
};
use runtime::{ContainerId, ExitStatus, Namespace, RuntimeError, StateDir};
use tokio::sync::oneshot;
use worker::{start_container, Pool, Priority, StartJob, Started};

use crate::container::{Container, Key, Phase};
use crate::dump::{ContainerLine, StateDump};
use crate::metrics::telemetry::{Snapshot, StartTiming, Telemetry};
use crate::metrics::RunningContainer;
use crate::reaper::Exit;
use crate::subscribers::{Subscribers, Subscription};

/// The name of a container's main process in events.
const INIT: &str = "init";

// ---- messages -------------------------------------------------------------------------------

/// Start a container; `reply` is answered once it runs or has failed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Start {
    pub req: StartRequest,
    pub reply: oneshot::Sender<Response>,
}

/// A worker finished a start.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartDone {
    key: Key,
    result: Result<Started, RuntimeError>,
    timing: StartTiming,
}

/// The reaper reaped a process.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExitMsg(pub Exit);

/// A worker ran `runc delete` for a container whose init exited.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deleted {
    key: Key,
    status: ExitStatus,
    pid: u32,
    result: Result<(), RuntimeError>,
}

/// Signal a container's init (through its pidfd) or, with `all`, all its processes (through runc).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Signal {
    pub req: KillRequest,
    pub reply: oneshot::Sender<Response>,
}

/// The containers of one namespace.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct List {
    pub namespace: String,
}

/// One container.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct State {
    pub namespace: String,
    pub id: String,
}

/// Send the namespace's events into the subscription's queue from now on.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct Subscribe {
    pub namespace: String,
    pub subscription: Subscription,
}

/// End every subscription cleanly: the last step of shutdown, once no container is left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSubscriptions;

#[derive(Message)]
#[rtype(result = "Response")]
pub struct Info;

/// Refuse new starts and send `signal` to every container, including those still starting.
/// Sent again with KILL when the grace period runs out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub signal: i32,
}

/// The telemetry as it is now, and with `with_containers` the running containers, for a scrape
/// to read their cgroups (off the actor).
#[derive(Message)]
#[rtype(result = "(Snapshot, Vec<RunningContainer>)")]
pub struct TakeMetrics {
    pub with_containers: bool,
}

/// What the actor holds and the pool is doing, for the SIGUSR1 state dump.
#[derive(Message)]
#[rtype(result = "StateDump")]
pub struct Dump;

/// Answer `reply` once no container is left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WaitEmpty {
    pub reply: oneshot::Sender<()>,
}

// ---- state ----------------------------------------------------------------------------------

pub struct Supervisor {
    state_dir: StateDir,
    pool: Arc<Pool>,
    containers: HashMap<Key, Container>,
    /// Init pids of running containers.
    by_pid: HashMap<u32, Key>,
    /// Exits of pids no container claimed yet: one may be the init of a start still in flight.
    unclaimed: Vec<Exit>,
    subscribers: Subscribers,
    /// The signal sent at shutdown; containers that finish starting afterwards get it too.
    shutdown: Option<i32>,
    /// Tells queued start jobs not to run once shutdown began.
    stopping: Arc<AtomicBool>,
    empty_waiters: Vec<oneshot::Sender<()>>,
    started_at: Instant,
    telemetry: Telemetry,
}

impl Supervisor {
    pub fn new(state_dir: StateDir, pool: Arc<Pool>) -> Self {
        Supervisor {
            state_dir,
            pool,
            containers: HashMap::new(),
            by_pid: HashMap::new(),
            unclaimed: Vec::new(),
            subscribers: Subscribers::default(),
            shutdown: None,
            stopping: Arc::new(AtomicBool::new(false)),
            empty_waiters: Vec::new(),
            started_at: Instant::now(),
            telemetry: Telemetry::new(Instant::now()),
        }
    }

    fn emit(&mut self, kind: EventKind, key: &Key, pid: u32, status: Option<i32>) {
        let event = Event {
            time: now_ns(),
            kind,
            namespace: key.0.to_string(),
            id: key.1.to_string(),
            process: INIT.to_string(),
            pid,
            status,
        };
        log::debug!(
            "event {kind} {}/{} pid {pid} status {status:?}",
            key.0,
            key.1
        );
        let drops = self.subscribers.drops();
        self.subscribers.publish(&event);
        let now = Instant::now();
        self.telemetry.event(now);
        let dropped = self.subscribers.drops() - drops;
        if dropped > 0 {
            self.telemetry.subscribers_dropped(dropped, now);
        }
    }

    fn find(&self, namespace: &str, id: &str) -> Result<(&Key, &Container), ErrorResponse> {
        let key = key(namespace, id)?;
        self.containers
            .get_key_value(&key)
            .ok_or_else(|| not_found(&key.1))
    }

    /// The init of a running container exited: delete it through runc, then report the exit.
    fn init_exited(&mut self, key: Key, status: ExitStatus, ctx: &mut Context<Self>) {
        let Some(container) = self.containers.get_mut(&key) else {
            return;
        };
        let Some(pid) = container.phase.pid() else {
            return;
        };
        container.phase = Phase::Stopped { pid };
        let addr = ctx.address();
        let submitted = self.pool.submit(Priority::Urgent, move |runc| {
            let result = runc.delete(&key.0, &key.1, true);
            addr.do_send(Deleted {
                key,
                status,
                pid,
                result,
            });
        });
        if submitted.is_err() {
            log::error!("worker pool is gone; container {pid} left to runc");
        }
    }

    fn claim_unclaimed_exit(&mut self, pid: u32, since: Instant) -> Option<Exit> {
        let at = self
            .unclaimed
            .iter()
            .position(|e| e.pid == pid && e.reaped_at >= since)?;
        Some(self.unclaimed.swap_remove(at))
    }

    /// Keeps only exits that a start still in flight could claim.
    fn prune_unclaimed(&mut self) {
        if self.unclaimed.is_empty() {
            return;
        }
        let oldest_start = self
            .containers
            .values()
            .filter_map(|c| match c.phase {
                Phase::Starting { since, .. } => Some(since),
                _ => None,
            })
            .min();
        match oldest_start {
            Some(oldest) => self.unclaimed.retain(|e| e.reaped_at >= oldest),
            None => self.unclaimed.clear(),
        }
    }

    fn notify_if_empty(&mut self) {
        if self.containers.is_empty() {
            for waiter in self.empty_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;
}

// ---- handlers -------------------------------------------------------------------------------

impl Handler<Start> for Supervisor {
    type Result = ();

    fn handle(&mut self, Start { req, reply }: Start, ctx: &mut Context<Self>) {
        let Admitted {
            key,
            stdout,
            stderr,
        } = match self.admit(&req) {
            Ok(admitted) => admitted,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        let job = StartJob {
            namespace: key.0.clone(),
            id: key.1.clone(),
            bundle: req.bundle.clone().into(),
            stdout: stdout.clone(),
            stderr: stderr.clone(),
        };
        let since = Instant::now();
        let addr = ctx.address();
        let stopping = self.stopping.clone();
        let submitted = self.pool.submit(Priority::Normal, move |runc| {
            let picked_up = Instant::now();
            let result = if stopping.load(Ordering::Relaxed) {
                Err(RuntimeError::Failed {
                    op: "run",
                    id: job.id.to_string(),
                    message: "ctrd is shutting down".into(),
                })
            } else {
                start_container(runc, &job)
            };
            let timing = StartTiming {
                picked_up,
                finished: Instant::now(),
            };
            addr.do_send(StartDone {
                key: (job.namespace, job.id),
                result,
                timing,
            });
        });
        if submitted.is_err() {
            let err = ErrorResponse::new(ErrorKind::Internal, "the worker pool is gone");
            let _ = reply.send(Response::Error(err));
            return;
        }
        let container = Container {
            namespace: key.0.clone(),
            id: key.1.clone(),
            bundle: req.bundle,
            labels: req.labels,
            stdout,
            stderr,
            created: now_ns(),
            phase: Phase::Starting { since, reply },
        };
        self.containers.insert(key, container);
    }
}

impl Handler<StartDone> for Supervisor {
    type Result = ();

    fn handle(
        &mut self,
        StartDone {
            key,
            result,
            timing,
        }: StartDone,
        ctx: &mut Context<Self>,
    ) {
        let Some(container) = self.containers.remove(&key) else {
            log::error!(
                "start of {}/{} finished for no known container",
                key.0,
                key.1
            );
            return;
        };
        let Phase::Starting { since, reply } = container.phase else {
            log::error!("start of {}/{} finished twice", key.0, key.1);
            self.containers.insert(key, container);
            return;
        };
        let started = match result {
            Ok(started) => started,
            Err(err) => {
                let kind = match err {
                    RuntimeError::InvalidName { .. } | RuntimeError::InvalidBundle { .. } => {
                        ErrorKind::InvalidArgument
                    }
                    _ => ErrorKind::Runtime,
                };
                self.telemetry.start_failed(Instant::now());
                let message = format!("cannot start container \"{}\": {err}", key.1);
                log::info!("{message}");
                let _ = reply.send(Response::Error(ErrorResponse::new(kind, message)));
                self.prune_unclaimed();
                self.notify_if_empty();
                return;
            }
        };
        let pid = started.pid;
        self.telemetry
            .start_succeeded(since, timing, Instant::now());
        if let (Some(signal), Some(pidfd)) = (self.shutdown, &started.pidfd) {
            let _ = pidfd.send_signal(signal);
        }
        self.containers.insert(
            key.clone(),
            Container {
                phase: Phase::Running {
                    pid,
                    pidfd: started.pidfd,
                },
                ..container
            },
        );
        self.by_pid.insert(pid, key.clone());
        self.emit(EventKind::StartContainer, &key, pid, None);
        let _ = reply.send(Response::Started(protocol::Started { pid }));
        if let Some(exit) = self.claim_unclaimed_exit(pid, since) {
            self.by_pid.remove(&pid);
            self.init_exited(key, exit.status, ctx);
        }
        self.prune_unclaimed();
    }
}

impl Handler<ExitMsg> for Supervisor {
    type Result = ();

    fn handle(&mut self, ExitMsg(exit): ExitMsg, ctx: &mut Context<Self>) {
        match self.by_pid.remove(&exit.pid) {
            Some(key) => self.init_exited(key, exit.status, ctx),
            None => {
                let starting = self
                    .containers
                    .values()
                    .any(|c| matches!(c.phase, Phase::Starting { .. }));
                if starting {
                    log::debug!(
                        "pid {} exited before any start claimed it; holding it",
                        exit.pid
                    );
                    self.unclaimed.push(exit);
                } else {
                    log::debug!("reaped pid {} that is no container's init", exit.pid);
                }
            }
        }
    }
}

impl Handler<Deleted> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Deleted, _: &mut Context<Self>) {
        if let Err(err) = &msg.result {
            log::warn!(
                "container {}/{} exited but runc could not delete it: {err}",
                msg.key.0,
                msg.key.1
            );
        }
        self.containers.remove(&msg.key);
        self.emit(EventKind::Exit, &msg.key, msg.pid, Some(msg.status.code()));
        self.notify_if_empty();
    }
}

impl Handler<Signal> for Supervisor {
    type Result = ();

    fn handle(&mut self, Signal { req, reply }: Signal, _: &mut Context<Self>) {
        let target = valid_signal(req.signal).and_then(|signal| {
            let (key, container) = self.find(&req.namespace, &req.id)?;
            Ok((signal, key.clone(), container.signal_target()?))
        });
        let (signal, key, pidfd) = match target {
            Ok(target) => target,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        if !req.all {
            let response = match pidfd.send_signal(signal) {
                Ok(()) => Response::Done,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                    Response::Error(ErrorResponse::new(
                        ErrorKind::FailedPrecondition,
                        format!("container \"{}\" is exiting", key.1),
                    ))
                }
                Err(e) => Response::Error(ErrorResponse::new(
                    ErrorKind::Internal,
                    format!("cannot signal container \"{}\": {e}", key.1),
                )),
            };
            let _ = reply.send(response);
            return;
        }
        let submitted = self.pool.submit(Priority::Urgent, move |runc| {
            let response = match runc.kill(&key.0, &key.1, signal, true) {
                Ok(()) => Response::Done,
                Err(err) => {
                    Response::Error(ErrorResponse::new(ErrorKind::Runtime, err.to_string()))
                }
            };
            let _ = reply.send(response);
        });
        if submitted.is_err() {
            log::error!("worker pool is gone; kill --all not sent");
        }
    }
}

impl Handler<List> for Supervisor {
    type Result = MessageResult<List>;

    fn handle(&mut self, msg: List, _: &mut Context<Self>) -> Self::Result {
        let response = match Namespace::new(&msg.namespace) {
            Ok(ns) => {
                let mut list: Vec<_> = self
                    .containers
                    .values()
                    .filter(|c| c.namespace == ns)
                    .map(Container::to_wire)
                    .collect();
                list.sort_by(|a, b| a.id.cmp(&b.id));
                Response::Containers(list)
            }
            Err(err) => Response::Error(invalid(err)),
        };
        MessageResult(response)
    }
}

impl Handler<State> for Supervisor {
    type Result = MessageResult<State>;

    fn handle(&mut self, msg: State, _: &mut Context<Self>) -> Self::Result {
        MessageResult(match self.find(&msg.namespace, &msg.id) {
            Ok((_, container)) => Response::Container(container.to_wire()),
            Err(err) => Response::Error(err),
        })
    }
}

impl Handler<Subscribe> for Supervisor {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(match Namespace::new(&msg.namespace) {
            Ok(ns) => {
                self.subscribers.add(ns, msg.subscription);
                Response::Subscribed
            }
            Err(err) => Response::Error(invalid(err)),
        })
    }
}

impl Handler<Info> for Supervisor {
    type Result = MessageResult<Info>;

    fn handle(&mut self, _: Info, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Response::Info(DaemonInfo {
            version: protocol::VERSION.to_string(),
            pid: std::process::id(),
            uptime_s: self.started_at.elapsed().as_secs(),
            containers: self.containers.len() as u64,
            subscribers: self.subscribers.len() as u64,
            subscriber_drops: self.subscribers.drops(),
        }))
    }
}

impl Handler<TakeMetrics> for Supervisor {
    type Result = MessageResult<TakeMetrics>;

    fn handle(&mut self, msg: TakeMetrics, _: &mut Context<Self>) -> Self::Result {
        let gauge = |name: &str, value: usize| protocol::Gauge {
            name: name.to_string(),
            value: i64::try_from(value).unwrap_or(i64::MAX),
        };
        let gauges = vec![
            gauge("containers", self.containers.len()),
            gauge("containers-running", self.by_pid.len()),
            gauge("subscribers", self.subscribers.len()),
        ];
        let snapshot = self.telemetry.snapshot(gauges, Instant::now());
        let running = if msg.with_containers {
            self.by_pid
                .iter()
                .map(|(&pid, (namespace, id))| RunningContainer {
                    namespace: namespace.to_string(),
                    id: id.to_string(),
                    pid,
                })
                .collect()
        } else {
            Vec::new()
        };
        MessageResult((snapshot, running))
    }
}

impl Handler<Dump> for Supervisor {
    type Result = MessageResult<Dump>;

    fn handle(&mut self, _: Dump, _: &mut Context<Self>) -> Self::Result {
        let mut containers: Vec<ContainerLine> = self
            .containers
            .values()
            .map(|c| ContainerLine {
                namespace: c.namespace.to_string(),
                id: c.id.to_string(),
                status: c.phase.status(),
                pid: c.phase.pid(),
                since: match c.phase {
                    Phase::Starting { since, .. } => Some(since.elapsed()),
                    _ => None,
                },
            })
            .collect();
        containers.sort_by(|a, b| (&a.namespace, &a.id).cmp(&(&b.namespace, &b.id)));
        MessageResult(StateDump {
            containers,
            unclaimed_exits: self.unclaimed.len(),
            subscribers: self.subscribers.len(),
            subscriber_drops: self.subscribers.drops(),
            queued_jobs: self.pool.queued(),
            busy_workers: self.pool.busy(),
            workers: self.pool.size(),
            shutdown_signal: self.shutdown,
        })
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, Shutdown { signal }: Shutdown, _: &mut Context<Self>) {
        self.shutdown = Some(signal);
        self.stopping.store(true, Ordering::Relaxed);
        let mut signalled = 0;
        for container in self.containers.values() {
            if let Ok(pidfd) = container.signal_target() {
                if pidfd.send_signal(signal).is_ok() {
                    signalled += 1;
                }
            }
        }
        log::info!("sent signal {signal} to {signalled} container(s)");
    }
}

impl Handler<CloseSubscriptions> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: CloseSubscriptions, _: &mut Context<Self>) {
        self.subscribers.close_all();
    }
}

impl Handler<WaitEmpty> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: WaitEmpty, _: &mut Context<Self>) {
        self.empty_waiters.push(msg.reply);
        self.notify_if_empty();
    }
}

// ---- admission ------------------------------------------------------------------------------

/// A start that passed every check the actor can make without touching the disk.
struct Admitted {
    key: Key,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Supervisor {
    /// Checks a start request: names, paths, the id's availability. The bundle's contents are
    /// the worker's to check, off the actor.
    fn admit(&self, req: &StartRequest) -> Result<Admitted, ErrorResponse> {
        if self.shutdown.is_some() {
            return Err(ErrorResponse::new(
                ErrorKind::Unavailable,
                "ctrd is shutting down",
            ));
        }
        let key = key(&req.namespace, &req.id)?;
        if self.containers.contains_key(&key) {
            return Err(ErrorResponse::new(
                ErrorKind::AlreadyExists,
                format!("container \"{}\" already exists", key.1),
            ));
        }
        absolute("bundle", &req.bundle)?;
        let dir = self.state_dir.container_dir(&key.0, &key.1);
        let output = |given: &Option<String>, name: &str| match given {
            Some(path) => absolute(name, path).map(|()| PathBuf::from(path)),
            None => Ok(dir.join(format!("{name}.log"))),
        };
        let stdout = output(&req.stdout, "stdout")?;
        let stderr = output(&req.stderr, "stderr")?;
        Ok(Admitted {
            key,
            stdout,
            stderr,
        })
    }
}

// ---- helpers --------------------------------------------------------------------------------

fn key(namespace: &str, id: &str) -> Result<Key, ErrorResponse> {
    let namespace = Namespace::new(namespace).map_err(invalid)?;
    let id = ContainerId::new(id).map_err(invalid)?;
    Ok((namespace, id))
}

fn absolute(what: &str, path: &str) -> Result<(), ErrorResponse> {
    if Path::new(path).is_absolute() {
        return Ok(());
    }
    Err(ErrorResponse::new(
        ErrorKind::InvalidArgument,
        format!("{what} path {path:?} must be absolute"),
    ))
}

fn valid_signal(signal: i32) -> Result<i32, ErrorResponse> {
    if (1..=64).contains(&signal) {
        return Ok(signal);
    }
    Err(ErrorResponse::new(
        ErrorKind::InvalidArgument,
        format!("invalid signal {signal}: must be 1 to 64"),
    ))
}

fn invalid(err: RuntimeError) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::InvalidArgument, err.to_string())
}

fn not_found(id: &ContainerId) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::NotFound, format!("container \"{id}\" not found"))
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
