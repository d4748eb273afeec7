//! The on-disk form of the journal: segment files of length- and checksum-framed records.
//!
//! ```text
//! segment := MAGIC record*
//! record  := len: u32 LE | crc32(payload): u32 LE | payload: bincode(Event), len bytes
//! ```
//!
//! The record framing is [`crclog::framed`], shared with the keeper's exit log; this module adds
//! the magic and the payload. A crash can leave the last record of a segment half written.
//! Reading stops at the first record that is short, claims an impossible length, fails its
//! checksum or does not decode, and reports where the readable part ends; nothing on disk ever
//! makes a reader panic. The writer never appends after such a tear: it starts a new segment
//! instead (see `writer`).
//!
//! `Event` is encoded by bincode through serde, which writes variants by index: new event kinds
//! must be added at the end of `EventKind` for older journals to stay readable.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::Path;

use bincode::config::{self, Configuration};
use crclog::framed;
use protocol::frame::read_full;
use protocol::Event;

/// Opens every segment file, so a file of some other format is never mistaken for one.
pub const MAGIC: &[u8; 8] = b"ctrdjnl1";

/// The largest payload a record holds. An event reaches subscribers in a frame, so one larger
/// than [`protocol::MAX_FRAME`] could not be delivered either. [`encode`] refuses a larger
/// event rather than write a record that reads back as a tear; the reader takes a longer claim
/// for a tear, not a reason to allocate.
pub const MAX_RECORD: usize = protocol::MAX_FRAME;

type Config = Configuration<
    config::LittleEndian,
    config::Varint,
    config::Limit<{ protocol::frame::decode_limit(MAX_RECORD) }>,
>;

fn config() -> Config {
    config::standard().with_limit::<{ protocol::frame::decode_limit(MAX_RECORD) }>()
}

/// Why an event got no record.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot encode it: {0}")]
    Bincode(bincode::error::EncodeError),
    #[error("it encodes to {len} bytes; a journal record holds 1 to {MAX_RECORD}")]
    Length { len: usize },
}

/// Appends one record holding `event` to `buf`; on error `buf` is as it was, so the events
/// after it in the same segment stay readable.
pub fn encode(event: &Event, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    framed::append(buf, MAX_RECORD, |buf| {
        bincode::serde::encode_into_std_write(event, buf, config()).map(drop)
    })
    .map_err(|e| match e {
        framed::AppendError::Payload(e) => EncodeError::Bincode(e),
        framed::AppendError::Length { len, .. } => EncodeError::Length { len },
    })
}

/// How a segment's readable part ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEnd {
    /// Bytes up to the end of the last good record.
    pub valid_len: u64,
    /// Why reading stopped before the end of the file; `None` if every byte was read.
    pub torn: Option<String>,
}

/// Reads the records of one segment in order, handing each, with the byte offset it starts
/// at, to `visit` until it breaks.
pub fn read_segment(
    path: &Path,
    mut visit: impl FnMut(Event, u64) -> ControlFlow<()>,
) -> io::Result<SegmentEnd> {
    let mut file = BufReader::new(File::open(path)?);
    let mut magic = [0u8; MAGIC.len()];
    let got = read_full(&mut file, &mut magic)?;
    if got == 0 {
        return Ok(SegmentEnd {
            valid_len: 0,
            torn: None,
        });
    }
    if got < MAGIC.len() || &magic != MAGIC {
        return Ok(SegmentEnd {
            valid_len: 0,
            torn: Some("not a journal segment (bad magic)".into()),
        });
    }
    let mut offset = MAGIC.len() as u64;
    let mut payload = Vec::new();
    loop {
        let (event, len) = match next_record(&mut file, &mut payload)? {
            Next::Record(event, len) => (event, len),
            Next::End => {
                return Ok(SegmentEnd {
                    valid_len: offset,
                    torn: None,
                })
            }
            Next::Torn(why) => {
                return Ok(SegmentEnd {
                    valid_len: offset,
                    torn: Some(format!("{why} at byte {offset}")),
                })
            }
        };
        let at = offset;
        offset += len;
        if visit(event, at).is_break() {
            return Ok(SegmentEnd {
                valid_len: offset,
                torn: None,
            });
        }
    }
}

/// Reads the one record starting at byte `offset`; `None` if there is no good record there.
pub fn read_at(path: &Path, offset: u64) -> io::Result<Option<Event>> {
    let mut file = BufReader::new(File::open(path)?);
    file.seek(SeekFrom::Start(offset))?;
    Ok(match next_record(&mut file, &mut Vec::new())? {
        Next::Record(event, _) => Some(event),
        Next::End | Next::Torn(_) => None,
    })
}

/// What follows in a segment.
enum Next {
    /// An event, and the bytes its record takes.
    Record(Event, u64),
    End,
    /// Why what follows is no record.
    Torn(String),
}

fn next_record(file: &mut impl Read, payload: &mut Vec<u8>) -> io::Result<Next> {
    let len = match framed::read(file, MAX_RECORD, payload)? {
        framed::Next::Record(len) => len,
        framed::Next::End => return Ok(Next::End),
        framed::Next::Torn(tear) => return Ok(Next::Torn(tear.to_string())),
    };
    Ok(
        match bincode::serde::decode_from_slice::<Event, _>(payload, config()) {
            Ok((event, used)) if used == payload.len() => Next::Record(event, len),
            Ok(_) => Next::Torn("record has trailing bytes".into()),
            Err(e) => Next::Torn(format!("undecodable record ({e})")),
        },
    )
}

