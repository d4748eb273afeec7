//! The runc binary, called with its own `--root` per namespace and a JSON `--log` per call.
//!
//! `runc run -d` hands its stdio to the container, so runc's errors are never read from a pipe:
//! they come from the `--log` file, which holds one JSON object per line.

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::criu_hook::NetworkHook;
use crate::pidfd::{Held, KnownStart};
use crate::runner::RunError;
use crate::{
    Bundle, ContainerId, ExitStatus, Namespace, PidFd, ProcessRunner, ResourceUpdate, RuntimeError,
    StateDir,
};

/// How long a runc call may take unless the daemon says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Runc {
    binary: PathBuf,
    /// The CRIU binary runc runs for checkpoint and restore (`runc --criu`).
    criu: PathBuf,
    state: StateDir,
    runner: Arc<dyn ProcessRunner>,
    /// How long one runc call may take before it is killed.
    timeout: Duration,
    /// Makes each call's log file name unique.
    calls: AtomicU64,
}

/// What a detached start needs besides the names.
pub struct StartSpec<'a> {
    pub namespace: &'a Namespace,
    pub id: &'a ContainerId,
    pub bundle: &'a Bundle,
    pub pid_file: &'a Path,
    /// `None`: the container's stdin is `/dev/null`.
    pub stdin: Option<File>,
    pub stdout: File,
    pub stderr: File,
    /// With a terminal (the bundle's `process.terminal`): where runc sends the pty master.
    pub console_socket: Option<&'a Path>,
}

/// What a detached exec needs besides the names.
pub struct ExecSpec<'a> {
    pub namespace: &'a Namespace,
    pub id: &'a ContainerId,
    /// The OCI process spec, written by the caller.
    pub process_file: &'a Path,
    pub pid_file: &'a Path,
    /// With a terminal: where runc sends the pty master. The stdio files are then unused.
    pub console_socket: Option<&'a Path>,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

/// A process runc reports it started: the pid from its pid file, and when the process began,
/// which tells it from a later process with that pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launched {
    pub pid: u32,
    pub start: KnownStart,
}

impl Launched {
    /// A pidfd on the process, unless it is gone already (see [`PidFd::open_started`]): every
    /// start and exec takes hold of its process this way before anyone may signal it.
    pub fn hold(&self) -> io::Result<Held> {
        PidFd::open_started(self.pid, self.start)
    }
}

/// Brackets one runc call on the clock of process start times, for [`KnownStart::Within`].
pub(crate) struct CallWindow {
    from: u64,
}

impl CallWindow {
    /// Call this before spawning runc.
    pub(crate) fn open() -> Result<CallWindow, RuntimeError> {
        Ok(CallWindow {
            from: boot_ticks()?,
        })
    }

    /// Call this once runc has returned.
    pub(crate) fn close(self) -> Result<KnownStart, RuntimeError> {
        Ok(KnownStart::Within {
            from: self.from,
            to: boot_ticks()?,
        })
    }
}

fn boot_ticks() -> Result<u64, RuntimeError> {
    crate::procstat::ticks_since_boot()
        .map_err(|e| RuntimeError::io("cannot read", "the boot clock", e))
}

/// One entry of `runc list`.
#[derive(Debug, Clone, Deserialize)]
pub struct RuncContainer {
    pub id: String,
    pub pid: u32,
    pub status: String,
    pub bundle: String,
}

#[derive(Deserialize)]
struct LogLine {
    level: String,
    msg: String,
}

impl Runc {
    pub fn new(
        binary: impl Into<PathBuf>,
        state: StateDir,
        runner: Arc<dyn ProcessRunner>,
    ) -> Self {
        Runc {
            binary: binary.into(),
            criu: PathBuf::from("criu"),
            state,
            runner,
            timeout: DEFAULT_TIMEOUT,
            calls: AtomicU64::new(0),
        }
    }

