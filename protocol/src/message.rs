//! Requests, responses, events and errors as they travel on the socket.
//!
//! Enums serialize as kebab-case strings in JSON (what `ctr --format json` prints); bincode
//! ignores the names and encodes the variant index.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

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
    Metrics(MetricsRequest),
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRequest {
    pub namespace: String,
    pub id: String,
}

/// Turn the connection into a stream of the namespace's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeRequest {
    pub namespace: String,
}

/// Ask the daemon about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoRequest {}

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
    Metrics(MetricsRequest),
);

/// Not `Eq`: metrics carry floating-point rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Started(Started),
    /// The request was carried out and has nothing to return.
    Done,
    Containers(Vec<Container>),
    Container(Container),
    /// The connection is now an event stream: only [`Response::Event`] frames follow.
    Subscribed,
    Event(Event),
    Info(DaemonInfo),
    Error(ErrorResponse),
    Metrics(MetricsReport),
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The runtime is creating it; it has no pid yet.
    Starting,
    Running,
    /// Its init has exited and the runtime is cleaning up; the id is still taken.
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Stopped => "stopped",
        })
    }
}

/// Something that happened to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Nanoseconds since the Unix epoch.
    pub time: u64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub namespace: String,
    pub id: String,
    /// The process inside the container: `init` for the container's main process.
    pub process: String,
    pub pid: u32,
    /// The exit status, for `exit` events: the exit code, or 128 + the signal that killed it.
    pub status: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    StartContainer,
    Exit,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventKind::StartContainer => "start-container",
            EventKind::Exit => "exit",
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
}
