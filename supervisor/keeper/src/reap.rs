//! Reaping: the keeper's only `waitid`/`waitpid` calls, and what a wait status says.
//!
//! A zombie is found with `WNOWAIT` first, so its `/proc/<pid>/stat` (its start time) can still
//! be read, and only then reaped: the pid and start time together name the process that exited.

use std::io;

use nix::sys::signal::Signal;

/// The pid of a child that has exited, left unreaped so its `/proc` entry can still be read.
pub fn next_zombie() -> Option<u32> {
    loop {
        // SAFETY: zeroed is a valid siginfo_t; waitid writes only into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` lives across the call.
        let r = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return None,
                _ => {
                    log::error!("keeper: waitid: {err}");
                    return None;
                }
            }
        }
        // SAFETY: waitid filled in a SIGCHLD siginfo (or left the pid 0: no zombie).
        let pid = unsafe { info.si_pid() };
        return u32::try_from(pid).ok().filter(|&pid| pid > 0);
    }
}

/// Reaps the zombie `pid`; its raw wait status.
pub fn reap_pid(pid: u32) -> Option<i32> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`, which lives across the call.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r == pid as libc::pid_t {
            return Some(status);
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        log::error!(
            "keeper: cannot reap pid {pid}: {}",
            if r < 0 {
                io::Error::last_os_error().to_string()
            } else {
                "not exited".to_string()
            }
        );
        return None;
    }
}

/// What `clock` reads now, in nanoseconds. Exits are stamped with `CLOCK_MONOTONIC` here and
/// the daemon compares that with its own reading, so both ends use this one function.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into `ts`.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The process exit code a keeper passes on for a daemon's status: its own, or 1 if a signal
/// killed it.
pub fn exit_code(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else {
        1
    }
}

/// A wait status in words, for the log.
pub fn describe(status: i32) -> String {
    match runtime::ExitStatus::from_wait_status(status) {
        Some(runtime::ExitStatus::Exited(code)) => format!("exit code {code}"),
        Some(runtime::ExitStatus::Signaled(signal)) => match Signal::try_from(signal) {
            Ok(name) => format!("killed by {name}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        None => format!("wait status {status:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_pass_on_the_daemons() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(libc::SIGKILL), 1);
        assert_eq!(describe(2 << 8), "exit code 2");
        assert_eq!(describe(libc::SIGSEGV), "killed by SIGSEGV");
    }
}
