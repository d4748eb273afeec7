//! Starting one container: validate the bundle, prepare its directory and stdio, run runc,
//! take a pidfd on the init process before anyone could recycle its pid, and find its cgroup.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use runtime::{Bundle, Cgroup, ContainerId, Namespace, PidFd, Runc, RuntimeError, StartSpec};

/// A start as the supervisor hands it to a worker; names are validated, the bundle is not yet.
#[derive(Debug, Clone)]
pub struct StartJob {
    pub namespace: Namespace,
    pub id: ContainerId,
    pub bundle: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

#[derive(Debug)]
pub struct Started {
    pub pid: u32,
    /// `None` when the init process had already exited and been reaped: its exit is on its way.
    pub pidfd: Option<PidFd>,
    /// The container's cgroup, for stats and OOM kills; `None` if neither runc's state nor the
    /// init's `/proc` entry names one.
    pub cgroup: Option<Cgroup>,
}

pub fn start_container(runc: &Runc, job: &StartJob) -> Result<Started, RuntimeError> {
    let bundle = Bundle::open(&job.bundle)?;
    let dir = runc.state_dir().container_dir(&job.namespace, &job.id);
    // A new start with this id replaces the logs of the one before it.
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(RuntimeError::io("cannot remove", &dir, e)),
    }
    fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("cannot create", &dir, e))?;
    let pid = runc.run_detached(StartSpec {
        namespace: &job.namespace,
        id: &job.id,
        bundle: &bundle,
        pid_file: &dir.join("init.pid"),
        stdout: open_output(&job.stdout)?,
        stderr: open_output(&job.stderr)?,
    })?;
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
    Ok(Started { pid, pidfd, cgroup })
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
