//! Telling a service manager how ctrd is doing: systemd's notification protocol (`sd_notify`),
//! one `READY=1` or `STOPPING=1` datagram to the unix socket named by `$NOTIFY_SOCKET`.
//!
//! Ready means a client can be served: a probe connects to ctrd's socket and asks the supervisor
//! for its info, and only its answer sends `READY=1`. systemd starts units that depend on ctrd
//! at that moment, so it must not come earlier.

use std::ffi::OsString;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

use protocol::Client;

const VARIABLE: &str = "NOTIFY_SOCKET";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{VARIABLE}={0:?} is neither an absolute path nor an abstract socket name (@NAME)")]
    Address(OsString),
    #[error("cannot use {VARIABLE}={address:?}: {source}")]
    Io {
        address: OsString,
        source: io::Error,
    },
}

/// Where notifications go. Owned by the daemon's start-up; cloned into the readiness probe.
#[derive(Debug, Clone)]
pub struct Notifier {
    address: SocketAddr,
    /// As given in `$NOTIFY_SOCKET`, for messages.
    name: OsString,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for, if any. The variable is removed from ctrd's
    /// environment: runc acts on `NOTIFY_SOCKET` itself (it would wait for a container to
    /// report ready), so it must not inherit it. Call before any thread starts.
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        let Some(name) = std::env::var_os(VARIABLE) else {
            return Ok(None);
        };
        std::env::remove_var(VARIABLE);
        Notifier::new(name).map(Some)
    }

    /// A notifier for `name`: an absolute path, or `@NAME` in the abstract namespace.
    pub fn new(name: OsString) -> Result<Notifier, NotifyError> {
        let bytes = name.as_bytes();
        let address = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddr::from_pathname(Path::new(&name)),
            _ => return Err(NotifyError::Address(name)),
        }
        .map_err(|source| NotifyError::Io {
            address: name.clone(),
            source,
        })?;
        Ok(Notifier { address, name })
    }

    /// Sends one notification, such as `READY=1\nSTATUS=...`.
    pub fn notify(&self, state: &str) -> Result<(), NotifyError> {
        let io_err = |source| NotifyError::Io {
            address: self.name.clone(),
            source,
        };
        let socket = UnixDatagram::unbound().map_err(io_err)?;
        socket
            .send_to_addr(state.as_bytes(), &self.address)
            .map_err(io_err)?;
        Ok(())
    }

    /// Sends `READY=1` from a thread of its own once a request on `socket` has been answered.
    /// A probe that fails sends nothing: the service manager then sees ctrd never got ready.
    pub fn ready_when_serving(self, socket: PathBuf) -> io::Result<()> {
        std::thread::Builder::new()
            .name("readiness".into())
            .spawn(
                move || match Client::connect(&socket).and_then(|mut c| c.info()) {
                    Ok(_) => {
                        let status = format!("READY=1\nSTATUS=serving on {}", socket.display());
                        match self.notify(&status) {
                            Ok(()) => log::debug!("told the service manager ctrd is ready"),
                            Err(e) => log::warn!("{e}"),
                        }
                    }
                    Err(e) => log::error!(
                        "not telling the service manager ctrd is ready: {} does not serve: {e}",
                        socket.display()
                    ),
                },
            )
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        Notifier::new(path.into_os_string())
            .unwrap()
            .notify("READY=1")
            .unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("ctrd-notify-test-{}", std::process::id());
        let abstract_addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&abstract_addr).unwrap();
        Notifier::new(format!("@{name}").into())
            .unwrap()
            .notify("STOPPING=1")
            .unwrap();
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn refuses_a_relative_or_empty_address() {
        for bad in ["relative.sock", ""] {
            assert!(matches!(
                Notifier::new(bad.into()),
                Err(NotifyError::Address(_))
            ));
        }
    }
}
