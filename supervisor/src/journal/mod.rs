//! The event journal: every event the supervisor emits, on disk, in sequence order.
//!
//! The actor numbers each event and hands it to [`Journal::append`], a non-blocking channel
//! send. A dedicated writer thread (see [`writer`]) takes events off that channel in batches,
//! appends them to the current segment file, `fdatasync`s once per batch, and only then passes
//! them to the subscribers and to the callers waiting for an exit. So an event a client has seen
//! is on disk, and the actor never touches the disk. The channel is unbounded: a stalled disk
//! delays delivery, never the actor.
//!
//! Everything else that must be ordered against events goes through the same channel:
//! registering a subscriber (it learns the last sequence number on disk, replays up to it from
//! the files with [`Replay`], and gets every later event live, so the seam has no gap and no
//! duplicate), waiting for an exit, and closing the subscriptions at shutdown.
//!
//! Segments are files `<events-dir>/<first seq, 20 digits>.journal` (format in [`record`]). A
//! segment is closed once it reaches an eighth of the retention size; the oldest are removed
//! while all of them together exceed it. Each daemon start begins a new segment, so a record
//! torn by a crash is never followed by new ones in the same file.

mod record;
mod replay;
mod segments;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use protocol::{Event, Filter, Response};
use runtime::Namespace;
use tokio::sync::oneshot;

use crate::subscribers::Subscription;

pub use replay::Replay;

/// What a new subscriber gets: the part of the journal to replay, and its live queue, which
/// receives every later event.
pub struct Registration {
    pub replay: Replay,
    pub subscription: Subscription,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the event journal directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the event journal in {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open journal segment {path}: {source}")]
    Segment {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the journal writer: {0}")]
    Thread(std::io::Error),
}

/// What the actor knows of the process a `wait` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It runs: its exit is yet to come.
    Running,
    /// Its container runs but this process does not: it has exited, or never was.
    NotRunning,
    /// The actor holds no such container.
    ContainerGone,
}

/// A process of a container, as `ctr containers wait` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcessKey {
    pub namespace: String,
    pub id: String,
    pub process: String,
}

impl ProcessKey {
    fn of(event: &Event) -> Self {
        ProcessKey {
            namespace: event.namespace.clone(),
            id: event.id.clone(),
            process: event.process.clone(),
        }
    }
}

/// What the writer thread is told, in the order the actor decided it.
enum Command {
    Append(Event),
    Subscribe {
        namespace: Namespace,
        filter: Arc<Filter<Event>>,
        registered: oneshot::Sender<Registration>,
    },
    /// A running process's exit is yet to come; for any other the answer is the last exit the
    /// journal holds, if any.
    Wait {
        key: ProcessKey,
        liveness: Liveness,
        reply: oneshot::Sender<Response>,
    },
    /// The container, or with `process` only that process of it, never started: its waiters
    /// get `message` as an error.
    Abandon {
        namespace: String,
        id: String,
        process: Option<String>,
        message: String,
    },
    CloseSubscriptions,
    /// Work that must follow the events sent before it onto the disk (forgetting a container's
    /// record once its exit is written), done on the writer's thread, not the actor's.
    AfterWrite(Box<dyn FnOnce() + Send>),
}

/// Counters the writer thread keeps for `ctr info`.
#[derive(Debug, Default)]
struct Stats {
    subscribers: AtomicU64,
    drops: AtomicU64,
}

/// The last exit the journal held of a process when the daemon started: a restarted daemon
/// checks it so that it never reports an exit twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastExit {
    pub pid: u32,
    /// Nanoseconds since the epoch.
    pub time: u64,
    pub status: Option<i32>,
    pub oom_killed: bool,
}

/// What the journal held when it was opened.
pub struct Opened {
    /// The last sequence number (0 if none): numbering continues after it.
    pub last_seq: u64,
    pub exits: std::collections::HashMap<ProcessKey, LastExit>,
}

