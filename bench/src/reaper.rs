//! The baseline's reaper. `runc run -d` leaves the container's init an orphan, reparented to
//! the nearest child subreaper; without one it would go to pid 1, which on some hosts never
//! reaps, and the baseline could not see its exit. So the baseline makes this process the
//! subreaper, as ctrd's keeper is, and reaps here.
//!
//! Reaping with `waitpid(-1)` would steal the status of a runc process from whoever spawned it,
//! so runc is spawned through this reaper, as the [`ProcessRunner`] of [`runtime::Runc`]: each
//! is registered under the lock the reaper holds while it reaps, so its status goes to its
//! caller; every other exit is a container's.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use runtime::runner::wait_or_kill;
use runtime::{ExitStatus, ProcessRunner, RunError};
use signal_hook::consts::SIGCHLD;
use signal_hook::iterator::Signals;

pub struct Reaper {
    waiters: Mutex<HashMap<u32, mpsc::Sender<ExitStatus>>>,
}

/// A container init that exited, and when it was reaped.
pub type Exit = (u32, Instant);

impl Reaper {
    /// Becomes the child subreaper and starts reaping; exits of unregistered children arrive on
    /// the returned channel.
    pub fn start() -> io::Result<(Arc<Reaper>, Receiver<Exit>)> {
        nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
        let mut signals = Signals::new([SIGCHLD])?;
        let reaper = Arc::new(Reaper {
            waiters: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let this = reaper.clone();
        thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                this.reap_all(&tx);
                for _ in signals.forever() {
                    this.reap_all(&tx);
                }
            })?;
        Ok((reaper, rx))
    }

    /// Signals coalesce: reap until nothing is left.
    fn reap_all(&self, exits: &Sender<Exit>) {
        let mut waiters = self.lock();
        loop {
            let mut raw = 0;
            // SAFETY: waitpid writes only to `raw`, which lives across the call.
            let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
            if pid == 0 {
                return;
            }
            if pid < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return;
            }
            let Some(status) = ExitStatus::from_wait_status(raw) else {
                continue;
            };
            match waiters.remove(&(pid as u32)) {
                Some(waiter) => {
                    let _ = waiter.send(status);
                }
                None => {
                    let _ = exits.send((pid as u32, Instant::now()));
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, mpsc::Sender<ExitStatus>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ProcessRunner for Reaper {
    /// As [`runtime::DirectRunner`] does, but the status comes from the reaper thread.
    fn run(&self, cmd: &mut Command, timeout: Duration) -> Result<ExitStatus, RunError> {
        let (tx, rx) = mpsc::channel();
        let pid = {
            let mut waiters = self.lock();
            let pid = cmd.process_group(0).spawn()?.id();
            waiters.insert(pid, tx);
            pid
        };
        wait_or_kill(pid, &rx, timeout)
    }
}
