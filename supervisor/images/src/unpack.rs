//! Unpacking one layer's tar stream into an empty directory, as an overlayfs lower layer.
//!
//! The rules, in the order an entry meets them:
//! - Its path is made relative and checked: an absolute path or a `..` component is refused.
//! - Every parent directory on the way is created if missing; one that is a symlink is refused
//!   (an entry may never be written *through* a symlink, whether the layer made it or not), one
//!   that is a file is refused.
//! - `.wh..wh..opq` marks its directory opaque (`trusted.overlay.opaque=y`); `.wh.NAME` becomes
//!   an overlay whiteout for `NAME` (a 0/0 character device); other `.wh..wh.` names (aufs
//!   bookkeeping) are skipped.
//! - Files, directories, symlinks, hard links, fifos and device nodes are made with their mode,
//!   owner, xattrs and mtime. Device nodes the kernel refuses to create are skipped with a warning.
//!   A symlink whose relative target climbs out of the layer is refused; an absolute target is
//!   kept (inside the container it resolves against the rootfs, and unpacking never follows a
//!   symlink). A hard link must name an earlier entry of this layer, by a path that passes the
//!   same checks. `trusted.overlay.*` xattrs in the archive are dropped, so a layer cannot forge
//!   overlay metadata (redirects, whiteouts) beyond what its `.wh.` entries say.
//! - Directory mtimes are set last, after their contents stopped changing them.
//!
//! The stream is hashed as it is read, all of it, and that digest (the layer's diff ID) is
//! returned for the caller to check against the image config. Any error leaves the directory
//! for the caller to delete: this module never commits anything.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// Unpacks the layer blob `blob` (tar, gzip or zstd; told apart by their magic bytes) into
/// `dest`, an empty directory. `lowers` are the unpacked layers below, top first: a directory
/// this layer does not list but needs is made with the mode, owner and mtime it has there, so it
/// does not change them in the merged view. Returns the digest of the uncompressed tar (its
/// diff ID).
pub(crate) fn unpack_layer(
    blob: impl Read,
    layer: &Digest,
    dest: &Path,
    lowers: &[PathBuf],
) -> Result<Digest> {
    let corrupt = |e: io::Error| Error::LayerCorrupt {
        layer: layer.clone(),
        reason: e.to_string(),
    };
    let mut archive = tar::Archive::new(HashingReader::new(decompress(blob).map_err(corrupt)?));
    let mut unpacker = Unpacker {
        layer,
        dest,
        lowers,
        dir_times: Vec::new(),
    };
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        unpacker.entry(&mut entry)?;
    }
    // The tar ends at its end-of-archive blocks; hash the padding after them too, and let a
    // truncated compressed stream show up here rather than pass.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(corrupt)?;
    for (path, entry, mtime) in unpacker.dir_times.iter().rev() {
        set_mtime(path, *mtime).map_err(|e| unpacker.io_err(entry, "set mtime", e))?;
    }
    Ok(rest.finish().0)
}

/// A tar stream, gzip- or zstd-compressed or not, told apart by its first bytes (media types
/// are not always right about it: `docker save` says nothing, some tools mislabel).
pub(crate) fn decompress<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::new(reader);
    let magic = reader.fill_buf()?;
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)
    } else {
        Box::new(reader)
    })
}

/// The state of one layer's unpack.
struct Unpacker<'a> {
    layer: &'a Digest,
    dest: &'a Path,
    lowers: &'a [PathBuf],
    /// Directories whose mtime is set at the end: (path, entry name, mtime).
    dir_times: Vec<(PathBuf, String, u64)>,
}

/// What an entry's header says about ownership and times, PAX records taking precedence.
struct Attrs {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<()> {
        let raw = entry.path().map_err(|e| self.corrupt(e))?.into_owned();
        let name = raw.to_string_lossy().into_owned();
        let rel = relative(&raw).map_err(|reason| self.unsafe_entry(&name, reason))?;
        let kind = entry.header().entry_type();
        let attrs = self.attrs(entry, &name)?;

