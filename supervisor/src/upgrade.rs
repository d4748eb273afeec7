//! `ctrd upgrade`: replace the running daemon with the `ctrd` binary on disk, containers kept.
//!
//! The daemon's info names its keeper; SIGHUP asks the keeper to hand over: the daemon finishes
//! what is in flight and exits, the keeper re-executes itself from the binary on disk (keeping
//! its pid, its children and the listening socket) and starts the new daemon, which takes the
//! containers over. Clients that connect meanwhile wait in the socket's backlog. This command
//! waits until a new daemon answers.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use protocol::{Client, DaemonInfo};

/// How often the new daemon is asked whether it serves.
const POLL: Duration = Duration::from_millis(20);

pub fn upgrade(address: &Path, timeout: Duration) -> Result<String, String> {
    let info = || Client::connect(address).and_then(|mut client| client.info());
    let old = info().map_err(|e| format!("cannot ask the running ctrd for its keeper: {e}"))?;
    let keeper = nix::unistd::Pid::from_raw(old.keeper_pid as i32);
    if old.keeper_pid <= 1 {
        return Err(format!("ctrd reports no keeper (pid {})", old.keeper_pid));
    }
    nix::sys::signal::kill(keeper, nix::sys::signal::Signal::SIGHUP)
        .map_err(|e| format!("cannot signal the keeper (pid {}): {e}", old.keeper_pid))?;
    let deadline = Instant::now() + timeout;
    loop {
        // Until the old daemon has gone, it answers (or refuses) with its own pid.
        if let Ok(new) = info() {
            if new.pid != old.pid {
                return Ok(report(&old, &new));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no new daemon answered on {} within {timeout:?}; see the keeper's log (pid {})",
                address.display(),
                old.keeper_pid
            ));
        }
        thread::sleep(POLL);
    }
}

fn report(old: &DaemonInfo, new: &DaemonInfo) -> String {
    format!(
        "ctrd upgraded from {} (pid {}) to {} (pid {}); keeper pid {}; {} container(s) recovered",
        old.version, old.pid, new.version, new.pid, new.keeper_pid, new.recovered
    )
}
