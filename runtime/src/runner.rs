//! The seam through which runc processes are spawned and waited on.
//!
//! In a daemon that is a child subreaper, a reaper thread calls `waitpid(-1)` and would steal the
//! status of a runc process from the worker that spawned it. Such a daemon passes a runner that
//! registers each child with its reaper; anything else uses [`DirectRunner`].

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The status as shells report it: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }

    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// Decodes a raw `waitpid` status; `None` for stop/continue notifications.
    pub fn from_wait_status(raw: i32) -> Option<ExitStatus> {
        if libc::WIFEXITED(raw) {
            Some(ExitStatus::Exited(libc::WEXITSTATUS(raw)))
        } else if libc::WIFSIGNALED(raw) {
            Some(ExitStatus::Signaled(libc::WTERMSIG(raw)))
        } else {
            None
        }
    }
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(status: std::process::ExitStatus) -> Self {
        ExitStatus::from_wait_status(status.into_raw()).unwrap_or(ExitStatus::Exited(-1))
    }
}

pub trait ProcessRunner: Send + Sync {
    /// Spawns `cmd` and waits for it to exit.
    fn run(&self, cmd: &mut Command) -> io::Result<ExitStatus>;
}

/// Spawns and waits with the standard library: right when nothing else reaps our children.
#[derive(Debug, Default)]
pub struct DirectRunner;

impl ProcessRunner for DirectRunner {
    fn run(&self, cmd: &mut Command) -> io::Result<ExitStatus> {
        cmd.status().map(ExitStatus::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_report_as_128_plus_signal() {
        let status = DirectRunner
            .run(Command::new("sh").args(["-c", "kill -KILL $$"]))
            .unwrap();
        assert_eq!(status, ExitStatus::Signaled(9));
        assert_eq!(status.code(), 137);
        let status = DirectRunner
            .run(Command::new("sh").args(["-c", "exit 3"]))
            .unwrap();
        assert_eq!(status.code(), 3);
        assert!(!status.success());
    }
}
