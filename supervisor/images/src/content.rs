//! The content store: blobs under `<root>/content/blobs/sha256/<hex>`, named by their digest.
//!
//! A blob is written to a temp file in `<root>/content/ingest/`, hashed and measured as it is
//! written, synced, and only then renamed into place, so a blob file that exists is always whole
//! and matches its name. One that does not match is refused and its temp file removed. Ingests of
//! the same digest are serialised by a per-digest lock: the second finds the blob there and
//! writes nothing. The store keeps no list of blobs: the directory is the list, and what keeps a
//! blob alive is the metadata (see [`crate::gc`]).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::digest::{Digest, HashingReader};
use crate::error::{io_err, Error, Result};
use crate::keyed_lock::KeyedLocks;
use crate::lease::Lease;

/// One blob as `list_content` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentInfo {
    pub digest: Digest,
    pub size: u64,
    /// When the blob was written into the store.
    pub created: SystemTime,
}

/// Whether an ingest wrote the blob or found it already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ingested {
    Written,
    AlreadyPresent,
}

/// The blob directory and its ingest area. Shared by every operation of one store.
pub(crate) struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
    locks: KeyedLocks,
}

impl ContentStore {
    /// Creates the directories and removes temp files a crash left in the ingest area.
    pub(crate) fn open(root: &Path) -> Result<Self> {
        let blobs = root.join("content/blobs/sha256");
        let ingest = root.join("content/ingest");
        fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
        if ingest.exists() {
            fs::remove_dir_all(&ingest).map_err(io_err("clear", &ingest))?;
        }
        fs::create_dir_all(&ingest).map_err(io_err("create", &ingest))?;
        Ok(Self {
            blobs,
            ingest,
            locks: KeyedLocks::default(),
        })
    }

