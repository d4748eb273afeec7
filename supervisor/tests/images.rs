//! The image store through the real daemon and `ctr`: import over the socket, list, inspect,
//! export and re-import, remove and prune, refused archives and dropped uploads that change
//! nothing, the events all of it emits, a second ctrd on the same root, images across a daemon
//! crash, and a container started from a bundle whose rootfs is a mounted snapshot.
//!
//! Archives are written by the image store's own test helper (`images/tests/common`).

mod common;
#[path = "../images/tests/common/mod.rs"]
mod layout;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{ctr_ok, ctr_refused, unique_id, wait_for_output, wait_until, Daemon};
use layout::{Compression, Entry, ImageSpec, Layout};
use protocol::frame::{read_frame, write_frame};
use protocol::{
    Bytes, EventKind, Hello, ImportRequest, PlatformChoice, Request, Response, UploadFrame,
    DEFAULT_MAX_FRAME,
};
use serde_json::Value;

/// A two-layer image: a file, then a second file and a deleted first one.
fn two_layers() -> ImageSpec {
    ImageSpec::new(vec![
        (
            vec![
                Entry::Dir("etc"),
                Entry::File("etc/first", b"one".to_vec(), 0o644),
            ],
            Compression::Gzip,
        ),
        (
            vec![
                Entry::File("etc/second", b"two".to_vec(), 0o644),
                Entry::Whiteout("etc/first"),
            ],
            Compression::None,
        ),
    ])
}

/// Writes an OCI layout archive holding image `name`, an index with one manifest for the host's
/// platform; returns its path and the index's digest.
fn archive(daemon: &Daemon, name: &str, spec: &ImageSpec) -> (PathBuf, String) {
    let mut layout = Layout::default();
    let manifest = layout.image(spec);
    let index = layout.index(vec![(manifest, spec)]);
    let digest = index.digest().to_string();
    let bytes = layout.archive(vec![(Some(name), index)]);
    let path = daemon
        .dir
        .path()
        .join(format!("{}.tar", unique_id("image")));
    std::fs::write(&path, bytes).unwrap();
    (path, digest)
}

