//! cgroup v2: one unified directory holding every controller's files.

use std::path::Path;

use super::parse::{self, keyed, max_or_u64, read_optional, read_optional_u64};
use super::{CgroupError, CgroupLimits, CpuStats, IoStats, MemoryStats, PidsStats, Stats};

pub fn stats(dir: &Path) -> Result<Stats, CgroupError> {
    Ok(Stats {
        cpu: cpu(dir)?,
        memory: memory(dir)?,
        pids: pids(dir)?,
        io: io(dir)?,
    })
}

/// `cpu.stat` is always there (`usage_usec`); the throttling keys only with the cpu controller.
fn cpu(dir: &Path) -> Result<CpuStats, CgroupError> {
    let path = dir.join("cpu.stat");
    let content = parse::read(&path)?;
    let usec = |key| keyed(&path, &content, key).map(|v| v.unwrap_or(0));
    Ok(CpuStats {
        usage_ns: usec("usage_usec")? * 1000,
        per_cpu_ns: Vec::new(),
        periods: usec("nr_periods")?,
        throttled_periods: usec("nr_throttled")?,
        throttled_ns: usec("throttled_usec")? * 1000,
    })
}

fn memory(dir: &Path) -> Result<MemoryStats, CgroupError> {
    let stat_path = dir.join("memory.stat");
    let stat = parse::read(&stat_path)?;
    let max_path = dir.join("memory.max");
    let limit = match read_optional(&max_path)? {
        Some(content) => max_or_u64(&max_path, &content)?,
        None => None,
    };
    Ok(MemoryStats {
        usage: parse::read_u64(&dir.join("memory.current"))?,
        limit,
        max_usage: read_optional_u64(&dir.join("memory.peak"))?,
        cache: keyed(&stat_path, &stat, "file")?.unwrap_or(0),
        rss: keyed(&stat_path, &stat, "anon")?.unwrap_or(0),
    })
}

fn pids(dir: &Path) -> Result<PidsStats, CgroupError> {
    let current = read_optional_u64(&dir.join("pids.current"))?.unwrap_or(0);
    let max_path = dir.join("pids.max");
    let limit = match read_optional(&max_path)? {
        Some(content) => max_or_u64(&max_path, &content)?,
        None => None,
    };
    Ok(PidsStats { current, limit })
}

/// `io.stat`: one line per device, `MAJ:MIN rbytes=N wbytes=N rios=N ...`.
fn io(dir: &Path) -> Result<IoStats, CgroupError> {
    let path = dir.join("io.stat");
    let Some(content) = read_optional(&path)? else {
        return Ok(IoStats::default());
    };
    let mut stats = IoStats::default();
    for pair in content.split_whitespace().filter(|f| f.contains('=')) {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let value: u64 = value
            .parse()
            .map_err(|_| CgroupError::parse(&path, &content))?;
        match key {
            "rbytes" => stats.read_bytes += value,
            "wbytes" => stats.write_bytes += value,
            _ => {}
        }
    }
    Ok(stats)
}

pub fn limits(dir: &Path) -> Result<CgroupLimits, CgroupError> {
    let max_file = |name: &str| -> Result<Option<u64>, CgroupError> {
        let path = dir.join(name);
        match read_optional(&path)? {
            Some(content) => max_or_u64(&path, &content),
            None => Ok(None),
        }
    };
    let memory = max_file("memory.max")?;
    // runc's --memory-swap counts memory and swap together; v2 keeps swap apart.
    let memory_swap = match (memory, max_file("memory.swap.max")?) {
        (Some(memory), Some(swap)) => Some(memory + swap),
        _ => None,
    };
    let (cpu_quota, cpu_period) = match read_optional(&dir.join("cpu.max"))? {
        Some(content) => parse_cpu_max(&dir.join("cpu.max"), &content)?,
        None => (None, None),
    };
    let cpuset_cpus = read_optional(&dir.join("cpuset.cpus"))?
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let blkio_weight = match read_optional(&dir.join("io.bfq.weight"))? {
        Some(content) => keyed(&dir.join("io.bfq.weight"), &content, "default")?,
        None => None,
    };
    Ok(CgroupLimits {
        memory,
        memory_swap,
        cpu_shares: None,
        cpu_weight: read_optional_u64(&dir.join("cpu.weight"))?,
        cpu_quota,
        cpu_period,
        cpuset_cpus,
        pids: max_file("pids.max")?,
        blkio_weight,
    })
}

