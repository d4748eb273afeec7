//! Starting one container: validate the bundle, prepare its directory and stdio, run runc (or
//! restore it from a checkpoint), take a pidfd on the init process before anyone could recycle
//! its pid, and find its cgroup.
//!
//! A detached container writes into the pipes of a [`Relay`], which copies them into its files:
//! CRIU can dump pipes, not a file outside the container's mount namespace, so such a container
//! can be checkpointed, and a restore always goes through a relay. An attached one is handed the
//! client's FIFOs (or a terminal) directly, so its data never passes through the daemon. Its
//! files are opened without blocking (see [`crate::stdio`]), so a client FIFO nobody reads any
//! more cannot hold a worker.
//!
//! Once runc has started it, the container's record is written (see [`runtime::record`]), so a
//! daemon that dies from then on leaves what its successor needs to take the container over.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;

use crate::console::{self, ConsoleSocket, Winsize};
use crate::relay::{Relay, RelayInputs, RelayPipes};
use crate::stdio::{self, Direction};
use runtime::{
    Bundle, Cgroup, CheckpointName, ContainerId, ContainerRecord, Namespace, PidFd, ProcessRecord,
    RestoreSpec, Runc, RuntimeError, StartSpec,
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
}

#[derive(Debug)]
pub struct StartedContainer {
    pub pid: u32,
    /// The init's start time, which tells it from a later process with its pid.
    pub start_time: Option<u64>,
    /// `None` when the init process had already exited and been reaped: its exit is on its way.
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

fn run(
    runc: &Runc,
    job: &StartJob,
    keeper: &dyn OutputKeeper,
) -> Result<StartedContainer, RuntimeError> {
    let bundle = Bundle::open(&job.bundle)?;
    let dir = runc.state_dir().container_dir(&job.namespace, &job.id);
    // A new start with this id replaces the logs of the one before it; a restore continues the
    // life (and the logs) of the container it restores.
    if job.checkpoint.is_none() {
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io("cannot remove", &dir, e)),
        }
    }
    fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("cannot create", &dir, e))?;
    let pid_file = dir.join("init.pid");
    if let Some(name) = &job.checkpoint {
        let (relay, inputs) = relay(job, keeper)?;
        let pid = runc.restore(RestoreSpec {
            namespace: &job.namespace,
            id: &job.id,
            bundle: &bundle,
            name,
            pid_file: &pid_file,
            stdout: inputs.stdout,
            stderr: inputs.stderr,
        })?;
        return Ok(started(runc, job, &bundle, pid, Some(relay)));
    }
    let stdin = job
        .stdin
        .as_deref()
        .map(|path| stdio::open_fifo(path, Direction::Read))
        .transpose()?;
    let Some(size) = job.terminal else {
        let spec = |stdin, stdout, stderr| StartSpec {
            namespace: &job.namespace,
            id: &job.id,
            bundle: &bundle,
            pid_file: &pid_file,
            stdin,
            stdout,
            stderr,
            console_socket: None,
        };
        if stdin.is_some() {
            let pid = runc.run_detached(spec(
                stdin,
                stdio::open_output(&job.stdout)?,
                stdio::open_output(&job.stderr)?,
            ))?;
            return Ok(started(runc, job, &bundle, pid, None));
        }
        let (relay, inputs) = relay(job, keeper)?;
        let pid = runc.run_detached(spec(None, inputs.stdout, inputs.stderr))?;
        return Ok(started(runc, job, &bundle, pid, Some(relay)));
    };
    // With a terminal, runc's own stdio is unused: the relay holds the client's FIFOs.
    let client_out = stdio::open_fifo(&job.stdout, Direction::Write)?;
    let null = || {
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| RuntimeError::io("cannot open", "/dev/null", e))
    };
    let socket = ConsoleSocket::bind()?;
    let pid = runc.run_detached(StartSpec {
        namespace: &job.namespace,
        id: &job.id,
        bundle: &bundle,
        pid_file: &pid_file,
        stdin: None,
        stdout: null()?,
        stderr: null()?,
        console_socket: Some(socket.path()),
    })?;
    let started = started(runc, job, &bundle, pid, None);
    // The bundle fixes the terminal's first size; the client's is set as soon as it is ours.
    match console::attach(&socket, stdin, client_out, Some(size), job.id.to_string()) {
        Ok(master) => Ok(StartedContainer {
            console: Some(master),
            ..started
        }),
        Err(e) => {
            // A container whose terminal no one can use: end it; its exit is reported as usual.
            if let Some(pidfd) = &started.pidfd {
                let _ = pidfd.send_signal(libc::SIGKILL);
            }
            log::warn!("container {}: {e}", job.id);
            Ok(started)
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

fn started(
    runc: &Runc,
    job: &StartJob,
    bundle: &Bundle,
    pid: u32,
    relay: Option<Relay>,
) -> StartedContainer {
    let pidfd = match PidFd::open(pid) {
        Ok(fd) => Some(fd),
        Err(e) => {
            if e.raw_os_error() != Some(libc::ESRCH) {
                log::warn!("container {}: cannot open a pidfd for {pid}: {e}", job.id);
            }
            None
        }
    };
    let args = fs::read(bundle.path().join("config.json"))
        .map(|config| runtime::process::bundle_args(&config))
        .unwrap_or_default();
    StartedContainer {
        pid,
        start_time: runc.init_start_time(&job.namespace, &job.id),
        pidfd,
        args,
        console: None,
        cgroup: find_cgroup(runc, job, pid),
        relay,
    }
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
