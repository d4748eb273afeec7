//! A real network server through checkpoint, restore and live migration: redis-server, the
//! host's Debian binary (scripts/setup.sh installs it; its service is never started), copied
//! with its libraries into a busybox bundle by scripts/copy-binaries.sh.
//!
//! The container's init starts redis on 127.0.0.1 and then a client, a `redis-cli` *session*:
//! one TCP connection opened at start, fed commands through a FIFO in the rootfs and appending
//! its replies to a file there, both reachable from the host. After each step the test asks
//! redis from a new `redis-cli` exec (a fresh connection over the container's loopback, which
//! must be up) and through the old session (a connection that has lived through the dump, which
//! `--tcp` keeps). All traffic stays on the loopback of the container's own namespace.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use protocol::{EventKind, Status, DEFAULT_NAMESPACE};

/// redis in the background, then the session once redis answers (the container waiting for its
/// own server), then the init waits for both.
const INIT: &str = "redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
                    --enable-debug-command yes --dir /tmp & \
                    mkfifo /session.in; exec 3<>/session.in; \
                    until redis-cli ping >/dev/null 2>&1; do sleep 0.05; done; \
                    redis-cli <&3 >/session.out 2>&1 & exec 3<&-; wait";

/// Keys `DEBUG POPULATE` makes, besides the named ones.
const POPULATED: u64 = 100_000;
const NAMED: [(&str, &str); 2] = [("alpha", "one"), ("beta", "two words")];

fn redis_bundle(daemon: &Daemon) -> PathBuf {
    let bundle = daemon.bundle("redis", &["sh", "-c", INIT]);
    let config_path = bundle.join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        config.replace("\"readonly\": true", "\"readonly\": false"),
    )
    .unwrap();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/copy-binaries.sh"))
        .arg(bundle.join("rootfs"))
        .args(["redis-server", "redis-cli"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "copy-binaries.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle
}

/// `redis-cli ARGS` run in the container by a new exec; its output, trimmed.
fn redis_cli(daemon: &Daemon, id: &str, args: &[&str]) -> String {
    let name = unique_id("cli");
    let mut cmd = vec![
        "containers",
        "exec",
        "--attach",
        "--id",
        id,
        "--pid",
        &name,
        "--",
        "redis-cli",
    ];
    cmd.extend(args);
    let out = daemon.ctr(&cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The session in a bundle's rootfs: commands in through the FIFO, replies read from the file.
struct Session {
    input: PathBuf,
    output: PathBuf,
}

impl Session {
    fn of(bundle: &Path) -> Session {
        let rootfs = bundle.join("rootfs");
        Session {
            input: rootfs.join("session.in"),
            output: rootfs.join("session.out"),
        }
    }

    fn replies(&self) -> Vec<String> {
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Sends `command` over the session's connection and waits for its one-line reply. The
    /// session's redis-cli holds the FIFO open, so the open never blocks while it runs.
    fn ask(&self, command: &str) -> String {
        let before = self.replies().len();
        let mut fifo = OpenOptions::new().write(true).open(&self.input).unwrap();
        writeln!(fifo, "{command}").unwrap();
        drop(fifo);
        wait_until(&format!("the session's reply to {command:?}"), || {
            self.replies().get(before).cloned()
        })
    }
}

/// DBSIZE and every named value, asked from a new client and through the old session.
fn assert_data_intact(daemon: &Daemon, id: &str, session: &Session, when: &str) {
    let expected = (POPULATED + NAMED.len() as u64).to_string();
    assert_eq!(redis_cli(daemon, id, &["DBSIZE"]), expected, "{when}");
    for (key, value) in NAMED {
        assert_eq!(redis_cli(daemon, id, &["GET", key]), value, "{when}");
    }
    assert_eq!(session.ask("DBSIZE"), expected, "{when}: the old session");
    assert_eq!(session.ask("GET alpha"), "one", "{when}: the old session");
}

fn ctr_ok(daemon: &Daemon, args: &[&str]) {
    let out = daemon.ctr(args);
    assert!(
        out.status.success(),
        "ctr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn redis_keeps_its_data_and_its_open_connection_through_checkpoint_restore_and_migration() {
    for tool in ["redis-server", "redis-cli"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap()
            .status
            .success()
        {
            return cannot_run_here("redis", &format!("{tool} is not installed"));
        }
    }
    let source = Daemon::start();
    let target = Daemon::start();
    let bundle = redis_bundle(&source);
    let bundle_arg = bundle.to_str().unwrap();
    let id = unique_id("redis");
    let mut events = source.events();
    source.start_container(&id, &bundle);
    let session = Session::of(&bundle);
    wait_until("the session to connect", || {
        session.output.exists().then_some(())
    });
    assert_eq!(session.ask("PING"), "PONG");

    assert_eq!(
        redis_cli(&source, &id, &["DEBUG", "POPULATE", &POPULATED.to_string()]),
        "OK"
    );
    for (key, value) in NAMED {
        assert_eq!(redis_cli(&source, &id, &["SET", key, value]), "OK");
    }
    assert_data_intact(&source, &id, &session, "before any checkpoint");

    // Leave-running: dumped with its connections, it serves on.
    ctr_ok(&source, &["checkpoints", "create", "--tcp", &id, "running"]);
    assert_data_intact(&source, &id, &session, "after a leave-running checkpoint");

    // --exit, then restored: the loopback is up again, the data and the session are back.
    ctr_ok(
        &source,
        &[
            "checkpoints",
            "create",
            "--tcp-established",
            "--exit",
            &id,
            "stopped",
        ],
    );
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    ctr_ok(
        &source,
        &[
            "containers",
            "start",
            "--checkpoint",
            "stopped",
            &id,
            bundle_arg,
        ],
    );
    let lo = source.ctr(&[
        "containers",
        "exec",
        "--attach",
        "--id",
        &id,
        "--pid",
        "lo",
        "--",
        "ip",
        "-o",
        "addr",
        "show",
        "dev",
        "lo",
    ]);
    let lo = String::from_utf8_lossy(&lo.stdout);
    assert!(lo.contains("inet 127.0.0.1/8"), "after restore, lo: {lo}");
    assert!(lo.contains("inet6 ::1/128"), "after restore, lo: {lo}");
    assert_data_intact(&source, &id, &session, "after restore");

    // Migrated to the other daemon, bundle copied: the same, there.
    let target_bundle = target.dir.path().join("bundles/migrated");
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/migrate.sh"))
        .arg("--tcp")
        .arg(&source.socket)
        .arg(&target.socket)
        .arg(&id)
        .arg(&target_bundle)
        .env("CTR", ctr_binary())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "migrate.sh: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("freeze "), "{report}");
    assert!(source.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());
    let moved = target.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(moved.status, Status::Running);
    let moved_session = Session::of(&target_bundle);
    assert_data_intact(&target, &id, &moved_session, "after migration");

    target.kill(&id, libc::SIGKILL);
    target.wait_until_stopped("the migrated redis to exit");
}
