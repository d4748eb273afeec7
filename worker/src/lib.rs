//! The worker pool: threads that make the slow runtime calls so the supervisor actor never blocks.
//!
//! - [`pool`]: the threads and their two queues;
//! - [`start`]: what a worker does to start one container.

pub mod pool;
pub mod start;

pub use pool::{Pool, Priority};
pub use start::{start_container, StartJob, Started};
