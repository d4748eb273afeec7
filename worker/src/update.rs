//! Updating a container's limits so that a refused update changes nothing.
//!
//! `runc update` writes one cgroup file after another and stops at the first the kernel
//! refuses: a memory limit below usage fails only after the cpuset and CPU files were written.
//! So the limits are read before; if runc fails and some changed, the changed ones are put back.

use runtime::cgroup::CgroupLimits;
use runtime::{Cgroup, ContainerId, Namespace, ResourceUpdate, Runc, RuntimeError};

/// Runs `runc update`; on failure, restores whatever it changed before failing.
pub fn update_container(
    runc: &Runc,
    ns: &Namespace,
    id: &ContainerId,
    update: &ResourceUpdate,
    cgroup: Option<&Cgroup>,
) -> Result<(), RuntimeError> {
    let before = cgroup.and_then(|c| c.limits().ok());
    let failure = match runc.update(ns, id, update) {
        Ok(()) => return Ok(()),
        Err(failure) => failure,
    };
    let (Some(cgroup), Some(before)) = (cgroup, before) else {
        return Err(failure);
    };
    let after = match cgroup.limits() {
        Ok(after) => after,
        Err(e) => {
            log::warn!("container {id}: cannot check what a failed update changed: {e}");
            return Err(failure);
        }
    };
    let restore = restoring(&before, &after);
    if restore.is_empty() {
        return Err(failure);
    }
    log::info!("container {id}: update failed part-way; restoring {restore:?}");
    match runc.update(ns, id, &restore) {
        Ok(()) => Err(failure),
        Err(cleanup) => Err(RuntimeError::CleanupFailed {
            failure: Box::new(failure),
            cleanup: Box::new(cleanup),
        }),
    }
}

/// The update that takes `after` back to `before`, naming only what differs; an unlimited
/// value is runc's -1.
fn restoring(before: &CgroupLimits, after: &CgroupLimits) -> ResourceUpdate {
    fn changed<T: PartialEq + Clone>(before: &T, after: &T) -> Option<T> {
        (before != after).then(|| before.clone())
    }
    let unlimited = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
    ResourceUpdate {
        memory: changed(&before.memory, &after.memory).map(unlimited),
        memory_swap: changed(&before.memory_swap, &after.memory_swap).map(unlimited),
        cpu_shares: changed(&before.cpu_shares, &after.cpu_shares).flatten(),
        cpu_quota: changed(&before.cpu_quota, &after.cpu_quota).map(|q| q.unwrap_or(-1)),
        cpu_period: changed(&before.cpu_period, &after.cpu_period).flatten(),
        cpuset_cpus: changed(&before.cpuset_cpus, &after.cpuset_cpus).flatten(),
        pids_limit: changed(&before.pids, &after.pids).map(unlimited),
        blkio_weight: changed(&before.blkio_weight, &after.blkio_weight).flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_only_what_changed_with_unlimited_as_minus_one() {
        let before = CgroupLimits {
            memory: None,
            cpu_quota: None,
            cpu_period: Some(100_000),
            cpuset_cpus: Some("0-1".into()),
            pids: None,
            ..CgroupLimits::default()
        };
        let after = CgroupLimits {
            cpu_quota: Some(20_000),
            cpuset_cpus: Some("0".into()),
            pids: Some(7),
            ..before.clone()
        };
        let restore = restoring(&before, &after);
        assert_eq!(
            restore,
            ResourceUpdate {
                cpu_quota: Some(-1),
                cpuset_cpus: Some("0-1".into()),
                pids_limit: Some(-1),
                ..ResourceUpdate::default()
            }
        );
        restore.validate().unwrap();
        assert!(restoring(&before, &before).is_empty());
    }
}
