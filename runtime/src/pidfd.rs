//! Process file descriptors: a handle on one process that a recycled pid can never alias.
//!
//! A pidfd is only as good as the pid it was opened on. The pid runc hands back names the
//! process it started only while that process has not been reaped: one that exits at once can
//! be reaped by the keeper before ctrd opens its pidfd, and its pid taken by another process.
//! So a process runc started is taken hold of with [`PidFd::open_started`], which checks the
//! start time of what it opened against what is known of the process runc started
//! ([`KnownStart`]), and hands out no pidfd on a stranger.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::ProcStat;

/// When a process runc started began, on the clock of [`ProcStat::start_time`], as far as ctrd
/// can know it: what tells that process from a later one with its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownStart {
    /// runc recorded it: a container's init (`init_process_start` in runc's state).
    Exactly(u64),
    /// Within the runc call that started it, from the tick the call was spawned in to the tick
    /// it was seen to return in. runc keeps the process it starts as its child and does not
    /// reap it (`-d`), so until runc exits the pid is that process's: a process with the pid
    /// that began before the call is another one (the pid file names the wrong process), and
    /// one that began after it took the pid once the keeper had reaped runc's. Only a process
    /// that took the pid within the very tick runc returned in would pass, which needs the
    /// kernel's cyclic pid allocation to go round the whole pid space within that tick.
    Within { from: u64, to: u64 },
}

impl KnownStart {
    /// Whether a process that began at `start_time` can be the one runc started.
    pub fn admits(self, start_time: u64) -> bool {
        match self {
            KnownStart::Exactly(known) => start_time == known,
            KnownStart::Within { from, to } => (from..=to).contains(&start_time),
        }
    }

    /// The start time, when it is known to the tick.
    pub fn exact(self) -> Option<u64> {
        match self {
            KnownStart::Exactly(known) => Some(known),
            KnownStart::Within { .. } => None,
        }
    }
}

/// What ctrd could take hold of, of a process runc started.
#[derive(Debug)]
pub enum Held {
    /// The process is there (running, or exited and not yet reaped): a pidfd that reaches it
    /// and nothing else, and its start time.
    Alive { pidfd: PidFd, start_time: u64 },
    /// The process was reaped before ctrd took hold of it, so its exit is on its way from the
    /// keeper; its pid is free or already another process's, which must never be signalled in
    /// its place. `start_time` when runc recorded it.
    Gone { start_time: Option<u64> },
}

impl Held {
    /// The pidfd and the start time, as the records that keep them apart want them.
    pub fn into_parts(self) -> (Option<PidFd>, Option<u64>) {
        match self {
            Held::Alive { pidfd, start_time } => (Some(pidfd), Some(start_time)),
            Held::Gone { start_time } => (None, start_time),
        }
    }
}

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

    /// Takes hold of the process runc started as `pid`, which began at `start`: opens a pidfd
    /// on whatever has the pid now, then reads its start time from `/proc`. Read after the
    /// pidfd is open, and with the pidfd still reaching a process after the read, the process
    /// read is the pidfd's: the pid cannot have changed hands in between. A start time that
    /// `start` does not admit means runc's process is gone and the pid is another's.
    pub fn open_started(pid: u32, start: KnownStart) -> io::Result<Held> {
        let gone = Held::Gone {
            start_time: start.exact(),
        };
        let is_gone = |e: &io::Error| {
            e.raw_os_error() == Some(libc::ESRCH) || e.kind() == io::ErrorKind::NotFound
        };
        let pidfd = match PidFd::open(pid) {
            Ok(pidfd) => pidfd,
            Err(e) if is_gone(&e) => return Ok(gone),
            Err(e) => return Err(e),
        };
        let stat = match ProcStat::of(pid).and_then(|stat| pidfd.send_signal(0).map(|()| stat)) {
            Ok(stat) => stat,
            Err(e) if is_gone(&e) => return Ok(gone),
            Err(e) => return Err(e),
        };
        if !start.admits(stat.start_time) {
            log::debug!(
                "pid {pid} began at tick {}, not at {start:?}: the process runc started is gone",
                stat.start_time
            );
            return Ok(gone);
        }
        Ok(Held::Alive {
            pidfd,
            start_time: stat.start_time,
        })
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

    /// A child that runs until killed, and is reaped when the test ends.
    struct Sleeper(std::process::Child);

    impl Sleeper {
        fn spawn() -> Sleeper {
            Sleeper(
                std::process::Command::new("sleep")
                    .arg("1000")
                    .spawn()
                    .unwrap(),
            )
        }

        fn pid(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn the_process_runc_started_is_held() {
        let from = crate::procstat::ticks_since_boot().unwrap();
        let sleeper = Sleeper::spawn();
        let to = crate::procstat::ticks_since_boot().unwrap();
        let started = crate::procstat::start_time(sleeper.pid()).unwrap();
        for known in [
            KnownStart::Exactly(started),
            KnownStart::Within { from, to },
        ] {
            match PidFd::open_started(sleeper.pid(), known).unwrap() {
                Held::Alive { pidfd, start_time } => {
                    assert_eq!((pidfd.pid(), start_time), (sleeper.pid(), started));
                    pidfd.send_signal(0).unwrap();
                }
                gone => panic!("{known:?}: {gone:?}"),
            }
        }
    }

    /// The pid names another process than the one runc started: no pidfd on it, ever.
    #[test]
    fn a_stranger_with_the_pid_is_not_held() {
        let stranger = Sleeper::spawn();
        let began = crate::procstat::start_time(stranger.pid()).unwrap();
        let later = crate::procstat::ticks_since_boot().unwrap() + 1;
        let cases = [
            (KnownStart::Exactly(began + 1), Some(began + 1)),
            (KnownStart::Exactly(began - 1), Some(began - 1)),
            // runc was spawned after the stranger began.
            (
                KnownStart::Within {
                    from: later,
                    to: later + 100,
                },
                None,
            ),
            // runc had returned before the stranger began.
            (
                KnownStart::Within {
                    from: 0,
                    to: began - 1,
                },
                None,
            ),
        ];
        for (known, recorded) in cases {
            match PidFd::open_started(stranger.pid(), known).unwrap() {
                Held::Gone { start_time } => assert_eq!(start_time, recorded, "{known:?}"),
                alive => panic!("{known:?}: held the stranger: {alive:?}"),
            }
        }
    }

    #[test]
    fn a_reaped_process_is_gone_with_what_runc_recorded() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let held = PidFd::open_started(pid, KnownStart::Exactly(7)).unwrap();
        assert!(
            matches!(
                held,
                Held::Gone {
                    start_time: Some(7)
                }
            ),
            "{held:?}"
        );
        assert_eq!(held.into_parts().1, Some(7));
    }

    #[test]
    fn signal_zero_probes_a_live_process() {
        let me = PidFd::open(std::process::id()).unwrap();
        me.send_signal(0).unwrap();
        assert_eq!(me.pid(), std::process::id());
    }
}
