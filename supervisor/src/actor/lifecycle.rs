//! A container's life as the actor sees it: [`Start`] (admitted, then run by a worker, back as
//! [`StartDone`]), [`StartExisting`] (a stopped container started again, or restored),
//! [`Signal`], the keeper's [`Exit`] of its init, the cleanup that follows ([`Deleted`]), and the
//! `exit` event once runc has deleted it and every exec of it is reported; the container is then
//! stopped and kept, with its exit, until it is deleted (see [`super::delete`]).
//!
//! An exit can reach the actor before the result of the start (or exec) whose process it is:
//! such exits wait among the unclaimed while any start or exec is in flight, and the start's
//! result claims its own by pid and start time, so `start-container` still precedes its one
//! `exit`. An exit that comes during a checkpoint waits in the container's phase (see
//! [`super::checkpoints`]).

use std::path::PathBuf;
use std::time::Instant;

use actix::prelude::*;
use protocol::{
    ErrorKind, ErrorResponse, EventKind, KillRequest, Response, StartExistingRequest, StartRequest,
};
use runtime::CheckpointName;
use tokio::sync::oneshot;
use worker::console::Winsize;
use worker::pool::PoolClosed;
use worker::StartJob;

use super::errors::{absolute, invalid, key, pool_gone, runtime_error, valid_signal};
use super::exec::ExecExit;
use super::jobs::{Deleted, Job, StartDone};
use super::supervisor::{now_ns, Member, Supervisor};
use crate::container::{Again, Container, ContainerPhase, Ended, ExecPhase, Key, INIT};
use crate::keeper_link::{Outcome, ProcessExit};

// ---- messages -------------------------------------------------------------------------------

/// Start a container; `reply` is answered once it runs or has failed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Start {
    pub req: StartRequest,
    pub reply: oneshot::Sender<Response>,
}

/// Start a stopped container again from its bundle, or restore it from a checkpoint; `reply` is
/// answered once it runs or has failed (and is stopped as it was).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartExisting {
    pub req: StartExistingRequest,
    pub reply: oneshot::Sender<Response>,
}

/// The keeper reaped a process, or a process ended where no keeper could reap it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Exit(pub ProcessExit);

/// Signal a container's init (through its pidfd) or, with `all`, all its processes (through runc).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Signal {
    pub req: KillRequest,
    pub reply: oneshot::Sender<Response>,
}

// ---- handlers -------------------------------------------------------------------------------

impl Handler<Start> for Supervisor {
    type Result = ();

    fn handle(&mut self, Start { req, reply }: Start, ctx: &mut Context<Self>) {
        let deleting = key(&req.namespace, &req.id)
            .ok()
            .and_then(|key| self.removing.get_mut(&key));
        if let Some(removal) = deleting {
            // The id is free once the deletion in flight is done: the start follows it.
            removal.starts.push(Start { req, reply });
            return;
        }
        if let Some(again) = self.as_start_again(&req) {
            <Self as Handler<StartExisting>>::handle(
                self,
                StartExisting { req: again, reply },
                ctx,
            );
            return;
        }
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
            remove: req.remove,
        };
        let created = job.created;
        let Ok(since) = self.submit_start(job, ctx) else {
            let _ = reply.send(Response::Error(pool_gone()));
            return;
        };
        let container = Container {
            namespace: key.0.clone(),
            id: key.1.clone(),
            bundle: req.bundle,
            labels: req.labels,
            stdout,
            stderr,
            created,
            phase: ContainerPhase::Starting {
                since,
                reply,
                again: None,
            },
            oom_kills: 0,
            control: None,
            relay: None,
            relayed: false,
            init_start: None,
            args: Vec::new(),
            console: None,
            execs: Default::default(),
            remove: req.remove,
            deleters: Vec::new(),
        };
        self.containers.insert(key, container);
    }
}

impl Handler<StartExisting> for Supervisor {
    type Result = ();