    /// Bounds every runc call: a runc that hangs is killed, with its children, at `timeout`.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Runc { timeout, ..self }
    }

    /// Uses `criu` for checkpoint and restore instead of the `criu` on runc's PATH.
    pub fn with_criu(mut self, criu: impl Into<PathBuf>) -> Self {
        self.criu = criu.into();
        self
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn criu(&self) -> &Path {
        &self.criu
    }

    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    /// Starts the container detached and returns its init; on failure removes whatever runc left
    /// behind, so a failed start leaves no state.
    pub fn run_detached(&self, spec: StartSpec<'_>) -> Result<Launched, RuntimeError> {
        let (ns, id) = (spec.namespace, spec.id);
        let bundle = spec.bundle.path().to_string_lossy().into_owned();
        let pid_file = spec.pid_file.to_string_lossy().into_owned();
        let stdio = (
            spec.stdin.map_or_else(Stdio::null, Stdio::from),
            Stdio::from(spec.stdout),
            Stdio::from(spec.stderr),
        );
        let console = spec
            .console_socket
            .map(|p| p.to_string_lossy().into_owned());
        let mut args = vec!["run", "-d", "--pid-file", &pid_file, "--bundle", &bundle];
        if let Some(console) = &console {
            args.extend(["--console-socket", console]);
        }
        args.push(id.as_str());
        let started = CallWindow::open().and_then(|window| {
            self.call("run", ns, id, &args, stdio)?;
            let window = window.close()?;
            Ok(self.launched_init(ns, id, read_pid_file(spec.pid_file)?, window))
        });
        started.map_err(|failure| self.clean_up_failed_start(ns, id, failure))
    }

    /// The init runc started as `pid`, known by the start time runc recorded for it, or else by
    /// `window`, the span of the call that started it.
    pub(crate) fn launched_init(
        &self,
        ns: &Namespace,
        id: &ContainerId,
        pid: u32,
        window: KnownStart,
    ) -> Launched {
        let start = self
            .init_start_time(ns, id)
            .map_or(window, KnownStart::Exactly);
        Launched { pid, start }
    }

    /// Starts a process in a running container, detached, and returns it. A command that cannot
    /// be executed is [`RuntimeError::CommandNotFound`] or
    /// [`RuntimeError::CommandNotExecutable`]; runc leaves no state behind a failed exec.
    pub fn exec_detached(&self, spec: ExecSpec<'_>) -> Result<Launched, RuntimeError> {
        let process = spec.process_file.to_string_lossy().into_owned();
        let pid_file = spec.pid_file.to_string_lossy().into_owned();
        let console = spec
            .console_socket
            .map(|p| p.to_string_lossy().into_owned());
        let mut args = vec!["exec", "-d", "--process", &process, "--pid-file", &pid_file];
        if let Some(console) = &console {
            args.extend(["--console-socket", console]);
        }
        args.push(spec.id.as_str());
        let stdio = (
            spec.stdin.map_or_else(Stdio::null, Stdio::from),
            spec.stdout.map_or_else(Stdio::null, Stdio::from),
            spec.stderr.map_or_else(Stdio::null, Stdio::from),
        );
        let window = CallWindow::open()?;
        match self.call("exec", spec.namespace, spec.id, &args, stdio) {
            Ok(()) => {
                let start = window.close()?;
                let pid = read_pid_file(spec.pid_file)?;
                Ok(Launched { pid, start })
            }
            Err(RuntimeError::Failed { id, message, .. }) => {
                Err(crate::process::classify_exec_failure(&id, message))
            }
            Err(e) => Err(e),
        }
    }

    pub fn kill(
        &self,
        ns: &Namespace,
        id: &ContainerId,
        signal: i32,
        all: bool,
    ) -> Result<(), RuntimeError> {
        let signal = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id.as_str(), &signal]);
        self.call("kill", ns, id, &args, quiet())
    }

    pub fn delete(
        &self,
        ns: &Namespace,
        id: &ContainerId,
        force: bool,
    ) -> Result<(), RuntimeError> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id.as_str());
        self.call("delete", ns, id, &args, quiet())
    }

    /// Freezes every process of the container (`runc pause`).
    pub fn pause(&self, ns: &Namespace, id: &ContainerId) -> Result<(), RuntimeError> {
        self.call("pause", ns, id, &["pause", id.as_str()], quiet())
    }

    /// Thaws a paused container (`runc resume`).
    pub fn resume(&self, ns: &Namespace, id: &ContainerId) -> Result<(), RuntimeError> {
        self.call("resume", ns, id, &["resume", id.as_str()], quiet())
    }

    /// Changes the container's cgroup limits in place (`runc update`); runc reports what the
    /// kernel refuses, such as a memory limit below current usage.
    pub fn update(
        &self,
        ns: &Namespace,
        id: &ContainerId,
        update: &ResourceUpdate,
    ) -> Result<(), RuntimeError> {
        update.validate()?;
        let flags = update.flags();
        let mut args = vec!["update"];
        args.extend(flags.iter().map(String::as_str));
        args.push(id.as_str());
        self.call("update", ns, id, &args, quiet())
    }

    /// Where runc keeps this container's state (its `state.json` names the cgroup paths).
    pub fn container_state_dir(&self, ns: &Namespace, id: &ContainerId) -> PathBuf {
        self.state.runc_root(ns).join(id.as_str())
    }

    /// The init's start time as runc recorded it when it started the container (the same clock
    /// ticks as `/proc/<pid>/stat`), readable after the init is gone.
    pub fn init_start_time(&self, ns: &Namespace, id: &ContainerId) -> Option<u64> {
        #[derive(serde::Deserialize)]
        struct Saved {
            init_process_start: u64,
        }
        let state = fs::read(self.container_state_dir(ns, id).join("state.json")).ok()?;
        serde_json::from_slice::<Saved>(&state)
            .ok()
            .map(|s| s.init_process_start)
    }

    /// Whether runc holds state for this container in the namespace's root.
    pub fn has_state(&self, ns: &Namespace, id: &ContainerId) -> bool {
        self.container_state_dir(ns, id).exists()
    }

    /// The containers runc knows in this namespace.
    pub fn list(&self, ns: &Namespace) -> Result<Vec<RuncContainer>, RuntimeError> {
        let out_path = self.log_path("list", ns.as_str(), ".out");
        let out =
            File::create(&out_path).map_err(|e| RuntimeError::io("cannot create", &out_path, e))?;
        let listed = self
            .call_named(
                "list",
                ns,
                "-",
                &["list", "--format", "json"],
                (Stdio::null(), out.into(), Stdio::null()),
            )
            .and_then(|()| {
                fs::read(&out_path).map_err(|e| RuntimeError::io("cannot read", &out_path, e))
            });
        let _ = fs::remove_file(&out_path);
        let bytes = listed?;
        // runc prints `null` for an empty root.
        let parsed: Option<Vec<RuncContainer>> =
            serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Failed {
                op: "list",
                id: ns.to_string(),
                message: format!("unreadable output: {e}"),
            })?;
        Ok(parsed.unwrap_or_default())
    }

    pub(crate) fn clean_up_failed_start(
        &self,
        ns: &Namespace,
        id: &ContainerId,
        failure: RuntimeError,
    ) -> RuntimeError {
        if !self.has_state(ns, id) {
            return failure;
        }
        match self.delete(ns, id, true) {
            Ok(()) => failure,
            Err(cleanup) => RuntimeError::CleanupFailed {
                failure: Box::new(failure),
                cleanup: Box::new(cleanup),
            },
        }
    }

    pub(crate) fn call(
        &self,
        op: &'static str,
        ns: &Namespace,
        id: &ContainerId,
        args: &[&str],
        stdio: (Stdio, Stdio, Stdio),
    ) -> Result<(), RuntimeError> {
        self.call_with_env(op, ns, id.as_str(), args, &[], stdio)
    }

    /// A call in which runc runs CRIU, which inherits runc's environment: `CRIU_CONFIG_FILE`
    /// gives it the network hook.
    pub(crate) fn call_criu(
        &self,
        op: &'static str,
        ns: &Namespace,
        id: &ContainerId,
        args: &[&str],
        hook: &NetworkHook,
        stdio: (Stdio, Stdio, Stdio),
    ) -> Result<(), RuntimeError> {
        let env = [("CRIU_CONFIG_FILE", hook.config().as_os_str())];
        self.call_with_env(op, ns, id.as_str(), args, &env, stdio)
    }

    fn call_named(
        &self,
        op: &'static str,
        ns: &Namespace,
        id: &str,
        args: &[&str],
        stdio: (Stdio, Stdio, Stdio),
    ) -> Result<(), RuntimeError> {
        self.call_with_env(op, ns, id, args, &[], stdio)
    }

    fn call_with_env(
        &self,
        op: &'static str,
        ns: &Namespace,
        id: &str,
        args: &[&str],
        env: &[(&str, &OsStr)],
        (stdin, stdout, stderr): (Stdio, Stdio, Stdio),
    ) -> Result<(), RuntimeError> {
        let log = self.log_path(op, id, ".json");
        let root = self.state.runc_root(ns);
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&root)
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr);
        let status = self.runner.run(&mut cmd, self.timeout);
        let logged = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        let status = match status {
            Ok(status) if status.success() => return Ok(()),
            Ok(status) => status,
            Err(RunError::Spawn(source)) => {
                return Err(RuntimeError::Spawn {
                    binary: self.binary.clone(),
                    source,
                })
            }
            Err(RunError::TimedOut(after)) => {
                return Err(RuntimeError::TimedOut {
                    op,
                    id: id.to_string(),
                    after,
                })
            }
        };
        let Some(message) = error_message(&logged) else {
            let mut message = failure_without_log(status, &logged);
            if logged.is_empty() && filesystem_full(&self.state.runc_logs()) {
                message.push_str(&format!(
                    "; it could write no log: the filesystem of {} is full",
                    self.state.path().display()
                ));
            }
            return Err(RuntimeError::Failed {
                op,
                id: id.to_string(),
                message,
            });
        };
        Err(classify_failure(op, id, message))
    }

    fn log_path(&self, op: &str, id: &str, ext: &str) -> PathBuf {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        self.state.runc_logs().join(format!("{op}-{id}-{n}{ext}"))
    }
}

