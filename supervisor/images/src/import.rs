//! Importing an image archive: an OCI image layout (`index.json`) or a `docker save` archive
//! (`manifest.json`), plain or gzip/zstd-compressed.
//!
//! In order, each step only after the one before succeeded:
//! 1. **Read** the archive in one pass: every file under `blobs/` goes into the content store,
//!    verified against the digest its name announces; other files (a `docker save`'s
//!    `<id>/layer.tar`, its config) go in under the digest they hash to; `index.json` and
//!    `manifest.json` are kept in memory.
//! 2. **Name** the images: from `index.json`'s `io.containerd.image.name` or
//!    `org.opencontainers.image.ref.name` annotations, or `manifest.json`'s `RepoTags`, or the
//!    given name. A `docker save` image gets an OCI manifest written for it.
//! 3. **Resolve** each image: the index's manifests for the wanted platform, their configs and
//!    layers, each checked for presence, size and media type.
//! 4. **Unpack** every layer not yet committed ([`crate::snapshot`]).
//! 5. **Record** all images of the archive in one transaction.
//!
//! Everything written is leased until then. At the end, success or not, what this import wrote
//! and nothing references (a failed import's blobs and layers, a `docker save`'s side files) is
//! collected again, so a refused archive leaves the store as it was.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType,
};
use serde::Deserialize;

use crate::content::Ingested;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::gc::{self, Scope};
use crate::lease::Lease;
use crate::metadata::{now, ImageRecord, ManifestRecord, Target};
use crate::platform::{Platform, PlatformSelector};
use crate::snapshot::{Committed, LayerToCommit};
use crate::unpack::decompress;
use crate::{validate_name, ImageStore};

/// `index.json`, `manifest.json`, manifests and configs are small; refuse to buffer a huge one.
pub(crate) const MAX_JSON: u64 = 4 << 20;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_INDEX: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYERS: [&str; 2] = [
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];
const NAME_ANNOTATIONS: [&str; 2] = [
    "io.containerd.image.name",
    "org.opencontainers.image.ref.name",
];

/// How to import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The name for the archive's one image, instead of (or where there is no) name inside it.
    pub name: Option<String>,
    /// Which platforms of a multi-platform index to take.
    pub platform: PlatformSelector,
    /// Labels set on every imported image.
    pub labels: BTreeMap<String, String>,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub images: Vec<ImportedImage>,
    /// Blobs this import wrote (the others were in the store already).
    pub blobs_written: usize,
    /// Chain IDs of the layers this import unpacked (the others were committed already).
    pub layers_unpacked: Vec<Digest>,
}

/// One image an import recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedImage {
    pub name: String,
    /// The digest of the index or manifest the name points at.
    pub digest: Digest,
}

/// What this import wrote, to collect again if nothing ends up referencing it.
#[derive(Default)]
struct Written {
    blobs: Vec<Digest>,
    snapshots: Vec<Digest>,
}

pub(crate) fn import(
    store: &ImageStore,
    namespace: &str,
    reader: impl Read,
    options: &ImportOptions,
) -> Result<ImportReport> {
    validate_name("namespace", namespace)?;
    if let Some(name) = &options.name {
        validate_name("image name", name)?;
    }
    let mut written = Written::default();
    let mut report = ImportReport::default();
    let result = {
        let mut lease = store.leases.begin();
        import_leased(
            store,
            namespace,
            reader,
            options,
            &mut lease,
            &mut written,
            &mut report,
        )
        // The lease ends here: what the records now reference stays, the rest is collectable.
    };
    let scope = Scope::Only {
        blobs: &written.blobs,
        snapshots: &written.snapshots,
    };
    match (result, gc::collect(store, scope)) {
        (Ok(()), Ok(_)) => Ok(report),
        (Ok(()), Err(e)) => {
            log::warn!("import into {namespace}: removing unreferenced side files: {e}");
            Ok(report)
        }
        (Err(e), Ok(_)) => Err(e),
        (Err(e), Err(cleanup)) => {
            log::error!("import into {namespace} failed ({e}), and removing what it wrote failed too: {cleanup}");
            Err(e)
        }
    }
}

