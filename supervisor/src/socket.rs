//! Binding the daemon's unix socket: refuse to run beside a live ctrd, replace a stale socket,
//! and never widen permissions.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask, Mode};
use nix::unistd::{chown, Gid, Uid};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another ctrd is already serving on {0}; stop it first or pass another --socket")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; remove it or pass another --socket")]
    NotASocket(PathBuf),
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Binds `path` with mode 0600 (root only), or 0660 owned by root and `group`.
pub fn bind(path: &Path, group: Option<Gid>) -> Result<UnixListener, SocketError> {
    let io_err = |op, source| SocketError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    if let Ok(meta) = fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(SocketError::NotASocket(path.to_path_buf()));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse(path.to_path_buf()));
        }
        log::info!("replacing stale socket {}", path.display());
        fs::remove_file(path).map_err(|e| io_err("remove stale socket", e))?;
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err("create the directory of", e))?;
    }
    // The socket is born 0600: no moment when another user could connect. umask is
    // process-wide; this runs before the daemon starts any thread.
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(|e| io_err("bind", e))?;
    if let Some(group) = group {
        chown(path, Some(Uid::from_raw(0)), Some(group))
            .map_err(|e| io_err("set the group of", e.into()))?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| io_err("set the mode of", e))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_live_socket_and_replaces_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let live = bind(&path, None).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(bind(&path, None), Err(SocketError::InUse(_))));
        drop(live);
        bind(&path, None).expect("a stale socket is replaced");
    }

    #[test]
    fn a_group_socket_is_0660_and_owned_by_the_group() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _live = bind(&path, Some(Gid::from_raw(65534))).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!((meta.uid(), meta.gid()), (0, 65534));
    }

    #[test]
    fn refuses_to_remove_a_file_that_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precious");
        fs::write(&path, "data").unwrap();
        assert!(matches!(bind(&path, None), Err(SocketError::NotASocket(_))));
        assert_eq!(fs::read_to_string(&path).unwrap(), "data");
    }
}
