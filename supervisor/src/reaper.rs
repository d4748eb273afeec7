//! The SIGCHLD reaper: the only caller of `waitpid(-1)` in the daemon.
//!
//! ctrd is the child subreaper of its containers, so every container init ends up our child and
//! is reaped here. runc processes are our children too; a worker that spawns one goes through
//! [`Reaper`]'s [`ProcessRunner`] impl, which registers the pid under the same lock the reaper
//! holds while it reaps, so the worker, never the reaper's exit stream, gets runc's status.
//!
//! The seam to the rest of the daemon is narrow: exits come out through the `on_exit` callback
//! and nothing else goes in, so the reaper can later move into a separate keeper process.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use runtime::runner::wait_or_kill;
use runtime::{ExitStatus, ProcessRunner, RunError};
use signal_hook::consts::SIGCHLD;
use signal_hook::iterator::Signals;

/// A child that exited and was not one a worker waits on.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub pid: u32,
    pub status: ExitStatus,
    pub reaped_at: Instant,
}

pub struct Reaper {
    /// Children spawned through [`ProcessRunner::run`], with where their status goes.
    waiters: Mutex<HashMap<u32, Sender<ExitStatus>>>,
}

impl Reaper {
    /// Installs the SIGCHLD handler and starts the reaper thread, at nice value `nice` (see
    /// [`crate::priority`]; 0 leaves it alone).
    pub fn start(nice: i32, on_exit: impl Fn(Exit) + Send + 'static) -> io::Result<Arc<Reaper>> {
        let mut signals = Signals::new([SIGCHLD])?;
        let reaper = Arc::new(Reaper {
            waiters: Mutex::new(HashMap::new()),
        });
        let this = reaper.clone();
        thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                if let Err(e) = crate::priority::set_this_thread(nice) {
                    log::warn!("cannot set the reaper's nice value to {nice}: {e}");
                }
                // Children that exited before the handler was installed sent no signal we saw.
                this.reap_all(&on_exit);
                for _ in signals.forever() {
                    this.reap_all(&on_exit);
                }
            })?;
        Ok(reaper)
    }

    /// Reaps until nothing is left: signals coalesce, so one SIGCHLD may stand for many exits.
    fn reap_all(&self, on_exit: &impl Fn(Exit)) {
        let mut waiters = self.lock();
        loop {
            let mut raw = 0;
            // SAFETY: waitpid writes only to `raw`, which lives across the call.
            let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
            if pid == 0 {
                return;
            }
            if pid < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ECHILD) => return,
                    _ => {
                        log::error!("waitpid: {}", io::Error::last_os_error());
                        return;
                    }
                }
            }
            let Some(status) = ExitStatus::from_wait_status(raw) else {
                continue;
            };
            let pid = pid as u32;
            match waiters.remove(&pid) {
                Some(waiter) => {
                    let _ = waiter.send(status);
                }
                None => on_exit(Exit {
                    pid,
                    status,
                    reaped_at: Instant::now(),
                }),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Sender<ExitStatus>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ProcessRunner for Reaper {
    fn run(&self, cmd: &mut Command, timeout: Duration) -> Result<ExitStatus, RunError> {
        let (tx, rx) = mpsc::channel();
        let pid = {
            // Spawning under the reaper's lock: the child cannot be reaped before it is registered.
            let mut waiters = self.lock();
            let child = cmd.process_group(0).spawn()?;
            waiters.insert(child.id(), tx);
            child.id()
        };
        wait_or_kill(pid, &rx, timeout)
    }
}
