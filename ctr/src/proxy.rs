//! Signals to an attached ctr without a terminal are meant for its process, as `docker attach`
//! has it: INT, TERM, HUP and QUIT are forwarded to the process, and ctr keeps copying its output
//! until it exits, then exits with its status. (With a terminal, ^C reaches the process through
//! the terminal itself; see [`crate::terminal`].)

use std::thread;

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use protocol::KillProcessRequest;

use crate::error::Error;
use crate::Global;

/// The signals that would end ctr.
pub const ENDING: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// Blocks [`ENDING`] here and in every thread started later, and forwards each to process
/// `process` of container `id` from a thread of its own. Call before starting other threads.
pub fn forward(global: &Global, id: &str, process: &str) -> Result<(), Error> {
    let mut set = SigSet::empty();
    for signal in ENDING {
        set.add(signal);
    }
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| Error::Signals(e.into()))?;
    let (global, id, process) = (global.clone(), id.to_string(), process.to_string());
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(signal) = set.wait() {
                let request = KillProcessRequest {
                    namespace: global.namespace.clone(),
                    id: id.clone(),
                    process: process.clone(),
                    signal: signal as i32,
                };
                // A process that is still starting or already gone has nothing to receive it.
                let _ = global
                    .connect()
                    .and_then(|mut c| Ok(c.kill_process(request)?));
            }
        })
        .map_err(Error::Output)?;
    Ok(())
}
