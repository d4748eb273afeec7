//! Exec processes, as the supervisor actor owns them: adding one ([`AddProcess`]), taking its
//! result back from the worker ([`ExecDone`]), its exit ([`ExecExit`]), and signalling and
//! resizing one.
//!
//! An exec's exit is found like the init's: the keeper's `Exit` for its pid, through `by_pid`.
//! An exec that exits before `runc exec` returns is held among the unclaimed exits (while any
//! start or exec is in flight) and claimed by pid when its result arrives, so it is reported once.
//! Someone waiting for an exec that fails to start is told so, with the reason.

use std::path::{Path, PathBuf};
use std::time::Instant;

use actix::prelude::*;
use protocol::{
    ErrorKind, ErrorResponse, EventKind, ExecRequest, KillProcessRequest, ResizeRequest, Response,
    Started,
};
use runtime::{ExecProcess, ProcessName};
use tokio::sync::oneshot;
use worker::console::{self, Winsize};
use worker::{ExecIo, ExecJob};

use super::errors::{
    absolute, container_state, invalid, key, not_found, pool_gone, process_name, process_state,
    runtime_error, valid_signal,
};
use super::jobs::{ExecDone, Job};
use super::supervisor::{Member, Supervisor};
use crate::container::{self, Container, ContainerPhase, ExecPhase, Key, INIT};
use crate::keeper_link::ProcessExit;

// ---- messages -------------------------------------------------------------------------------

/// Add a process to a running container (`ctr exec`); `reply` is answered once it runs or has
/// failed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddProcess {
    pub req: ExecRequest,
    pub reply: oneshot::Sender<Response>,
}

/// An exec process of `key` exited: report it and forget it. Handled in place by whoever found
/// the exit (the keeper's `Exit`, or an [`ExecDone`] that claims an early one), never queued, so
/// it is reported in the order the actor decided.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExecExit {
    pub key: Key,
    pub name: ProcessName,
    pub exit: ProcessExit,
}

/// Signal one named process of a container.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct KillProcess(pub KillProcessRequest);

/// Resize the terminal of an exec process.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct Resize(pub ResizeRequest);

// ---- handlers -------------------------------------------------------------------------------

impl Handler<AddProcess> for Supervisor {
    type Result = ();

    fn handle(&mut self, AddProcess { req, reply }: AddProcess, ctx: &mut Context<Self>) {
        let job = match self.admit_exec(req) {
            Ok(job) => job,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        let (key, name) = ((job.namespace.clone(), job.id.clone()), job.name.clone());
        let args = job.process.args.clone();
        // Taken before the job can run: its process's exit cannot be reaped earlier.
        let since = Instant::now();
        let submitted = self.workers.submit(Job::Exec {
            job,
            done: ctx.address().recipient(),
        });
        if submitted.is_err() {
            let _ = reply.send(Response::Error(pool_gone()));
            return;
        }
        if let Some(container) = self.containers.get_mut(&key) {
            let phase = ExecPhase::Starting { since, reply };
            let exec = container::Exec { args, phase };
            container.execs.insert(name, exec);
        }
    }
}

impl Handler<ExecDone> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ExecDone, ctx: &mut Context<Self>) {
        let ExecDone { key, name, result } = msg;
        let Some(container) = self.containers.get_mut(&key) else {
            log::error!(
                "exec {name} of {}/{} finished for no container",
                key.0,
                key.1
            );
            return;
        };
        let Some(exec) = container.execs.remove(&name) else {
            log::error!("exec {name} of {}/{} finished for no process", key.0, key.1);
            return;
        };
        let ExecPhase::Starting { since, reply } = exec.phase else {
            log::error!("exec {name} of {}/{} finished twice", key.0, key.1);
            container.execs.insert(name, exec);
            return;
        };
        let execed = match result {
            Ok(execed) => execed,
            Err(err) => {
                let what = format!("cannot exec process \"{name}\" in container \"{}\"", key.1);
                let error = runtime_error(what, &err);
                log::info!("{}", error.message);
                // A `wait` for it came while it was starting; it will never exit.
                self.journal
                    .abandon(&key.0, &key.1, Some(&name), error.message.clone());
                let _ = reply.send(Response::Error(error));
                self.prune_unclaimed();
                self.finish(&key, ctx);
                return;
            }
        };
        let pid = execed.pid;
        if !matches!(container.phase, ContainerPhase::Running { .. }) {
            // The init exited while runc exec ran: this one goes with it.
            if let Some(pidfd) = &execed.pidfd {
                let _ = pidfd.send_signal(libc::SIGKILL);
            }
        }
        let phase = ExecPhase::Running {
            pid,
            start_time: execed.start_time,
            pidfd: execed.pidfd,
            console: execed.console,
        };
        container.execs.insert(
            name.clone(),
            container::Exec {
                args: exec.args,
                phase,
            },
        );
        self.by_pid
            .insert(pid, (key.clone(), Member::Exec(name.clone())));
        let started = Response::Started(Started { pid });
        if let Some(exit) = self.claim_unclaimed_exit(pid, since) {
            let _ = reply.send(started);
            self.by_pid.remove(&pid);
            <Self as Handler<ExecExit>>::handle(self, ExecExit { key, name, exit }, ctx);
        } else {
            self.persist(&key);
            // The client learns the pid once the container's record names the process: a daemon
            // killed right after the answer leaves its successor the exec to take over, and so
            // its exit to report.
            self.journal.after_write(move || {
                let _ = reply.send(started);
            });
        }
        self.prune_unclaimed();
    }
}

