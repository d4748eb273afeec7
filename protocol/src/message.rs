//! Requests, responses, events and errors as they travel on the socket.
//!
//! Enums serialize as kebab-case strings in JSON (what `ctr --format json` prints); bincode
//! ignores the names and encodes the variant index.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::images::*;

/// The first frame each side sends on a new connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The sender's software version, for `ctr version`.
    pub version: String,
}

impl Hello {
    pub fn ours() -> Self {
        Hello {
            protocol: crate::PROTOCOL_VERSION,
            version: crate::VERSION.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Start(StartRequest),
    Kill(KillRequest),
    List(ListRequest),
    State(StateRequest),
    Subscribe(SubscribeRequest),
    Info(InfoRequest),
    Checkpoint(CheckpointRequest),
    ListCheckpoints(ListCheckpointsRequest),
    DeleteCheckpoint(DeleteCheckpointRequest),
    Wait(WaitRequest),
    Exec(ExecRequest),
    KillProcess(KillProcessRequest),
    Resize(ResizeRequest),
    Logs(LogsRequest),
    Pause(PauseRequest),
    Resume(ResumeRequest),
    Update(UpdateRequest),
    Stats(StatsRequest),
    Metrics(MetricsRequest),
    ImportImage(ImportRequest),
    ListImages(ListImagesRequest),
    RemoveImages(RemoveImagesRequest),
    InspectImage(InspectImageRequest),
    ExportImages(ExportImagesRequest),
    Prune(PruneRequest),
    ListSnapshots(ListSnapshotsRequest),
    RemoveSnapshot(RemoveSnapshotRequest),
    SnapshotUsage(SnapshotUsageRequest),
    PrepareSnapshot(PrepareSnapshotRequest),
    MountSnapshot(MountSnapshotRequest),
    UnmountSnapshot(UnmountSnapshotRequest),
    ListContent(ListContentRequest),
    Run(RunRequest),
    StartExisting(StartExistingRequest),
    Delete(DeleteRequest),
}

/// Start a container from an OCI bundle; answered once its init process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    pub namespace: String,
    pub id: String,
    /// Absolute path of the bundle directory (the one holding `config.json`).
    pub bundle: String,
    pub labels: BTreeMap<String, String>,
    /// Absolute path the container's stdout goes to; default: its log file in the state dir.
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Restore the container from this checkpoint in `<bundle>/checkpoints/` instead of
    /// starting it afresh.
    pub checkpoint: Option<String>,
    /// Absolute path of a FIFO the client writes the container's stdin into (`start --attach`);
    /// default: no stdin.
    pub stdin: Option<String>,
    /// With `stdin` and `stdout`: run the init on a pseudo-terminal of this size, relayed to those
    /// FIFOs. The bundle's `process.terminal` must be true.
    pub terminal: Option<WindowSize>,
    /// Delete the container as soon as it has stopped (`start --rm`): nothing of it is kept.
    pub remove: bool,
}

/// Start a container the daemon keeps, as it was started before: a stopped one again from its
/// bundle (its logs start afresh), or with `checkpoint` restored from that checkpoint in its
/// bundle (its logs continue). Answered once its init process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartExistingRequest {
    pub namespace: String,
    pub id: String,
    pub checkpoint: Option<String>,
}

/// Forget a stopped container: its record, its runtime state and its directory in the state
/// dir (the default logs). With `force` a running one is killed first; answered once it is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub namespace: String,
    pub id: String,
    pub force: bool,
}

/// On the `snapshot-remove` event of a [`RunRequest`] with `remove`: why the removal failed
/// (what is left stays, for `ctr snapshots` to show).
pub const REMOVE_ERROR_LABEL: &str = "ctrd.remove-error";

/// The label of a container run from an image that names the image (`ctr containers state`
/// shows it); set by the daemon, over any label of that key the image or the request gives.
pub const IMAGE_LABEL: &str = "ctrd.image";

