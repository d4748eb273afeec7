//! The one error type of ctrd-bench, reported once by `main`.

use std::io;
use std::path::{Path, PathBuf};

use protocol::ClientError;
use runtime::RuntimeError;

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
    /// From the runtime adapter the baseline calls runc through.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
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

/// The run's failed starts (by container number) as one error naming the lowest-numbered, so
/// both modes report the same way; `Ok` when every start succeeded.
pub fn failed_starts<'a>(
    failures: impl IntoIterator<Item = (&'a usize, &'a String)>,
    ids: &[String],
) -> Result<(), BenchError> {
    let mut failed = 0;
    let mut first: Option<(usize, &String)> = None;
    for (&n, message) in failures {
        failed += 1;
        if first.is_none_or(|(m, _)| n < m) {
            first = Some((n, message));
        }
    }
    match first {
        None => Ok(()),
        Some((n, message)) => Err(BenchError::Starts {
            failed,
            count: ids.len(),
            first: format!("{}: {message}", ids[n]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn failed_starts_name_the_lowest_numbered_whatever_the_map() {
        let ids: Vec<String> = (0..5).map(|n| format!("c{n}")).collect();
        assert!(failed_starts(&HashMap::<usize, String>::new(), &ids).is_ok());
        let failures = HashMap::from([(3, "late".to_string()), (1, "early".to_string())]);
        let err = failed_starts(&failures, &ids).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 of 5 starts failed; the first: c1: early"
        );
    }
}
