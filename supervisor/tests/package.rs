//! The Debian package: `scripts/package.sh` builds it from the binaries under test, its listing
//! holds everything an operator needs, and a real `dpkg -i` into a throwaway root installs a
//! ctrd that starts from the installed path with the installed config. Left to build for
//! itself, the script finds what cargo built wherever `CARGO_TARGET_DIR` put it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{ctr_binary, repo_root, wait_until};
use protocol::Client;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: Output) -> String {
    String::from_utf8(out.stdout).unwrap()
}

/// Packages the binaries this test run built (the same dir as ctrd; ctr beside it), with no
/// compression: debug binaries are large.
fn build_package(out: &Path) -> PathBuf {
    let bin_dir = ctr_binary().parent().unwrap().to_path_buf();
    let printed = stdout(run(Command::new("bash")
        .arg(repo_root().join("scripts/package.sh"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(out)
        .args(["--compression", "none"])));
    let deb = PathBuf::from(printed.trim());
    assert!(
        deb.starts_with(out) && deb.exists(),
        "package.sh printed {printed:?}"
    );
    deb
}

/// `package.sh --profile dev` with `CARGO_TARGET_DIR` naming a directory of its own, whose
/// `debug` is the one this test run built (a link: cargo finds everything fresh there and
/// builds nothing). The script must take the binaries from there, not from `target/` beside
/// the sources, and put the package there too.
#[test]
fn the_script_finds_what_cargo_built_under_cargo_target_dir() {
    let dir = tempfile::tempdir().unwrap();
    let built = ctr_binary().parent().unwrap().to_path_buf();
    assert_eq!(built.file_name().unwrap(), "debug");
    let target = dir.path().join("elsewhere target");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&built, target.join("debug")).unwrap();

    let printed = stdout(run(Command::new("bash")
        .arg(repo_root().join("scripts/package.sh"))
        .args(["--profile", "dev", "--compression", "none"])
        .env("CARGO_TARGET_DIR", &target)));
    let deb = PathBuf::from(printed.trim());
    assert_eq!(
        deb.parent(),
        Some(target.join("debian").as_path()),
        "package.sh printed {printed:?}"
    );
    // The packaged ctrd is the one cargo built: the same size as the file, to the byte.
    let listing = stdout(run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    let size = listing
        .lines()
        .find(|l| l.ends_with(" ./usr/bin/ctrd"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no ./usr/bin/ctrd in:\n{listing}"));
    assert_eq!(size, std::fs::metadata(built.join("ctrd")).unwrap().len());
}

struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_package_holds_the_service_and_installs_a_ctrd_that_starts() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build_package(&dir.path().join("out"));

    let listing = stdout(run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    for expected in [
        "./usr/bin/ctrd",
        "./usr/bin/ctr",
        "./lib/systemd/system/ctrd.service",
        "./etc/ctrd/config.toml",
        "./usr/share/bash-completion/completions/ctr",
        "./usr/share/zsh/vendor-completions/_ctr",
        "./usr/share/fish/vendor_completions.d/ctr.fish",
        "./usr/share/man/man1/ctrd.1.gz",
        "./usr/share/man/man1/ctrd-config-default.1.gz",
        "./usr/share/man/man1/ctr.1.gz",
        "./usr/share/man/man1/ctr-containers-start.1.gz",
    ] {
        assert!(files.contains(&expected), "{expected} missing:\n{listing}");
    }
    let depends = stdout(run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(&deb)
        .arg("Depends")));
    assert!(
        depends.split(',').any(|d| d.trim() == "runc"),
        "Depends: {depends}"
    );

    // A real install, into a root of its own: its own dpkg database, maintainer scripts run
    // outside a chroot (the root has no shell), runc taken as given.
    let root = dir.path().join("root");
    for sub in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
        .args(["--force-depends", "--force-script-chrootless", "-i"])
        .arg(&deb));
    let conffiles = stdout(run(Command::new("dpkg-query")
        .arg(format!("--root={}", root.display()))
        .args(["--showformat=${Status} ${Conffiles}", "--show", "ctrd"])));
    assert!(
        conffiles.starts_with("install ok installed")
            && conffiles.contains("/etc/ctrd/config.toml"),
        "{conffiles}"
    );

    let installed = root.join("usr/bin/ctrd");
    let socket = dir.path().join("ctrd.sock");
    let state = dir.path().join("state");
    let log = std::fs::File::create(dir.path().join("ctrd.log")).unwrap();
    let daemon = Stopped(
        Command::new(&installed)
            .arg("--config")
            .arg(root.join("etc/ctrd/config.toml"))
            .arg("--state-dir")
            .arg(&state)
            .arg("--socket")
            .arg(&socket)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_until("the installed ctrd to serve", || {
        Client::connect(&socket).ok()
    });
    let info = stdout(run(Command::new(root.join("usr/bin/ctr"))
        .arg("--address")
        .arg(&socket)
        .args(["info", "--format", "json"])));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["keeper_pid"],
        daemon.0.id(),
        "the installed ctr reached the installed ctrd: {info}"
    );
}