    fn handle(&mut self, StartExisting { req, reply }: StartExisting, ctx: &mut Context<Self>) {
        let job = match self.admit_again(&req) {
            Ok(job) => job,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        let key = (job.namespace.clone(), job.id.clone());
        let created = job.created;
        let Ok(since) = self.submit_start(job, ctx) else {
            let _ = reply.send(Response::Error(pool_gone()));
            return;
        };
        let Some(container) = self.containers.get_mut(&key) else {
            return;
        };
        let record = container.record();
        // admit_again let only a stopped container through.
        let ContainerPhase::Stopped(ended) = container.phase else {
            return;
        };
        let again = Again {
            created: std::mem::replace(&mut container.created, created),
            ended,
            record,
        };
        container.phase = ContainerPhase::Starting {
            since,
            reply,
            again: Some(Box::new(again)),
        };
        container.oom_kills = 0;
        container.relay = None;
        container.init_start = None;
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
        let ContainerPhase::Starting {
            since,
            reply,
            again,
        } = container.phase
        else {
            log::error!("start of {}/{} finished twice", key.0, key.1);
            self.containers.insert(key, container);
            return;
        };
        let started = match result {
            Ok(started) => started,
            Err(err) => {
                self.telemetry.start_failed(Instant::now());
                let error = runtime_error(format!("cannot start container \"{}\"", key.1), &err);
                log::info!("{}", error.message);
                self.journal
                    .abandon(&key.0, &key.1, None, error.message.clone());
                self.keeper.release(runtime::record::token(
                    key.0.as_str(),
                    key.1.as_str(),
                    container.created,
                ));
                let _ = reply.send(Response::Error(error));
                if let Some(again) = again {
                    // A stopped container that failed to start again is stopped as it was.
                    let stopped = Container {
                        created: again.created,
                        phase: ContainerPhase::Stopped(again.ended),
                        ..container
                    };
                    self.containers.insert(key, stopped);
                }
                self.prune_unclaimed();
                self.notify_if_empty();
                return;
            }
        };
        if let Some(old) = again.and_then(|again| again.record) {
            // The new life has its own record (the worker wrote it); the last one's goes.
            let state = self.state_dir.clone();
            self.journal.after_write(move || {
                if let Err(e) = old.remove(&state) {
                    log::warn!(
                        "cannot remove the record of {}/{}: {e}",
                        old.namespace,
                        old.id
                    );
                }
            });
        }
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
                phase: ContainerPhase::Running {
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

impl Handler<Exit> for Supervisor {
    type Result = ();

    /// Finds whose exit it is by pid (and start time): the init's ends its container, an
    /// exec's is an [`ExecExit`]; one nobody claims may belong to a start or exec in flight.
    fn handle(&mut self, Exit(exit): Exit, ctx: &mut Context<Self>) {
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
            Some((key, Member::Exec(name))) => {
                let exec_exit = ExecExit { key, name, exit };
                <Self as Handler<ExecExit>>::handle(self, exec_exit, ctx);
            }
            None => {
                if self.oldest_in_flight().is_some() {
                    log::debug!(
                        "pid {} exited before any start or exec claimed it; holding it",
                        exit.pid
                    );
                    self.hold_unclaimed(exit);
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

    fn handle(&mut self, msg: Deleted, ctx: &mut Context<Self>) {
        if let Err(err) = &msg.result {
            log::warn!(
                "container {}/{} exited but runc could not delete it: {err}",
                msg.key.0,
                msg.key.1
            );
        }
        if let Some(container) = self.containers.get_mut(&msg.key) {
            if let ContainerPhase::Exiting { deleted, .. } = &mut container.phase {
                *deleted = true;
            }
            let reported = container.oom_kills;
            container.oom_kills = reported.max(msg.oom_kills);
            if msg.oom_kills > reported {
                let pid = container.phase.pid().unwrap_or(0);
                self.emit(EventKind::Oom, &msg.key, INIT, pid, None);
            }
        }
        self.finish(&msg.key, ctx);
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
        let submitted = self.workers.submit(Job::KillAll {
            key,
            signal,
            paused,
            reply,
            thawed: ctx.address().recipient(),
        });
        if submitted.is_err() {
            log::error!("worker pool is gone; kill --all not sent");
        }
    }
}

// ---- the init's exit ------------------------------------------------------------------------

impl Supervisor {
    /// The init of a running container exited: delete it through runc, then report the exit
    /// (once its execs' exits are reported, see [`Supervisor::finish`]).
    pub(super) fn init_exited(&mut self, key: Key, exit: ProcessExit, ctx: &mut Context<Self>) {
        let Some(container) = self.containers.get_mut(&key) else {
            return;
        };
        if let ContainerPhase::Checkpointing { exited, .. } = &mut container.phase {
            *exited = Some(exit);
            return;
        }
        let ContainerPhase::Running { pid, .. } = container.phase else {
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
        container.phase = ContainerPhase::Exiting {
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
        let relay = container.relay.clone();
        let submitted = self.workers.submit(Job::Delete {
            key,
            cgroup,
            relay,
            done: ctx.address().recipient(),
        });
        if submitted.is_err() {
            log::error!("worker pool is gone; container {pid} left to runc");
        }
    }

    /// Reports the exit of an exiting container, once runc has deleted it and every exec of it
    /// has been reported: it is then stopped, kept with its exit (or deleted, if it was to be).
    pub(super) fn finish(&mut self, key: &Key, ctx: &mut Context<Self>) {
        let Some(container) = self.containers.get(key) else {
            return;
        };
        let ContainerPhase::Exiting {
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
        let status = exit.outcome.code();
        let time = self.publish(EventKind::Exit, key, INIT, exit.pid, status, oom_killed);
        let Some(container) = self.containers.get_mut(key) else {
            return;
        };
        container.phase = ContainerPhase::Stopped(Ended {
            pid: exit.pid,
            status,
            time,
            oom_killed,
        });
        let record = container.record();
        let relayed = container.relayed;
        let remove = container.remove;
        // The record takes the exit only once the exit is on disk: a daemon killed in between
        // finds the exit in the journal and takes it from there.
        let state = self.state_dir.clone();
        let keeper = self.keeper.clone();
        self.journal.after_write(move || {
            let Some(record) = record else {
                return;
            };
            if !remove {
                if let Err(e) = record.write(&state) {
                    log::warn!(
                        "cannot record the exit of {}/{}: {e}",
                        record.namespace,
                        record.id
                    );
                }
            }
            if relayed {
                keeper.release(record.token());
            }
        });
        self.acknowledge(exit.ack);
        if remove {
            self.remove_stopped(key, ctx);
        }
        self.notify_if_empty();
    }

    /// Submits a start (or restore) to the workers; returns when it was queued: an exit reaped
    /// before cannot be its init's.
    fn submit_start(
        &mut self,
        job: StartJob,
        ctx: &mut Context<Self>,
    ) -> Result<Instant, PoolClosed> {
        let since = Instant::now();
        self.workers.submit(Job::Start {
            job,
            cancelled: self.stopping.clone(),
            done: ctx.address().recipient(),
        })?;
        Ok(since)
    }
}

// ---- exits no process claimed yet -----------------------------------------------------------

impl Supervisor {
    /// Holds the exit of a pid no container claims while a start or exec is in flight.
    ///
    /// What is held is bounded, without a count to evict by: that could drop a real exit (one
    /// a start or exec in flight will claim) in a flood of orphans' exits. Instead:
    /// - exits are held by pid, at most one per pid, so never more than the kernel's
    ///   `pid_max` of them however fast a container's orphans exit: a pid is given to a new
    ///   process only once the keeper has reaped the old one, and the kernel hands out every
    ///   other pid before it comes back to one;
    /// - a second exit of a held pid replaces the first, which is acknowledged like any exit
    ///   no one claims. The first could only be real if a start's (or exec's) own process
    ///   exited, and the kernel then handed out every other pid and this one again, all
    ///   before that start's result (a few system calls after runc returns) reached the
    ///   actor; the warning below makes every replacement visible;
    /// - [`Supervisor::prune_unclaimed`] drops (and acknowledges) every exit reaped before the
    ///   oldest start or exec still in flight was queued, each time one finishes: none of them
    ///   can be claimed any more.
    fn hold_unclaimed(&mut self, exit: ProcessExit) {
        if let Some(earlier) = self.unclaimed.insert(exit.pid, exit) {
            log::warn!(
                "pid {} exited twice while no start or exec claimed it; the kernel reused it",
                exit.pid
            );
            if let Some(seq) = earlier.ack {
                self.keeper.ack(seq);
            }
        }
    }

    /// The exit of `pid` held since the start or exec that began at `since`, if one came.
    pub(super) fn claim_unclaimed_exit(&mut self, pid: u32, since: Instant) -> Option<ProcessExit> {
        let exit = self.unclaimed.get(&pid)?;
        (exit.reaped_at >= since).then(|| self.unclaimed.remove(&pid))?
    }

    /// When the oldest start or exec still in flight was queued.
    fn oldest_in_flight(&self) -> Option<Instant> {
        self.containers
            .values()
            .flat_map(|c| {
                let start = match c.phase {
                    ContainerPhase::Starting { since, .. } => Some(since),
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
    pub(super) fn prune_unclaimed(&mut self) {
        if self.unclaimed.is_empty() {
            return;
        }
        let oldest = self.oldest_in_flight();
        let keeper = &self.keeper;
        self.unclaimed.retain(|_, e| {
            let keep = oldest.is_some_and(|oldest| e.reaped_at >= oldest);
            if !keep {
                if let Some(seq) = e.ack {
                    keeper.ack(seq);
                }
            }
            keep
        });
    }

    /// Whether an exit with this start time can be the process `member` of `key`: a pid seen
    /// again with another start time is another process (a stale exit replayed by the keeper).
    pub(super) fn is_same_process(
        &self,
        key: &Key,
        member: &Member,
        start_time: Option<u64>,
    ) -> bool {
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

// ---- admission ------------------------------------------------------------------------------

impl Supervisor {
    /// A start that names a stopped container exactly as it was started (bundle, labels,
    /// outputs, `--rm`) starts it again, as one without a bundle does; anything else about it
    /// is refused by [`Supervisor::admit`].
    fn as_start_again(&self, req: &StartRequest) -> Option<StartExistingRequest> {
        let key = key(&req.namespace, &req.id).ok()?;
        let container = self.containers.get(&key)?;
        let dir = self.state_dir.container_dir(&key.0, &key.1);
        let output = |given: &Option<String>, name: &str| {
            given
                .as_ref()
                .map_or_else(|| dir.join(format!("{name}.log")), PathBuf::from)
        };
        let same = matches!(container.phase, ContainerPhase::Stopped(_))
            && req.bundle == container.bundle
            && req.labels == container.labels
            && req.remove == container.remove
            && req.stdin.is_none()
            && req.terminal.is_none()
            && output(&req.stdout, "stdout") == container.stdout
            && output(&req.stderr, "stderr") == container.stderr;
        same.then(|| StartExistingRequest {
            namespace: req.namespace.clone(),
            id: req.id.clone(),
            checkpoint: req.checkpoint.clone(),
        })
    }

    /// Checks a start of a container the actor keeps: it must be stopped, and have been started
    /// detached (an attached one's stdio was a client's, gone with it). It starts again as it
    /// was: same bundle, labels, outputs and `--rm`.
    fn admit_again(&self, req: &StartExistingRequest) -> Result<StartJob, ErrorResponse> {
        self.accepting()?;
        let checkpoint = req
            .checkpoint
            .as_deref()
            .map(CheckpointName::new)
            .transpose()
            .map_err(|e| invalid(e.to_string()))?;
        let ((namespace, id), container) = self.find(&req.namespace, &req.id)?;
        let refuse = |why: String| {
            Err(ErrorResponse::new(
                ErrorKind::FailedPrecondition,
                format!("cannot start container \"{id}\": {why}"),
            ))
        };
        if !matches!(container.phase, ContainerPhase::Stopped(_)) {
            let status = container.phase.status();
            return refuse(format!("it is {status}; only a stopped one starts again"));
        }
        if !container.relayed {
            return refuse(
                "it ran attached to a client, whose stdio is gone; delete it and start it anew"
                    .into(),
            );
        }
        Ok(StartJob {
            namespace: namespace.clone(),
            id: id.clone(),
            bundle: container.bundle.clone().into(),
            stdin: None,
            stdout: container.stdout.clone(),
            stderr: container.stderr.clone(),
            checkpoint,
            terminal: None,
            labels: container.labels.clone(),
            created: now_ns(),
            remove: container.remove,
        })
    }
}

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
        if let Some(container) = self.containers.get(&key) {
            let hint = if matches!(container.phase, ContainerPhase::Stopped(_)) {
                " and is stopped: start it again as it was (without a bundle, or with its own \
                 bundle, labels and outputs), or delete it first"
            } else {
                ""
            };
            return Err(ErrorResponse::new(
                ErrorKind::AlreadyExists,
                format!("container \"{}\" already exists{hint}", key.1),
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
            return Err(invalid(
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
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Admitted {
            key,
            stdout,
            stderr,
            checkpoint,
        })
    }
}
