//! Terminals: the console socket runc sends a pty master to, and the relay between that master
//! and the client's FIFOs.
//!
//! The relay runs on threads of its own (one per direction), never in a worker or the actor: it
//! lives as long as the process. The output thread ends when the process and everything that held
//! its terminal are gone (the master reads `EIO`), and closing the client's stdout FIFO then is
//! what tells the client the output is complete.

use std::fs::{self, File};
use std::io::{self, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use runtime::RuntimeError;

/// How long runc may take to hand over the master once it has returned: it sends it before it
/// returns, so this only bounds a runtime that breaks that promise.
const RECEIVE_WAIT: Duration = Duration::from_secs(5);

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Winsize {
    pub rows: u16,
    pub cols: u16,
}

/// A listening socket in a private directory, removed with it when dropped. Its path is short
/// (under the system temp dir) because a socket path is limited to 108 bytes.
pub struct ConsoleSocket {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn bind() -> Result<ConsoleSocket, RuntimeError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ctrd-console-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| RuntimeError::io("cannot create", &dir, e))?;
        let path = dir.join("sock");
        let listener = UnixListener::bind(&path).map_err(|e| {
            let _ = fs::remove_dir(&dir);
            RuntimeError::io("cannot bind", &path, e)
        })?;
        Ok(ConsoleSocket {
            dir,
            path,
            listener,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the pty master runc sent.
    pub fn receive(&self) -> Result<File, RuntimeError> {
        let failed = |e: io::Error| RuntimeError::io("no terminal received on", &self.path, e);
        self.listener.set_nonblocking(true).map_err(failed)?;
        let fd = self.listener.as_fd();
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(RECEIVE_WAIT).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(0) => return Err(failed(io::ErrorKind::TimedOut.into())),
            Ok(_) => {}
            Err(e) => return Err(failed(e.into())),
        }
        let (conn, _) = self.listener.accept().map_err(failed)?;
        conn.set_nonblocking(false).map_err(failed)?;
        conn.set_read_timeout(Some(RECEIVE_WAIT)).map_err(failed)?;
        receive_fd(conn.as_raw_fd()).map_err(failed)
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_dir(&self.dir);
    }
}

fn receive_fd(socket: RawFd) -> io::Result<File> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            let mut owned = fds.into_iter().map(|fd| {
                // SAFETY: the kernel just installed these fds in our table for this message;
                // nothing else owns them.
                unsafe { OwnedFd::from_raw_fd(fd) }
            });
            if let Some(first) = owned.next() {
                return Ok(File::from(first));
            }
        }
    }
    Err(io::Error::other("the message carried no file descriptor"))
}

/// Sets the size of the terminal whose master is `master`.
pub fn resize(master: &impl AsRawFd, size: Winsize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes the master runc sent to `socket`, sizes it when `size` is given, and relays it to the
/// client's FIFOs; returns a handle on the master for later resizes.
pub fn attach(
    socket: &ConsoleSocket,
    stdin: Option<File>,
    stdout: File,
    size: Option<Winsize>,
    label: String,
) -> Result<File, RuntimeError> {
    let master = socket.receive()?;
    let failed = |e: io::Error| RuntimeError::io("cannot relay the terminal of", &label, e);
    if let Some(size) = size {
        resize(&master, size).map_err(failed)?;
    }
    let resizer = master.try_clone().map_err(failed)?;
    relay(master, stdin, stdout, label.clone()).map_err(failed)?;
    Ok(resizer)
}

/// Relays the master to the client: its output to `stdout`, and `stdin` (when given) into it.
fn relay(master: File, stdin: Option<File>, stdout: File, label: String) -> io::Result<()> {
    if let Some(stdin) = stdin {
        let input = master.try_clone()?;
        thread::Builder::new()
            .name("tty-in".into())
            .spawn(move || copy_in(stdin, input))?;
    }
    thread::Builder::new()
        .name("tty-out".into())
        .spawn(move || copy_out(master, stdout, &label))?;
    Ok(())
}

/// Until the client closes its stdin, or the terminal is gone.
fn copy_in(mut stdin: File, mut master: File) {
    let _ = io::copy(&mut stdin, &mut master);
}

/// Until the terminal is gone. A client that went away stops getting the output, but the master is
/// still drained, so the process never blocks on a full terminal.
fn copy_out(mut master: File, mut stdout: File, label: &str) {
    let mut buf = [0u8; 8192];
    let mut client = true;
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if client && stdout.write_all(&buf[..n]).is_err() {
                    log::debug!("{label}: the client stopped reading its terminal");
                    client = false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EIO: every holder of the terminal's other side has closed it.
            Err(_) => break,
        }
    }
}
