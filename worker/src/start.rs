//! Starting one container: validate the bundle, prepare its directory, open its stdio, run runc
//! (or restore it from a checkpoint), take hold of the init process with a pidfd (checked to be
//! on the process runc started, see [`runtime::Launched::hold`]), and find its cgroup.
//!
//! A start takes one of four paths, chosen once in `run` and each read top to bottom in one
//! method of `Start` (stdio, then runc, then the process):
//! - `detached`: the container writes into the pipes of a [`Relay`], which copies them into its
//!   files. CRIU can dump pipes, not a file outside the container's mount namespace, so such a
//!   container can be checkpointed;
//! - `restore`: the same, from a checkpoint: a restore always goes through a relay;
//! - `attached`: the client's FIFOs are the container's stdio, so its data never passes through
//!   the daemon;
//! - `on_terminal`: runc sends a pty master to a console socket, relayed to the client's FIFOs.
//!
//! Files are opened without blocking (see [`crate::stdio`]), so a client FIFO nobody reads any
//! more cannot hold a worker. `runc run -d` hands its stdio to the container, so runc is never
//! given a pipe anyone here reads to its end; its errors come from its log (see [`runtime::runc`]).
//!
//! Once runc has started it, the container's record is written (see [`runtime::record`]), so a
//! daemon that dies from then on leaves what its successor needs to take the container over.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::console::{self, ConsoleSocket, Winsize};
use crate::relay::{Relay, RelayInputs, RelayPipes};
use crate::stdio::{self, Direction};
use runtime::{
    Bundle, Cgroup, CheckpointName, ContainerId, ContainerRecord, Launched, Namespace, PidFd,
    ProcessRecord, RestoreSpec, Runc, RuntimeError, StartSpec,
};

/// Holds a copy of a container's output pipes outside the daemon (the keeper does), so that the
/// container never writes into a pipe without a reader while the daemon restarts.
pub trait OutputKeeper: Send + Sync {
    fn keep(&self, token: &str, pipes: &RelayPipes) -> io::Result<()>;
}

/// A start as the supervisor hands it to a worker; names are validated, the bundle is not yet.
#[derive(Debug, Clone)]
pub struct StartJob {
    pub namespace: Namespace,
    pub id: ContainerId,
    pub bundle: PathBuf,
    /// A FIFO the client writes the container's stdin into (`start --attach`).
    pub stdin: Option<PathBuf>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Run the init on a pseudo-terminal of this size, relayed to `stdin` and `stdout` (FIFOs).
    pub terminal: Option<Winsize>,
    /// Restore from this checkpoint in the bundle instead of starting afresh.
    pub checkpoint: Option<CheckpointName>,
    pub labels: BTreeMap<String, String>,
    /// When the start was accepted (nanoseconds since the epoch): names this life of the id.
    pub created: u64,
    /// Started with `--rm`: the record says so, for a daemon that sees it stop after a restart.
    pub remove: bool,
}

#[derive(Debug)]
pub struct StartedContainer {
    pub pid: u32,
    /// The init's start time, which tells it from a later process with its pid.
    pub start_time: Option<u64>,
    /// `None` when the init process had already exited and been reaped (its pid may name
    /// another process by now): its exit is on its way from the keeper.
    pub pidfd: Option<PidFd>,
    /// The init's command line, from the bundle, for listings.
    pub args: Vec<String>,
    /// The pty master, with a terminal, for resizing it; the relay holds its own handles.
    pub console: Option<File>,
    /// The container's cgroup, for stats and OOM kills; `None` if neither runc's state nor the
    /// init's `/proc` entry names one.
    pub cgroup: Option<Cgroup>,
    /// Copies a detached container's output into its files until the container is gone.
    pub relay: Option<Relay>,
}

