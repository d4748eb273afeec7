//! Records of any size: `len: u32 LE | crc32(payload): u32 LE | payload`.
//!
//! A record holds at least one byte. That rule is what tells a record from zeroes: a file
//! extended but never written (a crash between the size update and the data) reads as a zero
//! length with a zero checksum, which is the CRC32 of nothing.

use std::fmt;
use std::io::{self, Read};

/// Bytes before a record's payload.
pub const HEADER_LEN: usize = 8;

/// Appends one record to `buf`: a header, then whatever `payload` appends, then fills in the
/// header.
///
/// A record is appended whole or not at all. If `payload` fails, or appends nothing or more
/// than `max_len` bytes (what [`read`], given the same `max_len`, would take for a tear), `buf`
/// is cut back to what it held before: a record that failed never reaches the log, where it
/// would end the readable part and hide every record written after it. `max_len` is capped at
/// `u32::MAX`, the most a header can say.
pub fn append<E>(
    buf: &mut Vec<u8>,
    max_len: usize,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), AppendError<E>> {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_LEN]);
    let written = payload(buf).map_err(AppendError::Payload).and_then(|()| {
        let len = buf.len() - start - HEADER_LEN;
        let max = max_len.min(u32::MAX as usize);
        if (1..=max).contains(&len) {
            Ok(len as u32)
        } else {
            Err(AppendError::Length { len, max })
        }
    });
    let len = match written {
        Ok(len) => len,
        Err(e) => {
            buf.truncate(start);
            return Err(e);
        }
    };
    let crc = crc32fast::hash(&buf[start + HEADER_LEN..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Why [`append`] appended no record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError<E> {
    /// The payload's encoder failed.
    Payload(E),
    /// The payload came out empty, or longer than a reader accepts: a record holds 1 to `max`
    /// bytes.
    Length { len: usize, max: usize },
}

impl<E: fmt::Display> fmt::Display for AppendError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::Payload(e) => e.fmt(f),
            AppendError::Length { len, max } => {
                write!(
                    f,
                    "record payload of {len} bytes: a record holds 1 to {max}"
                )
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for AppendError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AppendError::Payload(e) => Some(e),
            AppendError::Length { .. } => None,
        }
    }
}

/// What follows in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A whole record, its payload checked; the bytes it takes on disk, header included.
    Record(u64),
    /// The log ends cleanly here.
    End,
    /// What follows is no record.
    Torn(Tear),
}

/// Why the bytes at some point of a log are no record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tear {
    /// The log ends inside a header, after `got` bytes of it.
    HeaderCut { got: usize },
    /// The header claims an empty payload, or one larger than any the reader accepts.
    Length(usize),
    /// The log ends inside a payload, after `got` of its `len` bytes.
    PayloadCut { got: usize, len: usize },
    /// The payload is whole but does not match its checksum.
    Checksum,
}

impl fmt::Display for Tear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tear::HeaderCut { got } => {
                write!(f, "record header cut short ({got} of {HEADER_LEN} bytes)")
            }
            Tear::Length(len) => write!(f, "record claims {len} bytes"),
            Tear::PayloadCut { got, len } => write!(f, "record cut short ({got} of {len} bytes)"),
            Tear::Checksum => f.write_str("record checksum mismatch"),
        }
    }
}

