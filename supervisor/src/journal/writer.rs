//! The journal's writer thread: appends, fsyncs, rotates, then delivers.
//!
//! Events arrive in batches (whatever the channel holds, up to [`MAX_BATCH`]); each batch is
//! written with one `write` and made durable with one `fdatasync` before any subscriber or
//! waiter sees an event of it. Any other command first commits the events before it, so a
//! subscriber registered here knows exactly which events are on disk and which will come live.
//!
//! The writer also keeps, for `ctr containers wait`, where the retained segments hold the last
//! exit of each process (read back from disk when a caller arrives after the exit: memory holds
//! only the keys), and the callers waiting for an exit still to come.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use protocol::{ErrorKind, ErrorResponse, Event, EventKind, Response};
use tokio::sync::oneshot;

use super::segments::{self, Segment};
use super::{
    record, Command, JournalError, LastExit, Liveness, Opened, ProcessKey, Registration, Replay,
    Stats,
};
use crate::subscribers::Subscribers;

/// The most events one `fdatasync` covers; more wait for the next batch.
const MAX_BATCH: usize = 1024;

/// How many segments the retention is split into: the journal holds between 7/8 of it and all
/// of it (plus the record that crossed a segment's limit).
const SEGMENTS_PER_RETENTION: u64 = 8;

/// The place of an exit record in the journal.
#[derive(Debug, Clone, Copy)]
struct ExitAt {
    seq: u64,
    /// The first sequence number of its segment, which names the file.
    segment: u64,
    offset: u64,
}

pub struct Writer {
    dir: PathBuf,
    retention: u64,
    segment_limit: u64,
    /// Full segments, oldest first, with their sizes.
    closed: VecDeque<(Segment, u64)>,
    current: Segment,
    file: File,
    current_len: u64,
    last_seq: u64,
    /// Events received but not yet on disk.
    pending: Vec<Event>,
    buf: Vec<u8>,
    /// Where the last exit of each process the retained segments hold is.
    exits: HashMap<ProcessKey, ExitAt>,
    waiters: HashMap<ProcessKey, Vec<oneshot::Sender<Response>>>,
    subscribers: Subscribers,
    stats: Arc<Stats>,
}

impl Writer {
    /// Reads every segment (the last sequence number, the exits), then starts a new segment.
    pub fn open(
        dir: &Path,
        retention: u64,
        queue_len: usize,
        stats: Arc<Stats>,
    ) -> Result<(Writer, Opened), JournalError> {
        std::fs::create_dir_all(dir).map_err(|source| JournalError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let read_err = |source| JournalError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut last_seq = 0;
        let mut exits = HashMap::new();
        let mut last_exits = HashMap::new();
        let mut closed = VecDeque::new();
        for segment in segments::list(dir).map_err(read_err)? {
            let end = record::read_segment(&segment.path, |event, offset| {
                last_seq = last_seq.max(event.seq);
                if event.kind == EventKind::Exit {
                    let at = ExitAt {
                        seq: event.seq,
                        segment: segment.first_seq,
                        offset,
                    };
                    exits.insert(ProcessKey::of(&event), at);
                    let last = LastExit {
                        pid: event.pid,
                        time: event.time,
                        status: event.status,
                        oom_killed: event.oom_killed,
                    };
                    last_exits.insert(ProcessKey::of(&event), last);
                }
                ControlFlow::Continue(())
            })
            .map_err(read_err)?;
            if let Some(why) = end.torn {
                log::warn!(
                    "journal segment {} is torn ({why}); the {} bytes before are read, the rest is skipped",
                    segment.path.display(),
                    end.valid_len
                );
            }
            let size = std::fs::metadata(&segment.path).map_err(read_err)?.len();
            closed.push_back((segment, size));
        }
        // A segment named for the next sequence number holds no readable record: start it over.
        let next = last_seq + 1;
        if closed.back().is_some_and(|(s, _)| s.first_seq == next) {
            closed.pop_back();
        }
        let current = Segment {
            first_seq: next,
            path: segments::path(dir, next),
        };
        let file = create_segment(dir, &current.path).map_err(|source| JournalError::Segment {
            path: current.path.clone(),
            source,
        })?;
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            retention,
            segment_limit: (retention / SEGMENTS_PER_RETENTION).max(1),
            closed,
            current,
            file,
            current_len: record::MAGIC.len() as u64,
            last_seq,
            pending: Vec::new(),
            buf: Vec::new(),
            exits,
            waiters: HashMap::new(),
            subscribers: Subscribers::new(queue_len),
            stats,
        };
        writer.enforce_retention();
        log::info!(
            "event journal {}: last sequence number {last_seq}, {} segment(s)",
            dir.display(),
            writer.closed.len() + 1
        );
        let opened = Opened {
            last_seq,
            exits: last_exits,
        };
        Ok((writer, opened))
    }