fn json(output: Output) -> Value {
    serde_json::from_str(&ctr_ok(output)).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What the three listings show: compared before and after something that must change nothing.
fn listings(daemon: &Daemon) -> [Value; 3] {
    ["images", "content", "snapshots"]
        .map(|noun| json(daemon.ctr(&[noun, "ls", "--format", "json"])))
}

/// The events matching `filter` the journal holds for the default namespace, as (type, id)
/// pairs in order.
fn journal(daemon: &Daemon, filter: &str) -> Vec<(String, String)> {
    let out = ctr_ok(daemon.ctr(&[
        "events", "--since", "0", "--until", "0s", "--filter", filter, "--format", "json",
    ]));
    out.lines()
        .map(|line| {
            let e: Value = serde_json::from_str(line).unwrap();
            (
                e["type"].as_str().unwrap().to_string(),
                e["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn an_image_is_imported_listed_inspected_exported_removed_and_pruned() {
    let daemon = Daemon::start();
    let name = "example.com/app:1";
    let (file, digest) = archive(&daemon, name, &two_layers());

    let out = ctr_ok(daemon.ctr(&["images", "import", "--label", "team=a", path(&file)]));
    assert_eq!(out, format!("{name} {digest}\n"));

    let table = ctr_ok(daemon.ctr(&["images", "ls"]));
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    let platform = format!("linux/{}", layout::host_arch());
    assert_eq!(row[0], name);
    assert_eq!(row[1], "application/vnd.oci.image.index.v1+json");
    assert_eq!(row[2], digest);
    assert_eq!(row[5], platform);
    assert_eq!(row[6], "team=a");
    assert_eq!(lines.len(), 2, "{table}");

    let listed = json(daemon.ctr(&["images", "ls", "--format", "json"]));
    assert_eq!(listed[0]["name"], name);
    assert_eq!(listed[0]["digest"], digest.as_str());
    assert_eq!(listed[0]["platforms"][0], platform.as_str());
    assert_eq!(listed[0]["labels"]["team"], "a");
    assert!(listed[0]["size"].as_u64().unwrap() > 0);
    let none = json(daemon.ctr(&[
        "images",
        "ls",
        "--filter",
        "labels.team==b",
        "--format",
        "json",
    ]));
    assert_eq!(none, Value::Array(Vec::new()));
    let bad_filter = ctr_refused(daemon.ctr(&["images", "ls", "--filter", "status==x"]));
    assert!(bad_filter.contains("unknown field"), "{bad_filter}");

    let inspected = json(daemon.ctr(&["images", "inspect", name]));
    assert_eq!(inspected["digest"], digest.as_str());
    let manifest = &inspected["manifests"][0];
    assert_eq!(manifest["manifest"]["layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        manifest["config"]["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let snapshots = json(daemon.ctr(&["snapshots", "ls", "--format", "json"]));
    let snapshots = snapshots.as_array().unwrap();
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert!(snapshots.iter().all(|s| s["kind"] == "committed"));
    let top = snapshots.iter().find(|s| !s["parent"].is_null()).unwrap();
    assert!(snapshots.iter().any(|s| s["key"] == top["parent"]));
    let usage = ctr_ok(daemon.ctr(&["snapshots", "usage"]));
    assert_eq!(usage.lines().count(), 3, "{usage}");
    let blobs = json(daemon.ctr(&["content", "ls", "--format", "json"]));
    assert_eq!(
        blobs.as_array().unwrap().len(),
        5,
        "two layers, a config, a manifest, an index"
    );
    assert!(ctr_ok(daemon.ctr(&["content", "ls"])).starts_with("DIGEST"));

    // Exported and imported again, in another namespace, it is the same image.
    let exported = daemon.dir.path().join("exported.tar");
    ctr_ok(daemon.ctr(&["images", "export", path(&exported), name]));
    let out = ctr_ok(daemon.ctr(&["-n", "other", "images", "import", path(&exported)]));
    assert_eq!(out, format!("{name} {digest}\n"));
    // From stdin, under another name.
    let mut import = daemon
        .ctr_command(&["-n", "other", "images", "import", "--name", "copy", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    import
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&exported).unwrap())
        .unwrap();
    assert_eq!(
        ctr_ok(import.wait_with_output().unwrap()),
        format!("copy {digest}\n")
    );

    // Removing every name and pruning leaves nothing.
    assert_eq!(
        ctr_ok(daemon.ctr(&["images", "rm", name])),
        format!("{name}\n")
    );
    let missing = ctr_refused(daemon.ctr(&["-n", "other", "images", "rm", "copy", "nope"]));
    assert!(
        missing.contains("image nope not found in namespace other"),
        "{missing}"
    );
    ctr_ok(daemon.ctr(&["-n", "other", "images", "rm", name, "copy"]));
    let pruned = json(daemon.ctr(&["images", "prune", "--format", "json"]));
    assert_eq!(pruned["blobs"].as_array().unwrap().len(), 5);
    assert_eq!(pruned["snapshots"].as_array().unwrap().len(), 2);
    let empty = Value::Array(Vec::new());
    assert_eq!(listings(&daemon), [empty.clone(), empty.clone(), empty]);

    // The journal tells it, in order, beside the containers' events.
    let store_events = journal(&daemon, "type~=^(image|snapshot|content)-");
    let kinds: Vec<&str> = store_events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "snapshot-commit",
            "snapshot-commit",
            "image-create",
            "image-delete",
            "snapshot-remove",
            "snapshot-remove",
            "content-delete",
            "content-delete",
            "content-delete",
            "content-delete",
            "content-delete",
        ]
    );
    assert_eq!(
        journal(&daemon, "type~=image"),
        [
            ("image-create".to_string(), name.to_string()),
            ("image-delete".to_string(), name.to_string())
        ]
    );
    let other = ctr_ok(daemon.ctr(&[
        "-n",
        "other",
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "type~=image",
    ]));
    assert_eq!(
        other.lines().count(),
        5,
        "a header, two creates, two deletes:\n{other}"
    );
}

#[test]
fn a_refused_archive_changes_nothing() {
    let daemon = Daemon::start();
    let (good, _) = archive(&daemon, "kept", &two_layers());
    ctr_ok(daemon.ctr(&["images", "import", path(&good)]));
    let before = listings(&daemon);
    let tree = layout::tree(&daemon.root());

    let garbage = daemon.dir.path().join("garbage.tar");
    std::fs::write(&garbage, b"this is no archive").unwrap();
    let (corrupt, _) = archive(
        &daemon,
        "corrupt",
        &ImageSpec::new(vec![(
            vec![Entry::File("big", vec![7u8; 64 * 1024], 0o644)],
            Compression::None,
        )]),
    );
    // Flip a byte inside the layer's content: its blob no longer hashes to its name.
    let mut bytes = std::fs::read(&corrupt).unwrap();
    let at = bytes
        .windows(4096)
        .position(|w| w.iter().all(|b| *b == 7))
        .unwrap();
    bytes[at + 100] = 8;
    std::fs::write(&corrupt, &bytes).unwrap();
    let truncated = daemon.dir.path().join("truncated.tar");
    std::fs::write(&truncated, &std::fs::read(&good).unwrap()[..3000]).unwrap();

    for (file, why) in [
        (&garbage, "invalid image archive"),
        (&corrupt, "is corrupt"),
        (&truncated, "invalid image archive"),
    ] {
        let line = ctr_refused(daemon.ctr(&["images", "import", path(file)]));
        assert!(line.contains(why), "{}: {line}", file.display());
    }
    let line = ctr_refused(daemon.ctr(&["images", "import", "--platform", "linux", path(&good)]));
    assert!(line.contains("invalid platform"), "{line}");
    let line = ctr_refused(daemon.ctr(&["images", "import", "/nonexistent.tar"]));
    assert!(line.contains("cannot open /nonexistent.tar"), "{line}");

    assert_eq!(listings(&daemon), before);
    assert_eq!(layout::tree(&daemon.root()), tree);
    let line = ctr_refused(daemon.ctr(&["images", "inspect", "nope"]));
    assert!(line.contains("image nope not found"), "{line}");
    let line = ctr_refused(daemon.ctr(&["snapshots", "rm", "sha256:nope"]));
    assert!(
        line.contains("not found") || line.contains("invalid digest"),
        "{line}"
    );
    assert_eq!(
        daemon
            .client()
            .remove_images("default", &["nope".into()])
            .unwrap_err()
            .kind(),
        Some(protocol::ErrorKind::NotFound)
    );
}

/// The client hangs up once the daemon holds every blob of the archive, before its end: the
/// import is abandoned and what it wrote is removed.
#[test]
fn a_client_that_hangs_up_mid_upload_leaves_nothing() {
    let daemon = Daemon::start();
    let spec = ImageSpec::new(vec![(
        vec![Entry::File("data", vec![1u8; 300 * 1024], 0o644)],
        Compression::Gzip,
    )]);
    let mut layout = Layout::default();
    let manifest = layout.image(&spec);
    let blobs = layout.blobs.len();
    let bytes = layout.archive(vec![(Some("dropped"), manifest)]);
    let before = listings(&daemon);

    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    write_frame(&mut stream, &Hello::ours()).unwrap();
    let _: Hello = read_frame(&mut stream, DEFAULT_MAX_FRAME).unwrap().unwrap();
    let import = Request::ImportImage(ImportRequest {
        namespace: "default".into(),
        name: None,
        platform: PlatformChoice::Host,
        labels: BTreeMap::new(),
    });
    write_frame(&mut stream, &import).unwrap();
    let ready: Response = read_frame(&mut stream, DEFAULT_MAX_FRAME).unwrap().unwrap();
    let Response::UploadReady(ready) = ready else {
        panic!("{ready:?}");
    };
    // All but the tar's two end blocks: every blob is in, the end is not.
    for chunk in bytes[..bytes.len() - 1024].chunks(ready.chunk_size as usize) {
        write_frame(&mut stream, &UploadFrame::Data(Bytes(chunk.to_vec()))).unwrap();
    }
    wait_until("the upload's blobs to be in the store", || {
        let listed = json(daemon.ctr(&["content", "ls", "--format", "json"]));
        (listed.as_array().unwrap().len() == blobs).then_some(())
    });
    drop(stream);
    wait_until("the abandoned upload's blobs to be removed", || {
        (listings(&daemon) == before).then_some(())
    });
    assert!(journal(&daemon, "type~=image").is_empty());
}

#[test]
fn a_second_ctrd_on_the_same_root_is_refused() {
    let daemon = Daemon::start();
    let other = daemon.dir.path().join("other");
    let second = Command::new(env!("CARGO_BIN_EXE_ctrd"))
        .arg("--state-dir")
        .arg(other.join("state"))
        .arg("--socket")
        .arg(other.join("ctrd.sock"))
        .arg("--root")
        .arg(daemon.root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("--root: image store") && stderr.contains("is in use by another process"),
        "{stderr}"
    );
    // The first one still serves.
    ctr_ok(daemon.ctr(&["images", "ls"]));
}

/// A mount the test made, taken off (lazily) if the test fails before it unmounts it, so the
/// temp dir can go.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Until containers are run from images: a container's snapshot, prepared on an image and
/// mounted as a bundle's rootfs, is what the container sees.
#[test]
fn a_container_runs_on_a_mounted_snapshot() {
    let daemon = Daemon::start();
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (scripts/setup.sh)");
    let spec = ImageSpec::new(vec![
        (
            vec![
                Entry::Dir("bin"),
                Entry::File("bin/busybox", busybox, 0o755),
                Entry::Dir("proc"),
                Entry::Dir("sys"),
                Entry::Dir("dev"),
                Entry::Dir("tmp"),
            ],
            Compression::Gzip,
        ),
        (
            vec![Entry::File("greeting", b"from the image\n".to_vec(), 0o644)],
            Compression::Gzip,
        ),
    ]);
    let (file, _) = archive(&daemon, "busybox", &spec);
    ctr_ok(daemon.ctr(&["images", "import", path(&file)]));

    let id = unique_id("snap");
    let key = ctr_ok(daemon.ctr(&["snapshots", "prepare", "--image", "busybox", &id]));
    assert_eq!(key, format!("default/{id}\n"));
    let again = ctr_refused(daemon.ctr(&["snapshots", "prepare", "--image", "busybox", &id]));
    assert!(again.contains("already has an active snapshot"), "{again}");

    // A bundle whose rootfs is the mounted snapshot, not make-bundle.sh's.
    let bundle = daemon.bundle(&id, &["/bin/busybox", "cat", "/greeting"]);
    let rootfs = bundle.join("rootfs");
    std::fs::remove_dir_all(&rootfs).unwrap();
    std::fs::create_dir(&rootfs).unwrap();
    ctr_ok(daemon.ctr(&["snapshots", "mount", &id, path(&rootfs)]));
    let mounted = Mounted(rootfs.clone());
    assert!(rootfs.join("greeting").exists());

    let mut events = daemon.events();
    ctr_ok(daemon.ctr(&["containers", "start", &id, path(&bundle)]));
    let exit = events.wait_for(1, |e| e.id == id && e.kind == EventKind::Exit);
    assert_eq!(exit[0].status, Some(0));
    wait_for_output(&daemon, &id, "from the image");

    let listed = json(daemon.ctr(&[
        "snapshots",
        "ls",
        "--filter",
        "kind==active",
        "--format",
        "json",
    ]));
    assert_eq!(listed[0]["key"], format!("default/{id}"));
    let busy = ctr_refused(daemon.ctr(&["snapshots", "rm", &id]));
    assert!(busy.contains("mounted"), "{busy}");
    ctr_ok(daemon.ctr(&["snapshots", "unmount", path(&rootfs)]));
    std::mem::forget(mounted);
    ctr_ok(daemon.ctr(&["snapshots", "rm", &id]));
    let active = json(daemon.ctr(&[
        "snapshots",
        "ls",
        "--filter",
        "kind==active",
        "--format",
        "json",
    ]));
    assert_eq!(active, Value::Array(Vec::new()));
    assert_eq!(
        journal(&daemon, "type~=^snapshot-(prepare|remove)"),
        [
            ("snapshot-prepare".to_string(), format!("default/{id}")),
            ("snapshot-remove".to_string(), format!("default/{id}"))
        ]
    );
}

/// The store outlives the daemon process: a crashed daemon's lock is released, and the one the
/// keeper starts in its place opens the same root with the same images.
#[test]
fn images_survive_a_daemon_crash() {
    let daemon = Daemon::start();
    let (file, digest) = archive(&daemon, "kept", &two_layers());
    ctr_ok(daemon.ctr(&["images", "import", path(&file)]));
    let before = listings(&daemon);
    daemon.kill_daemon_process();
    assert_eq!(listings(&daemon), before);
    let listed = json(daemon.ctr(&["images", "ls", "--format", "json"]));
    assert_eq!(listed[0]["digest"], digest.as_str());
    ctr_ok(daemon.ctr(&["images", "rm", "kept"]));
    ctr_ok(daemon.ctr(&["images", "prune"]));
    assert_eq!(
        journal(&daemon, "type~=image"),
        [
            ("image-create".to_string(), "kept".to_string()),
            ("image-delete".to_string(), "kept".to_string())
        ]
    );
}
