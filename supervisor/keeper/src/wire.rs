//! What the keeper and the daemon say to each other over their `SOCK_SEQPACKET` socketpair.
//!
//! One message per datagram, bincode-encoded; file descriptors ride along as `SCM_RIGHTS`. A
//! datagram keeps its boundaries and its descriptors together, so neither side frames anything.
//! Both ends always run the same binary (an upgrade re-executes the keeper before it starts the
//! new daemon), so the messages carry no version.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The largest message either side sends; a token is a namespace, an id and a number.
pub const MAX_MESSAGE: usize = 4096;

/// The most descriptors one message carries.
const MAX_FDS: usize = 4;

/// The environment variable that hands the daemon its end of the socketpair: a descriptor
/// number. The keeper sets it; its presence is what makes `ctrd` run as the daemon.
pub const KEEPER_FD_ENV: &str = "CTRD_KEEPER_FD";

/// The environment variable that hands the daemon (and a re-executed keeper) the listening
/// socket, so clients queue in its backlog while a daemon restarts instead of being refused.
pub const LISTEN_FD_ENV: &str = "CTRD_LISTEN_FD";

/// One reaped process, as the keeper logged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Numbers the keeper's exits from 1, continued across keeper restarts; the daemon
    /// acknowledges by it.
    pub seq: u64,
    pub pid: u32,
    /// The process's start time (`/proc/<pid>/stat` field 22, clock ticks since boot), read
    /// while it was a zombie: with the pid it names the process unambiguously. `None` when it
    /// could not be read.
    pub start_time: Option<u64>,
    /// The raw `waitpid` status.
    pub status: i32,
    /// When it was reaped: `CLOCK_REALTIME` nanoseconds.
    pub wall_ns: u64,
    /// When it was reaped: `CLOCK_MONOTONIC` nanoseconds, comparable with the daemon's clock.
    pub mono_ns: u64,
}

/// Keeper to daemon. On a new daemon's socketpair the keeper first sends `Hello`, then every
/// kept output (`Outputs`) and every exit not yet acknowledged (`Exit`), then `ReplayDone`;
/// what follows is live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToDaemon {
    Hello {
        keeper_pid: u32,
    },
    /// The read ends of a container's stdout and stderr pipes (two descriptors, in that order),
    /// kept since the daemon's `Keep` with this token.
    Outputs {
        token: String,
    },
    Exit(ExitRecord),
    ReplayDone,
    /// The answer to [`ToKeeper::Sync`]: every exit the keeper reaped before it read the `Sync`
    /// precedes this message on the socket.
    Synced,
    /// Finish what is in flight, end the streams and exit 0 without touching a container:
    /// the keeper starts a new daemon (from the binary on disk) in its place.
    Handover,
}

/// Daemon to keeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToKeeper {
    /// The daemon serves clients; a daemon that dies before saying so failed to start.
    Ready,
    /// Hold these read ends (two descriptors: stdout, stderr) of a container's output pipes,
    /// so its writes never meet a closed pipe while no daemon reads them.
    Keep { token: String },
    /// The container is gone: close what `Keep` gave under this token.
    Release { token: String },
    /// The exit numbered `seq` is in the event journal (or was no container's): forget it.
    Ack { seq: u64 },
    /// Answer `Synced`. A new daemon asks once it has checked each recorded process: an exit the
    /// keeper reaped after building the replay comes live, and this tells the daemon when every
    /// exit of a process it found gone has come, if the keeper reaped it at all.
    Sync,
}

/// Sends `message` with `fds` attached. On a non-blocking socket a full buffer is
/// `WouldBlock` and nothing is sent.
pub fn send<T: Serialize>(socket: BorrowedFd, message: &T, fds: &[RawFd]) -> io::Result<()> {
    let bytes = bincode::serde::encode_to_vec(message, bincode::config::standard())
        .map_err(io::Error::other)?;
    if bytes.len() > MAX_MESSAGE || fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "keeper message too large",
        ));
    }
    let iov = [IoSlice::new(&bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    loop {
        match socket::sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message and the descriptors that came with it; `None` when the other side has
/// closed its end. An undecodable message is `InvalidData` (its descriptors are closed).
pub fn recv<T: DeserializeOwned>(socket: BorrowedFd) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut buf = [0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match socket::recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        // SAFETY: the kernel installed these descriptors in our table for this
                        // message; nothing else owns them.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                break (msg.bytes, fds);
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if len == 0 {
        return Ok(None);
    }
    let (message, _) = bincode::serde::decode_from_slice(&buf[..len], bincode::config::standard())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((message, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    #[test]
    fn messages_keep_their_descriptors() {
        let (a, b) = pair();
        let (read, write) = nix::unistd::pipe().unwrap();
        let token = "default/web/1700000000000000000".to_string();
        send(
            a.as_fd(),
            &ToKeeper::Keep {
                token: token.clone(),
            },
            &[read.as_raw_fd(), write.as_raw_fd()],
        )
        .unwrap();
        send(a.as_fd(), &ToKeeper::Ack { seq: 7 }, &[]).unwrap();
        let (first, fds) = recv::<ToKeeper>(b.as_fd()).unwrap().unwrap();
        assert_eq!(first, ToKeeper::Keep { token });
        assert_eq!(fds.len(), 2);
        // The descriptors are the same pipe: what goes into one copy comes out of the other.
        std::fs::File::from(fds[1].try_clone().unwrap())
            .write_all(b"x")
            .unwrap();
        let mut byte = [0u8];
        std::fs::File::from(read).read_exact(&mut byte).unwrap();
        assert_eq!(&byte, b"x");
        let (second, fds) = recv::<ToKeeper>(b.as_fd()).unwrap().unwrap();
        assert_eq!(second, ToKeeper::Ack { seq: 7 });
        assert!(fds.is_empty());
        drop(a);
        assert!(recv::<ToKeeper>(b.as_fd()).unwrap().is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (a, b) = pair();
        nix::unistd::write(&a, &[0xff; 64]).unwrap();
        let err = recv::<ToDaemon>(b.as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
