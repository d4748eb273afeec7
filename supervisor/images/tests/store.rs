//! The image store end to end, as root, on real overlayfs mounts in a temp dir: import, mount and
//! check the rootfs file by file; bad archives refused with the store left as it was; concurrent
//! imports; garbage collection; export; restart.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::*;
use images::{Error, ImageStore, ImportOptions, Platform, PlatformSelector, SnapshotKind};

const NS: &str = "default";

fn base_layer() -> Vec<Entry> {
    vec![
        Entry::Dir("etc/"),
        Entry::File("etc/passwd", b"root:x:0:0::/root:/bin/sh\n".to_vec(), 0o644),
        Entry::File("etc/motd", b"welcome\n".to_vec(), 0o644),
        Entry::Dir("bin/"),
        Entry::File("bin/tool", b"#!/bin/sh\necho tool\n".to_vec(), 0o755),
        Entry::HardLink("bin/hard", "bin/tool"),
        Entry::Dir("usr/"),
        Entry::Dir("usr/share/"),
        Entry::Dir("usr/share/doc/"),
        Entry::File("usr/share/doc/old", b"old doc".to_vec(), 0o644),
        Entry::Dir("home/"),
        Entry::DirOwned("home/user/", 1000, 0o750),
        Entry::Owned("home/user/.profile", b"export X=1\n".to_vec(), 1000, 1000),
    ]
}

fn image_spec() -> ImageSpec {
    ImageSpec::new(vec![
        (base_layer(), Compression::None),
        (
            vec![
                Entry::Whiteout("etc/motd"),
                Entry::Opaque("usr/share/doc"),
                Entry::File("usr/share/doc/new", b"new doc".to_vec(), 0o600),
                Entry::Symlink("bin/link", "tool"),
            ],
            Compression::Gzip,
        ),
        (
            vec![
                Entry::WithXattr("etc/labelled", b"x".to_vec(), "user.origin", b"layer3"),
                // No entry for home/user in this layer: it keeps the base's owner.
                Entry::File("home/user/later", b"later".to_vec(), 0o644),
            ],
            Compression::Zstd,
        ),
    ])
}

struct Fixture {
    dir: tempfile::TempDir,
    store: ImageStore,
}

fn fixture() -> Fixture {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("root")).unwrap();
    Fixture { dir, store }
}

/// An overlay mount that is unmounted even when the test fails.
struct Mounted<'a> {
    store: &'a ImageStore,
    target: std::path::PathBuf,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = self.store.unmount(&self.target);
    }
}

fn mount<'a>(f: &'a Fixture, container: &str, image: &str) -> Mounted<'a> {
    f.store.prepare(NS, container, image).unwrap();
    let target = f.dir.path().join(format!("rootfs-{container}"));
    fs::create_dir(&target).unwrap();
    f.store.mount(NS, container, &target).unwrap();
    Mounted {
        store: &f.store,
        target,
    }
}

