//! `--probe`: while the starts run, a connection of its own asks the supervisor for the state of
//! a container that does not exist every 20 ms. The request goes through the actor, so its
//! latency shows whether the supervisor stays responsive while it is busiest.
//!
//! The probe's own thread runs at [`NICE`] (ctrd's default `--server-nice`) when it may, so
//! that what it measures is the daemon, not its own wait for a CPU behind the runc processes.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use protocol::{Client, ErrorKind, LatencyRecorder};

use crate::error::BenchError;

const EVERY: Duration = Duration::from_millis(20);

const NICE: i32 = -20;

/// The id the probe asks about; no container is ever started with it.
const MISSING: &str = "ctrd-bench-probe-missing";

/// Probes until `stop` is set; any answer but "not found" is an error.
pub fn run(
    address: &Path,
    namespace: &str,
    stop: &AtomicBool,
) -> Result<LatencyRecorder, BenchError> {
    // SAFETY: gettid has no preconditions; setpriority only reads its arguments. Without the
    // privilege to lower the nice value the probe runs at its own and measures that.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICE) };
    let mut client = Client::connect(address)?;
    let mut recorder = LatencyRecorder::default();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        match client.state(namespace, MISSING) {
            Err(e) if e.kind() == Some(ErrorKind::NotFound) => {}
            Err(e) => return Err(e.into()),
            Ok(found) => {
                return Err(BenchError::Setup(format!(
                    "the probe's container {:?} exists",
                    found.id
                )))
            }
        }
        recorder.record(sent.elapsed());
        // Pacing, not synchronisation: a fixed rate of probes whatever each one took.
        next += EVERY;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    Ok(recorder)
}