#[cfg(test)]
pub mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use protocol::EventKind;

    pub fn event(seq: u64) -> Event {
        Event {
            seq,
            time: 1_000 + seq,
            kind: EventKind::Exit,
            namespace: "default".into(),
            id: format!("c{seq}"),
            process: "init".into(),
            pid: 100 + seq as u32,
            status: Some(0),
            labels: BTreeMap::from([("app".into(), "db".into())]),
            oom_killed: seq.is_multiple_of(2),
        }
    }

    fn segment(events: &[Event]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for e in events {
            encode(e, &mut bytes).unwrap();
        }
        bytes
    }

    fn read(bytes: &[u8]) -> (Vec<Event>, SegmentEnd) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, bytes).unwrap();
        let mut seen = Vec::new();
        let end = read_segment(&path, |e, _| {
            seen.push(e);
            ControlFlow::Continue(())
        })
        .unwrap();
        (seen, end)
    }

    #[test]
    fn records_round_trip() {
        let events: Vec<Event> = (1..=3).map(event).collect();
        let bytes = segment(&events);
        let (seen, end) = read(&bytes);
        assert_eq!(seen, events);
        assert_eq!(
            end,
            SegmentEnd {
                valid_len: bytes.len() as u64,
                torn: None
            }
        );
    }

    #[test]
    fn a_last_record_cut_in_half_is_read_up_to_the_tear() {
        let whole = segment(&[event(1), event(2)]);
        let bytes = segment(&[event(1), event(2), event(3)]);
        let last_len = bytes.len() - whole.len();
        for cut in [
            1,
            framed::HEADER_LEN - 1,
            framed::HEADER_LEN,
            framed::HEADER_LEN + 1,
            last_len / 2,
            last_len - 1,
        ] {
            let (seen, end) = read(&bytes[..whole.len() + cut]);
            assert_eq!(seen, vec![event(1), event(2)], "cut at {cut}");
            assert_eq!(end.valid_len, whole.len() as u64, "cut at {cut}");
            assert!(end.torn.is_some(), "cut at {cut}");
        }
    }

    #[test]
    fn corruption_is_a_tear_never_a_panic() {
        let good = segment(&[event(1)]);
        let bytes = segment(&[event(1), event(2)]);
        // A flipped payload byte fails the checksum.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        // A length that claims more than any record may hold.
        let mut huge = bytes.clone();
        huge[good.len()..good.len() + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        // A payload with a valid checksum that is no event.
        let mut garbage = good.clone();
        framed::append(&mut garbage, MAX_RECORD, |buf| {
            buf.extend([0xffu8; 16]);
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
        for (name, bytes) in [("flipped", flipped), ("huge", huge), ("garbage", garbage)] {
            let (seen, end) = read(&bytes);
            assert_eq!(seen, vec![event(1)], "{name}");
            assert_eq!(end.valid_len, good.len() as u64, "{name}");
            assert!(end.torn.is_some(), "{name}");
        }
    }

    /// An event whose record payload is `len` bytes, most of them one label.
    pub fn event_of_len(seq: u64, len: usize) -> Event {
        let with = |value: usize| {
            let mut e = event(seq);
            e.labels.insert("fill".into(), "x".repeat(value));
            e
        };
        // Within one varint band the label's length prefix keeps its size, so the payload
        // grows byte for byte with the label.
        let probe = 1 << 20;
        let mut buf = Vec::new();
        encode(&with(probe), &mut buf).unwrap();
        let overhead = buf.len() - framed::HEADER_LEN - probe;
        with(len - overhead)
    }

    #[test]
    fn a_record_of_exactly_the_maximum_reads_back_and_a_larger_one_is_refused() {
        let largest = event_of_len(2, MAX_RECORD);
        let bytes = segment(&[event(1), largest.clone(), event(3)]);
        assert_eq!(
            bytes.len(),
            segment(&[event(1), event(3)]).len() + framed::HEADER_LEN + MAX_RECORD
        );
        let (seen, end) = read(&bytes);
        assert_eq!(seen, vec![event(1), largest, event(3)]);
        assert_eq!(end.torn, None);

        let mut buf = segment(&[event(1)]);
        let before = buf.clone();
        let err = encode(&event_of_len(2, MAX_RECORD + 1), &mut buf).unwrap_err();
        assert!(
            matches!(err, EncodeError::Length { len } if len == MAX_RECORD + 1),
            "{err}"
        );
        assert_eq!(buf, before, "nothing of the refused record is written");
    }

    #[test]
    fn a_record_is_read_back_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, segment(&[event(1), event(2), event(3)])).unwrap();
        let mut offsets = Vec::new();
        read_segment(&path, |_, at| {
            offsets.push(at);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(offsets[0], MAGIC.len() as u64);
        for (seq, at) in (1..).zip(offsets) {
            assert_eq!(read_at(&path, at).unwrap(), Some(event(seq)));
        }
        assert_eq!(read_at(&path, 3).unwrap(), None, "not a record boundary");
        assert_eq!(read_at(&path, 1 << 20).unwrap(), None, "past the end");
    }

    #[test]
    fn a_foreign_or_empty_file_holds_no_events() {
        let (seen, end) = read(b"not a journal at all");
        assert!(seen.is_empty());
        assert_eq!(end.valid_len, 0);
        assert!(end.torn.is_some());
        let (seen, end) = read(b"");
        assert!(seen.is_empty());
        assert_eq!(end.torn, None);
    }
}