/// `cpu.max`: `QUOTA PERIOD`, the quota `max` when unlimited.
fn parse_cpu_max(path: &Path, content: &str) -> Result<(Option<i64>, Option<u64>), CgroupError> {
    let mut fields = content.split_whitespace();
    let bad = || CgroupError::parse(path, content);
    let quota = match fields.next().ok_or_else(bad)? {
        "max" => None,
        quota => Some(quota.parse().map_err(|_| bad())?),
    };
    let period = fields
        .next()
        .map(|p| p.parse().map_err(|_| bad()))
        .transpose()?;
    Ok((quota, period))
}

/// `memory.events` counts `oom_kill`s in this cgroup and below.
pub fn oom_kills(dir: &Path) -> Result<u64, CgroupError> {
    let path = dir.join("memory.events");
    let content = parse::read(&path)?;
    Ok(keyed(&path, &content, "oom_kill")?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Files as a pure v2 host (kernel 6.1, runc 1.1) shows them for a container.
    fn recorded() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            (
                "cpu.stat",
                "usage_usec 2500123\nuser_usec 2000000\nsystem_usec 500123\n\
                 nr_periods 40\nnr_throttled 7\nthrottled_usec 350000\n",
            ),
            ("memory.current", "55128064\n"),
            ("memory.max", "67108864\n"),
            ("memory.peak", "60000256\n"),
            ("memory.swap.max", "0\n"),
            (
                "memory.stat",
                "anon 52428800\nfile 2097152\nkernel 602112\nfile_mapped 0\n",
            ),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
            ),
            ("pids.current", "5\n"),
            ("pids.max", "20\n"),
            (
                "io.stat",
                "8:0 rbytes=1048576 wbytes=4096 rios=10 wios=1 dbytes=0 dios=0\n\
                 253:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n",
            ),
            ("cpu.max", "50000 100000\n"),
            ("cpu.weight", "39\n"),
            ("cpuset.cpus", "0-1\n"),
        ];
        for (name, content) in files {
            fs::write(dir.path().join(name), content).unwrap();
        }
        dir
    }

    #[test]
    fn stats_from_recorded_files() {
        let dir = recorded();
        let stats = stats(dir.path()).unwrap();
        assert_eq!(
            stats.cpu,
            CpuStats {
                usage_ns: 2_500_123_000,
                per_cpu_ns: Vec::new(),
                periods: 40,
                throttled_periods: 7,
                throttled_ns: 350_000_000,
            }
        );
        assert_eq!(
            stats.memory,
            MemoryStats {
                usage: 55_128_064,
                limit: Some(64 << 20),
                max_usage: Some(60_000_256),
                cache: 2 << 20,
                rss: 50 << 20,
            }
        );
        assert_eq!(
            stats.pids,
            PidsStats {
                current: 5,
                limit: Some(20)
            }
        );
        assert_eq!(
            stats.io,
            IoStats {
                read_bytes: 1_048_577,
                write_bytes: 4098
            }
        );
        assert_eq!(oom_kills(dir.path()).unwrap(), 1);
    }

    #[test]
    fn limits_from_recorded_files() {
        let dir = recorded();
        let limits = limits(dir.path()).unwrap();
        assert_eq!(
            limits,
            CgroupLimits {
                memory: Some(64 << 20),
                memory_swap: Some(64 << 20),
                cpu_shares: None,
                cpu_weight: Some(39),
                cpu_quota: Some(50_000),
                cpu_period: Some(100_000),
                cpuset_cpus: Some("0-1".into()),
                pids: Some(20),
                blkio_weight: None,
            }
        );
    }

    #[test]
    fn unlimited_and_missing_controllers() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cpu.stat"), "usage_usec 10\n").unwrap();
        fs::write(dir.path().join("memory.current"), "4096\n").unwrap();
        fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        fs::write(dir.path().join("memory.stat"), "anon 0\nfile 0\n").unwrap();
        fs::write(dir.path().join("cpu.max"), "max 100000\n").unwrap();
        let stats = stats(dir.path()).unwrap();
        assert_eq!(stats.cpu.usage_ns, 10_000);
        assert_eq!(stats.memory.limit, None);
        assert_eq!(stats.memory.max_usage, None);
        assert_eq!(stats.pids, PidsStats::default());
        assert_eq!(stats.io, IoStats::default());
        let limits = limits(dir.path()).unwrap();
        assert_eq!(limits.cpu_quota, None);
        assert_eq!(limits.cpu_period, Some(100_000));
        assert_eq!(limits.memory, None);
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = recorded();
        fs::write(dir.path().join("memory.current"), "lots\n").unwrap();
        let err = stats(dir.path()).unwrap_err().to_string();
        assert!(err.contains("memory.current"), "{err}");
        assert!(err.contains("lots"), "{err}");
        let gone = dir.path().join("gone");
        assert!(matches!(stats(&gone), Err(CgroupError::Read { .. })));
    }
}