fn import_leased(
    store: &ImageStore,
    namespace: &str,
    reader: impl Read,
    options: &ImportOptions,
    lease: &mut Lease<'_>,
    written: &mut Written,
    report: &mut ImportReport,
) -> Result<()> {
    let archive = read_archive(store, reader, lease, written)?;
    let roots = if let Some(index) = &archive.index_json {
        oci_roots(index)?
    } else if let Some(manifests) = &archive.manifest_json {
        docker_roots(store, &archive, manifests, lease, written)?
    } else {
        return Err(Error::InvalidArchive(
            "neither index.json (OCI image layout) nor manifest.json (docker save) found".into(),
        ));
    };
    let roots = name_roots(roots, options.name.as_deref())?;

    let mut records = Vec::new();
    for (name, descriptor) in roots {
        let resolved = resolve(store, &name, &descriptor, &options.platform, lease)?;
        let mut manifests = Vec::new();
        for m in &resolved.manifests {
            let top = unpack(store, m, lease, written, report)?;
            manifests.push(ManifestRecord {
                digest: m.digest.clone(),
                platform: m.platform.as_ref().map(Platform::to_string),
                config: m.config.clone(),
                top_snapshot: top,
            });
        }
        report.images.push(ImportedImage {
            name: name.clone(),
            digest: resolved.target.digest.clone(),
        });
        records.push(ImageRecord {
            name,
            target: resolved.target,
            created: now(),
            labels: options.labels.clone(),
            manifests,
            blobs: resolved.blobs,
        });
    }
    report.blobs_written = written.blobs.len();
    store.meta.put_images(namespace, &records)
}

/// Step 1's result.
struct Archive {
    /// Archive path → the blob it was stored as.
    files: HashMap<PathBuf, (Digest, u64)>,
    /// Archive path → symlink target (a `docker save` links repeated layers).
    links: HashMap<PathBuf, PathBuf>,
    index_json: Option<Vec<u8>>,
    manifest_json: Option<Vec<u8>>,
}

impl Archive {
    /// The blob stored for an archive path, following up to a few symlinks.
    fn blob(&self, path: &str) -> Result<(Digest, u64)> {
        let mut path = archive_path(Path::new(path))?;
        for _ in 0..8 {
            if let Some(found) = self.files.get(&path) {
                return Ok(found.clone());
            }
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        Err(Error::InvalidArchive(format!(
            "manifest.json names {}, which is not a file in the archive",
            path.display()
        )))
    }
}

fn read_archive(
    store: &ImageStore,
    reader: impl Read,
    lease: &mut Lease<'_>,
    written: &mut Written,
) -> Result<Archive> {
    let bad = |e: io::Error| Error::InvalidArchive(e.to_string());
    let mut tar = tar::Archive::new(decompress(reader).map_err(bad)?);
    let mut archive = Archive {
        files: HashMap::new(),
        links: HashMap::new(),
        index_json: None,
        manifest_json: None,
    };
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = archive_path(&entry.path().map_err(bad)?)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry.link_name().map_err(bad)?.unwrap_or_default();
            let joined = path.parent().unwrap_or(Path::new("")).join(target);
            archive.links.insert(path, archive_path(&joined)?);
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let small = |entry: &mut tar::Entry<_>| -> Result<Vec<u8>> {
            if size > MAX_JSON {
                return Err(Error::InvalidArchive(format!(
                    "{} is {size} bytes, over the {MAX_JSON}-byte limit",
                    path.display()
                )));
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(bad)?;
            Ok(bytes)
        };
        match path.to_str() {
            Some("index.json") => archive.index_json = Some(small(&mut entry)?),
            Some("manifest.json") => archive.manifest_json = Some(small(&mut entry)?),
            Some("oci-layout" | "repositories") => {}
            _ => {
                let (digest, how) = if let Ok(rest) = path.strip_prefix("blobs/sha256") {
                    let digest = Digest::from_hex(&rest.to_string_lossy()).map_err(|_| {
                        Error::InvalidArchive(format!(
                            "{} is not named by a sha256 digest",
                            path.display()
                        ))
                    })?;
                    let how = store.content.ingest(&mut entry, &digest, size, lease)?;
                    (digest, how)
                } else if path.starts_with("blobs") {
                    return Err(Error::InvalidArchive(format!(
                        "{}: only sha256 blobs are supported",
                        path.display()
                    )));
                } else {
                    let (digest, _, how) = store.content.ingest_unknown(&mut entry, lease)?;
                    (digest, how)
                };
                if how == Ingested::Written {
                    written.blobs.push(digest.clone());
                }
                archive.files.insert(path, (digest, size));
            }
        }
    }
    Ok(archive)
}

/// A path inside the archive, made relative with `.` and `..` resolved (`docker save` links a
/// repeated layer as `<id>/layer.tar -> ../<digest>.tar`); one that climbs out is refused. These
/// paths are only names to look blobs up by, never written to disk.
fn archive_path(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir if out.pop() => {}
            _ => {
                return Err(Error::InvalidArchive(format!(
                    "entry {} leaves the archive",
                    path.display()
                )))
            }
        }
    }
    Ok(out)
}

