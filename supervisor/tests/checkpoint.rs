//! Checkpoint, restore and live migration with the real daemon, runc and CRIU.
//!
//! The workload is a counter: a busybox shell that writes an incrementing number to `/count`
//! every 100 ms. Its bundle gets a writable root (make-bundle.sh makes it read-only), so the
//! file sits in `<bundle>/rootfs/count`: the test reads it from the host, and a bundle copied
//! for a migration carries it along, as CRIU needs (it restores open files by path, and the
//! counter keeps its value in the shell's memory, which is in the images).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::*;
use protocol::{
    CheckpointOptions, CheckpointRequest, ClientError, ErrorKind, EventKind, Status,
    DEFAULT_NAMESPACE,
};

/// Written to a temporary file and renamed, so `/count` always holds a whole number, even when
/// CRIU freezes the shell in the middle of a write. Each value goes to stdout too.
const COUNTER: &str =
    "i=0; while true; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; \
                       echo $i; sleep 0.1; done";

/// A counter bundle with a writable root.
fn counter_bundle(daemon: &Daemon, name: &str) -> PathBuf {
    let bundle = daemon.bundle(name, &["sh", "-c", COUNTER]);
    writable_root(&bundle);
    bundle
}

fn writable_root(bundle: &Path) {
    let config_path = bundle.join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(config.contains("\"readonly\": true"), "{config}");
    std::fs::write(
        &config_path,
        config.replace("\"readonly\": true", "\"readonly\": false"),
    )
    .unwrap();
}

/// The counter's last value; `None` before its first write.
fn count(bundle: &Path) -> Option<u64> {
    std::fs::read_to_string(bundle.join("rootfs/count"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn wait_count_above(bundle: &Path, floor: u64) -> u64 {
    wait_until(&format!("the counter to pass {floor}"), || {
        count(bundle).filter(|&n| n > floor)
    })
}

/// Waits until the counter moves past `last`, and checks every value seen on the way: a counter
/// that restarted from 0 would show values below `last` first.
fn assert_continues_from(bundle: &Path, last: u64) -> u64 {
    wait_until(&format!("the counter to continue from {last}"), || {
        let n = count(bundle)?;
        assert!(n >= last, "the counter restarted: {n} after {last}");
        (n > last).then_some(n)
    })
}

fn ctr_ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.ctr(args);
    assert!(
        out.status.success(),
        "ctr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ctr_err(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.ctr(args);
    assert!(!out.status.success(), "ctr {args:?} should have failed");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}

fn status_of(daemon: &Daemon, id: &str) -> Option<Status> {
    daemon
        .client()
        .state(DEFAULT_NAMESPACE, id)
        .ok()
        .map(|c| c.status)
}

#[test]
fn a_counter_keeps_counting_stops_with_its_checkpoint_and_continues_when_restored() {
    let daemon = Daemon::start();
    let bundle = counter_bundle(&daemon, "counter");
    let id = unique_id("counter");
    let mut events = daemon.events();
    let pid = daemon.start_container(&id, &bundle);
    wait_count_above(&bundle, 3);

    // Without --exit the container is dumped and keeps running.
    ctr_ok(&daemon, &["checkpoints", "create", &id, "c0"]);
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Checkpoint);
    assert_eq!(status_of(&daemon, &id), Some(Status::Running));
    let after_c0 = count(&bundle).unwrap_or(0);
    wait_count_above(&bundle, after_c0);
    assert!(bundle.join("checkpoints/c0/checkpoint.json").is_file());

    // With --exit: a checkpoint event, then the exit; the container is kept, stopped.
    ctr_ok(&daemon, &["checkpoints", "create", "--exit", &id, "c1"]);
    let exit = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exit[0].pid, pid);
    let kinds: Vec<EventKind> = events
        .seen
        .iter()
        .filter(|e| e.id == id)
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::StartContainer,
            EventKind::Checkpoint,
            EventKind::Checkpoint,
            EventKind::Exit
        ]
    );
    let stopped = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(stopped.status, Status::Stopped);
    assert_eq!(stopped.exit.and_then(|e| e.status), Some(137));
    assert!(
        daemon.runc_leftovers().is_empty(),
        "{:?}",
        daemon.runc_leftovers()
    );
    // Its checkpoints are listed through it while it is kept.
    let listed = ctr_ok(&daemon, &["checkpoints", "list", &id]);
    assert!(listed.contains("c0") && listed.contains("c1"), "{listed}");
    let last = count(&bundle).expect("the counter's last value");

    // Restored: running, counting on from where it stopped, an ordinary child of ctrd. The
    // container is kept, so no bundle is named: it is restored from its own.
    ctr_ok(&daemon, &["containers", "start", "--checkpoint", "c1", &id]);
    let restored = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(restored.status, Status::Running);
    let restored_pid = restored.pid.unwrap();
    assert_continues_from(&bundle, last);
    assert_eq!(parent_of(restored_pid), daemon.pid(), "reparented to ctrd");
    let starts = events.wait_for(2, |e| e.id == id && e.kind == EventKind::StartContainer);
    assert_eq!(starts[1].pid, restored_pid);
    // Its stdout, a pipe when dumped, is the new pipe to the same log.
    let log = daemon.state.join("default").join(&id).join("stdout.log");
    wait_until("the restored counter's output in the log", || {
        let text = std::fs::read_to_string(&log).ok()?;
        let numbers: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
        (numbers.contains(&1) && numbers.contains(&(last + 1))).then_some(())
    });

    daemon.kill(&id, libc::SIGKILL);
    let exits = events.wait_for(2, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exits[1].pid, restored_pid);
    assert_eq!(exits[1].status, Some(137));
    ctr_ok(&daemon, &["containers", "rm", &id]);
    assert!(daemon.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());
    // The checkpoints are the bundle's: deleting the container leaves them.
    assert!(bundle.join("checkpoints/c1/checkpoint.json").is_file());
}

