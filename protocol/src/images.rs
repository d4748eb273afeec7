//! Requests and answers about the image store: images, their snapshots and content blobs.
//!
//! Two requests carry a byte stream besides their one frame. An import is answered first with
//! [`UploadReady`], then the client sends the archive as [`UploadFrame`]s and the daemon answers
//! once with [`crate::Response::Imported`] or an error. An export is answered with
//! [`crate::Response::Data`] frames and then [`crate::Response::Done`] (or an error, after which
//! what was received is incomplete).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Bytes carried as one length-prefixed run: a plain `Vec<u8>` would go through serde one
/// element at a time, which is slow for the megabytes of an archive.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// Import an OCI image layout or `docker save` archive (plain, gzip or zstd); the archive follows
/// as [`UploadFrame`]s once the daemon answers [`UploadReady`]. All of the archive's images are
/// imported, or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRequest {
    pub namespace: String,
    /// The name of the archive's one image, instead of (or where there is no) name inside it.
    pub name: Option<String>,
    pub platform: PlatformChoice,
    /// Set on every imported image.
    pub labels: BTreeMap<String, String>,
}

/// Which manifests of a multi-platform image an import takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlatformChoice {
    /// The daemon's own platform.
    Host,
    /// `os/arch` or `os/arch/variant`.
    Only(String),
    All,
}

/// The daemon is ready for the archive: send it in [`UploadFrame::Data`] frames of at most
/// `chunk_size` bytes (so each frame fits the daemon's frame limit), then [`UploadFrame::End`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadReady {
    pub chunk_size: u32,
}

/// One frame of an upload. A connection that closes before `End` abandons the import, and the
/// store is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadFrame {
    Data(Bytes),
    End,
}

/// One image an import recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedImage {
    pub name: String,
    /// The digest of the index or manifest the name points at.
    pub digest: String,
}

/// The namespace's images matching any of `filters` ([`crate::filter`]; all when empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListImagesRequest {
    pub namespace: String,
    pub filters: Vec<String>,
}

/// Remove image names; refused as a whole if any is unknown. Blobs and snapshots stay until a
/// prune finds nothing uses them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveImagesRequest {
    pub namespace: String,
    pub names: Vec<String>,
}

/// An image's manifests and configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectImageRequest {
    pub namespace: String,
    pub name: String,
}

/// Write the named images as one OCI image layout archive, streamed back as data frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportImagesRequest {
    pub namespace: String,
    pub names: Vec<String>,
}

/// Remove every blob and committed snapshot nothing uses (in any namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneRequest {
    /// Where the prune's events go.
    pub namespace: String,
}

/// The committed snapshots (shared by every namespace) and the namespace's active ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSnapshotsRequest {
    pub namespace: String,
    pub filters: Vec<String>,
}

/// Remove a committed snapshot nothing sits on, or one of the namespace's active snapshots
/// (by its key, `<namespace>/<container>`, or the container id alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveSnapshotRequest {
    pub namespace: String,
    pub key: String,
}

/// Disk usage of the named snapshots' own layers; empty `keys`: every one `ls` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUsageRequest {
    pub namespace: String,
    pub keys: Vec<String>,
}

/// Create container `id`'s writable snapshot on top of `image`; answered with its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareSnapshotRequest {
    pub namespace: String,
    pub id: String,
    pub image: String,
}

/// Mount container `id`'s snapshot at `target`, an existing absolute directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSnapshotRequest {
    pub namespace: String,
    pub id: String,
    pub target: String,
}

/// Unmount a snapshot mounted at `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmountSnapshotRequest {
    pub target: String,
}

/// The content store's blobs matching any of `filters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListContentRequest {
    pub filters: Vec<String>,
}

/// An image as `images ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub name: String,
    /// The media type of what the name points at: an index or a manifest.
    pub media_type: String,
    pub digest: String,
    /// Bytes of every blob the image keeps (compressed layers, manifests, configs).
    pub size: u64,
    /// `os/arch[/variant]` of each imported manifest.
    pub platforms: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Nanoseconds since the Unix epoch.
    pub created: u64,
}

/// An image's manifests and configs; the documents travel as their JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDetails {
    pub name: String,
    pub digest: String,
    pub manifests: Vec<ManifestDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDetails {
    pub digest: String,
    pub platform: Option<String>,
    /// The OCI image manifest, as JSON.
    pub manifest: String,
    /// The OCI image config, as JSON.
    pub config: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotKind {
    /// An unpacked image layer, read-only, shared.
    Committed,
    /// A container's writable layer.
    Active,
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SnapshotKind::Committed => "committed",
            SnapshotKind::Active => "active",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// A chain ID for a committed snapshot, `<namespace>/<container>` for an active one.
    pub key: String,
    /// The committed snapshot below, by chain ID.
    pub parent: Option<String>,
    pub kind: SnapshotKind,
    /// Nanoseconds since the Unix epoch.
    pub created: u64,
}

/// Disk usage of one snapshot's own layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUsage {
    pub key: String,
    pub size: u64,
    pub inodes: u64,
}

/// One blob of the content store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentBlob {
    pub digest: String,
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub created: u64,
}

/// What a prune removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    pub blobs: Vec<String>,
    /// Chain IDs of the committed snapshots removed.
    pub snapshots: Vec<String>,
    pub bytes_freed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode, encode, HEADER_LEN};

    #[test]
    fn bytes_travel_as_one_run() {
        let data = vec![0xffu8; 100_000];
        let frame = encode(&UploadFrame::Data(Bytes(data.clone()))).unwrap();
        // The variant index and a varint length, then the bytes themselves.
        assert!(
            frame.len() <= HEADER_LEN + data.len() + 8,
            "{}",
            frame.len()
        );
        let back: UploadFrame = decode(&frame[HEADER_LEN..]).unwrap();
        assert_eq!(back, UploadFrame::Data(Bytes(data)));
        let frame = encode(&crate::Response::Data(Bytes(vec![1, 2, 3]))).unwrap();
        assert_eq!(
            decode::<crate::Response>(&frame[HEADER_LEN..]).unwrap(),
            crate::Response::Data(Bytes(vec![1, 2, 3]))
        );
    }
}
