//! The keeper's exit log: every reaped exit, on disk before the daemon hears of it, until the
//! daemon acknowledges it.
//!
//! The file is a header, then a sequence of fixed-size records, each with a CRC32 (the
//! [`crclog::fixed`] layout), appended with one write and one `fdatasync` per reap pass. A crash
//! mid-write leaves a torn tail, so opening the log keeps the records up to the first bad one and
//! truncates the rest away. Acknowledged records are dropped by truncating the file to its header
//! once all are acknowledged, or by rewriting it with only the unacknowledged ones once it has
//! grown mostly stale. The header holds the next seq at the time, so numbering continues across
//! restarts even when no record is left: the daemon tells exits apart by their seq.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crclog::fixed;

use crate::wire::ExitRecord;

/// Bytes per record: seq, pid, status, start time, wall clock, monotonic clock, flags, CRC.
const RECORD: usize = 48;

/// Flag bit: the start time field holds a start time (it could not always be read).
const HAS_START_TIME: u32 = 1;

/// Flag bit: this is the header, the file's first record; its seq is the next seq to use.
const HEADER: u32 = 2;

/// A file holding more records than this is rewritten once most of them are acknowledged.
const COMPACT_AT: usize = 4096;

/// One reaped process, before the log numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub pid: u32,
    pub start_time: Option<u64>,
    pub status: i32,
    pub wall_ns: u64,
    pub mono_ns: u64,
}

impl Reaped {
    fn numbered(self, seq: u64) -> ExitRecord {
        ExitRecord {
            seq,
            pid: self.pid,
            start_time: self.start_time,
            status: self.status,
            wall_ns: self.wall_ns,
            mono_ns: self.mono_ns,
        }
    }
}

pub struct ExitLog {
    path: PathBuf,
    file: File,
    /// How many exit records the file holds after its header, acknowledged or not.
    on_disk: usize,
    next_seq: u64,
    unacked: BTreeMap<u64, ExitRecord>,
}

impl ExitLog {
    /// Opens (or creates) the log at `path`. Every record in it counts as unacknowledged: the
    /// keeper cannot know which ones the last daemon took.
    pub fn open(path: &Path) -> io::Result<ExitLog> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let header = bytes
            .first_chunk::<RECORD>()
            .and_then(fixed::check)
            .and_then(|h| decode(h, None).filter(|h| h.flags & HEADER != 0));
        if header.is_none() && !bytes.is_empty() {
            log::warn!(
                "exit log {}: the header is torn or corrupt; exits are numbered from 1 again",
                path.display()
            );
        }
        let records = decode_all(bytes.get(RECORD..).unwrap_or_default());
        let valid = (1 + records.len()) * RECORD;
        if valid < bytes.len() {
            log::warn!(
                "exit log {}: dropping {} bytes of torn or corrupt records after record {}",
                path.display(),
                bytes.len() - valid,
                records.len()
            );
        }
        let floor = header.map_or(1, |h| h.record.seq);
        let next_seq = records.last().map_or(floor, |r| floor.max(r.seq + 1));
        if header.is_none() || valid != bytes.len() {
            file.write_all_at(&encode_header(next_seq), 0)?;
            file.set_len(valid as u64)?;
            file.sync_data()?;
        }
        Ok(ExitLog {
            path: path.to_path_buf(),
            file,
            on_disk: records.len(),
            next_seq,
            unacked: records.into_iter().map(|r| (r.seq, r)).collect(),
        })
    }

    /// Numbers a reap pass's exits and writes them with one write and one `fdatasync`. They
    /// count as unacknowledged even when the write fails: the daemon still gets them, and the
    /// failure (logged here) only costs them their survival of a keeper crash.
    pub fn append(&mut self, reaped: &[Reaped]) -> Vec<ExitRecord> {
        let records: Vec<ExitRecord> = reaped
            .iter()
            .zip(self.next_seq..)
            .map(|(r, seq)| r.numbered(seq))
            .collect();
        self.next_seq += records.len() as u64;
        self.unacked.extend(records.iter().map(|r| (r.seq, *r)));
        let bytes: Vec<u8> = records.iter().flat_map(encode).collect();
        let written = self
            .file
            .write_all_at(&bytes, self.end())
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => self.on_disk += records.len(),
            Err(e) => {
                log::error!(
                    "cannot write exits {}..={} to {}: {e}; they are kept in memory only",
                    records[0].seq,
                    records[records.len() - 1].seq,
                    self.path.display()
                );
                // A partial write would end the log at a torn record and hide later appends.
                if let Err(e) = self.file.set_len(self.end()) {
                    log::error!("cannot truncate {}: {e}", self.path.display());
                }
            }
        }
        records
    }

    /// The exits not yet acknowledged, in seq order.
    pub fn unacked(&self) -> impl Iterator<Item = &ExitRecord> {
        self.unacked.values()
    }

    /// Forgets the exit numbered `seq`, and drops stale records from the file when they make
    /// up most of it.
    pub fn ack(&mut self, seq: u64) {
        if self.unacked.remove(&seq).is_none() {
            return;
        }
        if self.unacked.is_empty() || self.on_disk > COMPACT_AT.max(2 * self.unacked.len()) {
            if let Err(e) = self.compact() {
                log::warn!("cannot compact {}: {e}", self.path.display());
            }
        }
    }

    /// Leaves only the unacknowledged records in the file: truncated to a header when there
    /// are none, else rewritten into a temporary file that replaces the log atomically.
    pub fn compact(&mut self) -> io::Result<()> {
        if self.unacked.is_empty() {
            // A crash before the truncation only replays acknowledged exits.
            self.file.write_all_at(&encode_header(self.next_seq), 0)?;
            self.file.set_len(RECORD as u64)?;
            self.on_disk = 0;
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        let mut out = File::create(&tmp)?;
        let mut bytes = encode_header(self.next_seq).to_vec();
        bytes.extend(self.unacked.values().flat_map(encode));
        out.write_all(&bytes)?;
        out.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().write(true).open(&self.path)?;
        self.on_disk = self.unacked.len();
        Ok(())
    }

    /// Where the next record goes.
    fn end(&self) -> u64 {
        ((1 + self.on_disk) * RECORD) as u64
    }
}

