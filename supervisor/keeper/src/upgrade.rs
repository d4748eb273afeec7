//! SIGHUP: the daemon hands over and the keeper re-executes itself from the binary on disk (an
//! upgrade), keeping the listener, the containers' output pipes, its zombies and its signals.

use std::fs;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::handoff::{exec, outputs_lines, set_cloexec, OUTPUTS_FILE};
use crate::wire::ToDaemon;
use crate::{Keeper, Phase};

/// How long a daemon gets to hand over on SIGHUP before it is killed.
pub(crate) const HANDOVER_WAIT: Duration = Duration::from_secs(60);

impl Keeper {
    /// SIGHUP: the daemon hands over, then the keeper re-executes itself from the binary on
    /// disk and starts a new daemon.
    pub(crate) fn upgrade(&mut self) -> Option<ExitCode> {
        if self.phase != Phase::Running {
            log::info!("SIGHUP: ignored while the daemon is stopping or handing over");
            return None;
        }
        let Some(daemon) = &mut self.daemon else {
            log::info!(
                "SIGHUP: no daemon is running; re-executing {}",
                self.exe.display()
            );
            self.reexec();
            self.restart_at = None;
            return self.start_daemon();
        };
        log::info!(
            "SIGHUP: asking the ctrd daemon (pid {}) to hand over",
            daemon.pid
        );
        daemon.outbox.push_back((ToDaemon::Handover, Vec::new()));
        self.phase = Phase::Upgrading {
            deadline: Some(Instant::now() + HANDOVER_WAIT),
        };
        None
    }

    /// Replaces this process with the binary on disk, keeping the listener, the outputs, the
    /// zombies and the pending signals. Returns only if that failed (logged); the caller then
    /// starts a daemon as after a crash.
    pub(crate) fn reexec(&mut self) {
        if let Err(e) = self.exits.compact() {
            log::warn!("cannot compact the exit log before re-executing: {e}");
        }
        let outputs_file = self.state_dir.join(OUTPUTS_FILE);
        let kept: Vec<RawFd> = self
            .outputs
            .values()
            .flatten()
            .map(|fd| fd.as_raw_fd())
            .collect();
        let result = fs::write(&outputs_file, outputs_lines(&self.outputs))
            .and_then(|()| set_cloexec(&kept, false))
            .and_then(|()| set_cloexec(&[self.listener.as_raw_fd()], false))
            .and_then(|()| exec(&self.exe, self.listener.as_raw_fd()));
        let Err(e) = result;
        log::error!(
            "cannot re-execute {}: {e}; starting a new daemon from the running binary",
            self.exe.display()
        );
        // Whatever the daemon is given from here on, the outputs are not among it.
        if let Err(e) = set_cloexec(&kept, true) {
            log::error!("keeper: cannot close outputs on exec: {e}");
        }
        let _ = fs::remove_file(&outputs_file);
    }
}
