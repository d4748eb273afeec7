//! `ctr run IMAGE ID [COMMAND...]` through the real daemon and runc: the container gets the
//! image's Env, WorkingDir and User (resolved in the image's own /etc/passwd), a command replaces
//! Cmd but keeps Entrypoint, `--rm` leaves nothing behind, containers of one image do not share
//! their writes, one id runs in two namespaces at once, and refused runs leave nothing half-made.
//!
//! Images are written by the image store's test helper (`images/tests/common`), with the static
//! busybox as their only binary.

mod common;
#[path = "../images/tests/common/mod.rs"]
mod layout;

use std::path::PathBuf;

use common::{ctr_ok, ctr_refused, unique_id, Daemon};
use layout::{Compression, Entry, ImageSpec, Layout};
use oci_spec::image::{Config, ConfigBuilder};
use protocol::{EventKind, REMOVE_ERROR_LABEL};
use serde_json::Value;

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/srv:/bin/sh\n";
const GROUP: &[u8] = b"root:x:0:\napp:x:2345:\nextra:x:3456:app\n";

/// A busybox image with `config`, an `app` user, and the applets the tests use linked.
fn busybox_image(config: Config) -> ImageSpec {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (scripts/setup.sh)");
    let mut base = vec![
        Entry::Dir("bin"),
        Entry::File("bin/busybox", busybox, 0o755),
        Entry::Dir("etc"),
        Entry::File("etc/passwd", PASSWD.to_vec(), 0o644),
        Entry::File("etc/group", GROUP.to_vec(), 0o644),
        Entry::Dir("proc"),
        Entry::Dir("sys"),
        Entry::Dir("dev"),
        Entry::Dir("run"),
        Entry::DirOwned("srv", 1234, 0o755),
        Entry::DirOwned("tmp", 0, 0o1777),
    ];
    for applet in ["sh", "id", "pwd", "cat", "echo", "test", "sleep", "ls"] {
        base.push(Entry::Symlink(leak(format!("bin/{applet}")), "busybox"));
    }
    let mut spec = ImageSpec::new(vec![(base, Compression::Gzip)]);
    spec.config = Some(config);
    spec
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The image the tests run: `sh -c` as Entrypoint, a script printing what the process sees as
/// Cmd, run as `app` in `/srv` with `GREETING=hi`.
fn reporting_image() -> ImageSpec {
    busybox_image(
        ConfigBuilder::default()
            .entrypoint(strings(&["/bin/sh", "-c"]))
            .cmd(strings(&["echo $GREETING; pwd; id -u; id -g; id -G"]))
            .env(strings(&["PATH=/bin", "GREETING=hi"]))
            .working_dir("/srv")
            .user("app")
            .stop_signal("SIGQUIT")
            .build()
            .unwrap(),
    )
}

/// Imports `spec` as image `name` into `namespace`.
fn import(daemon: &Daemon, namespace: &str, name: &str, spec: &ImageSpec) {
    let mut layout = Layout::default();
    let manifest = layout.image(spec);
    let index = layout.index(vec![(manifest, spec)]);
    let bytes = layout.archive(vec![(Some(name), index)]);
    let path = daemon
        .dir
        .path()
        .join(format!("{}.tar", unique_id("image")));
    std::fs::write(&path, bytes).unwrap();
    ctr_ok(daemon.ctr(&["-n", namespace, "images", "import", path.to_str().unwrap()]));
}

fn active_snapshots(daemon: &Daemon, namespace: &str) -> Value {
    serde_json::from_str(&ctr_ok(daemon.ctr(&[
        "-n",
        namespace,
        "snapshots",
        "ls",
        "--filter",
        "kind==active",
        "--format",
        "json",
    ])))
    .unwrap()
}

fn bundle_dir(daemon: &Daemon, namespace: &str, id: &str) -> PathBuf {
    daemon.state.join("bundles").join(namespace).join(id)
}

/// Nothing of container `id` is left: no active snapshot, bundle or runc state.
fn assert_nothing_left(daemon: &Daemon, namespace: &str, id: &str) {
    assert_eq!(
        active_snapshots(daemon, namespace),
        Value::Array(Vec::new())
    );
    assert!(!bundle_dir(daemon, namespace, id).exists());
    assert_eq!(daemon.runc_leftovers(), Vec::<PathBuf>::new());
}

#[test]
fn the_container_sees_the_images_env_working_dir_and_user() {
    let daemon = Daemon::start();
    import(&daemon, "default", "report", &reporting_image());
    let id = unique_id("run");
    let out = ctr_ok(daemon.ctr(&["run", "--rm", "report", &id]));
    assert_eq!(out, "hi\n/srv\n1234\n2345\n2345 3456\n");
    assert_nothing_left(&daemon, "default", &id);

    // The flags win over the image.
    let out = ctr_ok(daemon.ctr(&[
        "run",
        "--rm",
        "--env",
        "GREETING=yo",
        "--cwd",
        "/tmp",
        "--user",
        "7:8",
        "report",
        &id,
    ]));
    assert_eq!(out, "yo\n/tmp\n7\n8\n8\n");
    assert_nothing_left(&daemon, "default", &id);
}

#[test]
fn a_command_replaces_cmd_keeps_the_entrypoint_and_its_status_is_ctrs() {
    let daemon = Daemon::start();
    import(&daemon, "default", "report", &reporting_image());
    let id = unique_id("run");
    let output = daemon.ctr(&[
        "run",
        "--rm",
        "report",
        &id,
        "echo from the command; exit 7",
    ]);
    assert_eq!(output.status.code(), Some(7), "{output:?}");
    assert_eq!(output.stdout, b"from the command\n");
    assert_nothing_left(&daemon, "default", &id);
}

#[test]
fn containers_of_one_image_do_not_see_each_others_writes() {
    let daemon = Daemon::start();
    import(&daemon, "default", "report", &reporting_image());
    let (a, b) = (unique_id("writer"), unique_id("reader"));
    let detached = daemon.ctr(&[
        "run",
        "-d",
        "report",
        &a,
        "echo mine > /srv/mark; cat /srv/mark",
    ]);
    ctr_ok(detached);
    let mut waited = daemon.ctr_command(&["containers", "wait", &a]);
    assert!(waited.status().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(bundle_dir(&daemon, "default", &a).join("rootfs/srv/mark"))
            .unwrap(),
        "mine\n"
    );
    let out = ctr_ok(daemon.ctr(&[
        "run",
        "--rm",
        "report",
        &b,
        "test -e /srv/mark || echo clean",
    ]));
    assert_eq!(out, "clean\n");
    // `a` ran without --rm: its snapshot stays, mounted, until released.
    let active = active_snapshots(&daemon, "default");
    assert_eq!(active[0]["key"], format!("default/{a}"));
    let rootfs = bundle_dir(&daemon, "default", &a).join("rootfs");
    ctr_ok(daemon.ctr(&["snapshots", "unmount", rootfs.to_str().unwrap()]));
    ctr_ok(daemon.ctr(&["snapshots", "rm", &a]));
}

#[test]
fn one_id_runs_in_two_namespaces_at_once() {
    let daemon = Daemon::start();
    let id = "same";
    for ns in ["a", "b"] {
        import(&daemon, ns, "report", &reporting_image());
        ctr_ok(daemon.ctr(&[
            "-n",
            ns,
            "run",
            "-d",
            "--rm",
            "report",
            id,
            "exec sleep 1000",
        ]));
    }
    for ns in ["a", "b"] {
        let state: Value = serde_json::from_str(&ctr_ok(daemon.ctr(&[
            "-n",
            ns,
            "containers",
            "state",
            id,
            "--format",
            "json",
        ])))
        .unwrap();
        assert_eq!(state["status"], "running", "{state}");
        assert_eq!(state["labels"]["ctrd.image"], "report", "{state}");
        assert!(bundle_dir(&daemon, ns, id)
            .join("rootfs/bin/busybox")
            .exists());
    }
    for ns in ["a", "b"] {
        let events = daemon.client().subscribe(ns).unwrap();
        ctr_ok(daemon.ctr(&["-n", ns, "containers", "kill", "--signal", "KILL", id]));
        let status = daemon
            .ctr_command(&["-n", ns, "containers", "wait", id])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(137));
        // The removal follows the exit: its event is the sign it is done.
        let key = format!("{ns}/{id}");
        let removed = events
            .map(Result::unwrap)
            .find(|e| e.kind == EventKind::SnapshotRemove && e.id == key)
            .expect("a snapshot-remove event");
        assert_eq!(removed.labels.get(REMOVE_ERROR_LABEL), None, "{removed:?}");
        assert_eq!(active_snapshots(&daemon, ns), Value::Array(Vec::new()));
        assert!(!bundle_dir(&daemon, ns, id).exists());
    }
}

