//! Exec processes in running containers, with real runc: their exits, their stdio through the
//! client's FIFOs, terminals, and the bad requests.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;

use common::*;
use nix::pty::{openpty, Winsize};
use nix::sys::termios;
use protocol::{ErrorKind, EventKind, KillProcessRequest, Status, DEFAULT_NAMESPACE};

#[test]
fn fifty_concurrent_execs_each_report_their_own_status() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("exec50");
    daemon.start_container(&id, &bundle);
    let mut events = daemon.events();

    let pids: HashMap<String, u32> = thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|n| {
                let (daemon, id) = (&daemon, &id);
                s.spawn(move || {
                    let name = format!("p{n}");
                    let script = format!("exit {n}");
                    let req = exec_request(id, &name, &["sh", "-c", &script]);
                    let pid = daemon
                        .client()
                        .exec(req)
                        .unwrap_or_else(|e| panic!("exec {name}: {e}"));
                    (name, pid)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let exits = events.wait_for(50, |e| e.id == id && e.kind == EventKind::Exit);
    let mut seen = HashMap::new();
    for exit in &exits {
        let n: i32 = exit.process.trim_start_matches('p').parse().unwrap();
        assert_eq!(exit.status, Some(n), "{exit:?}");
        assert_eq!(exit.pid, pids[&exit.process], "{exit:?}");
        assert!(
            seen.insert(exit.process.clone(), ()).is_none(),
            "twice: {exit:?}"
        );
    }
    assert_eq!(seen.len(), 50);
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(state.status, Status::Running);
    let names: Vec<&str> = state.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["init"], "only the init is left");
    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| {
        e.id == id && e.process == "init" && e.kind == EventKind::Exit
    });
}

/// The runtime answers each exec only once the keeper has reaped its process, so every exec
/// takes the path where its process is gone before the daemon takes hold of it.
#[test]
fn an_exec_that_exits_at_once_is_reported_once() {
    let daemon = Daemon::with_runc_wrapper("exec", "exectrue", UNTIL_REAPED);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("exectrue");
    daemon.start_container(&id, &bundle);
    let mut events = daemon.events();
    let names: Vec<String> = (0..10).map(|n| format!("t{n}")).collect();
    thread::scope(|s| {
        for name in &names {
            let (daemon, id) = (&daemon, &id);
            s.spawn(move || {
                daemon
                    .client()
                    .exec(exec_request(id, name, &["true"]))
                    .unwrap()
            });
        }
    });
    events.wait_for(10, |e| e.id == id && e.kind == EventKind::Exit);
    // Everything emitted for those execs has arrived once the init's exit has.
    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| {
        e.id == id && e.process == "init" && e.kind == EventKind::Exit
    });
    for name in &names {
        let exits: Vec<_> = events
            .exits_of(&id)
            .into_iter()
            .filter(|e| &e.process == name)
            .collect();
        assert_eq!(exits.len(), 1, "{name}: {exits:?}");
        assert_eq!(exits[0].status, Some(0));
    }
}

/// runc's pid file names a process other than the one `runc exec` started, as it does when that
/// one exited at once and its pid was taken again before the daemon took hold of it. The
/// runtime here rewrites the pid file to name a process of the test's own: the daemon must
/// treat the exec as gone, and never signal the stranger.
#[test]
fn an_exec_whose_pid_names_another_process_never_signals_it() {
    let mut stranger = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let rewrite = format!("echo {} > \"$pid_file\"", stranger.id());
    let mut daemon = Daemon::with_runc_wrapper("exec", "stranger", &rewrite);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("stranger");
    daemon.start_container(&id, &bundle);
    let pid = daemon
        .client()
        .exec(exec_request(&id, "job", &["true"]))
        .unwrap();
    assert_eq!(pid, stranger.id());
    let out = daemon.ctr(&[
        "containers",
        "kill",
        "--pid",
        "job",
        "--signal",
        "KILL",
        &id,
    ]);
    // A fatal signal sets the status the moment it is sent: the first one sent is the one seen.
    signal_pid(stranger.id(), libc::SIGTERM);
    assert_eq!(
        stranger.wait().unwrap().signal(),
        Some(libc::SIGTERM),
        "ctrd signalled a process that is not its container's"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.ends_with("is exiting\n"), "{out:?}");
    // The daemon waits for an exit of the stranger's pid that its keeper will never see.
    daemon.kill_daemon();
}