/// An image found in the archive: its name, if it has one, and its root descriptor.
type Root = (Option<String>, Descriptor);

fn oci_roots(index_json: &[u8]) -> Result<Vec<Root>> {
    let index = ImageIndex::from_reader(index_json)
        .map_err(|e| Error::InvalidArchive(format!("index.json: {e}")))?;
    Ok(index
        .manifests()
        .iter()
        .map(|d| {
            let annotations = d.annotations().clone().unwrap_or_default();
            let name = NAME_ANNOTATIONS
                .iter()
                .find_map(|k| annotations.get(*k).cloned());
            (name, d.clone())
        })
        .collect())
}

/// One image of a `docker save`'s `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Writes an OCI manifest for each `docker save` image, so the rest of the store sees one format.
fn docker_roots(
    store: &ImageStore,
    archive: &Archive,
    manifest_json: &[u8],
    lease: &mut Lease<'_>,
    written: &mut Written,
) -> Result<Vec<Root>> {
    let images: Vec<DockerImage> = serde_json::from_slice(manifest_json)
        .map_err(|e| Error::InvalidArchive(format!("manifest.json: {e}")))?;
    let mut roots = Vec::new();
    for image in images {
        let (config, config_size) = archive.blob(&image.config)?;
        let mut layers = Vec::new();
        for layer in &image.layers {
            let (digest, size) = archive.blob(layer)?;
            let media_type = layer_media_type(store, &digest)?;
            layers.push(Descriptor::new(media_type, size, &digest));
        }
        let manifest: ImageManifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_size,
                &config,
            ))
            .layers(layers)
            .build()
            .expect("every required manifest field is set");
        let bytes = manifest.to_string().expect("a manifest serialises");
        let (digest, size, how) = store.content.ingest_unknown(bytes.as_bytes(), lease)?;
        if how == Ingested::Written {
            written.blobs.push(digest.clone());
        }
        let root = Descriptor::new(MediaType::ImageManifest, size, &digest);
        match image.repo_tags.filter(|t| !t.is_empty()) {
            Some(tags) => roots.extend(tags.into_iter().map(|t| (Some(t), root.clone()))),
            None => roots.push((None, root)),
        }
    }
    Ok(roots)
}

