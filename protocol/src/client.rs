//! A small blocking client: one request at a time on one connection.
//!
//! Used by `ctr`, the integration tests and the benchmark. Every call returns a typed error; a
//! response of the wrong kind is [`ClientError::Unexpected`], never a panic.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::frame::{self, FrameError};
use crate::images::*;
use crate::message::*;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to ctrd at {path}: {source} (is ctrd running? see --address)")]
    Connect { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("ctrd closed the connection")]
    Closed,
    #[error("protocol version mismatch: this client speaks {ours}, ctrd {daemon_version} speaks {theirs}; use matching versions")]
    VersionMismatch {
        ours: u32,
        theirs: u32,
        daemon_version: String,
    },
    /// The daemon answered with a typed error.
    #[error("{0}")]
    Daemon(ErrorResponse),
    #[error("unexpected response from ctrd: {0}")]
    Unexpected(String),
    /// The daemon dropped this event stream because it fell behind.
    #[error(
        "ctrd dropped the event stream because it fell behind; resume with --since {last_seq}"
    )]
    Lagged { last_seq: u64 },
    /// Reading the archive to import, or writing the one exported, failed on this side.
    #[error("cannot {op} the archive: {source}")]
    Archive {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl ClientError {
    /// The daemon's error kind, when the daemon is what refused.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Daemon(e) => Some(e.kind),
            _ => None,
        }
    }
}

pub struct Client {
    stream: UnixStream,
    daemon: Hello,
    max_frame: usize,
}

