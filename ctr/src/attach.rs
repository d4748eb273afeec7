//! `--attach`: ctr's own stdio wired to a process in a container through FIFOs, so the data
//! never passes through ctrd.
//!
//! The FIFOs live in a private temp directory, removed as soon as both ends are open. The order
//! of opens cannot deadlock and cannot give the process an early end of file:
//!
//! 1. before asking, ctr opens the read ends of stdout and stderr without blocking, and holds
//!    stdin open for reading *and* writing, so that stdin has a writer from the start;
//! 2. ctrd's worker opens its ends without blocking (each already has its peer) and hands them
//!    to runc;
//! 3. once the process runs, ctr opens stdin for writing (the process is its reader) and drops its
//!    placeholder: from then on ctr is stdin's only writer, and closing it is the process's EOF;
//! 4. ctr copies until the process's outputs reach end of file, and waits for its exit event.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{mkdtemp, mkfifo};
use protocol::{EventKind, EventStream};

use crate::error::Error;

/// The FIFOs of one attached process, with ctr's ends open.
pub struct Fifos {
    dir: PathBuf,
    stdin_path: PathBuf,
    stdout_path: PathBuf,
    stderr_path: Option<PathBuf>,
    /// Keeps stdin with a writer until ctr's real writer is open.
    stdin_placeholder: Option<File>,
    stdout: File,
    stderr: Option<File>,
}

impl Fifos {
    /// Makes the FIFOs (no stderr with a terminal, which has one output stream) and opens
    /// ctr's ends of them.
    pub fn create(with_stderr: bool) -> Result<Fifos, Error> {
        let template = std::env::temp_dir().join("ctr-attach-XXXXXX");
        let dir = mkdtemp(&template).map_err(|e| fifo_error("cannot create", &template, e))?;
        let make = |name: &str| -> Result<PathBuf, Error> {
            let path = dir.join(name);
            mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR)
                .map_err(|e| fifo_error("cannot create", &path, e))?;
            Ok(path)
        };
        let created = (|| {
            let stdin_path = make("stdin")?;
            let stdout_path = make("stdout")?;
            let stderr_path = with_stderr.then(|| make("stderr")).transpose()?;
            let placeholder = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&stdin_path)
                .map_err(|e| fifo_error("cannot open", &stdin_path, e))?;
            let stdout = open_reader(&stdout_path)?;
            let stderr = stderr_path.as_deref().map(open_reader).transpose()?;
            Ok(Fifos {
                dir: dir.clone(),
                stdin_path,
                stdout_path,
                stderr_path,
                stdin_placeholder: Some(placeholder),
                stdout,
                stderr,
            })
        })();
        if created.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        created
    }

    pub fn stdin_path(&self) -> String {
        self.stdin_path.to_string_lossy().into_owned()
    }

    pub fn stdout_path(&self) -> String {
        self.stdout_path.to_string_lossy().into_owned()
    }

    pub fn stderr_path(&self) -> Option<String> {
        self.stderr_path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// Once the process runs: starts copying ctr's stdin to it and its outputs to ctr's.
    pub fn connect(mut self) -> Result<Copies, Error> {
        let stdin = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.stdin_path)
            .map_err(|e| fifo_error("cannot open", &self.stdin_path, e))?;
        set_blocking(&stdin, &self.stdin_path)?;
        self.stdin_placeholder = None;
        let _ = fs::remove_dir_all(&self.dir);
        let out = dup_output(io::stdout().as_fd())?;
        let err = dup_output(io::stderr().as_fd())?;
        let stdout = self.stdout.try_clone().map_err(Error::Output)?;
        let stderr = self.stderr.take();
        let mut outputs = vec![spawn_copy("stdout", stdout, out)?];
        if let Some(stderr) = stderr {
            outputs.push(spawn_copy("stderr", stderr, err)?);
        }
        // Detached: it ends with ctr, or when ctr's stdin ends and closing the FIFO is the EOF.
        thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                let mut stdin_fifo = stdin;
                let _ = io::copy(&mut io::stdin().lock(), &mut stdin_fifo);
            })
            .map_err(Error::Output)?;
        Ok(Copies { outputs })
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The output copies of a connected process.
pub struct Copies {
    outputs: Vec<JoinHandle<()>>,
}

impl Copies {
    /// Waits until every output of the process has reached end of file.
    pub fn finish(self) {
        for copy in self.outputs {
            let _ = copy.join();
        }
    }
}

/// Waits for the exit event of process `name` (pid `pid`) of container `id`; its status.
pub fn wait_exit(events: &mut EventStream, id: &str, name: &str, pid: u32) -> Result<i32, Error> {
    for event in events {
        let event = event?;
        if event.kind == EventKind::Exit
            && event.id == id
            && event.process == name
            && event.pid == pid
        {
            return Ok(event.status.unwrap_or(-1));
        }
    }
    Err(Error::LostExit {
        id: id.to_string(),
        name: name.to_string(),
    })
}

fn open_reader(path: &Path) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fifo_error("cannot open", path, e))?;
    set_blocking(&file, path)?;
    Ok(file)
}

fn set_blocking(file: &File, path: &Path) -> Result<(), Error> {
    let set = || -> nix::Result<()> {
        let flags = OFlag::from_bits_truncate(fcntl(file.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(
            file.as_raw_fd(),
            FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK),
        )?;
        Ok(())
    };
    set().map_err(|e| fifo_error("cannot set flags of", path, e))
}

/// ctr's own output, unbuffered: a terminal shows a prompt without waiting for a newline.
fn dup_output(fd: std::os::fd::BorrowedFd<'_>) -> Result<File, Error> {
    fd.try_clone_to_owned()
        .map(File::from)
        .map_err(Error::Output)
}

/// Copies until end of file. Once ctr's output is closed the rest is still read and dropped, so
/// the process never blocks on a full FIFO.
fn spawn_copy(name: &str, mut from: File, mut to: File) -> Result<JoinHandle<()>, Error> {
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            let mut open = true;
            loop {
                match from.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if open && to.write_all(&buf[..n]).is_err() {
                            open = false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        })
        .map_err(Error::Output)
}

fn fifo_error(op: &'static str, path: &Path, e: impl Into<io::Error>) -> Error {
    Error::Fifo {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}
