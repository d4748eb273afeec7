//! The harness for tests against the real `ctrd` binary and real runc.
//!
//! Each test gets its own daemon with its own temp state dir, socket and runc root, so tests run
//! in parallel. Nothing sleeps for synchronisation: waits poll with a deadline or block on events.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use protocol::{
    Client, DaemonInfo, Event, EventKind, ExecRequest, KillRequest, StartRequest, DEFAULT_NAMESPACE,
};

pub const DEADLINE: Duration = Duration::from_secs(20);

/// The script of [`Daemon::with_runc_wrapper`]. The container id is runc's last argument.
const WRAPPER: &str = r#"#!/bin/sh
runc "$@" || exit
case " $* " in *" {op} -d "*) ;; *) exit 0 ;; esac
pid_file= prev= id=
for arg; do
    [ "$prev" = --pid-file ] && pid_file=$arg
    prev=$arg id=$arg
done
case $id in {id_prefix}*) ;; *) exit 0 ;; esac
{then}
"#;

/// For [`Daemon::with_runc_wrapper`]: answer only once the process runc started has exited and
/// the keeper has reaped it (it is gone from `/proc`), for a process that exits at once. Its
/// start (or exec) is then certainly answered after its exit, with its pid no longer its own.
pub const UNTIL_REAPED: &str =
    r#"pid=$(cat "$pid_file"); while [ -e "/proc/$pid" ]; do sleep 0.001; done"#;

/// Polls `probe` every few milliseconds until it yields a value; panics naming `what` at the deadline.
pub fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// An id no other test, in this binary or another, uses at the same time: runc derives a
/// container's cgroup path from its id, so ids must be unique on the host.
pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `ctr` binary, built beside `ctrd` by `cargo build --workspace --bins` (scripts/test.sh
/// does that first: `cargo test` builds only the binaries of the package under test).
pub fn ctr_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_ctrd")).with_file_name("ctr");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub state: PathBuf,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Daemon {
        let mut daemon = Daemon::unstarted();
        daemon.spawn(extra);
        daemon
    }

    /// A daemon whose runtime is real runc behind a wrapper script: after a successful
    /// `runc <op> -d` (`run` or `exec`) of a container whose id starts with `id_prefix`, the
    /// wrapper runs the shell code `then`, with `$pid_file` naming runc's pid file, before it
    /// answers. For orderings and faults that real runc produces only by chance; see
    /// [`UNTIL_REAPED`].
    pub fn with_runc_wrapper(op: &str, id_prefix: &str, then: &str) -> Daemon {
        let mut daemon = Daemon::unstarted();
        let wrapper = daemon.dir.path().join("runc-wrapper");
        let script = WRAPPER
            .replace("{op}", op)
            .replace("{id_prefix}", id_prefix)
            .replace("{then}", then);
        std::fs::write(&wrapper, script).unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        daemon.spawn(&["--runtime", wrapper.to_str().unwrap()]);
        daemon
    }

    /// A daemon's directories, with no daemon running in them yet.
    fn unstarted() -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("ctrd-test-")
            .tempdir()
            .unwrap();
        let state = dir.path().join("state");
        let socket = dir.path().join("ctrd.sock");
        Daemon {
            child: None,
            socket,
            state,
            dir,
        }
    }

    /// Starts `ctrd` on this daemon's state dir and socket, and waits until it serves.
    pub fn spawn(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("ctrd.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ctrd"))
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--root")
            .arg(self.root())
            .arg("--socket")
            .arg(&self.socket)
            .args(["--shutdown-timeout", "5s", "--debug"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_until("ctrd to serve", || Client::connect(&self.socket).ok());
    }

    /// The image store's root: beside the state dir, in the test's temp dir.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The pid of the process the test started: the keeper.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("ctrd is running").id()
    }

    pub fn info(&self) -> DaemonInfo {
        self.client().info().unwrap()
    }

    /// SIGKILLs the daemon process (not its keeper) and waits until the new daemon the keeper
    /// starts answers; returns the old daemon's info and the new one's.
    pub fn kill_daemon_process(&self) -> (DaemonInfo, DaemonInfo) {
        let old = self.info();
        signal_pid(old.pid, libc::SIGKILL);
        let new = wait_until("the keeper's new daemon", || {
            self.client().info().ok().filter(|info| info.pid != old.pid)
        });
        (old, new)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ctrd.log")).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket).unwrap()
    }

    pub fn events(&self) -> Events {
        Events::subscribe(self.client())
    }

    /// Runs `ctr` against this daemon.
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `ctr` against this daemon, for a caller that sets up its stdio.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(ctr_binary());
        cmd.arg("--address").arg(&self.socket).args(args);
        cmd
    }

    /// Makes a busybox bundle running `cmd` with `scripts/make-bundle.sh`.
    pub fn bundle(&self, name: &str, cmd: &[&str]) -> PathBuf {
        let path = self.dir.path().join("bundles").join(name);
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/make-bundle.sh"))
            .arg(&path)
            .args(cmd)
            .status()
            .unwrap();
        assert!(status.success(), "make-bundle.sh failed for {name}");
        path
    }

    pub fn start_container(&self, id: &str, bundle: &Path) -> u32 {
        self.client()
            .start(start_request(id, bundle))
            .unwrap_or_else(|e| panic!("start {id}: {e}"))
    }

    pub fn kill(&self, id: &str, signal: i32) {
        self.client()
            .kill(KillRequest {
                namespace: DEFAULT_NAMESPACE.into(),
                id: id.into(),
                signal,
                all: false,
            })
            .unwrap_or_else(|e| panic!("kill {id}: {e}"));
    }

    /// Waits until every container the daemon lists in the default namespace is stopped: every
    /// exit reported (stopped containers are kept until deleted).
    pub fn wait_until_stopped(&self, what: &str) {
        wait_until(what, || {
            all_stopped(&self.client().list(DEFAULT_NAMESPACE).unwrap()).then_some(())
        });
    }

    /// Deletes a stopped container.
    pub fn delete(&self, id: &str) {
        self.client()
            .delete(protocol::DeleteRequest {
                namespace: DEFAULT_NAMESPACE.into(),
                id: id.into(),
                force: false,
            })
            .unwrap_or_else(|e| panic!("delete {id}: {e}"));
    }

    /// What runc still holds under this daemon's state dir.
    pub fn runc_leftovers(&self) -> Vec<PathBuf> {
        let base = self.state.join("runc");
        let Ok(namespaces) = std::fs::read_dir(&base) else {
            return Vec::new();
        };
        namespaces
            .flatten()
            .flat_map(|ns| std::fs::read_dir(ns.path()).into_iter().flatten().flatten())
            .map(|entry| entry.path())
            .collect()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of our own child, which we have not waited for yet.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, signal) }, 0);
    }

    /// Waits for the daemon to exit by itself, within the harness deadline.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("ctrd is running");
        let status = wait_until("ctrd to exit", || child.try_wait().unwrap());
        self.child = None;
        status
    }

    /// Kills the keeper outright, as a crash would, and waits until its daemon, which has no
    /// keeper to collect exits for it any more, has stopped by itself.
    pub fn kill_daemon(&mut self) {
        let daemon = self.client().info().ok().map(|info| info.pid);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = daemon {
            wait_until("the keeper's daemon to stop", || {
                (!process_exists(pid)).then_some(())
            });
        }
    }
}