/// The actor's handle on the journal; dropping the last one ends the writer thread once it has
/// written everything sent before.
pub struct Journal {
    tx: crossbeam_channel::Sender<Command>,
    stats: Arc<Stats>,
}

impl Journal {
    /// Reads the journal in `dir` (creating it if needed), starts a new segment and the writer
    /// thread. A subscriber with `queue_len` events waiting is dropped as fallen behind.
    pub fn open(
        dir: &Path,
        retention: u64,
        queue_len: usize,
    ) -> Result<(Journal, Opened), JournalError> {
        let stats = Arc::new(Stats::default());
        let (writer, opened) = writer::Writer::open(dir, retention, queue_len, stats.clone())?;
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || writer.run(rx))
            .map_err(JournalError::Thread)?;
        Ok((Journal { tx, stats }, opened))
    }

    pub fn append(&self, event: Event) {
        self.send(Command::Append(event));
    }

    /// Registers a subscriber for the namespace's events that pass `filter`, from the first
    /// one not yet sent; `registered` gets its queue and what to replay from disk.
    pub fn subscribe(
        &self,
        namespace: Namespace,
        filter: Arc<Filter<Event>>,
        registered: oneshot::Sender<Registration>,
    ) {
        self.send(Command::Subscribe {
            namespace,
            filter,
            registered,
        });
    }

    pub fn wait(&self, key: ProcessKey, liveness: Liveness, reply: oneshot::Sender<Response>) {
        self.send(Command::Wait {
            key,
            liveness,
            reply,
        });
    }

    /// Answers, with `message` as an error, whoever waits for a process that will never exit
    /// because it never started: every process of the container, or only `process`.
    pub fn abandon(
        &self,
        namespace: &Namespace,
        id: &runtime::ContainerId,
        process: Option<&runtime::ProcessName>,
        message: String,
    ) {
        self.send(Command::Abandon {
            namespace: namespace.to_string(),
            id: id.to_string(),
            process: process.map(|name| name.to_string()),
            message,
        });
    }

    /// Ends every subscription once the events sent before have reached it.
    pub fn close_subscriptions(&self) {
        self.send(Command::CloseSubscriptions);
    }

    /// Runs `work` on the writer's thread once every event sent before is on disk.
    pub fn after_write(&self, work: impl FnOnce() + Send + 'static) {
        self.send(Command::AfterWrite(Box::new(work)));
    }

    pub fn subscribers(&self) -> u64 {
        self.stats.subscribers.load(Ordering::Relaxed)
    }

    /// Subscribers dropped because they fell behind, since the daemon started.
    pub fn drops(&self) -> u64 {
        self.stats.drops.load(Ordering::Relaxed)
    }

    fn send(&self, command: Command) {
        if self.tx.send(command).is_err() {
            log::error!("the journal writer has stopped; an event or request is lost");
        }
    }
}