/// A `docker save` layer's media type, from its first bytes (the archive does not say).
fn layer_media_type(store: &ImageStore, digest: &Digest) -> Result<MediaType> {
    let mut magic = [0u8; 4];
    let path = store.content.path(digest);
    let n = store
        .content
        .open_blob(digest)?
        .read(&mut magic)
        .map_err(crate::error::io_err("read", path))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => MediaType::ImageLayerGzip,
        [0x28, 0xb5, 0x2f, 0xfd] => MediaType::ImageLayerZstd,
        _ => MediaType::ImageLayer,
    })
}

/// Applies the given name, or checks every image has one; validates names.
fn name_roots(roots: Vec<Root>, given: Option<&str>) -> Result<Vec<(String, Descriptor)>> {
    if roots.is_empty() {
        return Err(Error::InvalidArchive("the archive lists no image".into()));
    }
    if let Some(name) = given {
        let distinct: BTreeSet<&str> = roots.iter().map(|(_, d)| d.digest().as_ref()).collect();
        if distinct.len() != 1 {
            return Err(Error::AmbiguousName {
                count: distinct.len(),
            });
        }
        return Ok(vec![(name.to_string(), roots[0].1.clone())]);
    }
    roots
        .into_iter()
        .map(|(name, d)| match name {
            Some(name) => {
                validate_name("image name", &name)?;
                Ok((name, d))
            }
            None => Err(Error::Unnamed {
                digest: Digest::try_from(d.digest())?,
            }),
        })
        .collect()
}

/// An image's root, resolved down to the manifests that will be unpacked.
struct Resolved {
    target: Target,
    manifests: Vec<ResolvedManifest>,
    blobs: BTreeSet<Digest>,
}

struct ResolvedManifest {
    digest: Digest,
    platform: Option<Platform>,
    config: Digest,
    /// (layer blob, diff ID), bottom first.
    layers: Vec<(Digest, Digest)>,
}

fn resolve(
    store: &ImageStore,
    name: &str,
    root: &Descriptor,
    selector: &PlatformSelector,
    lease: &mut Lease<'_>,
) -> Result<Resolved> {
    let digest = present(store, root, "index.json", lease)?;
    let mut resolved = Resolved {
        target: Target {
            media_type: root.media_type().to_string(),
            digest: digest.clone(),
            size: root.size(),
        },
        manifests: Vec::new(),
        blobs: BTreeSet::from([digest.clone()]),
    };
    let media_type = root.media_type().to_string();
    if is_index(&media_type) {
        let mut available = Vec::new();
        let mut chosen = Vec::new();
        select(
            store,
            &digest,
            selector,
            lease,
            &mut resolved,
            &mut available,
            &mut chosen,
            0,
        )?;
        if chosen.is_empty() {
            let wanted = match selector {
                PlatformSelector::Host => Platform::host().to_string(),
                PlatformSelector::Only(p) => p.to_string(),
                PlatformSelector::All => "any".to_string(),
            };
            return Err(Error::NoMatchingPlatform {
                image: name.to_string(),
                wanted,
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                },
            });
        }
        for (descriptor, platform, referenced_by) in chosen {
            let m = manifest(
                store,
                &descriptor,
                platform,
                &referenced_by,
                lease,
                &mut resolved.blobs,
            )?;
            resolved.manifests.push(m);
        }
    } else if is_manifest(&media_type) {
        let m = manifest(store, root, None, "index.json", lease, &mut resolved.blobs)?;
        if let PlatformSelector::Only(want) = selector {
            let config = read_json::<ImageConfiguration>(store, &m.config, "image config")?;
            let have = Platform {
                os: config.os().to_string(),
                architecture: config.architecture().to_string(),
                variant: config.variant().clone(),
            };
            if want.os != have.os
                || want.architecture != have.architecture
                || (want.variant.is_some() && want.variant != have.variant)
            {
                return Err(Error::NoMatchingPlatform {
                    image: name.to_string(),
                    wanted: want.to_string(),
                    available: have.to_string(),
                });
            }
        }
        resolved.manifests.push(m);
    } else {
        return Err(Error::WrongMediaType {
            what: "image",
            digest,
            media_type,
            expected: "an image index or manifest",
        });
    }
    Ok(resolved)
}