/// Run a container from an image (`ctr run`): the daemon prepares its snapshot, mounts it as the
/// rootfs of a bundle it writes in its state directory, and starts it as [`StartRequest`] does;
/// answered with [`Response::Started`] once its init runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    pub namespace: String,
    pub id: String,
    /// The image's name in the namespace.
    pub image: String,
    /// Replaces the image's Cmd (its Entrypoint stays); empty: the image's Cmd.
    pub command: Vec<String>,
    /// `KEY=VALUE`, each replacing the image's variable of that name.
    pub env: Vec<String>,
    /// Working directory, absolute; default: the image's.
    pub cwd: Option<String>,
    /// `user[:group]`, names or numbers; default: the image's.
    pub user: Option<String>,
    /// Added to the image's labels, replacing those of the same key.
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    /// Mount the rootfs read-only.
    pub read_only: bool,
    /// Share the host's network namespace instead of having one of its own (with only
    /// loopback).
    pub net_host: bool,
    /// Bytes.
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
    /// Remove the snapshot and the bundle once the container exits; a `snapshot-remove` event
    /// says when that is done (with [`REMOVE_ERROR_LABEL`] if it failed).
    pub remove: bool,
    /// As in [`StartRequest`].
    pub stdin: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub terminal: Option<WindowSize>,
}

/// Send a signal to a container's init process, or with `all` to every process in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillRequest {
    pub namespace: String,
    pub id: String,
    pub signal: i32,
    pub all: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRequest {
    pub namespace: String,
    /// Filter expressions ([`crate::filter`]); a container is listed if it matches any.
    /// Empty: every container.
    pub filters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRequest {
    pub namespace: String,
    pub id: String,
}

/// Turn the connection into a stream of the namespace's events: with `since`, first those the
/// journal holds from that point, then a [`Response::Live`] marker, then the live ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeRequest {
    pub namespace: String,
    /// Where the replay starts; `None` streams live events only.
    pub since: Option<Since>,
    /// The stream ends at this time (nanoseconds since the epoch): no event after it is sent.
    pub until: Option<u64>,
    /// Filter expressions ([`crate::filter`]); an event is sent if it matches any. Empty: every
    /// event.
    pub filters: Vec<String>,
}

impl SubscribeRequest {
    /// Live events only, unfiltered.
    pub fn live(namespace: impl Into<String>) -> Self {
        SubscribeRequest {
            namespace: namespace.into(),
            since: None,
            until: None,
            filters: Vec::new(),
        }
    }
}

/// The point a replay starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Since {
    /// Events whose sequence number is greater than this: `Seq(0)` is everything the journal
    /// holds, and `Seq(n)` resumes after the last event seen, `n`.
    Seq(u64),
    /// Events at or after this time, in nanoseconds since the epoch.
    Time(u64),
}

/// Ask the daemon about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoRequest {}

/// Dump a running container with CRIU into `<bundle>/checkpoints/<name>`; answered once the
/// checkpoint is on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRequest {
    pub namespace: String,
    pub id: String,
    pub name: String,
    pub options: CheckpointOptions,
    /// Stop the container once it is dumped; without it the container keeps running.
    pub exit: bool,
    /// A pre-dump: memory only, the container keeps running and the kernel tracks the pages it
    /// writes, so that a checkpoint naming this one as `parent` holds only those. Not with `exit`.
    pub pre_dump: bool,
    /// The name of a pre-dump in the same bundle this checkpoint builds on.
    pub parent: Option<String>,
}

/// What CRIU is allowed to dump besides plain processes and files; a restore uses the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointOptions {
    /// Established TCP connections (`--tcp-established`).
    pub tcp: bool,
    /// Unix sockets connected to a peer outside the container (`--ext-unix-sk`).
    pub unix_sockets: bool,
    /// A process attached to a terminal or session outside the container (`--shell-job`).
    pub shell: bool,
}

/// The checkpoints kept in a container's bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCheckpointsRequest {
    pub namespace: String,
    pub id: String,
}

/// Remove one checkpoint from a container's bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteCheckpointRequest {
    pub namespace: String,
    pub id: String,
    pub name: String,
}

