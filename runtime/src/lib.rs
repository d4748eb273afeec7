//! The OCI runtime adapter: everything ctrd knows about `runc`.
//!
//! - [`id`]: container ids and namespaces, validated with runc's own rule before they touch a path;
//! - [`bundle`]: a validated bundle directory;
//! - [`layout`]: where the daemon keeps things under its state dir;
//! - [`runner`]: the seam through which runc processes are spawned and waited on, each in its own
//!   process group, killed whole at a deadline;
//! - [`runc`]: run, kill, delete, list, pause, resume and update, with runc's own error messages;
//! - [`resources`]: a checked change of a container's limits for `runc update`;
//! - [`pidfd`]: signals that can never hit a recycled pid, on processes checked to be the ones runc
//!   started;
//! - [`cgroup`]: a container's cgroup (v1 or v2): stats, limits and OOM kills from its files;
//! - [`netdev`]: network counters of a container's namespace;
//! - [`checkpoint`]: checkpoints kept in a bundle, and dumping and restoring through runc + CRIU.
//! - [`criu_hook`]: the action script CRIU runs in those calls, to give a restored container its
//!   network back.
//! - [`process`]: the OCI process spec of an exec, on top of the bundle's own.
//! - [`record`]: a container's record on disk, for a restarted daemon to take it over;
//! - [`procstat`]: a process's start time, which tells it from another that got its pid.

pub mod bundle;
pub mod cgroup;
pub mod checkpoint;
pub mod criu_hook;
pub mod error;
pub mod id;
pub mod layout;
pub mod netdev;
pub mod pidfd;
pub mod process;
pub mod procstat;
pub mod record;
pub mod resources;
pub mod runc;
pub mod runner;

pub use bundle::Bundle;
pub use cgroup::Cgroup;
pub use checkpoint::{CheckpointMeta, CheckpointOptions, ListedCheckpoint, RestoreSpec};
pub use error::RuntimeError;
pub use id::{CheckpointName, ContainerId, Namespace, ProcessName};
pub use layout::StateDir;
pub use pidfd::{Held, KnownStart, PidFd};
pub use process::ExecProcess;
pub use procstat::ProcStat;
pub use record::{ContainerRecord, ExitRecord, ProcessRecord};
pub use resources::ResourceUpdate;
pub use runc::{ExecSpec, Launched, Runc, RuncContainer, StartSpec};
pub use runner::{DirectRunner, ExitStatus, ProcessRunner, RunError};
