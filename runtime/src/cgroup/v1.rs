//! cgroup v1: one directory per controller (`cpuacct`, `memory`, `pids`, `blkio`, ...).

use std::path::{Path, PathBuf};

use super::parse::{self, keyed, read_optional, read_optional_u64, read_u64, v1_limit};
use super::{CgroupError, CgroupLimits, CpuStats, IoStats, MemoryStats, PidsStats, Stats};

/// The container's directory in each v1 hierarchy it is in, by controller name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Paths {
    controllers: Vec<(String, PathBuf)>,
}

/// The controllers ctrd reads; others (`devices`, `name=systemd`) are ignored.
const CONTROLLERS: [&str; 7] = [
    "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "freezer",
];

impl V1Paths {
    pub fn from_controllers<'a>(pairs: impl IntoIterator<Item = (&'a str, PathBuf)>) -> V1Paths {
        let controllers = pairs
            .into_iter()
            .filter(|(name, _)| CONTROLLERS.contains(name))
            .map(|(name, path)| (name.to_string(), path))
            .collect();
        V1Paths { controllers }
    }

    pub fn is_empty(&self) -> bool {
        self.controllers.is_empty()
    }

    pub fn dir(&self, controller: &str) -> Option<&Path> {
        self.controllers
            .iter()
            .find(|(name, _)| name == controller)
            .map(|(_, path)| path.as_path())
    }

    /// `file` in the controller's directory; an error if the container is not in that hierarchy.
    pub fn file(&self, controller: &str, file: &str) -> Result<PathBuf, CgroupError> {
        self.dir(controller)
            .map(|dir| dir.join(file))
            .ok_or_else(|| CgroupError::NotFound {
                what: format!("controller {controller}"),
            })
    }

    /// `file` in the controller's directory, or `None` if the container is not in it.
    fn optional(&self, controller: &str, file: &str) -> Option<PathBuf> {
        self.dir(controller).map(|dir| dir.join(file))
    }
}

pub fn stats(paths: &V1Paths) -> Result<Stats, CgroupError> {
    Ok(Stats {
        cpu: cpu(paths)?,
        memory: memory(paths)?,
        pids: pids(paths)?,
        io: io(paths)?,
    })
}

fn cpu(paths: &V1Paths) -> Result<CpuStats, CgroupError> {
    let usage_ns = read_u64(&paths.file("cpuacct", "cpuacct.usage")?)?;
    let per_cpu_path = paths.file("cpuacct", "cpuacct.usage_percpu")?;
    let per_cpu_ns = match read_optional(&per_cpu_path)? {
        Some(content) => parse::u64_list(&per_cpu_path, &content)?,
        None => Vec::new(),
    };
    let mut stats = CpuStats {
        usage_ns,
        per_cpu_ns,
        ..CpuStats::default()
    };
    if let Some(path) = paths.optional("cpu", "cpu.stat") {
        if let Some(content) = read_optional(&path)? {
            stats.periods = keyed(&path, &content, "nr_periods")?.unwrap_or(0);
            stats.throttled_periods = keyed(&path, &content, "nr_throttled")?.unwrap_or(0);
            stats.throttled_ns = keyed(&path, &content, "throttled_time")?.unwrap_or(0);
        }
    }
    Ok(stats)
}

fn memory(paths: &V1Paths) -> Result<MemoryStats, CgroupError> {
    let file = |name| paths.file("memory", name);
    let stat_path = file("memory.stat")?;
    let stat = parse::read(&stat_path)?;
    Ok(MemoryStats {
        usage: read_u64(&file("memory.usage_in_bytes")?)?,
        limit: v1_limit(read_u64(&file("memory.limit_in_bytes")?)?),
        max_usage: read_optional_u64(&file("memory.max_usage_in_bytes")?)?,
        cache: keyed(&stat_path, &stat, "cache")?.unwrap_or(0),
        rss: keyed(&stat_path, &stat, "rss")?.unwrap_or(0),
    })
}

fn pids(paths: &V1Paths) -> Result<PidsStats, CgroupError> {
    let Some(dir) = paths.dir("pids") else {
        return Ok(PidsStats::default());
    };
    let current = read_optional_u64(&dir.join("pids.current"))?.unwrap_or(0);
    let max_path = dir.join("pids.max");
    let limit = match read_optional(&max_path)? {
        Some(content) => parse::max_or_u64(&max_path, &content)?,
        None => None,
    };
    Ok(PidsStats { current, limit })
}

/// `blkio.throttle.io_service_bytes` counts every request, whatever the I/O scheduler:
/// `MAJ:MIN Read N` / `MAJ:MIN Write N` per device, then `Total N`.
fn io(paths: &V1Paths) -> Result<IoStats, CgroupError> {
    let Some(path) = paths.optional("blkio", "blkio.throttle.io_service_bytes") else {
        return Ok(IoStats::default());
    };
    let Some(content) = read_optional(&path)? else {
        return Ok(IoStats::default());
    };
    parse_io_service_bytes(&path, &content)
}

fn parse_io_service_bytes(path: &Path, content: &str) -> Result<IoStats, CgroupError> {
    let mut stats = IoStats::default();
    for line in content.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_device, op, value] = fields[..] else {
            continue;
        };
        let value: u64 = value
            .parse()
            .map_err(|_| CgroupError::parse(path, content))?;
        match op {
            "Read" => stats.read_bytes += value,
            "Write" => stats.write_bytes += value,
            _ => {}
        }
    }
    Ok(stats)
}

