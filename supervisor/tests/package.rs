//! The Debian package: `scripts/package.sh` builds it from the binaries under test, its listing
//! holds everything an operator needs, and a real `dpkg -i` into a throwaway root installs a
//! ctrd that starts from the installed path with the installed config. Its binaries are
//! stripped, their symbols in `ctrd-dbgsym`, where gdb finds them. On a host with containerd,
//! whose package has its own `/usr/bin/ctr`, dpkg refuses it whole. Left to build for itself, the
//! script finds what cargo built wherever `CARGO_TARGET_DIR` put it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{cannot_run_here, ctr_binary, repo_root, wait_until};
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

/// What package.sh builds: ctrd's package and its debug symbols.
struct Packages {
    deb: PathBuf,
    dbgsym: PathBuf,
}

/// package.sh prints the two paths, ctrd's first, in `out`.
fn packages_printed(printed: &str, out: &Path) -> Packages {
    let paths: Vec<PathBuf> = printed.lines().map(PathBuf::from).collect();
    let [deb, dbgsym] = paths.as_slice() else {
        panic!("package.sh printed {printed:?}");
    };
    for path in [deb, dbgsym] {
        assert!(
            path.parent() == Some(out) && path.exists(),
            "package.sh printed {printed:?}"
        );
    }
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name(deb).starts_with("ctrd_"), "{printed}");
    assert!(name(dbgsym).starts_with("ctrd-dbgsym_"), "{printed}");
    Packages {
        deb: deb.clone(),
        dbgsym: dbgsym.clone(),
    }
}

/// Packages the binaries this test run built (the same dir as ctrd; ctr beside it), with no
/// compression: debug binaries are large.
fn build_package(out: &Path) -> Packages {
    let bin_dir = ctr_binary().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(out).unwrap();
    let out = out.canonicalize().unwrap();
    let printed = stdout(run(Command::new("bash")
        .arg(repo_root().join("scripts/package.sh"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(&out)
        .args(["--compression", "none"])));
    packages_printed(&printed, &out)
}

fn field(deb: &Path, name: &str) -> String {
    stdout(run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .arg(name)))
    .trim()
    .to_string()
}

fn extract(deb: &Path, into: &Path) {
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(into));
}

/// The GNU build id of an ELF file, as hex.
fn build_id(elf: &Path) -> String {
    let notes = stdout(run(Command::new("readelf").arg("-n").arg(elf)));
    notes
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("{} has no build id:\n{notes}", elf.display()))
        .to_string()
}