#[test]
fn execs_still_running_are_reported_before_the_init() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("execinit");
    daemon.start_container(&id, &bundle);
    let mut events = daemon.events();
    for name in ["a", "b", "c"] {
        daemon
            .client()
            .exec(exec_request(&id, name, &["sleep", "1000"]))
            .unwrap();
    }
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    let listed: Vec<(&str, &[String])> = state
        .processes
        .iter()
        .map(|p| (p.name.as_str(), p.args.as_slice()))
        .collect();
    let sleep = ["sleep".to_string(), "1000".to_string()];
    assert_eq!(
        listed,
        [
            ("init", &sleep[..]),
            ("a", &sleep[..]),
            ("b", &sleep[..]),
            ("c", &sleep[..])
        ]
    );

    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| {
        e.id == id && e.process == "init" && e.kind == EventKind::Exit
    });
    let exits = events.exits_of(&id);
    let order: Vec<&str> = exits.iter().map(|e| e.process.as_str()).collect();
    assert_eq!(order.len(), 4, "{exits:?}");
    assert_eq!(order.last(), Some(&"init"), "{exits:?}");
    for exit in &exits {
        assert_eq!(exit.status, Some(137), "{exit:?}");
    }
    assert!(all_stopped(
        &daemon.client().list(DEFAULT_NAMESPACE).unwrap()
    ));
    assert!(daemon.runc_leftovers().is_empty());
}

#[test]
fn execs_racing_the_inits_exit_are_each_reported_once_before_it() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("race");
    daemon.start_container(&id, &bundle);
    let mut events = daemon.events();
    let (started, first) = mpsc::channel();
    let results: Vec<(String, Result<u32, protocol::ClientError>)> = thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|n| {
                let (daemon, id, started) = (&daemon, &id, started.clone());
                s.spawn(move || {
                    let name = format!("r{n}");
                    let req = exec_request(id, &name, &["sleep", "1000"]);
                    let result = daemon.client().exec(req);
                    if result.is_ok() {
                        let _ = started.send(());
                    }
                    (name, result)
                })
            })
            .collect();
        // Once one runs, the init dies while the others are queued, in runc, or just started.
        first.recv_timeout(DEADLINE).expect("an exec to run");
        daemon.kill(&id, libc::SIGKILL);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().any(|(_, r)| r.is_ok()));
    events.wait_for(1, |e| {
        e.id == id && e.process == "init" && e.kind == EventKind::Exit
    });
    let exits = events.exits_of(&id);
    let init_at = exits.iter().position(|e| e.process == "init").unwrap();
    assert_eq!(
        init_at,
        exits.len() - 1,
        "the init's exit is the last: {exits:?}"
    );
    for (name, result) in &results {
        let reported: Vec<_> = exits.iter().filter(|e| &e.process == name).collect();
        match result {
            Ok(pid) => {
                assert_eq!(reported.len(), 1, "{name}: {exits:?}");
                assert_eq!(reported[0].pid, *pid);
            }
            Err(e) => assert!(reported.is_empty(), "{name} failed ({e}) yet exited"),
        }
    }
    assert!(all_stopped(
        &daemon.client().list(DEFAULT_NAMESPACE).unwrap()
    ));
    assert!(daemon.runc_leftovers().is_empty());
}

