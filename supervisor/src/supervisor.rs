//! The supervisor actor: the one owner of all container state.
//!
//! Every handler runs in microseconds. runc calls go to the worker [`Pool`] and come back as
//! messages ([`StartDone`], [`Deleted`]); exits come from the keeper as [`Exit`]. Events are
//! emitted here, in the order the actor decides them: a container's `start-container` always
//! precedes its `exit`, and its `exit` is emitted only once runc has deleted it, so an id is free
//! for reuse the moment a client sees the exit. A container's `oom` events precede its `exit`:
//! the worker that deletes it reads the cgroup's OOM kill counter first. Each event is numbered
//! here and handed to the [`Journal`], whose own thread writes it to disk and then delivers it to
//! subscribers.
//!
//! Exec processes (the [`exec`] submodule) are tracked here too: their exits come from the keeper
//! like the init's and are reported with their name, each before the init's own. Checkpoints,
//! and listing and deleting them, are handled in [`checkpoints`]; pause, resume, update, stats
//! and OOM reports in [`control`].

mod adopt;
mod checkpoints;
mod control;
mod exec;

pub use control::{Control, ControlOp, StatsTarget, StatsTargets};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use protocol::{
    DaemonInfo, ErrorKind, ErrorResponse, Event, EventKind, Filter, KillRequest, Response,
    StartRequest, WaitRequest,
};
use runtime::{
    Cgroup, CheckpointName, ContainerId, Namespace, ProcessName, RuntimeError, StateDir,
};
use tokio::sync::oneshot;
use worker::console::Winsize;
use worker::{start_container, Pool, Priority, StartJob, Started};

pub use self::exec::{Exec, KillProcess, Logs, Resize};
use crate::container::{Container, ExecPhase, Key, Phase};
use crate::dump::{ContainerLine, StateDump};
use crate::journal::{Journal, Liveness, ProcessKey, Registration};
use crate::keeper_link::{Exit, KeeperLink, Outcome};
use crate::metrics::telemetry::{Snapshot, StartTiming, Telemetry};
use crate::metrics::RunningContainer;
use crate::oom::OomNotifier;
use crate::recovery::Recovery;

pub use checkpoints::{Checkpoint, DeleteCheckpoint, ListCheckpoints};

/// The name of a container's main process in events.
pub const INIT: &str = "init";

/// Which process of a container a pid is.
#[derive(Debug, Clone)]
enum Member {
    Init,
    Exec(ProcessName),
}

/// How long the cleanup after an exit waits for the container's last output to reach its files.
const RELAY_WAIT: Duration = Duration::from_secs(5);

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

/// The keeper reaped a process, or a process ended where no keeper could reap it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExitMsg(pub Exit);

/// A worker ran `runc delete` for a container whose init exited.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deleted {
    key: Key,
    result: Result<(), RuntimeError>,
    /// The cgroup's OOM kill counter, read just before runc deleted it.
    oom_kills: u64,
}

/// Signal a container's init (through its pidfd) or, with `all`, all its processes (through runc).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Signal {
    pub req: KillRequest,
    pub reply: oneshot::Sender<Response>,
}

/// The containers of one namespace that pass the filter.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct List {
    pub namespace: String,
    pub filter: Filter<protocol::Container>,
}

/// One container, and its cgroup for the caller to read its limits from (off the actor).
#[derive(Message)]
#[rtype(result = "Result<(protocol::Container, Option<Cgroup>), ErrorResponse>")]
pub struct State {
    pub namespace: String,
    pub id: String,
}

/// Subscribe to the namespace's events that pass the filter, from the next one on;
/// `registered` gets the live queue and what to replay from the journal.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct Subscribe {
    pub namespace: String,
    pub filter: Arc<Filter<Event>>,
    pub registered: oneshot::Sender<Registration>,
}

/// Answer `reply` with the process's `exit` event once it has exited (at once if it has).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wait {
    pub req: WaitRequest,
    pub reply: oneshot::Sender<Response>,
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

/// A new daemon takes over: refuse new work from now on, leave the containers alone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandOver;

/// Whether nothing is in flight: no start, exec, checkpoint, pause, resume or update under way,
/// no exit waiting for its cleanup, no job in the pool.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Settled;

/// Answer `reply` once every event emitted so far, and what follows them, is on disk.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flushed {
    pub reply: oneshot::Sender<()>,
}

// ---- state ----------------------------------------------------------------------------------

