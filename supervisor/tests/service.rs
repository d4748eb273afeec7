//! ctrd as a host service: its config file, its readiness notification to a service manager,
//! and its systemd unit. Each test runs the real `ctrd` binary on its own temp dir.

mod common;

use std::io::ErrorKind;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{cannot_run_here, repo_root, unique_id, wait_until, DEADLINE};
use protocol::Client;

const CTRD: &str = env!("CARGO_BIN_EXE_ctrd");

/// A `ctrd` started by the test itself (not the harness: these tests decide how it is started
/// and must not wait for it to serve before they look). Stopped on drop.
struct Ctrd {
    child: Child,
    log: PathBuf,
}

impl Ctrd {
    fn spawn(dir: &Path, args: &[&str], notify_socket: Option<&str>) -> Ctrd {
        let log = dir.join(format!("{}.log", unique_id("ctrd")));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(CTRD);
        cmd.args(args)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        if let Some(address) = notify_socket {
            cmd.env("NOTIFY_SOCKET", address);
        }
        Ctrd {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    fn terminate(&mut self) {
        // SAFETY: kill(2) on the pid of our own child, which we have not waited for yet.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
        let status = wait_until("ctrd to exit", || self.child.try_wait().unwrap());
        assert!(
            status.success(),
            "ctrd exited with {status}:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ctrd {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn ctrd(args: &[&str]) -> Output {
    Command::new(CTRD)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn serves(socket: &Path) -> bool {
    Client::connect(socket).and_then(|mut c| c.info()).is_ok()
}

fn default_config() -> String {
    let out = ctrd(&["config", "default"]);
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_default_config_starts_ctrd_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let default = default_config();
    std::fs::write(&config, &default).unwrap();
    let config = config.to_str().unwrap();

    // `ctrd config default > f && ctrd --config f`, with the flags that keep a test off
    // /run/ctrd and /var/lib/ctrd: they override the file's state-dir and root.
    let socket = dir.path().join("from-flag.sock");
    let state = dir.path().join("flag-state");
    let root = dir.path().join("flag-root");
    let mut daemon = Ctrd::spawn(
        dir.path(),
        &[
            "--config",
            config,
            "--state-dir",
            state.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
        ],
        None,
    );
    wait_until("ctrd to serve with the default config", || {
        serves(&socket).then_some(())
    });
    assert!(state.join("runc").is_dir());
    assert!(root.join("metadata.redb").is_file());
    daemon.terminate();

    // The file alone decides where ctrd works.
    let state = dir.path().join("file-state");
    let root = dir.path().join("file-root");
    let socket = dir.path().join("from-file.sock");
    let edited = default
        .replace(
            "state-dir = \"/run/ctrd\"",
            &format!("state-dir = {:?}", state.to_str().unwrap()),
        )
        .replace(
            "root = \"/var/lib/ctrd\"",
            &format!("root = {:?}", root.to_str().unwrap()),
        )
        .replace(
            "# socket = \"SOCKET\"",
            &format!("socket = {:?}", socket.to_str().unwrap()),
        );
    assert!(
        edited.contains("from-file.sock")
            && !edited.contains("/run/ctrd\"")
            && !edited.contains("/var/lib/ctrd\""),
        "the default config changed shape:\n{default}"
    );
    std::fs::write(config, edited).unwrap();
    let mut daemon = Ctrd::spawn(dir.path(), &["--config", config], None);
    wait_until("ctrd to serve on the config's socket", || {
        serves(&socket).then_some(())
    });
    assert!(state.join("runc").is_dir());
    assert!(root.join("metadata.redb").is_file());
    daemon.terminate();
}

#[test]
fn a_typo_in_the_config_fails_naming_key_and_line_before_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "# ctrd\nstate-dir = {:?}\nconcurrency = 4\nshutdown-timout = \"5s\"\n",
            state.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = ctrd(&["--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "ctrd: config file {}, line 4: unknown key `shutdown-timout` (did you mean \
             `shutdown-timeout`?)",
            config.display()
        )
    );
    assert!(
        !state.exists(),
        "nothing is created before the config is checked"
    );

    std::fs::write(&config, "concurrency = \"many\"\n").unwrap();
    let out = ctrd(&["--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 1: invalid value \"many\" for `concurrency`"),
        "{stderr}"
    );
}

/// Binds the datagram socket a service manager would listen on; `address` is what goes in
/// `NOTIFY_SOCKET`.
fn notify_listener(dir: &Path, abstract_name: bool) -> (UnixDatagram, String) {
    let (socket, address) = if abstract_name {
        let name = unique_id("ctrd-notify");
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
    } else {
        let path = dir.join("notify.sock");
        let address = path.to_str().unwrap().to_string();
        (UnixDatagram::bind(path).unwrap(), address)
    };
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    (socket, address)
}

fn receive(listener: &UnixDatagram, daemon: &Ctrd) -> String {
    let mut buf = [0u8; 512];
    match listener.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!(
                "no notification within {DEADLINE:?}; ctrd log:\n{}",
                daemon.log()
            )
        }
        Err(e) => panic!("recv: {e}"),
    }
}

fn check_readiness(abstract_name: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (listener, address) = notify_listener(dir.path(), abstract_name);
    let socket = dir.path().join("ctrd.sock");
    let state = dir.path().join("state");
    let root = dir.path().join("root");
    let mut daemon = Ctrd::spawn(
        dir.path(),
        &[
            "--state-dir",
            state.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
        ],
        Some(&address),
    );
    let ready = receive(&listener, &daemon);
    // No retry: at the moment READY=1 arrives a request must already be served.
    let info = Client::connect(&socket)
        .and_then(|mut c| c.info())
        .unwrap_or_else(|e| panic!("READY=1 arrived but a request failed: {e}"));
    assert_eq!(info.keeper_pid, daemon.child.id());
    assert!(ready.lines().any(|l| l == "READY=1"), "got {ready:?}");
    assert!(
        ready.contains(&format!("STATUS=serving on {}", socket.display())),
        "got {ready:?}"
    );

    // SAFETY: as in `Ctrd::terminate`; the exit is awaited below.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    assert_eq!(receive(&listener, &daemon), "STOPPING=1");
    let status = wait_until("ctrd to exit", || daemon.child.try_wait().unwrap());
    assert!(status.success());
}

#[test]
fn ready_is_sent_once_a_request_is_served_and_stopping_at_shutdown() {
    check_readiness(false);
}

#[test]
fn readiness_reaches_an_abstract_socket() {
    check_readiness(true);
}

#[test]
fn the_systemd_unit_hands_shutdown_to_ctrd_and_passes_systemd_analyze() {
    let unit_path = repo_root().join("supervisor/packaging/ctrd.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let service: Vec<&str> = unit
        .lines()
        .skip_while(|l| *l != "[Service]")
        .take_while(|l| !l.starts_with("[Install]"))
        .collect();
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/ctrd",
        "KillMode=process",
        "Delegate=yes",
    ] {
        assert!(service.contains(&line), "[Service] lacks {line}");
    }
    let nofile = service
        .iter()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE is set");
    assert!(nofile.parse::<u64>().unwrap() >= 65536);

    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        cannot_run_here(
            "systemd-analyze",
            "systemd-analyze is not installed (Debian's systemd package)",
        );
        return;
    };
    // verify checks that ExecStart exists and that the Documentation= man page resolves, so
    // the copy runs the ctrd just built and MANPATH holds the pages it generates.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ctrd.service");
    std::fs::write(
        &copy,
        unit.replace("ExecStart=/usr/bin/ctrd", &format!("ExecStart={CTRD}")),
    )
    .unwrap();
    let man = dir.path().join("man");
    assert!(ctrd(&["man", man.join("man1").to_str().unwrap()])
        .status
        .success());
    let mut verify = Command::new(analyze);
    verify.arg("verify");
    if Command::new("man").arg("--version").output().is_ok() {
        verify.env("MANPATH", &man);
    } else {
        cannot_run_here(
            "man",
            "`man` is not installed (Debian's man-db package), so the unit's man page is not checked",
        );
        verify.arg("--man=no");
    }
    let out = verify.arg(&copy).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