        let Some(file_name) = rel.file_name().map(|f| f.to_string_lossy().into_owned()) else {
            // The layer's root itself ("./"): only its attributes apply.
            if kind.is_dir() {
                self.set_attrs(self.dest, &name, &attrs, false)?;
                self.dir_times
                    .push((self.dest.to_path_buf(), name, attrs.mtime));
            }
            return Ok(());
        };
        let parent = self.make_parents(&rel, &name)?;

        if file_name == OPAQUE_MARKER {
            return set_xattr(&parent, c"trusted.overlay.opaque", b"y")
                .map_err(|e| self.io_err(&name, "mark directory opaque", e));
        }
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.starts_with(WHITEOUT_PREFIX) || hidden.is_empty() {
                log::debug!("layer {}: skipping aufs entry {name:?}", self.layer);
                return Ok(());
            }
            let target = parent.join(hidden);
            self.clear(&target, &name)?;
            return mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                .map_err(|e| self.io_err(&name, "create whiteout", e.into()));
        }

        let target = parent.join(&file_name);
        match kind {
            EntryType::Directory => {
                if !fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
                    self.clear(&target, &name)?;
                    fs::create_dir(&target)
                        .map_err(|e| self.io_err(&name, "create directory", e))?;
                }
                self.set_attrs(&target, &name, &attrs, false)?;
                self.dir_times.push((target, name, attrs.mtime));
                Ok(())
            }
            EntryType::Regular | EntryType::Continuous => {
                self.clear(&target, &name)?;
                self.write_file(entry, &target, &name)?;
                self.set_attrs(&target, &name, &attrs, false)?;
                set_mtime(&target, attrs.mtime).map_err(|e| self.io_err(&name, "set mtime", e))
            }
            EntryType::Symlink => {
                let link = self.link_name(entry, &name)?;
                symlink_stays_inside(&rel, &link)
                    .map_err(|reason| self.unsafe_entry(&name, reason))?;
                self.clear(&target, &name)?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| self.io_err(&name, "create symlink", e))?;
                self.set_attrs(&target, &name, &attrs, true)?;
                set_mtime(&target, attrs.mtime).map_err(|e| self.io_err(&name, "set mtime", e))
            }
            EntryType::Link => {
                let link = self.link_name(entry, &name)?;
                let source = self.hard_link_source(&link, &name)?;
                self.clear(&target, &name)?;
                fs::hard_link(&source, &target)
                    .map_err(|e| self.io_err(&name, "create hard link", e))
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.clear(&target, &name)?;
                let (kind_flag, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, self.device(entry, &name)?),
                    EntryType::Block => (SFlag::S_IFBLK, self.device(entry, &name)?),
                    _ => (SFlag::S_IFIFO, 0),
                };
                let perm = Mode::from_bits_truncate(attrs.mode & 0o777);
                match mknod(&target, kind_flag, perm, dev) {
                    Err(nix::Error::EPERM) => {
                        log::warn!(
                            "layer {}: skipping device node {name:?}: not permitted",
                            self.layer
                        );
                        Ok(())
                    }
                    Err(e) => Err(self.io_err(&name, "create device node", e.into())),
                    Ok(()) => {
                        self.set_attrs(&target, &name, &attrs, false)?;
                        set_mtime(&target, attrs.mtime)
                            .map_err(|e| self.io_err(&name, "set mtime", e))
                    }
                }
            }
            other => {
                log::warn!(
                    "layer {}: skipping {name:?} of unsupported tar type {other:?}",
                    self.layer
                );
                Ok(())
            }
        }
    }

    /// Creates the missing parent directories of `rel` and returns the parent's path. A missing
    /// parent takes its attributes from the lower layers, or is root's with mode 0755 (as
    /// container tools make directories a layer does not list). Refuses a parent that is a
    /// symlink or not a directory.
    fn make_parents(&mut self, rel: &Path, name: &str) -> Result<PathBuf> {
        let mut dir = self.dest.to_path_buf();
        let Some(parent) = rel.parent() else {
            return Ok(dir);
        };
        let mut prefix = PathBuf::new();
        for component in parent.components() {
            dir.push(component);
            prefix.push(component);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.unsafe_entry(
                        name,
                        format!(
                            "it would be written through the symlink {:?}",
                            self.shown(&dir)
                        ),
                    ))
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(self.unsafe_entry(
                        name,
                        format!("its parent {:?} is not a directory", self.shown(&dir)),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&dir)
                        .map_err(|e| self.io_err(name, "create parent directory", e))?;
                    self.copy_lower_attrs(&dir, &prefix, name)?;
                }
                Err(e) => return Err(self.io_err(name, "stat parent directory", e)),
            }
        }
        Ok(dir)
    }

    /// Gives an implicitly made directory the attributes it has in the layers below (found at
    /// `rel` in the first lower that has it), or root's 0755 if none has it.
    fn copy_lower_attrs(&mut self, dir: &Path, rel: &Path, name: &str) -> Result<()> {
        let lower = self.lowers.iter().find_map(|l| {
            fs::symlink_metadata(l.join(rel))
                .ok()
                .filter(|m| m.is_dir())
        });
        let attrs = Attrs {
            mode: lower.as_ref().map_or(0o755, |m| m.mode()),
            uid: lower.as_ref().map_or(0, |m| m.uid()),
            gid: lower.as_ref().map_or(0, |m| m.gid()),
            mtime: lower
                .as_ref()
                .map_or(0, |m| u64::try_from(m.mtime()).unwrap_or(0)),
            xattrs: Vec::new(),
        };
        self.set_attrs(dir, name, &attrs, false)?;
        if lower.is_some() {
            let entry = format!("{} (parent of {name})", rel.display());
            self.dir_times.push((dir.to_path_buf(), entry, attrs.mtime));
        }
        Ok(())
    }

    /// Removes what an earlier entry of this layer put at `path`: a later entry replaces it.
    fn clear(&self, path: &Path, name: &str) -> Result<()> {
        let result = match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(path),
            Ok(_) => fs::remove_file(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        result.map_err(|e| self.io_err(name, "replace earlier entry", e))
    }

    /// Copies a file's content. `create_new` does not follow a symlink at `path` (there is none:
    /// [`Self::clear`] ran), and read errors (a broken stream) are told apart from write errors
    /// (a full disk).
    fn write_file<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        path: &Path,
        name: &str,
    ) -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| self.io_err(name, "create file", e))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.corrupt(e)),
            };
            file.write_all(&buf[..n])
                .map_err(|e| self.io_err(name, "write", e))?;
        }
        Ok(())
    }

    /// The path a hard link points at, checked like an entry's own path, and present already.
    fn hard_link_source(&self, link: &Path, name: &str) -> Result<PathBuf> {
        let rel = relative(link).map_err(|reason| {
            self.unsafe_entry(name, format!("hard link target {link:?}: {reason}"))
        })?;
        let mut path = self.dest.to_path_buf();
        let mut components = rel.components().peekable();
        while let Some(component) = components.next() {
            path.push(component);
            let meta = fs::symlink_metadata(&path).map_err(|_| {
                self.unsafe_entry(
                    name,
                    format!("hard link target {link:?} is not in this layer"),
                )
            })?;
            let last = components.peek().is_none();
            if !last && !meta.is_dir() {
                return Err(self.unsafe_entry(
                    name,
                    format!("hard link target {link:?} goes through a non-directory"),
                ));
            }
            if last && meta.is_dir() {
                return Err(
                    self.unsafe_entry(name, format!("hard link target {link:?} is a directory"))
                );
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(self.unsafe_entry(name, "hard link to the layer root".to_string()));
        }
        Ok(path)
    }

    fn link_name<R: Read>(&self, entry: &tar::Entry<R>, name: &str) -> Result<PathBuf> {
        entry
            .link_name()
            .map_err(|e| self.corrupt(e))?
            .map(|l| l.into_owned())
            .ok_or_else(|| self.unsafe_entry(name, "link without a target".to_string()))
    }

    fn device<R: Read>(&self, entry: &tar::Entry<R>, name: &str) -> Result<libc::dev_t> {
        let header = entry.header();
        let major = header.device_major().map_err(|e| self.corrupt(e))?;
        let minor = header.device_minor().map_err(|e| self.corrupt(e))?;
        match (major, minor) {
            (Some(major), Some(minor)) => Ok(makedev(major.into(), minor.into())),
            _ => Err(self.unsafe_entry(name, "device node without device numbers".to_string())),
        }
    }

    fn attrs<R: Read>(&self, entry: &mut tar::Entry<R>, name: &str) -> Result<Attrs> {
        let header = entry.header();
        let number = |v: io::Result<u64>, what: &str| -> Result<u64> {
            v.map_err(|e| Error::LayerCorrupt {
                layer: self.layer.clone(),
                reason: format!("entry {name:?}: bad {what}: {e}"),
            })
        };
        let mut uid = number(header.uid(), "uid")?;
        let mut gid = number(header.gid(), "gid")?;
        let mut mtime = number(header.mtime(), "mtime")?;
        let mode = number(header.mode().map(u64::from), "mode")? as u32;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(|e| self.corrupt(e))? {
            for ext in pax {
                let ext = ext.map_err(|e| self.corrupt(e))?;
                let key = ext.key().map_err(|e| self.corrupt(io::Error::other(e)))?;
                let parsed = || {
                    ext.value()
                        .ok()
                        .and_then(|v| v.split('.').next()?.parse().ok())
                };
                match key {
                    "uid" => uid = parsed().unwrap_or(uid),
                    "gid" => gid = parsed().unwrap_or(gid),
                    "mtime" => mtime = parsed().unwrap_or(mtime),
                    _ => {
                        let Some(xattr) = key.strip_prefix("SCHILY.xattr.") else {
                            continue;
                        };
                        if xattr.starts_with(OVERLAY_XATTR_PREFIX) {
                            log::warn!(
                                "layer {}: entry {name:?}: dropping xattr {xattr}",
                                self.layer
                            );
                            continue;
                        }
                        let Ok(xattr) = CString::new(xattr) else {
                            continue;
                        };
                        xattrs.push((xattr, ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| Error::LayerCorrupt {
                layer: self.layer.clone(),
                reason: format!("entry {name:?}: {what} {v} out of range"),
            })
        };
        Ok(Attrs {
            mode,
            uid: id(uid, "uid")?,
            gid: id(gid, "gid")?,
            mtime,
            xattrs,
        })
    }

    /// Owner first (a chown clears set-id bits), then mode (not on symlinks), then xattrs.
    fn set_attrs(&self, path: &Path, name: &str, attrs: &Attrs, symlink: bool) -> Result<()> {
        std::os::unix::fs::lchown(path, Some(attrs.uid), Some(attrs.gid))
            .map_err(|e| self.io_err(name, "chown", e))?;
        if !symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(attrs.mode & 0o7777))
                .map_err(|e| self.io_err(name, "chmod", e))?;
        }
        for (key, value) in &attrs.xattrs {
            set_xattr(path, key, value).map_err(|e| self.io_err(name, "set xattr", e))?;
        }
        Ok(())
    }

    /// `path` relative to the layer root, for messages (the temp dir's name means nothing to a user).
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(self.dest)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    fn corrupt(&self, e: io::Error) -> Error {
        Error::LayerCorrupt {
            layer: self.layer.clone(),
            reason: e.to_string(),
        }
    }

    fn unsafe_entry(&self, entry: &str, reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            layer: self.layer.clone(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    fn io_err(&self, entry: &str, op: &'static str, source: io::Error) -> Error {
        Error::UnpackIo {
            layer: self.layer.clone(),
            entry: entry.to_string(),
            op,
            source,
        }
    }
}

/// An entry path made relative: `./` and leading `.` components dropped; absolute paths and `..`
/// refused. The empty path is the layer root.
fn relative(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err("path has a `..` component".to_string()),
            Component::RootDir | Component::Prefix(_) => return Err("path is absolute".to_string()),
        }
    }
    Ok(out)
}

/// Refuses a relative symlink target that climbs above the layer root from where the link sits.
fn symlink_stays_inside(link_path: &Path, target: &Path) -> Result<(), String> {
    if target.is_absolute() {
        return Ok(());
    }
    let mut depth = link_path.components().count() as i64 - 1;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(format!(
                "symlink target {target:?} points outside the layer"
            ));
        }
    }
    Ok(())
}

fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let t = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(io::Error::from)
}

/// `lsetxattr(2)`: on the path itself, never through a symlink.
fn set_xattr(path: &Path, name: &std::ffi::CStr, value: &[u8]) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte"))?;
    // SAFETY: both strings are NUL-terminated and live across the call; `value` is a valid
    // buffer of `value.len()` bytes that the kernel only reads.
    let rc = unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads an xattr of `path` (not following a symlink); `None` if it has none of that name.
#[cfg(test)]
pub(crate) fn get_xattr(path: &Path, name: &std::ffi::CStr) -> Option<Vec<u8>> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated strings and a writable buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    /// A tar stream built entry by entry, with paths written raw (the tar crate's builder refuses
    /// `..` and absolute paths, which is exactly what these tests need to send).
    struct Layer(tar::Builder<Vec<u8>>);

    impl Layer {
        fn new() -> Self {
            Self(tar::Builder::new(Vec::new()))
        }
        fn raw(
            mut self,
            kind: EntryType,
            path: &str,
            link: Option<&str>,
            data: &[u8],
            mode: u32,
        ) -> Self {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            {
                let gnu = h.as_gnu_mut().unwrap();
                gnu.name[..path.len()].copy_from_slice(path.as_bytes());
                if let Some(link) = link {
                    gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
                }
            }
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(1_000_000);
            h.set_uid(0);
            h.set_gid(0);
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }
        fn file(self, path: &str, data: &[u8]) -> Self {
            self.raw(EntryType::Regular, path, None, data, 0o644)
        }
        fn dir(self, path: &str) -> Self {
            self.raw(EntryType::Directory, path, None, b"", 0o755)
        }
        fn symlink(self, path: &str, target: &str) -> Self {
            self.raw(EntryType::Symlink, path, Some(target), b"", 0o777)
        }
        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<Digest>) {
        let dir = tempfile::tempdir().unwrap();
        let result = unpack_layer(bytes, &Digest::of(bytes), dir.path(), &[]);
        (dir, result)
    }

    fn refused(bytes: &[u8], entry: &str) {
        let (dir, result) = unpack(bytes);
        match result {
            Err(Error::UnsafeEntry { entry: e, .. }) => assert_eq!(e, entry),
            other => panic!("expected {entry:?} refused, got {other:?}"),
        }
        // Nothing was written outside the layer: the checks ran before any write.
        let parent = dir.path().parent().unwrap();
        for name in ["etc", "escaped"] {
            assert!(!parent.join(name).exists(), "{name} escaped the layer");
        }
    }

    #[test]
    fn files_whiteouts_and_opaque_dirs_become_overlay_lower_layer_entries() {
        let bytes = Layer::new()
            .dir("etc/")
            .file("etc/hosts", b"127.0.0.1 localhost\n")
            .file("etc/.wh.motd", b"")
            .dir("var/")
            .file("var/.wh..wh..opq", b"")
            .file(".wh..wh.plnk", b"")
            .bytes();
        let (dir, result) = unpack(&bytes);
        assert_eq!(result.unwrap(), Digest::of(&bytes));
        let root = dir.path();
        assert_eq!(
            fs::read(root.join("etc/hosts")).unwrap(),
            b"127.0.0.1 localhost\n"
        );
        let motd = fs::symlink_metadata(root.join("etc/motd")).unwrap();
        assert!(motd.file_type().is_char_device());
        assert_eq!(motd.rdev(), 0);
        assert!(!root.join("etc/.wh.motd").exists());
        assert_eq!(
            get_xattr(&root.join("var"), c"trusted.overlay.opaque").unwrap(),
            b"y"
        );
        assert!(!root.join("var/.wh..wh..opq").exists());
        assert!(!root.join(".wh..wh.plnk").exists());
        assert_eq!(fs::metadata(root.join("etc")).unwrap().mtime(), 1_000_000);
    }

    #[test]
    fn paths_that_leave_the_layer_are_refused_naming_the_entry() {
        refused(&Layer::new().file("../escaped", b"x").bytes(), "../escaped");
        refused(
            &Layer::new().file("a/../../escaped", b"x").bytes(),
            "a/../../escaped",
        );
        refused(
            &Layer::new().file("/etc/escaped", b"x").bytes(),
            "/etc/escaped",
        );
        refused(&Layer::new().symlink("up", "../../etc").bytes(), "up");
        refused(
            &Layer::new().symlink("a/b/up", "../../../x").bytes(),
            "a/b/up",
        );
        // A symlink (even an absolute one, kept as is) followed by an entry written through it.
        refused(
            &Layer::new()
                .symlink("etc", "/etc")
                .file("etc/escaped", b"x")
                .bytes(),
            "etc/escaped",
        );
        refused(
            &Layer::new()
                .symlink("d", "sub")
                .dir("sub/")
                .file("d/f", b"x")
                .bytes(),
            "d/f",
        );
        refused(
            &Layer::new()
                .file("f", b"x")
                .raw(EntryType::Link, "l", Some("../f"), b"", 0o644)
                .bytes(),
            "l",
        );
        refused(
            &Layer::new()
                .symlink("s", "/etc")
                .raw(EntryType::Link, "l", Some("s/passwd"), b"", 0o644)
                .bytes(),
            "l",
        );
    }

    #[test]
    fn symlinks_that_stay_inside_are_kept() {
        let bytes = Layer::new()
            .dir("usr/lib/")
            .symlink("lib", "usr/lib")
            .symlink("usr/lib/up", "../../bin")
            .symlink("sh", "/bin/busybox")
            .bytes();
        let (dir, result) = unpack(&bytes);
        result.unwrap();
        assert_eq!(
            fs::read_link(dir.path().join("lib")).unwrap(),
            Path::new("usr/lib")
        );
        assert_eq!(
            fs::read_link(dir.path().join("sh")).unwrap(),
            Path::new("/bin/busybox")
        );
    }

    #[test]
    fn a_truncated_compressed_layer_is_corrupt() {
        let tar = Layer::new().file("f", &[1u8; 100_000]).bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let (_dir, result) = unpack(&gz[..gz.len() - 20]);
        assert!(
            matches!(result, Err(Error::LayerCorrupt { .. })),
            "{result:?}"
        );
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        let (_dir, result) = unpack(&zst[..zst.len() / 2]);
        assert!(
            matches!(result, Err(Error::LayerCorrupt { .. })),
            "{result:?}"
        );
        let (dir, result) = unpack(&zst);
        assert_eq!(result.unwrap(), Digest::of(&tar));
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), vec![1u8; 100_000]);
    }
}