#[test]
fn migrate_moves_a_counting_container_to_another_daemon() {
    let source = Daemon::start();
    let target = Daemon::start();
    let bundle = counter_bundle(&source, "counter");
    let id = unique_id("migrate");
    source.start_container(&id, &bundle);
    wait_count_above(&bundle, 3);
    let mut target_events = target.events();

    let target_bundle = target.dir.path().join("bundles/migrated");
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/migrate.sh"))
        .arg(&source.socket)
        .arg(&target.socket)
        .arg(&id)
        .arg(&target_bundle)
        .env("CTR", ctr_binary())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "migrate.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The source's stopped copy is deleted once the target runs it.
    assert!(source.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());
    assert!(source.runc_leftovers().is_empty());
    let last = count(&bundle).expect("the counter's last value on the source");
    let moved = target.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(moved.status, Status::Running);
    assert_eq!(moved.bundle, target_bundle.to_string_lossy());
    assert_continues_from(&target_bundle, last);
    assert_eq!(count(&bundle), Some(last), "the source copy stays still");

    target.kill(&id, libc::SIGKILL);
    let exit = target_events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exit[0].status, Some(137));
}

#[test]
fn checkpoints_list_shows_their_options_and_delete_removes_them() {
    let daemon = Daemon::start();
    let bundle = counter_bundle(&daemon, "counter");
    let id = unique_id("list");
    daemon.start_container(&id, &bundle);
    wait_count_above(&bundle, 1);

    ctr_ok(&daemon, &["checkpoints", "create", &id, "plain"]);
    ctr_ok(
        &daemon,
        &[
            "checkpoints",
            "create",
            "--tcp",
            "--unix-sockets",
            &id,
            "with-options",
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&ctr_ok(
        &daemon,
        &["checkpoints", "list", &id, "--format", "json"],
    ))
    .unwrap();
    let listed = json.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{json}");
    assert_eq!(listed[0]["name"], "plain");
    assert_eq!(listed[0]["tcp"], false);
    assert_eq!(listed[0]["unix_sockets"], false);
    assert_eq!(listed[1]["name"], "with-options");
    assert_eq!(listed[1]["tcp"], true);
    assert_eq!(listed[1]["unix_sockets"], true);
    assert_eq!(listed[1]["shell"], false);
    assert!(listed[1]["created"].as_str().unwrap().ends_with('Z'));

    let table = ctr_ok(&daemon, &["checkpoints", "list", &id]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "TCP",
            "UNIX SOCKETS",
            "SHELL",
            "PRE-DUMP",
            "PARENT",
            "SIZE",
            "CREATED"
        ]
    );
    assert_eq!(
        rows[2][..6],
        ["with-options", "true", "true", "false", "false", "-"]
    );
    assert!(
        rows[2][6].ends_with("KiB") || rows[2][6].ends_with("MiB"),
        "{table}"
    );
    assert_eq!(listed[0]["pre_dump"], false);
    assert!(listed[0]["size"].as_u64().unwrap() > 0, "{json}");

    ctr_ok(&daemon, &["checkpoints", "delete", &id, "with-options"]);
    assert!(!bundle.join("checkpoints/with-options").exists());
    assert!(bundle.join("checkpoints/plain").is_dir());
    let listed = daemon.client().checkpoints(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "plain");
    let err = ctr_err(&daemon, &["checkpoints", "delete", &id, "with-options"]);
    assert!(
        err.contains("checkpoint \"with-options\" not found"),
        "{err}"
    );
    assert_eq!(status_of(&daemon, &id), Some(Status::Running));
}

