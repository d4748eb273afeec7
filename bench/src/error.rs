//! The one error type of ctrd-bench, reported once by `main`.

use std::io;
use std::path::{Path, PathBuf};

use protocol::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("bundle {path}: {message}")]
    Bundle { path: PathBuf, message: String },
    #[error("runc {op} {id}: {message}")]
    Runc {
        op: &'static str,
        id: String,
        message: String,
    },
    #[error("{0}")]
    Setup(String),
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        what: String,
        waited: std::time::Duration,
    },
    #[error("{failed} of {count} starts failed; the first: {first}")]
    Starts {
        failed: usize,
        count: usize,
        first: String,
    },
}

impl BenchError {
    pub fn io(what: &'static str, path: &Path, source: io::Error) -> BenchError {
        BenchError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}
