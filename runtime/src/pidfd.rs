//! Process file descriptors: a handle on one process that a recycled pid can never alias.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug)]
pub struct PidFd {
    pid: u32,
    fd: OwnedFd,
}

impl PidFd {
    /// Opens a pidfd for `pid`; `ESRCH` means the process is already gone (and reaped).
    pub fn open(pid: u32) -> io::Result<PidFd> {
        let raw_pid = libc::pid_t::try_from(pid)
            .ok()
            .filter(|&p| p > 1)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid must be above 1"))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd (always O_CLOEXEC) or -1;
        // it touches no memory of ours.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd to us and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(ret as i32) };
        Ok(PidFd { pid, fd })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A second handle on the same process: one to signal it, one to wait for its exit.
    pub fn try_clone(&self) -> io::Result<PidFd> {
        Ok(PidFd {
            pid: self.pid,
            fd: self.fd.try_clone()?,
        })
    }

    /// Sends `signal`; `ESRCH` means the process has exited (it may not be reaped yet).
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a null siginfo and no flags reads no memory of ours; the
        // fd is valid for as long as `self` lives.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A pidfd polls readable once its process has exited, child of this process or not.
impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_init_and_the_kernel() {
        assert!(PidFd::open(0).is_err());
        assert!(PidFd::open(1).is_err());
    }

    #[test]
    fn signal_zero_probes_a_live_process() {
        let me = PidFd::open(std::process::id()).unwrap();
        me.send_signal(0).unwrap();
        assert_eq!(me.pid(), std::process::id());
    }
}
