//! The seam through which runc processes are spawned and waited on: each in a process group of
//! its own, killed whole at a deadline.
//!
//! The process that spawns runc must be the only one to reap it. ctrd's daemon is: it is not a
//! subreaper (its keeper is) and nothing in it calls `waitpid(-1)`, so it uses [`DirectRunner`].
//! ctrd-bench's raw-runc baseline is a subreaper that reaps everything, so it implements
//! [`ProcessRunner`] over its reaper, with [`wait_or_kill`] for the deadline.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

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

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Spawn(#[from] io::Error),
    #[error("no answer after {0:?}; killed it")]
    TimedOut(Duration),
}

pub trait ProcessRunner: Send + Sync {
    /// Spawns `cmd` in a process group of its own and waits for it to exit; past `timeout` the
    /// whole group is killed (a hung runc takes its children with it) and reaped.
    fn run(&self, cmd: &mut Command, timeout: Duration) -> Result<ExitStatus, RunError>;
}

/// Waits for the status of the group leader `pid` to arrive on `status`; kills the group at the
/// deadline, then still waits for the status so no zombie is left behind.
pub fn wait_or_kill(
    pid: u32,
    status: &Receiver<ExitStatus>,
    timeout: Duration,
) -> Result<ExitStatus, RunError> {
    let gone = || io::Error::other("the process's waiter went away");
    match status.recv_timeout(timeout) {
        Ok(status) => Ok(status),
        Err(RecvTimeoutError::Disconnected) => Err(gone().into()),
        Err(RecvTimeoutError::Timeout) => {
            if let Ok(pgid) = libc::pid_t::try_from(pid) {
                if pgid > 1 {
                    // SAFETY: killpg takes two integers and touches no memory; pgid > 1 keeps it
                    // off init and off "every process".
                    unsafe { libc::killpg(pgid, libc::SIGKILL) };
                }
            }
            status.recv().map_err(|_| gone())?;
            Err(RunError::TimedOut(timeout))
        }
    }
}

/// Spawns and waits with the standard library: right when nothing else reaps our children.
#[derive(Debug, Default)]
pub struct DirectRunner;

impl ProcessRunner for DirectRunner {
    fn run(&self, cmd: &mut Command, timeout: Duration) -> Result<ExitStatus, RunError> {
        let mut child = cmd.process_group(0).spawn()?;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send(ExitStatus::from(status));
            }
        });
        wait_or_kill(pid, &rx, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn signals_report_as_128_plus_signal() {
        let status = DirectRunner
            .run(Command::new("sh").args(["-c", "kill -KILL $$"]), LONG)
            .unwrap();
        assert_eq!(status, ExitStatus::Signaled(9));
        assert_eq!(status.code(), 137);
        let status = DirectRunner
            .run(Command::new("sh").args(["-c", "exit 3"]), LONG)
            .unwrap();
        assert_eq!(status.code(), 3);
        assert!(!status.success());
    }

    #[test]
    fn a_hung_process_group_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child");
        // The shell's child would outlive a kill of the shell alone.
        let script = format!("sleep 1000 & echo $! > {}; wait", pid_file.display());
        let result = DirectRunner.run(
            Command::new("sh").args(["-c", &script]),
            Duration::from_millis(300),
        );
        assert!(matches!(result, Err(RunError::TimedOut(_))), "{result:?}");
        let child = std::fs::read_to_string(&pid_file).unwrap();
        let stat = format!("/proc/{}/stat", child.trim());
        // The killed sleep is reparented and reaped by init; until then it is a zombie.
        let dead = || {
            std::fs::read_to_string(&stat).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        };
        let start = std::time::Instant::now();
        while !dead() {
            assert!(start.elapsed() < LONG, "the group's other member survived");
            thread::sleep(Duration::from_millis(5));
        }
    }
}