#[test]
fn bad_checkpoint_requests_get_clear_errors() {
    let daemon = Daemon::start();
    let bundle = counter_bundle(&daemon, "counter");
    let bundle_arg = bundle.to_str().unwrap();
    let id = unique_id("bad");
    daemon.start_container(&id, &bundle);

    for name in ["../escape", "a/b", ".."] {
        let err = ctr_err(&daemon, &["checkpoints", "create", &id, name]);
        assert!(err.starts_with("ctr: invalid checkpoint name"), "{err}");
        let err = ctr_err(
            &daemon,
            &[
                "containers",
                "start",
                "--checkpoint",
                name,
                "other",
                bundle_arg,
            ],
        );
        assert!(err.starts_with("ctr: invalid checkpoint name"), "{err}");
    }
    let err = ctr_err(&daemon, &["checkpoints", "create", "missing", "c1"]);
    assert_eq!(err, "ctr: container \"missing\" not found\n");
    let err = ctr_err(&daemon, &["checkpoints", "list", "missing"]);
    assert_eq!(err, "ctr: container \"missing\" not found\n");

    // Restoring from a checkpoint the bundle lacks leaves the id free.
    let other = unique_id("bad-restore");
    let err = ctr_err(
        &daemon,
        &[
            "containers",
            "start",
            "--checkpoint",
            "nope",
            &other,
            bundle_arg,
        ],
    );
    assert!(err.contains("checkpoint \"nope\" not found"), "{err}");
    assert!(status_of(&daemon, &other).is_none());

    // A name is taken once; restoring under a running id is refused.
    ctr_ok(&daemon, &["checkpoints", "create", &id, "c1"]);
    let err = ctr_err(&daemon, &["checkpoints", "create", &id, "c1"]);
    assert!(err.contains("checkpoint \"c1\" already exists"), "{err}");
    let err = ctr_err(
        &daemon,
        &["containers", "start", "--checkpoint", "c1", &id, bundle_arg],
    );
    assert!(
        err.contains(&format!("container \"{id}\" already exists")),
        "{err}"
    );
    assert_eq!(status_of(&daemon, &id), Some(Status::Running));
}

/// The parent of `pid`, while it exists.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// CRIU working for the daemon `daemon`: runc runs it as `criu swrk FD`, below the daemon.
fn criu_of(daemon: u32) -> Vec<u32> {
    let below_daemon = |mut pid: u32| {
        while let Some(up) = parent(pid) {
            if up == daemon {
                return true;
            }
            if up <= 1 {
                return false;
            }
            pid = up;
        }
        false
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).any(|arg| arg == b"swrk"))
        })
        .filter(|&pid| below_daemon(pid))
        .collect()
}

