//! What the actor answers from what it holds, without changing it: the containers ([`List`],
//! [`State`]), where their logs are ([`Logs`]), which cgroups to read for [`Stats`], the daemon
//! ([`Info`], [`TakeMetrics`], [`Dump`]), and registrations with the journal that it answers
//! later ([`Subscribe`], [`Wait`]).
//!
//! Anything that reads files (a cgroup's limits and counters) is done by the caller, off the
//! actor: the answers here say where to read.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use protocol::{
    DaemonInfo, ErrorKind, ErrorResponse, Event, Filter, LogFiles, Response, Status, WaitRequest,
};
use runtime::{Cgroup, Namespace, ProcessName};
use tokio::sync::oneshot;

use super::errors::{invalid, key, not_found};
use super::supervisor::Supervisor;
use crate::container::{Container, ContainerPhase, Key, INIT};
use crate::dump::{ContainerLine, Dump, StateDump};
use crate::journal::{Liveness, ProcessKey, Registration};
use crate::metrics::telemetry::{RunningContainer, Snapshot};

// ---- messages -------------------------------------------------------------------------------

/// The containers of one namespace that pass the filter.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct List {
    pub namespace: String,
    pub filter: Filter<protocol::Container>,
}

/// One container, and its cgroup for the caller to read its limits from (off the actor).
#[derive(Message)]
#[rtype(result = "Result<(protocol::Container, Option<Cgroup>), ErrorResponse>")]
pub struct State {
    pub namespace: String,
    pub id: String,
}

/// Subscribe to the namespace's events that pass the filter, from the next one on;
/// `registered` gets the live queue and what to replay from the journal.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct Subscribe {
    pub namespace: String,
    pub filter: Arc<Filter<Event>>,
    pub registered: oneshot::Sender<Registration>,
}

/// Answer `reply` with the process's `exit` event once it has exited (at once if it has).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wait {
    pub req: WaitRequest,
    pub reply: oneshot::Sender<Response>,
}

/// The daemon as `ctr info` shows it.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct Info;

/// The telemetry as it is now, and with `with_containers` the running containers, for a scrape
/// to read their cgroups (off the actor).
#[derive(Message)]
#[rtype(result = "(Snapshot, Vec<RunningContainer>)")]
pub struct TakeMetrics {
    pub with_containers: bool,
}

/// Where a container's logs are, also once it is gone.
#[derive(Message)]
#[rtype(result = "Response")]
pub struct Logs {
    pub namespace: String,
    pub id: String,
}

/// The containers whose stats a request reads: those named, or every running (or paused) one
/// in the namespace. Answered with where to read them, not with the reading.
#[derive(Message)]
#[rtype(result = "Result<Vec<StatsTarget>, ErrorResponse>")]
pub struct Stats {
    pub namespace: String,
    pub ids: Vec<String>,
}

/// Where one container's stats are read from.
#[derive(Debug, Clone)]
pub struct StatsTarget {
    pub key: Key,
    pub pid: u32,
    pub cgroup: Cgroup,
}

// ---- handlers -------------------------------------------------------------------------------

impl Handler<List> for Supervisor {
    type Result = MessageResult<List>;

    fn handle(&mut self, msg: List, _: &mut Context<Self>) -> Self::Result {
        let response = match Namespace::new(&msg.namespace) {
            Ok(ns) => {
                let mut list: Vec<_> = self
                    .containers
                    .values()
                    .filter(|c| c.namespace == ns)
                    .map(Container::to_wire)
                    .filter(|c| msg.filter.matches(c))
                    .collect();
                list.sort_by(|a, b| a.id.cmp(&b.id));
                Response::Containers(list)
            }
            Err(err) => Response::Error(invalid(err.to_string())),
        };
        MessageResult(response)
    }
}

impl Handler<State> for Supervisor {
    type Result = MessageResult<State>;

    fn handle(&mut self, msg: State, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.find(&msg.namespace, &msg.id)
                .map(|(_, c)| (c.to_wire(), c.phase.cgroup().cloned())),
        )
    }
}

impl Handler<Subscribe> for Supervisor {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(match Namespace::new(&msg.namespace) {
            Ok(namespace) => {
                self.journal
                    .subscribe(namespace, msg.filter, msg.registered);
                Response::Subscribed
            }
            Err(err) => Response::Error(invalid(err.to_string())),
        })
    }
}

impl Handler<Wait> for Supervisor {
    type Result = ();

    /// A container the actor still holds has its exit to come, which the journal hands to the
    /// waiter once written; for any other, the journal answers with the last exit it holds.
    fn handle(&mut self, Wait { req, reply }: Wait, _: &mut Context<Self>) {
        let key = match key(&req.namespace, &req.id) {
            Ok(key) => key,
            Err(err) => {
                let _ = reply.send(Response::Error(err));
                return;
            }
        };
        // The init, or an exec the container still holds, is still to exit; for any other
        // process, and any process of a stopped container, the journal answers with its exit,
        // if it holds one.
        let liveness = match self.containers.get(&key) {
            None => Liveness::ContainerGone,
            Some(c) if matches!(c.phase, ContainerPhase::Stopped(_)) => Liveness::ContainerGone,
            Some(c)
                if req.process == INIT
                    || ProcessName::new(&req.process)
                        .is_ok_and(|name| c.execs.contains_key(&name)) =>
            {
                Liveness::Running
            }
            Some(_) => Liveness::NotRunning,
        };
        let process = ProcessKey {
            namespace: req.namespace,
            id: req.id,
            process: req.process,
        };
        self.journal.wait(process, liveness, reply);
    }
}

