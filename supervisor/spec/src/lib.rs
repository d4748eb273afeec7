//! The OCI runtime spec (`config.json`) of a container run from an image, built in the typed
//! structures of the `oci-spec` crate: [`defaults`] is containerd's default for Linux, [`image`]
//! lays the image's config and the caller's [`RunOptions`] on top of it, [`user`] resolves a user
//! name through the image's own `/etc/passwd` and `/etc/group`, which [`confined`] reads without
//! ever leaving the rootfs.

pub mod confined;
pub mod defaults;
mod error;
pub mod image;
pub mod user;

use std::collections::BTreeMap;

pub use error::SpecError;
pub use image::{generate, STOP_SIGNAL_ANNOTATION};
pub use oci_spec::image::ImageConfiguration;
pub use oci_spec::runtime::Spec;

/// The network a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Its own network namespace, with only loopback (runc brings `lo` up in it).
    #[default]
    Own,
    /// The host's network namespace.
    Host,
}

/// What `ctr run` asks for beyond the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Replaces the image's Cmd (the Entrypoint stays); `None` keeps it.
    pub command: Option<Vec<String>>,
    /// `KEY=VALUE`, each replacing the image's variable of that name.
    pub env: Vec<String>,
    /// Replaces the image's WorkingDir; absolute.
    pub cwd: Option<String>,
    /// Replaces the image's User: `user[:group]`, each a name or a number.
    pub user: Option<String>,
    /// Added to the image's labels (as annotations), replacing those of the same key.
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    /// The rootfs is mounted read-only.
    pub read_only: bool,
    pub network: Network,
    /// Bytes.
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
    /// The process gets a terminal.
    pub terminal: bool,
}
