//! A change of a running container's limits, as `runc update` takes it: checked here so that
//! nonsense never reaches runc and a refused value names itself.

use crate::RuntimeError;

/// Each `Some` field becomes one `runc update` flag; `None` leaves that limit as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceUpdate {
    /// Bytes (`--memory`); -1 for unlimited.
    pub memory: Option<i64>,
    /// Memory plus swap in bytes (`--memory-swap`); -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// Microseconds per period (`--cpu-quota`); -1 removes the quota.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    /// CPUs the container may run on, `0-2,4` (`--cpuset-cpus`).
    pub cpuset_cpus: Option<String>,
    /// Most tasks at once (`--pids-limit`); -1 for unlimited.
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u64>,
}

/// The kernel's bounds for `cpu.shares`, `blkio.weight`, and the CFS period in microseconds.
const CPU_SHARES: (u64, u64) = (2, 262_144);
const BLKIO_WEIGHT: (u64, u64) = (10, 1000);
const CPU_PERIOD: (u64, u64) = (1000, 1_000_000);

impl ResourceUpdate {
    pub fn is_empty(&self) -> bool {
        *self == ResourceUpdate::default()
    }

    /// Refuses values the kernel would refuse or misread, one message per field.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |field: &'static str, value: String, reason: &'static str| {
            Err(RuntimeError::InvalidLimit {
                what: field,
                value,
                reason,
            })
        };
        if self.is_empty() {
            return bad("update", String::new(), "names no limit to change");
        }
        if let Some(memory) = self.memory {
            if memory == 0 || memory < -1 {
                return bad("memory limit", memory.to_string(), "must be above 0, or -1");
            }
        }
        if let Some(swap) = self.memory_swap {
            if swap == 0 || swap < -1 {
                return bad("memory-swap", swap.to_string(), "must be above 0, or -1");
            }
            if let (Some(memory), true) = (self.memory, swap > 0) {
                if swap < memory {
                    return bad(
                        "memory-swap",
                        swap.to_string(),
                        "must be at least the memory limit",
                    );
                }
            }
        }
        if let Some(shares) = self.cpu_shares {
            if !(CPU_SHARES.0..=CPU_SHARES.1).contains(&shares) {
                return bad("cpu-shares", shares.to_string(), "must be 2 to 262144");
            }
        }
        if let Some(quota) = self.cpu_quota {
            if quota == 0 || quota < -1 {
                return bad("cpu-quota", quota.to_string(), "must be above 0, or -1");
            }
        }
        if let Some(period) = self.cpu_period {
            if !(CPU_PERIOD.0..=CPU_PERIOD.1).contains(&period) {
                return bad("cpu-period", period.to_string(), "must be 1000 to 1000000");
            }
        }
        if let Some(cpus) = &self.cpuset_cpus {
            if !valid_cpu_list(cpus) {
                return bad("cpuset-cpus", cpus.clone(), "expected a list such as 0-2,4");
            }
        }
        if let Some(pids) = self.pids_limit {
            if pids == 0 || pids < -1 {
                return bad("pids-limit", pids.to_string(), "must be above 0, or -1");
            }
        }
        if let Some(weight) = self.blkio_weight {
            if !(BLKIO_WEIGHT.0..=BLKIO_WEIGHT.1).contains(&weight) {
                return bad("blkio-weight", weight.to_string(), "must be 10 to 1000");
            }
        }
        Ok(())
    }

    /// The `runc update` flags, each as `--name=value`.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                flags.push(format!("--{name}={value}"));
            }
        };
        flag("memory", self.memory.map(|v| v.to_string()));
        flag("memory-swap", self.memory_swap.map(|v| v.to_string()));
        flag("cpu-share", self.cpu_shares.map(|v| v.to_string()));
        flag("cpu-quota", self.cpu_quota.map(|v| v.to_string()));
        flag("cpu-period", self.cpu_period.map(|v| v.to_string()));
        flag("cpuset-cpus", self.cpuset_cpus.clone());
        flag("pids-limit", self.pids_limit.map(|v| v.to_string()));
        flag("blkio-weight", self.blkio_weight.map(|v| v.to_string()));
        flags
    }
}

/// `N`, `N-M`, comma-separated, with `N <= M`.
fn valid_cpu_list(list: &str) -> bool {
    !list.is_empty()
        && list.split(',').all(|part| {
            let (low, high) = part.split_once('-').unwrap_or((part, part));
            match (low.parse::<u32>(), high.parse::<u32>()) {
                (Ok(low), Ok(high)) => low <= high,
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_name_only_what_changes() {
        let update = ResourceUpdate {
            memory: Some(64 << 20),
            pids_limit: Some(20),
            cpuset_cpus: Some("0-1".into()),
            ..ResourceUpdate::default()
        };
        update.validate().unwrap();
        assert_eq!(
            update.flags(),
            ["--memory=67108864", "--cpuset-cpus=0-1", "--pids-limit=20"]
        );
    }

    #[test]
    fn nonsense_is_refused_by_name() {
        let cases = [
            (ResourceUpdate::default(), "names no limit"),
            (
                ResourceUpdate {
                    memory: Some(0),
                    ..Default::default()
                },
                "memory limit",
            ),
            (
                ResourceUpdate {
                    memory: Some(100),
                    memory_swap: Some(50),
                    ..Default::default()
                },
                "at least the memory limit",
            ),
            (
                ResourceUpdate {
                    cpu_shares: Some(1),
                    ..Default::default()
                },
                "cpu-shares",
            ),
            (
                ResourceUpdate {
                    cpuset_cpus: Some("3-1".into()),
                    ..Default::default()
                },
                "cpuset-cpus",
            ),
            (
                ResourceUpdate {
                    pids_limit: Some(-5),
                    ..Default::default()
                },
                "pids-limit",
            ),
            (
                ResourceUpdate {
                    blkio_weight: Some(5000),
                    ..Default::default()
                },
                "blkio-weight",
            ),
        ];
        for (update, expected) in cases {
            let err = update.validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        assert!(valid_cpu_list("0,2-3"));
        assert!(!valid_cpu_list("0,,1"));
        assert!(!valid_cpu_list("a"));
    }
}
