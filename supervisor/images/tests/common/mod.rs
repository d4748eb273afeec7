//! Test helpers: a writer of OCI image layouts and `docker save` archives from entry lists, and
//! a snapshot of a store root's files, to check that a refused import left nothing behind.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use oci_spec::image::{
    Arch, Config, ConfigBuilder, Descriptor, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use sha2::{Digest as _, Sha256};

/// One tar entry of a layer.
#[derive(Clone)]
pub enum Entry {
    Dir(&'static str),
    /// path, uid (and gid), mode
    DirOwned(&'static str, u64, u32),
    /// path, content, mode
    File(&'static str, Vec<u8>, u32),
    /// path, content, uid, gid
    Owned(&'static str, Vec<u8>, u64, u64),
    /// path, content, xattr name, xattr value
    WithXattr(&'static str, Vec<u8>, &'static str, &'static [u8]),
    Symlink(&'static str, &'static str),
    HardLink(&'static str, &'static str),
    /// Deletes this path of a lower layer (`dir/.wh.name`).
    Whiteout(&'static str),
    /// Hides a lower layer's content of this directory (`dir/.wh..wh..opq`).
    Opaque(&'static str),
    /// A raw GNU header path, for the ones the tar builder refuses (`..`, absolute).
    RawFile(&'static str),
}

#[derive(Clone, Copy)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub const MTIME: u64 = 1_600_000_000;

/// The uncompressed tar of a layer.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, size: usize, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h
    };
    for entry in entries {
        match entry {
            Entry::Dir(p) => {
                let mut h = header(tar::EntryType::Directory, 0, 0o755);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            Entry::DirOwned(p, id, mode) => {
                let mut h = header(tar::EntryType::Directory, 0, *mode);
                h.set_uid(*id);
                h.set_gid(*id);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            Entry::File(p, data, mode) => {
                let mut h = header(tar::EntryType::Regular, data.len(), *mode);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            Entry::Owned(p, data, uid, gid) => {
                let mut h = header(tar::EntryType::Regular, data.len(), 0o640);
                h.set_uid(*uid);
                h.set_gid(*gid);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            Entry::WithXattr(p, data, name, value) => {
                let key = format!("SCHILY.xattr.{name}");
                b.append_pax_extensions([(key.as_str(), *value)]).unwrap();
                let mut h = header(tar::EntryType::Regular, data.len(), 0o644);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            Entry::Symlink(p, target) => {
                let mut h = header(tar::EntryType::Symlink, 0, 0o777);
                b.append_link(&mut h, p, target).unwrap();
            }
            Entry::HardLink(p, target) => {
                let mut h = header(tar::EntryType::Link, 0, 0o644);
                b.append_link(&mut h, p, target).unwrap();
            }
            Entry::Whiteout(p) => {
                let path = Path::new(p);
                let name = format!(".wh.{}", path.file_name().unwrap().to_str().unwrap());
                let wh = path.parent().unwrap().join(name);
                let mut h = header(tar::EntryType::Regular, 0, 0o644);
                b.append_data(&mut h, wh, &[][..]).unwrap();
            }
            Entry::Opaque(dir) => {
                let mut h = header(tar::EntryType::Regular, 0, 0o644);
                b.append_data(&mut h, format!("{dir}/.wh..wh..opq"), &[][..])
                    .unwrap();
            }
            Entry::RawFile(p) => {
                let mut h = header(tar::EntryType::Regular, 1, 0o644);
                h.as_gnu_mut().unwrap().name[..p.len()].copy_from_slice(p.as_bytes());
                h.set_cksum();
                b.append(&h, &b"x"[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).unwrap();
            gz.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(tar, 3).unwrap(),
    }
}

pub fn sha(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// An image to write: layers bottom first, its platform, and its config's process fields.
#[derive(Clone)]
pub struct ImageSpec {
    pub layers: Vec<(Vec<Entry>, Compression)>,
    pub os: &'static str,
    pub arch: &'static str,
    /// The image config's `config`; `None`: `/bin/sh -c "echo hello"` as user 1000 in
    /// `/home/user`, with `GREETING=hi`.
    pub config: Option<Config>,
}

impl ImageSpec {
    pub fn new(layers: Vec<(Vec<Entry>, Compression)>) -> Self {
        Self {
            layers,
            os: "linux",
            arch: host_arch(),
            config: None,
        }
    }
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The blobs of an OCI layout being written, by digest.
#[derive(Default)]
pub struct Layout {
    pub blobs: BTreeMap<String, Vec<u8>>,
}

impl Layout {
    pub fn add(&mut self, bytes: Vec<u8>) -> Descriptor {
        let digest = sha(&bytes);
        let d = Descriptor::new(
            MediaType::Other(String::new()),
            bytes.len() as u64,
            digest.parse::<oci_spec::image::Digest>().unwrap(),
        );
        self.blobs.insert(digest, bytes);
        d
    }

    fn typed(&mut self, media_type: MediaType, bytes: Vec<u8>) -> Descriptor {
        let mut d = self.add(bytes);
        d.set_media_type(media_type);
        d
    }

    /// Writes an image's layers, config and manifest; returns the manifest's descriptor.
    pub fn image(&mut self, spec: &ImageSpec) -> Descriptor {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (entries, c) in &spec.layers {
            let tar = layer_tar(entries);
            diff_ids.push(sha(&tar));
            let media_type = match c {
                Compression::None => MediaType::ImageLayer,
                Compression::Gzip => MediaType::ImageLayerGzip,
                Compression::Zstd => MediaType::ImageLayerZstd,
            };
            layers.push(self.typed(media_type, compress(&tar, *c)));
        }
        let config = ImageConfigurationBuilder::default()
            .os(Os::from(spec.os))
            .architecture(Arch::from(spec.arch))
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(diff_ids)
                    .build()
                    .unwrap(),
            )
            .config(spec.config.clone().unwrap_or_else(|| {
                ConfigBuilder::default()
                    .entrypoint(vec!["/bin/sh".to_string(), "-c".to_string()])
                    .cmd(vec!["echo hello".to_string()])
                    .env(vec![
                        "PATH=/usr/bin:/bin".to_string(),
                        "GREETING=hi".to_string(),
                    ])
                    .working_dir("/home/user")
                    .user("1000:1000")
                    .build()
                    .unwrap()
            }))
            .build()
            .unwrap();
        let config = self.typed(
            MediaType::ImageConfig,
            config.to_string().unwrap().into_bytes(),
        );
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers)
            .build()
            .unwrap();
        self.typed(
            MediaType::ImageManifest,
            manifest.to_string().unwrap().into_bytes(),
        )
    }

    /// An image index over manifests, each tagged with its image's platform.
    pub fn index(&mut self, manifests: Vec<(Descriptor, &ImageSpec)>) -> Descriptor {
        let manifests: Vec<Descriptor> = manifests
            .into_iter()
            .map(|(mut d, spec)| {
                d.set_platform(Some(
                    PlatformBuilder::default()
                        .os(Os::from(spec.os))
                        .architecture(Arch::from(spec.arch))
                        .build()
                        .unwrap(),
                ));
                d
            })
            .collect();
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .unwrap();
        self.typed(
            MediaType::ImageIndex,
            index.to_string().unwrap().into_bytes(),
        )
    }

    /// The layout as a tar: `oci-layout`, `index.json` naming `roots`, `blobs/sha256/*`.
    pub fn archive(&self, roots: Vec<(Option<&str>, Descriptor)>) -> Vec<u8> {
        let manifests: Vec<Descriptor> = roots
            .into_iter()
            .map(|(name, mut d)| {
                if let Some(name) = name {
                    d.set_annotations(Some(HashMap::from([(
                        "org.opencontainers.image.ref.name".to_string(),
                        name.to_string(),
                    )])));
                }
                d
            })
            .collect();
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .manifests(manifests)
            .build()
            .unwrap()
            .to_string()
            .unwrap();
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".into(), index.into_bytes()),
        ];
        for (digest, bytes) in &self.blobs {
            let hex = digest.strip_prefix("sha256:").unwrap();
            files.push((format!("blobs/sha256/{hex}"), bytes.clone()));
        }
        tar_of(&files)
    }
}

/// A tar of plain files.
pub fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A one-image OCI layout archive named `name`.
pub fn oci_archive(name: &str, spec: &ImageSpec) -> Vec<u8> {
    let mut layout = Layout::default();
    let manifest = layout.image(spec);
    layout.archive(vec![(Some(name), manifest)])
}

/// Every path under `root` with its size and kind, except the database and lock file (whose
/// bytes change with every read transaction), for before/after comparisons.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out.remove("metadata.redb");
    out.remove("lock");
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if meta.is_dir() {
            out.insert(rel, "dir".into());
            walk(root, &path, out);
        } else {
            out.insert(rel, format!("{:?} {}", meta.file_type(), meta.len()));
        }
    }
}

/// Fails loudly when not root: these tests mount overlays and chown files.
pub fn require_root() {
    assert!(
        nix_is_root(),
        "the image store tests mount overlayfs and chown files: run them as root"
    );
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
