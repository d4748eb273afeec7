//! The one error type of ctr: everything a command can fail with, reported once by `main`.

use std::io;
use std::path::PathBuf;

use protocol::{ClientError, ErrorKind, FilterError};

/// The exit code of ctr's own failures, usage errors included: docker's 125, so that a script can
/// tell them from the status of a process that ctr passes on (`containers wait`, attached `start`
/// and `exec`), which is often 1 and never 125 unless the process chose it.
pub const FAILURE: u8 = 125;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon refused, or could not be reached or understood.
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("invalid label {0:?}: expected KEY=VALUE")]
    Label(String),
    #[error("invalid label {0:?}: the key is empty")]
    EmptyLabelKey(String),
    #[error("signal {0} is out of range: expected 1 to 64")]
    SignalRange(i64),
    #[error(
        "unknown signal {0:?}: expected a number from 1 to 64 or a name such as TERM or SIGKILL"
    )]
    UnknownSignal(String),
    #[error(
        "invalid {flag} {value:?}: expected bytes, optionally with a suffix k, M, G or T (512M)"
    )]
    Size { flag: &'static str, value: String },
    #[error("invalid {flag} {value:?}: expected {expected}")]
    Number {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("nothing to update: give at least one limit, such as --memory-limit 512M")]
    NothingToUpdate,
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(
        "invalid time {0:?}: expected an RFC 3339 time such as 2026-11-23T07:19:24Z or a \
         duration ago such as 10m"
    )]
    Time(String),
    #[error("cannot determine the current directory to resolve relative paths: {0}")]
    Cwd(io::Error),
    #[error("path {} is not valid UTF-8", .0.display())]
    NonUtf8Path(PathBuf),
    #[error("cannot write man pages to {}: {source}", .dir.display())]
    ManPages { dir: PathBuf, source: io::Error },
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("--tty needs --attach: a terminal is only of use to an attached client")]
    TtyNeedsAttach,
    #[error("{op} fifo {path}: {source}")]
    Fifo {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the container exited, but its snapshot {key} may not be removed: {why}")]
    NotRemoved { key: String, why: String },
    #[error("ctrd closed the event stream before process \"{name}\" of container \"{id}\" exited")]
    LostExit { id: String, name: String },
    #[error(
        "process \"{name}\" of container \"{id}\" exited with an unknown status: it ended \
         while ctrd's keeper was not running to collect it (see ctrd's log)"
    )]
    UnknownStatus { id: String, name: String },
    #[error("a new container needs a BUNDLE")]
    NoBundle,
    /// Each failure was reported on its own line already.
    #[error("{failed} of {of} containers were not deleted")]
    NotDeleted { failed: usize, of: usize },
    #[error("cannot set up the terminal: {0}")]
    Terminal(io::Error),
    #[error("cannot set up signal forwarding: {0}")]
    Signals(io::Error),
    #[error("no logs for container \"{0}\"")]
    NoLogs(String),
    #[error("container \"{id}\" does not log: its output goes to {path}")]
    NotLogged { id: String, path: PathBuf },
    #[error("cannot {op} {}: {source}", .path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot read log {path}: {source}")]
    Log { path: PathBuf, source: io::Error },
    /// Writing to stdout failed; a closed pipe is not a failure of ctr (see `is_closed_stdout`).
    #[error("cannot write to stdout: {0}")]
    Output(#[from] io::Error),
}

impl Error {
    /// Whoever read our output has gone away (`ctr events | head -1`); that ends the command
    /// quietly instead of failing it.
    pub fn is_closed_stdout(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// ctr's exit code for this failure: a command that could not be run in a container exits as
    /// a shell does (127 not found, 126 not executable), anything else [`FAILURE`].
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Client(e) => match e.kind() {
                Some(ErrorKind::CommandNotFound) => 127,
                Some(ErrorKind::CommandNotExecutable) => 126,
                _ => FAILURE,
            },
            _ => FAILURE,
        }
    }
}
