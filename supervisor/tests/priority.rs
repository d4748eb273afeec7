//! The threads that answer clients run at `--server-nice`; the workers, and through them runc
//! and every container, keep the daemon's own priority.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::*;

/// Field 19 of `/proc/.../stat`, counted after the `(comm)` field, which may hold spaces.
fn nice_of(stat_path: &str) -> Option<i32> {
    let stat = fs::read_to_string(stat_path).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split(' ').nth(16)?.parse().ok()
}

/// Thread name to its nice values.
fn thread_nices(pid: u32) -> BTreeMap<String, Vec<i32>> {
    let mut nices: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let dir = task.path();
        let comm = fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let name = comm.trim().trim_end_matches(|c: char| c.is_ascii_digit());
        if let Some(nice) = nice_of(&dir.join("stat").to_string_lossy()) {
            nices.entry(name.to_string()).or_default().push(nice);
        }
    }
    nices
}

#[test]
fn server_threads_are_boosted_and_containers_are_not() {
    let daemon = Daemon::start_with(&["--server-nice", "-7"]);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("nice");
    let pid = daemon.start_container(&id, &bundle);
    let ours = nice_of("/proc/self/stat").unwrap();

    let nices = thread_nices(daemon.info().pid);
    for (name, expected) in [
        ("ctrd", -7),
        ("keeper-link", -7),
        ("exits", -7),
        ("actix-rt|system", -7),
        ("worker-", ours),
    ] {
        let found = nices
            .get(name)
            .unwrap_or_else(|| panic!("no thread {name:?} in {nices:?}"));
        assert!(found.iter().all(|&n| n == expected), "{name}: {nices:?}");
    }
    assert_eq!(
        nice_of(&format!("/proc/{pid}/stat")),
        Some(ours),
        "the container's init keeps the daemon's priority"
    );
    daemon.kill(&id, libc::SIGKILL);
}
