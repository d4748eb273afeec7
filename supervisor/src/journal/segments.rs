//! Segment files by name: `<first seq, 20 digits>.journal`, so name order is sequence order.
//!
//! Anything else in the directory is left alone and never read.

use std::io;
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".journal";

/// A segment file and the sequence number its first record has (or will have).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub first_seq: u64,
    pub path: PathBuf,
}

pub fn path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SUFFIX}"))
}

/// The segments in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(first_seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .filter(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok())
        else {
            continue;
        };
        segments.push(Segment {
            first_seq,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_segments_in_sequence_order_and_ignores_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for seq in [100, 2, 30] {
            std::fs::write(path(dir.path(), seq), b"").unwrap();
        }
        for other in ["notes.txt", "12.journal", "0000000000000000000x.journal"] {
            std::fs::write(dir.path().join(other), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("web")).unwrap();
        let seqs: Vec<u64> = list(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.first_seq)
            .collect();
        assert_eq!(seqs, vec![2, 30, 100]);
    }
}
