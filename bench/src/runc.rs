//! The baseline: the same starts and teardown with runc called directly, no daemon, through the
//! daemon's own runtime adapter ([`runtime::Runc`]), so both make exactly the same runc calls
//! (`runc run -d --pid-file` with a JSON `--log`, the pid file read back, a failed start
//! cleaned up; `runc delete`) with the same process groups and deadline. Each start is what a
//! ctrd worker does, less the daemon's own work (the relay of its output, its record, a pidfd):
//! the bundle checked, a directory, stdio files, runc. The teardown kills each init, reaps it and
//! runs `runc delete`, which is what ctrd does before it emits an exit event.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use protocol::LatencyRecorder;
use runtime::{Bundle, ContainerId, Namespace, Runc, RuntimeError, StartSpec, StateDir};

use crate::ctrd::SINGLE_EXITS;
use crate::error::{self, BenchError};
use crate::progress;
use crate::reaper::{Exit, Reaper};
use crate::report::{Mode, Phase, RunReport};
use crate::stats::Distribution;

pub struct Plan<'a> {
    pub runc: &'a Path,
    /// Holds runc's root and each container's files, laid out as ctrd's state dir is.
    pub work_dir: &'a Path,
    pub namespace: &'a Namespace,
    pub ids: &'a [String],
    pub bundles: &'a [PathBuf],
    pub concurrency: usize,
}

/// The plan with what runs it: runc called through the adapter, its processes reaped here.
struct Baseline<'a> {
    plan: &'a Plan<'a>,
    runc: Runc,
    ids: Vec<ContainerId>,
}

pub fn run(plan: &Plan) -> Result<RunReport, BenchError> {
    let (reaper, exits) = Reaper::start()
        .map_err(|e| BenchError::Setup(format!("cannot become the child subreaper: {e}")))?;
    let state = StateDir::new(plan.work_dir);
    let logs = state.runc_logs();
    fs::create_dir_all(&logs).map_err(|e| BenchError::io("cannot create", &logs, e))?;
    let ids = plan
        .ids
        .iter()
        .map(|id| ContainerId::new(id))
        .collect::<Result<_, _>>()?;
    let baseline = Baseline {
        plan,
        runc: Runc::new(plan.runc, state, reaper),
        ids,
    };
    let count = plan.ids.len();
    let pids: Vec<OnceLock<u32>> = (0..count).map(|_| OnceLock::new()).collect();
    let (took, latency, failures) = start_all(&baseline, &pids);
    let started: Vec<usize> = (0..count).filter(|&n| pids[n].get().is_some()).collect();
    let (one_by_one, rest) = started.split_at(SINGLE_EXITS.min(started.len()));
    let single_exit = single_exits(&baseline, &exits, &pids, one_by_one);
    let teardown = kill_all(&baseline, &exits, &pids, rest)?;
    let single_exit = single_exit?;
    error::failed_starts(&failures, plan.ids)?;
    Ok(RunReport {
        mode: Mode::Runc,
        count,
        concurrency: plan.concurrency,
        start: Phase::new(count, took, latency),
        teardown,
        probe: None,
        single_exit,
        daemon: None,
    })
}

fn start_all(
    baseline: &Baseline,
    pids: &[OnceLock<u32>],
) -> (Duration, Distribution, HashMap<usize, String>) {
    let count = pids.len();
    let next = AtomicUsize::new(0);
    let all = Mutex::new(LatencyRecorder::default());
    let failures = Mutex::new(HashMap::new());
    let bar = progress::bar(count, "started");
    let began = Instant::now();
    thread::scope(|s| {
        for _ in 0..baseline.plan.concurrency {
            s.spawn(|| {
                let mut recorder = LatencyRecorder::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    let sent = Instant::now();
                    match baseline.start(n) {
                        Ok(pid) => {
                            recorder.record(sent.elapsed());
                            let _ = pids[n].set(pid);
                        }
                        Err(e) => {
                            lock(&failures).insert(n, e.to_string());
                        }
                    }
                    bar.inc(1);
                }
                lock(&all).merge(&recorder);
            });
        }
    });
    let took = began.elapsed();
    bar.finish_and_clear();
    let summary = Distribution::from(&*lock(&all));
    let failures = failures.into_inner().unwrap_or_default();
    (took, summary, failures)
}