pub fn start_container(
    runc: &Runc,
    job: &StartJob,
    keeper: &dyn OutputKeeper,
) -> Result<StartedContainer, RuntimeError> {
    let started = run(runc, job, keeper)?;
    let record = ContainerRecord {
        namespace: job.namespace.to_string(),
        id: job.id.to_string(),
        bundle: job.bundle.to_string_lossy().into_owned(),
        labels: job.labels.clone(),
        stdout: job.stdout.clone(),
        stderr: job.stderr.clone(),
        created: job.created,
        init: ProcessRecord {
            pid: started.pid,
            start_time: started.start_time,
            args: started.args.clone(),
        },
        relayed: started.relay.is_some(),
        execs: BTreeMap::new(),
        exit: None,
        remove: job.remove,
    };
    if let Err(e) = record.write(runc.state_dir()) {
        log::warn!(
            "container {}/{}: cannot write its record ({e}): a restarted ctrd will not know it",
            job.namespace,
            job.id
        );
    }
    Ok(started)
}

/// Prepares what every path needs, then takes the one the job asks for.
fn run(
    runc: &Runc,
    job: &StartJob,
    keeper: &dyn OutputKeeper,
) -> Result<StartedContainer, RuntimeError> {
    let start = Start {
        runc,
        job,
        bundle: Bundle::open(&job.bundle)?,
        pid_file: prepare_dir(runc, job)?,
    };
    match (&job.checkpoint, job.terminal, &job.stdin) {
        (Some(name), ..) => start.restore(name, keeper),
        (None, Some(size), stdin) => start.on_terminal(size, stdin.as_deref()),
        (None, None, Some(stdin)) => start.attached(stdin),
        (None, None, None) => start.detached(keeper),
    }
}

/// Makes the container's directory, which holds its pid file (and, by default, its logs); a new
/// start with this id replaces the logs of the one before it, while a restore continues the life
/// (and the logs) of the container it restores.
fn prepare_dir(runc: &Runc, job: &StartJob) -> Result<PathBuf, RuntimeError> {
    let dir = runc.state_dir().container_dir(&job.namespace, &job.id);
    if job.checkpoint.is_none() {
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io("cannot remove", &dir, e)),
        }
    }
    fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("cannot create", &dir, e))?;
    Ok(dir.join("init.pid"))
}

/// One start in progress, with what every mode needs. Each mode opens the container's stdio,
/// then calls runc once, then takes hold of the process.
struct Start<'a> {
    runc: &'a Runc,
    job: &'a StartJob,
    bundle: Bundle,
    pid_file: PathBuf,
}