    /// Where the blob `digest` lives (whether or not it is there).
    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// The blob's size, or `None` if the store does not have it.
    pub(crate) fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", path)(e)),
        }
    }

    /// Stores a blob announced as `expected` of `size` bytes, read from `reader`. Refuses it
    /// (leaving nothing) if the content hashes otherwise or has another length. The blob is
    /// leased to `lease` before anything is looked at, so a collection cannot remove it between
    /// this call and the metadata that will reference it.
    pub(crate) fn ingest(
        &self,
        reader: impl Read,
        expected: &Digest,
        size: u64,
        lease: &mut Lease<'_>,
    ) -> Result<Ingested> {
        lease.blob(expected);
        let _guard = self.locks.lock(expected.hex());
        if let Some(have) = self.size(expected)? {
            if have != size {
                return Err(Error::SizeMismatch {
                    digest: expected.clone(),
                    expected: size,
                    actual: have,
                });
            }
            return Ok(Ingested::AlreadyPresent);
        }
        // One byte more than announced, so an over-long blob is seen as such.
        let (tmp, actual, len) = self.write_temp(reader.take(size.saturating_add(1)))?;
        if len != size {
            return Err(Error::SizeMismatch {
                digest: expected.clone(),
                expected: size,
                actual: len,
            });
        }
        if &actual != expected {
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        self.commit(tmp, expected)?;
        Ok(Ingested::Written)
    }

    /// Stores a blob whose digest is not known beforehand (a `docker save` layer, a manifest the
    /// importer writes itself).
    pub(crate) fn ingest_unknown(
        &self,
        reader: impl Read,
        lease: &mut Lease<'_>,
    ) -> Result<(Digest, u64, Ingested)> {
        let (tmp, digest, len) = self.write_temp(reader)?;
        lease.blob(&digest);
        let _guard = self.locks.lock(digest.hex());
        if self.size(&digest)?.is_some() {
            return Ok((digest, len, Ingested::AlreadyPresent));
        }
        self.commit(tmp, &digest)?;
        Ok((digest, len, Ingested::Written))
    }

    /// Reads a whole blob into memory, refusing one over `max` bytes (manifests and configs are
    /// small; a huge one is an attack or a mistake, not something to allocate for).
    pub(crate) fn read(&self, digest: &Digest, max: u64, what: &'static str) -> Result<Vec<u8>> {
        let path = self.path(digest);
        let file = File::open(&path).map_err(io_err("open", &path))?;
        let mut bytes = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        if bytes.len() as u64 > max {
            return Err(Error::Malformed {
                what,
                digest: digest.clone(),
                reason: format!("larger than {max} bytes"),
            });
        }
        Ok(bytes)
    }

    /// Opens a blob for streaming (layers, export).
    pub(crate) fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(io_err("open", path))
    }

    /// Every blob in the store. Files whose names are not digests are not blobs and are skipped.
    pub(crate) fn list(&self) -> Result<Vec<ContentInfo>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs).map_err(io_err("list", &self.blobs))? {
            let entry = entry.map_err(io_err("list", &self.blobs))?;
            let Ok(digest) = Digest::from_hex(&entry.file_name().to_string_lossy()) else {
                continue;
            };
            let meta = entry.metadata().map_err(io_err("stat", entry.path()))?;
            out.push(ContentInfo {
                digest,
                size: meta.len(),
                created: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Deletes a blob; the caller has established that nothing references it.
    pub(crate) fn remove(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        let _guard = self.locks.lock(digest.hex());
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
            _ => Ok(()),
        }
    }

    /// Copies `reader` into a new temp file, synced, with its digest and length. The temp file
    /// deletes itself if dropped before [`Self::commit`].
    fn write_temp(&self, reader: impl Read) -> Result<(tempfile::NamedTempFile, Digest, u64)> {
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.ingest)
            .map_err(io_err("create temp file in", &self.ingest))?;
        let mut hashing = HashingReader::new(reader);
        let path = tmp.path().to_path_buf();
        io::copy(&mut hashing, tmp.as_file_mut()).map_err(io_err("write", &path))?;
        tmp.as_file_mut().flush().map_err(io_err("write", &path))?;
        tmp.as_file().sync_all().map_err(io_err("sync", &path))?;
        let (digest, len) = hashing.finish();
        Ok((tmp, digest, len))
    }

    /// Renames a verified temp file into place and makes the rename durable, so metadata written
    /// after this never outlives the blob across a power loss.
    fn commit(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<()> {
        let dest = self.path(digest);
        tmp.persist(&dest)
            .map_err(|e| io_err("rename into", &dest)(e.error))?;
        sync_dir(&self.blobs)
    }
}

/// Makes the entries of `dir` (a rename into it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Leases;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn ingest_area_is_empty(store: &ContentStore) -> bool {
        fs::read_dir(&store.ingest).unwrap().next().is_none()
    }

    #[test]
    fn a_blob_is_stored_under_its_digest_once() {
        let (_dir, store) = store();
        let leases = Leases::default();
        let lease = &mut leases.begin();
        let d = Digest::of(b"hello");
        assert_eq!(
            store.ingest(&b"hello"[..], &d, 5, lease).unwrap(),
            Ingested::Written
        );
        assert_eq!(
            store.ingest(&b"hello"[..], &d, 5, lease).unwrap(),
            Ingested::AlreadyPresent
        );
        assert_eq!(fs::read(store.path(&d)).unwrap(), b"hello");
        let (d2, len, how) = store.ingest_unknown(&b"hello"[..], lease).unwrap();
        assert_eq!((d2, len, how), (d, 5, Ingested::AlreadyPresent));
        assert!(ingest_area_is_empty(&store));
    }

    #[test]
    fn a_corrupt_or_wrongly_sized_blob_is_refused_and_leaves_nothing() {
        let (_dir, store) = store();
        let leases = Leases::default();
        let lease = &mut leases.begin();
        let d = Digest::of(b"hello");
        let err = store.ingest(&b"hellO"[..], &d, 5, lease).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        let err = store.ingest(&b"hello!"[..], &d, 5, lease).unwrap_err();
        assert!(
            matches!(err, Error::SizeMismatch { actual: 6, .. }),
            "{err}"
        );
        let err = store.ingest(&b"hell"[..], &d, 5, lease).unwrap_err();
        assert!(
            matches!(err, Error::SizeMismatch { actual: 4, .. }),
            "{err}"
        );
        assert!(store.list().unwrap().is_empty());
        assert!(ingest_area_is_empty(&store));
    }

    #[test]
    fn concurrent_ingests_of_one_blob_write_it_once() {
        let (_dir, store) = store();
        let data = vec![7u8; 1 << 20];
        let d = Digest::of(&data);
        let leases = Leases::default();
        let written = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let lease = &mut leases.begin();
                        store
                            .ingest(&data[..], &d, data.len() as u64, lease)
                            .unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|how| *how == Ingested::Written)
                .count()
        });
        assert_eq!(written, 1);
        assert_eq!(store.list().unwrap().len(), 1);
    }
}
