//! Starting one exec process: write its OCI process spec (the bundle's process with the request's
//! changes), open its stdio, run `runc exec -d`, take hold of it with a pidfd (checked to be on
//! the process runc started, see [`runtime::Launched::hold`]), and with a terminal start the
//! relay between the pty master and the client's FIFOs.
//!
//! [`exec_process`] reads in that order: the stdio is opened once (`Stdio::open`) before runc is
//! called, and a terminal is the one path with a step after runc (`on_terminal`).

use std::ffi::CStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use runtime::process::exec_spec;
use runtime::{
    ContainerId, ExecProcess, ExecSpec, Launched, Namespace, PidFd, ProcessName, Runc, RuntimeError,
};

use crate::console::{self, ConsoleSocket, Winsize};
use crate::stdio::{self, Direction};

/// An exec as the supervisor hands it to a worker; names are validated, paths are absolute.
#[derive(Debug, Clone)]
pub struct ExecJob {
    pub namespace: Namespace,
    pub id: ContainerId,
    pub name: ProcessName,
    /// The container's init: its root holds the `/etc/passwd` a uid is checked against.
    pub init_pid: u32,
    pub bundle: PathBuf,
    pub process: ExecProcess,
    pub io: ExecIo,
}

#[derive(Debug, Clone)]
pub enum ExecIo {
    /// No stdin; output appended to the container's own outputs.
    Detached { stdout: PathBuf, stderr: PathBuf },
    /// The client's FIFOs.
    Attached {
        stdin: Option<PathBuf>,
        stdout: PathBuf,
        /// Ignored with a terminal, which has one output stream.
        stderr: Option<PathBuf>,
        /// Run it on a pseudo-terminal of this initial size.
        terminal: Option<Winsize>,
    },
}

#[derive(Debug)]
pub struct Execed {
    pub pid: u32,
    /// Its start time, which tells it from a later process with its pid; `None` if it was gone.
    pub start_time: Option<u64>,
    /// `None` when the process had already exited and been reaped (its pid may name another
    /// process by now): its exit is on its way from the keeper.
    pub pidfd: Option<PidFd>,
    /// The pty master, with a terminal, for resizing it; the relay holds its own handles.
    pub console: Option<File>,
}

pub fn exec_process(runc: &Runc, job: &ExecJob) -> Result<Execed, RuntimeError> {
    let files = SpecFiles::write(runc, job)?;
    match Stdio::open(&job.io)? {
        Stdio::Direct {
            stdin,
            stdout,
            stderr,
        } => {
            let process = runc.exec_detached(ExecSpec {
                console_socket: None,
                stdin,
                stdout: Some(stdout),
                stderr: Some(stderr),
                ..files.spec(job)
            })?;
            Ok(execed(job, process))
        }
        Stdio::Terminal { stdin, stdout } => on_terminal(runc, job, &files, stdin, stdout),
    }
}

/// On a terminal: runc's own stdio is unused; it sends the pty master to a console socket, and a
/// relay copies between it and the client's FIFOs.
fn on_terminal(
    runc: &Runc,
    job: &ExecJob,
    files: &SpecFiles,
    stdin: Option<File>,
    stdout: File,
) -> Result<Execed, RuntimeError> {
    let socket = ConsoleSocket::bind()?;
    let process = runc.exec_detached(ExecSpec {
        console_socket: Some(socket.path()),
        ..files.spec(job)
    })?;
    let execed = execed(job, process);
    let label = format!("{}/{}", job.id, job.name);
    match console::attach(&socket, stdin, stdout, None, label) {
        Ok(master) => Ok(Execed {
            console: Some(master),
            ..execed
        }),
        Err(e) => {
            // The process runs without a terminal anyone could use: end it. Its exit is reaped
            // and, as no one claims it, dropped.
            if let Some(pidfd) = &execed.pidfd {
                let _ = pidfd.send_signal(libc::SIGKILL);
            }
            Err(e)
        }
    }
}

/// Takes hold of the process runc started: a pidfd on it and its start time, none if its pid
/// no longer names it.
fn execed(job: &ExecJob, process: Launched) -> Execed {
    let pid = process.pid;
    let (pidfd, start_time) = match process.hold() {
        Ok(held) => held.into_parts(),
        Err(e) => {
            log::warn!(
                "{}/{}: cannot take hold of pid {pid}: {e}",
                job.id,
                job.name
            );
            (None, None)
        }
    };
    Execed {
        pid,
        start_time,
        pidfd,
        console: None,
    }
}

/// Largest `/etc/passwd` or `/etc/group` read from a container.
const MAX_ID_FILE: u64 = 4 * 1024 * 1024;

