//! The actor driven in-process, with the interleavings real runc produces only by chance forced
//! here: no root, no runc, no keeper process. The actor runs in an `actix::System` with a real
//! journal in a temp dir; its two edges are fakes. [`HeldJobs`] keeps every job the actor
//! submits until the test completes it with the result it chooses; [`RecordingKeeper`] records
//! the acknowledgements. Each test asserts the events in the order the journal delivers them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use protocol::{
    CheckpointOptions, CheckpointRequest, DeleteRequest, ErrorKind, Event, ExecRequest, Filter,
    Response, StartExistingRequest, StartRequest, Status, WaitRequest,
};
use runtime::{CheckpointMeta, ExitStatus, PidFd, RuntimeError, StateDir};
use tokio::sync::{mpsc, oneshot};
use worker::pool::PoolClosed;
use worker::{Execed, StartedContainer};

use super::jobs::{
    CheckpointDone, ControlDone, Deleted, ExecDone, Job, Load, Removed, StartDone, Workers,
};
use super::keeper::Keeper;
use super::{
    AddProcess, Checkpoint, Delete, Exit, Flushed, HandOver, KeeperSynced, List, Pause, Resume,
    Start, StartExisting, Subscribe, Supervisor, Wait,
};
use crate::journal::Journal;
use crate::keeper_link::{Outcome, ProcessExit};
use crate::metrics::telemetry::StartTiming;
use crate::recovery::{Adopted, Recovery};

/// How long a test waits for an answer that must come; reached only when the actor is wrong.
const DEADLINE: Duration = Duration::from_secs(5);

const ID: &str = "c1";
const INIT_PID: u32 = 100;
const EXEC_PID: u32 = 200;

/// Workers that run nothing: each job waits here for the test to complete it.
#[derive(Clone, Default)]
struct HeldJobs(Arc<Mutex<VecDeque<Job>>>);

impl Workers for HeldJobs {
    fn submit(&self, job: Job) -> Result<(), PoolClosed> {
        self.0.lock().unwrap().push_back(job);
        Ok(())
    }

    fn load(&self) -> Load {
        let queued = self.0.lock().unwrap().len();
        Load {
            queued,
            busy: 0,
            workers: 1,
            idle: queued == 0,
        }
    }
}

/// A keeper that remembers what it was told.
#[derive(Default)]
struct RecordingKeeper {
    acks: Mutex<Vec<u64>>,
}

impl Keeper for RecordingKeeper {
    fn ack(&self, seq: u64) {
        self.acks.lock().unwrap().push(seq);
    }

    fn release(&self, _token: String) {}

    fn pid(&self) -> u32 {
        1
    }
}

