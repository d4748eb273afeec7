//! The baseline's reaper. `runc run -d` leaves the container's init an orphan, reparented to
//! the nearest child subreaper; without one it would go to pid 1, which on some hosts never
//! reaps. So the baseline makes this process the subreaper, as ctrd is, and reaps here: runc
//! processes go through [`Reaper::run`], which registers each under the lock the reaper holds
//! while it reaps, so their status goes to the caller; every other exit is a container's.

use std::collections::HashMap;
use std::io;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use signal_hook::consts::SIGCHLD;
use signal_hook::iterator::Signals;

pub struct Reaper {
    waiters: Mutex<HashMap<u32, Sender<i32>>>,
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

    /// Spawns `cmd` and waits for it; returns its raw wait status.
    pub fn run(&self, cmd: &mut Command) -> io::Result<i32> {
        let (tx, rx) = bounded(1);
        {
            let mut waiters = self.lock();
            let child = cmd.spawn()?;
            waiters.insert(child.id(), tx);
        }
        rx.recv()
            .map_err(|_| io::Error::other("the reaper thread is gone"))
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
            if !libc::WIFEXITED(raw) && !libc::WIFSIGNALED(raw) {
                continue;
            }
            match waiters.remove(&(pid as u32)) {
                Some(waiter) => {
                    let _ = waiter.send(raw);
                }
                None => {
                    let _ = exits.send((pid as u32, Instant::now()));
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Sender<i32>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
