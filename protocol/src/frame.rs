//! Length-prefixed frames: a `u32` big-endian payload length, then a bincode 2 payload.
//!
//! The length is checked against the maximum before anything is allocated, and bincode's own
//! allocation limit ([`decode_limit`]) stops a payload that claims a huge collection. No frame
//! is larger than [`crate::MAX_FRAME`]: a reader's maximum may be lower, never higher, and
//! [`encode`] refuses to write a larger one. A clean EOF between frames is `Ok(None)`; an EOF
//! inside a frame is [`FrameError::Truncated`].
//!
//! Two readers share these rules: [`read_frame`] reads a blocking stream exactly (the client),
//! and [`parse`] takes frames off a buffer that an async reader fills (the daemon's connection).
//! Both end through [`at_end`], so they agree on what a stream that stops means.

use std::io::{self, Read, Write};

use bincode::config::{self, Configuration};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

const _: () = assert!(
    crate::MAX_FRAME <= u32::MAX as usize,
    "a frame's length fits its header"
);

/// How many bytes bincode may count while decoding a payload of at most `max_payload` bytes.
///
/// bincode's limit counts what a payload decodes *into*, not its bytes: every integer counts as
/// its full width, so the one-byte varint of a small `u64` (or of a string's length) counts 8.
/// An honest payload of n bytes thus counts at most 8n (no wire type holds a 128-bit integer),
/// and a limit of that lets every payload the length check admits decode. A payload that lies (a
/// string claiming more bytes than follow it) still cannot make the decoder reserve more than
/// the limit.
pub const fn decode_limit(max_payload: usize) -> usize {
    max_payload * 8
}

type Config = Configuration<
    config::LittleEndian,
    config::Varint,
    config::Limit<{ decode_limit(crate::MAX_FRAME) }>,
>;

fn config() -> Config {
    config::standard().with_limit::<{ decode_limit(crate::MAX_FRAME) }>()
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed inside a frame ({got} of {expected} bytes)")]
    Truncated { expected: usize, got: usize },
    #[error("undecodable frame: {0}")]
    Decode(String),
    #[error("cannot encode frame: {0}")]
    Encode(String),
    #[error("socket i/o: {0}")]
    Io(#[from] io::Error),
}

/// Encodes `msg` as one whole frame, header included; a payload larger than
/// [`crate::MAX_FRAME`] is [`FrameError::TooLarge`], since no reader would take it.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; HEADER_LEN];
    bincode::serde::encode_into_std_write(msg, &mut buf, config())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = buf.len() - HEADER_LEN;
    if len > crate::MAX_FRAME {
        return Err(FrameError::TooLarge {
            len,
            max: crate::MAX_FRAME,
        });
    }
    buf[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Reads the payload length out of a header and checks it against `max` (no more than
/// [`crate::MAX_FRAME`], whatever the caller asks).
pub fn payload_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let max = max.min(crate::MAX_FRAME);
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes one payload; trailing bytes mean the two sides disagree on the type.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (msg, used) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| FrameError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(FrameError::Decode(format!(
            "{} trailing bytes after the message",
            payload.len() - used
        )));
    }
    Ok(msg)
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub fn read_frame<T: DeserializeOwned>(
    r: &mut impl Read,
    max: usize,
) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(r, &mut header)?;
    if got < HEADER_LEN {
        return at_end(&header[..got]);
    }
    let len = payload_len(header, max)?;
    let mut frame = Vec::with_capacity(HEADER_LEN + len);
    frame.extend_from_slice(&header);
    frame.resize(HEADER_LEN + len, 0);
    let got = read_full(r, &mut frame[HEADER_LEN..])?;
    if got < len {
        return at_end(&frame[..HEADER_LEN + got]);
    }
    decode(&frame[HEADER_LEN..]).map(Some)
}

/// Takes one frame off the front of `buf`: the message and how many bytes it used, or
/// `Ok(None)` while `buf` holds less than a whole frame. The length is checked as soon as the
/// header is in, so a reader never waits for (or stores) a payload it would refuse.
pub fn parse<T: DeserializeOwned>(
    buf: &[u8],
    max: usize,
) -> Result<Option<(T, usize)>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let end = HEADER_LEN + payload_len(*header, max)?;
    match buf.get(HEADER_LEN..end) {
        Some(payload) => decode(payload).map(|msg| Some((msg, end))),
        None => Ok(None),
    }
}