/// CRIU processes stopped with SIGSTOP, continued when this is dropped (a failed assertion
/// included: a CRIU left stopped would hold the container frozen).
struct Held(Vec<u32>);

impl Held {
    fn stop(pids: Vec<u32>) -> Held {
        let held = Held(pids);
        held.signal(libc::SIGSTOP);
        held
    }

    fn signal(&self, signal: i32) {
        for &pid in &self.0 {
            // SAFETY: kill(2) on a CRIU process found below our daemon, so a pid above 1.
            unsafe { libc::kill(pid as i32, signal) };
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
    }
}

/// While CRIU dumps a container, a kill and a second checkpoint are both refused. CRIU is held
/// (SIGSTOP) once it is seen working, so the dump cannot end between the two requests; it is let
/// go afterwards and the dump completes.
#[test]
fn kill_and_a_second_checkpoint_are_refused_while_criu_runs() {
    let daemon = Daemon::start();
    let daemon_pid = daemon.info().pid;
    let bundle = counter_bundle(&daemon, "counter");
    let id = unique_id("busy");
    daemon.start_container(&id, &bundle);
    // A dump takes a few hundred milliseconds: catch its CRIU at work (retrying with a new name
    // if a dump finished before a poll saw it).
    let caught = (0..5).find_map(|attempt| {
        let socket = daemon.socket.clone();
        let dumping = {
            let id = id.clone();
            thread::spawn(move || {
                protocol::Client::connect(&socket)
                    .unwrap()
                    .checkpoint(CheckpointRequest {
                        namespace: DEFAULT_NAMESPACE.into(),
                        id,
                        name: format!("c{attempt}"),
                        options: CheckpointOptions::default(),
                        exit: false,
                        pre_dump: false,
                        parent: None,
                    })
            })
        };
        let mut criu = Vec::new();
        while criu.is_empty() && !dumping.is_finished() {
            thread::sleep(Duration::from_millis(2));
            criu = criu_of(daemon_pid);
        }
        if criu.is_empty() {
            dumping.join().unwrap().expect("the dump itself succeeds");
            return None;
        }
        Some((dumping, Held::stop(criu)))
    });
    let Some((dumping, criu)) = caught else {
        panic!("never caught CRIU at work in 5 dumps");
    };

    // CRIU cannot finish: the dump is still the daemon's job in flight.
    assert_eq!(status_of(&daemon, &id), Some(Status::Checkpointing));
    let kill = daemon.client().kill(protocol::KillRequest {
        namespace: DEFAULT_NAMESPACE.into(),
        id: id.clone(),
        signal: libc::SIGCONT,
        all: false,
    });
    let second = daemon.client().checkpoint(CheckpointRequest {
        namespace: DEFAULT_NAMESPACE.into(),
        id: id.clone(),
        name: "second".into(),
        options: CheckpointOptions::default(),
        exit: false,
        pre_dump: false,
        parent: None,
    });
    drop(criu);
    dumping.join().unwrap().expect("the dump itself succeeds");
    for (what, result) in [
        ("kill", kill.map(|_| ())),
        ("checkpoint", second.map(|_| ())),
    ] {
        let err = result.expect_err(what);
        assert_eq!(err.kind(), Some(ErrorKind::FailedPrecondition), "{what}");
        assert!(err.to_string().contains("checkpoint"), "{what}: {err}");
    }
    assert_eq!(status_of(&daemon, &id), Some(Status::Running));
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn a_failed_dump_leaves_the_container_running_and_names_criu_s_log() {
    let daemon = Daemon::start();
    // An open file deleted from disk and bigger than CRIU's 1 MiB ghost-file limit: CRIU
    // refuses to dump it.
    let bundle = daemon.bundle(
        "ghost",
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/big bs=1M count=2 2>/dev/null; exec 3</big; rm /big; \
             echo ready > /ready; while true; do sleep 1; done",
        ],
    );
    writable_root(&bundle);
    let id = unique_id("ghost");
    let mut events = daemon.events();
    let pid = daemon.start_container(&id, &bundle);
    wait_until("the ghost file to be open", || {
        bundle.join("rootfs/ready").exists().then_some(())
    });

    let err = daemon
        .client()
        .checkpoint(CheckpointRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            id: id.clone(),
            name: "g1".into(),
            options: CheckpointOptions::default(),
            exit: true,
            pre_dump: false,
            parent: None,
        })
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Runtime));
    let message = err.to_string();
    let log = message
        .split("log file: ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no log file in: {message}"));
    assert!(Path::new(log.trim()).is_file(), "{message}");
    assert!(message.contains("ghost file"), "{message}");
    assert!(!bundle.join("checkpoints/g1").exists());

    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(state.status, Status::Running);
    assert_eq!(state.pid, Some(pid));
    assert!(process_exists(pid));
    daemon.kill(&id, libc::SIGKILL);
    let exit = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exit[0].status, Some(137));
    assert!(events.of(&id, EventKind::Checkpoint).is_empty());
}