/// A decoded record and its flags.
#[derive(Clone, Copy)]
struct Decoded {
    record: ExitRecord,
    flags: u32,
}

fn encode_header(next_seq: u64) -> [u8; RECORD] {
    let mut buf = [0u8; RECORD];
    buf[0..8].copy_from_slice(&next_seq.to_le_bytes());
    buf[40..44].copy_from_slice(&HEADER.to_le_bytes());
    fixed::seal(&mut buf);
    buf
}

fn encode(record: &ExitRecord) -> [u8; RECORD] {
    let mut buf = [0u8; RECORD];
    buf[0..8].copy_from_slice(&record.seq.to_le_bytes());
    buf[8..12].copy_from_slice(&record.pid.to_le_bytes());
    buf[12..16].copy_from_slice(&record.status.to_le_bytes());
    buf[16..24].copy_from_slice(&record.start_time.unwrap_or(0).to_le_bytes());
    buf[24..32].copy_from_slice(&record.wall_ns.to_le_bytes());
    buf[32..40].copy_from_slice(&record.mono_ns.to_le_bytes());
    let flags = if record.start_time.is_some() {
        HAS_START_TIME
    } else {
        0
    };
    buf[40..44].copy_from_slice(&flags.to_le_bytes());
    fixed::seal(&mut buf);
    buf
}

/// Decodes the body of a record whose checksum matched; one whose seq does not follow its
/// predecessor's is `None`.
fn decode(body: &[u8], previous: Option<u64>) -> Option<Decoded> {
    let u32_at = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    let seq = u64_at(0);
    if seq == 0 || previous.is_some_and(|p| seq <= p) {
        return None;
    }
    let flags = u32_at(40);
    let record = ExitRecord {
        seq,
        pid: u32_at(8),
        status: u32_at(12) as i32,
        start_time: (flags & HAS_START_TIME != 0).then(|| u64_at(16)),
        wall_ns: u64_at(24),
        mono_ns: u64_at(32),
    };
    Some(Decoded { record, flags })
}