/// What the stream ending with `rest` read but not yet a whole frame means: nothing between
/// frames (`Ok(None)`), [`FrameError::Truncated`] inside one.
pub fn at_end<T>(rest: &[u8]) -> Result<Option<T>, FrameError> {
    if rest.is_empty() {
        return Ok(None);
    }
    let (expected, got) = match rest.first_chunk::<HEADER_LEN>() {
        Some(header) => (
            u32::from_be_bytes(*header) as usize,
            rest.len() - HEADER_LEN,
        ),
        None => (HEADER_LEN, rest.len()),
    };
    Err(FrameError::Truncated { expected, got })
}

pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Fills `buf` unless the stream ends first; returns how many bytes arrived (fewer at the end of
/// the stream). Every reader of length-prefixed records needs it: frames here, journal records.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;
    use std::collections::BTreeMap;
    use std::io::Cursor;

    fn start() -> Request {
        Request::Start(StartRequest {
            namespace: "default".into(),
            id: "web".into(),
            bundle: "/b".into(),
            labels: BTreeMap::from([("app".into(), "db".into())]),
            stdout: None,
            stderr: Some("/tmp/err".into()),
            checkpoint: None,
            stdin: None,
            terminal: None,
            remove: false,
        })
    }

    #[test]
    fn round_trips_back_to_back_frames() {
        let event = Response::Event(Event {
            seq: 1,
            time: 1,
            kind: EventKind::Exit,
            namespace: "default".into(),
            id: "web".into(),
            process: "init".into(),
            pid: 42,
            status: Some(137),
            oom_killed: true,
            labels: BTreeMap::new(),
        });
        let mut buf = encode(&start()).unwrap();
        buf.extend(encode(&event).unwrap());
        let mut r = Cursor::new(buf);
        assert_eq!(read_frame::<Request>(&mut r, 1024).unwrap(), Some(start()));
        assert_eq!(read_frame::<Response>(&mut r, 1024).unwrap(), Some(event));
        assert!(read_frame::<Response>(&mut r, 1024).unwrap().is_none());
    }

    #[test]
    fn oversized_length_is_refused_before_reading_the_payload() {
        let mut r = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        let err = read_frame::<Request>(&mut r, DEFAULT).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len, .. } if len == u32::MAX as usize));
    }

    const DEFAULT: usize = crate::DEFAULT_MAX_FRAME;

    #[test]
    fn truncated_header_and_payload_are_errors() {
        let mut r = Cursor::new(vec![0u8, 0]);
        assert!(matches!(
            read_frame::<Request>(&mut r, DEFAULT),
            Err(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        let mut frame = encode(&start()).unwrap();
        frame.truncate(frame.len() - 3);
        let mut r = Cursor::new(frame);
        assert!(matches!(
            read_frame::<Request>(&mut r, DEFAULT),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn parse_takes_whole_frames_off_a_buffer_and_waits_for_the_rest() {
        let mut buf = encode(&start()).unwrap();
        let first = buf.len();
        buf.extend(encode(&Request::Info(InfoRequest {})).unwrap());
        for cut in 0..first {
            assert!(parse::<Request>(&buf[..cut], DEFAULT).unwrap().is_none());
        }
        let (msg, used) = parse::<Request>(&buf, DEFAULT).unwrap().unwrap();
        assert_eq!((msg, used), (start(), first));
        let (msg, used) = parse::<Request>(&buf[first..], DEFAULT).unwrap().unwrap();
        assert_eq!(msg, Request::Info(InfoRequest {}));
        assert_eq!(first + used, buf.len());
    }

    #[test]
    fn parse_refuses_an_oversized_length_on_the_header_alone() {
        let header = 100u32.to_be_bytes();
        let err = parse::<Request>(&header, 64).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 100, max: 64 }));
    }

    #[test]
    fn at_end_is_clean_between_frames_and_truncated_inside_one() {
        assert!(at_end::<Request>(&[]).unwrap().is_none());
        assert!(matches!(
            at_end::<Request>(&[0, 0]),
            Err(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        let mut partial = 100u32.to_be_bytes().to_vec();
        partial.extend([0u8; 10]);
        let err = at_end::<Request>(&partial).unwrap_err();
        assert!(matches!(
            err,
            FrameError::Truncated {
                expected: 100,
                got: 10
            }
        ));
        assert_eq!(
            err.to_string(),
            "connection closed inside a frame (10 of 100 bytes)"
        );
    }

    #[test]
    fn garbage_payload_is_a_decode_error() {
        for garbage in [
            vec![0xff; 64],
            b"GET / HTTP/1.1\r\n".to_vec(),
            vec![0u8; 1],
            vec![],
        ] {
            let mut frame = (garbage.len() as u32).to_be_bytes().to_vec();
            frame.extend(&garbage);
            let res = read_frame::<Request>(&mut Cursor::new(frame), DEFAULT);
            assert!(
                matches!(res, Err(FrameError::Decode(_))),
                "{garbage:?}: {res:?}"
            );
        }
    }

    #[test]
    fn payload_claiming_a_huge_string_is_a_decode_error() {
        // Variant 0 (Start), then a namespace whose varint length claims u64::MAX bytes.
        let mut payload = vec![0u8, 0xfd];
        payload.extend(u64::MAX.to_le_bytes());
        assert!(matches!(
            decode::<Request>(&payload),
            Err(FrameError::Decode(_))
        ));
    }

    #[test]
    fn trailing_bytes_are_a_decode_error() {
        let mut frame = encode(&Request::Info(InfoRequest {})).unwrap();
        frame.push(0);
        assert!(matches!(
            decode::<Request>(&frame[HEADER_LEN..]),
            Err(FrameError::Decode(_))
        ));
    }

    /// A start request whose payload is `len` bytes, most of them one label.
    fn start_of_len(len: usize) -> Request {
        let Request::Start(mut req) = start() else {
            panic!("start() makes a start request");
        };
        let with = |req: &StartRequest, value: usize| {
            let mut req = req.clone();
            req.labels.insert("fill".into(), "x".repeat(value));
            req
        };
        // Within one varint band the label's length prefix keeps its size, so the payload
        // grows byte for byte with the label.
        let probe = 1 << 20;
        let overhead =
            encode(&Request::Start(with(&req, probe))).unwrap().len() - HEADER_LEN - probe;
        req = with(&req, len - overhead);
        Request::Start(req)
    }

    #[test]
    fn a_frame_of_exactly_the_maximum_round_trips_and_one_more_byte_is_refused() {
        let max = crate::MAX_FRAME;
        let request = start_of_len(max);
        let frame = encode(&request).unwrap();
        assert_eq!(frame.len(), HEADER_LEN + max);
        let read = read_frame::<Request>(&mut Cursor::new(&frame), max).unwrap();
        assert_eq!(read.as_ref(), Some(&request));
        let (parsed, used) = parse::<Request>(&frame, max).unwrap().unwrap();
        assert_eq!((parsed, used), (request, frame.len()));

        let err = encode(&start_of_len(max + 1)).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len, max: m } if len == max + 1 && m == max));
        // A reader asked for more than the maximum still holds to it.
        let mut header = ((max + 1) as u32).to_be_bytes().to_vec();
        header.extend([0u8; 16]);
        let err = parse::<Request>(&header, usize::MAX).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: m, .. } if m == max));
    }

    #[test]
    fn a_frame_of_small_integers_decodes_whatever_they_count_as() {
        // Each zero takes one byte on the wire and counts as a u64's eight when decoded.
        let stats = ContainerStats {
            namespace: "default".into(),
            id: "web".into(),
            pid: 42,
            read_at: 1,
            cpu: CpuStats {
                per_cpu_ns: vec![0; crate::MAX_FRAME - 64],
                ..CpuStats::default()
            },
            memory: MemoryStats::default(),
            pids: PidsStats::default(),
            io: IoStats::default(),
            network: NetworkStats::default(),
        };
        let response = Response::Stats(vec![stats]);
        let frame = encode(&response).unwrap();
        assert!(frame.len() <= HEADER_LEN + crate::MAX_FRAME);
        let read = read_frame::<Response>(&mut Cursor::new(&frame), crate::MAX_FRAME).unwrap();
        assert_eq!(read, Some(response));
    }

    #[test]
    fn a_wrong_version_hello_still_decodes_so_it_can_be_reported() {
        let theirs = Hello {
            protocol: 99,
            version: "9.9.9".into(),
        };
        let frame = encode(&theirs).unwrap();
        let got: Hello = decode(&frame[HEADER_LEN..]).unwrap();
        assert_eq!(got, theirs);
        assert_ne!(got.protocol, Hello::ours().protocol);
    }
}