impl Client {
    /// Connects and performs the version handshake.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        let path = path.as_ref();
        let mut stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        frame::write_frame(&mut stream, &Hello::ours())?;
        let daemon: Hello =
            frame::read_frame(&mut stream, crate::DEFAULT_MAX_FRAME)?.ok_or(ClientError::Closed)?;
        if daemon.protocol != crate::PROTOCOL_VERSION {
            return Err(ClientError::VersionMismatch {
                ours: crate::PROTOCOL_VERSION,
                theirs: daemon.protocol,
                daemon_version: daemon.version,
            });
        }
        Ok(Client {
            stream,
            daemon,
            max_frame: crate::DEFAULT_MAX_FRAME,
        })
    }

    /// What the daemon said of itself in the handshake.
    pub fn daemon(&self) -> &Hello {
        &self.daemon
    }

    /// Sends one request and returns its response; an error response becomes `Err`.
    pub fn call(&mut self, req: impl Into<Request>) -> Result<Response, ClientError> {
        self.call_raw(&req.into())
    }

    /// Sends one frame (a request, or the end of an upload) and returns the response to it.
    fn call_raw(&mut self, msg: &impl serde::Serialize) -> Result<Response, ClientError> {
        if let Err(write_failed) = frame::write_frame(&mut self.stream, msg) {
            // A daemon that closed the connection usually said why first (idle too long, say).
            return match self.read() {
                Ok(Response::Error(e)) => Err(ClientError::Daemon(e)),
                _ => Err(write_failed.into()),
            };
        }
        match self.read()? {
            Response::Error(e) => Err(ClientError::Daemon(e)),
            resp => Ok(resp),
        }
    }

    /// Starts a container and returns its init pid once it runs.
    pub fn start(&mut self, req: StartRequest) -> Result<u32, ClientError> {
        match self.call(req)? {
            Response::Started(s) => Ok(s.pid),
            other => Err(unexpected(other)),
        }
    }

    /// Runs a container from an image; returns its init's pid.
    pub fn run(&mut self, req: RunRequest) -> Result<u32, ClientError> {
        match self.call(req)? {
            Response::Started(s) => Ok(s.pid),
            other => Err(unexpected(other)),
        }
    }

    /// Starts a container the daemon keeps (a stopped one again, or from a checkpoint).
    pub fn start_existing(&mut self, req: StartExistingRequest) -> Result<u32, ClientError> {
        match self.call(req)? {
            Response::Started(s) => Ok(s.pid),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a stopped container (with `force`, a running one is killed first).
    pub fn delete(&mut self, req: DeleteRequest) -> Result<(), ClientError> {
        match self.call(req)? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub fn kill(&mut self, req: KillRequest) -> Result<(), ClientError> {
        self.kill_noting(req).map(drop)
    }

    /// Like [`Client::kill`], returning the daemon's note on a paused container (a signal waits
    /// until it is resumed; `all` thaws it).
    pub fn kill_noting(&mut self, req: KillRequest) -> Result<Option<String>, ClientError> {
        match self.call(req)? {
            Response::Done => Ok(None),
            Response::Noted(note) => Ok(Some(note)),
            other => Err(unexpected(other)),
        }
    }

    pub fn pause(&mut self, namespace: &str, id: &str) -> Result<(), ClientError> {
        let req = PauseRequest {
            namespace: namespace.into(),
            id: id.into(),
        };
        self.done(req)
    }

    pub fn resume(&mut self, namespace: &str, id: &str) -> Result<(), ClientError> {
        let req = ResumeRequest {
            namespace: namespace.into(),
            id: id.into(),
        };
        self.done(req)
    }

    pub fn update(&mut self, req: UpdateRequest) -> Result<(), ClientError> {
        self.done(req)
    }

    /// One sample per container: of `ids`, or of every running container when it is empty.
    pub fn stats(
        &mut self,
        namespace: &str,
        ids: &[String],
    ) -> Result<Vec<ContainerStats>, ClientError> {
        let req = StatsRequest {
            namespace: namespace.into(),
            ids: ids.to_vec(),
        };
        match self.call(req)? {
            Response::Stats(stats) => Ok(stats),
            other => Err(unexpected(other)),
        }
    }

    fn done(&mut self, req: impl Into<Request>) -> Result<(), ClientError> {
        match self.call(req)? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub fn list(&mut self, namespace: &str) -> Result<Vec<Container>, ClientError> {
        self.list_filtered(namespace, Vec::new())
    }

    /// The containers matching any of `filters` ([`crate::filter`]); all of them if it is empty.
    pub fn list_filtered(
        &mut self,
        namespace: &str,
        filters: Vec<String>,
    ) -> Result<Vec<Container>, ClientError> {
        let req = ListRequest {
            namespace: namespace.into(),
            filters,
        };
        match self.call(req)? {
            Response::Containers(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    pub fn state(&mut self, namespace: &str, id: &str) -> Result<Container, ClientError> {
        let req = StateRequest {
            namespace: namespace.into(),
            id: id.into(),
        };
        match self.call(req)? {
            Response::Container(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    pub fn info(&mut self) -> Result<DaemonInfo, ClientError> {
        match self.call(InfoRequest {})? {
            Response::Info(i) => Ok(i),
            other => Err(unexpected(other)),
        }
    }

    /// Checkpoints a container; returns once the checkpoint is on disk.
    pub fn checkpoint(&mut self, req: CheckpointRequest) -> Result<(), ClientError> {
        match self.call(req)? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The checkpoints in a container's bundle.
    pub fn checkpoints(
        &mut self,
        namespace: &str,
        id: &str,
    ) -> Result<Vec<CheckpointInfo>, ClientError> {
        let req = ListCheckpointsRequest {
            namespace: namespace.into(),
            id: id.into(),
        };
        match self.call(req)? {
            Response::Checkpoints(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    pub fn delete_checkpoint(&mut self, req: DeleteCheckpointRequest) -> Result<(), ClientError> {
        match self.call(req)? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Starts a process in a running container and returns its pid once it runs.
    pub fn exec(&mut self, req: ExecRequest) -> Result<u32, ClientError> {
        match self.call(req)? {
            Response::Started(s) => Ok(s.pid),
            other => Err(unexpected(other)),
        }
    }

    pub fn kill_process(&mut self, req: KillProcessRequest) -> Result<(), ClientError> {
        match self.call(req)? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub fn resize(&mut self, req: ResizeRequest) -> Result<(), ClientError> {
        match self.call(req)? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub fn logs(&mut self, namespace: &str, id: &str) -> Result<LogFiles, ClientError> {
        let req = LogsRequest {
            namespace: namespace.into(),
            id: id.into(),
        };
        match self.call(req)? {
            Response::Logs(files) => Ok(files),
            other => Err(unexpected(other)),
        }
    }

    /// The daemon's telemetry: start times, rates and gauges.
    pub fn metrics(&mut self) -> Result<MetricsReport, ClientError> {
        match self.call(MetricsRequest {})? {
            Response::Metrics(m) => Ok(m),
            other => Err(unexpected(other)),
        }
    }

    /// Imports the archive `archive` reads: sends the request, then the archive in the chunks
    /// the daemon asks for, calling `sent` with the bytes sent so far after each. Returns the
    /// images recorded. Any failure before the daemon's answer leaves its store as it was.
    pub fn import(
        &mut self,
        req: ImportRequest,
        archive: &mut impl Read,
        mut sent: impl FnMut(u64),
    ) -> Result<Vec<ImportedImage>, ClientError> {
        let chunk_size = match self.call(req)? {
            Response::UploadReady(ready) => ready.chunk_size.max(1) as usize,
            other => return Err(unexpected(other)),
        };
        let mut buf = vec![0u8; chunk_size];
        let mut total = 0u64;
        loop {
            let n = match archive.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ClientError::Archive { op: "read", source }),
            };
            let frame = UploadFrame::Data(Bytes(buf[..n].to_vec()));
            if let Err(write_failed) = frame::write_frame(&mut self.stream, &frame) {
                // The daemon refused the archive part-way and said why before it closed.
                return match self.read() {
                    Ok(Response::Error(e)) => Err(ClientError::Daemon(e)),
                    _ => Err(write_failed.into()),
                };
            }
            total += n as u64;
            sent(total);
        }
        match self.call_raw(&UploadFrame::End)? {
            Response::Imported(images) => Ok(images),
            other => Err(unexpected(other)),
        }
    }

    /// Exports the named images as one OCI layout archive into `out`; returns its size. On an
    /// error what `out` received is incomplete.
    pub fn export(
        &mut self,
        req: ExportImagesRequest,
        out: &mut impl Write,
    ) -> Result<u64, ClientError> {
        let mut response = self.call(req)?;
        let mut total = 0u64;
        loop {
            match response {
                Response::Data(Bytes(data)) => {
                    out.write_all(&data)
                        .map_err(|source| ClientError::Archive {
                            op: "write",
                            source,
                        })?;
                    total += data.len() as u64;
                }
                Response::Done => return Ok(total),
                other => return Err(unexpected(other)),
            }
            response = match self.read()? {
                Response::Error(e) => return Err(ClientError::Daemon(e)),
                resp => resp,
            };
        }
    }

    pub fn list_images(
        &mut self,
        namespace: &str,
        filters: Vec<String>,
    ) -> Result<Vec<Image>, ClientError> {
        let req = ListImagesRequest {
            namespace: namespace.into(),
            filters,
        };
        match self.call(req)? {
            Response::Images(images) => Ok(images),
            other => Err(unexpected(other)),
        }
    }

    /// Removes image names, all or none; returns them.
    pub fn remove_images(
        &mut self,
        namespace: &str,
        names: &[String],
    ) -> Result<Vec<String>, ClientError> {
        let req = RemoveImagesRequest {
            namespace: namespace.into(),
            names: names.to_vec(),
        };
        match self.call(req)? {
            Response::Removed(names) => Ok(names),
            other => Err(unexpected(other)),
        }
    }

    pub fn inspect_image(
        &mut self,
        namespace: &str,
        name: &str,
    ) -> Result<ImageDetails, ClientError> {
        let req = InspectImageRequest {
            namespace: namespace.into(),
            name: name.into(),
        };
        match self.call(req)? {
            Response::ImageDetails(details) => Ok(details),
            other => Err(unexpected(other)),
        }
    }

    /// Removes what no image, container or running import uses.
    pub fn prune(&mut self, namespace: &str) -> Result<Pruned, ClientError> {
        let req = PruneRequest {
            namespace: namespace.into(),
        };
        match self.call(req)? {
            Response::Pruned(pruned) => Ok(pruned),
            other => Err(unexpected(other)),
        }
    }

    pub fn list_snapshots(
        &mut self,
        namespace: &str,
        filters: Vec<String>,
    ) -> Result<Vec<Snapshot>, ClientError> {
        let req = ListSnapshotsRequest {
            namespace: namespace.into(),
            filters,
        };
        match self.call(req)? {
            Response::Snapshots(snapshots) => Ok(snapshots),
            other => Err(unexpected(other)),
        }
    }

    pub fn remove_snapshot(&mut self, namespace: &str, key: &str) -> Result<(), ClientError> {
        let req = RemoveSnapshotRequest {
            namespace: namespace.into(),
            key: key.into(),
        };
        self.done(req)
    }

    pub fn snapshot_usage(
        &mut self,
        namespace: &str,
        keys: &[String],
    ) -> Result<Vec<SnapshotUsage>, ClientError> {
        let req = SnapshotUsageRequest {
            namespace: namespace.into(),
            keys: keys.to_vec(),
        };
        match self.call(req)? {
            Response::SnapshotUsage(usage) => Ok(usage),
            other => Err(unexpected(other)),
        }
    }

    /// Creates container `id`'s writable snapshot on `image`; returns its key.
    pub fn prepare_snapshot(
        &mut self,
        namespace: &str,
        id: &str,
        image: &str,
    ) -> Result<String, ClientError> {
        let req = PrepareSnapshotRequest {
            namespace: namespace.into(),
            id: id.into(),
            image: image.into(),
        };
        match self.call(req)? {
            Response::Prepared(key) => Ok(key),
            other => Err(unexpected(other)),
        }
    }

    pub fn mount_snapshot(
        &mut self,
        namespace: &str,
        id: &str,
        target: &str,
    ) -> Result<(), ClientError> {
        let req = MountSnapshotRequest {
            namespace: namespace.into(),
            id: id.into(),
            target: target.into(),
        };
        self.done(req)
    }

    pub fn unmount_snapshot(&mut self, target: &str) -> Result<(), ClientError> {
        self.done(UnmountSnapshotRequest {
            target: target.into(),
        })
    }

    pub fn list_content(&mut self, filters: Vec<String>) -> Result<Vec<ContentBlob>, ClientError> {
        match self.call(ListContentRequest { filters })? {
            Response::Content(blobs) => Ok(blobs),
            other => Err(unexpected(other)),
        }
    }

    /// Turns this connection into the namespace's live event stream.
    pub fn subscribe(self, namespace: &str) -> Result<EventStream, ClientError> {
        self.subscribe_with(SubscribeRequest::live(namespace))
    }

    /// Turns this connection into an event stream: a replay if `req.since` is set, then live.
    pub fn subscribe_with(mut self, req: SubscribeRequest) -> Result<EventStream, ClientError> {
        match self.call(req)? {
            Response::Subscribed => Ok(EventStream { client: self }),
            other => Err(unexpected(other)),
        }
    }

    /// Blocks until the process exits (or answers at once if it has) and returns its `exit`.
    pub fn wait(&mut self, req: WaitRequest) -> Result<Event, ClientError> {
        match self.call(req)? {
            Response::Exited(event) => Ok(event),
            other => Err(unexpected(other)),
        }
    }

    fn read(&mut self) -> Result<Response, ClientError> {
        frame::read_frame(&mut self.stream, self.max_frame)?.ok_or(ClientError::Closed)
    }
}

/// One frame of an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    Event(Event),
    /// The replay is over; what follows is live.
    Live,
    /// The daemon dropped the stream because it fell behind; this is its last frame.
    Lagged(Lagged),
}

/// Events in the order the daemon emitted them; ends when the daemon closes the stream.
pub struct EventStream {
    client: Client,
}

impl EventStream {
    /// The next frame, or `Ok(None)` once the daemon has closed the stream.
    pub fn next_item(&mut self) -> Result<Option<StreamItem>, ClientError> {
        match frame::read_frame(&mut self.client.stream, self.client.max_frame)? {
            None => Ok(None),
            Some(Response::Event(e)) => Ok(Some(StreamItem::Event(e))),
            Some(Response::Live) => Ok(Some(StreamItem::Live)),
            Some(Response::Lagged(l)) => Ok(Some(StreamItem::Lagged(l))),
            Some(Response::Error(e)) => Err(ClientError::Daemon(e)),
            Some(other) => Err(unexpected(other)),
        }
    }

    /// The next event, or `Ok(None)` once the daemon has closed the stream. The `live` marker is
    /// skipped; being dropped for lagging is [`ClientError::Lagged`].
    pub fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            match self.next_item()? {
                None => return Ok(None),
                Some(StreamItem::Event(e)) => return Ok(Some(e)),
                Some(StreamItem::Live) => continue,
                Some(StreamItem::Lagged(Lagged { last_seq })) => {
                    return Err(ClientError::Lagged { last_seq })
                }
            }
        }
    }

    /// Bounds how long [`EventStream::next_event`] waits; a timeout surfaces as an i/o error.
    pub fn set_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.client.stream.set_read_timeout(timeout)
    }
}

impl Iterator for EventStream {
    type Item = Result<Event, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

fn unexpected(resp: Response) -> ClientError {
    let name = match resp {
        Response::Started(_) => "started",
        Response::Done => "done",
        Response::Containers(_) => "containers",
        Response::Container(_) => "container",
        Response::Subscribed => "subscribed",
        Response::Event(_) => "event",
        Response::Info(_) => "info",
        Response::Error(_) => "error",
        Response::Checkpoints(_) => "checkpoints",
        Response::Live => "live",
        Response::Lagged(_) => "lagged",
        Response::Exited(_) => "exited",
        Response::Logs(_) => "logs",
        Response::Stats(_) => "stats",
        Response::Noted(_) => "noted",
        Response::Metrics(_) => "metrics",
        Response::UploadReady(_) => "upload-ready",
        Response::Imported(_) => "imported",
        Response::Images(_) => "images",
        Response::ImageDetails(_) => "image-details",
        Response::Data(_) => "data",
        Response::Removed(_) => "removed",
        Response::Pruned(_) => "pruned",
        Response::Snapshots(_) => "snapshots",
        Response::SnapshotUsage(_) => "snapshot-usage",
        Response::Prepared(_) => "prepared",
        Response::Content(_) => "content",
    };
    ClientError::Unexpected(name.to_string())
}
