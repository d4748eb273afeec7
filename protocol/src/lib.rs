//! The wire contract between `ctrd` and its clients.
//!
//! Data only: typed requests, responses, errors and events ([`message`], the image store's in
//! [`images`]), the length-prefixed bincode framing ([`frame`]), the grammar of event, container
//! and image filters ([`filter`], shared so that `ctr` and the daemon parse alike), a small
//! blocking [`client`] used by `ctr`, the tests and the benchmark, and the [`latency`] recorder
//! whose summary a [`Timer`] carries. Nothing here depends on an async runtime, so any client
//! can link it.
//!
//! A connection opens with a [`Hello`] from each side. bincode does not describe itself, so a
//! version skew would otherwise decode as garbage; the handshake turns it into a clear error.

pub mod client;
pub mod filter;
pub mod frame;
pub mod images;
pub mod latency;
pub mod message;

pub use client::{Client, ClientError, EventStream, StreamItem};
pub use filter::{Filter, FilterError};
pub use frame::FrameError;
pub use images::*;
pub use latency::{Latency, LatencyRecorder};
pub use message::*;

/// Bumped whenever a wire type changes shape.
pub const PROTOCOL_VERSION: u32 = 6;

/// The largest frame payload this code carries, in either direction: the one limit that a
/// frame's length, what decoding it may allocate ([`frame::decode_limit`]) and the journal's
/// records all follow from. `ctrd --max-frame-size` may lower it, never raise it.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Largest frame either side accepts unless configured otherwise: all of [`MAX_FRAME`].
pub const DEFAULT_MAX_FRAME: usize = MAX_FRAME;

/// The namespace a request uses when the client names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The version of this crate, which every binary of the workspace shares.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
