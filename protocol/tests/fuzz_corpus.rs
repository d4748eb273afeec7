//! Replays the inputs the fuzzer kept (protocol/fuzz/corpus) through the decoders on every test
//! run, so what once reached new code keeps being checked without the fuzzer.

use std::fs;
use std::path::Path;

use protocol::frame::{at_end, decode, parse, read_frame, FrameError};
use protocol::{Hello, Request, Response};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| fs::read(entry.unwrap().path()).unwrap())
        .collect()
}

#[test]
fn the_frame_corpus_decodes_or_fails_cleanly() {
    let inputs = corpus("frame");
    assert!(!inputs.is_empty());
    for data in inputs {
        let mut input = &data[..];
        while let Ok(Some(_)) = read_frame::<Request>(&mut input, 1 << 20) {}
        let _ = read_frame::<Hello>(&mut &data[..], 1 << 20);
        let _ = read_frame::<Response>(&mut &data[..], 1 << 20);
    }
}

/// Every frame in `data` and how the input ended, read the way the client reads: exactly.
fn read_exactly(data: &[u8]) -> (Vec<Request>, Result<(), String>) {
    let mut input = data;
    let mut frames = Vec::new();
    loop {
        match read_frame::<Request>(&mut input, 1 << 20) {
            Ok(Some(request)) => frames.push(request),
            Ok(None) => return (frames, Ok(())),
            Err(e) => return (frames, Err(e.to_string())),
        }
    }
}

/// The same, read the way the daemon reads: frames taken off a buffer.
fn read_buffered(data: &[u8]) -> (Vec<Request>, Result<(), String>) {
    let mut rest = data;
    let mut frames = Vec::new();
    loop {
        match parse::<Request>(rest, 1 << 20) {
            Ok(Some((request, used))) => {
                frames.push(request);
                rest = &rest[used..];
            }
            Ok(None) => {
                let end = at_end::<Request>(rest).map(drop);
                return (frames, end.map_err(|e: FrameError| e.to_string()));
            }
            Err(e) => return (frames, Err(e.to_string())),
        }
    }
}

#[test]
fn the_client_and_the_daemon_read_the_frame_corpus_alike() {
    let inputs = corpus("frame");
    for data in &inputs {
        assert_eq!(read_exactly(data), read_buffered(data), "{data:?}");
    }
    assert!(
        inputs.iter().any(|data| !read_exactly(data).0.is_empty()),
        "the corpus holds whole frames"
    );
}

#[test]
fn the_request_corpus_decodes_or_fails_cleanly() {
    let inputs = corpus("request");
    assert!(!inputs.is_empty());
    let decoded = inputs
        .iter()
        .filter(|data| decode::<Request>(data).is_ok())
        .count();
    assert!(decoded > 0, "the corpus holds requests that decode");
}
