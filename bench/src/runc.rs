//! The baseline: the same starts and teardown with runc called directly, no daemon. Each start
//! is what a ctrd worker does (a directory, stdio files, `runc run -d --pid-file` with a JSON
//! `--log`, the pid file read back); the teardown kills each init, reaps it and runs
//! `runc delete`, which is what ctrd does before it emits an exit event.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::ctrd::SINGLE_EXITS;
use crate::error::{self, BenchError};
use crate::progress;
use crate::reaper::{Exit, Reaper};
use crate::report::{Mode, Phase, RunReport};
use crate::stats::Distribution;
use protocol::LatencyRecorder;

pub struct Plan<'a> {
    pub runc: &'a Path,
    /// Holds runc's root and each container's files.
    pub work_dir: &'a Path,
    pub ids: &'a [String],
    pub bundles: &'a [PathBuf],
    pub concurrency: usize,
}

pub fn run(plan: &Plan) -> Result<RunReport, BenchError> {
    let (reaper, exits) = Reaper::start()
        .map_err(|e| BenchError::Setup(format!("cannot become the child subreaper: {e}")))?;
    let count = plan.ids.len();
    let pids: Vec<OnceLock<u32>> = (0..count).map(|_| OnceLock::new()).collect();
    let (took, latency, failures) = start_all(plan, &reaper, &pids);
    let started: Vec<usize> = (0..count).filter(|&n| pids[n].get().is_some()).collect();
    let (one_by_one, rest) = started.split_at(SINGLE_EXITS.min(started.len()));
    let single_exit = single_exits(plan, &reaper, &exits, &pids, one_by_one);
    let teardown = kill_all(plan, &reaper, &exits, &pids, rest);
    for n in failures.keys() {
        // A failed start may leave runc state behind.
        let _ = runc(plan, &reaper, &["delete", "--force", &plan.ids[*n]], None);
    }
    let teardown = teardown?;
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
    plan: &Plan,
    reaper: &Reaper,
    pids: &[OnceLock<u32>],
) -> (Duration, Distribution, HashMap<usize, String>) {
    let count = plan.ids.len();
    let next = AtomicUsize::new(0);
    let all = Mutex::new(LatencyRecorder::default());
    let failures = Mutex::new(HashMap::new());
    let bar = progress::bar(count, "started");
    let began = Instant::now();
    thread::scope(|s| {
        for _ in 0..plan.concurrency {
            s.spawn(|| {
                let mut recorder = LatencyRecorder::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    let sent = Instant::now();
                    match start_one(plan, reaper, n) {
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

fn start_one(plan: &Plan, reaper: &Reaper, n: usize) -> Result<u32, BenchError> {
    let id = &plan.ids[n];
    let dir = plan.work_dir.join("containers").join(id);
    fs::create_dir_all(&dir).map_err(|e| BenchError::io("cannot create", &dir, e))?;
    let output = |name: &str| {
        let path = dir.join(name);
        File::create(&path).map_err(|e| BenchError::io("cannot create", &path, e))
    };
    let (stdout, stderr) = (output("stdout.log")?, output("stderr.log")?);
    let pid_file = dir.join("init.pid");
    let bundle = plan.bundles[n].to_string_lossy();
    let pid_arg = pid_file.to_string_lossy();
    let args = ["run", "-d", "--pid-file", &pid_arg, "--bundle", &bundle, id];
    runc(plan, reaper, &args, Some((stdout, stderr)))?;
    let text =
        fs::read_to_string(&pid_file).map_err(|e| BenchError::io("cannot read", &pid_file, e))?;
    text.trim().parse().map_err(|_| BenchError::Runc {
        op: "run",
        id: id.clone(),
        message: format!("pid file {} holds {text:?}", pid_file.display()),
    })
}

/// Kills each init, waits until it is reaped and runs `runc delete` before the next.
fn single_exits(
    plan: &Plan,
    reaper: &Reaper,
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
                    what: format!("the exit of {}", plan.ids[n]),
                    waited,
                })?;
            if exited == pid {
                break;
            }
        }
        runc(plan, reaper, &["delete", &plan.ids[n]], None)?;
        recorder.record(sent.elapsed());
    }
    Ok(Distribution::from(&recorder))
}

/// Kills every started init, and as each is reaped runs `runc delete` on one of `concurrency`
/// threads; a container's latency runs from its kill to its delete returning.
fn kill_all(
    plan: &Plan,
    reaper: &Reaper,
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
        for _ in 0..plan.concurrency {
            s.spawn(|| {
                let mut recorder = LatencyRecorder::default();
                while done.load(Ordering::Relaxed) < started.len() && began.elapsed() < waited {
                    let Ok((pid, _)) = exits.recv_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    let Some(&n) = by_pid.get(&pid) else {
                        continue;
                    };
                    if let Err(e) = runc(plan, reaper, &["delete", &plan.ids[n]], None) {
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

/// Runs runc with this run's root and a JSON log; a failure carries runc's own error message.
fn runc(
    plan: &Plan,
    reaper: &Reaper,
    args: &[&str],
    output: Option<(File, File)>,
) -> Result<(), BenchError> {
    let id = args.last().copied().unwrap_or_default();
    let log = plan.work_dir.join(format!("runc-{}-{id}.log", args[0]));
    let (stdout, stderr) = match output {
        Some((out, err)) => (Stdio::from(out), Stdio::from(err)),
        None => (Stdio::null(), Stdio::null()),
    };
    let mut cmd = Command::new(plan.runc);
    cmd.arg("--root")
        .arg(plan.work_dir.join("runc-root"))
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let op = if args[0] == "run" { "run" } else { "delete" };
    let raw = reaper.run(&mut cmd).map_err(|e| BenchError::Runc {
        op,
        id: id.to_string(),
        message: format!("cannot run {}: {e}", plan.runc.display()),
    })?;
    let logged = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    if libc::WIFEXITED(raw) && libc::WEXITSTATUS(raw) == 0 {
        return Ok(());
    }
    let message = logged
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["level"] == "error")
        .filter_map(|l| l["msg"].as_str().map(str::to_string))
        .next()
        .unwrap_or_else(|| format!("failed with wait status {raw}"));
    Err(BenchError::Runc {
        op,
        id: id.to_string(),
        message,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
