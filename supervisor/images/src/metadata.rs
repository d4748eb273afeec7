//! Image and snapshot records in one redb database, `<root>/metadata.redb`.
//!
//! Two tables: `images` keyed by (namespace, name), and `snapshots` keyed by snapshot key (a
//! committed layer's chain ID, or `<namespace>/<container>` for a container's active snapshot).
//! Values are JSON, so a record can be read by eye when debugging. Every change is one write
//! transaction, committed durably; the files a record names are made durable *before* it is
//! written (see [`crate::content`], [`crate::snapshot`]), so a crash at any point leaves either
//! no record or a record whose files exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{db_err, Error, Result};

const IMAGES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("images");
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");

/// An image: a name in a namespace pointing at a manifest or index, and what it keeps alive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub name: String,
    /// The root the name points at: an index or a manifest.
    pub target: Target,
    /// Seconds since the epoch at import.
    pub created: u64,
    pub labels: BTreeMap<String, String>,
    /// The manifests imported and unpacked (one per selected platform).
    pub manifests: Vec<ManifestRecord>,
    /// Every blob this image keeps alive: the target, nested indexes, the selected manifests,
    /// their configs and layers.
    pub blobs: BTreeSet<Digest>,
}

/// The descriptor an image name points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Target {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// One platform's manifest of an image, with the snapshot its layers were unpacked into.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestRecord {
    pub digest: Digest,
    /// `os/arch[/variant]`, when the index said.
    pub platform: Option<String>,
    pub config: Digest,
    /// The chain ID of the top layer: the committed snapshot a container's rootfs sits on.
    /// `None` for an image without layers.
    pub top_snapshot: Option<Digest>,
}

/// A snapshot: a committed, shared layer, or a container's writable layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotRecord {
    /// The committed snapshot below this one.
    pub parent: Option<Digest>,
    pub kind: SnapshotKind,
    /// Seconds since the epoch.
    pub created: u64,
}

/// What kind of snapshot a key names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// An unpacked layer, read-only, shared by every image with that layer chain.
    Committed,
    /// A container's writable upper layer, owned by that container until it is released.
    Active {
        namespace: String,
        container: String,
    },
}

/// The database. redb serialises write transactions; reads run beside them on a snapshot.
pub(crate) struct Metadata {
    db: Database,
}

impl Metadata {
    /// Opens (or creates) the database and its tables.
    pub(crate) fn open(root: &Path) -> Result<Self> {
        let db = Database::create(root.join("metadata.redb")).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(IMAGES).map_err(db_err)?;
        txn.open_table(SNAPSHOTS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// Every image, with its namespace; only `namespace`'s when given.
    pub(crate) fn images(&self, namespace: Option<&str>) -> Result<Vec<(String, ImageRecord)>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(IMAGES).map_err(db_err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db_err)? {
            let (key, value) = row.map_err(db_err)?;
            let (ns, name) = key.value();
            if namespace.is_some_and(|want| want != ns) {
                continue;
            }
            out.push((ns.to_string(), decode(name, value.value())?));
        }
        Ok(out)
    }

    /// One image.
    pub(crate) fn image(&self, namespace: &str, name: &str) -> Result<Option<ImageRecord>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(IMAGES).map_err(db_err)?;
        let value = table.get((namespace, name)).map_err(db_err)?;
        value.map(|v| decode(name, v.value())).transpose()
    }

    /// Writes all images of one import in one transaction: all of them exist afterwards, or none.
    /// An image of the same name is replaced (its old blobs become garbage if nothing else holds them).
    pub(crate) fn put_images(&self, namespace: &str, records: &[ImageRecord]) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(IMAGES).map_err(db_err)?;
            for record in records {
                let bytes = serde_json::to_vec(record).expect("image records serialise");
                table
                    .insert((namespace, record.name.as_str()), bytes.as_slice())
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Removes an image; `false` if there was none.
    pub(crate) fn remove_image(&self, namespace: &str, name: &str) -> Result<bool> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let existed = {
            let mut table = txn.open_table(IMAGES).map_err(db_err)?;
            let removed = table.remove((namespace, name)).map_err(db_err)?;
            removed.is_some()
        };
        txn.commit().map_err(db_err)?;
        Ok(existed)
    }

    /// Every snapshot by key.
    pub(crate) fn snapshots(&self) -> Result<BTreeMap<String, SnapshotRecord>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SNAPSHOTS).map_err(db_err)?;
        let mut out = BTreeMap::new();
        for row in table.iter().map_err(db_err)? {
            let (key, value) = row.map_err(db_err)?;
            out.insert(key.value().to_string(), decode(key.value(), value.value())?);
        }
        Ok(out)
    }

    /// One snapshot.
    pub(crate) fn snapshot(&self, key: &str) -> Result<Option<SnapshotRecord>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SNAPSHOTS).map_err(db_err)?;
        let value = table.get(key).map_err(db_err)?;
        value.map(|v| decode(key, v.value())).transpose()
    }

    /// Records a new snapshot; `false` (and nothing written) if the key is taken.
    pub(crate) fn insert_snapshot(&self, key: &str, record: &SnapshotRecord) -> Result<bool> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let inserted = {
            let mut table = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            if table.get(key).map_err(db_err)?.is_some() {
                false
            } else {
                let bytes = serde_json::to_vec(record).expect("snapshot records serialise");
                table.insert(key, bytes.as_slice()).map_err(db_err)?;
                true
            }
        };
        txn.commit().map_err(db_err)?;
        Ok(inserted)
    }

    /// Removes snapshot records in one transaction.
    pub(crate) fn remove_snapshots<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(SNAPSHOTS).map_err(db_err)?;
            for key in keys {
                table.remove(key).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Record {
        key: key.to_string(),
        source,
    })
}

/// Seconds since the epoch, for `created` fields.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