/// Reads a file as the container sees it (its root, its mounts). `openat2` with
/// `RESOLVE_IN_ROOT` resolves every symlink inside the container's root, so a container cannot
/// make the daemon read a host file through a symlink; only regular files are read. `None` when
/// the container has no such file (or has gone).
fn read_container_file(init_pid: u32, path: &CStr) -> Option<String> {
    let root = File::open(format!("/proc/{init_pid}/root")).ok()?;
    // SAFETY: open_how is plain integers, for which all zeroes is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads the NUL-terminated path and `size_of::<open_how>()` bytes of `how`,
    // both alive across the call, and returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_ID_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The spec and pid files of one exec, removed once runc is done with them.
struct SpecFiles {
    process: PathBuf,
    pid: PathBuf,
}

impl SpecFiles {
    /// Writes the exec's OCI process spec: the bundle's process with the request's changes, its
    /// user checked against the container's own `/etc/passwd` and `/etc/group`.
    fn write(runc: &Runc, job: &ExecJob) -> Result<SpecFiles, RuntimeError> {
        let config_path = job.bundle.join("config.json");
        let config =
            fs::read(&config_path).map_err(|e| RuntimeError::io("cannot read", &config_path, e))?;
        let passwd = read_container_file(job.init_pid, c"etc/passwd");
        let group = read_container_file(job.init_pid, c"etc/group");
        let mut spec = exec_spec(
            job.id.as_str(),
            &config,
            &job.process,
            passwd.as_deref(),
            group.as_deref(),
        )?;
        if let ExecIo::Attached {
            terminal: Some(size),
            ..
        } = &job.io
        {
            // runc sizes the terminal before the process starts, so even its first `stty size`
            // is right.
            spec["consoleSize"] = serde_json::json!({ "height": size.rows, "width": size.cols });
        }
        let dir = runc.state_dir().container_dir(&job.namespace, &job.id);
        let files = SpecFiles {
            process: dir.join(format!("exec-{}.json", job.name)),
            pid: dir.join(format!("exec-{}.pid", job.name)),
        };
        let json = serde_json::to_vec(&spec).map_err(|e| RuntimeError::InvalidProcess {
            id: job.id.to_string(),
            reason: e.to_string(),
        })?;
        fs::write(&files.process, json)
            .map_err(|e| RuntimeError::io("cannot write", &files.process, e))?;
        Ok(files)
    }

    /// The runc call for these files, with no stdio and no terminal.
    fn spec<'a>(&'a self, job: &'a ExecJob) -> ExecSpec<'a> {
        ExecSpec {
            namespace: &job.namespace,
            id: &job.id,
            process_file: &self.process,
            pid_file: &self.pid,
            console_socket: None,
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }
}

impl Drop for SpecFiles {
    fn drop(&mut self) {
        for path in [&self.process, &self.pid] {
            if let Err(e) = fs::remove_file(path) {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!("cannot remove {}: {e}", path.display());
                }
            }
        }
    }
}

/// The files an exec's stdio is made of, opened before runc runs.
enum Stdio {
    /// The process's own stdio.
    Direct {
        stdin: Option<File>,
        stdout: File,
        stderr: File,
    },
    /// With a terminal: the client's FIFOs, which the relay holds.
    Terminal { stdin: Option<File>, stdout: File },
}

impl Stdio {
    fn open(io: &ExecIo) -> Result<Stdio, RuntimeError> {
        match io {
            ExecIo::Detached { stdout, stderr } => Ok(Stdio::Direct {
                stdin: None,
                stdout: stdio::open_output_or_discard(stdout)?,
                stderr: stdio::open_output_or_discard(stderr)?,
            }),
            ExecIo::Attached {
                stdin,
                stdout,
                stderr,
                terminal,
            } => {
                let stdin = open_optional(stdin.as_deref(), Direction::Read)?;
                let stdout = stdio::open_fifo(stdout, Direction::Write)?;
                if terminal.is_some() {
                    return Ok(Stdio::Terminal { stdin, stdout });
                }
                let stderr = match stderr {
                    Some(path) => stdio::open_fifo(path, Direction::Write)?,
                    None => stdout
                        .try_clone()
                        .map_err(|e| RuntimeError::io("cannot duplicate", "the stdout fifo", e))?,
                };
                Ok(Stdio::Direct {
                    stdin,
                    stdout,
                    stderr,
                })
            }
        }
    }
}

fn open_optional(path: Option<&Path>, direction: Direction) -> Result<Option<File>, RuntimeError> {
    path.map(|p| stdio::open_fifo(p, direction)).transpose()
}