/// The runtime kills the container's init, and waits until the keeper has reaped it, before it
/// answers an exec: the init certainly ends while `runc exec` runs (the kernel ends the exec's
/// process with it, as it ends every process of the container's pid namespace). The exec is
/// answered, and its exit reported once, before the init's.
#[test]
fn an_exec_answered_after_its_container_died_is_reported_once_before_it() {
    let kill_init = r#"init=$(cat "$(dirname "$pid_file")/init.pid"); kill -KILL "$init"
        while [ -e "/proc/$init" ]; do sleep 0.001; done"#;
    let daemon = Daemon::with_runc_wrapper("exec", "initdies", kill_init);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("initdies");
    let init = daemon.start_container(&id, &bundle);
    let mut events = daemon.events();
    let pid = daemon
        .client()
        .exec(exec_request(&id, "late", &["sleep", "1000"]))
        .unwrap();
    assert!(!process_exists(init), "the runtime ended the init first");
    events.wait_for(1, |e| {
        e.id == id && e.process == "init" && e.kind == EventKind::Exit
    });
    let exits = events.exits_of(&id);
    let order: Vec<(&str, u32)> = exits.iter().map(|e| (e.process.as_str(), e.pid)).collect();
    assert_eq!(order, [("late", pid), ("init", init)], "{exits:?}");
    for exit in &exits {
        assert_eq!(exit.status, Some(137), "{exit:?}");
    }
    assert!(all_stopped(
        &daemon.client().list(DEFAULT_NAMESPACE).unwrap()
    ));
    assert!(daemon.runc_leftovers().is_empty());
}