/// Wait for a process of a container to exit; answered with its `exit` event
/// ([`Response::Exited`]), at once if it has already exited and the journal still holds the exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitRequest {
    pub namespace: String,
    pub id: String,
    /// The process name: `init` for the container's main process.
    pub process: String,
}

/// Run another process in a running container; answered with its pid once it runs. Its end is an
/// `exit` event naming the container and `process`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub namespace: String,
    pub id: String,
    /// The process's name, unique in the container while it runs; `init` is the main process.
    pub process: String,
    /// The command and its arguments; the command is looked up in the container's `PATH`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries added to (and overriding) the environment of the bundle's process.
    pub env: Vec<String>,
    /// Absolute working directory inside the container; default: the bundle's process cwd.
    pub cwd: Option<String>,
    /// Default: the bundle's process user.
    pub uid: Option<u32>,
    /// Default: the primary group of `uid` in the container's `/etc/passwd`, else the bundle's.
    pub gid: Option<u32>,
    /// Where its stdio goes; `None`: stdin is empty and output goes where the container's does.
    pub stdio: Option<ExecStdio>,
}

/// FIFOs the client created and holds open: the process reads and writes them directly, so the
/// data never passes through the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStdio {
    pub stdin: Option<String>,
    pub stdout: String,
    /// Absent with a terminal, whose one stream carries both outputs.
    pub stderr: Option<String>,
    /// Give the process a pseudo-terminal of this size; the daemon relays it to the FIFOs.
    pub terminal: Option<WindowSize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// Send a signal to one named process of a container (`init` for its main process).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillProcessRequest {
    pub namespace: String,
    pub id: String,
    pub process: String,
    pub signal: i32,
}

/// Resize the terminal of a process started with one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeRequest {
    pub namespace: String,
    pub id: String,
    pub process: String,
    pub size: WindowSize,
}

/// Where a container's logs are; the client reads them itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsRequest {
    pub namespace: String,
    pub id: String,
}

/// Freeze every process of a running container (`runc pause`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRequest {
    pub namespace: String,
    pub id: String,
}

/// Thaw a paused container (`runc resume`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRequest {
    pub namespace: String,
    pub id: String,
}

/// Change a running container's limits in place (`runc update`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub namespace: String,
    pub id: String,
    pub resources: Resources,
}

/// The limits an update changes: each `Some` is set, each `None` left as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<u64>,
    /// Memory plus swap in bytes; -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// Microseconds of CPU per period; -1 removes the quota.
    pub cpu_quota: Option<i64>,
    /// Microseconds.
    pub cpu_period: Option<u64>,
    /// CPUs the container may use, as `0-2,4`.
    pub cpuset_cpus: Option<String>,
    /// -1 for unlimited.
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u64>,
}

/// Resource usage of the named containers, or of every running one in the namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsRequest {
    pub namespace: String,
    /// Empty for every running or paused container.
    pub ids: Vec<String>,
}

/// Ask the daemon for its telemetry: start times, counters and gauges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsRequest {}

macro_rules! request_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Request {
            fn from(r: $ty) -> Self {
                Request::$variant(r)
            }
        })*
    };
}

request_from!(
    Start(StartRequest),
    Kill(KillRequest),
    List(ListRequest),
    State(StateRequest),
    Subscribe(SubscribeRequest),
    Info(InfoRequest),
    Checkpoint(CheckpointRequest),
    ListCheckpoints(ListCheckpointsRequest),
    DeleteCheckpoint(DeleteCheckpointRequest),
    Wait(WaitRequest),
    Exec(ExecRequest),
    KillProcess(KillProcessRequest),
    Resize(ResizeRequest),
    Logs(LogsRequest),
    Pause(PauseRequest),
    Resume(ResumeRequest),
    Update(UpdateRequest),
    Stats(StatsRequest),
    Metrics(MetricsRequest),
    ImportImage(ImportRequest),
    ListImages(ListImagesRequest),
    RemoveImages(RemoveImagesRequest),
    InspectImage(InspectImageRequest),
    ExportImages(ExportImagesRequest),
    Prune(PruneRequest),
    ListSnapshots(ListSnapshotsRequest),
    RemoveSnapshot(RemoveSnapshotRequest),
    SnapshotUsage(SnapshotUsageRequest),
    PrepareSnapshot(PrepareSnapshotRequest),
    MountSnapshot(MountSnapshotRequest),
    UnmountSnapshot(UnmountSnapshotRequest),
    ListContent(ListContentRequest),
    Run(RunRequest),
    StartExisting(StartExistingRequest),
    Delete(DeleteRequest),
);