/// Walks an index (and indexes nested in it), collecting the manifests the selector takes.
#[allow(clippy::too_many_arguments)]
fn select(
    store: &ImageStore,

    index_digest: &Digest,
    selector: &PlatformSelector,
    lease: &mut Lease<'_>,
    resolved: &mut Resolved,
    available: &mut Vec<String>,
    chosen: &mut Vec<(Descriptor, Option<Platform>, String)>,
    depth: usize,
) -> Result<()> {
    if depth > 4 {
        return Err(Error::Malformed {
            what: "image index",
            digest: index_digest.clone(),
            reason: "indexes nested too deep".into(),
        });
    }
    let index: ImageIndex = read_json(store, index_digest, "image index")?;
    let referenced_by = format!("index {index_digest}");
    for d in index.manifests() {
        let media_type = d.media_type().to_string();
        if is_index(&media_type) {
            let nested = present(store, d, &referenced_by, lease)?;
            resolved.blobs.insert(nested.clone());
            select(
                store,
                &nested,
                selector,
                lease,
                resolved,
                available,
                chosen,
                depth + 1,
            )?;
            continue;
        }
        if !is_manifest(&media_type) {
            continue;
        }
        let Some(platform) = d.platform() else {
            continue;
        };
        let p = Platform::from_oci(platform);
        if p.os == "unknown" || p.architecture == "unknown" {
            continue; // attestations and other non-runnable manifests
        }
        available.push(p.to_string());
        let take = match selector {
            PlatformSelector::All => true,
            PlatformSelector::Host => chosen.is_empty() && Platform::host().matches(platform),
            PlatformSelector::Only(want) => chosen.is_empty() && want.matches(platform),
        };
        if take {
            chosen.push((d.clone(), Some(p), referenced_by.clone()));
        }
    }
    Ok(())
}

/// Checks a manifest, its config and layers; adds their digests to `blobs`.
fn manifest(
    store: &ImageStore,
    descriptor: &Descriptor,
    platform: Option<Platform>,
    referenced_by: &str,
    lease: &mut Lease<'_>,
    blobs: &mut BTreeSet<Digest>,
) -> Result<ResolvedManifest> {
    let digest = present(store, descriptor, referenced_by, lease)?;
    blobs.insert(digest.clone());
    let manifest: ImageManifest = read_json(store, &digest, "image manifest")?;
    let by = format!("manifest {digest}");
    let config_media_type = manifest.config().media_type().to_string();
    let config = present(store, manifest.config(), &by, lease)?;
    if config_media_type != MediaType::ImageConfig.to_string() && config_media_type != DOCKER_CONFIG
    {
        return Err(Error::WrongMediaType {
            what: "config",
            digest: config,
            media_type: config_media_type,
            expected: "an image config (application/vnd.oci.image.config.v1+json)",
        });
    }
    blobs.insert(config.clone());
    let image_config: ImageConfiguration = read_json(store, &config, "image config")?;
    let diff_ids = image_config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::Malformed {
            what: "image config",
            digest: config,
            reason: format!(
                "it lists {} diff IDs for the manifest's {} layers",
                diff_ids.len(),
                manifest.layers().len()
            ),
        });
    }
    let mut layers = Vec::new();
    for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let layer_digest = present(store, layer, &by, lease)?;
        if !is_layer(layer.media_type().as_ref()) {
            return Err(Error::WrongMediaType {
                what: "layer",
                digest: layer_digest,
                media_type: layer.media_type().to_string(),
                expected: "a layer (application/vnd.oci.image.layer.v1.tar[+gzip|+zstd])",
            });
        }
        let diff_id: Digest = diff_id.parse().map_err(|_| Error::Malformed {
            what: "image config",
            digest: config.clone(),
            reason: format!("diff ID {diff_id:?} is not a sha256 digest"),
        })?;
        blobs.insert(layer_digest.clone());
        layers.push((layer_digest, diff_id));
    }
    Ok(ResolvedManifest {
        digest,
        platform,
        config,
        layers,
    })
}

