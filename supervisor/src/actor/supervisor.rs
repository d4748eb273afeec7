//! The actor's state, its start, and the two things every handler does with it: number an event
//! and hand it to the journal ([`Supervisor::emit`], [`Supervisor::emit_store`]), and have work follow that event onto the
//! disk ([`Supervisor::persist`], [`Supervisor::acknowledge`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use protocol::{ErrorResponse, Event, EventKind};
use runtime::{ProcessName, StateDir};
use tokio::sync::oneshot;
use worker::Pool;

use super::delete::Removal;
use super::errors::{key, not_found};
use super::jobs::{PoolWorkers, Workers};
use super::keeper::Keeper;
use crate::container::{Container, Key};
use crate::journal::Journal;
use crate::keeper_link::{KeeperLink, ProcessExit};
use crate::metrics::telemetry::Telemetry;
use crate::oom::OomNotifier;
use crate::recovery::Recovery;

/// Which process of a container a pid is.
#[derive(Debug, Clone)]
pub enum Member {
    Init,
    Exec(ProcessName),
}

pub struct Supervisor {
    pub(super) state_dir: StateDir,
    /// Runs the slow calls (runc, CRIU, the disk); see [`super::jobs`].
    pub(super) workers: Box<dyn Workers>,
    pub(super) containers: HashMap<Key, Container>,
    /// Containers being deleted: their files are being removed, and starts of their ids wait
    /// here until they are (see [`super::delete`]).
    pub(super) removing: HashMap<Key, Removal>,
    /// Pids of running processes: inits and execs.
    pub(super) by_pid: HashMap<u32, (Key, Member)>,
    /// Exits of pids no container claimed yet, by pid: one may be the init of a start, or the
    /// process of an exec, still in flight. Bounded by the number of pids (see
    /// [`Supervisor::hold_unclaimed`]).
    pub(super) unclaimed: HashMap<u32, ProcessExit>,
    pub(super) journal: Journal,
    /// The sequence number of the next event.
    next_seq: u64,
    /// The signal sent at shutdown; containers that finish starting afterwards get it too.
    pub(super) shutdown: Option<i32>,
    /// Tells queued start jobs not to run once shutdown began.
    pub(super) stopping: Arc<AtomicBool>,
    pub(super) empty_waiters: Vec<oneshot::Sender<()>>,
    pub(super) started_at: Instant,
    /// Whether to report OOM kills (`--no-oom-notify` turns it off).
    pub(super) oom_notify: bool,
    /// Started with the actor when `oom_notify` is on.
    pub(super) oom: Option<OomNotifier>,
    pub(super) telemetry: Telemetry,
    /// Subscriber drops the telemetry has counted; the journal counts them as they happen.
    drops_seen: u64,
    /// Reaps and records exits, holds output pipes; told when both are dealt with.
    pub(super) keeper: Arc<dyn Keeper>,
    /// Containers taken over from an earlier daemon at start-up.
    pub(super) recovered: u64,
    /// The unknown exits of recovered processes found gone with no exit in the keeper's replay,
    /// until the keeper's [`super::adopt::KeeperSynced`] says whether their true exits came.
    pub(super) unaccounted: Vec<ProcessExit>,
    /// A new daemon is taking over: requests that would start work are refused.
    pub(super) handing_over: bool,
    /// What an earlier daemon left, taken over when the actor starts.
    recovery: Option<Recovery>,
}

impl Supervisor {
    /// The daemon's actor: its jobs run on `pool`, its exits come from (and are acknowledged
    /// to) `keeper`. `last_seq` is the last sequence number the journal holds; numbering
    /// continues after it.
    pub fn new(
        state_dir: StateDir,
        pool: Arc<Pool>,
        journal: Journal,
        last_seq: u64,
        keeper: Arc<KeeperLink>,
    ) -> Self {
        let workers = PoolWorkers::new(pool, keeper.clone());
        Self::with_edges(state_dir, Box::new(workers), journal, last_seq, keeper)
    }

    /// An actor whose jobs go to `workers` and whose acknowledgements go to `keeper`: the
    /// daemon's own, or a test's.
    pub fn with_edges(
        state_dir: StateDir,
        workers: Box<dyn Workers>,
        journal: Journal,
        last_seq: u64,
        keeper: Arc<dyn Keeper>,
    ) -> Self {
        Supervisor {
            state_dir,
            workers,
            containers: HashMap::new(),
            removing: HashMap::new(),
            by_pid: HashMap::new(),
            unclaimed: HashMap::new(),
            journal,
            next_seq: last_seq + 1,
            shutdown: None,
            stopping: Arc::new(AtomicBool::new(false)),
            empty_waiters: Vec::new(),
            started_at: Instant::now(),
            oom_notify: true,
            oom: None,
            telemetry: Telemetry::new(Instant::now()),
            drops_seen: 0,
            keeper,
            recovered: 0,
            unaccounted: Vec::new(),
            handing_over: false,
            recovery: None,
        }
    }

