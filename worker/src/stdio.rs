//! Opening the files a process's stdio is made of, without ever blocking a worker.
//!
//! A client that attaches creates FIFOs and holds its ends open before it asks, so every open
//! here is non-blocking: a FIFO nobody holds is an error (`ENXIO`), not a worker stuck in
//! `open(2)`. Only FIFOs are accepted as a client's stdio, so a request cannot point a process's
//! output at an arbitrary file of the host.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use runtime::RuntimeError;

/// The direction a client's FIFO is used in by the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The process reads it (stdin).
    Read,
    /// The process writes it (stdout, stderr).
    Write,
}

/// Opens a client's FIFO for the process, non-blocking, then makes it blocking again: the process
/// must see ordinary blocking stdio.
pub fn open_fifo(path: &Path, direction: Direction) -> Result<File, RuntimeError> {
    let mut options = OpenOptions::new();
    match direction {
        Direction::Read => options.read(true),
        Direction::Write => options.write(true),
    };
    let file = options
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => RuntimeError::io(
                "nobody reads the fifo",
                path,
                io::Error::other("the client is gone"),
            ),
            _ => RuntimeError::io("cannot open", path, e),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| RuntimeError::io("cannot stat", path, e))?;
    if !meta.file_type().is_fifo() {
        return Err(RuntimeError::io(
            "refusing stdio",
            path,
            io::Error::other("not a fifo"),
        ));
    }
    blocking(&file).map_err(|e| RuntimeError::io("cannot set flags of", path, e))?;
    Ok(file)
}

/// Opens a container's output file, appended to (created if need be), without blocking: a FIFO
/// there that nobody reads is an error, not a worker stuck in `open(2)`.
pub fn open_output(path: &Path) -> Result<File, RuntimeError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| RuntimeError::io("cannot open", path, e))?;
    blocking(&file).map_err(|e| RuntimeError::io("cannot set flags of", path, e))?;
    Ok(file)
}

/// Where a detached exec's output goes: the container's own output, as [`open_output`] opens
/// it; but when that is a FIFO whose reader is gone, or was removed with its directory (as an
/// attached client does once connected), the output is discarded, as no one could read it.
pub fn open_output_or_discard(path: &Path) -> Result<File, RuntimeError> {
    match open_output(path) {
        Err(RuntimeError::Io { source, .. })
            if matches!(source.raw_os_error(), Some(libc::ENXIO | libc::ENOENT)) =>
        {
            null()
        }
        opened => opened,
    }
}

/// `/dev/null` for writing: the stdio of a process whose output goes elsewhere (its terminal).
pub fn null() -> Result<File, RuntimeError> {
    OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|e| RuntimeError::io("cannot open", "/dev/null", e))
}

fn blocking(file: &File) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(file.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(
        file.as_raw_fd(),
        FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::Mode;
    use nix::unistd::mkfifo;

    #[test]
    fn a_fifo_without_reader_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        mkfifo(&fifo, Mode::S_IRWXU).unwrap();
        let err = open_fifo(&fifo, Direction::Write).unwrap_err().to_string();
        assert!(err.contains("nobody reads the fifo"), "{err}");
        // With a reader it opens, and blocking.
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let file = open_fifo(&fifo, Direction::Write).unwrap();
        let flags = fcntl(file.as_raw_fd(), FcntlArg::F_GETFL).unwrap();
        assert_eq!(flags & libc::O_NONBLOCK, 0);
        // A reader needs no writer to open.
        open_fifo(&fifo, Direction::Read).unwrap();
    }

    #[test]
    fn only_fifos_are_client_stdio() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let err = open_fifo(&file, Direction::Write).unwrap_err().to_string();
        assert!(err.contains("not a fifo"), "{err}");
    }

    #[test]
    fn output_to_an_abandoned_fifo_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        mkfifo(&fifo, Mode::S_IRWXU).unwrap();
        assert!(open_output(&fifo).is_err(), "nobody reads it");
        let mut file = open_output_or_discard(&fifo).unwrap();
        io::Write::write_all(&mut file, b"gone").unwrap();
        open_output_or_discard(&dir.path().join("gone/out")).unwrap();
        let log = dir.path().join("log");
        io::Write::write_all(&mut open_output(&log).unwrap(), b"a").unwrap();
        io::Write::write_all(&mut open_output(&log).unwrap(), b"b").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "ab");
    }
}