/// Reads the next record from `log` into `payload` (replacing what it held). A header that
/// claims more than `max_len` bytes is a tear, so no more than that is ever allocated; a payload
/// is allocated as it arrives, not as its header claims. I/O errors are errors; whatever the
/// bytes are, they are a record, the end or a tear.
pub fn read(log: &mut impl Read, max_len: usize, payload: &mut Vec<u8>) -> io::Result<Next> {
    payload.clear();
    let got = log.take(HEADER_LEN as u64).read_to_end(payload)?;
    match got {
        0 => return Ok(Next::End),
        HEADER_LEN => {}
        got => return Ok(Next::Torn(Tear::HeaderCut { got })),
    }
    let len = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
    let crc = u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]);
    if len == 0 || len > max_len {
        return Ok(Next::Torn(Tear::Length(len)));
    }
    payload.clear();
    let got = log.take(len as u64).read_to_end(payload)?;
    if got < len {
        return Ok(Next::Torn(Tear::PayloadCut { got, len }));
    }
    if crc32fast::hash(payload) != crc {
        return Ok(Next::Torn(Tear::Checksum));
    }
    Ok(Next::Record((HEADER_LEN + len) as u64))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::io::Cursor;

    use super::*;

    const MAX: usize = 64;

    fn log(payloads: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        for p in payloads {
            append(&mut buf, MAX, |buf| {
                buf.extend_from_slice(p);
                Ok::<(), Infallible>(())
            })
            .unwrap();
        }
        buf
    }

    /// Every record up to the end or the first tear, and how reading stopped.
    fn read_all(bytes: &[u8]) -> (Vec<Vec<u8>>, Next) {
        let mut cursor = Cursor::new(bytes);
        let mut payload = Vec::new();
        let mut records = Vec::new();
        loop {
            match read(&mut cursor, MAX, &mut payload).unwrap() {
                Next::Record(len) => {
                    assert_eq!(len, (HEADER_LEN + payload.len()) as u64);
                    records.push(payload.clone());
                }
                end => return (records, end),
            }
        }
    }

    #[test]
    fn the_layout_is_length_checksum_payload() {
        let bytes = log(&[b"abc"]);
        let mut expected = 3u32.to_le_bytes().to_vec();
        expected.extend(crc32fast::hash(b"abc").to_le_bytes());
        expected.extend(b"abc");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn records_round_trip_back_to_back() {
        let bytes = log(&[b"one", b"two!", &[7; MAX]]);
        let (records, end) = read_all(&bytes);
        assert_eq!(records, [b"one".to_vec(), b"two!".to_vec(), vec![7; MAX]]);
        assert_eq!(end, Next::End);
    }

    #[test]
    fn a_record_cut_anywhere_is_a_tear_after_the_whole_ones() {
        let whole = log(&[b"first"]);
        let bytes = log(&[b"first", b"second"]);
        for cut in whole.len() + 1..bytes.len() {
            let (records, end) = read_all(&bytes[..cut]);
            assert_eq!(records, [b"first".to_vec()], "cut at {cut}");
            let at = cut - whole.len();
            let expected = if at < HEADER_LEN {
                Tear::HeaderCut { got: at }
            } else {
                Tear::PayloadCut {
                    got: at - HEADER_LEN,
                    len: 6,
                }
            };
            assert_eq!(end, Next::Torn(expected), "cut at {cut}");
        }
    }

    #[test]
    fn lies_and_flipped_bits_are_tears() {
        let mut flipped = log(&[b"payload"]);
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(read_all(&flipped).1, Next::Torn(Tear::Checksum));

        let mut huge = log(&[b"payload"]);
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let claimed = u32::MAX as usize;
        assert_eq!(read_all(&huge).1, Next::Torn(Tear::Length(claimed)));

        let zeroes = [0u8; 3 * HEADER_LEN];
        assert_eq!(read_all(&zeroes), (vec![], Next::Torn(Tear::Length(0))));
    }

    #[test]
    fn a_failed_append_leaves_nothing_and_later_records_read_back() {
        let mut buf = log(&[b"kept"]);
        let before = buf.clone();
        // An encoder that fails halfway through its payload.
        let err = append(&mut buf, MAX, |buf| {
            buf.extend_from_slice(b"half");
            Err("no")
        })
        .unwrap_err();
        assert_eq!(err, AppendError::Payload("no"));
        assert_eq!(buf, before, "the failed record left bytes behind");
        let fill = |len: usize| {
            move |buf: &mut Vec<u8>| {
                buf.resize(buf.len() + len, 7);
                Ok::<(), Infallible>(())
            }
        };
        for len in [0, MAX + 1] {
            let err = append(&mut buf, MAX, fill(len)).unwrap_err();
            assert_eq!(err, AppendError::Length { len, max: MAX });
        }
        assert_eq!(buf, before);
        append(&mut buf, MAX, fill(MAX)).unwrap();
        let (records, end) = read_all(&buf);
        assert_eq!(records, [b"kept".to_vec(), vec![7; MAX]]);
        assert_eq!(end, Next::End);
    }

    #[test]
    fn tears_say_what_is_wrong() {
        let said = [
            Tear::HeaderCut { got: 3 }.to_string(),
            Tear::Length(0).to_string(),
            Tear::PayloadCut { got: 2, len: 9 }.to_string(),
            Tear::Checksum.to_string(),
            AppendError::<&str>::Length { len: 9, max: 8 }.to_string(),
        ];
        assert_eq!(
            said,
            [
                "record header cut short (3 of 8 bytes)",
                "record claims 0 bytes",
                "record cut short (2 of 9 bytes)",
                "record checksum mismatch",
                "record payload of 9 bytes: a record holds 1 to 8",
            ]
        );
    }
}
