//! Snapshots on overlayfs, the containerd model.
//!
//! - A **committed** snapshot is one unpacked layer, read-only, named by its chain ID and shared
//!   by every image with that layer chain: `<root>/snapshots/committed/<chain hex>/fs`. It is
//!   unpacked into `<root>/snapshots/tmp/` and renamed into place once whole and synced; only then
//!   is its record written. Unpacks of one chain ID are serialised, so it is unpacked once.
//! - An **active** snapshot is a container's writable layer on top of a committed one:
//!   `<root>/snapshots/active/<sha256 of key>/{fs,work}` (the key, `<namespace>/<container>`,
//!   is hashed so any container name gives a safe directory name). Mounted as an overlay with the
//!   chain's committed snapshots as lower dirs, its `fs` as upper dir.
//!
//! Directories come before records and go after them, so a record always names a directory that
//! exists; a directory without a record is left by a crash and removed at the next open.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount, MsFlags};

use crate::content::{sync_dir, ContentStore};
use crate::digest::Digest;
use crate::error::{io_err, Error, Result};
use crate::keyed_lock::KeyedLocks;
use crate::metadata::{now, Metadata, SnapshotKind, SnapshotRecord};
use crate::unpack::unpack_layer;

/// The kernel copies mount options into one page.
const MOUNT_OPTIONS_MAX: usize = 4095;

/// Disk usage of one snapshot's own directory (not its parents).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of disk blocks used (hard-linked files counted once).
    pub size: u64,
    /// Files, directories and links.
    pub inodes: u64,
}

/// Whether [`Snapshots::commit_layer`] did the unpack or found it done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Committed {
    Unpacked,
    AlreadyThere,
}

/// One layer to commit: its blob, the diff ID the config promises, and where it sits in the chain.
pub(crate) struct LayerToCommit<'a> {
    pub blob: &'a Digest,
    pub diff_id: &'a Digest,
    pub parent: Option<&'a Digest>,
    pub chain_id: &'a Digest,
}

/// The snapshot directories. Records live in [`Metadata`].
pub(crate) struct Snapshots {
    committed: PathBuf,
    active: PathBuf,
    tmp: PathBuf,
    locks: KeyedLocks,
}

impl Snapshots {
    /// Creates the directories and removes what a crash left: temp unpacks, and snapshot
    /// directories that never got (or already lost) their record.
    pub(crate) fn open(root: &Path, meta: &Metadata) -> Result<Self> {
        let dir = root.join("snapshots");
        let this = Self {
            committed: dir.join("committed"),
            active: dir.join("active"),
            tmp: dir.join("tmp"),
            locks: KeyedLocks::default(),
        };
        if this.tmp.exists() {
            fs::remove_dir_all(&this.tmp).map_err(io_err("clear", &this.tmp))?;
        }
        for d in [&this.committed, &this.active, &this.tmp] {
            fs::create_dir_all(d).map_err(io_err("create", d))?;
        }
        let records = meta.snapshots()?;
        let mut known: HashSet<PathBuf> = HashSet::new();
        for (key, record) in &records {
            known.insert(this.dir_of(key, &record.kind)?);
        }
        for parent in [&this.committed, &this.active] {
            for entry in fs::read_dir(parent).map_err(io_err("list", parent))? {
                let path = entry.map_err(io_err("list", parent))?.path();
                if !known.contains(&path) {
                    log::info!(
                        "removing snapshot directory {} left without a record",
                        path.display()
                    );
                    fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
                }
            }
        }
        Ok(this)
    }