/// One actor, its fakes, and a subscriber to every event it emits.
struct Harness {
    actor: Addr<Supervisor>,
    jobs: HeldJobs,
    keeper: Arc<RecordingKeeper>,
    events: mpsc::Receiver<Event>,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        Harness::recovering(None).await
    }

    /// An actor that starts by taking over what `recovery` found, if anything.
    async fn recovering(recovery: Option<Recovery>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let (journal, opened) = Journal::open(&dir.path().join("events"), 1 << 20, 1024).unwrap();
        let jobs = HeldJobs::default();
        let keeper = Arc::new(RecordingKeeper::default());
        let actor = Supervisor::with_edges(
            StateDir::new(dir.path().join("state")),
            Box::new(jobs.clone()),
            journal,
            opened.last_seq,
            keeper.clone(),
        )
        .oom_notify(false);
        let actor = match recovery {
            Some(recovery) => actor.recover(recovery),
            None => actor,
        }
        .start();
        let (registered, registration) = oneshot::channel();
        let subscribe = Subscribe {
            namespace: "default".into(),
            filter: Arc::new(Filter::everything()),
            registered,
        };
        assert_eq!(actor.send(subscribe).await.unwrap(), Response::Subscribed);
        let events = registration.await.unwrap().subscription.events;
        Harness {
            actor,
            jobs,
            keeper,
            events,
            dir,
        }
    }

    /// Sends `Start` for container [`ID`]; the answer comes once its job is completed.
    async fn start(&self) -> oneshot::Receiver<Response> {
        self.start_removing(false).await
    }

    /// Sends `Start` for container [`ID`], with `--rm` if `remove`.
    async fn start_removing(&self, remove: bool) -> oneshot::Receiver<Response> {
        let (reply, answer) = oneshot::channel();
        let req = StartRequest {
            namespace: "default".into(),
            id: ID.into(),
            bundle: "/bundles/c1".into(),
            labels: Default::default(),
            stdout: None,
            stderr: None,
            checkpoint: None,
            stdin: None,
            terminal: None,
            remove,
        };
        self.actor.send(Start { req, reply }).await.unwrap();
        answer
    }

    /// Sends `StartExisting` for container [`ID`].
    async fn start_again(&self) -> oneshot::Receiver<Response> {
        let (reply, answer) = oneshot::channel();
        let req = StartExistingRequest {
            namespace: "default".into(),
            id: ID.into(),
            checkpoint: None,
        };
        self.actor.send(StartExisting { req, reply }).await.unwrap();
        answer
    }

    /// Sends `Delete` for container [`ID`].
    async fn delete(&self, force: bool) -> oneshot::Receiver<Response> {
        let (reply, answer) = oneshot::channel();
        let req = DeleteRequest {
            namespace: "default".into(),
            id: ID.into(),
            force,
        };
        self.actor.send(Delete { req, reply }).await.unwrap();
        answer
    }

    /// The status of container [`ID`] as listed, and its exit status; `None` if not listed.
    async fn listed(&self) -> Option<(Status, Option<i32>)> {
        let list = List {
            namespace: "default".into(),
            filter: Filter::everything(),
        };
        let Response::Containers(list) = self.actor.send(list).await.unwrap() else {
            panic!("list answered something else");
        };
        list.first()
            .map(|c| (c.status, c.exit.and_then(|e| e.status)))
    }

    /// Waits until what the actor queued behind the journal's writes has reached it and been
    /// handled: the `Flushed` answer follows those writes, and a round trip follows its mailbox.
    async fn settle(&self) {
        let (reply, flushed) = oneshot::channel();
        self.actor.send(Flushed { reply }).await.unwrap();
        flushed.await.unwrap();
        self.listed().await;
    }

    /// Completes the removal of a deleted container's files, submitted once the events before
    /// the deletion are on disk; returns the record the worker was to remove.
    async fn complete_remove(&self) -> Option<runtime::ContainerRecord> {
        self.settle().await;
        let Job::Remove {
            key, record, done, ..
        } = self.next_job()
        else {
            panic!("the next job is no removal");
        };
        let result = Ok(());
        done.send(Removed { key, result }).await.unwrap();
        record
    }

    /// Starts container [`ID`] with its init as [`INIT_PID`], all the way to running.
    async fn running(&self) {
        let answer = self.start().await;
        self.complete_start(Ok(started(INIT_PID))).await;
        assert_eq!(answer.await.unwrap(), started_reply(INIT_PID));
    }

    /// Asks for exec `name` in container [`ID`].
    async fn add_process(&self, name: &str) -> oneshot::Receiver<Response> {
        let (reply, answer) = oneshot::channel();
        let req = ExecRequest {
            namespace: "default".into(),
            id: ID.into(),
            process: name.into(),
            args: vec!["/bin/sleep".into(), "1".into()],
            env: Vec::new(),
            cwd: None,
            uid: None,
            gid: None,
            stdio: None,
        };
        self.actor.send(AddProcess { req, reply }).await.unwrap();
        answer
    }

    async fn wait(&self, process: &str) -> oneshot::Receiver<Response> {
        let (reply, answer) = oneshot::channel();
        let req = WaitRequest {
            namespace: "default".into(),
            id: ID.into(),
            process: process.into(),
        };
        self.actor.send(Wait { req, reply }).await.unwrap();
        answer
    }

    /// The keeper reports `pid` exited with `code`; the keeper numbered the exit `seq`.
    async fn exit(&self, pid: u32, code: i32, seq: u64) {
        let exit = ProcessExit {
            pid,
            start_time: None,
            outcome: Outcome::Status(ExitStatus::Exited(code)),
            reaped_at: Instant::now(),
            ack: Some(seq),
        };
        self.actor.send(Exit(exit)).await.unwrap();
    }

    fn next_job(&self) -> Job {
        self.jobs
            .0
            .lock()
            .unwrap()
            .pop_front()
            .expect("the actor submitted no job")
    }

    fn no_job(&self) {
        let held = self.jobs.0.lock().unwrap().len();
        assert_eq!(held, 0, "the actor submitted {held} job(s)");
    }

    async fn complete_start(&self, result: Result<StartedContainer, RuntimeError>) {
        let Job::Start { job, done, .. } = self.next_job() else {
            panic!("the next job is no start");
        };
        let now = Instant::now();
        let timing = StartTiming {
            picked_up: now,
            finished: now,
        };
        let key = (job.namespace, job.id);
        let msg = StartDone {
            key,
            result,
            timing,
        };
        done.send(msg).await.unwrap();
    }

    async fn complete_exec(&self, result: Result<Execed, RuntimeError>) {
        let Job::Exec { job, done } = self.next_job() else {
            panic!("the next job is no exec");
        };
        let key = (job.namespace, job.id);
        let name = job.name;
        done.send(ExecDone { key, name, result }).await.unwrap();
    }

    /// Completes the cleanup after the init's exit: runc deleted the container.
    async fn complete_delete(&self) {
        let Job::Delete { key, done, .. } = self.next_job() else {
            panic!("the next job is no delete");
        };
        let msg = Deleted {
            key,
            result: Ok(()),
            oom_kills: 0,
        };
        done.send(msg).await.unwrap();
    }

    async fn complete_checkpoint(&self) {
        let Job::Checkpoint { job, done } = self.next_job() else {
            panic!("the next job is no checkpoint");
        };
        let meta = CheckpointMeta {
            name: job.name.to_string(),
            options: job.options,
            exit: job.exit,
            created: 0,
            pre_dump: job.pre_dump,
            parent: None,
        };
        let key = (job.namespace, job.id);
        let msg = CheckpointDone {
            key,
            result: Ok(meta),
        };
        done.send(msg).await.unwrap();
    }

    /// Asks to pause container [`ID`].
    async fn pause(&self) -> oneshot::Receiver<Response> {
        let (reply, answer) = oneshot::channel();
        let (namespace, id) = ("default".into(), ID.into());
        let msg = Pause {
            namespace,
            id,
            reply,
        };
        self.actor.send(msg).await.unwrap();
        answer
    }

    /// Asks to resume container [`ID`].
    async fn resume(&self) -> oneshot::Receiver<Response> {
        let (reply, answer) = oneshot::channel();
        let (namespace, id) = ("default".into(), ID.into());
        let msg = Resume {
            namespace,
            id,
            reply,
        };
        self.actor.send(msg).await.unwrap();
        answer
    }

    /// Completes a pause, resume or update with what runc did.
    async fn complete_control(&self, result: Result<(), RuntimeError>) {
        let Job::Control {
            key,
            op,
            reply,
            done,
            ..
        } = self.next_job()
        else {
            panic!("the next job is no pause, resume or update");
        };
        let msg = ControlDone {
            key,
            op,
            result,
            reply,
        };
        done.send(msg).await.unwrap();
    }

    /// Every event emitted so far, as "kind process", in the journal's order; and the exits the
    /// keeper was told are dealt with.
    async fn journaled(&mut self) -> (Vec<String>, Vec<u64>) {
        let (reply, flushed) = oneshot::channel();
        self.actor.send(Flushed { reply }).await.unwrap();
        flushed.await.unwrap();
        let mut seen = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            seen.push(format!("{} {}", event.kind, event.process));
        }
        let acks = self.keeper.acks.lock().unwrap().clone();
        (seen, acks)
    }
}

