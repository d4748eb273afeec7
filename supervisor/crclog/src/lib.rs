//! CRC32-framed records for append-only logs, the framing the event journal and the keeper's
//! exit log share, and the rule both read them back by.
//!
//! A log is records appended back to back; its owner writes each batch with one `write` and
//! makes it durable with one `fdatasync`. A crash can still leave the last record half written,
//! and a disk can hand back a flipped bit, so every record carries a CRC32 (IEEE) of its
//! contents, and reading a log stops at the first record that is cut short, claims an impossible
//! length or fails its checksum: the records before it are the log, the rest is a torn tail.
//! Nothing on disk makes a reader panic, or allocate more than the largest record it accepts.
//!
//! Records come in two layouts, all integers little-endian:
//!
//! ```text
//! framed := len: u32 | crc32(payload): u32 | payload (len bytes)    any size: the journal's events
//! fixed  := body (N - 4 bytes) | crc32(body): u32                     N bytes: the keeper's exits
//! ```
//!
//! They differ because the two logs were written before they shared this code, and a new binary
//! must read what an older one left (an upgrade re-executes the new binary over the same
//! files), so both are kept byte for byte.
//!
//! This crate does no I/O of its own beyond reading from what it is given, and depends on
//! nothing but the checksum, so the single-threaded keeper can use it.

pub mod fixed;
pub mod framed;
