//! ctrd's image store: OCI images imported from archives, kept under a persistent root
//! (`/var/lib/ctrd` by default), unpacked once per layer into overlayfs snapshots that container
//! root filesystems are mounted from.
//!
//! # Layout of the root
//! ```text
//! <root>/lock                               held by the one process using the store
//! <root>/metadata.redb                      images per namespace, snapshots (metadata)
//! <root>/content/blobs/sha256/<hex>         blobs, named by digest (content)
//! <root>/content/ingest/                    blobs being written
//! <root>/snapshots/committed/<chain hex>/fs unpacked layers (snapshot)
//! <root>/snapshots/active/<hash>/{fs,work}  containers' writable layers
//! <root>/snapshots/tmp/                     layers being unpacked
//! ```
//!
//! # Layout of the crate
//! - `content`: the blob store, verify-then-rename.
//! - `metadata`: image and snapshot records, one redb transaction per change.
//! - `unpack`: one layer's tar into a directory, whiteouts converted, escapes refused.
//! - `snapshot`: committed and active snapshots, overlay mounts.
//! - `import` / `export`: OCI image layout and `docker save` archives.
//! - `gc`: removal of what nothing references; `lease`: what in-flight work holds.
//!
//! # Invariant
//! Files first, records after; records removed first, files after. So whatever point a crash or
//! kill hits, no record names a missing blob or directory, and the leftovers are unreferenced
//! files that the next open (temp files, record-less snapshot directories) or [`ImageStore::prune`]
//! (blobs) removes.
//!
//! Every operation blocks (disk, mounts): the daemon runs them off its actor, on blocking threads
//! of its socket server.

mod content;
mod digest;
mod error;
mod export;
mod gc;
mod import;
mod keyed_lock;
mod lease;
mod metadata;
mod platform;
mod snapshot;
mod unpack;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{ImageConfiguration, ImageManifest};

pub use content::ContentInfo;
pub use digest::Digest;
pub use error::{Error, Result};
pub use gc::PruneReport;
pub use import::{ImportOptions, ImportReport, ImportedImage};
pub use metadata::SnapshotKind;
pub use platform::{Platform, PlatformSelector};
pub use snapshot::Usage;

use error::io_err;
use metadata::{ManifestRecord, Metadata};

/// The store's default root.
pub const DEFAULT_ROOT: &str = "/var/lib/ctrd";

/// One image as `list_images` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub name: String,
    /// The media type of what the name points at (an index or a manifest).
    pub media_type: String,
    pub digest: Digest,
    /// Bytes of all the blobs the image keeps (compressed layers, manifests, configs).
    pub size: u64,
    /// The platforms imported, `os/arch[/variant]`; empty for a single manifest without one.
    pub platforms: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub created: SystemTime,
}

/// An image's manifests and configs, one per imported platform.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInspect {
    pub name: String,
    pub digest: Digest,
    pub manifests: Vec<InspectedManifest>,
}

/// One platform's manifest and config, in the OCI image-spec types.
#[derive(Clone, Debug, PartialEq)]
pub struct InspectedManifest {
    pub digest: Digest,
    pub platform: Option<String>,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
}

/// One snapshot as `list_snapshots` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// A chain ID (`sha256:...`) for a committed snapshot, `<namespace>/<container>` for an active one.
    pub key: String,
    /// The committed snapshot below, by chain ID.
    pub parent: Option<String>,
    pub kind: SnapshotKind,
    pub created: SystemTime,
}

/// A persistent image store. One per root and process (the root's lock file says so); share it
/// between threads by reference or `Arc`: every method takes `&self`.
pub struct ImageStore {
    root: PathBuf,
    content: content::ContentStore,
    meta: Metadata,
    snapshots: snapshot::Snapshots,
    leases: lease::Leases,
    _lock: Flock<File>,
}

