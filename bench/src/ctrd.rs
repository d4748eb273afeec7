//! The run through ctrd: `concurrency` client connections start the containers, an event
//! subscription sees them exit, and an optional probe measures the supervisor meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use protocol::{Client, EventKind, KillRequest, LatencyRecorder, StartRequest};

use crate::error::{self, BenchError};
use crate::report::{DaemonFigures, Mode, Phase, RunReport};
use crate::stats::Distribution;
use crate::{probe, progress};

pub struct Plan<'a> {
    pub address: &'a Path,
    pub namespace: &'a str,
    pub ids: &'a [String],
    pub bundles: &'a [PathBuf],
    pub concurrency: usize,
    pub probe: bool,
}

/// Runs the plan; if it fails midway, kills whatever of it still runs before returning the error.
pub fn run(plan: &Plan) -> Result<RunReport, BenchError> {
    let exits = subscribe(plan.address, plan.namespace)?;
    measure(plan, &exits).inspect_err(|_| clean_up(plan))
}

/// Kills every container of the plan that ctrd still lists, best effort.
fn clean_up(plan: &Plan) {
    let Ok(mut client) = Client::connect(plan.address) else {
        return;
    };
    let listed = client.list(plan.namespace).unwrap_or_default();
    for container in listed.iter().filter(|c| plan.ids.contains(&c.id)) {
        let _ = client.kill(KillRequest {
            namespace: plan.namespace.to_string(),
            id: container.id.clone(),
            signal: libc::SIGKILL,
            all: false,
        });
    }
}

fn measure(
    plan: &Plan,
    exits: &mpsc::Receiver<(String, Instant)>,
) -> Result<RunReport, BenchError> {
    let count = plan.ids.len();
    let stop_probe = AtomicBool::new(false);
    let (start, probe) = thread::scope(|s| {
        let probe = plan
            .probe
            .then(|| s.spawn(|| probe::run(plan.address, plan.namespace, &stop_probe)));
        let start = start_all(plan);
        stop_probe.store(true, Ordering::Relaxed);
        let probe = probe.map(|p| p.join().expect("the probe thread does not panic"));
        (start, probe)
    });
    let (took, latency, failures) = start?;
    let probe = probe.transpose()?.map(|r| Distribution::from(&r));
    let started: Vec<usize> = (0..count).filter(|n| !failures.contains_key(n)).collect();
    let full = at_full(plan, started.len())?;
    let (one_by_one, rest) = started.split_at(SINGLE_EXITS.min(started.len()));
    let single_exit = single_exits(plan, one_by_one, exits)?;
    let (teardown, kill) = kill_all(plan, rest, exits)?;
    error::failed_starts(&failures, plan.ids)?;
    Ok(RunReport {
        mode: Mode::Ctrd,
        count,
        concurrency: plan.concurrency,
        start: Phase::new(count, took, latency),
        teardown,
        probe,
        single_exit,
        daemon: Some(DaemonFigures {
            rss_bytes: full.rss_bytes,
            containers: full.containers,
            list: full.list,
            kill,
        }),
    })
}

/// Containers killed one at a time before the rest are torn down together.
pub const SINGLE_EXITS: usize = 20;

/// Kills each container and waits for its exit event before the next.
fn single_exits(
    plan: &Plan,
    one_by_one: &[usize],
    exits: &mpsc::Receiver<(String, Instant)>,
) -> Result<Distribution, BenchError> {
    let mut client = Client::connect(plan.address)?;
    let mut recorder = LatencyRecorder::default();
    let waited = Duration::from_secs(30);
    for &n in one_by_one {
        let id = &plan.ids[n];
        let sent = Instant::now();
        client.kill(KillRequest {
            namespace: plan.namespace.to_string(),
            id: id.clone(),
            signal: libc::SIGKILL,
            all: false,
        })?;
        loop {
            let (exited, at) = exits
                .recv_timeout(waited)
                .map_err(|_| BenchError::Timeout {
                    what: format!("the exit event of {id}"),
                    waited,
                })?;
            if &exited == id {
                recorder.record(at.saturating_duration_since(sent));
                break;
            }
        }
    }
    Ok(Distribution::from(&recorder))
}

/// Times to list every container, and the daemon's memory, while all of them run.
struct AtFull {
    rss_bytes: Option<i64>,
    containers: usize,
    list: Distribution,
}

/// Lists this many times: enough for a median and a tail, quick next to the starts.
const LISTS: usize = 20;

fn at_full(plan: &Plan, running: usize) -> Result<AtFull, BenchError> {
    let mut client = Client::connect(plan.address)?;
    let mut recorder = LatencyRecorder::default();
    let mut containers = 0;
    for _ in 0..LISTS {
        let sent = Instant::now();
        containers = client.list(plan.namespace)?.len();
        recorder.record(sent.elapsed());
    }
    if containers != running {
        return Err(BenchError::Setup(format!(
            "ctrd lists {containers} containers in {}, {running} were started",
            plan.namespace
        )));
    }
    let metrics = client.metrics()?;
    let rss_bytes = metrics
        .gauges
        .iter()
        .find(|g| g.name == "rss-bytes")
        .map(|g| g.value);
    Ok(AtFull {
        rss_bytes,
        containers,
        list: Distribution::from(&recorder),
    })
}

