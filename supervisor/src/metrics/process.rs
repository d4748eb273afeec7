//! Gauges of the daemon process itself, read from `/proc/self`: threads, open file descriptors
//! and resident memory. These are file reads, so callers run them off the supervisor actor.

use std::fs;
use std::path::Path;

use protocol::Gauge;

/// The process gauges; one that cannot be read is left out, never reported as zero.
pub fn gauges() -> Vec<Gauge> {
    gauges_from(Path::new("/proc/self"))
}

fn gauges_from(proc_dir: &Path) -> Vec<Gauge> {
    let mut gauges = Vec::new();
    let status = fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
    if let Some(threads) = status_field(&status, "Threads:") {
        gauges.push(gauge("threads", threads));
    }
    if let Ok(fds) = fs::read_dir(proc_dir.join("fd")) {
        // The directory handle this count is taken through is one of the entries.
        let open = fds.count().saturating_sub(1);
        gauges.push(gauge("fds", i64::try_from(open).unwrap_or(i64::MAX)));
    }
    if let Some(rss_kib) = status_field(&status, "VmRSS:") {
        gauges.push(gauge("rss-bytes", rss_kib.saturating_mul(1024)));
    }
    gauges
}

fn gauge(name: &str, value: i64) -> Gauge {
    Gauge {
        name: name.to_string(),
        value,
    }
}

/// The number after `key` in `/proc/<pid>/status` (`Threads:\t12`, `VmRSS:\t  5120 kB`).
fn status_field(status: &str, key: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_from_a_recorded_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("status"),
            "Name:\tctrd\nVmRSS:\t    6144 kB\nThreads:\t17\n",
        )
        .unwrap();
        fs::create_dir(dir.path().join("fd")).unwrap();
        for n in 0..4 {
            fs::write(dir.path().join("fd").join(n.to_string()), "").unwrap();
        }
        let gauges = gauges_from(dir.path());
        let value = |name: &str| gauges.iter().find(|g| g.name == name).map(|g| g.value);
        assert_eq!(value("threads"), Some(17));
        assert_eq!(value("rss-bytes"), Some(6144 * 1024));
        assert_eq!(value("fds"), Some(3));
    }

    #[test]
    fn this_process_has_threads_and_fds() {
        let gauges = gauges();
        assert_eq!(gauges.len(), 3, "{gauges:?}");
        assert!(gauges.iter().all(|g| g.value > 0), "{gauges:?}");
    }
}