/// Whether this kernel tracks written pages, as CRIU sees it.
fn dirty_tracking() -> bool {
    Command::new(criu_binary())
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .unwrap()
        .status
        .success()
}

fn criu_binary() -> PathBuf {
    let installed = PathBuf::from("/opt/ctrd-criu/criu");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("criu")
    }
}

/// Pre-copy: pre-dumps while the counter runs, then a final dump holding only the changes since,
/// restored. On a kernel without soft-dirty tracking the pre-dump is refused with an error that
/// says so, and leaves nothing behind: both outcomes are checked, whichever this kernel gives.
#[test]
fn pre_dumps_carry_a_running_container_to_a_small_final_dump_or_say_why_not() {
    let daemon = Daemon::start();
    let bundle = counter_bundle(&daemon, "counter");
    let bundle_arg = bundle.to_str().unwrap();
    let id = unique_id("pre");
    let mut events = daemon.events();
    daemon.start_container(&id, &bundle);
    wait_count_above(&bundle, 1);

    let err = daemon
        .client()
        .checkpoint(CheckpointRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            id: id.clone(),
            name: "x".into(),
            options: CheckpointOptions::default(),
            exit: true,
            pre_dump: true,
            parent: None,
        })
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidArgument), "{err}");
    if !dirty_tracking() {
        eprintln!("this kernel has no soft-dirty tracking: checking that pre-dumps are refused");
        let err = ctr_err(
            &daemon,
            &["checkpoints", "create", "--pre-dump", &id, "pre1"],
        );
        assert!(err.contains("soft-dirty"), "{err}");
        assert!(!bundle.join("checkpoints/pre1").exists());
        assert_eq!(status_of(&daemon, &id), Some(Status::Running));
        daemon.kill(&id, libc::SIGKILL);
        return;
    }
    ctr_ok(
        &daemon,
        &["checkpoints", "create", "--pre-dump", &id, "pre1"],
    );
    ctr_ok(
        &daemon,
        &[
            "checkpoints",
            "create",
            "--pre-dump",
            "--parent",
            "pre1",
            &id,
            "pre2",
        ],
    );
    assert_eq!(status_of(&daemon, &id), Some(Status::Running));
    ctr_ok(
        &daemon,
        &[
            "checkpoints",
            "create",
            "--exit",
            "--parent",
            "pre2",
            &id,
            "final",
        ],
    );
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    let last = count(&bundle).expect("the counter's last value");
    let err = ctr_err(
        &daemon,
        &[
            "containers",
            "start",
            "--checkpoint",
            "pre2",
            &id,
            bundle_arg,
        ],
    );
    assert!(err.contains("is a pre-dump"), "{err}");
    ctr_ok(
        &daemon,
        &[
            "containers",
            "start",
            "--checkpoint",
            "final",
            &id,
            bundle_arg,
        ],
    );
    assert_continues_from(&bundle, last);
    let listed = daemon.client().checkpoints(DEFAULT_NAMESPACE, &id).unwrap();
    let by_name = |n: &str| listed.iter().find(|c| c.name == n).unwrap();
    assert!(by_name("pre1").pre_dump && by_name("pre2").pre_dump && !by_name("final").pre_dump);
    assert_eq!(by_name("final").parent.as_deref(), Some("pre2"));
    let err = ctr_err(&daemon, &["checkpoints", "delete", &id, "pre2"]);
    assert!(
        err.contains("is the parent of checkpoint \"final\""),
        "{err}"
    );
    daemon.kill(&id, libc::SIGKILL);
}

