//! Per-container CPU, memory and pids gauges for Prometheus, read from the container's cgroup v1
//! files when `/metrics` is scraped: `cpuacct.usage`, `memory.usage_in_bytes`, `pids.current`.
//!
//! The cgroup is found from the init's `/proc/<pid>/cgroup`, and the hierarchies from
//! `/proc/self/mountinfo`. These are file reads: callers run them off the supervisor actor. A
//! container whose files cannot be read (it exited meanwhile, or the host has no v1 hierarchy
//! for a controller) is left out of that gauge rather than reported as zero.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// One container's readings; `None` where a file could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
}

/// Where each v1 controller's hierarchy is mounted: `(mount root, mount point)`.
#[derive(Debug, Default)]
pub struct Hierarchies {
    mounts: HashMap<String, (PathBuf, PathBuf)>,
}

const CPU: &str = "cpuacct";
const MEMORY: &str = "memory";
const PIDS: &str = "pids";

impl Hierarchies {
    /// Reads this process's mount table; empty when it cannot be read.
    pub fn discover() -> Hierarchies {
        Hierarchies::parse(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
    }

    /// Parses `mountinfo`: `id parent dev root mountpoint opts [optional...] - fstype src super`.
    fn parse(mountinfo: &str) -> Hierarchies {
        let mut mounts = HashMap::new();
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = before.split(' ').collect();
            let after: Vec<&str> = after.split(' ').collect();
            let (Some(root), Some(point), Some(&"cgroup"), Some(options)) =
                (fields.get(3), fields.get(4), after.first(), after.get(2))
            else {
                continue;
            };
            for option in options.split(',') {
                if [CPU, MEMORY, PIDS].contains(&option) {
                    mounts
                        .entry(option.to_string())
                        .or_insert_with(|| (PathBuf::from(root), PathBuf::from(point)));
                }
            }
        }
        Hierarchies { mounts }
    }

    /// Reads the usage of the cgroup that `pid` is in.
    pub fn usage(&self, pid: u32) -> Usage {
        let Ok(membership) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return Usage::default();
        };
        self.usage_of(&membership, Path::new("/"))
    }

    /// `membership` is a `/proc/<pid>/cgroup`; `sysroot` prefixes every path read (`/` live).
    fn usage_of(&self, membership: &str, sysroot: &Path) -> Usage {
        let read = |controller: &str, file: &str| -> Option<u64> {
            let dir = self.dir(membership, controller)?;
            let path = sysroot
                .join(dir.strip_prefix("/").unwrap_or(&dir))
                .join(file);
            fs::read_to_string(path).ok()?.trim().parse().ok()
        };
        Usage {
            cpu_ns: read(CPU, "cpuacct.usage"),
            memory_bytes: read(MEMORY, "memory.usage_in_bytes"),
            pids: read(PIDS, "pids.current"),
        }
    }

    /// The directory of the controller's cgroup for a process with this membership.
    fn dir(&self, membership: &str, controller: &str) -> Option<PathBuf> {
        let (root, point) = self.mounts.get(controller)?;
        let path = membership.lines().find_map(|line| {
            // `4:memory:/path` or `2:cpu,cpuacct:/path`; the v2 line `0::/path` names none.
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then_some(path)
        })?;
        let relative = Path::new(path).strip_prefix(root).ok()?;
        Some(point.join(relative))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn usage_is_read_from_recorded_cgroup_files() {
        let sysroot = tempfile::tempdir().unwrap();
        let cpu = sysroot.path().join("sys/fs/cgroup/cpu,cpuacct/daemon/web");
        let memory = sysroot.path().join("sys/fs/cgroup/memory/daemon/web");
        fs::create_dir_all(&cpu).unwrap();
        fs::create_dir_all(&memory).unwrap();
        fs::write(cpu.join("cpuacct.usage"), "123456789\n").unwrap();
        fs::write(memory.join("memory.usage_in_bytes"), "4096\n").unwrap();
        let hierarchies = Hierarchies::parse(MOUNTINFO);
        let membership =
            "9:pids:/daemon/web\n4:memory:/daemon/web\n2:cpu,cpuacct:/daemon/web\n0::/\n";
        let usage = hierarchies.usage_of(membership, sysroot.path());
        assert_eq!(
            usage,
            Usage {
                cpu_ns: Some(123_456_789),
                memory_bytes: Some(4096),
                // No pids hierarchy is mounted in this recording.
                pids: None,
            }
        );
    }

    #[test]
    fn a_gone_process_has_no_usage() {
        let hierarchies = Hierarchies::discover();
        assert_eq!(hierarchies.usage(u32::MAX), Usage::default());
    }

    #[test]
    fn this_host_has_the_v1_hierarchies() {
        let hierarchies = Hierarchies::discover();
        let usage = hierarchies.usage(std::process::id());
        // A root cgroup has no pids.current; a container's cgroup (the integration tests) has.
        assert!(usage.memory_bytes.is_some_and(|b| b > 0), "{usage:?}");
        assert!(usage.cpu_ns.is_some(), "{usage:?}");
    }
}