/// The exit records up to the first torn or bad one.
fn decode_all(bytes: &[u8]) -> Vec<ExitRecord> {
    let mut records: Vec<ExitRecord> = Vec::new();
    for body in fixed::records::<RECORD>(bytes) {
        match decode(body, records.last().map(|r| r.seq)) {
            Some(decoded) if decoded.flags & HEADER == 0 => records.push(decoded.record),
            _ => break,
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaped(pid: u32) -> Reaped {
        Reaped {
            pid,
            start_time: pid.is_multiple_of(2).then_some(u64::from(pid) * 100),
            status: (pid as i32) << 8,
            wall_ns: 1_700_000_000_000_000_000 + u64::from(pid),
            mono_ns: 5_000_000_000 + u64::from(pid),
        }
    }

    fn seqs(log: &ExitLog) -> Vec<u64> {
        log.unacked().map(|r| r.seq).collect()
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    fn records(n: usize) -> u64 {
        ((1 + n) * RECORD) as u64
    }

    /// The bytes a record and a header are, pinned: a keeper re-executed from a new binary (an
    /// upgrade) reads the log the old one wrote.
    #[test]
    fn the_layout_stays_what_older_keepers_wrote() {
        let hex =
            |bytes: [u8; RECORD]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let record = ExitRecord {
            seq: 1,
            pid: 10,
            start_time: Some(1000),
            status: 2 << 8,
            wall_ns: 1_700_000_000_000_000_010,
            mono_ns: 5_000_000_010,
        };
        assert_eq!(
            hex(encode(&record)),
            "01000000000000000a00000000020000e8030000000000000a002a36fe9c9717\
             0af2052a010000000100000008daef97"
        );
        assert_eq!(
            hex(encode_header(7)),
            "0700000000000000000000000000000000000000000000000000000000000000\
             000000000000000002000000b907f5ff"
        );
        let encoded = encode(&record);
        let body = fixed::check(&encoded).unwrap();
        assert_eq!(decode(body, None).unwrap().record, record);
    }

    #[test]
    fn records_survive_a_reopen_and_seq_continues() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exits.log");
        let mut log = ExitLog::open(&path).unwrap();
        let first = log.append(&[reaped(10), reaped(11)]);
        let second = log.append(&[reaped(12)]);
        let numbers: Vec<u64> = first.iter().chain(&second).map(|r| r.seq).collect();
        assert_eq!(numbers, [1, 2, 3]);
        drop(log);

        let mut log = ExitLog::open(&path).unwrap();
        let read: Vec<ExitRecord> = log.unacked().copied().collect();
        assert_eq!(read, [first, second].concat());
        assert_eq!(read[0].start_time, Some(1000));
        assert_eq!(read[1].start_time, None);
        assert_eq!(log.append(&[reaped(13)])[0].seq, 4);
    }

    #[test]
    fn seq_continues_after_everything_was_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exits.log");
        let mut log = ExitLog::open(&path).unwrap();
        log.append(&[reaped(1), reaped(2)]);
        log.ack(1);
        log.ack(2);
        assert_eq!(file_len(&path), records(0));
        drop(log);

        let mut log = ExitLog::open(&path).unwrap();
        assert_eq!(seqs(&log), Vec::<u64>::new());
        assert_eq!(log.append(&[reaped(3)])[0].seq, 3);
        drop(log);
        assert_eq!(seqs(&ExitLog::open(&path).unwrap()), [3]);
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exits.log");
        let mut log = ExitLog::open(&path).unwrap();
        log.append(&[reaped(1), reaped(2)]);
        drop(log);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        let torn = encode(&reaped(3).numbered(3));
        file.write_all(&torn[..20]).unwrap();
        drop(file);

        let mut log = ExitLog::open(&path).unwrap();
        assert_eq!(seqs(&log), [1, 2]);
        assert_eq!(file_len(&path), records(2));
        log.append(&[reaped(3)]);
        drop(log);
        assert_eq!(seqs(&ExitLog::open(&path).unwrap()), [1, 2, 3]);
    }

    #[test]
    fn a_corrupt_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exits.log");
        let mut log = ExitLog::open(&path).unwrap();
        log.append(&[reaped(1), reaped(2), reaped(3)]);
        drop(log);
        let mut bytes = fs::read(&path).unwrap();
        bytes[2 * RECORD + 9] ^= 0x40;
        fs::write(&path, &bytes).unwrap();

        let mut log = ExitLog::open(&path).unwrap();
        assert_eq!(seqs(&log), [1]);
        assert_eq!(file_len(&path), records(1));
        assert_eq!(log.append(&[reaped(4)])[0].seq, 2);
    }

    #[test]
    fn garbage_is_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exits.log");
        fs::write(&path, vec![0u8; 3 * RECORD + 5]).unwrap();
        let mut log = ExitLog::open(&path).unwrap();
        assert_eq!(seqs(&log), Vec::<u64>::new());
        assert_eq!(file_len(&path), records(0));
        assert_eq!(log.append(&[reaped(1)])[0].seq, 1);
    }

    #[test]
    fn compaction_keeps_exactly_the_unacknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exits.log");
        let mut log = ExitLog::open(&path).unwrap();
        let batch: Vec<Reaped> = (1..=COMPACT_AT as u32 + 100).map(reaped).collect();
        let appended = log.append(&batch);
        let kept = [7, 4000, appended.len() as u64];
        for r in &appended {
            if !kept.contains(&r.seq) {
                log.ack(r.seq);
            }
        }
        assert_eq!(seqs(&log), kept);
        // The acknowledgements alone rewrote the file once it was mostly stale.
        assert!(file_len(&path) < records(appended.len()));
        log.compact().unwrap();
        assert_eq!(file_len(&path), records(kept.len()));
        drop(log);

        let mut log = ExitLog::open(&path).unwrap();
        let read: Vec<ExitRecord> = log.unacked().copied().collect();
        let expected: Vec<ExitRecord> =
            kept.iter().map(|&seq| appended[seq as usize - 1]).collect();
        assert_eq!(read, expected);
        let next = log.append(&[reaped(1)])[0].seq;
        assert_eq!(next, appended.len() as u64 + 1);
    }
}