/// A pre-dump holds memory only: restoring one is refused before runc is asked.
#[test]
fn a_pre_dump_is_not_restored() {
    let daemon = Daemon::start();
    let bundle = counter_bundle(&daemon, "counter");
    let dir = bundle.join("checkpoints/pre");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("checkpoint.json"),
        r#"{"name":"pre","options":{"tcp_established":false,"ext_unix_sk":false,"shell_job":false},
            "exit":false,"created":1,"pre_dump":true,"parent":null}"#,
    )
    .unwrap();
    let id = unique_id("pre-restore");
    let mut request = start_request(&id, &bundle);
    request.checkpoint = Some("pre".into());
    let err = daemon.client().start(request).unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::FailedPrecondition), "{err}");
    assert!(err.to_string().contains("is a pre-dump"), "{err}");
    assert!(status_of(&daemon, &id).is_none());
}

#[test]
fn a_missing_checkpoint_name_is_not_found_by_kind() {
    let daemon = Daemon::start();
    let bundle = counter_bundle(&daemon, "counter");
    let mut request = start_request(&unique_id("nf"), &bundle);
    request.checkpoint = Some("absent".into());
    let err: ClientError = daemon.client().start(request).unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound), "{err}");
}

#[test]
fn a_missing_criu_is_a_clear_error_and_the_container_runs_on() {
    let daemon = Daemon::start_with(&["--criu", "/nonexistent/criu"]);
    let bundle = counter_bundle(&daemon, "counter");
    let id = unique_id("nocriu");
    let pid = daemon.start_container(&id, &bundle);
    let err = ctr_err(&daemon, &["checkpoints", "create", "--exit", &id, "c1"]);
    assert!(
        err.starts_with(&format!("ctr: cannot checkpoint container \"{id}\""))
            && err.contains("/nonexistent/criu"),
        "{err}"
    );
    assert!(!bundle.join("checkpoints/c1").exists());
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!((state.status, state.pid), (Status::Running, Some(pid)));
    let last = wait_count_above(&bundle, 0);
    wait_count_above(&bundle, last);
}

#[test]
fn a_paused_container_is_not_checkpointed_until_resumed() {
    let daemon = Daemon::start();
    let bundle = counter_bundle(&daemon, "counter");
    let id = unique_id("paused");
    daemon.start_container(&id, &bundle);
    daemon.client().pause(DEFAULT_NAMESPACE, &id).unwrap();

    let err = daemon
        .client()
        .checkpoint(CheckpointRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            id: id.clone(),
            name: "c1".into(),
            options: CheckpointOptions::default(),
            exit: false,
            pre_dump: false,
            parent: None,
        })
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::FailedPrecondition), "{err}");
    assert!(err.to_string().contains("paused"), "{err}");
    let err = ctr_err(&daemon, &["checkpoints", "create", &id, "c1"]);
    assert!(err.contains("it is paused"), "{err}");
    assert_eq!(status_of(&daemon, &id), Some(Status::Paused));
    assert!(!bundle.join("checkpoints").join("c1").exists());

    // Resumed, it is checkpointed and keeps running, its cgroup still known for stats.
    daemon.client().resume(DEFAULT_NAMESPACE, &id).unwrap();
    ctr_ok(&daemon, &["checkpoints", "create", &id, "c1"]);
    assert_eq!(status_of(&daemon, &id), Some(Status::Running));
    let stats = daemon
        .client()
        .stats(DEFAULT_NAMESPACE, std::slice::from_ref(&id))
        .unwrap();
    assert_eq!(stats.len(), 1);
    daemon.kill(&id, libc::SIGKILL);
}
