//! Reading and parsing the small text files cgroups expose: single values, `key value` lists,
//! and `max` for unlimited.

use std::fs;
use std::io;
use std::path::Path;

use super::CgroupError;

/// A v1 limit at or above this is the kernel's "unlimited" (`PAGE_COUNTER_MAX` in bytes).
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

pub fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|e| CgroupError::read(path, e))
}

/// `None` when the file does not exist: the controller is not enabled, or the kernel is too old
/// to have it.
pub fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(content) => Ok(Some(content)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CgroupError::read(path, e)),
    }
}

pub fn u64_value(path: &Path, content: &str) -> Result<u64, CgroupError> {
    content
        .trim()
        .parse()
        .map_err(|_| CgroupError::parse(path, content))
}

pub fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    u64_value(path, &read(path)?)
}

pub fn read_optional_u64(path: &Path) -> Result<Option<u64>, CgroupError> {
    read_optional(path)?
        .map(|content| u64_value(path, &content))
        .transpose()
}

/// A v2 value where `max` means unlimited.
pub fn max_or_u64(path: &Path, content: &str) -> Result<Option<u64>, CgroupError> {
    match content.trim() {
        "max" => Ok(None),
        _ => u64_value(path, content).map(Some),
    }
}

/// A v1 byte limit, which says "unlimited" with a huge number.
pub fn v1_limit(value: u64) -> Option<u64> {
    (value < V1_UNLIMITED).then_some(value)
}

/// The value of `key` in a flat-keyed file (`key value` per line); `None` if absent.
pub fn keyed(path: &Path, content: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in content.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() == Some(key) {
            return fields
                .next()
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or_else(|| CgroupError::parse(path, content));
        }
    }
    Ok(None)
}

/// Space-separated numbers on one line (`cpuacct.usage_percpu`).
pub fn u64_list(path: &Path, content: &str) -> Result<Vec<u64>, CgroupError> {
    content
        .split_whitespace()
        .map(|v| v.parse().map_err(|_| CgroupError::parse(path, content)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values_and_garbage() {
        let p = Path::new("memory.stat");
        let content = "cache 4096\nrss 8192\ntotal_rss 9\n";
        assert_eq!(keyed(p, content, "rss").unwrap(), Some(8192));
        assert_eq!(keyed(p, content, "swap").unwrap(), None);
        assert!(keyed(p, "rss lots\n", "rss").is_err());
        assert_eq!(max_or_u64(p, "max\n").unwrap(), None);
        assert_eq!(max_or_u64(p, "67108864\n").unwrap(), Some(64 << 20));
        assert!(u64_value(p, "-1").is_err());
        assert_eq!(u64_list(p, "1 2 3 \n").unwrap(), [1, 2, 3]);
        assert_eq!(v1_limit(9223372036854771712), None);
        assert_eq!(v1_limit(64 << 20), Some(64 << 20));
    }
}