impl ImageStore {
    /// Opens the store at `root`, creating it if needed, and removes what a crash left behind
    /// (temp files, snapshot directories without a record).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        let lock_path = root.join("lock");
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| Error::Locked { root: root.clone() })?;
        let meta = Metadata::open(&root)?;
        let content = content::ContentStore::open(&root)?;
        let snapshots = snapshot::Snapshots::open(&root, &meta)?;
        Ok(Self {
            root,
            content,
            meta,
            snapshots,
            leases: lease::Leases::default(),
            _lock: lock,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports an OCI image layout or `docker save` archive into `namespace`: all its images, or
    /// none: blobs first, layers unpacked, then one transaction recording the images.
    pub fn import(
        &self,
        namespace: &str,
        reader: impl Read,
        options: &ImportOptions,
    ) -> Result<ImportReport> {
        import::import(self, namespace, reader, options)
    }

    /// The images of a namespace, by name.
    pub fn list_images(&self, namespace: &str) -> Result<Vec<ImageInfo>> {
        let mut out = Vec::new();
        for (_, record) in self.meta.images(Some(namespace))? {
            let mut size = 0;
            for digest in &record.blobs {
                size += self.content.size(digest)?.unwrap_or(0);
            }
            out.push(ImageInfo {
                name: record.name,
                media_type: record.target.media_type,
                digest: record.target.digest,
                size,
                platforms: record
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.clone())
                    .collect(),
                labels: record.labels,
                created: SystemTime::UNIX_EPOCH + Duration::from_secs(record.created),
            });
        }
        Ok(out)
    }

    /// Removes an image's name. Its blobs and snapshots stay until [`Self::prune`] finds nothing
    /// else uses them.
    pub fn remove_image(&self, namespace: &str, name: &str) -> Result<()> {
        if self.meta.remove_image(namespace, name)? {
            Ok(())
        } else {
            Err(not_found(namespace, name))
        }
    }

    /// An image's manifests and configs.
    pub fn inspect(&self, namespace: &str, name: &str) -> Result<ImageInspect> {
        let record = self
            .meta
            .image(namespace, name)?
            .ok_or_else(|| not_found(namespace, name))?;
        let mut manifests = Vec::new();
        for m in &record.manifests {
            manifests.push(InspectedManifest {
                digest: m.digest.clone(),
                platform: m.platform.clone(),
                manifest: import::read_json(self, &m.digest, "image manifest")?,
                config: import::read_json(self, &m.config, "image config")?,
            });
        }
        Ok(ImageInspect {
            name: record.name,
            digest: record.target.digest,
            manifests,
        })
    }

    /// Writes the named images of `namespace` as one OCI image layout archive.
    pub fn export(&self, namespace: &str, names: &[&str], writer: impl Write) -> Result<()> {
        export::export(self, namespace, names, writer)
    }

    /// Every snapshot, committed and active.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        Ok(self
            .meta
            .snapshots()?
            .into_iter()
            .map(|(key, r)| SnapshotInfo {
                key,
                parent: r.parent.map(|p| p.to_string()),
                kind: r.kind,
                created: SystemTime::UNIX_EPOCH + Duration::from_secs(r.created),
            })
            .collect())
    }

    /// Removes a committed snapshot that nothing sits on. An image using it unpacks it again when
    /// a container is next prepared from it. A container's active snapshot is removed by
    /// [`Self::release`].
    pub fn remove_snapshot(&self, key: &str) -> Result<()> {
        if let Some(record) = self.meta.snapshot(key)? {
            if let SnapshotKind::Active {
                namespace,
                container,
            } = record.kind
            {
                return Err(Error::SnapshotInUse {
                    key: key.to_string(),
                    reason: format!(
                        "it is container {container}'s rootfs in namespace {namespace}; release it"
                    ),
                });
            }
        }
        let _lease = self.leases.begin();
        self.snapshots.remove(&self.meta, key)
    }

    /// Disk usage of one snapshot's own layer.
    pub fn snapshot_usage(&self, key: &str) -> Result<Usage> {
        self.snapshots.usage(&self.meta, key)
    }

    /// Every blob in the content store.
    pub fn list_content(&self) -> Result<Vec<ContentInfo>> {
        self.content.list()
    }

    /// Removes every blob and committed snapshot that no image, container or running import uses.
    pub fn prune(&self) -> Result<PruneReport> {
        gc::collect(self, gc::Scope::All)
    }

    /// Creates container `container`'s writable snapshot on top of image `image` (for the host
    /// platform, or the only one imported), unpacking any of its layers that are missing. Returns
    /// the snapshot's key. Mount it with [`Self::mount`].
    pub fn prepare(&self, namespace: &str, container: &str, image: &str) -> Result<String> {
        let key = container_key(namespace, container)?;
        let record = self
            .meta
            .image(namespace, image)?
            .ok_or_else(|| not_found(namespace, image))?;
        let manifest = host_manifest(&record.manifests, image)?;
        let mut lease = self.leases.begin();
        let layers = import::manifest_layers(self, &manifest.digest, &mut lease)?;
        let top = import::unpack_layers(self, &layers, &mut lease, |_| {})?;
        let kind = SnapshotKind::Active {
            namespace: namespace.to_string(),
            container: container.to_string(),
        };
        self.snapshots
            .prepare_active(&self.meta, &key, top.as_ref(), kind)?;
        Ok(key)
    }

    /// The config of the manifest [`Self::prepare`] unpacks: the host platform's, or the first.
    pub fn host_config(&self, namespace: &str, image: &str) -> Result<ImageConfiguration> {
        let record = self
            .meta
            .image(namespace, image)?
            .ok_or_else(|| not_found(namespace, image))?;
        let manifest = host_manifest(&record.manifests, image)?;
        import::read_json(self, &manifest.config, "image config")
    }

    /// Mounts container `container`'s snapshot at `target` (an existing directory).
    pub fn mount(&self, namespace: &str, container: &str, target: &Path) -> Result<()> {
        let key = container_key(namespace, container)?;
        self.snapshots.mount(&self.meta, &self.root, &key, target)
    }

    /// Unmounts a rootfs mounted by [`Self::mount`].
    pub fn unmount(&self, target: &Path) -> Result<()> {
        snapshot::unmount(target)
    }

    /// Removes container `container`'s snapshot (its writable layer and everything written to
    /// it). Refused while it is mounted.
    pub fn release(&self, namespace: &str, container: &str) -> Result<()> {
        let key = container_key(namespace, container)?;
        self.snapshots.remove(&self.meta, &key)
    }
}

