//! Starting one container: validate the bundle, prepare its directory and stdio, run runc (or
//! restore it from a checkpoint), take a pidfd on the init process before anyone could recycle
//! its pid, and find its cgroup.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use runtime::{
    Bundle, Cgroup, CheckpointName, ContainerId, Namespace, PidFd, RestoreSpec, Runc, RuntimeError,
    StartSpec,
};

use crate::relay::Relay;

/// A start as the supervisor hands it to a worker; names are validated, the bundle is not yet.
#[derive(Debug, Clone)]
pub struct StartJob {
    pub namespace: Namespace,
    pub id: ContainerId,
    pub bundle: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Restore from this checkpoint in the bundle instead of starting afresh.
    pub checkpoint: Option<CheckpointName>,
}

#[derive(Debug)]
pub struct Started {
    pub pid: u32,
    /// `None` when the init process had already exited and been reaped: its exit is on its way.
    pub pidfd: Option<PidFd>,
    /// The container's cgroup, for stats and OOM kills; `None` if neither runc's state nor the
    /// init's `/proc` entry names one.
    pub cgroup: Option<Cgroup>,
    /// Copies the container's output into its files until the container is gone.
    pub relay: Relay,
}

pub fn start_container(runc: &Runc, job: &StartJob) -> Result<Started, RuntimeError> {
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
    let (relay, inputs) = Relay::start(
        job.id.as_str(),
        open_output(&job.stdout)?,
        open_output(&job.stderr)?,
    )
    .map_err(|e| RuntimeError::io("cannot relay the output to", &job.stdout, e))?;
    let pid_file = dir.join("init.pid");
    let pid = match &job.checkpoint {
        None => runc.run_detached(StartSpec {
            namespace: &job.namespace,
            id: &job.id,
            bundle: &bundle,
            pid_file: &pid_file,
            stdout: inputs.stdout,
            stderr: inputs.stderr,
        })?,
        Some(name) => runc.restore(RestoreSpec {
            namespace: &job.namespace,
            id: &job.id,
            bundle: &bundle,
            name,
            pid_file: &pid_file,
            stdout: inputs.stdout,
            stderr: inputs.stderr,
        })?,
    };
    let pidfd = match PidFd::open(pid) {
        Ok(fd) => Some(fd),
        Err(e) => {
            if e.raw_os_error() != Some(libc::ESRCH) {
                log::warn!("container {}: cannot open a pidfd for {pid}: {e}", job.id);
            }
            None
        }
    };
    let cgroup = find_cgroup(runc, job, pid);
    Ok(Started {
        pid,
        pidfd,
        cgroup,
        relay,
    })
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

fn open_output(path: &Path) -> Result<File, RuntimeError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| RuntimeError::io("cannot open", path, e))
}