impl Drop for Daemon {
    /// Stops the daemon and anything it left, so a failed test does not leak containers.
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // SAFETY: as in `signal`.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() && start.elapsed() < DEADLINE {
                thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for leftover in self.runc_leftovers() {
            let (Some(root), Some(id)) = (leftover.parent(), leftover.file_name()) else {
                continue;
            };
            let _ = Command::new("runc")
                .arg("--root")
                .arg(root)
                .args(["delete", "--force"])
                .arg(id)
                .stderr(Stdio::null())
                .status();
        }
        if thread::panicking() {
            eprintln!("--- ctrd log ---\n{}", self.log());
        }
    }
}

/// Whether each of `containers` has stopped, with its exit.
pub fn all_stopped(containers: &[protocol::Container]) -> bool {
    containers
        .iter()
        .all(|c| c.status == protocol::Status::Stopped && c.exit.is_some())
}

pub fn start_request(id: &str, bundle: &Path) -> StartRequest {
    StartRequest {
        namespace: DEFAULT_NAMESPACE.into(),
        id: id.into(),
        bundle: bundle.to_string_lossy().into_owned(),
        labels: BTreeMap::new(),
        stdout: None,
        stderr: None,
        checkpoint: None,
        stdin: None,
        terminal: None,
        remove: false,
    }
}

/// A detached exec of `args` as process `name` in container `id`.
pub fn exec_request(id: &str, name: &str, args: &[&str]) -> ExecRequest {
    ExecRequest {
        namespace: DEFAULT_NAMESPACE.into(),
        id: id.into(),
        process: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        cwd: None,
        uid: None,
        gid: None,
        stdio: None,
    }
}

/// A subscription read on a thread of its own, so tests can wait for events with a deadline.
pub struct Events {
    rx: mpsc::Receiver<Event>,
    pub seen: Vec<Event>,
}

