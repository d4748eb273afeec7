//! The worker pool: threads that make the slow runtime calls so the supervisor actor never blocks.
//!
//! - [`pool`]: the threads and their two queues;
//! - [`start`]: what a worker does to start one container;
//! - [`update`]: a limits update that puts back what it changed when runc fails part-way.

pub mod pool;
pub mod start;
pub mod update;

pub use pool::{Pool, Priority};
pub use start::{start_container, StartJob, Started};
pub use update::update_container;