pub struct Supervisor {
    state_dir: StateDir,
    pool: Arc<Pool>,
    containers: HashMap<Key, Container>,
    /// Pids of running processes: inits and execs.
    by_pid: HashMap<u32, (Key, Member)>,
    /// Exits of pids no container claimed yet: one may be the init of a start, or the process of
    /// an exec, still in flight.
    unclaimed: Vec<Exit>,
    journal: Journal,
    /// The sequence number of the next event.
    next_seq: u64,
    /// The signal sent at shutdown; containers that finish starting afterwards get it too.
    shutdown: Option<i32>,
    /// Tells queued start jobs not to run once shutdown began.
    stopping: Arc<AtomicBool>,
    empty_waiters: Vec<oneshot::Sender<()>>,
    started_at: Instant,
    /// Whether to report OOM kills (`--no-oom-notify` turns it off).
    oom_notify: bool,
    /// Started with the actor when `oom_notify` is on.
    oom: Option<OomNotifier>,
    telemetry: Telemetry,
    /// Subscriber drops the telemetry has counted; the journal counts them as they happen.
    drops_seen: u64,
    /// Reaps and records exits, holds output pipes; told when both are dealt with.
    keeper: Arc<KeeperLink>,
    /// Containers taken over from an earlier daemon at start-up.
    recovered: u64,
    /// A new daemon is taking over: requests that would start work are refused.
    handing_over: bool,
    /// What an earlier daemon left, taken over when the actor starts.
    recovery: Option<Recovery>,
}

impl Supervisor {
    /// `last_seq` is the last sequence number the journal holds; numbering continues after it.
    pub fn new(
        state_dir: StateDir,
        pool: Arc<Pool>,
        journal: Journal,
        last_seq: u64,
        keeper: Arc<KeeperLink>,
    ) -> Self {
        Supervisor {
            state_dir,
            pool,
            containers: HashMap::new(),
            by_pid: HashMap::new(),
            unclaimed: Vec::new(),
            journal,
            next_seq: last_seq + 1,
            shutdown: None,
            stopping: Arc::new(AtomicBool::new(false)),
            empty_waiters: Vec::new(),
            started_at: Instant::now(),
            oom_notify: true,
            oom: None,
            telemetry: Telemetry::new(Instant::now()),
            drops_seen: 0,
            keeper,
            recovered: 0,
            handing_over: false,
            recovery: None,
        }
    }

    /// Takes over what an earlier daemon left, once the actor runs.
    pub fn recover(mut self, recovery: Recovery) -> Self {
        self.recovery = Some(recovery);
        self
    }

    /// Turns OOM reporting on or off; on by default.
    pub fn oom_notify(mut self, enabled: bool) -> Self {
        self.oom_notify = enabled;
        self
    }

    /// Numbers the event and hands it to the journal; it carries the labels of the container
    /// `key` names, so emit before removing the container.
    fn emit(&mut self, kind: EventKind, key: &Key, process: &str, pid: u32, status: Option<i32>) {
        self.publish(kind, key, process, pid, status, false);
    }

    /// [`Supervisor::emit`], for an `exit` that may report an OOM kill.
    fn publish(
        &mut self,
        kind: EventKind,
        key: &Key,
        process: &str,
        pid: u32,
        status: Option<i32>,
        oom_killed: bool,
    ) {
        let labels = self
            .containers
            .get(key)
            .map(|c| c.labels.clone())
            .unwrap_or_default();
        let seq = self.next_seq;
        self.next_seq += 1;
        let event = Event {
            seq,
            time: now_ns(),
            kind,
            namespace: key.0.to_string(),
            id: key.1.to_string(),
            process: process.to_string(),
            pid,
            status,
            labels,
            oom_killed,
        };
        log::debug!(
            "event {seq} {kind} {}/{} {process} pid {pid} status {status:?}",
            key.0,
            key.1
        );
        self.journal.append(event);
        let now = Instant::now();
        self.telemetry.event(now);
        self.count_drops(now);
    }

    fn find(&self, namespace: &str, id: &str) -> Result<(&Key, &Container), ErrorResponse> {
        let key = key(namespace, id)?;
        self.containers
            .get_key_value(&key)
            .ok_or_else(|| not_found(&key.1))
    }

