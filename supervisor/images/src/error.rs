//! The image store's one error type. Each variant names the blob, image, snapshot, archive entry
//! or path it is about, so the message alone tells a user what to fix.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;

/// Everything an [`ImageStore`](crate::ImageStore) operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system call failed; `path` is the file it was about.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Another process already owns this store root.
    #[error("image store {root} is in use by another process (lock file {root}/lock is held)")]
    Locked { root: PathBuf },

    /// The embedded metadata database failed.
    #[error("image metadata database: {0}")]
    Metadata(#[from] redb::Error),

    /// A metadata record could not be decoded (a newer or damaged database).
    #[error("image metadata record {key:?} is unreadable: {source}")]
    Record {
        key: String,
        #[source]
        source: serde_json::Error,
    },

    /// A string that should be a `sha256:<64 hex>` digest is not one.
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDigest(String),

    /// A blob's content does not hash to the digest it was announced with.
    #[error("blob {expected} is corrupt: its content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },

    /// A blob is not the size it was announced with.
    #[error("blob {digest} has {actual} bytes, but {expected} were announced")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },

    /// A manifest, index or config names a blob the archive does not contain.
    #[error("blob {digest} (referenced by {referenced_by}) is not in the archive or the store")]
    MissingBlob {
        digest: Digest,
        referenced_by: String,
    },

    /// A descriptor's media type is not what that place needs.
    #[error("{what} {digest} has media type {media_type:?}, expected {expected}")]
    WrongMediaType {
        what: &'static str,
        digest: Digest,
        media_type: String,
        expected: &'static str,
    },

    /// A manifest, index or config is not valid JSON of its kind.
    #[error("{what} {digest} is malformed: {reason}")]
    Malformed {
        what: &'static str,
        digest: Digest,
        reason: String,
    },

    /// The archive is neither an OCI image layout nor a `docker save` archive, or breaks their rules.
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),

    /// An image in the archive has no name and none was given.
    #[error("image {digest} in the archive has no name; give one with the import's name option")]
    Unnamed { digest: Digest },

    /// A name was given, but the archive holds several images.
    #[error("a name was given, but the archive holds {count} images; import it without a name")]
    AmbiguousName { count: usize },

    /// An image name or namespace is empty or has characters the store does not allow.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },

    /// An index has no manifest for the wanted platform.
    #[error("image {image} has no manifest for platform {wanted} (it has: {available})")]
    NoMatchingPlatform {
        image: String,
        wanted: String,
        available: String,
    },

    /// A layer's tar stream is broken (truncated compression, bad header, ...).
    #[error("layer {layer}: {reason}")]
    LayerCorrupt { layer: Digest, reason: String },

    /// Writing a layer's entry into its snapshot failed (a full disk, a file system limit).
    #[error("layer {layer}: entry {entry:?}: {op}: {source}")]
    UnpackIo {
        layer: Digest,
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// A layer's uncompressed content does not match the config's `rootfs.diff_ids`.
    #[error("layer {layer} uncompresses to {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },

    /// A tar entry would write outside its snapshot, or through a symlink.
    #[error("layer {layer}: entry {entry:?} refused: {reason}")]
    UnsafeEntry {
        layer: Digest,
        entry: String,
        reason: String,
    },

    /// No image by that name in that namespace.
    #[error("image {name} not found in namespace {namespace}")]
    ImageNotFound { namespace: String, name: String },

    /// No snapshot with that key.
    #[error("snapshot {key} not found")]
    SnapshotNotFound { key: String },

    /// A snapshot is still needed and was not removed.
    #[error("snapshot {key} is in use: {reason}")]
    SnapshotInUse { key: String, reason: String },

    /// A container already has an active snapshot.
    #[error("container {container} already has an active snapshot; release it first")]
    SnapshotExists { container: String },

    /// Mounting or unmounting a container's rootfs failed.
    #[error("{op} {target}: {source}")]
    Mount {
        op: &'static str,
        target: PathBuf,
        #[source]
        source: nix::Error,
    },

    /// The overlay mount options do not fit in one page (too many layers for these paths).
    #[error("overlay options for {target} are {len} bytes, over the kernel's {max}-byte limit (image has too many layers for store root {root})")]
    MountOptionsTooLong {
        target: PathBuf,
        root: PathBuf,
        len: usize,
        max: usize,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the operation and path to an `io::Error`; used as `.map_err(io_err("create", &path))`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}

/// Folds redb's many error types into [`Error::Metadata`].
pub(crate) fn db_err(e: impl Into<redb::Error>) -> Error {
    Error::Metadata(e.into())
}