fn quiet() -> (Stdio, Stdio, Stdio) {
    (Stdio::null(), Stdio::null(), Stdio::null())
}

pub(crate) fn read_pid_file(path: &Path) -> Result<u32, RuntimeError> {
    let content =
        fs::read_to_string(path).map_err(|e| RuntimeError::io("cannot read pid file", path, e))?;
    content
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|&pid| pid > 1)
        .ok_or_else(|| RuntimeError::BadPidFile {
            path: path.to_path_buf(),
            content,
        })
}

/// What to say when runc's log holds no JSON line: how it ended, and the start of whatever it did
/// write, so a runtime that prints garbage is still diagnosable.
fn failure_without_log(status: ExitStatus, logged: &str) -> String {
    let ended = match status {
        ExitStatus::Exited(code) => format!("exited with status {code}"),
        ExitStatus::Signaled(signal) => format!("was killed by signal {signal}"),
    };
    match logged.lines().find(|l| !l.trim().is_empty()) {
        Some(line) => {
            let line: String = line.chars().take(200).collect();
            format!("{ended}; its log is not JSON: {line:?}")
        }
        None => ended,
    }
}

/// Whether the filesystem holding `path` has no block left: the usual reason runc wrote no log.
fn filesystem_full(path: &Path) -> bool {
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a struct statvfs, both alive for the
    // call; statvfs writes only into `stat`.
    let found = unsafe { libc::statvfs(path.as_ptr(), &mut stat) } == 0;
    found && stat.f_bavail == 0
}