/// Not `Eq`: metrics carry floating-point rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Started(Started),
    /// The request was carried out and has nothing to return.
    Done,
    Containers(Vec<Container>),
    Container(Container),
    /// The connection is now an event stream: only [`Response::Event`] frames follow, with one
    /// [`Response::Live`] after a replay and a final [`Response::Lagged`] if it falls behind.
    Subscribed,
    Event(Event),
    Info(DaemonInfo),
    Error(ErrorResponse),
    Checkpoints(Vec<CheckpointInfo>),
    /// On an event stream: the replay has ended, the events that follow are live.
    Live,
    /// On an event stream, its last frame: the subscriber fell behind and was dropped.
    Lagged(Lagged),
    /// The `exit` event a [`WaitRequest`] waited for.
    Exited(Event),
    Logs(LogFiles),
    Stats(Vec<ContainerStats>),
    /// The request was carried out, with something the caller should know: a signal to a
    /// paused container waits until it is resumed; `kill --all` thaws a paused container.
    Noted(String),
    Metrics(MetricsReport),
    /// Send the archive of an [`ImportRequest`].
    UploadReady(UploadReady),
    Imported(Vec<ImportedImage>),
    Images(Vec<Image>),
    ImageDetails(ImageDetails),
    /// A piece of an export; the last is followed by [`Response::Done`].
    Data(Bytes),
    /// The names an `images rm` removed.
    Removed(Vec<String>),
    Pruned(Pruned),
    Snapshots(Vec<Snapshot>),
    SnapshotUsage(Vec<SnapshotUsage>),
    /// The key of the snapshot a [`PrepareSnapshotRequest`] created.
    Prepared(String),
    Content(Vec<ContentBlob>),
}

/// Where a dropped subscriber stood: resubscribing with `Since::Seq(last_seq)` loses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagged {
    /// The sequence number of the last event the subscriber was sent (or, if none, the point its
    /// stream started after).
    pub last_seq: u64,
}

/// A container's log files. They outlive the container until a new start with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFiles {
    pub stdout: String,
    pub stderr: String,
    /// Whether the container still runs, so more may be written.
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub pid: u32,
}

/// A container as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub namespace: String,
    pub id: String,
    pub bundle: String,
    pub status: Status,
    /// The init process; absent while the container is starting.
    pub pid: Option<u32>,
    /// When the daemon accepted the start, in nanoseconds since the Unix epoch.
    pub created: u64,
    pub labels: BTreeMap<String, String>,
    pub stdout: String,
    pub stderr: String,
    /// Its processes: the init first (once it runs), then the exec processes by name.
    pub processes: Vec<Process>,
    /// The limits in force, read from its cgroup; only `state` fills it in, and only for a
    /// container that runs.
    /// Boxed: most containers on the wire (every list) carry none.
    pub limits: Option<Box<Limits>>,
    /// Its output that could not be written where it goes, since this daemon started.
    pub lost_output: LostOutput,
    /// Once it has stopped: how its init ended.
    pub exit: Option<ContainerExit>,
}

/// How a stopped container's init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerExit {
    /// The exit code, or 128 + the signal that killed it; `None` when it could not be known
    /// (it ended while no keeper ran to collect it).
    pub status: Option<i32>,
    /// When its exit was reported, in nanoseconds since the Unix epoch.
    pub time: u64,
    /// The kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

/// Writes of a container's output that failed (the FIFO's reader gone, the disk full), and the
/// bytes they carried: those bytes are in none of its files. A destination that is only slow
/// loses nothing; the container waits for it instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostOutput {
    pub writes: u64,
    pub bytes: u64,
}