impl Handler<ExecExit> for Supervisor {
    type Result = ();

    /// Reports the exec's exit and forgets it; a stopped container may then be finished too.
    fn handle(&mut self, ExecExit { key, name, exit }: ExecExit, ctx: &mut Context<Self>) {
        let Some(container) = self.containers.get_mut(&key) else {
            return;
        };
        if container.execs.remove(&name).is_none() {
            return;
        }
        self.emit(
            EventKind::Exit,
            &key,
            name.as_str(),
            exit.pid,
            exit.outcome.code(),
        );
        self.persist(&key);
        self.acknowledge(exit.ack);
        self.finish(&key, ctx);
    }
}

impl Handler<KillProcess> for Supervisor {
    type Result = MessageResult<KillProcess>;

    fn handle(&mut self, KillProcess(req): KillProcess, _: &mut Context<Self>) -> Self::Result {
        MessageResult(match self.kill_process(&req) {
            Ok(()) => Response::Done,
            Err(err) => Response::Error(err),
        })
    }
}

impl Handler<Resize> for Supervisor {
    type Result = MessageResult<Resize>;

    fn handle(&mut self, Resize(req): Resize, _: &mut Context<Self>) -> Self::Result {
        MessageResult(match self.resize(&req) {
            Ok(()) => Response::Done,
            Err(err) => Response::Error(err),
        })
    }
}

// ---- the rest -------------------------------------------------------------------------------