/// The manifest for the host platform, or else the first (an image imported for one platform
/// only, or without platforms).
fn host_manifest<'a>(manifests: &'a [ManifestRecord], image: &str) -> Result<&'a ManifestRecord> {
    let host = Platform::host();
    manifests
        .iter()
        .find(|m| {
            m.platform.as_deref().is_none_or(|p| {
                p.parse::<Platform>()
                    .is_ok_and(|p| p.os == host.os && p.architecture == host.architecture)
            })
        })
        .or(manifests.first())
        .ok_or_else(|| Error::NoMatchingPlatform {
            image: image.to_string(),
            wanted: host.to_string(),
            available: "none".to_string(),
        })
}

fn not_found(namespace: &str, name: &str) -> Error {
    Error::ImageNotFound {
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// An active snapshot's key.
fn container_key(namespace: &str, container: &str) -> Result<String> {
    validate_name("namespace", namespace)?;
    validate_name("container id", container)?;
    if namespace.contains([':', '/']) || container.contains('/') {
        return Err(Error::InvalidName {
            what: "container id",
            value: format!("{namespace}/{container}"),
            reason: "neither may contain '/', nor the namespace ':'",
        });
    }
    Ok(format!("{namespace}/{container}"))
}

/// Image names, namespaces and container ids: 1 to 512 printable, non-space characters.
pub(crate) fn validate_name(what: &'static str, value: &str) -> Result<()> {
    let reason = if value.is_empty() {
        "it is empty"
    } else if value.len() > 512 {
        "it is longer than 512 bytes"
    } else if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        "it contains whitespace or control characters"
    } else if what == "namespace" && value.contains(['/', ':']) {
        "a namespace may not contain '/' or ':'"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        what,
        value: value.to_string(),
        reason,
    })
}