impl Start<'_> {
    /// Detached: the container writes into a relay's pipes, copied into its files.
    fn detached(self, keeper: &dyn OutputKeeper) -> Result<StartedContainer, RuntimeError> {
        let (relay, pipes) = relay(self.job, keeper)?;
        let init = self
            .runc
            .run_detached(self.spec(None, pipes.stdout, pipes.stderr, None))?;
        Ok(self.started(init, Some(relay)))
    }

    /// Attached (`start --attach`): the client's FIFOs are the container's own stdio, so its
    /// data never passes through the daemon.
    fn attached(self, stdin: &Path) -> Result<StartedContainer, RuntimeError> {
        let stdin = stdio::open_fifo(stdin, Direction::Read)?;
        let stdout = stdio::open_output(&self.job.stdout)?;
        let stderr = stdio::open_output(&self.job.stderr)?;
        let init = self
            .runc
            .run_detached(self.spec(Some(stdin), stdout, stderr, None))?;
        Ok(self.started(init, None))
    }

    /// On a terminal (`start --attach --tty`): runc's own stdio is unused; it sends the pty
    /// master to a console socket, and a relay copies between it and the client's FIFOs.
    fn on_terminal(
        self,
        size: Winsize,
        stdin: Option<&Path>,
    ) -> Result<StartedContainer, RuntimeError> {
        let stdin = stdin
            .map(|path| stdio::open_fifo(path, Direction::Read))
            .transpose()?;
        let client_out = stdio::open_fifo(&self.job.stdout, Direction::Write)?;
        let socket = ConsoleSocket::bind()?;
        let init = self.runc.run_detached(self.spec(
            None,
            stdio::null()?,
            stdio::null()?,
            Some(socket.path()),
        ))?;
        let started = self.started(init, None);
        // The bundle fixes the terminal's first size; the client's is set as soon as it is ours.
        let label = self.job.id.to_string();
        match console::attach(&socket, stdin, client_out, Some(size), label) {
            Ok(master) => Ok(StartedContainer {
                console: Some(master),
                ..started
            }),
            Err(e) => {
                // A container whose terminal no one can use: end it; its exit is reported as usual.
                if let Some(pidfd) = &started.pidfd {
                    let _ = pidfd.send_signal(libc::SIGKILL);
                }
                log::warn!("container {}: {e}", self.job.id);
                Ok(started)
            }
        }
    }

    /// From a checkpoint: always through a relay, whose new pipes runc hands the restored
    /// process in place of the ones it was dumped with.
    fn restore(
        self,
        name: &CheckpointName,
        keeper: &dyn OutputKeeper,
    ) -> Result<StartedContainer, RuntimeError> {
        let (relay, pipes) = relay(self.job, keeper)?;
        let init = self.runc.restore(RestoreSpec {
            namespace: &self.job.namespace,
            id: &self.job.id,
            bundle: &self.bundle,
            name,
            pid_file: &self.pid_file,
            stdout: pipes.stdout,
            stderr: pipes.stderr,
        })?;
        Ok(self.started(init, Some(relay)))
    }

    fn spec<'s>(
        &'s self,
        stdin: Option<File>,
        stdout: File,
        stderr: File,
        console_socket: Option<&'s Path>,
    ) -> StartSpec<'s> {
        StartSpec {
            namespace: &self.job.namespace,
            id: &self.job.id,
            bundle: &self.bundle,
            pid_file: &self.pid_file,
            stdin,
            stdout,
            stderr,
            console_socket,
        }
    }

    /// Takes hold of the init runc started: a pidfd on it and its start time (none if its pid
    /// no longer names it), its command line and its cgroup.
    fn started(&self, init: Launched, relay: Option<Relay>) -> StartedContainer {
        let (runc, job, pid) = (self.runc, self.job, init.pid);
        let (pidfd, start_time) = match init.hold() {
            Ok(held) => held.into_parts(),
            Err(e) => {
                log::warn!("container {}: cannot take hold of pid {pid}: {e}", job.id);
                (None, init.start.exact())
            }
        };
        let args = fs::read(self.bundle.path().join("config.json"))
            .map(|config| runtime::process::bundle_args(&config))
            .unwrap_or_default();
        StartedContainer {
            pid,
            start_time,
            pidfd,
            args,
            console: None,
            cgroup: find_cgroup(runc, job, pid),
            relay,
        }
    }
}

/// The pipes a detached container writes into, copied into its output files, with a copy of
/// their read ends at the keeper.
fn relay(job: &StartJob, keeper: &dyn OutputKeeper) -> Result<(Relay, RelayInputs), RuntimeError> {
    let err = |e| RuntimeError::io("cannot relay the output to", &job.stdout, e);
    let (stdout, stderr) = (
        stdio::open_output(&job.stdout)?,
        stdio::open_output(&job.stderr)?,
    );
    let (pipes, inputs) = Relay::pipes().map_err(err)?;
    let token = runtime::record::token(job.namespace.as_str(), job.id.as_str(), job.created);
    if let Err(e) = keeper.keep(&token, &pipes) {
        log::warn!(
            "container {}/{}: the keeper cannot hold its output pipes ({e}): it will stop at \
             its next write if ctrd restarts",
            job.namespace,
            job.id
        );
    }
    let relay = Relay::copy(pipes, stdout, stderr).map_err(err)?;
    Ok((relay, inputs))
}

/// runc's state names the cgroup whatever became of the init (which may have died already);
/// the init's `/proc/<pid>/cgroup` is the fallback.
fn find_cgroup(runc: &Runc, job: &StartJob, pid: u32) -> Option<Cgroup> {
    let state_dir = runc.container_state_dir(&job.namespace, &job.id);
    match Cgroup::from_runc_state(&state_dir).or_else(|_| Cgroup::of_pid(pid)) {
        Ok(cgroup) => Some(cgroup),
        Err(e) => {
            log::warn!(
                "container {}: no cgroup found, so no stats or oom events: {e}",
                job.id
            );
            None
        }
    }
}
