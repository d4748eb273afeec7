//! Any bytes on the socket: reading frames must return an error or a message, never panic,
//! and never allocate past the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::frame::read_frame;
use protocol::{Hello, Request, Response};

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while let Ok(Some(_)) = read_frame::<Request>(&mut input, 1 << 20) {}
    let _ = read_frame::<Hello>(&mut &data[..], 1 << 20);
    let _ = read_frame::<Response>(&mut &data[..], 1 << 20);
});