    /// Unpacks a layer into its committed snapshot unless that exists already. The caller holds a
    /// lease on `chain_id`. Verifies the uncompressed content against the diff ID; a layer that
    /// fails leaves nothing (its temp directory deletes itself).
    pub(crate) fn commit_layer(
        &self,
        meta: &Metadata,
        content: &ContentStore,
        layer: LayerToCommit<'_>,
    ) -> Result<Committed> {
        let key = layer.chain_id.to_string();
        let _guard = self.locks.lock(&key);
        if meta.snapshot(&key)?.is_some() {
            return Ok(Committed::AlreadyThere);
        }
        let tmp = tempfile::Builder::new()
            .prefix("unpack-")
            .tempdir_in(&self.tmp)
            .map_err(io_err("create temp dir in", &self.tmp))?;
        let fs_dir = tmp.path().join("fs");
        make_dir(&fs_dir)?;
        let lowers = self.chain(&meta.snapshots()?, layer.parent)?;
        let actual = unpack_layer(content.open_blob(layer.blob)?, layer.blob, &fs_dir, &lowers)?;
        if &actual != layer.diff_id {
            return Err(Error::DiffIdMismatch {
                layer: layer.blob.clone(),
                expected: layer.diff_id.clone(),
                actual,
            });
        }
        sync_filesystem(tmp.path())?;
        let dest = self.committed.join(layer.chain_id.hex());
        let staged = tmp.keep();
        if let Err(e) = fs::rename(&staged, &dest) {
            let _ = fs::remove_dir_all(&staged);
            return Err(io_err("rename into", &dest)(e));
        }
        sync_dir(&self.committed)?;
        let record = SnapshotRecord {
            parent: layer.parent.cloned(),
            kind: SnapshotKind::Committed,
            created: now(),
        };
        if let Err(e) = meta.insert_snapshot(&key, &record) {
            let _ = fs::remove_dir_all(&dest);
            return Err(e);
        }
        Ok(Committed::Unpacked)
    }

    /// Creates a container's active snapshot on top of `parent` (`None`: an image without
    /// layers). Refuses if the key is taken.
    pub(crate) fn prepare_active(
        &self,
        meta: &Metadata,
        key: &str,
        parent: Option<&Digest>,
        kind: SnapshotKind,
    ) -> Result<()> {
        let _guard = self.locks.lock(key);
        if meta.snapshot(key)?.is_some() {
            return Err(Error::SnapshotExists {
                container: key.to_string(),
            });
        }
        let dir = self.dir_of(key, &kind)?;
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io_err("remove stale", &dir))?;
        }
        make_dir(&dir)?;
        make_dir(&dir.join("fs"))?;
        make_dir(&dir.join("work"))?;
        sync_dir(&self.active)?;
        let record = SnapshotRecord {
            parent: parent.cloned(),
            kind,
            created: now(),
        };
        if let Err(e) = meta.insert_snapshot(key, &record) {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(())
    }

    /// Mounts an active snapshot at `target`: an overlay of its chain (top layer first) with its
    /// own `fs` as the upper dir; a bind mount of `fs` when the image has no layers.
    pub(crate) fn mount(
        &self,
        meta: &Metadata,
        root: &Path,
        key: &str,
        target: &Path,
    ) -> Result<()> {
        let records = meta.snapshots()?;
        let record = records.get(key).ok_or_else(|| Error::SnapshotNotFound {
            key: key.to_string(),
        })?;
        let dir = self.dir_of(key, &record.kind)?;
        if record.kind == SnapshotKind::Committed {
            return Err(Error::SnapshotInUse {
                key: key.to_string(),
                reason: "a committed snapshot is read-only; prepare an active one".to_string(),
            });
        }
        let upper = dir.join("fs");
        let mount_err = |op| {
            move |source| Error::Mount {
                op,
                target: target.to_path_buf(),
                source,
            }
        };
        let lowers = self.chain(&records, record.parent.as_ref())?;
        if lowers.is_empty() {
            return mount(
                Some(&upper),
                target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(mount_err("bind mount"));
        }
        let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowerdir.join(":"),
            upper.display(),
            dir.join("work").display()
        );
        if options.len() > MOUNT_OPTIONS_MAX {
            return Err(Error::MountOptionsTooLong {
                target: target.to_path_buf(),
                root: root.to_path_buf(),
                len: options.len(),
                max: MOUNT_OPTIONS_MAX,
            });
        }
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(mount_err("mount overlay on"))
    }

    /// The `fs` directories of `top` and its parents, top first. A parent without a record
    /// (removed by hand) is reported as missing.
    fn chain(
        &self,
        records: &BTreeMap<String, SnapshotRecord>,
        top: Option<&Digest>,
    ) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut next = top.cloned();
        while let Some(chain_id) = next {
            let key = chain_id.to_string();
            let record = records.get(&key).ok_or(Error::SnapshotNotFound { key })?;
            out.push(self.committed.join(chain_id.hex()).join("fs"));
            next = record.parent.clone();
        }
        Ok(out)
    }

    /// Removes a snapshot's record, then its directory. Refuses one with children, or an active
    /// one that is still mounted.
    pub(crate) fn remove(&self, meta: &Metadata, key: &str) -> Result<()> {
        let _guard = self.locks.lock(key);
        let records = meta.snapshots()?;
        let record = records.get(key).ok_or_else(|| Error::SnapshotNotFound {
            key: key.to_string(),
        })?;
        if let Some((child, _)) = records
            .iter()
            .find(|(_, r)| r.parent.as_ref().is_some_and(|p| p.to_string() == key))
        {
            return Err(Error::SnapshotInUse {
                key: key.to_string(),
                reason: format!("snapshot {child} is on top of it"),
            });
        }
        let dir = self.dir_of(key, &record.kind)?;
        if let SnapshotKind::Active { .. } = record.kind {
            if is_mounted_upper(&dir.join("fs"))? {
                return Err(Error::SnapshotInUse {
                    key: key.to_string(),
                    reason: "its rootfs is mounted; unmount it first".to_string(),
                });
            }
        }
        meta.remove_snapshots([key])?;
        self.remove_dir(&dir)
    }

    /// Removes committed snapshots the collector found dead: records in one transaction, then
    /// the directories.
    pub(crate) fn remove_committed(&self, meta: &Metadata, chain_ids: &[Digest]) -> Result<()> {
        let keys: Vec<String> = chain_ids.iter().map(Digest::to_string).collect();
        meta.remove_snapshots(keys.iter().map(String::as_str))?;
        for chain_id in chain_ids {
            self.remove_dir(&self.committed.join(chain_id.hex()))?;
        }
        Ok(())
    }

    /// Disk usage of one snapshot's own directory.
    pub(crate) fn usage(&self, meta: &Metadata, key: &str) -> Result<Usage> {
        let record = meta.snapshot(key)?.ok_or_else(|| Error::SnapshotNotFound {
            key: key.to_string(),
        })?;
        let mut usage = Usage::default();
        let mut seen = HashSet::new();
        walk_usage(
            &self.dir_of(key, &record.kind)?.join("fs"),
            &mut usage,
            &mut seen,
        )?;
        Ok(usage)
    }

    /// Where a snapshot's directory is.
    fn dir_of(&self, key: &str, kind: &SnapshotKind) -> Result<PathBuf> {
        Ok(match kind {
            SnapshotKind::Committed => self.committed.join(key.parse::<Digest>()?.hex()),
            SnapshotKind::Active { .. } => self.active.join(Digest::of(key.as_bytes()).hex()),
        })
    }

    fn remove_dir(&self, dir: &Path) -> Result<()> {
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", dir)(e)),
            _ => Ok(()),
        }
    }
}