pub fn limits(paths: &V1Paths) -> Result<CgroupLimits, CgroupError> {
    let u64_file = |controller, name| match paths.optional(controller, name) {
        Some(path) => read_optional_u64(&path),
        None => Ok(None),
    };
    let cpu_quota = match paths.optional("cpu", "cpu.cfs_quota_us") {
        Some(path) => match read_optional(&path)? {
            Some(content) => {
                let quota: i64 = content
                    .trim()
                    .parse()
                    .map_err(|_| CgroupError::parse(&path, &content))?;
                (quota >= 0).then_some(quota)
            }
            None => None,
        },
        None => None,
    };
    let pids = match paths.optional("pids", "pids.max") {
        Some(path) => match read_optional(&path)? {
            Some(content) => parse::max_or_u64(&path, &content)?,
            None => None,
        },
        None => None,
    };
    let cpuset_cpus = match paths.optional("cpuset", "cpuset.cpus") {
        Some(path) => read_optional(&path)?.map(|s| s.trim().to_string()),
        None => None,
    };
    let blkio_weight = match u64_file("blkio", "blkio.weight")? {
        Some(weight) => Some(weight),
        None => u64_file("blkio", "blkio.bfq.weight")?,
    };
    Ok(CgroupLimits {
        memory: u64_file("memory", "memory.limit_in_bytes")?.and_then(v1_limit),
        memory_swap: u64_file("memory", "memory.memsw.limit_in_bytes")?.and_then(v1_limit),
        cpu_shares: u64_file("cpu", "cpu.shares")?,
        cpu_weight: None,
        cpu_quota,
        cpu_period: u64_file("cpu", "cpu.cfs_period_us")?,
        cpuset_cpus,
        pids,
        blkio_weight,
    })
}

/// The `oom_kill` counter of `memory.oom_control` (kernel 4.13 and later).
pub fn oom_kills(paths: &V1Paths) -> Result<u64, CgroupError> {
    let path = paths.file("memory", "memory.oom_control")?;
    let content = parse::read(&path)?;
    Ok(keyed(&path, &content, "oom_kill")?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Files as this hybrid host (kernel 6.x, runc 1.1.5) shows them for a container, one
    /// directory per controller.
    #[test]
    fn stats_and_limits_from_recorded_files() {
        let root = tempfile::tempdir().unwrap();
        let files = [
            ("cpuacct", "cpuacct.usage", "2500000000\n"),
            (
                "cpuacct",
                "cpuacct.usage_percpu",
                "1000000000 1500000000 \n",
            ),
            (
                "cpu",
                "cpu.stat",
                "nr_periods 40\nnr_throttled 7\nthrottled_time 350000000\nnr_bursts 0\n",
            ),
            ("cpu", "cpu.shares", "1024\n"),
            ("cpu", "cpu.cfs_quota_us", "-1\n"),
            ("cpu", "cpu.cfs_period_us", "100000\n"),
            ("memory", "memory.usage_in_bytes", "55128064\n"),
            ("memory", "memory.limit_in_bytes", "67108864\n"),
            (
                "memory",
                "memory.memsw.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("memory", "memory.max_usage_in_bytes", "60000256\n"),
            (
                "memory",
                "memory.stat",
                "cache 2097152\nrss 52428800\nrss_huge 0\ntotal_cache 2097152\n",
            ),
            (
                "memory",
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            ("pids", "pids.current", "5\n"),
            ("pids", "pids.max", "max\n"),
            (
                "blkio",
                "blkio.throttle.io_service_bytes",
                "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n",
            ),
        ];
        for (controller, name, content) in files {
            let dir = root.path().join(controller);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(name), content).unwrap();
        }
        let paths = V1Paths::from_controllers(
            ["cpu", "cpuacct", "memory", "pids", "blkio", "devices"]
                .map(|c| (c, root.path().join(c))),
        );
        assert!(
            paths.dir("devices").is_none(),
            "only the controllers read are kept"
        );
        let stats = stats(&paths).unwrap();
        assert_eq!(
            stats.cpu,
            CpuStats {
                usage_ns: 2_500_000_000,
                per_cpu_ns: vec![1_000_000_000, 1_500_000_000],
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
                limit: None
            }
        );
        assert_eq!(stats.io.write_bytes, 8192);
        assert_eq!(oom_kills(&paths).unwrap(), 2);
        let limits = limits(&paths).unwrap();
        assert_eq!(limits.memory, Some(64 << 20));
        assert_eq!(limits.memory_swap, None);
        assert_eq!(limits.cpu_shares, Some(1024));
        assert_eq!(limits.cpu_quota, None);
        assert_eq!(limits.cpu_period, Some(100_000));
        assert_eq!(limits.cpuset_cpus, None);
        assert_eq!(limits.pids, None);
    }

    #[test]
    fn io_service_bytes_sums_devices() {
        let content = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\n\
                       8:16 Read 1\n8:16 Write 2\nTotal 12291\n";
        let stats = parse_io_service_bytes(Path::new("x"), content).unwrap();
        assert_eq!(
            stats,
            IoStats {
                read_bytes: 4097,
                write_bytes: 8194
            }
        );
        assert_eq!(
            parse_io_service_bytes(Path::new("x"), "Total 0\n").unwrap(),
            IoStats::default()
        );
    }
}