    /// Takes over what an earlier daemon left, once the actor runs.
    pub fn recover(mut self, recovery: Recovery) -> Self {
        self.recovery = Some(recovery);
        self
    }

    /// Turns OOM reporting on or off; on by default.
    pub fn oom_notify(mut self, enabled: bool) -> Self {
        self.oom_notify = enabled;
        self
    }

    /// Numbers the event and hands it to the journal; it carries the labels of the container
    /// `key` names, so emit before removing the container.
    pub(super) fn emit(
        &mut self,
        kind: EventKind,
        key: &Key,
        process: &str,
        pid: u32,
        status: Option<i32>,
    ) {
        self.publish(kind, key, process, pid, status, false);
    }

    /// [`Supervisor::emit`], for an `exit` that may report an OOM kill; returns the event's
    /// time.
    pub(super) fn publish(
        &mut self,
        kind: EventKind,
        key: &Key,
        process: &str,
        pid: u32,
        status: Option<i32>,
        oom_killed: bool,
    ) -> u64 {
        let labels = self
            .containers
            .get(key)
            .map(|c| c.labels.clone())
            .unwrap_or_default();
        let time = now_ns();
        self.append(Event {
            seq: 0,
            time,
            kind,
            namespace: key.0.to_string(),
            id: key.1.to_string(),
            process: process.to_string(),
            pid,
            status,
            labels,
            oom_killed,
        });
        time
    }

    /// Numbers an image store event and hands it to the journal, in one order with the
    /// containers' events. `subject` is what it is about: an image name, a snapshot key, a blob
    /// digest.
    pub(super) fn emit_store(
        &mut self,
        kind: EventKind,
        namespace: &str,
        subject: &str,
        labels: BTreeMap<String, String>,
    ) {
        self.append(Event {
            seq: 0,
            time: now_ns(),
            kind,
            namespace: namespace.to_string(),
            id: subject.to_string(),
            process: String::new(),
            pid: 0,
            status: None,
            labels,
            oom_killed: false,
        });
    }

    /// Gives `event` the next sequence number and hands it to the journal.
    fn append(&mut self, mut event: Event) {
        event.seq = self.next_seq;
        self.next_seq += 1;
        log::debug!(
            "event {} {} {}/{} {} pid {} status {:?}",
            event.seq,
            event.kind,
            event.namespace,
            event.id,
            event.process,
            event.pid,
            event.status
        );
        self.journal.append(event);
        let now = Instant::now();
        self.telemetry.event(now);
        self.count_drops(now);
    }

    /// Rewrites the container's record (its processes changed), after the events before.
    pub(super) fn persist(&self, key: &Key) {
        let Some(record) = self.containers.get(key).and_then(Container::record) else {
            return;
        };
        let state = self.state_dir.clone();
        self.journal.after_write(move || {
            if let Err(e) = record.write(&state) {
                log::warn!(
                    "cannot update the record of {}/{}: {e}",
                    record.namespace,
                    record.id
                );
            }
        });
    }

    /// Once the events before are on disk, the exit numbered `ack` is dealt with.
    pub(super) fn acknowledge(&self, ack: Option<u64>) {
        if let Some(seq) = ack {
            let keeper = self.keeper.clone();
            self.journal.after_write(move || keeper.ack(seq));
        }
    }

    pub(super) fn find(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<(&Key, &Container), ErrorResponse> {
        let key = key(namespace, id)?;
        self.containers
            .get_key_value(&key)
            .ok_or_else(|| not_found(&key.1))
    }

    /// Brings the telemetry's count of dropped subscribers up to the journal's.
    pub(super) fn count_drops(&mut self, now: Instant) {
        let drops = self.journal.drops();
        if drops > self.drops_seen {
            self.telemetry
                .subscribers_dropped(drops - self.drops_seen, now);
            self.drops_seen = drops;
        }
    }

    /// Answers the [`super::WaitEmpty`] waiters once no container runs (those stopped are
    /// kept) and no deletion is in flight.
    pub(super) fn notify_if_empty(&mut self) {
        let live = self
            .containers
            .values()
            .any(|c| !matches!(c.phase, crate::container::ContainerPhase::Stopped(_)));
        if !live && self.removing.is_empty() {
            for waiter in self.empty_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.oom_notify {
            self.start_oom_notifier(ctx);
        }
        if let Some(recovery) = self.recovery.take() {
            self.adopt(recovery, ctx);
        }
    }
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