impl Events {
    pub fn subscribe(client: Client) -> Events {
        let mut stream = client.subscribe(DEFAULT_NAMESPACE).unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            while let Ok(Some(event)) = stream.next_event() {
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        Events {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits until `count` events satisfying `pred` have arrived in all; returns them.
    pub fn wait_for(&mut self, count: usize, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let matching: Vec<Event> = self.seen.iter().filter(|e| pred(e)).cloned().collect();
            if matching.len() >= count {
                return matching;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(event) => self.seen.push(event),
                Err(_) => panic!(
                    "timed out with {} of {count} events; seen: {:#?}",
                    matching.len(),
                    self.seen
                ),
            }
        }
    }

    pub fn exits_of(&mut self, id: &str) -> Vec<Event> {
        self.of(id, EventKind::Exit)
    }

    pub fn of(&self, id: &str, kind: EventKind) -> Vec<Event> {
        self.seen
            .iter()
            .filter(|e| e.id == id && e.kind == kind)
            .cloned()
            .collect()
    }

    /// Starts and kills a fresh container and waits for its exit: every event the daemon
    /// emitted for earlier work has been delivered by then.
    pub fn barrier(&mut self, daemon: &Daemon, bundle: &Path) {
        let id = unique_id("barrier");
        daemon.start_container(&id, bundle);
        daemon.kill(&id, libc::SIGKILL);
        self.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    }
}

/// Sends raw bytes on a fresh connection, for tests of what a hostile client can do.
pub fn raw_connection(socket: &Path, bytes: &[u8]) -> UnixStream {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Sends `signal` to a process the test does not own (a container's init, a daemon).
pub fn signal_pid(pid: u32, signal: i32) {
    // SAFETY: kill(2) takes two integers and touches no memory.
    let sent = unsafe { libc::kill(pid as i32, signal) };
    assert_eq!(
        sent,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// The state letter of a process in /proc (`Z` for a zombie), if it exists.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Gives a bundle a memory limit (and the same memory+swap limit, so nothing swaps instead).
pub fn set_memory_limit(bundle: &Path, bytes: u64) {
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["linux"]["resources"]["memory"] = serde_json::json!({ "limit": bytes, "swap": bytes });
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// Waits until the container's stdout log holds `text`.
pub fn wait_for_output(daemon: &Daemon, id: &str, text: &str) {
    let stdout = daemon.state.join("default").join(id).join("stdout.log");
    wait_until(&format!("{id} to print {text:?}"), || {
        let out = std::fs::read_to_string(&stdout).ok()?;
        out.contains(text).then_some(())
    });
}

/// Called by a check this host cannot run (a tool missing, the other cgroup version): it fails,
/// naming `check` and why, so a check that did not run never looks like a pass. An operator who
/// knows can let it through with `CTRD_ALLOW_SKIP=check[,check…]`; it then says `SKIPPED` on
/// stderr and returns, and the caller returns too.
pub fn cannot_run_here(check: &str, reason: &str) {
    let allowed = std::env::var("CTRD_ALLOW_SKIP").unwrap_or_default();
    if allowed.split(',').any(|c| c.trim() == check) {
        eprintln!("SKIPPED {check}: {reason} (CTRD_ALLOW_SKIP names it)");
        return;
    }
    panic!(
        "{check} cannot run on this host: {reason}. scripts/setup.sh installs what the tests \
         need; to skip this check knowingly, set CTRD_ALLOW_SKIP={check}"
    );
}

/// Makes a FIFO at `path` and opens its read end, which the caller holds and never reads: an
/// output destination whose reader has stalled.
pub fn unread_fifo(path: &Path) -> std::fs::File {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
    let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(
        made,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

/// Waits until the FIFO `reader` reads from holds all it can, so whoever writes into it next has
/// to wait.
pub fn wait_until_full(reader: &std::fs::File) {
    use std::os::fd::AsRawFd;
    let fd = reader.as_raw_fd();
    // SAFETY: F_GETPIPE_SZ takes no argument and reads nothing from us.
    let capacity = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    assert!(capacity > 0, "{}", std::io::Error::last_os_error());
    wait_until("the fifo to fill up", || {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int into `queued`, which outlives the call.
        let asked = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
        assert_eq!(asked, 0, "{}", std::io::Error::last_os_error());
        (queued >= capacity).then_some(())
    });
}

/// How many descriptors process `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Whether the other end has closed this connection, which must be non-blocking: without
/// waiting, an end of stream (or a reset) is closed, no data yet is open.
pub fn closed_by_peer(stream: &mut impl std::io::Read) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// A `ctr` that succeeded: its stdout.
pub fn ctr_ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "ctr failed: {output:?} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A `ctr` failure: ctr's own exit code, 125, and one line `ctr: ...` on stderr; returns that
/// line.
pub fn ctr_refused(output: Output) -> String {
    assert_eq!(output.status.code(), Some(125), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("ctr: "), "{stderr}");
    stderr
}