/// Leases a referenced blob and checks the store has it, with the announced size.
fn present(
    store: &ImageStore,
    descriptor: &Descriptor,
    referenced_by: &str,
    lease: &mut Lease<'_>,
) -> Result<Digest> {
    let digest = Digest::try_from(descriptor.digest())?;
    lease.blob(&digest);
    match store.content.size(&digest)? {
        None => Err(Error::MissingBlob {
            digest,
            referenced_by: referenced_by.to_string(),
        }),
        Some(actual) if actual != descriptor.size() => Err(Error::SizeMismatch {
            digest,
            expected: descriptor.size(),
            actual,
        }),
        Some(_) => Ok(digest),
    }
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    store: &ImageStore,
    digest: &Digest,
    what: &'static str,
) -> Result<T> {
    let bytes = store.content.read(digest, MAX_JSON, what)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
        what,
        digest: digest.clone(),
        reason: e.to_string(),
    })
}

/// Commits a manifest's layers bottom up; returns the top chain ID.
pub(crate) fn unpack_layers(
    store: &ImageStore,
    layers: &[(Digest, Digest)],
    lease: &mut Lease<'_>,
    mut on_unpacked: impl FnMut(&Digest),
) -> Result<Option<Digest>> {
    let mut parent: Option<Digest> = None;
    for (blob, diff_id) in layers {
        let chain_id = Digest::chain(parent.as_ref(), diff_id);
        lease.snapshot(&chain_id);
        let layer = LayerToCommit {
            blob,
            diff_id,
            parent: parent.as_ref(),
            chain_id: &chain_id,
        };
        if store
            .snapshots
            .commit_layer(&store.meta, &store.content, layer)?
            == Committed::Unpacked
        {
            on_unpacked(&chain_id);
        }
        parent = Some(chain_id);
    }
    Ok(parent)
}

fn unpack(
    store: &ImageStore,
    manifest: &ResolvedManifest,
    lease: &mut Lease<'_>,
    written: &mut Written,
    report: &mut ImportReport,
) -> Result<Option<Digest>> {
    unpack_layers(store, &manifest.layers, lease, |chain_id| {
        written.snapshots.push(chain_id.clone());
        report.layers_unpacked.push(chain_id.clone());
    })
}

fn is_index(media_type: &str) -> bool {
    media_type == MediaType::ImageIndex.to_string() || media_type == DOCKER_INDEX
}

fn is_manifest(media_type: &str) -> bool {
    media_type == MediaType::ImageManifest.to_string() || media_type == DOCKER_MANIFEST
}

fn is_layer(media_type: &str) -> bool {
    [
        MediaType::ImageLayer,
        MediaType::ImageLayerGzip,
        MediaType::ImageLayerZstd,
        MediaType::ImageLayerNonDistributable,
        MediaType::ImageLayerNonDistributableGzip,
        MediaType::ImageLayerNonDistributableZstd,
    ]
    .iter()
    .any(|m| m.to_string() == media_type)
        || DOCKER_LAYERS.contains(&media_type)
}

/// The (layer blob, diff ID) pairs of a stored manifest, each blob leased and checked present:
/// what [`crate::ImageStore::prepare`] unpacks again if a snapshot was removed.
pub(crate) fn manifest_layers(
    store: &ImageStore,
    manifest_digest: &Digest,
    lease: &mut Lease<'_>,
) -> Result<Vec<(Digest, Digest)>> {
    lease.blob(manifest_digest);
    let mut descriptor = Descriptor::new(MediaType::ImageManifest, 0, manifest_digest);
    descriptor.set_size(store.content.size(manifest_digest)?.unwrap_or(0));
    let mut blobs = BTreeSet::new();
    Ok(self::manifest(store, &descriptor, None, "an image", lease, &mut blobs)?.layers)
}
