//! A small blocking client: one request at a time on one connection.
//!
//! Used by `ctr`, the integration tests and the benchmark. Every call returns a typed error; a
//! response of the wrong kind is [`ClientError::Unexpected`], never a panic.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::frame::{self, FrameError};
use crate::message::*;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to ctrd at {path}: {source} (is ctrd running? see --address)")]
    Connect { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("ctrd closed the connection")]
    Closed,
    #[error("protocol version mismatch: this client speaks {ours}, ctrd {daemon_version} speaks {theirs}; use matching versions")]
    VersionMismatch {
        ours: u32,
        theirs: u32,
        daemon_version: String,
    },
    /// The daemon answered with a typed error.
    #[error("{0}")]
    Daemon(ErrorResponse),
    #[error("unexpected response from ctrd: {0}")]
    Unexpected(String),
}

impl ClientError {
    /// The daemon's error kind, when the daemon is what refused.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Daemon(e) => Some(e.kind),
            _ => None,
        }
    }
}

pub struct Client {
    stream: UnixStream,
    daemon: Hello,
    max_frame: usize,
}

impl Client {
    /// Connects and performs the version handshake.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        let path = path.as_ref();
        let mut stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        frame::write_frame(&mut stream, &Hello::ours())?;
        let daemon: Hello =
            frame::read_frame(&mut stream, crate::DEFAULT_MAX_FRAME)?.ok_or(ClientError::Closed)?;
        if daemon.protocol != crate::PROTOCOL_VERSION {
            return Err(ClientError::VersionMismatch {
                ours: crate::PROTOCOL_VERSION,
                theirs: daemon.protocol,
                daemon_version: daemon.version,
            });
        }
        Ok(Client {
            stream,
            daemon,
            max_frame: crate::DEFAULT_MAX_FRAME,
        })
    }

    /// What the daemon said of itself in the handshake.
    pub fn daemon(&self) -> &Hello {
        &self.daemon
    }

    /// Sends one request and returns its response; an error response becomes `Err`.
    pub fn call(&mut self, req: impl Into<Request>) -> Result<Response, ClientError> {
        frame::write_frame(&mut self.stream, &req.into())?;
        match self.read()? {
            Response::Error(e) => Err(ClientError::Daemon(e)),
            resp => Ok(resp),
        }
    }

    /// Starts a container and returns its init pid once it runs.
    pub fn start(&mut self, req: StartRequest) -> Result<u32, ClientError> {
        match self.call(req)? {
            Response::Started(s) => Ok(s.pid),
            other => Err(unexpected(other)),
        }
    }

    pub fn kill(&mut self, req: KillRequest) -> Result<(), ClientError> {
        match self.call(req)? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub fn list(&mut self, namespace: &str) -> Result<Vec<Container>, ClientError> {
        let req = ListRequest {
            namespace: namespace.into(),
        };
        match self.call(req)? {
            Response::Containers(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    pub fn state(&mut self, namespace: &str, id: &str) -> Result<Container, ClientError> {
        let req = StateRequest {
            namespace: namespace.into(),
            id: id.into(),
        };
        match self.call(req)? {
            Response::Container(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    pub fn info(&mut self) -> Result<DaemonInfo, ClientError> {
        match self.call(InfoRequest {})? {
            Response::Info(i) => Ok(i),
            other => Err(unexpected(other)),
        }
    }

    pub fn metrics(&mut self) -> Result<MetricsReport, ClientError> {
        match self.call(MetricsRequest {})? {
            Response::Metrics(m) => Ok(m),
            other => Err(unexpected(other)),
        }
    }

    /// Turns this connection into the namespace's event stream.
    pub fn subscribe(mut self, namespace: &str) -> Result<EventStream, ClientError> {
        let req = SubscribeRequest {
            namespace: namespace.into(),
        };
        match self.call(req)? {
            Response::Subscribed => Ok(EventStream { client: self }),
            other => Err(unexpected(other)),
        }
    }

    fn read(&mut self) -> Result<Response, ClientError> {
        frame::read_frame(&mut self.stream, self.max_frame)?.ok_or(ClientError::Closed)
    }
}

/// Events in the order the daemon emitted them; ends when the daemon closes the stream.
pub struct EventStream {
    client: Client,
}

impl EventStream {
    /// The next event, or `Ok(None)` once the daemon has closed the stream.
    pub fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        match frame::read_frame(&mut self.client.stream, self.client.max_frame)? {
            None => Ok(None),
            Some(Response::Event(e)) => Ok(Some(e)),
            Some(Response::Error(e)) => Err(ClientError::Daemon(e)),
            Some(other) => Err(unexpected(other)),
        }
    }

    /// Bounds how long [`EventStream::next_event`] waits; a timeout surfaces as an i/o error.
    pub fn set_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.client.stream.set_read_timeout(timeout)
    }
}

impl Iterator for EventStream {
    type Item = Result<Event, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

fn unexpected(resp: Response) -> ClientError {
    let name = match resp {
        Response::Started(_) => "started",
        Response::Done => "done",
        Response::Containers(_) => "containers",
        Response::Container(_) => "container",
        Response::Subscribed => "subscribed",
        Response::Event(_) => "event",
        Response::Info(_) => "info",
        Response::Error(_) => "error",
        Response::Metrics(_) => "metrics",
    };
    ClientError::Unexpected(name.to_string())
}
