//! The runtime's error type: each variant carries the id or path it is about.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidLimit {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid bundle {path}: {reason}")]
    InvalidBundle { path: PathBuf, reason: String },
    #[error("cannot run {binary}: {source}")]
    Spawn { binary: PathBuf, source: io::Error },
    /// runc ran and failed; `message` is what runc itself said.
    #[error("runc {op} {id}: {message}")]
    Failed {
        op: &'static str,
        id: String,
        message: String,
    },
    /// runc found the container in another state than the call needs (runc's "container not
    /// running", "container not paused"): it exited, or a kill thawed it, after the caller
    /// looked. A race with the container, not a fault of the runtime.
    #[error("runc {op} {id}: {message}")]
    WrongState {
        op: &'static str,
        id: String,
        message: String,
    },
    /// runc holds no such container (runc's "container does not exist"): it was deleted after
    /// the caller looked.
    #[error("runc {op} {id}: {message}")]
    NoContainer {
        op: &'static str,
        id: String,
        message: String,
    },
    #[error("runc {op} {id}: no answer after {after:?}; killed it")]
    TimedOut {
        op: &'static str,
        id: String,
        after: Duration,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("runc left an unreadable pid file {path}: {content:?}")]
    BadPidFile { path: PathBuf, content: String },
    /// `runc exec` could not find the command (a shell reports 127).
    #[error("runc exec {id}: {message}")]
    CommandNotFound { id: String, message: String },
    /// `runc exec` found the command but could not execute it (a shell reports 126).
    #[error("runc exec {id}: {message}")]
    CommandNotExecutable { id: String, message: String },
    #[error("invalid process for container {id}: {reason}")]
    InvalidProcess { id: String, reason: String },
    #[error("{failure}; cleaning up after it also failed: {cleanup}")]
    CleanupFailed {
        failure: Box<RuntimeError>,
        cleanup: Box<RuntimeError>,
    },
    #[error("checkpoint \"{name}\" already exists at {path}")]
    CheckpointExists { name: String, path: PathBuf },
    #[error("checkpoint \"{name}\" not found at {path}")]
    NoCheckpoint { name: String, path: PathBuf },
    #[error("unreadable checkpoint description {path}: {message}")]
    BadCheckpoint { path: PathBuf, message: String },
    #[error(
        "checkpoint \"{name}\" is a pre-dump, which holds memory only: restore the checkpoint \
         taken with --parent {name} instead"
    )]
    PreDumpRestore { name: String },
    #[error("checkpoint \"{name}\" is not a pre-dump, so no checkpoint can build on it")]
    NotAPreDump { name: String },
    #[error("checkpoint \"{name}\" is the parent of checkpoint \"{child}\": delete that first")]
    CheckpointInUse { name: String, child: String },
    /// `criu check --feature mem_dirty_track` fails: no soft-dirty bits to track pages with.
    #[error(
        "this kernel cannot track which pages a process writes (soft-dirty bits, \
         CONFIG_MEM_SOFT_DIRTY), which a pre-dump needs: take a plain checkpoint instead"
    )]
    NoDirtyTracking,
}

impl RuntimeError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RuntimeError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
