//! Hostile bytes on the socket cost only their own connection.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;

use common::*;
use protocol::frame::{self, HEADER_LEN};
use protocol::{Client, ClientError, Hello, Response, DEFAULT_NAMESPACE};

/// Reads until the daemon closes the connection; returns the error frame it sent first, if any.
/// A daemon that closes with our bytes unread makes the kernel report a reset after the data.
fn read_until_closed(mut stream: UnixStream) -> Option<Response> {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut bytes = Vec::new();
    if let Err(e) = stream.read_to_end(&mut bytes) {
        assert_eq!(
            e.kind(),
            ErrorKind::ConnectionReset,
            "the daemon closes the connection"
        );
    }
    if bytes.len() < HEADER_LEN {
        return None;
    }
    frame::decode(&bytes[HEADER_LEN..]).ok()
}

fn assert_protocol_error(response: Option<Response>, expected: &str) {
    match response {
        Some(Response::Error(e)) => {
            assert_eq!(e.kind, protocol::ErrorKind::Protocol);
            assert!(e.message.contains(expected), "{}", e.message);
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

fn hello_frame() -> Vec<u8> {
    frame::encode(&Hello::ours()).unwrap()
}

/// A connection that has said hello, ready for a bad request.
fn greeted(daemon: &Daemon) -> UnixStream {
    let mut stream = raw_connection(&daemon.socket, &hello_frame());
    let hello: Hello = frame::read_frame(&mut stream, 1024).unwrap().unwrap();
    assert_eq!(hello.protocol, protocol::PROTOCOL_VERSION);
    stream
}

#[test]
fn garbage_instead_of_a_hello_closes_that_connection_only() {
    let daemon = Daemon::start();
    let stream = raw_connection(&daemon.socket, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_protocol_error(read_until_closed(stream), "exceeds the limit");
    assert!(daemon.client().list(DEFAULT_NAMESPACE).is_ok());
}

#[test]
fn garbage_payload_and_oversized_length_after_the_hello() {
    let daemon = Daemon::start();
    let mut stream = greeted(&daemon);
    stream
        .write_all(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    assert_protocol_error(read_until_closed(stream), "undecodable frame");

    let mut stream = greeted(&daemon);
    stream.write_all(&(u32::MAX).to_be_bytes()).unwrap();
    assert_protocol_error(read_until_closed(stream), "exceeds the limit");
    assert!(daemon.client().list(DEFAULT_NAMESPACE).is_ok());
}

#[test]
fn a_configured_frame_limit_is_enforced() {
    let daemon = Daemon::start_with(&["--max-frame-size", "64"]);
    let mut stream = greeted(&daemon);
    // One write: the daemon refuses on the header and closes, so a second write could meet a
    // closed socket (EPIPE) before the error frame is read.
    let mut frame = 100u32.to_be_bytes().to_vec();
    frame.extend([0u8; 100]);
    stream.write_all(&frame).unwrap();
    assert_protocol_error(
        read_until_closed(stream),
        "100 bytes exceeds the limit of 64",
    );
}

/// A `ctrd` expected to refuse to start; one that started anyway is stopped when the test ends.
struct Refused(Child);

impl Drop for Refused {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill(2) on the pid of our own child, which has not been waited for.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
}

/// A frame limit the protocol cannot carry is refused before anything starts, not quietly
/// capped below what the flag says.
#[test]
fn a_frame_limit_above_what_the_protocol_carries_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let too_large = (protocol::MAX_FRAME + 1).to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ctrd"));
    command
        .arg("--state-dir")
        .arg(&state)
        .arg("--socket")
        .arg(dir.path().join("ctrd.sock"))
        .args(["--max-frame-size", &too_large])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut ctrd = Refused(command.spawn().unwrap());
    let exited = wait_until("ctrd to refuse its flags", || ctrd.0.try_wait().unwrap());
    let mut stderr = String::new();
    let mut pipe = ctrd.0.stderr.take().unwrap();
    pipe.read_to_string(&mut stderr).unwrap();
    assert!(!exited.success(), "{stderr}");
    let expected = format!(
        "{too_large} bytes is more than the protocol carries: a frame holds at most {} bytes",
        protocol::MAX_FRAME
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("--max-frame-size"), "{stderr}");
    assert!(!state.exists(), "a refused start made {}", state.display());
}

#[test]
fn a_half_sent_frame_does_not_hold_up_other_clients() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut stalled = greeted(&daemon);
    stalled.write_all(&100u32.to_be_bytes()).unwrap();
    stalled.write_all(&[0u8; 10]).unwrap();
    // While that frame hangs half-sent, others are served, a start included.
    let id = unique_id("halfsent");
    daemon.start_container(&id, &bundle);
    daemon.kill(&id, libc::SIGKILL);
    stalled.shutdown(Shutdown::Write).unwrap();
    assert_protocol_error(read_until_closed(stalled), "closed inside a frame");
    assert!(daemon.client().list(DEFAULT_NAMESPACE).is_ok());
}

/// A client speaking another protocol version gets the daemon's hello, so it can tell the user
/// which version it met, and then a closed connection; the daemon logs why and serves on.
#[test]
fn the_daemon_answers_another_protocol_version_with_its_hello_and_hangs_up() {
    let daemon = Daemon::start();
    let theirs = Hello {
        protocol: protocol::PROTOCOL_VERSION + 1,
        version: "9.9.9".into(),
    };
    let mut stream = raw_connection(&daemon.socket, &frame::encode(&theirs).unwrap());
    let hello: Hello = frame::read_frame(&mut stream, 1024).unwrap().unwrap();
    assert_eq!(hello, Hello::ours());
    assert!(read_until_closed(stream).is_none());
    let refused = format!(
        "refused a client speaking protocol {} (version 9.9.9)",
        protocol::PROTOCOL_VERSION + 1
    );
    wait_until("the daemon to log the refusal", || {
        daemon.log().contains(&refused).then_some(())
    });
    assert!(daemon.client().list(DEFAULT_NAMESPACE).is_ok());
}

/// A stand-in for a ctrd of another protocol version: it answers each of `connections`
/// handshakes with its own hello after checking the client's.
fn daemon_of_another_version(socket: &Path, connections: usize) -> thread::JoinHandle<()> {
    let listener = UnixListener::bind(socket).unwrap();
    thread::spawn(move || {
        for _ in 0..connections {
            let (mut stream, _) = listener.accept().unwrap();
            let theirs: Hello = frame::read_frame(&mut stream, 1024).unwrap().unwrap();
            assert_eq!(theirs, Hello::ours());
            let other = Hello {
                protocol: protocol::PROTOCOL_VERSION + 1,
                version: "9.9.9".into(),
            };
            frame::write_frame(&mut stream, &other).unwrap();
        }
    })
}

/// The client library and `ctr` meet a daemon of another protocol version: a typed error with
/// both versions, and a message that says what to do.
#[test]
fn the_client_and_ctr_refuse_a_daemon_of_another_protocol_version() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("other.sock");
    let other = daemon_of_another_version(&socket, 2);

    match Client::connect(&socket) {
        Err(ClientError::VersionMismatch {
            ours,
            theirs,
            daemon_version,
        }) => {
            assert_eq!(ours, protocol::PROTOCOL_VERSION);
            assert_eq!(theirs, protocol::PROTOCOL_VERSION + 1);
            assert_eq!(daemon_version, "9.9.9");
        }
        Err(other) => panic!("expected a version mismatch, got {other}"),
        Ok(_) => panic!("the client accepted a daemon of another protocol version"),
    }

    let out = Command::new(ctr_binary())
        .arg("--address")
        .arg(&socket)
        .arg("info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    let expected = format!(
        "protocol version mismatch: this client speaks {}, ctrd 9.9.9 speaks {}; use matching \
         versions",
        protocol::PROTOCOL_VERSION,
        protocol::PROTOCOL_VERSION + 1
    );
    assert!(stderr.contains(&expected), "{stderr}");
    other.join().unwrap();
}

#[test]
fn a_silent_connection_does_not_stop_the_daemon() {
    let daemon = Daemon::start();
    let silent: Vec<UnixStream> = (0..50)
        .map(|_| UnixStream::connect(&daemon.socket).unwrap())
        .collect();
    let mut client = daemon.client();
    client.info().unwrap();
    drop(silent);
    let info = client.info().unwrap();
    assert_eq!(info.keeper_pid, daemon.pid());
}