#[test]
fn the_container_has_its_own_network_with_loopback_up() {
    let daemon = Daemon::start();
    import(&daemon, "default", "report", &reporting_image());
    let id = unique_id("net");
    let script = "cat /sys/class/net/lo/operstate; ls /sys/class/net";
    // Loopback that is up reads "unknown" (it has no carrier to report); "down" if not.
    let out = ctr_ok(daemon.ctr(&["run", "--rm", "report", &id, script]));
    assert_eq!(out, "unknown\nlo\n");
    let host = ctr_ok(daemon.ctr(&[
        "run",
        "--rm",
        "--net",
        "host",
        "report",
        &id,
        "ls /sys/class/net",
    ]));
    assert_eq!(
        host.lines().count(),
        std::fs::read_dir("/sys/class/net").unwrap().count(),
        "{host}"
    );
}

#[test]
fn refused_runs_leave_nothing_behind() {
    let daemon = Daemon::start();
    import(&daemon, "default", "report", &reporting_image());
    let id = unique_id("bad");
    let cases: [(&[&str], &str); 4] = [
        (&["run", "missing", &id], "not found"),
        (&["run", "--user", "ghost", "report", &id], "/etc/passwd"),
        (
            &["run", "--cwd", "relative", "report", &id],
            "not an absolute path",
        ),
        (&["run", "--env", "NOVALUE", "report", &id], "KEY=VALUE"),
    ];
    for (args, says) in cases {
        let line = ctr_refused(daemon.ctr(args));
        assert!(line.contains(says), "{args:?}: {line}");
        assert_nothing_left(&daemon, "default", &id);
    }
    // runc refuses after the bundle is made: the Entrypoint is not in the image.
    let broken = busybox_image(
        ConfigBuilder::default()
            .entrypoint(strings(&["/missing"]))
            .build()
            .unwrap(),
    );
    import(&daemon, "default", "broken", &broken);
    let output = daemon.ctr(&["run", "-d", "broken", &id]);
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("ctr: ") && stderr.contains("missing"),
        "{stderr}"
    );
    assert_nothing_left(&daemon, "default", &id);
}
