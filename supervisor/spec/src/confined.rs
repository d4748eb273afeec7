//! Reading a file of a container's rootfs as the container would see it: every path, and every
//! symlink met on the way, is resolved with the rootfs as `/` (`openat2` with
//! `RESOLVE_IN_ROOT`), so an image whose `/etc/passwd` links to `/../../etc/shadow` gets its own
//! (missing) file, never the host's.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// The contents of `path` (relative to the rootfs) in `rootfs`; `None` if there is no such file.
pub fn read(rootfs: &Path, path: &str) -> io::Result<Option<String>> {
    let root = File::open(rootfs)?;
    let name = CString::new(path.trim_start_matches('/'))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain integers, all zero meaning "nothing asked for".
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    let root_fd = std::os::fd::AsRawFd::as_raw_fd(&root);
    // SAFETY: `name` is a NUL-terminated string and `how` a valid open_how of the size passed;
    // the syscall returns a new fd that nothing else owns.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root_fd,
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => Ok(None),
            _ => Err(err),
        };
    }
    // SAFETY: a fresh fd returned by openat2 above.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(Some(text))
}