fn make_dir(path: &Path) -> Result<()> {
    fs::create_dir(path).map_err(io_err("create", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", path))
}

/// Makes everything an unpack wrote durable with one `syncfs(2)`, cheaper than syncing each file.
fn sync_filesystem(dir: &Path) -> Result<()> {
    let handle = fs::File::open(dir).map_err(io_err("open", dir))?;
    nix::unistd::syncfs(handle.as_raw_fd()).map_err(|e| io_err("sync", dir)(e.into()))
}

/// Whether an overlay mount of this process's mount namespace uses `upper` as its upper dir.
fn is_mounted_upper(upper: &Path) -> Result<bool> {
    let mountinfo = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(mountinfo).map_err(io_err("read", mountinfo))?;
    let needle = format!("upperdir={}", upper.display());
    Ok(text
        .lines()
        .any(|line| line.split([',', ' ']).any(|option| option == needle)))
}

fn walk_usage(path: &Path, usage: &mut Usage, seen: &mut HashSet<(u64, u64)>) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(io_err("stat", path))?;
    if seen.insert((meta.dev(), meta.ino())) {
        usage.inodes += 1;
        usage.size += meta.blocks() * 512;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err("list", path))? {
            walk_usage(&entry.map_err(io_err("list", path))?.path(), usage, seen)?;
        }
    }
    Ok(())
}

/// Unmounts a container's rootfs.
pub(crate) fn unmount(target: &Path) -> Result<()> {
    umount(target).map_err(|source| Error::Mount {
        op: "unmount",
        target: target.to_path_buf(),
        source,
    })
}