fn started(pid: u32) -> StartedContainer {
    StartedContainer {
        pid,
        start_time: None,
        pidfd: None,
        args: vec!["/bin/sleep".into()],
        console: None,
        cgroup: None,
        relay: None,
    }
}

fn execed(pid: u32) -> Execed {
    Execed {
        pid,
        start_time: None,
        pidfd: None,
        console: None,
    }
}

fn started_reply(pid: u32) -> Response {
    Response::Started(protocol::Started { pid })
}

/// The answer to a request that must be answered by now.
async fn answered(answer: oneshot::Receiver<Response>) -> Response {
    tokio::time::timeout(DEADLINE, answer)
        .await
        .expect("no answer: the actor left the caller waiting")
        .expect("the actor dropped the caller")
}

/// A process to hold a pidfd on, killed and reaped when the test ends, however it ends.
struct StandIn(std::process::Child);

impl StandIn {
    fn spawn() -> StandIn {
        StandIn(
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_system(test: impl std::future::Future<Output = ()>) {
    System::new().block_on(test);
}

#[test]
fn an_init_exit_before_its_start_done_follows_start_container() {
    in_system(async {
        let mut h = Harness::new().await;
        let answer = h.start().await;
        h.exit(INIT_PID, 3, 7).await;
        h.complete_start(Ok(started(INIT_PID))).await;
        assert_eq!(answered(answer).await, started_reply(INIT_PID));
        h.complete_delete().await;
        let (events, acks) = h.journaled().await;
        assert_eq!(events, ["start-container init", "exit init"]);
        assert_eq!(acks, [7]);
    });
}

#[test]
fn orphans_exiting_during_a_start_are_held_once_per_pid_and_all_acknowledged() {
    in_system(async {
        let mut h = Harness::new().await;
        let answer = h.start().await;
        // A container's orphans exit while the start is in flight, each pid used three times,
        // with the init's own exit among them.
        let orphans = 1000..3000;
        let mut seq = 0;
        for _ in 0..3 {
            for pid in orphans.clone() {
                seq += 1;
                h.exit(pid, 0, seq).await;
            }
        }
        seq += 1;
        h.exit(INIT_PID, 3, seq).await;
        let held = h.actor.send(crate::dump::Dump).await.unwrap();
        assert_eq!(held.unclaimed_exits, orphans.len() + 1);

        h.complete_start(Ok(started(INIT_PID))).await;
        assert_eq!(answered(answer).await, started_reply(INIT_PID));
        h.complete_delete().await;
        let (events, mut acks) = h.journaled().await;
        assert_eq!(events, ["start-container init", "exit init"]);
        // Every orphan's exit, replaced or pruned, and the init's, each acknowledged once.
        acks.sort_unstable();
        assert_eq!(acks, (1..=seq).collect::<Vec<_>>());
        let held = h.actor.send(crate::dump::Dump).await.unwrap();
        assert_eq!(held.unclaimed_exits, 0);
    });
}

#[test]
fn an_exec_exit_before_its_exec_done_is_reported_once_after_the_reply() {
    in_system(async {
        let mut h = Harness::new().await;
        h.running().await;
        let answer = h.add_process("p1").await;
        h.exit(EXEC_PID, 0, 8).await;
        h.complete_exec(Ok(execed(EXEC_PID))).await;
        assert_eq!(answered(answer).await, started_reply(EXEC_PID));
        let (events, acks) = h.journaled().await;
        assert_eq!(events, ["start-container init", "exit p1"]);
        assert_eq!(acks, [8]);
    });
}

#[test]
fn an_exec_exit_racing_the_init_exit_is_reported_first() {
    in_system(async {
        let mut h = Harness::new().await;
        h.running().await;
        let answer = h.add_process("p1").await;
        h.complete_exec(Ok(execed(EXEC_PID))).await;
        assert_eq!(answered(answer).await, started_reply(EXEC_PID));
        // The init's exit comes first, and runc deletes the container before the exec's exit
        // arrives: the init's `exit` still waits for the exec's.
        h.exit(INIT_PID, 0, 9).await;
        h.complete_delete().await;
        h.exit(EXEC_PID, 137, 10).await;
        let (events, acks) = h.journaled().await;
        assert_eq!(events, ["start-container init", "exit p1", "exit init"]);
        assert_eq!(acks, [10, 9]);
    });
}

#[test]
fn an_init_exit_during_a_checkpoint_waits_for_the_checkpoint_event() {
    in_system(async {
        let mut h = Harness::new().await;
        // A checkpoint needs a handle on the init: a child of the test's own stands in for it,
        // never signalled by the actor on this path.
        let stand_in = StandIn::spawn();
        let pidfd = PidFd::open(stand_in.0.id()).unwrap();
        let answer = h.start().await;
        let init = StartedContainer {
            pidfd: Some(pidfd),
            ..started(INIT_PID)
        };
        h.complete_start(Ok(init)).await;
        assert_eq!(answered(answer).await, started_reply(INIT_PID));
        let (reply, answer) = oneshot::channel();
        let req = CheckpointRequest {
            namespace: "default".into(),
            id: ID.into(),
            name: "cp1".into(),
            options: CheckpointOptions::default(),
            exit: true,
            pre_dump: false,
            parent: None,
        };
        h.actor.send(Checkpoint { req, reply }).await.unwrap();
        h.exit(INIT_PID, 0, 11).await;
        // The exit waits for the dump's result: no cleanup yet.
        assert!(matches!(
            h.jobs.0.lock().unwrap().front(),
            Some(Job::Checkpoint { .. })
        ));
        h.complete_checkpoint().await;
        assert_eq!(answered(answer).await, Response::Done);
        h.complete_delete().await;
        let (events, acks) = h.journaled().await;
        assert_eq!(
            events,
            ["start-container init", "checkpoint init", "exit init"]
        );
        assert_eq!(acks, [11]);
    });
}

#[test]
fn a_start_during_a_hand_over_is_refused_and_queues_nothing() {
    in_system(async {
        let mut h = Harness::new().await;
        h.actor.send(HandOver).await.unwrap();
        let answer = h.start().await;
        match answered(answer).await {
            Response::Error(e) => {
                assert_eq!(e.kind, ErrorKind::Unavailable);
                assert!(e.message.contains("restarting"), "{}", e.message);
            }
            other => panic!("a start during a hand-over answered {other:?}"),
        }
        h.no_job();
        let (events, _) = h.journaled().await;
        assert!(events.is_empty(), "{events:?}");
    });
}

#[test]
fn a_waiter_on_an_exec_that_fails_to_start_is_told_why() {
    in_system(async {
        let mut h = Harness::new().await;
        h.running().await;
        let answer = h.add_process("p1").await;
        let waiter = h.wait("p1").await;
        let not_found = RuntimeError::CommandNotFound {
            id: ID.into(),
            message: "exec: \"/bin/sleep\": no such file".into(),
        };
        h.complete_exec(Err(not_found)).await;
        match answered(answer).await {
            Response::Error(e) => assert_eq!(e.kind, ErrorKind::CommandNotFound),
            other => panic!("a failed exec answered {other:?}"),
        }
        match answered(waiter).await {
            Response::Error(e) => {
                assert_eq!(e.kind, ErrorKind::FailedPrecondition);
                assert!(
                    e.message.contains("cannot exec process \"p1\""),
                    "{}",
                    e.message
                );
            }
            other => panic!("the waiter on a failed exec got {other:?}"),
        }
        let (events, _) = h.journaled().await;
        assert_eq!(events, ["start-container init"]);
    });
}

#[test]
fn a_waiter_on_a_start_that_fails_is_told_why() {
    in_system(async {
        let mut h = Harness::new().await;
        let answer = h.start().await;
        let waiter = h.wait("init").await;
        let failed = RuntimeError::Failed {
            op: "run",
            id: ID.into(),
            message: "no such bundle".into(),
        };
        h.complete_start(Err(failed)).await;
        match answered(answer).await {
            Response::Error(e) => assert_eq!(e.kind, ErrorKind::Runtime),
            other => panic!("a failed start answered {other:?}"),
        }
        match answered(waiter).await {
            Response::Error(e) => {
                assert!(
                    e.message.contains("cannot start container"),
                    "{}",
                    e.message
                )
            }
            other => panic!("the waiter on a failed start got {other:?}"),
        }
        let (events, _) = h.journaled().await;
        assert!(events.is_empty(), "{events:?}");
    });
}

#[test]
fn an_exec_is_answered_once_the_record_names_it() {
    in_system(async {
        let h = Harness::new().await;
        h.running().await;
        let answer = h.add_process("p1").await;
        h.complete_exec(Ok(execed(EXEC_PID))).await;
        assert_eq!(answered(answer).await, started_reply(EXEC_PID));
        // A daemon killed now leaves its successor a record that names the exec.
        let dir = h.dir.path().join("state/default");
        let records: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .map(|path| std::fs::read_to_string(path).unwrap())
            .collect();
        assert_eq!(records.len(), 1, "{records:?}");
        assert!(records[0].contains("\"p1\""), "{}", records[0]);
    });
}

/// A pause or resume that reaches runc after a kill thawed the container, or after it exited
/// and runc deleted it, is answered with the kind a client can act on (the container is in no
/// state for it, or gone), never as a failure of the runtime.
#[test]
fn a_pause_or_resume_racing_a_kill_or_an_exit_is_a_precondition_or_not_found() {
    in_system(async {
        let mut h = Harness::new().await;
        h.running().await;
        let refused = |op, message: &str| RuntimeError::WrongState {
            op,
            id: ID.into(),
            message: message.into(),
        };
        let gone = RuntimeError::NoContainer {
            op: "resume",
            id: ID.into(),
            message: "container does not exist".into(),
        };
        let error = |response| match response {
            Response::Error(e) => (e.kind, e.message),
            other => panic!("a refused runc call answered {other:?}"),
        };

        // Its init exited while the pause was on its way to runc.
        let paused = h.pause().await;
        h.complete_control(Err(refused("pause", "container not running")))
            .await;
        assert_eq!(
            error(answered(paused).await),
            (
                ErrorKind::FailedPrecondition,
                format!("cannot pause container \"{ID}\": runc pause {ID}: container not running")
            )
        );

        let paused = h.pause().await;
        h.complete_control(Ok(())).await;
        assert_eq!(answered(paused).await, Response::Done);
        // A kill thawed it while the resume was on its way to runc.
        let resumed = h.resume().await;
        h.complete_control(Err(refused("resume", "container not paused")))
            .await;
        let (kind, message) = error(answered(resumed).await);
        assert_eq!(kind, ErrorKind::FailedPrecondition, "{message}");
        // It exited and runc deleted it while the next one was on its way.
        let resumed = h.resume().await;
        h.complete_control(Err(gone)).await;
        let (kind, message) = error(answered(resumed).await);
        assert_eq!(kind, ErrorKind::NotFound, "{message}");

        let (events, _) = h.journaled().await;
        assert_eq!(events, ["start-container init", "pause init"]);
    });
}

/// A container recovery took over whose init had already ended: no process, no pipes.
fn adopted_gone(id: &str, pid: u32) -> Adopted {
    let record = runtime::ContainerRecord {
        namespace: "default".into(),
        id: id.into(),
        bundle: format!("/bundles/{id}"),
        labels: Default::default(),
        stdout: "/dev/null".into(),
        stderr: "/dev/null".into(),
        created: 1,
        init: runtime::ProcessRecord {
            pid,
            start_time: Some(1000 + u64::from(pid)),
            args: vec!["/bin/sleep".into()],
        },
        relayed: false,
        execs: Default::default(),
        exit: None,
        remove: false,
    };
    Adopted {
        record,
        init: None,
        execs: Default::default(),
        cgroup: None,
        paused: false,
        relay: None,
    }
}

#[test]
fn a_process_found_gone_takes_the_exit_that_comes_before_the_keeper_syncs() {
    in_system(async {
        let unaccounted = |pid: u32| ProcessExit {
            pid,
            start_time: Some(1000 + u64::from(pid)),
            outcome: Outcome::Unknown("it ended while no keeper ran"),
            reaped_at: Instant::now(),
            ack: None,
        };
        let recovery = Recovery {
            containers: vec![adopted_gone("reaped", 100), adopted_gone("lost", 101)],
            stopped: Vec::new(),
            exits: Vec::new(),
            unaccounted: vec![unaccounted(100), unaccounted(101)],
            orphans: Vec::new(),
        };
        let mut h = Harness::recovering(Some(recovery)).await;
        // The keeper reaped 100 after its replay: its exit comes live, before the answer.
        let live = ProcessExit {
            pid: 100,
            start_time: Some(1100),
            outcome: Outcome::Status(ExitStatus::Exited(41)),
            reaped_at: Instant::now(),
            ack: Some(9),
        };
        h.actor.send(Exit(live)).await.unwrap();
        h.actor.send(KeeperSynced).await.unwrap();
        h.complete_delete().await;
        h.complete_delete().await;
        h.no_job();
        let (reply, flushed) = oneshot::channel();
        h.actor.send(Flushed { reply }).await.unwrap();
        flushed.await.unwrap();
        let mut exits = Vec::new();
        while let Ok(event) = h.events.try_recv() {
            exits.push((event.kind.to_string(), event.id, event.status));
        }
        exits.sort();
        let exit = |id: &str, status| ("exit".to_string(), id.to_string(), status);
        assert_eq!(exits, [exit("lost", None), exit("reaped", Some(41))]);
        assert_eq!(*h.keeper.acks.lock().unwrap(), [9]);
    });
}

#[test]
fn a_stopped_container_is_kept_until_deleted_and_a_running_one_is_not_deleted_without_force() {
    in_system(async {
        let mut h = Harness::new().await;
        h.running().await;
        match answered(h.delete(false).await).await {
            Response::Error(e) => {
                assert_eq!(e.kind, ErrorKind::FailedPrecondition);
                assert_eq!(
                    e.message,
                    format!(
                        "container \"{ID}\" is running; stop it first, or delete it with --force"
                    )
                );
            }
            other => panic!("deleting a running container answered {other:?}"),
        }
        h.no_job();
        assert_eq!(h.listed().await, Some((Status::Running, None)));

        h.exit(INIT_PID, 3, 1).await;
        h.complete_delete().await;
        assert_eq!(h.listed().await, Some((Status::Stopped, Some(3))));
        // The record keeps the exit, for a daemon restarted from here.
        let (events, _) = h.journaled().await;
        assert_eq!(events, ["start-container init", "exit init"]);
        let record = std::fs::read_dir(h.dir.path().join("state/default"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|ext| ext == "json"))
            .expect("no record");
        let record: runtime::ContainerRecord =
            serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        assert_eq!(record.exit.map(|e| e.status), Some(Some(3)));

        let deleted = h.delete(false).await;
        // The worker that removes its files removes that record too.
        let removed = h.complete_remove().await.expect("no record to remove");
        assert_eq!(removed.created, record.created);
        assert_eq!(answered(deleted).await, Response::Done);
        assert_eq!(h.listed().await, None);
        let (_, acks) = h.journaled().await;
        assert_eq!(acks, [1]);
    });
}

#[test]
fn a_start_of_an_id_being_deleted_runs_once_the_deletion_is_done() {
    in_system(async {
        let mut h = Harness::new().await;
        let answer = h.start_removing(true).await;
        h.complete_start(Ok(started(INIT_PID))).await;
        assert_eq!(answered(answer).await, started_reply(INIT_PID));
        h.exit(INIT_PID, 0, 1).await;
        h.complete_delete().await;
        // --rm: gone from the listing at its exit, its files being removed.
        assert_eq!(h.listed().await, None);
        let again = h.start().await;
        // The start waits behind the removal: nothing is submitted for it yet.
        h.settle().await;
        assert!(matches!(
            h.jobs.0.lock().unwrap().back(),
            Some(Job::Remove { .. })
        ));
        h.complete_remove().await;
        h.complete_start(Ok(started(INIT_PID + 1))).await;
        assert_eq!(answered(again).await, started_reply(INIT_PID + 1));
        let (events, _) = h.journaled().await;
        assert_eq!(
            events,
            ["start-container init", "exit init", "start-container init"]
        );
    });
}

#[test]
fn a_stopped_container_starts_again_and_stays_stopped_if_that_fails() {
    in_system(async {
        let mut h = Harness::new().await;
        let answer = h.start().await;
        // As a detached start's: its output went through pipes (here, ones at their end).
        let null = || std::fs::File::open("/dev/null").unwrap();
        let pipes = worker::RelayPipes {
            stdout: null().into(),
            stderr: null().into(),
        };
        let relay = worker::Relay::copy(pipes, null(), null()).unwrap();
        let detached = StartedContainer {
            relay: Some(relay),
            ..started(INIT_PID)
        };
        h.complete_start(Ok(detached)).await;
        assert_eq!(answered(answer).await, started_reply(INIT_PID));
        h.exit(INIT_PID, 3, 1).await;
        h.complete_delete().await;

        // A start with another bundle does not replace it.
        let (reply, answer) = oneshot::channel();
        let req = StartRequest {
            namespace: "default".into(),
            id: ID.into(),
            bundle: "/bundles/other".into(),
            labels: Default::default(),
            stdout: None,
            stderr: None,
            checkpoint: None,
            stdin: None,
            terminal: None,
            remove: false,
        };
        h.actor.send(Start { req, reply }).await.unwrap();
        match answered(answer).await {
            Response::Error(e) => {
                assert_eq!(e.kind, ErrorKind::AlreadyExists);
                assert!(e.message.contains("start it again"), "{}", e.message);
            }
            other => panic!("a start of a stopped id answered {other:?}"),
        }
        let again = h.start_again().await;
        assert_eq!(h.listed().await, Some((Status::Starting, None)));
        let failed = RuntimeError::Failed {
            op: "run",
            id: ID.into(),
            message: "the bundle is gone".into(),
        };
        h.complete_start(Err(failed)).await;
        match answered(again).await {
            Response::Error(e) => assert_eq!(e.kind, ErrorKind::Runtime),
            other => panic!("a failed start answered {other:?}"),
        }
        assert_eq!(h.listed().await, Some((Status::Stopped, Some(3))));

        let again = h.start_again().await;
        h.complete_start(Ok(started(INIT_PID + 1))).await;
        assert_eq!(answered(again).await, started_reply(INIT_PID + 1));
        assert_eq!(h.listed().await, Some((Status::Running, None)));
        let (events, _) = h.journaled().await;
        assert_eq!(
            events,
            ["start-container init", "exit init", "start-container init"]
        );
    });
}