/// A container's resource limits as its cgroup holds them; `None` is unlimited (or not kept
/// on this host).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory: Option<u64>,
    pub memory_swap: Option<u64>,
    /// cgroup v1; v2 has `cpu_weight` instead.
    pub cpu_shares: Option<u64>,
    pub cpu_weight: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub pids: Option<u64>,
    pub blkio_weight: Option<u64>,
}

/// One sample of a container's resource usage, read from its cgroup and network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub namespace: String,
    pub id: String,
    pub pid: u32,
    /// When the sample was read, in nanoseconds since the Unix epoch.
    pub read_at: u64,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub io: IoStats,
    pub network: NetworkStats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// CPU time of all the container's tasks, in nanoseconds.
    pub usage_ns: u64,
    /// Empty on cgroup v2.
    pub per_cpu_ns: Vec<u64>,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    pub usage: u64,
    pub limit: Option<u64>,
    pub max_usage: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file`).
    pub cache: u64,
    /// Anonymous memory (v1 `rss`, v2 `anon`).
    pub rss: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    pub current: u64,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoStats {
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// Every interface of the container's network namespace but loopback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// One process of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub name: String,
    /// Absent while `runc exec` is starting it.
    pub pid: Option<u32>,
    pub args: Vec<String>,
}

/// A checkpoint kept in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub name: String,
    pub options: CheckpointOptions,
    /// Whether the container was stopped when it was dumped.
    pub exit: bool,
    /// When it was taken, in nanoseconds since the Unix epoch.
    pub created: u64,
    /// A pre-dump (memory only, cannot be restored on its own).
    pub pre_dump: bool,
    /// The pre-dump it builds on.
    pub parent: Option<String>,
    /// Bytes in its directory, its parent's not included.
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The runtime is creating it; it has no pid yet.
    Starting,
    Running,
    /// Its init has exited; it is kept, with its exit, until it is deleted (or started again).
    Stopped,
    /// CRIU is dumping it; it cannot be signalled or checkpointed again until that is done.
    Checkpointing,
    /// Its processes are frozen (`runc pause`) until it is resumed.
    Paused,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Checkpointing => "checkpointing",
            Status::Paused => "paused",
        })
    }
}

/// Something that happened to a container, or in the image store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Assigned in emission order, starting at 1, and kept across daemon restarts by the journal.
    pub seq: u64,
    /// Nanoseconds since the Unix epoch.
    pub time: u64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub namespace: String,
    /// The container; for an image store event, the image name, the snapshot key or the blob
    /// digest it is about.
    pub id: String,
    /// The process inside the container: `init` for the container's main process; empty for an
    /// image store event.
    pub process: String,
    /// 0 for an image store event.
    pub pid: u32,
    /// The exit status, for `exit` events: the exit code, or 128 + the signal that killed it.
    pub status: Option<i32>,
    /// The container's labels; an `image-create` event's are the image's.
    pub labels: BTreeMap<String, String>,
    /// On `exit` events: the kernel's OOM killer killed a process of the container.
    #[serde(default)]
    pub oom_killed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    StartContainer,
    Exit,
    /// A checkpoint of the container was written.
    Checkpoint,
    Pause,
    Resume,
    Update,
    /// The kernel's OOM killer killed a process of the container; precedes its `exit`.
    Oom,
    /// An image was imported (`id` is its name).
    ImageCreate,
    /// An image name was removed.
    ImageDelete,
    /// A container's writable snapshot was created (`id` is its key).
    SnapshotPrepare,
    /// An image layer was unpacked into a committed snapshot (`id` is its chain ID).
    SnapshotCommit,
    SnapshotRemove,
    /// A blob left the content store (`id` is its digest).
    ContentDelete,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventKind::StartContainer => "start-container",
            EventKind::Exit => "exit",
            EventKind::Checkpoint => "checkpoint",
            EventKind::Pause => "pause",
            EventKind::Resume => "resume",
            EventKind::Update => "update",
            EventKind::Oom => "oom",
            EventKind::ImageCreate => "image-create",
            EventKind::ImageDelete => "image-delete",
            EventKind::SnapshotPrepare => "snapshot-prepare",
            EventKind::SnapshotCommit => "snapshot-commit",
            EventKind::SnapshotRemove => "snapshot-remove",
            EventKind::ContentDelete => "content-delete",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub version: String,
    pub pid: u32,
    pub uptime_s: u64,
    /// Containers in every namespace.
    pub containers: u64,
    pub subscribers: u64,
    /// Subscribers dropped because they fell behind.
    pub subscriber_drops: u64,
    /// The keeper: the process that reaps the containers and starts the daemon again if it dies.
    pub keeper_pid: u32,
    /// Containers this daemon took over from an earlier one when it started.
    pub recovered: u64,
}

/// The daemon's telemetry, in the layout of the original's metrics log: timers (a latency
/// distribution plus the rate of its events), meters (a count plus its rates) and gauges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    pub uptime_s: u64,
    pub timers: Vec<Timer>,
    pub meters: Vec<Meter>,
    pub gauges: Vec<Gauge>,
}

/// A latency distribution since the daemon started, in microseconds, and how often it was
/// recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub name: String,
    pub count: u64,
    pub min_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub stddev_us: f64,
    pub median_us: u64,
    pub p75_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub rates: Rates,
}

/// A count of things that happened since the daemon started, and how often they happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meter {
    pub name: String,
    pub count: u64,
    pub rates: Rates,
}

/// Events per second: exponentially weighted moving averages over 1, 5 and 15 minutes, and the
/// mean since the daemon started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub m1: f64,
    pub m5: f64,
    pub m15: f64,
    pub mean: f64,
}

/// A value as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gauge {
    pub name: String,
    pub value: i64,
}

/// A typed failure: `kind` for programs, `message` (the whole cause chain) for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub kind: ErrorKind,
    pub message: String,
}

impl ErrorResponse {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorResponse {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The request names something invalid (an id, a path, a signal).
    InvalidArgument,
    NotFound,
    AlreadyExists,
    /// The container is in a state that does not allow the request.
    FailedPrecondition,
    /// The OCI runtime refused or failed.
    Runtime,
    /// The daemon is shutting down.
    Unavailable,
    /// The frame could not be read or decoded.
    Protocol,
    Internal,
    /// The client is not root or a member of the daemon's `--group`.
    PermissionDenied,
    /// The command to run was not found in the container (a shell's 127).
    CommandNotFound,
    /// The command was found but cannot be executed (a shell's 126).
    CommandNotExecutable,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode, encode, HEADER_LEN};

    #[test]
    fn exec_requests_and_their_answers_round_trip() {
        let exec = Request::from(ExecRequest {
            namespace: "default".into(),
            id: "web".into(),
            process: "sh1".into(),
            args: vec!["sh".into(), "-c".into(), "exit 7".into()],
            env: vec!["A=1".into()],
            cwd: Some("/tmp".into()),
            uid: Some(1000),
            gid: None,
            stdio: Some(ExecStdio {
                stdin: Some("/tmp/f/stdin".into()),
                stdout: "/tmp/f/stdout".into(),
                stderr: None,
                terminal: Some(WindowSize { rows: 24, cols: 80 }),
            }),
        });
        let logs = Response::Logs(LogFiles {
            stdout: "/s/default/web/stdout.log".into(),
            stderr: "/s/default/web/stderr.log".into(),
            running: true,
        });
        let frame = encode(&exec).unwrap();
        assert_eq!(decode::<Request>(&frame[HEADER_LEN..]).unwrap(), exec);
        let frame = encode(&logs).unwrap();
        assert_eq!(decode::<Response>(&frame[HEADER_LEN..]).unwrap(), logs);
    }

    #[test]
    fn command_failures_have_kebab_case_kinds() {
        let json = serde_json::to_string(&ErrorKind::CommandNotFound);
        assert_eq!(json.unwrap(), "\"command-not-found\"");
        let json = serde_json::to_string(&ErrorKind::CommandNotExecutable);
        assert_eq!(json.unwrap(), "\"command-not-executable\"");
    }
}
