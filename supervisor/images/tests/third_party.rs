//! The importer against archives written by other tools, not only by our own test writer: umoci
//! builds an OCI layout from a directory, skopeo turns it into a `docker save` archive, and
//! skopeo reads our export back. Both come from scripts/setup.sh; a missing one fails the test
//! with that hint rather than skipping it.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::require_root;
use images::{ImageStore, ImportOptions};

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install it with scripts/setup.sh"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tar of a directory tree (an OCI layout directory), as `tar -C dir -cf - .` would make.
fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

/// Builds `layout:app` with umoci from a two-layer rootfs: a base, then a change that deletes
/// a file and adds a symlink and a file owned by uid 1000.
fn umoci_layout(work: &Path) -> std::path::PathBuf {
    let layout = work.join("layout");
    let bundle = work.join("bundle");
    let l = layout.to_str().unwrap();
    let b = bundle.to_str().unwrap();
    run("umoci", &["init", "--layout", l]);
    run("umoci", &["new", "--image", &format!("{l}:app")]);
    run("umoci", &["unpack", "--image", &format!("{l}:app"), b]);
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/hostname"), "umoci\n").unwrap();
    fs::write(rootfs.join("etc/gone"), "deleted in layer 2\n").unwrap();
    run("umoci", &["repack", "--image", &format!("{l}:app"), b]);
    fs::remove_file(rootfs.join("etc/gone")).unwrap();
    std::os::unix::fs::symlink("hostname", rootfs.join("etc/link")).unwrap();
    fs::write(rootfs.join("etc/owned"), "by 1000\n").unwrap();
    std::os::unix::fs::chown(rootfs.join("etc/owned"), Some(1000), Some(1000)).unwrap();
    run("umoci", &["repack", "--image", &format!("{l}:app"), b]);
    run(
        "umoci",
        &[
            "config",
            "--image",
            &format!("{l}:app"),
            "--config.cmd",
            "echo umoci",
        ],
    );
    layout
}

fn check_rootfs(store: &ImageStore, work: &Path, container: &str, image: &str) {
    store.prepare("default", container, image).unwrap();
    let target = work.join(format!("rootfs-{container}"));
    fs::create_dir(&target).unwrap();
    store.mount("default", container, &target).unwrap();
    let checks = || {
        assert_eq!(fs::read(target.join("etc/hostname")).unwrap(), b"umoci\n");
        assert!(
            !target.join("etc/gone").exists(),
            "umoci's whiteout deletes it"
        );
        assert_eq!(
            fs::read_link(target.join("etc/link")).unwrap(),
            Path::new("hostname")
        );
        assert_eq!(fs::metadata(target.join("etc/owned")).unwrap().uid(), 1000);
    };
    let result = std::panic::catch_unwind(checks);
    store.unmount(&target).unwrap();
    store.release("default", container).unwrap();
    result.unwrap();
}

#[test]
fn an_umoci_layout_and_its_skopeo_docker_archive_import_and_mount() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(work.path().join("root")).unwrap();
    let layout = umoci_layout(work.path());

    let report = store
        .import("default", &tar_dir(&layout)[..], &ImportOptions::default())
        .unwrap();
    assert_eq!(
        report.images[0].name, "app",
        "umoci's org.opencontainers.image.ref.name"
    );
    let inspect = store.inspect("default", "app").unwrap();
    let cmd = inspect.manifests[0]
        .config
        .config()
        .clone()
        .unwrap()
        .cmd()
        .clone();
    assert_eq!(cmd.unwrap(), ["echo umoci"]);
    check_rootfs(&store, work.path(), "from-oci", "app");

    let docker = work.path().join("docker.tar");
    run(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:app", layout.display()),
            &format!("docker-archive:{}:example.com/app:v1", docker.display()),
        ],
    );
    let report = store
        .import(
            "default",
            &fs::read(&docker).unwrap()[..],
            &ImportOptions::default(),
        )
        .unwrap();
    assert_eq!(
        report.images[0].name, "example.com/app:v1",
        "skopeo's RepoTags"
    );
    assert!(
        report.layers_unpacked.is_empty(),
        "the same layers, unpacked by the first import"
    );
    check_rootfs(&store, work.path(), "from-docker", "example.com/app:v1");

    // Our export, read by skopeo.
    let exported = work.path().join("export.tar");
    store
        .export("default", &["app"], fs::File::create(&exported).unwrap())
        .unwrap();
    let copy = work.path().join("copy");
    run(
        "skopeo",
        &[
            "copy",
            &format!("oci-archive:{}:app", exported.display()),
            &format!("oci:{}:again", copy.display()),
        ],
    );
    assert!(copy.join("index.json").exists());
}