/// Parses a size such as `64M`, `512K`, `1G` or `4096` (bytes; suffixes are powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let number = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match number.char_indices().last() {
        Some((i, 'k')) => (&number[..i], 10),
        Some((i, 'm')) => (&number[..i], 20),
        Some((i, 'g')) => (&number[..i], 30),
        _ => (number, 0),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected a number of bytes, or K, M or G"))?;
    let bytes = value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))?;
    if bytes == 0 {
        return Err(format!("size {text:?} must be more than 0"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use protocol::{ErrorKind, EventKind, Since};
    use tokio::sync::mpsc;

    use super::record::tests::event;
    use super::*;

    /// A live subscriber, and its registration: once it arrives, everything appended before is
    /// on disk.
    fn subscribe(journal: &Journal) -> (mpsc::Receiver<Event>, Replay) {
        let (registered, registration) = oneshot::channel();
        let namespace = Namespace::new("default").unwrap();
        journal.subscribe(namespace, Arc::new(Filter::everything()), registered);
        let Registration {
            replay,
            subscription,
        } = registration.blocking_recv().unwrap();
        (subscription.events, replay)
    }

    fn seqs(replay: &Replay, since: Since) -> Vec<u64> {
        let mut seen = Vec::new();
        replay
            .run(since, |e| {
                seen.push(e.seq);
                ControlFlow::Continue(())
            })
            .unwrap();
        seen
    }

    /// What a `wait` arriving after the exit of `event`'s process is answered.
    fn late_wait(journal: &Journal, event: &Event) -> Response {
        let (reply, answer) = oneshot::channel();
        journal.wait(ProcessKey::of(event), Liveness::ContainerGone, reply);
        answer.blocking_recv().unwrap()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        segments::list(dir)
            .unwrap()
            .into_iter()
            .map(|s| s.path)
            .collect()
    }

    #[test]
    fn events_survive_a_reopen_and_numbering_continues() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, opened) = Journal::open(dir.path(), 1 << 20, 1024).unwrap();
        assert_eq!(opened.last_seq, 0);
        (1..=5).for_each(|seq| journal.append(event(seq)));
        let (_, replay) = subscribe(&journal);
        assert_eq!(replay.upto(), 5);
        drop(journal);
        let (journal, opened) = Journal::open(dir.path(), 1 << 20, 1024).unwrap();
        assert_eq!(opened.last_seq, 5);
        let exit = event(3);
        let key = ProcessKey::of(&exit);
        assert_eq!(
            opened.exits.get(&key),
            Some(&LastExit {
                pid: exit.pid,
                time: exit.time,
                status: exit.status,
                oom_killed: exit.oom_killed,
            })
        );
        let (_, replay) = subscribe(&journal);
        assert_eq!(seqs(&replay, Since::Seq(0)), vec![1, 2, 3, 4, 5]);
        assert_eq!(seqs(&replay, Since::Seq(3)), vec![4, 5]);
        assert_eq!(seqs(&replay, Since::Time(event(4).time)), vec![4, 5]);
        assert_eq!(seqs(&replay, Since::Seq(5)), Vec::<u64>::new());
        assert_eq!(late_wait(&journal, &event(3)), Response::Exited(event(3)));
    }

    #[test]
    fn work_after_a_write_sees_the_events_before_it_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path(), 1 << 20, 1024).unwrap();
        (1..=3).for_each(|seq| journal.append(event(seq)));
        let (done, on_disk) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        journal.after_write(move || {
            let mut written = Vec::new();
            for segment in segment_files(&path) {
                record::read_segment(&segment, |e, _| {
                    written.push(e.seq);
                    std::ops::ControlFlow::Continue(())
                })
                .unwrap();
            }
            done.send(written).unwrap();
        });
        journal.append(event(4));
        assert_eq!(on_disk.recv().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn a_torn_last_record_is_skipped_and_appends_go_to_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path(), 1 << 20, 1024).unwrap();
        (1..=3).for_each(|seq| journal.append(event(seq)));
        subscribe(&journal);
        drop(journal);
        let last = segment_files(dir.path()).pop().unwrap();
        let len = std::fs::metadata(&last).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
        file.set_len(len - 5).unwrap();

        let (journal, opened) = Journal::open(dir.path(), 1 << 20, 1024).unwrap();
        assert_eq!(opened.last_seq, 2, "the torn third record is not counted");
        let mut again = event(3);
        again.id = "after-restart".into();
        journal.append(again.clone());
        let (_, replay) = subscribe(&journal);
        let mut seen = Vec::new();
        replay
            .run(Since::Seq(0), |e| {
                seen.push(e);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(seen, vec![event(1), event(2), again]);
        assert_eq!(segment_files(dir.path()).len(), 2);
    }

    #[test]
    fn an_event_no_record_can_hold_is_left_out_and_the_rest_of_its_segment_replays() {
        let dir = tempfile::tempdir().unwrap();
        // Segments far larger than the oversized event, so everything lands in one of them.
        let retention = 1 << 30;
        let (journal, _) = Journal::open(dir.path(), retention, 1024).unwrap();
        let oversized = record::tests::event_of_len(2, record::MAX_RECORD + 1);
        for event in [event(1), oversized, event(3), event(4)] {
            journal.append(event);
        }
        let (_, replay) = subscribe(&journal);
        assert_eq!(seqs(&replay, Since::Seq(0)), vec![1, 3, 4]);
        drop(journal);
        let [segment] = &segment_files(dir.path())[..] else {
            panic!("the events went to more than one segment");
        };
        let end = record::read_segment(segment, |_, _| ControlFlow::Continue(())).unwrap();
        assert_eq!(end.torn, None, "the segment holds a torn record");
        let (_, opened) = Journal::open(dir.path(), retention, 1024).unwrap();
        assert_eq!(opened.last_seq, 4);
    }

    #[test]
    fn retention_keeps_the_newest_segments_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let retention = 4096;
        let (journal, _) = Journal::open(dir.path(), retention, 1024).unwrap();
        (1..=500).for_each(|seq| journal.append(event(seq)));
        let (_, replay) = subscribe(&journal);
        let kept = seqs(&replay, Since::Seq(0));
        assert!(kept.len() < 500 && !kept.is_empty(), "kept {}", kept.len());
        assert_eq!(*kept.last().unwrap(), 500);
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "a gap: {kept:?}");
        let total: u64 = segment_files(dir.path())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        // The segment being written may pass its limit by the one batch that crossed it.
        assert!(total <= retention + 64 * 1024, "{total} bytes kept");
        assert_eq!(
            seqs(&replay, Since::Seq(480)),
            (481..=500).collect::<Vec<_>>()
        );
        assert_eq!(
            late_wait(&journal, &event(500)),
            Response::Exited(event(500))
        );
        match late_wait(&journal, &event(1)) {
            Response::Error(e) => assert_eq!(e.kind, ErrorKind::NotFound),
            other => panic!("an exit past retention answered: {other:?}"),
        }
    }

    #[test]
    fn live_subscribers_get_only_what_follows_their_registration() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path(), 1 << 20, 1024).unwrap();
        (1..=3).for_each(|seq| journal.append(event(seq)));
        let (mut live, replay) = subscribe(&journal);
        (4..=6).for_each(|seq| journal.append(event(seq)));
        subscribe(&journal);
        assert_eq!(seqs(&replay, Since::Seq(0)), vec![1, 2, 3]);
        let got: Vec<u64> = std::iter::from_fn(|| live.try_recv().ok())
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, vec![4, 5, 6]);
    }

    #[test]
    fn waiters_get_the_exit_to_come_or_the_one_on_record() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path(), 1 << 20, 1024).unwrap();
        let key = |e: &Event| ProcessKey::of(e);
        let ask = |e: &Event, running: bool| {
            let (reply, answer) = oneshot::channel();
            let liveness = if running {
                Liveness::Running
            } else {
                Liveness::ContainerGone
            };
            journal.wait(key(e), liveness, reply);
            answer
        };
        let done = event(1);
        journal.append(done.clone());
        assert_eq!(
            ask(&done, false).blocking_recv().unwrap(),
            Response::Exited(done.clone())
        );

        let mut later = event(2);
        let pending = ask(&later, true);
        let mut start = later.clone();
        start.kind = EventKind::StartContainer;
        journal.append(start);
        later.seq = 3;
        journal.append(later.clone());
        assert_eq!(pending.blocking_recv().unwrap(), Response::Exited(later));

        let never = event(9);
        let abandoned = ask(&never, true);
        journal.abandon(
            &Namespace::new("default").unwrap(),
            &runtime::ContainerId::new(&never.id).unwrap(),
            None,
            "it did not start".into(),
        );
        match abandoned.blocking_recv().unwrap() {
            Response::Error(e) => assert_eq!(e.message, "it did not start"),
            other => panic!("{other:?}"),
        }
        match ask(&never, false).blocking_recv().unwrap() {
            Response::Error(e) => assert_eq!(e.kind, ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        for bad in ["", "M", "-1M", "1.5M", "0", "99999999999G", "12X"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