/// The names of an ELF file's sections.
fn sections(elf: &Path) -> Vec<String> {
    let table = stdout(run(Command::new("readelf").args(["-S", "-W"]).arg(elf)));
    table
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('['))
        .filter_map(|l| l.split_once(']'))
        .filter_map(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// An empty dpkg database under `root`, for a real install outside the host's.
fn dpkg_root(root: &Path) -> PathBuf {
    for sub in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    root.to_path_buf()
}

/// `dpkg` on the database under `root`; maintainer scripts run outside a chroot (the root has no
/// shell), dependencies (runc) taken as given.
fn dpkg(root: &Path) -> Command {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
        .args(["--force-depends", "--force-script-chrootless"]);
    cmd
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
    let packages = packages_printed(&printed, &target.join("debian"));
    // The packaged ctrd is the one cargo built, stripped: the same build id.
    let unpacked = dir.path().join("unpacked");
    extract(&packages.deb, &unpacked);
    assert_eq!(
        build_id(&unpacked.join("usr/bin/ctrd")),
        build_id(&built.join("ctrd"))
    );
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
    let Packages { deb, dbgsym } = build_package(&dir.path().join("out"));

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
    let depends = field(&deb, "Depends");
    assert!(
        depends.split(',').any(|d| d.trim() == "runc"),
        "Depends: {depends}"
    );
    let conflicts = field(&deb, "Conflicts");
    for package in ["containerd", "containerd.io"] {
        assert!(
            conflicts.split(',').any(|c| c.trim() == package),
            "Conflicts: {conflicts}"
        );
    }

    // A real install, into a root of its own, of both packages.
    let root = dpkg_root(&dir.path().join("root"));
    run(dpkg(&root).arg("-i").arg(&deb).arg(&dbgsym));
    let conffiles = stdout(run(Command::new("dpkg-query")
        .arg(format!("--root={}", root.display()))
        .args(["--showformat=${Status} ${Conffiles}", "--show", "ctrd"])));
    assert!(
        conffiles.starts_with("install ok installed")
            && conffiles.contains("/etc/ctrd/config.toml"),
        "{conffiles}"
    );
    assert_stripped_with_symbols_apart(&root, &dbgsym);

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
            .arg("--root")
            .arg(dir.path().join("root"))
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

/// Each installed binary is stripped (no symbol table, no DWARF) but keeps its build id and a
/// debug link; `ctrd-dbgsym` holds a `.debug` file per build id, with the DWARF, and lists the
/// ids; gdb, pointed at the installed /usr/lib/debug, finds `main` in the sources through them.
fn assert_stripped_with_symbols_apart(root: &Path, dbgsym: &Path) {
    assert_eq!(
        field(dbgsym, "Depends"),
        format!("ctrd (= {})", field(dbgsym, "Version"))
    );
    let listed = field(dbgsym, "Build-Ids");
    let debug_dir = root.join("usr/lib/debug");
    let bins = ["ctrd", "ctr", "ctrd-bench"];
    for bin in bins {
        let installed = root.join("usr/bin").join(bin);
        if bin == "ctrd-bench" && !installed.exists() {
            continue; // packaged only once built, as package.sh says
        }
        let names = sections(&installed);
        for gone in [".debug_info", ".debug_line", ".symtab"] {
            assert!(
                !names.iter().any(|n| n == gone),
                "{bin} keeps {gone}: {names:?}"
            );
        }
        for kept in [".note.gnu.build-id", ".gnu_debuglink"] {
            assert!(
                names.iter().any(|n| n == kept),
                "{bin} lost {kept}: {names:?}"
            );
        }
        let id = build_id(&installed);
        assert!(
            listed.split_whitespace().any(|l| l == id),
            "{id} not in Build-Ids: {listed}"
        );
        let debug = debug_dir.join(format!(".build-id/{}/{}.debug", &id[..2], &id[2..]));
        assert!(debug.exists(), "no {} for {bin}", debug.display());
        assert_eq!(build_id(&debug), id);
        let names = sections(&debug);
        assert!(
            names.iter().any(|n| n == ".debug_info"),
            "{}: {names:?}",
            debug.display()
        );
    }
    if Command::new("gdb").arg("--version").output().is_err() {
        return cannot_run_here("gdb", "gdb is not installed");
    }
    for (bin, source) in [
        ("ctr", "ctr/src/main.rs"),
        ("ctrd", "supervisor/src/main.rs"),
    ] {
        let out = stdout(run(Command::new("gdb")
            .args(["-batch", "-nx", "-iex"])
            .arg(format!("set debug-file-directory {}", debug_dir.display()))
            .args(["-ex", &format!("info line {bin}::main")])
            .arg(root.join("usr/bin").join(bin))));
        assert!(
            out.contains(&format!("of \"{source}\"")),
            "gdb on {bin}: {out}"
        );
    }
}

/// A host with containerd: its package owns /usr/bin/ctr. dpkg refuses ctrd for the declared
/// conflict before unpacking anything, rather than stopping half-way at the clash and leaving a
/// half-installed ctrd; containerd's ctr is untouched.
#[test]
fn a_host_with_containerd_refuses_the_package_whole() {
    let dir = tempfile::tempdir().unwrap();
    let Packages { deb, .. } = build_package(&dir.path().join("out"));

    // A stand-in for Debian's containerd: the one file that matters.
    let fake = dir.path().join("containerd");
    std::fs::create_dir_all(fake.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(fake.join("usr/bin")).unwrap();
    let theirs = "#!/bin/sh\necho containerd ctr\n";
    std::fs::write(fake.join("usr/bin/ctr"), theirs).unwrap();
    std::fs::write(
        fake.join("DEBIAN/control"),
        format!(
            "Package: containerd\nVersion: 1.6.20~ds1-1\nArchitecture: {}\n\
             Maintainer: nobody <nobody@localhost>\nDescription: stand-in for containerd\n",
            stdout(run(Command::new("dpkg").arg("--print-architecture"))).trim()
        ),
    )
    .unwrap();
    let fake_deb = dir.path().join("containerd.deb");
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&fake)
        .arg(&fake_deb));

    let root = dpkg_root(&dir.path().join("root"));
    run(dpkg(&root).arg("-i").arg(&fake_deb));
    let out = dpkg(&root)
        .arg("-i")
        .arg(&deb)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "ctrd installed beside containerd: {stderr}"
    );
    assert!(
        stderr.contains("ctrd conflicts with containerd"),
        "{stderr}"
    );
    assert!(!stderr.contains("trying to overwrite"), "{stderr}");

    let status = |package: &str| {
        let out = Command::new("dpkg-query")
            .arg(format!("--root={}", root.display()))
            .args(["--showformat=${Status}", "--show", package])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(status("containerd"), "install ok installed");
    // `dpkg -i` leaves its selection (`install`), but nothing unpacked or half-configured.
    assert_eq!(status("ctrd"), "install ok not-installed");
    let audit = stdout(run(dpkg(&root).arg("--audit")));
    assert!(audit.trim().is_empty(), "dpkg --audit: {audit}");
    assert_eq!(
        std::fs::read_to_string(root.join("usr/bin/ctr")).unwrap(),
        theirs
    );
    assert!(!root.join("usr/bin/ctrd").exists(), "ctrd was unpacked");
}