/// Exit events, each with the moment it arrived, read on a thread of its own.
fn subscribe(
    address: &Path,
    namespace: &str,
) -> Result<mpsc::Receiver<(String, Instant)>, BenchError> {
    let mut stream = Client::connect(address)?.subscribe(namespace)?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        while let Ok(Some(event)) = stream.next_event() {
            if event.kind == EventKind::Exit && tx.send((event.id, Instant::now())).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

type Started = (Duration, Distribution, BTreeMap<usize, String>);

/// One client's latencies and failed starts (by index).
type ClientStarts = (LatencyRecorder, BTreeMap<usize, String>);

/// Starts every container; returns the wall time, the latencies and the failed starts.
fn start_all(plan: &Plan) -> Result<Started, BenchError> {
    let count = plan.ids.len();
    let next = AtomicUsize::new(0);
    let bar = progress::bar(count, "started");
    let began = Instant::now();
    let per_client: Vec<Result<ClientStarts, BenchError>> = thread::scope(|s| {
        let clients: Vec<_> = (0..plan.concurrency)
            .map(|_| {
                s.spawn(|| {
                    let mut client = Client::connect(plan.address)?;
                    let mut recorder = LatencyRecorder::default();
                    let mut failures = BTreeMap::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= count {
                            return Ok((recorder, failures));
                        }
                        let sent = Instant::now();
                        match client.start(start_request(plan, n)) {
                            Ok(_) => recorder.record(sent.elapsed()),
                            Err(e) => {
                                failures.insert(n, e.to_string());
                            }
                        }
                        bar.inc(1);
                    }
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().expect("a client thread does not panic"))
            .collect()
    });
    let took = began.elapsed();
    bar.finish_and_clear();
    let mut all = LatencyRecorder::default();
    let mut failures = BTreeMap::new();
    for result in per_client {
        let (recorder, failed) = result?;
        all.merge(&recorder);
        failures.extend(failed);
    }
    Ok((took, Distribution::from(&all), failures))
}

fn start_request(plan: &Plan, n: usize) -> StartRequest {
    StartRequest {
        namespace: plan.namespace.to_string(),
        id: plan.ids[n].clone(),
        bundle: plan.bundles[n].to_string_lossy().into_owned(),
        labels: BTreeMap::new(),
        stdout: None,
        stderr: None,
        checkpoint: None,
        stdin: None,
        terminal: None,
        // Nothing of a run is kept once it has stopped.
        remove: true,
    }
}

/// Kills the started containers over `concurrency` connections and waits for every exit event;
/// returns the teardown and the kill requests' round trips.
fn kill_all(
    plan: &Plan,
    started: &[usize],
    exits: &mpsc::Receiver<(String, Instant)>,
) -> Result<(Phase, Distribution), BenchError> {
    let kill_sent: Vec<OnceLock<Instant>> = (0..plan.ids.len()).map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let began = Instant::now();
    let sent: Vec<Result<LatencyRecorder, BenchError>> = thread::scope(|s| {
        let clients: Vec<_> = (0..plan.concurrency)
            .map(|_| {
                s.spawn(|| {
                    let mut client = Client::connect(plan.address)?;
                    let mut round_trips = LatencyRecorder::default();
                    loop {
                        let Some(&n) = started.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            return Ok(round_trips);
                        };
                        let sent = Instant::now();
                        let _ = kill_sent[n].set(sent);
                        client.kill(KillRequest {
                            namespace: plan.namespace.to_string(),
                            id: plan.ids[n].clone(),
                            signal: libc::SIGKILL,
                            all: false,
                        })?;
                        round_trips.record(sent.elapsed());
                    }
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().expect("a client thread does not panic"))
            .collect()
    });
    let mut kills = LatencyRecorder::default();
    for round_trips in sent {
        kills.merge(&round_trips?);
    }

    let index: HashMap<&str, usize> = plan
        .ids
        .iter()
        .enumerate()
        .map(|(n, id)| (id.as_str(), n))
        .collect();
    let bar = progress::bar(started.len(), "exited");
    let waited = Duration::from_secs(30) + Duration::from_millis(50) * started.len() as u32;
    let deadline = Instant::now() + waited;
    let mut recorder = LatencyRecorder::default();
    let mut last = began;
    let mut seen = 0;
    while seen < started.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (id, at) = exits.recv_timeout(left).map_err(|_| BenchError::Timeout {
            what: format!("{} exit events", started.len() - seen),
            waited,
        })?;
        let Some(sent) = index.get(id.as_str()).and_then(|&n| kill_sent[n].get()) else {
            continue;
        };
        recorder.record(at.saturating_duration_since(*sent));
        last = last.max(at);
        seen += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let teardown = Phase::new(
        started.len(),
        last.saturating_duration_since(began),
        Distribution::from(&recorder),
    );
    Ok((teardown, Distribution::from(&kills)))
}