    /// Runs until every [`super::Journal`] handle is dropped.
    pub fn run(mut self, commands: crossbeam_channel::Receiver<Command>) {
        while let Ok(command) = commands.recv() {
            self.handle(command);
            while self.pending.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) => self.handle(command),
                    Err(_) => break,
                }
            }
            self.commit();
        }
    }

    fn handle(&mut self, command: Command) {
        // Anything but an event is ordered after the events sent before it: they go to disk and
        // out first.
        if !matches!(command, Command::Append(_)) {
            self.commit();
        }
        match command {
            Command::Append(event) => self.pending.push(event),
            Command::Subscribe {
                namespace,
                filter,
                registered,
            } => {
                let subscription = self.subscribers.add(namespace, filter);
                let _ = registered.send(Registration {
                    replay: Replay::new(self.dir.clone(), self.last_seq),
                    subscription,
                });
                self.update_stats();
            }
            Command::Wait {
                key,
                liveness,
                reply,
            } => self.wait(key, liveness, reply),
            Command::Abandon {
                namespace,
                id,
                process,
                message,
            } => self.waiters.retain(|key, waiters| {
                let named = match &process {
                    Some(name) => *name == key.process,
                    None => true,
                };
                if key.namespace != namespace || key.id != id || !named {
                    return true;
                }
                for reply in waiters.drain(..) {
                    let err = ErrorResponse::new(ErrorKind::FailedPrecondition, message.clone());
                    let _ = reply.send(Response::Error(err));
                }
                false
            }),
            Command::CloseSubscriptions => {
                self.subscribers.close_all();
                self.update_stats();
            }
            Command::AfterWrite(work) => work(),
        }
    }

    fn wait(&mut self, key: ProcessKey, liveness: Liveness, reply: oneshot::Sender<Response>) {
        if liveness == Liveness::Running {
            let waiters = self.waiters.entry(key).or_default();
            // Callers that hung up while waiting are forgotten here rather than at the exit.
            waiters.retain(|waiter| !waiter.is_closed());
            waiters.push(reply);
            return;
        }
        let response = match self.exits.get(&key).and_then(|at| self.read_exit(at)) {
            Some(exit) => Response::Exited(exit),
            None => Response::Error(ErrorResponse::new(
                ErrorKind::NotFound,
                match liveness {
                    Liveness::NotRunning => {
                        format!("container \"{}\" has no process \"{}\"", key.id, key.process)
                    }
                    _ => format!(
                        "container \"{}\" not found, and the journal holds no exit of its process \"{}\"",
                        key.id, key.process
                    ),
                },
            )),
        };
        let _ = reply.send(response);
    }

    /// Reads an exit back from its segment: a disk read, but only for a `wait` that arrives
    /// after the exit.
    fn read_exit(&self, at: &ExitAt) -> Option<Event> {
        let path = segments::path(&self.dir, at.segment);
        match record::read_at(&path, at.offset) {
            Ok(Some(event)) if event.seq == at.seq => Some(event),
            Ok(_) => None,
            Err(e) => {
                log::warn!("cannot read exit {} from {}: {e}", at.seq, path.display());
                None
            }
        }
    }

    /// Writes and syncs the pending events, then hands them on. A batch that fills the current
    /// segment is split there, so no segment grows past its limit by more than one record.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let mut from = 0;
        for (i, event) in pending.iter().enumerate() {
            let offset = self.current_len + self.buf.len() as u64;
            match record::encode(event, &mut self.buf) {
                Ok(()) if event.kind == EventKind::Exit => {
                    let at = ExitAt {
                        seq: event.seq,
                        segment: self.current.first_seq,
                        offset,
                    };
                    self.exits.insert(ProcessKey::of(event), at);
                }
                Ok(()) => {}
                // Nothing of it is in the buffer: the events after it are written as usual.
                Err(e) => log::error!(
                    "event {} is left out of the journal: {e}; subscribers still get it live",
                    event.seq
                ),
            }
            self.last_seq = event.seq;
            if self.current_len + self.buf.len() as u64 >= self.segment_limit {
                self.write_out(&pending[from..=i]);
                self.rotate();
                from = i + 1;
            }
        }
        if from < pending.len() {
            self.write_out(&pending[from..]);
        }
        for event in pending {
            if event.kind == EventKind::Exit {
                let key = ProcessKey::of(&event);
                for reply in self.waiters.remove(&key).unwrap_or_default() {
                    let _ = reply.send(Response::Exited(event.clone()));
                }
            }
            self.subscribers.publish(&event);
        }
        self.update_stats();
    }

    /// Appends the encoded `events` to the current segment and makes them durable.
    fn write_out(&mut self, events: &[Event]) {
        let written = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => self.current_len += self.buf.len() as u64,
            Err(e) => {
                let (first, last) = (events[0].seq, events[events.len() - 1].seq);
                log::error!(
                    "cannot write events {first} to {last} to the journal {}: {e}; \
                     subscribers still get them live",
                    self.current.path.display()
                );
                // What was written may end in a torn record: continue in a new file.
                self.rotate();
            }
        }
        self.buf.clear();
    }

    /// Closes the current segment and starts the next one, unless the current one is still
    /// waiting for its first record.
    fn rotate(&mut self) {
        if self.current.first_seq > self.last_seq {
            return;
        }
        let next = Segment {
            first_seq: self.last_seq + 1,
            path: segments::path(&self.dir, self.last_seq + 1),
        };
        match create_segment(&self.dir, &next.path) {
            Ok(file) => {
                let old = std::mem::replace(&mut self.current, next);
                self.closed.push_back((old, self.current_len));
                self.file = file;
                self.current_len = record::MAGIC.len() as u64;
                self.enforce_retention();
            }
            Err(e) => log::error!(
                "cannot start journal segment {}: {e}; appending to {}",
                next.path.display(),
                self.current.path.display()
            ),
        }
    }

    /// Removes the oldest segments while all of them together exceed the retention.
    fn enforce_retention(&mut self) {
        let mut total: u64 =
            self.current_len + self.closed.iter().map(|(_, size)| size).sum::<u64>();
        while total > self.retention {
            let Some((oldest, size)) = self.closed.pop_front() else {
                break;
            };
            if let Err(e) = std::fs::remove_file(&oldest.path) {
                log::warn!(
                    "cannot remove journal segment {}: {e}",
                    oldest.path.display()
                );
            }
            total -= size;
        }
        let first_kept = self
            .closed
            .front()
            .map_or(self.current.first_seq, |(s, _)| s.first_seq);
        self.exits.retain(|_, exit| exit.seq >= first_kept);
    }

    fn update_stats(&self) {
        self.stats
            .subscribers
            .store(self.subscribers.len() as u64, Ordering::Relaxed);
        self.stats
            .drops
            .store(self.subscribers.drops(), Ordering::Relaxed);
    }
}

/// Creates (or empties) a segment file, writes its magic and makes both durable.
fn create_segment(dir: &Path, path: &Path) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    file.write_all(record::MAGIC)?;
    file.sync_data()?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}
