//! ctr's own failures exit 125, usage errors included, so a script can tell them from a status
//! ctr passes on (`containers wait`, attached `start` and `exec`: the supervisor's tests check
//! those against a real daemon); help and version exit 0.

use std::process::{Command, Output, Stdio};

const CTR: &str = env!("CARGO_BIN_EXE_ctr");

fn ctr(args: &[&str]) -> Output {
    Command::new(CTR)
        .args(args)
        .env_remove("CTRD_ADDRESS")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn usage_errors_exit_125_with_clap_s_report() {
    for args in [
        &["--bogus"][..],
        &["containers", "kill"],
        &["containers", "exec", "--id", "web", "--", "true"],
        &[
            "containers",
            "start",
            "--attach",
            "--stdout",
            "/o",
            "web",
            "/b",
        ],
        &[],
    ] {
        let out = ctr(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "ctr {args:?}: {stderr}");
        assert!(stderr.contains("Usage: ctr"), "ctr {args:?}: {stderr}");
    }
    let out = ctr(&["containers", "exec", "--id", "web", "--", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: the following required arguments were not provided:\n  --pid <NAME>\n"
        ),
        "{stderr}"
    );
}

#[test]
fn a_failure_of_ctr_itself_exits_125_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let out = ctr(&["--address", socket.to_str().unwrap(), "c", "ls"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.starts_with("ctr: cannot connect to ctrd at "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let out = ctr(&["man", "/proc/version/no"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
}

#[test]
fn help_and_version_exit_0() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["c", "start", "--help"],
        &["help"],
    ] {
        let out = ctr(args);
        assert_eq!(out.status.code(), Some(0), "ctr {args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "ctr {args:?} printed nothing");
    }
}