impl Handler<Info> for Supervisor {
    type Result = MessageResult<Info>;

    fn handle(&mut self, _: Info, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Response::Info(DaemonInfo {
            version: protocol::VERSION.to_string(),
            pid: std::process::id(),
            uptime_s: self.started_at.elapsed().as_secs(),
            containers: self.containers.len() as u64,
            subscribers: self.journal.subscribers(),
            subscriber_drops: self.journal.drops(),
            keeper_pid: self.keeper.pid(),
            recovered: self.recovered,
        }))
    }
}

impl Handler<TakeMetrics> for Supervisor {
    type Result = MessageResult<TakeMetrics>;

    fn handle(&mut self, msg: TakeMetrics, _: &mut Context<Self>) -> Self::Result {
        let gauge = |name: &str, value: usize| protocol::Gauge {
            name: name.to_string(),
            value: i64::try_from(value).unwrap_or(i64::MAX),
        };
        let running: Vec<RunningContainer> = self
            .containers
            .values()
            .filter_map(|c| match &c.phase {
                ContainerPhase::Running { cgroup, .. } => Some(RunningContainer {
                    namespace: c.namespace.to_string(),
                    id: c.id.to_string(),
                    cgroup: cgroup.clone(),
                }),
                _ => None,
            })
            .collect();
        let gauges = vec![
            gauge("containers", self.containers.len()),
            gauge("containers-running", running.len()),
            gauge(
                "subscribers",
                usize::try_from(self.journal.subscribers()).unwrap_or(usize::MAX),
            ),
        ];
        let now = Instant::now();
        self.count_drops(now);
        self.telemetry
            .output_lost(worker::relay::lost_in_total(), now);
        let snapshot = self.telemetry.snapshot(gauges, now);
        let running = if msg.with_containers {
            running
        } else {
            Vec::new()
        };
        MessageResult((snapshot, running))
    }
}

impl Handler<Dump> for Supervisor {
    type Result = MessageResult<Dump>;

    fn handle(&mut self, _: Dump, _: &mut Context<Self>) -> Self::Result {
        let mut containers: Vec<ContainerLine> = self
            .containers
            .values()
            .map(|c| ContainerLine {
                namespace: c.namespace.to_string(),
                id: c.id.to_string(),
                status: c.phase.status(),
                pid: c.phase.pid(),
                since: match c.phase {
                    ContainerPhase::Starting { since, .. } => Some(since.elapsed()),
                    _ => None,
                },
            })
            .collect();
        containers.sort_by(|a, b| (&a.namespace, &a.id).cmp(&(&b.namespace, &b.id)));
        let load = self.workers.load();
        MessageResult(StateDump {
            containers,
            unclaimed_exits: self.unclaimed.len(),
            subscribers: usize::try_from(self.journal.subscribers()).unwrap_or(usize::MAX),
            subscriber_drops: self.journal.drops(),
            queued_jobs: load.queued,
            busy_workers: load.busy,
            workers: load.workers,
            shutdown_signal: self.shutdown,
        })
    }
}

impl Handler<Logs> for Supervisor {
    type Result = MessageResult<Logs>;

    fn handle(&mut self, msg: Logs, _: &mut Context<Self>) -> Self::Result {
        let key = match key(&msg.namespace, &msg.id) {
            Ok(key) => key,
            Err(err) => return MessageResult(Response::Error(err)),
        };
        let files = match self.containers.get(&key) {
            Some(c) => LogFiles {
                stdout: c.stdout.to_string_lossy().into_owned(),
                stderr: c.stderr.to_string_lossy().into_owned(),
                running: !c.phase.has_exited(),
            },
            // Gone: its logs stay in its directory until a new start with its id.
            None => {
                let dir = self.state_dir.container_dir(&key.0, &key.1);
                let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
                LogFiles {
                    stdout: path("stdout.log"),
                    stderr: path("stderr.log"),
                    running: false,
                }
            }
        };
        MessageResult(Response::Logs(files))
    }
}

impl Handler<Stats> for Supervisor {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, msg: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats_targets(&msg.namespace, &msg.ids))
    }
}

impl Supervisor {
    fn stats_targets(
        &self,
        namespace: &str,
        ids: &[String],
    ) -> Result<Vec<StatsTarget>, ErrorResponse> {
        let target = |key: &Key, phase: &ContainerPhase| match phase {
            ContainerPhase::Running {
                pid,
                cgroup: Some(cgroup),
                ..
            } => Some(StatsTarget {
                key: key.clone(),
                pid: *pid,
                cgroup: cgroup.clone(),
            }),
            _ => None,
        };
        if ids.is_empty() {
            let ns = Namespace::new(namespace).map_err(|e| invalid(e.to_string()))?;
            let mut targets: Vec<StatsTarget> = self
                .containers
                .iter()
                .filter(|(key, _)| key.0 == ns)
                .filter_map(|(key, c)| target(key, &c.phase))
                .collect();
            targets.sort_by(|a, b| a.key.1.as_str().cmp(b.key.1.as_str()));
            return Ok(targets);
        }
        ids.iter()
            .map(|id| {
                let key = key(namespace, id)?;
                let container = self.containers.get(&key).ok_or_else(|| not_found(&key.1))?;
                target(&key, &container.phase).ok_or_else(|| {
                    let status = container.phase.status();
                    let why = if matches!(status, Status::Running | Status::Paused) {
                        "its cgroup is unknown".to_string()
                    } else {
                        format!("it is {status}")
                    };
                    ErrorResponse::new(
                        ErrorKind::FailedPrecondition,
                        format!("no stats for container \"{}\": {why}", key.1),
                    )
                })
            })
            .collect()
    }
}