impl Baseline<'_> {
    /// Starts container `n` as a ctrd worker would; a failed start leaves no runc state.
    fn start(&self, n: usize) -> Result<u32, RuntimeError> {
        let id = &self.ids[n];
        let bundle = Bundle::open(&self.plan.bundles[n])?;
        let dir = self.runc.state_dir().container_dir(self.plan.namespace, id);
        fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("cannot create", &dir, e))?;
        let output = |name: &str| {
            let path = dir.join(name);
            File::create(&path).map_err(|e| RuntimeError::io("cannot create", &path, e))
        };
        self.runc
            .run_detached(StartSpec {
                namespace: self.plan.namespace,
                id,
                bundle: &bundle,
                pid_file: &dir.join("init.pid"),
                stdin: None,
                stdout: output("stdout.log")?,
                stderr: output("stderr.log")?,
                console_socket: None,
            })
            .map(|init| init.pid)
    }

    fn delete(&self, n: usize) -> Result<(), RuntimeError> {
        self.runc.delete(self.plan.namespace, &self.ids[n], false)
    }
}

/// Kills each init, waits until it is reaped and runs `runc delete` before the next.
fn single_exits(
    baseline: &Baseline,
    exits: &crossbeam_channel::Receiver<Exit>,
    pids: &[OnceLock<u32>],
    one_by_one: &[usize],
) -> Result<Distribution, BenchError> {
    let mut recorder = LatencyRecorder::default();
    let waited = Duration::from_secs(30);
    for &n in one_by_one {
        let Some(&pid) = pids[n].get() else { continue };
        let sent = Instant::now();
        // SAFETY: kill(2) on a container init this process is the subreaper of and has not
        // reaped yet, so the pid cannot have been recycled.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        loop {
            let (exited, _) = exits
                .recv_timeout(waited)
                .map_err(|_| BenchError::Timeout {
                    what: format!("the exit of {}", baseline.ids[n]),
                    waited,
                })?;
            if exited == pid {
                break;
            }
        }
        baseline.delete(n)?;
        recorder.record(sent.elapsed());
    }
    Ok(Distribution::from(&recorder))
}

/// Kills every started init, and as each is reaped runs `runc delete` on one of `concurrency`
/// threads; a container's latency runs from its kill to its delete returning.
fn kill_all(
    baseline: &Baseline,
    exits: &crossbeam_channel::Receiver<Exit>,
    pids: &[OnceLock<u32>],
    started: &[usize],
) -> Result<Phase, BenchError> {
    let by_pid: HashMap<u32, usize> = started
        .iter()
        .filter_map(|&n| pids[n].get().map(|&pid| (pid, n)))
        .collect();
    let kill_sent: Vec<OnceLock<Instant>> = pids.iter().map(|_| OnceLock::new()).collect();
    let done = AtomicUsize::new(0);
    let all = Mutex::new(LatencyRecorder::default());
    let errors = Mutex::new(Vec::new());
    let last = Mutex::new(None::<Instant>);
    let bar = progress::bar(started.len(), "deleted");
    let waited = Duration::from_secs(30) + Duration::from_millis(50) * started.len() as u32;
    let began = Instant::now();
    thread::scope(|s| {
        for _ in 0..baseline.plan.concurrency {
            s.spawn(|| {
                let mut recorder = LatencyRecorder::default();
                while done.load(Ordering::Relaxed) < started.len() && began.elapsed() < waited {
                    let Ok((pid, _)) = exits.recv_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    let Some(&n) = by_pid.get(&pid) else {
                        continue;
                    };
                    if let Err(e) = baseline.delete(n) {
                        lock(&errors).push(e.to_string());
                    }
                    let now = Instant::now();
                    if let Some(sent) = kill_sent[n].get() {
                        recorder.record(now.saturating_duration_since(*sent));
                    }
                    let mut last = lock(&last);
                    *last = Some(last.map_or(now, |l| l.max(now)));
                    done.fetch_add(1, Ordering::Relaxed);
                    bar.inc(1);
                }
                lock(&all).merge(&recorder);
            });
        }
        for &n in started {
            let Some(&pid) = pids[n].get() else { continue };
            let _ = kill_sent[n].set(Instant::now());
            // SAFETY: kill(2) on a container init this process is the subreaper of and has not
            // reaped yet, so the pid cannot have been recycled.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    bar.finish_and_clear();
    if let Some(first) = lock(&errors).first() {
        return Err(BenchError::Setup(first.clone()));
    }
    if done.load(Ordering::Relaxed) < started.len() {
        return Err(BenchError::Timeout {
            what: format!(
                "{} container exits",
                started.len() - done.load(Ordering::Relaxed)
            ),
            waited,
        });
    }
    let last = lock(&last).unwrap_or(began);
    let latency = Distribution::from(&*lock(&all));
    Ok(Phase::new(
        started.len(),
        last.saturating_duration_since(began),
        latency,
    ))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
