//! The action script ctrd gives CRIU, so that a restored container has its network back.
//!
//! runc always has CRIU restore a container into an *empty* network namespace (`--empty-ns
//! network` is forced: "runc doesn't manage network devices"), and runc brings the loopback up
//! only when it starts a container, not when CRIU restores one. A restored container would find
//! `lo` down: `127.0.0.1` unreachable, and CRIU unable to put back a TCP connection over it.
//! This script does runc's part at the right moment:
//!
//! - `pre-dump` (the first thing CRIU does in a dump or a pre-dump): saves the loopback's
//!   addresses and its routes of the main table (`ip address save`, `ip route save`) beside the
//!   images, in [`ADDRESSES_FILE`] and [`ROUTES_FILE`];
//! - `setup-namespaces` (a restore, once the namespaces exist and before any socket or process
//!   is restored): brings `lo` up, which gives it `127.0.0.1/8`, `::1` and their local routes as
//!   runc's start did, then puts back what was saved (entries that exist already are skipped).
//!
//! It acts only in a network namespace of the container's own: one shared with CRIU (the host's)
//! is not the container's to change. Interfaces other than `lo` are not recreated: runc gives a
//! container nothing else, and a bundle that joins a namespace by path keeps it as it is.
//!
//! CRIU is told through a config file named by `CRIU_CONFIG_FILE` in runc's environment, which
//! CRIU reads also when runc starts it as `criu swrk` (CRIU 4 does). Both files go in the call's
//! CRIU work directory; the script logs there and leaves a mark once a restore set up the
//! namespace, so the caller can tell a CRIU that ignored the file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::RuntimeError;

/// The loopback's addresses at dump time, in a checkpoint's directory (`ip address save`).
pub const ADDRESSES_FILE: &str = "network-addresses";
/// The loopback's routes of the main table at dump time (`ip route save`).
pub const ROUTES_FILE: &str = "network-routes";

const SCRIPT: &str = r#"
exec >>"$work/network-hook.log" 2>&1
pid=${CRTOOLS_INIT_PID:-}
[ -n "$pid" ] || exit 0
# A namespace shared with CRIU (the host's) is not the container's to change.
[ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ] || {
    [ "$CRTOOLS_SCRIPT_ACTION" != setup-namespaces ] || echo shared >"$work/network-restored"
    exit 0
}
in_ns() { nsenter -t "$pid" -n "$@"; }
case $CRTOOLS_SCRIPT_ACTION in
pre-dump)
    in_ns ip address save dev lo >"$images/network-addresses.tmp"
    in_ns ip route save table main dev lo >"$images/network-routes.tmp"
    mv "$images/network-addresses.tmp" "$images/network-addresses"
    mv "$images/network-routes.tmp" "$images/network-routes"
    ;;
setup-namespaces)
    in_ns ip link set lo up
    # ip's restore skips what exists already (what bringing lo up recreated).
    if [ -f "$images/network-addresses" ]; then
        in_ns ip address restore <"$images/network-addresses" 2>/dev/null
    fi
    if [ -f "$images/network-routes" ]; then
        in_ns ip route restore <"$images/network-routes" 2>/dev/null
    fi
    echo restored >"$work/network-restored"
    ;;
esac
"#;

/// The hook written into one CRIU call's work directory.
pub struct NetworkHook {
    config: PathBuf,
    work: PathBuf,
}

/// What the hook did in a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoredNetwork {
    /// The loopback is up, with the addresses and routes saved at dump time.
    Restored,
    /// The container shares CRIU's network namespace: nothing to do.
    Shared,
    /// CRIU never ran the hook (it did not read `CRIU_CONFIG_FILE`): the loopback is down.
    NotRun,
}

impl NetworkHook {
    /// Writes the script, for the checkpoint in `images`, and the config file naming it.
    pub fn write(work: &Path, images: &Path) -> Result<NetworkHook, RuntimeError> {
        let script = work.join("network-hook.sh");
        let config = work.join("criu.conf");
        let text = format!(
            "#!/bin/sh\n# CRIU action script written by ctrd (runtime/src/criu_hook.rs).\n\
             set -e\nimages={}\nwork={}\n{SCRIPT}",
            shell_quote(images),
            shell_quote(work)
        );
        fs::write(&script, text).map_err(|e| RuntimeError::io("cannot write", &script, e))?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .map_err(|e| RuntimeError::io("cannot chmod", &script, e))?;
        let line = format!("action-script {}\n", script.to_string_lossy());
        fs::write(&config, line).map_err(|e| RuntimeError::io("cannot write", &config, e))?;
        Ok(NetworkHook {
            config,
            work: work.to_path_buf(),
        })
    }

    /// The config file for `CRIU_CONFIG_FILE`.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// After a restore: what the hook did.
    pub fn restored(&self) -> RestoredNetwork {
        match fs::read_to_string(self.work.join("network-restored")) {
            Ok(mark) if mark.trim() == "shared" => RestoredNetwork::Shared,
            Ok(_) => RestoredNetwork::Restored,
            Err(_) => RestoredNetwork::NotRun,
        }
    }

    /// The hook's own complaints (ip's or nsenter's), for an error message.
    pub fn log_tail(&self) -> Option<String> {
        let log = fs::read_to_string(self.work.join("network-hook.log")).ok()?;
        let last = log.lines().rev().find(|l| !l.trim().is_empty())?;
        Some(last.trim().to_string())
    }
}

/// `path` as one single-quoted shell word.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn quotes_survive_the_shell() {
        let path = Path::new("/tmp/it's here");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote(path)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "/tmp/it's here");
    }

    #[test]
    fn writes_an_executable_script_and_a_config_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let hook = NetworkHook::write(dir.path(), Path::new("/images")).unwrap();
        let config = fs::read_to_string(hook.config()).unwrap();
        let script = dir.path().join("network-hook.sh");
        assert_eq!(config, format!("action-script {}\n", script.display()));
        let mode = fs::metadata(&script).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111);
        let status = Command::new("sh").arg("-n").arg(&script).status().unwrap();
        assert!(status.success(), "the script does not parse");
        assert_eq!(hook.restored(), RestoredNetwork::NotRun);
        // Outside a CRIU call (no CRTOOLS_INIT_PID) it does nothing, successfully.
        let status = Command::new(&script)
            .env_remove("CRTOOLS_INIT_PID")
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(hook.restored(), RestoredNetwork::NotRun);
    }
}
