//! Records of one size, `N` bytes: `body (N - 4 bytes) | crc32(body): u32 LE`.
//!
//! With every record the same size, a log is read in `N`-byte steps and needs no length on
//! disk; the owner lays out the body.

/// Bytes a record's checksum takes, at its end.
pub const CRC_LEN: usize = 4;

/// Writes the checksum of `record`'s body into its last [`CRC_LEN`] bytes.
pub fn seal<const N: usize>(record: &mut [u8; N]) {
    const { assert!(N > CRC_LEN, "a record holds a body and its checksum") };
    let (body, crc) = record.split_at_mut(N - CRC_LEN);
    crc.copy_from_slice(&crc32fast::hash(body).to_le_bytes());
}

/// The body of `record`, if it matches its checksum.
pub fn check<const N: usize>(record: &[u8; N]) -> Option<&[u8]> {
    const { assert!(N > CRC_LEN, "a record holds a body and its checksum") };
    let (body, crc) = record.split_at(N - CRC_LEN);
    (crc32fast::hash(body).to_le_bytes() == crc).then_some(body)
}

/// The bodies of the records `log` begins with, up to the first that is cut short or fails its
/// checksum. The readable part of the log is as many records long as this yields (or fewer, if
/// the owner stops at a body it rejects).
pub fn records<const N: usize>(log: &[u8]) -> impl Iterator<Item = &[u8]> {
    log.chunks_exact(N)
        .map(|chunk| <&[u8; N]>::try_from(chunk).expect("chunks_exact gives N bytes"))
        .map_while(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(body: [u8; 4]) -> [u8; 8] {
        let mut record = [0u8; 8];
        record[..4].copy_from_slice(&body);
        seal(&mut record);
        record
    }

    #[test]
    fn the_checksum_follows_the_body() {
        let record = sealed(*b"body");
        assert_eq!(record[4..], crc32fast::hash(b"body").to_le_bytes());
        assert_eq!(check(&record), Some(&b"body"[..]));
    }

    #[test]
    fn reading_stops_at_a_flipped_bit_or_a_cut() {
        let log: Vec<u8> = [*b"aaaa", *b"bbbb", *b"cccc"]
            .into_iter()
            .flat_map(sealed)
            .collect();
        let bodies: Vec<&[u8]> = records::<8>(&log).collect();
        assert_eq!(bodies, [b"aaaa", b"bbbb", b"cccc"]);
        assert_eq!(records::<8>(&log[..log.len() - 1]).count(), 2);
        let mut flipped = log.clone();
        flipped[9] ^= 0x40;
        assert_eq!(records::<8>(&flipped).count(), 1);
        assert_eq!(check::<8>(&[0; 8]), None, "zeroes are no record");
    }
}
