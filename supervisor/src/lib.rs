//! `ctrd`: the container supervisor daemon.
//!
//! One `ctrd` is two processes. The one started first becomes the keeper (the `keeper` crate beside
//! this one, with no async runtime): the containers'
//! subreaper, which records every exit and starts the daemon proper as its child (again, if it
//! dies; anew, for an upgrade). The daemon (the actor, the socket server, the workers) knows it is
//! one by the socketpair the keeper hands it, and takes over what an earlier daemon left
//! ([`recovery`]) before it serves. `main.rs` parses the command line and picks the process;
//! [`daemon`] starts and stops each, as named steps.
//!
//! # Layout
//!
//! - [`daemon`]: start-up and shutdown of both processes, in order ([`keep`], [`Daemon`]);
//! - [`cli`], [`config`]: the command line and the config file; [`commands`]: `ctrd config`,
//!   `ctrd upgrade` and `ctrd man`;
//! - [`keeper_link`]: the daemon's end of the keeper's socketpair (the keeper process itself,
//!   reaping, the exit log and the re-exec for an upgrade, is the `keeper` crate);
//! - [`recovery`]: taking over the containers of an earlier daemon, before the actor starts;
//! - [`actor`]: the actor, the one owner of all container state, a file per concern; [`container`]: a container
//!   as it owns it, and its phases;
//! - [`server`]: the socket server: connections, their framing and limits, each request taken
//!   to the actor, event streams;
//! - [`access`], [`socket`]: who may connect; binding the socket;
//! - [`journal`]: the event journal on disk; [`subscribers`]: fan-out of its events;
//! - [`oom`]: the OOM notifier thread; [`stats`]: containers' cgroup stats, read off the actor;
//! - [`metrics`]: telemetry, its log line and Prometheus; [`dump`]: the state dump on SIGUSR1;
//! - [`notify`]: readiness for systemd; [`priority`]: the nice value of the serving threads;
//! - [`upgrade`]: `ctrd upgrade`.

// The modules stay private, so the dead-code lint still covers them as it did in the binary;
// these docs are for the source's readers (`cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]

mod access;
mod actor;
pub mod cli;
pub mod commands;
pub mod config;
mod container;
mod daemon;
mod dump;
mod journal;
mod keeper_link;
mod metrics;
mod notify;
mod oom;
mod priority;
mod recovery;
mod server;
mod socket;
mod stats;
mod subscribers;
mod upgrade;

pub use daemon::{keep, Daemon, DaemonError};
pub use keeper_link::KeeperLink;
