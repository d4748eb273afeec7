//! Starting one container: validate the bundle, prepare its directory and stdio, run runc,
//! and take a pidfd on the init process before anyone could recycle its pid.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use runtime::{Bundle, ContainerId, Namespace, PidFd, Runc, RuntimeError, StartSpec};

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
    Ok(Started { pid, pidfd })
}

fn open_output(path: &Path) -> Result<File, RuntimeError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| RuntimeError::io("cannot open", path, e))
}