#[test]
fn an_imported_image_mounts_as_its_rootfs_file_by_file() {
    let f = fixture();
    let report = f
        .store
        .import(
            NS,
            &oci_archive("example.com/app:1", &image_spec())[..],
            &ImportOptions::default(),
        )
        .unwrap();
    assert_eq!(report.images.len(), 1);
    assert_eq!(report.images[0].name, "example.com/app:1");
    assert_eq!(report.layers_unpacked.len(), 3);

    let images = f.store.list_images(NS).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0].media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(images[0].digest, report.images[0].digest);
    assert!(images[0].size > 0);
    assert!(f.store.list_images("other").unwrap().is_empty());

    let m = mount(&f, "c1", "example.com/app:1");
    let root = &m.target;
    assert_eq!(
        fs::read(root.join("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    assert!(
        !root.join("etc/motd").exists(),
        "the whiteout deletes the lower file"
    );
    let docs: Vec<_> = fs::read_dir(root.join("usr/share/doc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        docs,
        ["new"],
        "the opaque dir hides the lower layer's content"
    );
    assert_eq!(
        fs::metadata(root.join("usr/share/doc/new")).unwrap().mode() & 0o7777,
        0o600
    );
    assert_eq!(
        fs::read_link(root.join("bin/link")).unwrap(),
        Path::new("tool")
    );
    let tool = fs::metadata(root.join("bin/tool")).unwrap();
    let hard = fs::metadata(root.join("bin/hard")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o755);
    assert_eq!(hard.nlink(), 2, "the hard link shares the lower file");
    assert_eq!(
        fs::read(root.join("bin/hard")).unwrap(),
        b"#!/bin/sh\necho tool\n"
    );
    let profile = fs::metadata(root.join("home/user/.profile")).unwrap();
    assert_eq!((profile.uid(), profile.gid()), (1000, 1000));
    assert_eq!(profile.mode() & 0o7777, 0o640);
    assert_eq!(profile.mtime() as u64, MTIME);
    assert_eq!(
        fs::metadata(root.join("etc")).unwrap().mtime() as u64,
        MTIME
    );
    let home = fs::metadata(root.join("home/user")).unwrap();
    assert_eq!((home.uid(), home.mode() & 0o7777), (1000, 0o750));
    assert_eq!(fs::read(root.join("home/user/later")).unwrap(), b"later");
    assert_eq!(
        xattr(&root.join("etc/labelled"), "user.origin").unwrap(),
        b"layer3"
    );

    // Writes land in the container's own snapshot, not in the shared layers.
    fs::write(root.join("etc/written"), vec![0u8; 100_000]).unwrap();
    let snapshots = f.store.list_snapshots().unwrap();
    let active = snapshots.iter().find(|s| s.key == "default/c1").unwrap();
    assert_eq!(
        active.kind,
        SnapshotKind::Active {
            namespace: NS.into(),
            container: "c1".into()
        }
    );
    assert!(f.store.snapshot_usage("default/c1").unwrap().size >= 100_000);
    assert_eq!(
        snapshots
            .iter()
            .filter(|s| s.kind == SnapshotKind::Committed)
            .count(),
        3
    );

    let err = f.store.release(NS, "c1").unwrap_err();
    assert!(matches!(err, Error::SnapshotInUse { .. }), "{err}");
    drop(m);
    f.store.release(NS, "c1").unwrap();
    assert!(f
        .store
        .list_snapshots()
        .unwrap()
        .iter()
        .all(|s| s.kind == SnapshotKind::Committed));

    let inspect = f.store.inspect(NS, "example.com/app:1").unwrap();
    let config = inspect.manifests[0].config.config().clone().unwrap();
    assert_eq!(config.entrypoint().clone().unwrap(), ["/bin/sh", "-c"]);
    assert_eq!(config.cmd().clone().unwrap(), ["echo hello"]);
    assert_eq!(
        config.env().clone().unwrap(),
        ["PATH=/usr/bin:/bin", "GREETING=hi"]
    );
    assert_eq!(config.working_dir().as_deref(), Some("/home/user"));
    assert_eq!(config.user().as_deref(), Some("1000:1000"));
    assert_eq!(inspect.manifests[0].manifest.layers().len(), 3);
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: NUL-terminated strings, a writable buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

/// Imports `archive`, expects it refused, and checks the store's files and records did not change.
#[track_caller]
fn refused(f: &Fixture, archive: &[u8], options: &ImportOptions) -> Error {
    let before = tree(f.store.root());
    let images = f.store.list_images(NS).unwrap();
    let snapshots = f.store.list_snapshots().unwrap();
    let err = f.store.import(NS, archive, options).unwrap_err();
    assert_eq!(
        tree(f.store.root()),
        before,
        "a refused import ({err}) left files behind"
    );
    assert_eq!(f.store.list_images(NS).unwrap(), images);
    assert_eq!(f.store.list_snapshots().unwrap(), snapshots);
    let outside: Vec<_> = fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        ["root"],
        "a refused import ({err}) wrote outside the store root"
    );
    err
}

#[test]
fn bad_archives_are_refused_with_the_store_left_as_it_was() {
    let f = fixture();
    // Something already in the store, which every refused import must leave alone.
    let base = ImageSpec::new(vec![(base_layer(), Compression::None)]);
    f.store
        .import(
            NS,
            &oci_archive("base", &base)[..],
            &ImportOptions::default(),
        )
        .unwrap();
    let defaults = ImportOptions::default();

    // A corrupt blob: its content does not hash to its name.
    let mut layout = Layout::default();
    let manifest = layout.image(&image_spec());
    let (digest, bytes) = layout
        .blobs
        .iter_mut()
        .find(|(_, b)| b.len() > 200)
        .unwrap();
    let digest = digest.clone();
    bytes[100] ^= 0xff;
    let err = refused(
        &f,
        &layout.archive(vec![(Some("bad"), manifest)]),
        &defaults,
    );
    assert!(
        matches!(err, Error::DigestMismatch { ref expected, .. } if expected.to_string() == digest),
        "{err}"
    );

    // A truncated gzip layer whose (truncated) blob matches its descriptor: the stream breaks.
    let tar = layer_tar(&[Entry::File("big", vec![7u8; 200_000], 0o644)]);
    let gz = compress(&tar, Compression::Gzip);
    let err = refused(
        &f,
        &archive_with_layer(
            &tar,
            gz[..gz.len() - 30].to_vec(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        &defaults,
    );
    assert!(matches!(err, Error::LayerCorrupt { .. }), "{err}");
    let zst = compress(&tar, Compression::Zstd);
    let err = refused(
        &f,
        &archive_with_layer(
            &tar,
            zst[..zst.len() / 2].to_vec(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        &defaults,
    );
    assert!(matches!(err, Error::LayerCorrupt { .. }), "{err}");

    // A layer that is not what the config's diff ID says.
    let other = layer_tar(&[Entry::File("other", b"x".to_vec(), 0o644)]);
    let err = refused(
        &f,
        &archive_with_layer(&tar, other, "application/vnd.oci.image.layer.v1.tar"),
        &defaults,
    );
    assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err}");

    // A wrong media type for a layer.
    let err = refused(
        &f,
        &archive_with_layer(
            &tar,
            tar.clone(),
            "application/vnd.oci.image.config.v1+json",
        ),
        &defaults,
    );
    assert!(
        matches!(err, Error::WrongMediaType { what: "layer", .. }),
        "{err}"
    );

    // A manifest naming a blob the archive lacks.
    let mut layout = Layout::default();
    let manifest = layout.image(&image_spec());
    let stored: Vec<String> = f
        .store
        .list_content()
        .unwrap()
        .iter()
        .map(|c| c.digest.to_string())
        .collect();
    let missing = layout
        .blobs
        .keys()
        .find(|d| **d != manifest.digest().to_string() && !stored.contains(d))
        .unwrap()
        .clone();
    layout.blobs.remove(&missing);
    let err = refused(
        &f,
        &layout.archive(vec![(Some("bad"), manifest)]),
        &defaults,
    );
    assert!(
        matches!(err, Error::MissingBlob { ref digest, .. } if digest.to_string() == missing),
        "{err}"
    );

    // Path escapes, and a symlink followed by an entry written through it. The first layer is
    // fine and is unpacked first: it must not stay committed either.
    for (bad, entry) in [
        (Entry::RawFile("../escaped"), "../escaped"),
        (Entry::RawFile("/escaped"), "/escaped"),
        (Entry::Symlink("up", "../../.."), "up"),
    ] {
        let spec = ImageSpec::new(vec![
            (
                vec![Entry::File("fine", b"fine".to_vec(), 0o644)],
                Compression::None,
            ),
            (vec![bad], Compression::Gzip),
        ]);
        let err = refused(&f, &oci_archive("bad", &spec), &defaults);
        assert!(
            matches!(err, Error::UnsafeEntry { entry: ref e, .. } if e == entry),
            "{err}"
        );
    }
    let spec = ImageSpec::new(vec![(
        vec![
            Entry::Symlink("etc", "/etc"),
            Entry::File("etc/escaped", b"x".to_vec(), 0o644),
        ],
        Compression::None,
    )]);
    let err = refused(&f, &oci_archive("bad", &spec), &defaults);
    assert!(
        matches!(err, Error::UnsafeEntry { entry: ref e, .. } if e == "etc/escaped"),
        "{err}"
    );
    assert!(!Path::new("/etc/escaped").exists());

    // An index with no manifest for the wanted platform.
    let mut layout = Layout::default();
    let s390 = ImageSpec {
        arch: "s390x",
        ..image_spec()
    };
    let m = layout.image(&s390);
    let index = layout.index(vec![(m, &s390)]);
    let err = refused(&f, &layout.archive(vec![(Some("bad"), index)]), &defaults);
    assert!(
        matches!(err, Error::NoMatchingPlatform { ref available, .. } if available == "linux/s390x"),
        "{err}"
    );

    // No name in the archive, and none given; a given name for two images.
    let mut layout = Layout::default();
    let m = layout.image(&image_spec());
    let err = refused(&f, &layout.archive(vec![(None, m)]), &defaults);
    assert!(matches!(err, Error::Unnamed { .. }), "{err}");
    let mut layout = Layout::default();
    let a = layout.image(&base);
    let b = layout.image(&image_spec());
    let named = ImportOptions {
        name: Some("one".into()),
        ..Default::default()
    };
    let err = refused(
        &f,
        &layout.archive(vec![(Some("a"), a), (Some("b"), b)]),
        &named,
    );
    assert!(matches!(err, Error::AmbiguousName { count: 2 }), "{err}");

    // Not an image archive at all.
    let err = refused(&f, &tar_of(&[("hello".into(), b"x".to_vec())]), &defaults);
    assert!(matches!(err, Error::InvalidArchive(_)), "{err}");

    assert_eq!(f.store.list_images(NS).unwrap().len(), 1);
}

/// An archive with one layer given as its uncompressed tar (for the diff ID) and its blob.
fn archive_with_layer(tar: &[u8], blob: Vec<u8>, media_type: &str) -> Vec<u8> {
    use oci_spec::image::*;
    let mut layout = Layout::default();
    let mut layer = layout.add(blob);
    layer.set_media_type(MediaType::from(media_type));
    let config = ImageConfigurationBuilder::default()
        .os(Os::Linux)
        .architecture(Arch::default())
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![sha(tar)])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut config = layout.add(config.to_string().unwrap().into_bytes());
    config.set_media_type(MediaType::ImageConfig);
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .config(config)
        .layers(vec![layer])
        .build()
        .unwrap();
    let mut manifest = layout.add(manifest.to_string().unwrap().into_bytes());
    manifest.set_media_type(MediaType::ImageManifest);
    layout.archive(vec![(Some("bad"), manifest)])
}

#[test]
fn a_full_disk_during_unpack_is_a_clear_error_and_leaves_nothing() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    fs::create_dir(&small).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &small,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=4m"),
    )
    .unwrap();
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount(self.0);
        }
    }
    let _unmount = Unmount(&small);
    let root = small.join("root");
    let store = ImageStore::open(&root).unwrap();
    // 8 MiB of zeros compress to a few KiB: the blob fits, the unpacked file does not.
    let spec = ImageSpec::new(vec![(
        vec![Entry::File("big", vec![0u8; 8 << 20], 0o644)],
        Compression::Gzip,
    )]);
    let archive = oci_archive("big", &spec);
    let before = tree(&root);
    let err = store
        .import(NS, &archive[..], &ImportOptions::default())
        .unwrap_err();
    match &err {
        Error::UnpackIo { entry, source, .. } => {
            assert_eq!(entry, "big");
            assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{err}");
        }
        other => panic!("expected a full disk, got {other}"),
    }
    assert_eq!(tree(&root), before);
    assert!(store.list_images(NS).unwrap().is_empty());
    assert!(store.list_snapshots().unwrap().is_empty());
}

