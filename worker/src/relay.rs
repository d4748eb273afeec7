//! A container's stdout and stderr: pipes, copied into their files by a relay thread.
//!
//! CRIU dumps an open file only when the path is reachable inside the container's mount
//! namespace; a log file in ctrd's state dir is not, so a container writing straight to it could
//! never be checkpointed. Pipes it can dump, and on restore runc hands the restored process new
//! pipes in their place (CRIU's inherit-fd). So every container writes into pipes, and one thread
//! per container copies both into the files until the last writer in the container is gone.
//!
//! The relay thread ends by itself at EOF; [`Relay::wait`] lets whoever reports the container's
//! exit do so only after its last output is in the files.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};

/// Enough for the two copy buffers; the thread does nothing else.
const STACK_SIZE: usize = 64 * 1024;

const BUFFER: usize = 16 * 1024;

/// Owned by whoever tracks the container; dropping it leaves the thread running until EOF.
#[derive(Debug)]
pub struct Relay {
    /// Disconnected when the thread has copied everything and ended.
    done: Receiver<()>,
}

/// The write ends, for the container's stdout and stderr.
pub struct RelayInputs {
    pub stdout: File,
    pub stderr: File,
}

impl Relay {
    /// Makes the two pipes and starts copying them into `stdout` and `stderr`. The pipes are
    /// close-on-exec: only the process they are handed to as stdio gets them.
    pub fn start(name: &str, stdout: File, stderr: File) -> io::Result<(Relay, RelayInputs)> {
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        let (done_tx, done) = bounded::<()>(0);
        thread::Builder::new()
            .name(format!("relay-{name}"))
            .stack_size(STACK_SIZE)
            .spawn(move || {
                copy_until_eof(vec![
                    (File::from(out_read), stdout),
                    (File::from(err_read), stderr),
                ]);
                drop(done_tx);
            })?;
        let inputs = RelayInputs {
            stdout: File::from(out_write),
            stderr: File::from(err_write),
        };
        Ok((Relay { done }, inputs))
    }

    /// Waits up to `timeout` for the relay to copy its last bytes; false if it has not.
    pub fn wait(&self, timeout: Duration) -> bool {
        matches!(
            self.done.recv_timeout(timeout),
            Err(RecvTimeoutError::Disconnected) | Ok(())
        )
    }
}

/// Copies each pipe into its file as data comes, until every pipe is at EOF. A failing write
/// is logged and the pipe kept draining, so the container never blocks on a full pipe.
fn copy_until_eof(mut streams: Vec<(File, File)>) {
    let mut buf = vec![0u8; BUFFER];
    let mut warned = false;
    while !streams.is_empty() {
        let mut fds: Vec<libc::pollfd> = streams
            .iter()
            .map(|(pipe, _)| libc::pollfd {
                fd: pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live, correctly sized array of pollfd for the whole call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error!("relay poll: {err}; container output is no longer copied");
            return;
        }
        // Backwards, so removing a finished stream leaves the indices still to visit intact.
        for at in (0..fds.len()).rev() {
            if fds[at].revents == 0 {
                continue;
            }
            let (pipe, file) = &mut streams[at];
            match pipe.read(&mut buf) {
                Ok(0) => {
                    streams.remove(at);
                }
                Ok(n) => {
                    if let Err(e) = file.write_all(&buf[..n]) {
                        if !warned {
                            log::warn!("cannot write container output: {e}; dropping it");
                            warned = true;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("cannot read container output: {e}");
                    streams.remove(at);
                }
            }
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array, which outlives the call.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these fds to us and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn copies_both_streams_and_ends_when_the_writers_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let (relay, mut inputs) = Relay::start(
            "test",
            File::create(&out).unwrap(),
            File::create(&err).unwrap(),
        )
        .unwrap();
        inputs.stdout.write_all(b"hello\n").unwrap();
        inputs.stderr.write_all(b"oops\n").unwrap();
        assert!(!relay.wait(Duration::from_millis(1)), "writers still open");
        inputs.stdout.write_all(b"bye\n").unwrap();
        drop(inputs);
        assert!(relay.wait(Duration::from_secs(5)));
        assert_eq!(fs::read_to_string(&out).unwrap(), "hello\nbye\n");
        assert_eq!(fs::read_to_string(&err).unwrap(), "oops\n");
    }

    #[test]
    fn a_child_writes_through_the_pipes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let (relay, inputs) = Relay::start(
            "child",
            File::create(&out).unwrap(),
            File::create(dir.path().join("err")).unwrap(),
        )
        .unwrap();
        let status = std::process::Command::new("sh")
            .args(["-c", "echo from-child"])
            .stdout(inputs.stdout)
            .stderr(inputs.stderr)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(relay.wait(Duration::from_secs(5)));
        assert_eq!(fs::read_to_string(&out).unwrap(), "from-child\n");
    }
}
