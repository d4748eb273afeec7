//! Exec processes, as the supervisor actor owns them: admitting an exec, taking its result back
//! from the worker, its exit, signalling and resizing one, and where a container's logs are.
//!
//! An exec's exit is found like the init's: the keeper's `Exit` for its pid, through `by_pid`.
//! An exec that exits before `runc exec` returns is held among the unclaimed exits (while any
//! start or exec is in flight) and claimed by pid when its result arrives, so it is reported once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use actix::prelude::*;
use protocol::{
    ErrorKind, ErrorResponse, EventKind, ExecRequest, KillProcessRequest, LogFiles, ResizeRequest,
    Response, Started,
};
use runtime::{ExecProcess, ProcessName, RuntimeError};
use tokio::sync::oneshot;
use worker::console::{self, Winsize};
use worker::{exec_process, ExecIo, ExecJob, Execed, Priority};

use super::{absolute, key, not_found, valid_signal, Member, Supervisor, INIT};
use crate::container::{self, Container, ExecPhase, Key, Phase};
use crate::keeper_link::Exit;

// ---- messages -------------------------------------------------------------------------------

/// Start a process in a running container; `reply` is answered once it runs or has failed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Exec {
    pub req: ExecRequest,
    pub reply: oneshot::Sender<Response>,
}

/// A worker finished an exec.
#[derive(Message)]
#[rtype(result = "()")]
struct ExecDone {
    key: Key,
    name: ProcessName,
    result: Result<Execed, RuntimeError>,
}

/// Signal one named process of a container.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct KillProcess(pub KillProcessRequest);

/// Resize the terminal of an exec process.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct Resize(pub ResizeRequest);

/// Where a container's logs are, also once it is gone.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct Logs {
    pub namespace: String,
    pub id: String,
}

// ---- handlers -------------------------------------------------------------------------------

impl Handler<Exec> for Supervisor {
    type Result = ();

    fn handle(&mut self, Exec { req, reply }: Exec, ctx: &mut Context<Self>) {
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
        let addr = ctx.address();
        let submitted = self.pool.submit(Priority::Normal, move |runc| {
            let result = exec_process(runc, &job);
            addr.do_send(ExecDone {
                key: (job.namespace, job.id),
                name: job.name,
                result,
            });
        });
        if submitted.is_err() {
            let err = ErrorResponse::new(ErrorKind::Internal, "the worker pool is gone");
            let _ = reply.send(Response::Error(err));
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

    fn handle(&mut self, msg: ExecDone, _: &mut Context<Self>) {
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
                let kind = match err {
                    RuntimeError::CommandNotFound { .. } => ErrorKind::CommandNotFound,
                    RuntimeError::CommandNotExecutable { .. } => ErrorKind::CommandNotExecutable,
                    RuntimeError::InvalidName { .. }
                    | RuntimeError::InvalidBundle { .. }
                    | RuntimeError::InvalidProcess { .. } => ErrorKind::InvalidArgument,
                    _ => ErrorKind::Runtime,
                };
                let message = format!(
                    "cannot exec process \"{name}\" in container \"{}\": {err}",
                    key.1
                );
                log::info!("{message}");
                let _ = reply.send(Response::Error(ErrorResponse::new(kind, message)));
                self.prune_unclaimed();
                self.finish(&key);
                return;
            }
        };
        let pid = execed.pid;
        if !matches!(container.phase, Phase::Running { .. }) {
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
        let _ = reply.send(Response::Started(Started { pid }));
        if let Some(exit) = self.claim_unclaimed_exit(pid, since) {
            self.by_pid.remove(&pid);
            self.exec_exited(&key, &name, exit);
        } else {
            self.persist(&key);
        }
        self.prune_unclaimed();
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

impl Handler<Logs> for Supervisor {
    type Result = MessageResult<Logs>;

    fn handle(&mut self, msg: Logs, _: &mut Context<Self>) -> Self::Result {
        let key = match key(&msg.namespace, &msg.id) {
            Ok(key) => key,
            Err(err) => return MessageResult(Response::Error(err)),
        };
        let files = match self.containers.get(&key) {
            Some(c) => LogFiles {
                stdout: c.stdout.to_string_lossy().into_owned(),
                stderr: c.stderr.to_string_lossy().into_owned(),
                running: !matches!(c.phase, Phase::Stopped { .. }),
            },
            // Gone: its logs stay in its directory until a new start with its id.
            None => {
                let dir = self.state_dir.container_dir(&key.0, &key.1);
                let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
                LogFiles {
                    stdout: path("stdout.log"),
                    stderr: path("stderr.log"),
                    running: false,
                }
            }
        };
        MessageResult(Response::Logs(files))
    }
}

// ---- the rest -------------------------------------------------------------------------------

impl Supervisor {
    /// Reports an exec's exit and forgets it; a stopped container may then be finished too.
    pub(super) fn exec_exited(&mut self, key: &Key, name: &ProcessName, exit: Exit) {
        let Some(container) = self.containers.get_mut(key) else {
            return;
        };
        if container.execs.remove(name).is_none() {
            return;
        }
        self.emit(
            EventKind::Exit,
            key,
            name.as_str(),
            exit.pid,
            exit.outcome.code(),
        );
        self.persist(key);
        self.acknowledge(exit.ack);
        self.finish(key);
    }

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
            Phase::Running { paused: true, .. } => {
                return Err(state_error(container, "paused; resume it to exec into it"))
            }
            Phase::Running { pid, .. } => pid,
            Phase::Starting { .. } => return Err(state_error(container, "still starting")),
            Phase::Stopped { .. } => return Err(state_error(container, "stopped")),
            Phase::Checkpointing { .. } => {
                return Err(state_error(
                    container,
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
                return Err(invalid(&format!(
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

fn process_name(name: &str) -> Result<ProcessName, ErrorResponse> {
    if name.is_empty() {
        return Err(invalid("a process name is required (--pid NAME)"));
    }
    ProcessName::new(name).map_err(|e| invalid(&e.to_string()))
}

fn invalid(message: &str) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::InvalidArgument, message)
}

fn state_error(container: &Container, what: &str) -> ErrorResponse {
    ErrorResponse::new(
        ErrorKind::FailedPrecondition,
        format!("container \"{}\" is {what}", container.id),
    )
}

fn process_state(
    id: &impl fmt::Display,
    name: &(impl fmt::Display + ?Sized),
    what: &str,
) -> ErrorResponse {
    ErrorResponse::new(
        ErrorKind::FailedPrecondition,
        format!("process \"{name}\" of container \"{id}\" is {what}"),
    )
}
