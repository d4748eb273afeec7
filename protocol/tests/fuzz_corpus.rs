//! Replays the inputs the fuzzer kept (protocol/fuzz/corpus) through the decoders on every test
//! run, so what once reached new code keeps being checked without the fuzzer.

use std::fs;
use std::path::Path;

use protocol::frame::{decode, read_frame};
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