    /// The init of a running container exited: delete it through runc, then report the exit
    /// (once its execs' exits are reported, see [`Supervisor::finish`]).
    fn init_exited(&mut self, key: Key, exit: Exit, ctx: &mut Context<Self>) {
        let Some(container) = self.containers.get_mut(&key) else {
            return;
        };
        if let Phase::Checkpointing { exited, .. } = &mut container.phase {
            *exited = Some(exit);
            return;
        }
        let Some(pid) = container.phase.pid() else {
            return;
        };
        if let Outcome::Unknown(why) = exit.outcome {
            log::warn!(
                "container {}/{} (pid {pid}) exited with an unknown status: {why}",
                key.0,
                key.1
            );
        }
        let cgroup = container
            .phase
            .cgroup()
            .cloned()
            .filter(|_| self.oom_notify);
        container.phase = Phase::Stopped {
            exit,
            deleted: false,
        };
        // They die with the init's pid namespace; this ends them in a container without one.
        for exec in container.execs.values() {
            if let ExecPhase::Running {
                pidfd: Some(pidfd), ..
            } = &exec.phase
            {
                let _ = pidfd.send_signal(libc::SIGKILL);
            }
        }
        if let Some(oom) = &self.oom {
            oom.unwatch(key.clone());
        }
        let relay = container.relay.take();
        let addr = ctx.address();
        let submitted = self.pool.submit(Priority::Urgent, move |runc| {
            // runc delete removes the cgroup, and with it the record of any OOM kill.
            let oom_kills = cgroup.map_or(0, |c| c.oom_kills().unwrap_or(0));
            // A checkpoint with exit has had runc delete the container already.
            let result = if runc.has_state(&key.0, &key.1) {
                runc.delete(&key.0, &key.1, true)
            } else {
                Ok(())
            };
            if let Some(relay) = relay {
                if !relay.wait(RELAY_WAIT) {
                    log::warn!(
                        "container {}/{}: output still open {RELAY_WAIT:?} after its exit",
                        key.0,
                        key.1
                    );
                }
            }
            addr.do_send(Deleted {
                key,
                result,
                oom_kills,
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

    /// When the oldest start or exec still in flight was queued.
    fn oldest_in_flight(&self) -> Option<Instant> {
        self.containers
            .values()
            .flat_map(|c| {
                let start = match c.phase {
                    Phase::Starting { since, .. } => Some(since),
                    _ => None,
                };
                let execs = c.execs.values().filter_map(|e| match e.phase {
                    ExecPhase::Starting { since, .. } => Some(since),
                    ExecPhase::Running { .. } => None,
                });
                start.into_iter().chain(execs)
            })
            .min()
    }

    /// Keeps only exits that a start or exec still in flight could claim; the keeper may forget
    /// the others.
    fn prune_unclaimed(&mut self) {
        if self.unclaimed.is_empty() {
            return;
        }
        let oldest = self.oldest_in_flight();
        let keeper = &self.keeper;
        self.unclaimed.retain(|e| {
            let keep = oldest.is_some_and(|oldest| e.reaped_at >= oldest);
            if !keep {
                if let Some(seq) = e.ack {
                    keeper.ack(seq);
                }
            }
            keep
        });
    }

    /// Rewrites the container's record (its processes changed), after the events before.
    fn persist(&self, key: &Key) {
        let Some(record) = self.containers.get(key).and_then(Container::record) else {
            return;
        };
        let state = self.state_dir.clone();
        self.journal.after_write(move || {
            if let Err(e) = record.write(&state) {
                log::warn!(
                    "cannot update the record of {}/{}: {e}",
                    record.namespace,
                    record.id
                );
            }
        });
    }

    /// Once the events before are on disk, the exit numbered `ack` is dealt with.
    fn acknowledge(&self, ack: Option<u64>) {
        if let Some(seq) = ack {
            let keeper = self.keeper.clone();
            self.journal.after_write(move || keeper.ack(seq));
        }
    }

    /// Reports a stopped container's exit and forgets it, once runc has deleted it and every exec
    /// of it has been reported.
    fn finish(&mut self, key: &Key) {
        let Some(container) = self.containers.get(key) else {
            return;
        };
        let Phase::Stopped {
            exit,
            deleted: true,
        } = container.phase
        else {
            return;
        };
        if !container.execs.is_empty() {
            return;
        }
        let oom_killed = container.oom_kills > 0;
        let record = container.record();
        let relayed = container.relayed;
        self.publish(
            EventKind::Exit,
            key,
            INIT,
            exit.pid,
            exit.outcome.code(),
            oom_killed,
        );
        // The record goes only once the exit is on disk: a daemon killed in between finds the
        // exit in the journal and does not report it again.
        let state = self.state_dir.clone();
        let keeper = self.keeper.clone();
        self.journal.after_write(move || {
            let Some(record) = record else {
                return;
            };
            if let Err(e) = record.remove(&state) {
                log::warn!(
                    "cannot remove the record of {}/{}: {e}",
                    record.namespace,
                    record.id
                );
            }
            if relayed {
                keeper.release(record.token());
            }
        });
        self.acknowledge(exit.ack);
        self.containers.remove(key);
        self.notify_if_empty();
    }

    /// Brings the telemetry's count of dropped subscribers up to the journal's.
    fn count_drops(&mut self, now: Instant) {
        let drops = self.journal.drops();
        if drops > self.drops_seen {
            self.telemetry
                .subscribers_dropped(drops - self.drops_seen, now);
            self.drops_seen = drops;
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

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.oom_notify {
            let addr = ctx.address();
            match OomNotifier::start(move |key, kills| {
                addr.do_send(control::OomKilled { key, kills })
            }) {
                Ok(notifier) => self.oom = Some(notifier),
                Err(e) => log::error!("cannot start the oom notifier; no oom events: {e}"),
            }
        }
        if let Some(recovery) = self.recovery.take() {
            self.adopt(recovery, ctx);
        }
    }
}

// ---- handlers -------------------------------------------------------------------------------

impl Handler<Start> for Supervisor {
    type Result = ();

    fn handle(&mut self, Start { req, reply }: Start, ctx: &mut Context<Self>) {
        let Admitted {
            key,
            stdout,
            stderr,
            checkpoint,
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
            stdin: req.stdin.as_ref().map(PathBuf::from),
            stdout: stdout.clone(),
            stderr: stderr.clone(),
            checkpoint,
            terminal: req.terminal.map(|size| Winsize {
                rows: size.rows,
                cols: size.cols,
            }),
            labels: req.labels.clone(),
            created: now_ns(),
        };
        let created = job.created;
        let since = Instant::now();
        let addr = ctx.address();
        let stopping = self.stopping.clone();
        let keeper = self.keeper.clone();
        let submitted = self.pool.submit(Priority::Normal, move |runc| {
            let picked_up = Instant::now();
            let result = if stopping.load(Ordering::Relaxed) {
                Err(RuntimeError::Failed {
                    op: "run",
                    id: job.id.to_string(),
                    message: "ctrd is shutting down".into(),
                })
            } else {
                start_container(runc, &job, &*keeper)
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
            created,
            phase: Phase::Starting { since, reply },
            oom_kills: 0,
            control: None,
            relay: None,
            relayed: false,
            init_start: None,
            args: Vec::new(),
            console: None,
            execs: Default::default(),
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
                    RuntimeError::NoCheckpoint { .. } => ErrorKind::NotFound,
                    _ => ErrorKind::Runtime,
                };
                self.telemetry.start_failed(Instant::now());
                let message = format!("cannot start container \"{}\": {err}", key.1);
                log::info!("{message}");
                self.journal.abandon(&key.0, &key.1, message.clone());
                self.keeper.release(runtime::record::token(
                    key.0.as_str(),
                    key.1.as_str(),
                    container.created,
                ));
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
        if let (Some(oom), Some(cgroup)) = (&self.oom, &started.cgroup) {
            oom.watch(key.clone(), cgroup.clone());
        }
        self.containers.insert(
            key.clone(),
            Container {
                phase: Phase::Running {
                    pid,
                    pidfd: started.pidfd,
                    cgroup: started.cgroup,
                    paused: false,
                },
                relayed: started.relay.is_some(),
                relay: started.relay,
                init_start: started.start_time,
                args: started.args,
                console: started.console,
                ..container
            },
        );
        self.by_pid.insert(pid, (key.clone(), Member::Init));
        self.emit(EventKind::StartContainer, &key, INIT, pid, None);
        let _ = reply.send(Response::Started(protocol::Started { pid }));
        if let Some(exit) = self.claim_unclaimed_exit(pid, since) {
            self.by_pid.remove(&pid);
            self.init_exited(key, exit, ctx);
        }
        self.prune_unclaimed();
    }
}

impl Handler<ExitMsg> for Supervisor {
    type Result = ();

    fn handle(&mut self, ExitMsg(exit): ExitMsg, ctx: &mut Context<Self>) {
        let member = self
            .by_pid
            .get(&exit.pid)
            .filter(|(key, member)| self.is_same_process(key, member, exit.start_time))
            .cloned();
        if member.is_some() {
            self.by_pid.remove(&exit.pid);
        }
        match member {
            Some((key, Member::Init)) => self.init_exited(key, exit, ctx),
            Some((key, Member::Exec(name))) => self.exec_exited(&key, &name, exit),
            None => {
                if self.oldest_in_flight().is_some() {
                    log::debug!(
                        "pid {} exited before any start or exec claimed it; holding it",
                        exit.pid
                    );
                    self.unclaimed.push(exit);
                } else {
                    log::debug!("reaped pid {} that is no container's process", exit.pid);
                    if let Some(seq) = exit.ack {
                        self.keeper.ack(seq);
                    }
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
        if let Some(container) = self.containers.get_mut(&msg.key) {
            if let Phase::Stopped { deleted, .. } = &mut container.phase {
                *deleted = true;
            }
            let reported = container.oom_kills;
            container.oom_kills = reported.max(msg.oom_kills);
            if msg.oom_kills > reported {
                let pid = container.phase.pid().unwrap_or(0);
                self.emit(EventKind::Oom, &msg.key, INIT, pid, None);
            }
        }
        self.finish(&msg.key);
    }
}

impl Handler<Signal> for Supervisor {
    type Result = ();

    fn handle(&mut self, Signal { req, reply }: Signal, ctx: &mut Context<Self>) {
        let target = valid_signal(req.signal).and_then(|signal| {
            let (key, container) = self.find(&req.namespace, &req.id)?;
            let paused = container.phase.is_paused();
            Ok((signal, key.clone(), container.signal_target()?, paused))
        });
        let (signal, key, pidfd, paused) = match target {
            Ok(target) => target,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        if !req.all {
            let response = match pidfd.send_signal(signal) {
                Ok(()) if paused => Response::Noted(format!(
                    "container \"{}\" is paused: signal {signal} is delivered when it is resumed",
                    key.1
                )),
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
        let addr = ctx.address();
        let submitted = self.pool.submit(Priority::Urgent, move |runc| {
            let response = match runc.kill(&key.0, &key.1, signal, true) {
                // runc freezes the container, signals every process, then thaws it.
                Ok(()) if paused => {
                    let note = format!(
                        "container \"{}\" was paused: runc kill --all thawed it to deliver signal \
                         {signal}, so it runs again",
                        key.1
                    );
                    addr.do_send(control::Thawed { key });
                    Response::Noted(note)
                }
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
                    .filter(|c| msg.filter.matches(c))
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
        MessageResult(
            self.find(&msg.namespace, &msg.id)
                .map(|(_, c)| (c.to_wire(), c.phase.cgroup().cloned())),
        )
    }
}

impl Handler<Subscribe> for Supervisor {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(match Namespace::new(&msg.namespace) {
            Ok(namespace) => {
                self.journal
                    .subscribe(namespace, msg.filter, msg.registered);
                Response::Subscribed
            }
            Err(err) => Response::Error(invalid(err)),
        })
    }
}

impl Handler<Wait> for Supervisor {
    type Result = ();

    /// A container the actor still holds has its exit to come, which the journal hands to the
    /// waiter once written; for any other, the journal answers with the last exit it holds.
    fn handle(&mut self, Wait { req, reply }: Wait, _: &mut Context<Self>) {
        let key = match key(&req.namespace, &req.id) {
            Ok(key) => key,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        // The init, or an exec the container still holds, is still to exit; for any other
        // process the journal answers with its exit, if it holds one.
        let liveness = match self.containers.get(&key) {
            None => Liveness::ContainerGone,
            Some(c)
                if req.process == INIT
                    || ProcessName::new(&req.process)
                        .is_ok_and(|name| c.execs.contains_key(&name)) =>
            {
                Liveness::Running
            }
            Some(_) => Liveness::NotRunning,
        };
        let process = ProcessKey {
            namespace: req.namespace,
            id: req.id,
            process: req.process,
        };
        self.journal.wait(process, liveness, reply);
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
            subscribers: self.journal.subscribers(),
            subscriber_drops: self.journal.drops(),
            keeper_pid: self.keeper.keeper_pid(),
            recovered: self.recovered,
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
        let running: Vec<RunningContainer> = self
            .containers
            .values()
            .filter_map(|c| match &c.phase {
                Phase::Running { cgroup, .. } => Some(RunningContainer {
                    namespace: c.namespace.to_string(),
                    id: c.id.to_string(),
                    cgroup: cgroup.clone(),
                }),
                _ => None,
            })
            .collect();
        let gauges = vec![
            gauge("containers", self.containers.len()),
            gauge("containers-running", running.len()),
            gauge(
                "subscribers",
                usize::try_from(self.journal.subscribers()).unwrap_or(usize::MAX),
            ),
        ];
        let now = Instant::now();
        self.count_drops(now);
        let snapshot = self.telemetry.snapshot(gauges, now);
        let running = if msg.with_containers {
            running
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
            subscribers: usize::try_from(self.journal.subscribers()).unwrap_or(usize::MAX),
            subscriber_drops: self.journal.drops(),
            queued_jobs: self.pool.queued(),
            busy_workers: self.pool.busy(),
            workers: self.pool.size(),
            shutdown_signal: self.shutdown,
        })
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, Shutdown { signal }: Shutdown, ctx: &mut Context<Self>) {
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
        self.resume_paused(ctx);
    }
}

impl Handler<CloseSubscriptions> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: CloseSubscriptions, _: &mut Context<Self>) {
        self.journal.close_subscriptions();
    }
}

impl Handler<HandOver> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: HandOver, _: &mut Context<Self>) {
        self.handing_over = true;
    }
}

impl Handler<Settled> for Supervisor {
    type Result = bool;

    fn handle(&mut self, _: Settled, _: &mut Context<Self>) -> bool {
        let busy = |c: &Container| {
            c.control.is_some()
                || matches!(
                    c.phase,
                    Phase::Starting { .. } | Phase::Checkpointing { .. } | Phase::Stopped { .. }
                )
                || c.execs
                    .values()
                    .any(|e| matches!(e.phase, ExecPhase::Starting { .. }))
        };
        self.pool.idle() && !self.containers.values().any(busy)
    }
}

impl Handler<Flushed> for Supervisor {
    type Result = ();

    fn handle(&mut self, Flushed { reply }: Flushed, _: &mut Context<Self>) {
        self.journal.after_write(move || {
            let _ = reply.send(());
        });
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
    checkpoint: Option<CheckpointName>,
}

impl Supervisor {
    /// Checks a start request: names, paths, the id's availability. The bundle's contents are
    /// the worker's to check, off the actor.
    fn admit(&self, req: &StartRequest) -> Result<Admitted, ErrorResponse> {
        self.accepting()?;
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
        if let Some(stdin) = &req.stdin {
            absolute("stdin", stdin)?;
        }
        if req.terminal.is_some() && (req.stdin.is_none() || req.stdout.is_none()) {
            return Err(ErrorResponse::new(
                ErrorKind::InvalidArgument,
                "a terminal needs the client's stdin and stdout fifos (start --attach --tty)",
            ));
        }
        let stdout = output(&req.stdout, "stdout")?;
        let stderr = output(&req.stderr, "stderr")?;
        let checkpoint = req
            .checkpoint
            .as_deref()
            .map(CheckpointName::new)
            .transpose()
            .map_err(invalid)?;
        Ok(Admitted {
            key,
            stdout,
            stderr,
            checkpoint,
        })
    }
}

impl Supervisor {
    /// Whether new work may start: not while shutting down, nor while handing over to a new
    /// daemon.
    fn accepting(&self) -> Result<(), ErrorResponse> {
        let why = if self.shutdown.is_some() {
            "ctrd is shutting down"
        } else if self.handing_over {
            "ctrd is restarting (an upgrade); try again in a moment"
        } else {
            return Ok(());
        };
        Err(ErrorResponse::new(ErrorKind::Unavailable, why))
    }

    /// Whether an exit with this start time can be the process `member` of `key`: a pid seen
    /// again with another start time is another process (a stale exit replayed by the keeper).
    fn is_same_process(&self, key: &Key, member: &Member, start_time: Option<u64>) -> bool {
        let Some(container) = self.containers.get(key) else {
            return false;
        };
        let known = match member {
            Member::Init => container.init_start,
            Member::Exec(name) => container.execs.get(name).and_then(|e| match e.phase {
                ExecPhase::Running { start_time, .. } => start_time,
                ExecPhase::Starting { .. } => None,
            }),
        };
        match (known, start_time) {
            (Some(known), Some(reaped)) => known == reaped,
            _ => true,
        }
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
