//! Hostile bytes on the socket cost only their own connection.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

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

#[test]
fn a_version_mismatch_is_a_clear_error() {
    let daemon = Daemon::start();
    let theirs = Hello {
        protocol: 999,
        version: "9.9.9".into(),
    };
    let mut stream = raw_connection(&daemon.socket, &frame::encode(&theirs).unwrap());
    let hello: Hello = frame::read_frame(&mut stream, 1024).unwrap().unwrap();
    assert_eq!(hello, Hello::ours());
    assert!(read_until_closed(stream).is_none());
    // And the client library says so in words.
    let err = ClientError::VersionMismatch {
        ours: protocol::PROTOCOL_VERSION,
        theirs: 999,
        daemon_version: "9.9.9".into(),
    };
    assert!(err.to_string().contains("protocol version mismatch"));
    assert!(Client::connect(&daemon.socket).is_ok());
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