#[test]
fn kill_with_a_process_name_signals_only_that_process() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("execkill");
    daemon.start_container(&id, &bundle);
    let mut events = daemon.events();
    let pid = daemon
        .client()
        .exec(exec_request(&id, "worker", &["sleep", "1000"]))
        .unwrap();
    let out = daemon.ctr(&[
        "containers",
        "kill",
        "--pid",
        "worker",
        "--signal",
        "KILL",
        &id,
    ]);
    assert!(out.status.success(), "{out:?}");
    let exit = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exit[0].process, "worker");
    assert_eq!(exit[0].pid, pid);
    assert_eq!(exit[0].status, Some(137));
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(state.status, Status::Running);

    let err = daemon
        .client()
        .kill_process(KillProcessRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            id: id.clone(),
            process: "worker".into(),
            signal: libc::SIGKILL,
        })
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound), "{err}");
    assert_eq!(
        err.to_string(),
        format!("process \"worker\" not found in container \"{id}\"")
    );
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn attached_exec_prints_both_streams_and_exits_with_the_status() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("attach");
    daemon.start_container(&id, &bundle);
    let tmp = tempfile::tempdir().unwrap();
    let out = daemon
        .ctr_command(&[
            "containers",
            "exec",
            "--id",
            &id,
            "--pid",
            "say",
            "--attach",
            "--",
            "sh",
            "-c",
            "echo hi; echo err >&2; exit 7",
        ])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "ctr left its fifos: {left:?}");
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn exec_runs_with_the_asked_user_environment_and_directory() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    // Replaced, not edited: the rootfs files are hard links shared with make-bundle's cache.
    let etc = bundle.join("rootfs/etc");
    for (file, text) in [
        (
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\nguest:x:1000:100::/tmp:/bin/sh\n",
        ),
        ("group", "root:x:0:\nusers:x:100:\n"),
    ] {
        std::fs::remove_file(etc.join(file)).unwrap();
        std::fs::write(etc.join(file), text).unwrap();
    }
    let id = unique_id("user");
    daemon.start_container(&id, &bundle);
    let out = daemon.ctr(&[
        "containers",
        "exec",
        "--id",
        &id,
        "--pid",
        "who",
        "--attach",
        "--uid",
        "1000",
        "--env",
        "GREETING=hello",
        "--cwd",
        "/tmp",
        "--",
        "sh",
        "-c",
        "id -u; id -g; pwd; echo $GREETING; echo $PATH",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines[..4], ["1000", "100", "/tmp", "hello"]);
    assert!(
        lines[4].contains("/bin"),
        "the bundle's PATH is kept: {lines:?}"
    );
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn attached_stdin_reaches_the_process_and_its_end_is_the_end_of_file() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("stdin");
    daemon.start_container(&id, &bundle);
    let mut child = daemon
        .ctr_command(&[
            "containers",
            "exec",
            "--id",
            &id,
            "--pid",
            "cat",
            "--attach",
            "--",
            "cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "abc\n");
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn signals_to_an_attached_ctr_go_to_its_process() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("proxy");
    daemon.start_container(&id, &bundle);
    let child = daemon
        .ctr_command(&[
            "containers",
            "exec",
            "--id",
            &id,
            "--pid",
            "nap",
            "--attach",
            "--",
            "sleep",
            "1000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the exec to run", || {
        let state = daemon.client().state(DEFAULT_NAMESPACE, &id).ok()?;
        state
            .processes
            .iter()
            .any(|p| p.name == "nap" && p.pid.is_some())
            .then_some(())
    });
    // SAFETY: kill(2) on the pid of our own child, which we have not waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM), "{out:?}");
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    assert_eq!(state.status, Status::Running, "the container stays");
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn start_attach_is_the_containers_stdio() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle(
        "upper",
        &[
            "sh",
            "-c",
            "read line; echo got $line; echo bye >&2; exit 4",
        ],
    );
    let id = unique_id("startattach");
    let mut child = daemon
        .ctr_command(&[
            "containers",
            "start",
            "--attach",
            &id,
            &bundle.to_string_lossy(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the attached container to run", || {
        let state = daemon.client().state(DEFAULT_NAMESPACE, &id).ok()?;
        (state.status == Status::Running).then_some(())
    });
    // A detached exec writes where the container does: to a client's FIFO, or nowhere.
    let mut events = daemon.events();
    let pid = daemon
        .client()
        .exec(exec_request(&id, "aside", &["sh", "-c", "echo aside"]))
        .unwrap();
    let exit = events.wait_for(1, |e| e.id == id && e.process == "aside");
    assert_eq!((exit[0].pid, exit[0].status), (pid, Some(0)));
    child.stdin.take().unwrap().write_all(b"ping\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("got ping\n"), "{stdout:?}");
    assert!(matches!(stdout.lines().count(), 1 | 2), "{stdout:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "bye\n");
}

/// `ctr` run on a new pseudo-terminal of `rows` x `cols` as its controlling terminal; the
/// terminal's output arrives on the channel, chunk by chunk, until ctr is gone.
struct OnTerminal {
    child: std::process::Child,
    master: File,
    output: mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl OnTerminal {
    fn spawn(daemon: &Daemon, args: &[&str], rows: u16, cols: u16) -> OnTerminal {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).unwrap();
        let slave = File::from(pty.slave);
        let mut cmd = daemon.ctr_command(args);
        cmd.stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        // SAFETY: between fork and exec the child makes only two async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(cmd);
        drop(slave);
        let master = File::from(pty.master);
        let (tx, output) = mpsc::channel();
        let mut reader = master.try_clone().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 1024];
            // EIO once ctr, the terminal's last user, has exited.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        OnTerminal {
            child,
            master,
            output,
            seen: String::new(),
        }
    }

    /// Waits until the terminal has shown a line equal to `line`, calling `poke` meanwhile.
    fn wait_for_line(&mut self, line: &str, mut poke: impl FnMut(&mut File)) {
        let deadline = std::time::Instant::now() + DEADLINE;
        while !self.seen.lines().any(|l| l.trim() == line) {
            assert!(
                std::time::Instant::now() < deadline,
                "no line {line:?} on the terminal; seen {:?}",
                self.seen
            );
            poke(&mut self.master);
            if let Ok(chunk) = self
                .output
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                self.seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
    }

    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = wait_until("ctr to exit", || self.child.try_wait().unwrap());
        while let Ok(chunk) = self.output.recv_timeout(DEADLINE) {
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        (status, self.seen)
    }
}

#[test]
fn tty_exec_runs_on_a_pts_of_the_outer_terminals_size() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("tty");
    daemon.start_container(&id, &bundle);
    let args = [
        "containers",
        "exec",
        "--id",
        &id,
        "--pid",
        "term",
        "--attach",
        "--tty",
        "--",
        "sh",
        "-c",
        "tty; stty size",
    ];
    let term = OnTerminal::spawn(&daemon, &args, 37, 111);
    let before = termios::tcgetattr(&term.master).unwrap();
    let master = term.master.try_clone().unwrap();
    let (status, seen) = term.wait();
    assert_eq!(status.code(), Some(0), "{seen}");
    let lines: Vec<&str> = seen.lines().map(str::trim).collect();
    assert!(lines.iter().any(|l| l.starts_with("/dev/pts/")), "{seen:?}");
    assert!(lines.contains(&"37 111"), "{seen:?}");
    let after = termios::tcgetattr(&master).unwrap();
    assert_eq!(before.local_flags, after.local_flags, "raw mode was undone");
    assert_eq!(before.input_flags, after.input_flags);
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn start_attach_tty_relays_the_containers_terminal() {
    let daemon = Daemon::start();
    let script = "tty; while read x; do stty size; [ \"$x\" = q ] && exit 3; done";
    let bundle = daemon.bundle("tty", &["sh", "-c", script]);
    let config = bundle.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"terminal\": false", "\"terminal\": true"),
    )
    .unwrap();
    let id = unique_id("inittty");
    let bundle = bundle.to_string_lossy().into_owned();
    let args = ["containers", "start", "--attach", "--tty", &id, &bundle];
    let mut term = OnTerminal::spawn(&daemon, &args, 37, 111);
    // The bundle fixes the first size; ctrd sets the client's once the terminal is its.
    term.wait_for_line("37 111", |master| master.write_all(b"\r").unwrap());
    term.master.write_all(b"q\r").unwrap();
    let (status, seen) = term.wait();
    assert_eq!(status.code(), Some(3), "{seen}");
    assert!(
        seen.lines().any(|l| l.trim().starts_with("/dev/pts/")),
        "{seen:?}"
    );
}

#[test]
fn a_terminal_needs_an_attached_client() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("notty");
    let mut req = start_request(&id, &bundle);
    req.terminal = Some(protocol::WindowSize { rows: 24, cols: 80 });
    let err = daemon.client().start(req).unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidArgument), "{err}");
    assert!(daemon.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());
    let out = daemon.ctr(&[
        "containers",
        "exec",
        "--id",
        &id,
        "--pid",
        "t",
        "--tty",
        "--",
        "sh",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ctr: --tty needs --attach: a terminal is only of use to an attached client\n"
    );
}

#[test]
fn tty_exec_follows_the_outer_terminals_size_changes() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("resize");
    daemon.start_container(&id, &bundle);
    let args = [
        "containers",
        "exec",
        "--id",
        &id,
        "--pid",
        "sizes",
        "--attach",
        "--tty",
        "--",
        "sh",
        "-c",
        "stty size; while read x; do stty size; done",
    ];
    let mut term = OnTerminal::spawn(&daemon, &args, 37, 111);
    term.wait_for_line("37 111", |_| {});
    let bigger = Winsize {
        ws_row: 50,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call; the kernel
    // then sends SIGWINCH to ctr, the terminal's foreground process.
    assert_eq!(
        unsafe { libc::ioctl(term.master.as_raw_fd(), libc::TIOCSWINSZ, &bigger) },
        0
    );
    // Each return makes the shell print its size again, until ctr has forwarded the change.
    term.wait_for_line("50 160", |master| master.write_all(b"\r").unwrap());
    let out = daemon.ctr(&[
        "containers",
        "kill",
        "--pid",
        "sizes",
        "--signal",
        "KILL",
        &id,
    ]);
    assert!(out.status.success(), "{out:?}");
    let (status, seen) = term.wait();
    assert_eq!(status.code(), Some(137), "{seen}");
    daemon.kill(&id, libc::SIGKILL);
}

#[test]
fn bad_execs_are_one_line_errors_and_leave_nothing_behind() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("badexec");
    daemon.start_container(&id, &bundle);
    daemon
        .client()
        .exec(exec_request(&id, "dup", &["sleep", "1000"]))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ctr = |args: &[&str]| {
        let out = daemon
            .ctr_command(args)
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
        (out.status.code(), stderr)
    };
    let exec = |extra: &[&str], cmd: &[&str]| {
        let mut args = vec!["containers", "exec", "--id", &id, "--attach"];
        args.extend(extra);
        args.push("--");
        args.extend(cmd);
        ctr(&args)
    };
    // `want` is the whole line, or for runc's failures a part of its own words after ours.
    let check = |(code, stderr): (Option<i32>, String), want_code: i32, want: &str| {
        assert_eq!(code, Some(want_code), "{stderr}");
        if want.starts_with("ctr: ") {
            assert_eq!(stderr.trim_end(), want);
        } else {
            assert!(stderr.starts_with("ctr: cannot exec process"), "{stderr}");
            assert!(stderr.contains(want), "{stderr}");
        }
    };
    check(
        ctr(&[
            "containers",
            "exec",
            "--id",
            "nosuch",
            "--pid",
            "p",
            "--",
            "true",
        ]),
        125,
        "ctr: container \"nosuch\" not found",
    );
    check(
        exec(&["--pid", "dup"], &["true"]),
        125,
        &format!("ctr: process \"dup\" already exists in container \"{id}\""),
    );
    check(
        exec(&["--pid", "init"], &["true"]),
        125,
        "ctr: process name \"init\" is the container's main process; choose another",
    );
    check(
        exec(&["--pid", "u", "--uid", "4242"], &["true"]),
        125,
        &format!(
            "ctr: cannot exec process \"u\" in container \"{id}\": invalid process for \
             container {id}: no user 4242 in its /etc/passwd"
        ),
    );
    check(
        exec(&["--pid", "missing"], &["/no/such/command"]),
        127,
        "no such file or directory",
    );
    check(
        exec(&["--pid", "unpathed"], &["nosuchcommand"]),
        127,
        "executable file not found in $PATH",
    );
    check(
        exec(&["--pid", "noexec"], &["/etc/passwd"]),
        126,
        "permission denied",
    );
    check(
        exec(&["--pid", "badenv", "--env", "NOEQUALS"], &["true"]),
        125,
        "ctr: invalid environment entry \"NOEQUALS\": expected KEY=VALUE",
    );
    // A missing --pid is a usage error: clap's report, naming the flag, and no request sent.
    let out = daemon.ctr(&["containers", "exec", "--id", &id, "--attach", "--", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.starts_with(
            "error: the following required arguments were not provided:\n  --pid <NAME>\n"
        ),
        "{stderr}"
    );
    let state = daemon.client().state(DEFAULT_NAMESPACE, &id).unwrap();
    let names: Vec<&str> = state.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["init", "dup"]);
    let dir = daemon.state.join("default").join(&id);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["init.pid", "stderr.log", "stdout.log"]);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "ctr left its fifos: {left:?}");

    let mut events = daemon.events();
    daemon.kill(&id, libc::SIGKILL);
    events.wait_for(1, |e| {
        e.id == id && e.process == "init" && e.kind == EventKind::Exit
    });
    let exits: Vec<&str> = events.seen.iter().map(|e| e.process.as_str()).collect();
    assert_eq!(exits, ["dup", "init"], "only the processes that ran exited");
    let out = daemon.ctr(&[
        "containers",
        "exec",
        "--id",
        &id,
        "--pid",
        "late",
        "--",
        "true",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("ctr: container \"{id}\" is stopped\n")
    );
}