impl Supervisor {
    /// Checks an exec request against the container's state and makes it a worker's job.
    fn admit_exec(&self, req: ExecRequest) -> Result<ExecJob, ErrorResponse> {
        self.accepting()?;
        let key = key(&req.namespace, &req.id)?;
        let name = process_name(&req.process)?;
        if name.as_str() == INIT {
            return Err(invalid(
                "process name \"init\" is the container's main process; choose another",
            ));
        }
        let container = self.containers.get(&key).ok_or_else(|| not_found(&key.1))?;
        let init_pid = match container.phase {
            ContainerPhase::Running { paused: true, .. } => {
                return Err(container_state(
                    &container.id,
                    "paused; resume it to exec into it",
                ))
            }
            ContainerPhase::Running { pid, .. } => pid,
            ContainerPhase::Starting { .. } => {
                return Err(container_state(&container.id, "still starting"))
            }
            ContainerPhase::Exiting { .. } | ContainerPhase::Stopped(_) => {
                return Err(container_state(&container.id, "stopped"))
            }
            ContainerPhase::Checkpointing { .. } => {
                return Err(container_state(
                    &container.id,
                    "being checkpointed; exec once CRIU is done",
                ))
            }
        };
        if container.execs.contains_key(&name) {
            return Err(ErrorResponse::new(
                ErrorKind::AlreadyExists,
                format!(
                    "process \"{name}\" already exists in container \"{}\"",
                    key.1
                ),
            ));
        }
        if req.args.is_empty() {
            return Err(invalid("no command given to exec"));
        }
        for entry in &req.env {
            if !matches!(entry.split_once('='), Some((k, _)) if !k.is_empty()) {
                return Err(invalid(format!(
                    "invalid environment entry {entry:?}: expected KEY=VALUE"
                )));
            }
        }
        if let Some(cwd) = &req.cwd {
            absolute("cwd", cwd)?;
        }
        let io = match req.stdio {
            None => ExecIo::Detached {
                stdout: container.stdout.clone(),
                stderr: container.stderr.clone(),
            },
            Some(stdio) => {
                let path =
                    |what: &str, path: &str| absolute(what, path).map(|()| PathBuf::from(path));
                let stdin = stdio
                    .stdin
                    .as_deref()
                    .map(|p| path("stdin", p))
                    .transpose()?;
                let stderr = stdio
                    .stderr
                    .as_deref()
                    .map(|p| path("stderr", p))
                    .transpose()?;
                ExecIo::Attached {
                    stdin,
                    stdout: path("stdout", &stdio.stdout)?,
                    stderr,
                    terminal: stdio.terminal.map(|size| Winsize {
                        rows: size.rows,
                        cols: size.cols,
                    }),
                }
            }
        };
        let terminal = matches!(
            io,
            ExecIo::Attached {
                terminal: Some(_),
                ..
            }
        );
        Ok(ExecJob {
            namespace: key.0,
            id: key.1,
            name,
            init_pid,
            bundle: Path::new(&container.bundle).to_path_buf(),
            process: ExecProcess {
                args: req.args,
                env: req.env,
                cwd: req.cwd,
                uid: req.uid,
                gid: req.gid,
                terminal,
            },
            io,
        })
    }

    fn kill_process(&self, req: &KillProcessRequest) -> Result<(), ErrorResponse> {
        let signal = valid_signal(req.signal)?;
        let (key, container) = self.find(&req.namespace, &req.id)?;
        let pidfd = if req.process == INIT {
            container.signal_target()?
        } else {
            let (name, phase) = exec_of(container, &req.process)?;
            match phase {
                ExecPhase::Running {
                    pidfd: Some(pidfd), ..
                } => pidfd,
                ExecPhase::Running { pidfd: None, .. } => {
                    return Err(process_state(&key.1, &name, "exiting"))
                }
                ExecPhase::Starting { .. } => {
                    return Err(process_state(&key.1, &name, "still starting"))
                }
            }
        };
        match pidfd.send_signal(signal) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                Err(process_state(&key.1, &req.process, "exiting"))
            }
            Err(e) => Err(ErrorResponse::new(
                ErrorKind::Internal,
                format!(
                    "cannot signal process \"{}\" of container \"{}\": {e}",
                    req.process, key.1
                ),
            )),
        }
    }

    fn resize(&self, req: &ResizeRequest) -> Result<(), ErrorResponse> {
        let (key, container) = self.find(&req.namespace, &req.id)?;
        let (name, master) = if req.process == INIT {
            (INIT.to_string(), container.console.as_ref())
        } else {
            let (name, phase) = exec_of(container, &req.process)?;
            let master = match phase {
                ExecPhase::Running { console, .. } => console.as_ref(),
                ExecPhase::Starting { .. } => None,
            };
            (name.to_string(), master)
        };
        let Some(master) = master else {
            return Err(process_state(&key.1, &name, "without a terminal"));
        };
        let size = Winsize {
            rows: req.size.rows,
            cols: req.size.cols,
        };
        // TIOCSWINSZ on a pty master returns at once: no blocking work in the actor.
        console::resize(master, size).map_err(|e| {
            ErrorResponse::new(
                ErrorKind::Internal,
                format!("cannot resize the terminal of process \"{name}\": {e}"),
            )
        })
    }
}

fn exec_of<'a>(
    container: &'a Container,
    process: &str,
) -> Result<(ProcessName, &'a ExecPhase), ErrorResponse> {
    let name = process_name(process)?;
    match container.execs.get(&name) {
        Some(exec) => Ok((name, &exec.phase)),
        None => Err(ErrorResponse::new(
            ErrorKind::NotFound,
            format!(
                "process \"{name}\" not found in container \"{}\"",
                container.id
            ),
        )),
    }
}
