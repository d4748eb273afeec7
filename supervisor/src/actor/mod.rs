//! The supervisor actor: the one owner of all container state.
//!
//! Every handler runs in microseconds. runc calls go to the workers as [`jobs::Job`]s and come
//! back as messages ([`jobs::StartDone`], [`jobs::Deleted`], ...); exits come from the keeper as
//! [`Exit`]. Events are emitted here, in the order the actor decides them: a container's
//! `start-container` always precedes its `exit`, and its `exit` is emitted only once runc has
//! deleted it; the container is then stopped, and kept until it is deleted. A container's `oom`
//! events precede its `exit`: the worker that deletes it reads the cgroup's OOM kill counter
//! first. Each exec's exit is reported before the init's. Each event is numbered here and handed
//! to the [`Journal`](crate::journal::Journal), whose own thread writes it to disk and then
//! delivers it to subscribers.
//!
//! Where each behaviour lives:
//! - [`supervisor`]: the state, the actor's start, numbering and emitting events;
//! - [`lifecycle`]: [`Start`], [`StartExisting`], the keeper's [`Exit`], the cleanup after it,
//!   [`Signal`];
//! - [`delete`]: [`Delete`], and deleting a container started with `--rm` once it stops;
//! - [`exec`]: [`AddProcess`] and its result, [`exec::ExecExit`], [`KillProcess`], [`Resize`];
//! - [`checkpoints`]: [`Checkpoint`], [`ListCheckpoints`], [`DeleteCheckpoint`];
//! - [`control`]: [`Pause`], [`Resume`], [`Update`], the OOM notifier's [`Oom`];
//! - [`queries`]: [`List`], [`State`], [`Logs`], [`Stats`], [`Info`], [`TakeMetrics`],
//!   the state dump's [`Dump`](crate::dump::Dump), [`Subscribe`], [`Wait`];
//! - [`stopping`]: [`Shutdown`], [`WaitEmpty`], [`HandOver`], [`Settled`], [`Flushed`],
//!   [`CloseSubscriptions`], and why new work is refused;
//! - [`images`]: [`StoreEvents`], the events of image store operations the server ran;
//! - [`adopt`]: the containers an earlier daemon left, taken over at start, and the keeper's
//!   [`KeeperSynced`] that settles the exits recovery could not find;
//! - [`errors`]: the one mapping from a runtime error to the client's error kind, and the
//!   checks of a request's names and paths;
//! - [`jobs`] and [`keeper`]: the actor's two edges, the worker pool and the keeper, each
//!   behind a trait a test implements to drive the actor in-process (`tests.rs`).

mod adopt;
mod checkpoints;
mod control;
mod delete;
mod errors;
mod exec;
mod images;
mod jobs;
mod keeper;
mod lifecycle;
mod queries;
mod stopping;
mod supervisor;
#[cfg(test)]
mod tests;

pub use adopt::KeeperSynced;
pub use checkpoints::{Checkpoint, DeleteCheckpoint, ListCheckpoints};
pub use control::{Pause, Resume, Update};
pub use delete::Delete;
pub use exec::{AddProcess, KillProcess, Resize};
pub use images::{StoreEvent, StoreEvents};
pub use lifecycle::{Exit, Signal, Start, StartExisting};
pub use queries::{Info, List, Logs, State, Stats, StatsTarget, Subscribe, TakeMetrics, Wait};
pub use stopping::{CloseSubscriptions, Flushed, HandOver, Settled, Shutdown, WaitEmpty};
pub use supervisor::{now_ns, Supervisor};
