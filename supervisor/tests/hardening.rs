//! Who may connect, how long a connection may idle, how many may be open, and what a faulty
//! runtime costs: each test runs the real daemon.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use protocol::frame;
use protocol::{
    Client, ErrorKind, EventKind, Hello, KillRequest, ListRequest, Request, Response, WaitRequest,
    DEFAULT_MAX_FRAME, DEFAULT_NAMESPACE,
};

const NOBODY: u32 = 65534;

/// Runs a copy of `ctr` (one the user can reach) as `nobody`:`nogroup`, with no other groups.
fn ctr_as_nobody(daemon: &Daemon, args: &[&str]) -> Output {
    let ctr = daemon.dir.path().join("ctr");
    if !ctr.exists() {
        fs::copy(ctr_binary(), &ctr).unwrap();
    }
    fs::set_permissions(daemon.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    Command::new(&ctr)
        .uid(NOBODY)
        .gid(NOBODY)
        .arg("--address")
        .arg(&daemon.socket)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_unprivileged_user_is_refused_even_when_the_socket_mode_is_loosened() {
    let daemon = Daemon::start();
    let out = ctr_as_nobody(&daemon, &["containers"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");

    // Past the file mode, the peer credentials still keep the user out.
    fs::set_permissions(&daemon.socket, fs::Permissions::from_mode(0o666)).unwrap();
    let out = ctr_as_nobody(&daemon, &["containers"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("ctr: permission denied: uid 65534"),
        "{stderr}"
    );
    assert!(daemon.log().contains("refused a connection: uid 65534"));
    assert!(daemon.client().list(DEFAULT_NAMESPACE).is_ok());
}

#[test]
fn a_member_of_the_group_is_served() {
    let daemon = Daemon::start_with(&["--group", "nogroup"]);
    let mode = fs::metadata(&daemon.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    let out = ctr_as_nobody(&daemon, &["containers", "list", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

#[test]
fn connections_past_the_limit_are_turned_away_until_one_closes() {
    let daemon = Daemon::start_with(&["--max-connections", "2"]);
    let served = || {
        wait_until("a served connection", || {
            let mut client = Client::connect(&daemon.socket).ok()?;
            client.list(DEFAULT_NAMESPACE).ok().map(|_| client)
        })
    };
    let first = served();
    let _second = served();
    let err = daemon.client().list(DEFAULT_NAMESPACE).unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Unavailable));
    assert!(err.to_string().contains("limit of 2 connections"), "{err}");
    drop(first);
    served();
}

#[test]
fn connections_far_past_the_limit_cost_a_bounded_number_of_descriptors() {
    // From the server: turned-away connections answered at once (server::TURN_AWAY_SLOTS).
    const TURN_AWAY_SLOTS: usize = 16;
    const MAX_CONNECTIONS: usize = 2;
    let daemon = Daemon::start_with(&["--max-connections", "2", "--idle-timeout", "60s"]);
    let pid = daemon.info().pid;
    let before = open_fds(pid);
    // Silent connections: each holds its slot, or its answer's, for the whole idle timeout.
    let count = 300;
    let mut connections: Vec<UnixStream> = (0..count)
        .map(|_| {
            let stream = UnixStream::connect(&daemon.socket).unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect();
    let held = MAX_CONNECTIONS + TURN_AWAY_SLOTS;
    let closed = wait_until("the connections past the bound to be closed", || {
        let closed = connections
            .iter_mut()
            .map(closed_by_peer)
            .filter(|&c| c)
            .count();
        (closed >= count - held).then_some(closed)
    });
    assert_eq!(closed, count - held);
    let during = open_fds(pid);
    eprintln!("the daemon's descriptors: {before} before, {during} with {count} connections");
    assert!(
        during <= before + held,
        "the daemon had {before} descriptors open, and {during} with {count} connections"
    );
    // The served ones still work once the silent ones are gone.
    drop(connections);
    wait_until("a served connection", || {
        Client::connect(&daemon.socket)
            .ok()?
            .list(DEFAULT_NAMESPACE)
            .ok()
    });
}

/// A served connection that is not a `Client`, so the test can send a request without waiting
/// for its answer.
fn served_raw_connection(daemon: &Daemon) -> UnixStream {
    wait_until("a served connection", || {
        let mut stream = raw_connection(&daemon.socket, &frame::encode(&Hello::ours()).unwrap());
        frame::read_frame::<Hello>(&mut stream, DEFAULT_MAX_FRAME).ok()??;
        let list = Request::List(ListRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            filters: Vec::new(),
        });
        frame::write_frame(&mut stream, &list).unwrap();
        match frame::read_frame(&mut stream, DEFAULT_MAX_FRAME).ok()?? {
            Response::Containers(_) => Some(stream),
            _ => None,
        }
    })
}

#[test]
fn a_waiter_or_a_subscriber_that_hangs_up_frees_its_connection() {
    let daemon = Daemon::start_with(&["--max-connections", "2"]);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("hangup");
    daemon.start_container(&id, &bundle);
    let served = || {
        wait_until("a served connection", || {
            let mut client = Client::connect(&daemon.socket).ok()?;
            client.list(DEFAULT_NAMESPACE).ok().map(|_| client)
        })
    };
    let subscriber = served().subscribe(DEFAULT_NAMESPACE).unwrap();
    let mut waiter = served_raw_connection(&daemon);
    let wait = Request::Wait(WaitRequest {
        namespace: DEFAULT_NAMESPACE.into(),
        id: id.clone(),
        process: "init".into(),
    });
    frame::write_frame(&mut waiter, &wait).unwrap();
    let err = daemon.client().list(DEFAULT_NAMESPACE).unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Unavailable));
    // The container keeps running and emits nothing: only noticing the hang-ups frees the
    // slots. (The wait is read before the hang-up, since bytes come before the end of stream.)
    drop((subscriber, waiter));
    let (mut first, _second) = (served(), served());
    let kill = KillRequest {
        namespace: DEFAULT_NAMESPACE.into(),
        id,
        signal: libc::SIGKILL,
        all: false,
    };
    first.kill(kill).unwrap();
}

#[test]
fn a_silent_connection_is_closed_but_a_listening_subscriber_is_not() {
    let daemon = Daemon::start_with(&["--idle-timeout", "300ms"]);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let mut silent = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    silent.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut bytes = Vec::new();
    let _ = silent.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("no request within 300ms"), "{text:?}");
    // The subscriber has been silent longer than that, and still gets its events.
    let id = unique_id("idle");
    daemon.start_container(&id, &bundle);
    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
}

/// A runtime that fails on demand, chosen by the container id's prefix, and is real runc otherwise.
fn faulty_runtime(dir: &Path) -> PathBuf {
    let script = format!(
        r#"#!/bin/sh
for id; do :; done
log=""; pidfile=""
prev=""
for arg; do
    case "$prev" in --log) log=$arg ;; --pid-file) pidfile=$arg ;; esac
    prev=$arg
done
case "$id" in
hang-*) sleep 1000 & echo $! > {dir}/$id.child; wait ;;
crash-*) kill -SEGV $$ ;;
badpid-*) echo 'not a pid' > "$pidfile"; exit 0 ;;
badlog-*) echo '%%% not json %%%' > "$log"; exit 1 ;;
*) exec runc "$@" ;;
esac
"#,
        dir = dir.display()
    );
    let path = dir.join("faulty-runc");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn hanging_crashing_and_garbage_printing_runtimes_give_clear_errors_and_free_the_worker() {
    let faults = tempfile::tempdir().unwrap();
    let runtime = faulty_runtime(faults.path());
    let daemon = Daemon::start_with(&[
        "--runtime",
        runtime.to_str().unwrap(),
        // Long enough that a real runc start on a loaded 2-core host is never cut short: the
        // real starts between the faults go through the same timeout.
        "--runtime-timeout",
        "3s",
        "--concurrency",
        "1",
    ]);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let cases = [
        ("hang", "no answer after 3s; killed it"),
        ("crash", "was killed by signal 11"),
        ("badpid", "runc left an unreadable pid file"),
        (
            "badlog",
            "exited with status 1; its log is not JSON: \"%%% not json %%%\"",
        ),
    ];
    for (fault, expected) in cases {
        let id = unique_id(fault);
        let err = daemon
            .client()
            .start(start_request(&id, &bundle))
            .unwrap_err();
        assert_eq!(err.kind(), Some(ErrorKind::Runtime), "{fault}: {err}");
        assert!(err.to_string().contains(expected), "{fault}: {err}");
        // The one worker is free again: a real start goes through.
        let ok = unique_id("ok");
        daemon.start_container(&ok, &bundle);
        daemon.kill(&ok, libc::SIGKILL);
    }
    // The hung runtime's child was killed with it.
    let child_file = fs::read_dir(faults.path())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".child"))
        .expect("the hanging runtime recorded its child")
        .path();
    let child: u32 = fs::read_to_string(child_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until("the hung runtime's child to die", || {
        (!process_exists(child)).then_some(())
    });
    daemon.wait_until_stopped("the killed containers to stop");
    assert!(daemon.runc_leftovers().is_empty());
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Tmpfs {
        fs::create_dir_all(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", path.display());
        Tmpfs(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_state_disk_gives_errors_and_the_daemon_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(dir.path().join("state"), "512k");
    let state = disk.0.to_str().unwrap().to_string();
    let daemon = Daemon::start_with(&["--state-dir", &state]);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    // Fill the disk to the last block.
    let filler = disk.0.join("filler");
    let mut file = fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    drop(file);

    let err = daemon
        .client()
        .start(start_request(&unique_id("full"), &bundle))
        .unwrap_err();
    assert!(err.to_string().ends_with("is full"), "{err}");
    assert!(err.to_string().contains(&state), "{err}");
    assert!(daemon.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());

    // Room again: the daemon never stopped serving, and starts work.
    fs::remove_file(&filler).unwrap();
    let id = unique_id("roomy");
    daemon.start_container(&id, &bundle);
    daemon.kill(&id, libc::SIGKILL);
    daemon.wait_until_stopped("the container to stop");
}

/// The keeper, stopped with SIGSTOP until this is dropped (even by a failing test, so the
/// daemon can still be stopped).
struct StoppedKeeper(u32);

impl StoppedKeeper {
    fn stop(pid: u32) -> StoppedKeeper {
        signal_pid(pid, libc::SIGSTOP);
        wait_until("the keeper to be stopped", || {
            (process_state(pid) == Some('T')).then_some(())
        });
        StoppedKeeper(pid)
    }
}

impl Drop for StoppedKeeper {
    fn drop(&mut self) {
        // SAFETY: kill(2) takes two integers and touches no memory.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

/// Runs `call` on a thread of its own and returns its result and how long it took; fails the
/// test, naming `what`, if it takes longer than `limit` (a daemon that never answers would
/// otherwise hang the test).
fn within<T: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    call: impl FnOnce() -> T + Send + 'static,
) -> (T, std::time::Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let started = std::time::Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(call());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => (value, started.elapsed()),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: no answer within {limit:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what} failed"),
    }
}

#[test]
fn a_stopped_keeper_stalls_neither_the_actor_nor_the_workers_and_loses_no_exit() {
    use std::time::Duration;
    let daemon = Daemon::start();
    let bundle = daemon.bundle("true", &["true"]);
    let missing = daemon.dir.path().join("no-such-bundle");
    let mut events = daemon.events();
    let keeper = StoppedKeeper::stop(daemon.info().keeper_pid);

    // The socketpair to the keeper holds under 300 small messages (212992-byte buffers). Each
    // start sends one (its worker hands the keeper the container's output pipes) and a start
    // that fails has the actor release them: more than that fill it while the keeper sleeps.
    // Its containers exit at once, unreaped until the keeper runs again.
    const STARTS: usize = 400;
    const CLIENTS: usize = 8;
    let limit = Duration::from_secs(10);
    let starters: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (socket, bundle, missing) =
                (daemon.socket.clone(), bundle.clone(), missing.clone());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for _ in 0..STARTS / CLIENTS {
                    let id = unique_id("stalled");
                    let (socket2, request) = (socket.clone(), start_request(&id, &bundle));
                    let (started, _) = within(limit, &format!("start {id}"), move || {
                        Client::connect(&socket2).unwrap().start(request)
                    });
                    started.unwrap_or_else(|e| panic!("start {id}: {e}"));
                    ids.push(id);
                    let (socket2, request) = (
                        socket.clone(),
                        start_request(&unique_id("missing"), &missing),
                    );
                    let (failed, _) = within(limit, "a start of a missing bundle", move || {
                        Client::connect(&socket2).unwrap().start(request)
                    });
                    assert!(failed.is_err());
                }
                ids
            })
        })
        .collect();
    // Meanwhile every round trip to the actor is answered at once.
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    while starters.iter().any(|s| !s.is_finished()) {
        let socket = daemon.socket.clone();
        let ((), took) = within(limit, "list and state", move || {
            let mut client = Client::connect(&socket).unwrap();
            let listed = client.list(DEFAULT_NAMESPACE).unwrap();
            // One of those that cannot exit while the keeper sleeps.
            let running = listed.iter().find(|c| c.pid.is_some());
            if let Some(running) = running.filter(|c| c.id.starts_with("stalled")) {
                client.state(DEFAULT_NAMESPACE, &running.id).unwrap();
            }
        });
        slowest = slowest.max(took);
        probes += 1;
    }
    let ids: Vec<String> = starters
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    assert_eq!(ids.len(), STARTS);
    eprintln!(
        "{probes} list and state round trips while the keeper slept; the slowest {slowest:?}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "the slowest of {probes} list and state round trips took {slowest:?}"
    );
    assert!(
        daemon
            .log()
            .contains("the keeper is not reading; queuing for it"),
        "the socket to the keeper never filled: the test proves nothing"
    );
    assert!(events.seen.iter().all(|e| e.kind != EventKind::Exit));

    // Awake again, the keeper reaps them all: each exit is reported once, and acknowledged.
    drop(keeper);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for id in &ids {
        while events.exits_of(id).is_empty() {
            assert!(std::time::Instant::now() < deadline, "no exit of {id}");
            events.wait_for(events.seen.len() + 1, |_| true);
        }
    }
    events.barrier(&daemon, &daemon.bundle("sleep", &["sleep", "1000"]));
    for id in &ids {
        let exits = events.exits_of(id);
        assert_eq!(exits.len(), 1, "{id}: {exits:?}");
        assert_eq!(exits[0].status, Some(0), "{id}: {exits:?}");
    }
    let exit_log = daemon.state.join("keeper-exits.log");
    wait_until("the keeper to have every exit acknowledged", || {
        // The log is its 48-byte header alone once nothing is left unacknowledged.
        (std::fs::metadata(&exit_log).ok()?.len() == 48).then_some(())
    });
}
