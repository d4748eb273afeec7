//! The runtime's error type: each variant carries the id or path it is about.

use std::io;
use std::path::PathBuf;

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
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("runc left an unreadable pid file {path}: {content:?}")]
    BadPidFile { path: PathBuf, content: String },
    #[error("{failure}; cleaning up after it also failed: {cleanup}")]
    CleanupFailed {
        failure: Box<RuntimeError>,
        cleanup: Box<RuntimeError>,
    },
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
