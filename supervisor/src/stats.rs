//! Reading containers' stats off the actor: the actor names the containers and their cgroups
//! ([`StatsTarget`]), and this module reads their cgroup files and `/proc/<pid>/net/dev` on a
//! few threads at once, then turns the readings into wire types.

use std::thread;

use protocol::{ContainerStats, ErrorKind, ErrorResponse};
use runtime::{cgroup, netdev};

use crate::actor::{now_ns, StatsTarget};

/// Threads reading at once: the files are small and in memory, so a few threads saturate it.
const READERS: usize = 4;

/// One sample per target, in the targets' order. A container that exits while it is read is
/// left out when `all` (every container of the namespace) was asked for, and is an error when
/// it was named.
pub fn sample(targets: Vec<StatsTarget>, all: bool) -> Result<Vec<ContainerStats>, ErrorResponse> {
    let chunk = targets.len().div_ceil(READERS).max(1);
    let read: Vec<Result<ContainerStats, ErrorResponse>> = thread::scope(|s| {
        let readers: Vec<_> = targets
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(read_one).collect::<Vec<_>>()))
            .collect();
        readers
            .into_iter()
            .flat_map(|reader| {
                reader.join().unwrap_or_else(|_| {
                    vec![Err(ErrorResponse::new(
                        ErrorKind::Internal,
                        "a stats reader panicked",
                    ))]
                })
            })
            .collect()
    });
    if all {
        return Ok(read.into_iter().filter_map(Result::ok).collect());
    }
    read.into_iter().collect()
}

fn read_one(target: &StatsTarget) -> Result<ContainerStats, ErrorResponse> {
    let id = &target.key.1;
    let unreadable = |e: &dyn std::fmt::Display| {
        ErrorResponse::new(
            ErrorKind::FailedPrecondition,
            format!("cannot read the stats of container \"{id}\" (did it exit?): {e}"),
        )
    };
    let stats = target.cgroup.stats().map_err(|e| unreadable(&e))?;
    let network = netdev::read(target.pid).map_err(|e| unreadable(&e))?;
    Ok(to_wire(target, stats, network))
}

fn to_wire(
    target: &StatsTarget,
    stats: cgroup::Stats,
    network: netdev::NetStats,
) -> ContainerStats {
    let cgroup::Stats {
        cpu,
        memory,
        pids,
        io,
    } = stats;
    ContainerStats {
        namespace: target.key.0.to_string(),
        id: target.key.1.to_string(),
        pid: target.pid,
        read_at: now_ns(),
        cpu: protocol::CpuStats {
            usage_ns: cpu.usage_ns,
            per_cpu_ns: cpu.per_cpu_ns,
            periods: cpu.periods,
            throttled_periods: cpu.throttled_periods,
            throttled_ns: cpu.throttled_ns,
        },
        memory: protocol::MemoryStats {
            usage: memory.usage,
            limit: memory.limit,
            max_usage: memory.max_usage,
            cache: memory.cache,
            rss: memory.rss,
        },
        pids: protocol::PidsStats {
            current: pids.current,
            limit: pids.limit,
        },
        io: protocol::IoStats {
            read_bytes: io.read_bytes,
            write_bytes: io.write_bytes,
        },
        network: protocol::NetworkStats {
            rx_bytes: network.rx_bytes,
            rx_packets: network.rx_packets,
            tx_bytes: network.tx_bytes,
            tx_packets: network.tx_packets,
        },
    }
}

/// The limits a container's cgroup holds, for `state`.
pub fn limits(cgroup: &runtime::Cgroup) -> Option<protocol::Limits> {
    let limits = cgroup
        .limits()
        .map_err(|e| log::debug!("cannot read limits: {e}"))
        .ok()?;
    Some(protocol::Limits {
        memory: limits.memory,
        memory_swap: limits.memory_swap,
        cpu_shares: limits.cpu_shares,
        cpu_weight: limits.cpu_weight,
        cpu_quota: limits.cpu_quota,
        cpu_period: limits.cpu_period,
        cpuset_cpus: limits.cpuset_cpus,
        pids: limits.pids,
        blkio_weight: limits.blkio_weight,
    })
}
