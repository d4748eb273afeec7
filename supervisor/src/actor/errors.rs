//! Every error the actor answers with: the one mapping from a [`RuntimeError`] to the protocol's
//! [`ErrorKind`], and the checks of a request's names, paths and signals that come before any
//! work is queued.
//!
//! A client (and `ctr`'s exit code) sees the same kind for the same runtime failure whichever
//! request met it: a start, an exec, a checkpoint, a pause or an update.

use std::fmt;
use std::path::Path;

use protocol::{ErrorKind, ErrorResponse};
use runtime::{ContainerId, Namespace, ProcessName, RuntimeError};

use crate::container::Key;

/// The kind of error a client is told for a runtime failure.
pub fn error_kind(err: &RuntimeError) -> ErrorKind {
    match err {
        RuntimeError::InvalidName { .. }
        | RuntimeError::InvalidLimit { .. }
        | RuntimeError::InvalidBundle { .. }
        | RuntimeError::InvalidProcess { .. } => ErrorKind::InvalidArgument,
        RuntimeError::CommandNotFound { .. } => ErrorKind::CommandNotFound,
        RuntimeError::CommandNotExecutable { .. } => ErrorKind::CommandNotExecutable,
        RuntimeError::CheckpointExists { .. } => ErrorKind::AlreadyExists,
        RuntimeError::NoCheckpoint { .. } | RuntimeError::NoContainer { .. } => ErrorKind::NotFound,
        // The request raced an exit or a kill: the container is no longer in the state the
        // actor saw when it took the request.
        RuntimeError::WrongState { .. } => ErrorKind::FailedPrecondition,
        RuntimeError::PreDumpRestore { .. }
        | RuntimeError::NotAPreDump { .. }
        | RuntimeError::CheckpointInUse { .. }
        | RuntimeError::NoDirtyTracking => ErrorKind::FailedPrecondition,
        RuntimeError::Spawn { .. }
        | RuntimeError::Failed { .. }
        | RuntimeError::TimedOut { .. }
        | RuntimeError::Io { .. }
        | RuntimeError::BadPidFile { .. }
        | RuntimeError::CleanupFailed { .. }
        | RuntimeError::BadCheckpoint { .. } => ErrorKind::Runtime,
    }
}

/// A runtime failure as the client is told it: its kind, and `what` failed with the cause.
pub fn runtime_error(what: impl fmt::Display, err: &RuntimeError) -> ErrorResponse {
    ErrorResponse::new(error_kind(err), format!("{what}: {err}"))
}

/// The worker pool has stopped: nothing more can be run.
pub fn pool_gone() -> ErrorResponse {
    ErrorResponse::new(ErrorKind::Internal, "the worker pool is gone")
}

/// A bad argument, in the client's words.
pub fn invalid(message: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::InvalidArgument, message)
}

pub fn not_found(id: &ContainerId) -> ErrorResponse {
    ErrorResponse::new(ErrorKind::NotFound, format!("container \"{id}\" not found"))
}

/// The container is in no state for the request; `what` says which.
pub fn container_state(id: &impl fmt::Display, what: &str) -> ErrorResponse {
    ErrorResponse::new(
        ErrorKind::FailedPrecondition,
        format!("container \"{id}\" is {what}"),
    )
}

/// One process of the container is in no state for the request; `what` says which.
pub fn process_state(
    id: &impl fmt::Display,
    name: &(impl fmt::Display + ?Sized),
    what: &str,
) -> ErrorResponse {
    ErrorResponse::new(
        ErrorKind::FailedPrecondition,
        format!("process \"{name}\" of container \"{id}\" is {what}"),
    )
}

/// The container a request names, with both names checked.
pub fn key(namespace: &str, id: &str) -> Result<Key, ErrorResponse> {
    let namespace = Namespace::new(namespace).map_err(|e| invalid(e.to_string()))?;
    let id = ContainerId::new(id).map_err(|e| invalid(e.to_string()))?;
    Ok((namespace, id))
}

/// An exec's name, which must be given.
pub fn process_name(name: &str) -> Result<ProcessName, ErrorResponse> {
    if name.is_empty() {
        return Err(invalid("a process name is required (--pid NAME)"));
    }
    ProcessName::new(name).map_err(|e| invalid(e.to_string()))
}

/// Paths a client hands over are resolved by the daemon, whose working directory is not the
/// client's: only absolute ones mean the same to both.
pub fn absolute(what: &str, path: &str) -> Result<(), ErrorResponse> {
    if Path::new(path).is_absolute() {
        return Ok(());
    }
    Err(invalid(format!("{what} path {path:?} must be absolute")))
}

pub fn valid_signal(signal: i32) -> Result<i32, ErrorResponse> {
    if (1..=64).contains(&signal) {
        return Ok(signal);
    }
    Err(invalid(format!("invalid signal {signal}: must be 1 to 64")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_failure_has_the_same_kind_whichever_request_met_it() {
        let not_found = RuntimeError::CommandNotFound {
            id: "c".into(),
            message: "exec: \"nope\": executable file not found".into(),
        };
        assert_eq!(error_kind(&not_found), ErrorKind::CommandNotFound);
        let response = runtime_error("cannot exec process \"p\" in container \"c\"", &not_found);
        assert_eq!(response.kind, ErrorKind::CommandNotFound);
        assert!(response.message.starts_with("cannot exec process \"p\""));
        let exists = RuntimeError::CheckpointExists {
            name: "cp".into(),
            path: "/b/checkpoints/cp".into(),
        };
        assert_eq!(error_kind(&exists), ErrorKind::AlreadyExists);
        let limit = RuntimeError::InvalidLimit {
            what: "memory",
            value: "-2".into(),
            reason: "must be positive",
        };
        assert_eq!(error_kind(&limit), ErrorKind::InvalidArgument);
    }
}