/// runc's failure, typed when its words say the container changed under the caller: a call
/// racing an exit or a kill meets the container stopped, thawed or deleted. runc reports these
/// with fixed libcontainer messages (`ErrNotRunning`, `ErrNotPaused`, `ErrNotExist`), as the
/// last part of its error.
fn classify_failure(op: &'static str, id: &str, message: String) -> RuntimeError {
    let id = id.to_string();
    match message.rsplit(": ").next().unwrap_or_default().trim() {
        "container not running" | "container not paused" => {
            RuntimeError::WrongState { op, id, message }
        }
        "container does not exist" => RuntimeError::NoContainer { op, id, message },
        _ => RuntimeError::Failed { op, id, message },
    }
}

/// runc's own words: its error-level lines joined, else its last line, from a JSON log.
fn error_message(log: &str) -> Option<String> {
    let lines: Vec<LogLine> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .filter(|l| matches!(l.level.as_str(), "error" | "fatal" | "panic"))
        .map(|l| l.msg.as_str())
        .collect();
    if !errors.is_empty() {
        return Some(errors.join(": "));
    }
    lines.last().map(|l| l.msg.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_prefers_error_lines() {
        let log = concat!(
            r#"{"level":"warning","msg":"deprecated","time":"t"}"#,
            "\n",
            r#"{"level":"error","msg":"container with id exists: web","time":"t"}"#,
            "\nnot json\n"
        );
        assert_eq!(error_message(log).unwrap(), "container with id exists: web");
        let log = r#"{"level":"info","msg":"only info","time":"t"}"#;
        assert_eq!(error_message(log).unwrap(), "only info");
        assert!(error_message("").is_none());
    }

    /// What runc 1.1 logs when a pause or resume meets a container that changed under it.
    #[test]
    fn a_container_that_changed_under_a_call_is_a_typed_error() {
        let logged = |msg: &str| {
            format!(r#"{{"level":"error","msg":"{msg}","time":"2026-01-01T00:00:00Z"}}"#)
        };
        let failure = |op, msg: &str| {
            let message = error_message(&logged(msg)).unwrap();
            classify_failure(op, "web", message)
        };
        let err = failure("resume", "container not paused");
        assert!(
            matches!(&err, RuntimeError::WrongState { op: "resume", id, .. } if id == "web"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "runc resume web: container not paused");
        let err = failure("pause", "container not running");
        assert!(
            matches!(err, RuntimeError::WrongState { op: "pause", .. }),
            "{err:?}"
        );
        for op in ["pause", "resume"] {
            let err = failure(op, "container does not exist");
            assert!(matches!(err, RuntimeError::NoContainer { .. }), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!("runc {op} web: container does not exist")
            );
        }
        let err = failure("pause", "unable to freeze: device or resource busy");
        assert!(matches!(err, RuntimeError::Failed { .. }), "{err:?}");
    }

    #[test]
    fn a_runtime_without_a_json_log_is_still_explained() {
        assert_eq!(
            failure_without_log(ExitStatus::Signaled(11), ""),
            "was killed by signal 11"
        );
        assert_eq!(
            failure_without_log(ExitStatus::Exited(2), "\n%%garbage%%\nmore"),
            "exited with status 2; its log is not JSON: \"%%garbage%%\""
        );
    }

    #[test]
    fn pid_file_must_hold_a_real_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pid");
        fs::write(&path, "4242").unwrap();
        assert_eq!(read_pid_file(&path).unwrap(), 4242);
        for bad in ["", "1", "0", "x", "-5"] {
            fs::write(&path, bad).unwrap();
            assert!(matches!(
                read_pid_file(&path),
                Err(RuntimeError::BadPidFile { .. })
            ));
        }
    }
}