#[test]
fn wait_names_an_exec_and_gets_its_status_before_and_after_its_exit() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let id = unique_id("waitexec");
    daemon.start_container(&id, &bundle);
    daemon
        .client()
        .exec(exec_request(&id, "job", &["sleep", "1000"]))
        .unwrap();
    let request = protocol::WaitRequest {
        namespace: protocol::DEFAULT_NAMESPACE.into(),
        id: id.clone(),
        process: "job".into(),
    };
    let mut client = daemon.client();
    let waiter = thread::spawn(move || client.wait(request));
    // Whether the wait reaches the daemon before the kill or after the exit, its answer is the
    // same: the exit to come, or the one the journal holds.
    daemon
        .client()
        .kill_process(protocol::KillProcessRequest {
            namespace: protocol::DEFAULT_NAMESPACE.into(),
            id: id.clone(),
            process: "job".into(),
            signal: libc::SIGKILL,
        })
        .unwrap();
    let exit = waiter.join().unwrap().unwrap();
    assert_eq!((exit.process.as_str(), exit.status), ("job", Some(137)));
    // After the exit, the status comes from the journal; the container still runs.
    let out = daemon.ctr(&["containers", "wait", "--pid", "job", &id]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let out = daemon.ctr(&["containers", "wait", "--pid", "nosuch", &id]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no process \"nosuch\""), "{stderr}");
    daemon.kill(&id, libc::SIGKILL);
}
