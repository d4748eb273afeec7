//! Changing a running container's limits with `ctr containers update`, and what it refuses.

mod common;

use common::*;
use protocol::{ErrorKind, EventKind, Resources, UpdateRequest, DEFAULT_NAMESPACE};
use runtime::Cgroup;

/// The trimmed content of a file in the container's cgroup for `controller` (v1) or its unified
/// directory (v2, where `v2_file` names the same limit).
fn cgroup_file(pid: u32, controller: &str, v1_file: &str, v2_file: &str) -> String {
    let path = match Cgroup::of_pid(pid).unwrap() {
        Cgroup::V1(paths) => paths.file(controller, v1_file).unwrap(),
        Cgroup::V2(dir) => dir.join(v2_file),
    };
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn update(id: &str, resources: Resources) -> UpdateRequest {
    UpdateRequest {
        namespace: DEFAULT_NAMESPACE.into(),
        id: id.into(),
        resources,
    }
}

#[test]
fn update_sets_the_cgroup_files_and_state_shows_them() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let id = unique_id("update");
    let pid = daemon.start_container(&id, &bundle);

    let out = daemon.ctr(&[
        "containers",
        "update",
        "--memory-limit",
        "64M",
        "--pids-limit",
        "20",
        &id,
    ]);
    assert!(out.status.success(), "{out:?}");
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Update);
    assert_eq!(
        cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max"),
        "67108864"
    );
    assert_eq!(cgroup_file(pid, "pids", "pids.max", "pids.max"), "20");

    let out = daemon.ctr(&["containers", "state", "--format", "json", &id]);
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["limits"]["memory"], 67_108_864, "{state}");
    assert_eq!(state["limits"]["pids"], 20, "{state}");
    let out = daemon.ctr(&["containers", "state", &id]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("MEMORY LIMIT        67108864\n"), "{table}");
    assert!(table.contains("PIDS LIMIT          20\n"), "{table}");
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn a_limit_below_usage_is_refused_and_nothing_changes() {
    let daemon = Daemon::start();
    // 50 MiB in the container's tmpfs /dev/shm is charged to it and cannot be reclaimed.
    let script = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=50 2>/dev/null; echo ready; \
                  exec sleep 1000";
    let bundle = daemon.bundle("fill", &["sh", "-c", script]);
    let mut events = daemon.events();
    let id = unique_id("below");
    let pid = daemon.start_container(&id, &bundle);
    wait_for_output(&daemon, &id, "ready");
    let before = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max");
    let limits_before = daemon
        .client()
        .state(DEFAULT_NAMESPACE, &id)
        .unwrap()
        .limits;

    // runc writes the cpuset, CPU and pids files before it fails on the memory limit.
    let err = daemon
        .client()
        .update(update(
            &id,
            Resources {
                memory: Some(16 << 20),
                cpuset_cpus: Some("0".into()),
                cpu_quota: Some(20_000),
                pids_limit: Some(7),
                ..Resources::default()
            },
        ))
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Runtime), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot update container \"{id}\": runc update")),
        "{message}"
    );
    assert_eq!(
        cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max"),
        before
    );
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(state.limits, limits_before);
    assert_eq!(state.limits.unwrap().memory, None);
    assert_eq!(cgroup_file(pid, "pids", "pids.max", "pids.max"), "max");
    // The exit that follows shows no update event was emitted before it.
    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert!(events.of(&id, EventKind::Update).is_empty());
}

#[test]
fn nonsense_and_missing_containers_get_clear_errors() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("nonsense");
    let pid = daemon.start_container(&id, &bundle);

    let out = daemon.ctr(&["containers", "update", "--memory-limit", "lots", &id]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ctr: invalid --memory-limit \"lots\": expected bytes, optionally with a suffix k, M, G \
         or T (512M)\n"
    );
    let out = daemon.ctr(&["containers", "update", &id]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to update"));

    let err = daemon
        .client()
        .update(update(
            &id,
            Resources {
                cpu_shares: Some(1),
                ..Resources::default()
            },
        ))
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidArgument));
    assert_eq!(
        err.to_string(),
        "invalid cpu-shares \"1\": must be 2 to 262144"
    );
    assert_eq!(cgroup_file(pid, "pids", "pids.max", "pids.max"), "max");

    let out = daemon.ctr(&["containers", "update", "--pids-limit", "20", "nope"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ctr: container \"nope\" not found\n"
    );
    let out = daemon.ctr(&["containers", "stats", "nope"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ctr: container \"nope\" not found\n"
    );
    daemon.kill(&id, libc::SIGKILL);
}
