//! The worker pool: threads that make the slow runtime calls so the supervisor actor never blocks.
//!
//! - [`pool`]: the threads and their two queues;
//! - [`start`]: what a worker does to start (or restore) one container;
//! - [`relay`]: the pipes a detached container writes its output into, copied to its files;
//! - [`checkpoint`]: what a worker does to checkpoint a container, list or delete checkpoints;
//! - [`exec`]: what a worker does to start one more process in a running container;
//! - [`stdio`]: opening stdio files and client FIFOs without blocking;
//! - [`console`]: the console socket and the terminal relay.
//! - [`update`]: a limits update that puts back what it changed when runc fails part-way.

pub mod checkpoint;
pub mod console;
pub mod exec;
pub mod pool;
pub mod relay;
pub mod start;
pub mod stdio;
pub mod update;

pub use checkpoint::{checkpoint_container, CheckpointJob};

pub use exec::{exec_process, ExecIo, ExecJob, Execed};
pub use pool::{Pool, Priority};
pub use relay::{Drain, Loss, Relay, RelayPipes};
pub use start::{start_container, OutputKeeper, StartJob, StartedContainer};
pub use update::update_container;