#[test]
fn twenty_concurrent_imports_sharing_a_base_layer_unpack_it_once() {
    let f = fixture();
    let archives: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            let spec = ImageSpec::new(vec![
                (base_layer(), Compression::Gzip),
                (
                    vec![Entry::File("id", format!("{i}").into_bytes(), 0o644)],
                    Compression::None,
                ),
            ]);
            oci_archive(&format!("app:{i}"), &spec)
        })
        .collect();
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = archives
            .iter()
            .map(|a| {
                s.spawn(|| {
                    f.store
                        .import(NS, &a[..], &ImportOptions::default())
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unpacked: BTreeMap<String, usize> = BTreeMap::new();
    for r in &reports {
        for chain in &r.layers_unpacked {
            *unpacked.entry(chain.to_string()).or_default() += 1;
        }
    }
    let base_chain = sha(&layer_tar(&base_layer()));
    assert_eq!(unpacked.get(&base_chain), Some(&1), "{unpacked:?}");
    assert_eq!(unpacked.len(), 21, "the base and each image's own layer");
    assert!(unpacked.values().all(|n| *n == 1));
    assert_eq!(f.store.list_images(NS).unwrap().len(), 20);
    let base_blobs = reports.iter().map(|r| r.blobs_written).sum::<usize>();
    assert_eq!(
        f.store.list_content().unwrap().len(),
        1 + 20 * 3,
        "written {base_blobs}"
    );
}

#[test]
fn gc_removes_what_nothing_references_but_never_a_containers_snapshot() {
    let f = fixture();
    f.store
        .import(
            NS,
            &oci_archive("app", &image_spec())[..],
            &ImportOptions::default(),
        )
        .unwrap();
    let m = mount(&f, "c1", "app");
    f.store.remove_image(NS, "app").unwrap();
    let report = f.store.prune().unwrap();
    assert_eq!(report.blobs_removed.len(), 5, "layers, config and manifest");
    assert!(
        report.snapshots_removed.is_empty(),
        "the container still uses them"
    );
    assert_eq!(
        fs::read(m.target.join("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    let err = f
        .store
        .remove_snapshot(
            &f.store
                .list_snapshots()
                .unwrap()
                .iter()
                .find(|s| s.kind == SnapshotKind::Committed && s.parent.is_none())
                .unwrap()
                .key,
        )
        .unwrap_err();
    assert!(matches!(err, Error::SnapshotInUse { .. }), "{err}");
    drop(m);
    f.store.release(NS, "c1").unwrap();
    let report = f.store.prune().unwrap();
    assert_eq!(report.snapshots_removed.len(), 3);
    assert!(f.store.list_snapshots().unwrap().is_empty());
    assert!(f.store.list_content().unwrap().is_empty());
    assert!(fs::read_dir(f.store.root().join("snapshots/committed"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn images_and_snapshots_survive_a_restart_and_a_removed_layer_is_unpacked_again() {
    let f = fixture();
    let root = f.store.root().to_path_buf();
    f.store
        .import(
            NS,
            &oci_archive("app", &image_spec())[..],
            &ImportOptions::default(),
        )
        .unwrap();
    assert!(matches!(ImageStore::open(&root), Err(Error::Locked { .. })));
    drop(f.store);
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(store.list_images(NS).unwrap()[0].name, "app");
    assert_eq!(store.list_snapshots().unwrap().len(), 3);
    let top = store.list_snapshots().unwrap().into_iter().find(|s| {
        !store
            .list_snapshots()
            .unwrap()
            .iter()
            .any(|o| o.parent.as_deref() == Some(&s.key))
    });
    store.remove_snapshot(&top.unwrap().key).unwrap();
    let f = Fixture { dir: f.dir, store };
    let m = mount(&f, "c1", "app");
    assert_eq!(
        xattr(&m.target.join("etc/labelled"), "user.origin").unwrap(),
        b"layer3"
    );
}

#[test]
fn multi_platform_indexes_select_the_host_a_given_platform_or_all() {
    let f = fixture();
    let host = image_spec();
    let other_arch = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let other = ImageSpec {
        layers: vec![(
            vec![Entry::File("arch", other_arch.as_bytes().to_vec(), 0o644)],
            Compression::Gzip,
        )],
        arch: other_arch,
        ..host.clone()
    };
    let mut layout = Layout::default();
    let a = layout.image(&host);
    let b = layout.image(&other);
    let index = layout.index(vec![(a, &host), (b, &other)]);
    let archive = layout.archive(vec![(Some("multi"), index)]);

    let r = f
        .store
        .import(NS, &archive[..], &ImportOptions::default())
        .unwrap();
    assert_eq!(r.layers_unpacked.len(), 3, "only the host's layers");
    let listed = &f.store.list_images(NS).unwrap()[0];
    assert_eq!(listed.platforms, [format!("linux/{}", host_arch())]);
    assert_eq!(listed.media_type, "application/vnd.oci.image.index.v1+json");

    let only = ImportOptions {
        name: Some("other".into()),
        platform: PlatformSelector::Only(
            format!("linux/{other_arch}").parse::<Platform>().unwrap(),
        ),
        ..Default::default()
    };
    let r = f.store.import(NS, &archive[..], &only).unwrap();
    assert_eq!(r.layers_unpacked.len(), 1);
    let all = ImportOptions {
        name: Some("all".into()),
        platform: PlatformSelector::All,
        ..Default::default()
    };
    let r = f.store.import(NS, &archive[..], &all).unwrap();
    assert!(
        r.layers_unpacked.is_empty(),
        "both platforms' layers are committed already"
    );
    let all = f
        .store
        .list_images(NS)
        .unwrap()
        .into_iter()
        .find(|i| i.name == "all")
        .unwrap();
    assert_eq!(all.platforms.len(), 2);
}

#[test]
fn docker_save_archives_import_with_their_repo_tags() {
    let f = fixture();
    let layers = [
        layer_tar(&base_layer()),
        layer_tar(&[Entry::File("top", b"top".to_vec(), 0o644)]),
    ];
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_name = format!("{}.json", &sha(config.as_bytes())[7..]);
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["docker.io/library/app:latest", "app:v1"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
    }])
    .to_string();
    let archive = tar_of(&[
        ("aaa/VERSION".into(), b"1.0".to_vec()),
        ("aaa/layer.tar".into(), layers[0].clone()),
        (
            "bbb/layer.tar".into(),
            compress(&layers[1], Compression::Gzip),
        ),
        (config_name, config.into_bytes()),
        ("manifest.json".into(), manifest.into_bytes()),
        ("repositories".into(), b"{}".to_vec()),
    ]);
    let r = f
        .store
        .import(NS, &archive[..], &ImportOptions::default())
        .unwrap();
    let names: Vec<_> = r.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["docker.io/library/app:latest", "app:v1"]);
    assert_eq!(r.images[0].digest, r.images[1].digest);
    // The side file (VERSION) was collected again; the manifest written for the image stays.
    assert_eq!(
        f.store.list_content().unwrap().len(),
        4,
        "2 layers, config, manifest"
    );
    let m = mount(&f, "c1", "app:v1");
    assert_eq!(fs::read(m.target.join("top")).unwrap(), b"top");
    assert_eq!(fs::read(m.target.join("etc/motd")).unwrap(), b"welcome\n");
}

#[test]
fn an_export_imports_again_to_the_same_digests() {
    let f = fixture();
    let r = f
        .store
        .import(
            NS,
            &oci_archive("app", &image_spec())[..],
            &ImportOptions::default(),
        )
        .unwrap();
    let mut out = Vec::new();
    f.store.export(NS, &["app"], &mut out).unwrap();
    let other = ImageStore::open(f.dir.path().join("other")).unwrap();
    let again = other
        .import("ns2", &out[..], &ImportOptions::default())
        .unwrap();
    assert_eq!(again.images, r.images);
    assert_eq!(
        other.list_content().unwrap().len(),
        f.store.list_content().unwrap().len()
    );
    let err = f
        .store
        .export(NS, &["missing"], &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, Error::ImageNotFound { .. }), "{err}");
}

#[test]
fn a_devnode_in_a_layer_is_made_by_root() {
    let f = fixture();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(0);
    b.append_data(&mut h, "dev/null", &[][..]).unwrap();
    let tar = b.into_inner().unwrap();
    let archive = archive_with_layer(&tar, tar.clone(), "application/vnd.oci.image.layer.v1.tar");
    f.store
        .import(NS, &archive[..], &ImportOptions::default())
        .unwrap();
    let m = mount(&f, "c1", "bad");
    let meta = fs::symlink_metadata(m.target.join("dev/null")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), nix::sys::stat::makedev(1, 3));
}
