//! Image store requests: images, snapshots, content. Each runs on a blocking thread (the store
//! blocks on the disk and on mounts), never on the actor or the event loop, and touches no
//! container state. What an operation changed is then told to the actor ([`StoreEvents`]), which
//! numbers it in the one sequence of events, before the client is answered.
//!
//! An import reads its archive off the connection while the store consumes it on its thread,
//! an export the reverse ([`super::transfer`]). The store's import is all or nothing, so a client
//! that hangs up part-way, or an archive that is refused, leaves the store as it was.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::Addr;
use images::{ImageStore, ImportOptions, Platform, PlatformSelector};
use nix::errno::Errno;
use protocol::{
    Bytes, ContentBlob, ErrorKind, ErrorResponse, EventKind, ExportImagesRequest, Filter, Image,
    ImageDetails, ImportRequest, ImportedImage, InspectImageRequest, ListContentRequest,
    ListImagesRequest, ListSnapshotsRequest, ManifestDetails, MountSnapshotRequest, PlatformChoice,
    PrepareSnapshotRequest, PruneRequest, Pruned, RemoveImagesRequest, RemoveSnapshotRequest,
    Response, Snapshot, SnapshotKind, SnapshotUsage, SnapshotUsageRequest, UnmountSnapshotRequest,
    UploadReady,
};
use tokio::sync::mpsc;

use super::connection::Connection;
use super::dispatch::{gone, invalid, Answer};
use super::transfer::{receive, DownloadWriter, Upload, UploadReader, CHUNK, IN_FLIGHT};
use crate::actor::{StoreEvent, StoreEvents, Supervisor};

/// Room in a frame for what wraps a chunk: the variant and the length prefix.
const FRAME_OVERHEAD: usize = 16;

/// Receives the archive of `req` and imports it; see the module docs.
pub async fn import(
    supervisor: &Addr<Supervisor>,
    store: &Arc<ImageStore>,
    req: ImportRequest,
    connection: &mut Connection,
) -> Answer {
    let platform = match req.platform {
        PlatformChoice::Host => PlatformSelector::Host,
        PlatformChoice::All => PlatformSelector::All,
        PlatformChoice::Only(p) => match p.parse::<Platform>() {
            Ok(p) => PlatformSelector::Only(p),
            Err(e) => return Answer::Reply(store_error(&e)),
        },
    };
    let options = ImportOptions {
        name: req.name,
        platform,
        labels: req.labels.clone(),
    };
    let chunk_size = connection
        .max_frame()
        .saturating_sub(FRAME_OVERHEAD)
        .clamp(1, CHUNK);
    let ready = Response::UploadReady(UploadReady {
        chunk_size: chunk_size as u32,
    });
    if connection.write(&ready).await.is_err() {
        return Answer::HungUp;
    }
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let namespace = req.namespace.clone();
    let store = store.clone();
    let importing = tokio::task::spawn_blocking(move || {
        let mut archive = UploadReader::new(rx);
        let imported = store.import(&namespace, &mut archive, &options);
        if imported.is_ok() {
            // The store may stop reading before the end (a tar's trailing blocks); take the rest
            // so the connection stays in step for its next request.
            archive.drain();
        }
        imported
    });
    let upload = receive(connection, tx).await;
    let imported = importing.await;
    let report = match (imported, upload) {
        (_, Upload::HungUp) => return Answer::HungUp,
        (_, Upload::Broken(e)) => {
            let refusal = ErrorResponse::new(ErrorKind::Protocol, e.to_string());
            return Answer::Close(Response::Error(refusal));
        }
        (Ok(Ok(report)), Upload::Complete) => report,
        (Ok(Err(e)), Upload::Complete) => return Answer::Reply(store_error(&e)),
        (Ok(Err(e)), Upload::Abandoned) => return Answer::Close(store_error(&e)),
        (Ok(Ok(_)), Upload::Abandoned) | (Err(_), _) => {
            return Answer::Close(internal("the import stopped unexpectedly"))
        }
    };
    let mut events: Vec<StoreEvent> = report
        .layers_unpacked
        .iter()
        .map(|chain| StoreEvent::new(EventKind::SnapshotCommit, chain.to_string()))
        .collect();
    for image in &report.images {
        let mut created = StoreEvent::new(EventKind::ImageCreate, image.name.clone());
        created.labels = req.labels.clone();
        events.push(created);
    }
    let imported = report
        .images
        .into_iter()
        .map(|i| ImportedImage {
            name: i.name,
            digest: i.digest.to_string(),
        })
        .collect();
    Answer::Reply(
        emit_then(
            supervisor,
            req.namespace,
            events,
            Response::Imported(imported),
        )
        .await,
    )
}

/// Streams the named images back as one OCI layout archive, in data frames then `Done`.
pub async fn export(
    store: &Arc<ImageStore>,
    req: ExportImagesRequest,
    connection: &mut Connection,
) -> Answer {
    let (tx, mut rx) = mpsc::channel(IN_FLIGHT);
    let store = store.clone();
    let exporting = tokio::task::spawn_blocking(move || {
        let names: Vec<&str> = req.names.iter().map(String::as_str).collect();
        let mut out = DownloadWriter::new(tx);
        store.export(&req.namespace, &names, &mut out)?;
        out.finish().map_err(|source| images::Error::Io {
            op: "send",
            path: "the export stream".into(),
            source,
        })
    });
    while let Some(chunk) = rx.recv().await {
        if connection
            .write(&Response::Data(Bytes(chunk)))
            .await
            .is_err()
        {
            drop(rx);
            let _ = exporting.await;
            return Answer::HungUp;
        }
    }
    Answer::Reply(match exporting.await {
        Ok(Ok(())) => Response::Done,
        Ok(Err(e)) => store_error(&e),
        Err(_) => internal("the export stopped unexpectedly"),
    })
}

pub async fn list(store: &Arc<ImageStore>, req: ListImagesRequest) -> Response {
    let filter = match Filter::<Image>::parse(&req.filters) {
        Ok(filter) => filter,
        Err(e) => return invalid(e),
    };
    let store = store.clone();
    let listed = blocking(move || store.list_images(&req.namespace)).await;
    answer(listed, |images| {
        let images = images
            .into_iter()
            .map(|i| Image {
                name: i.name,
                media_type: i.media_type,
                digest: i.digest.to_string(),
                size: i.size,
                platforms: i.platforms,
                labels: i.labels,
                created: nanos(i.created),
            })
            .filter(|i| filter.matches(i))
            .collect();
        Response::Images(images)
    })
}

/// Removes every name, or none if any is unknown.
pub async fn remove(
    supervisor: &Addr<Supervisor>,
    store: &Arc<ImageStore>,
    req: RemoveImagesRequest,
) -> Response {
    let names = req.names.clone();
    let namespace = req.namespace.clone();
    let store = store.clone();
    let removed = blocking(move || {
        let known = store.list_images(&namespace)?;
        if let Some(missing) = names.iter().find(|n| !known.iter().any(|i| &i.name == *n)) {
            return Err(images::Error::ImageNotFound {
                namespace,
                name: missing.clone(),
            });
        }
        for name in &names {
            store.remove_image(&namespace, name)?;
        }
        Ok(names)
    })
    .await;
    match removed {
        Ok(names) => {
            let events = names
                .iter()
                .map(|n| StoreEvent::new(EventKind::ImageDelete, n.clone()))
                .collect();
            emit_then(supervisor, req.namespace, events, Response::Removed(names)).await
        }
        Err(e) => Response::Error(e),
    }
}

pub async fn inspect(store: &Arc<ImageStore>, req: InspectImageRequest) -> Response {
    let store = store.clone();
    let inspected = blocking(move || {
        let image = store.inspect(&req.namespace, &req.name)?;
        let mut manifests = Vec::new();
        for m in image.manifests {
            manifests.push(ManifestDetails {
                digest: m.digest.to_string(),
                platform: m.platform,
                manifest: to_json(&m.manifest)?,
                config: to_json(&m.config)?,
            });
        }
        Ok(ImageDetails {
            name: image.name,
            digest: image.digest.to_string(),
            manifests,
        })
    })
    .await;
    answer(inspected, Response::ImageDetails)
}

/// A document the store read and parsed, written back as JSON for the wire.
fn to_json(doc: &impl serde::Serialize) -> images::Result<String> {
    serde_json::to_string(doc).map_err(|e| images::Error::InvalidArchive(e.to_string()))
}

pub async fn prune(
    supervisor: &Addr<Supervisor>,
    store: &Arc<ImageStore>,
    req: PruneRequest,
) -> Response {
    let store = store.clone();
    let report = match blocking(move || store.prune()).await {
        Ok(report) => report,
        Err(e) => return Response::Error(e),
    };
    let events = report
        .snapshots_removed
        .iter()
        .map(|s| StoreEvent::new(EventKind::SnapshotRemove, s.to_string()))
        .chain(
            report
                .blobs_removed
                .iter()
                .map(|b| StoreEvent::new(EventKind::ContentDelete, b.to_string())),
        )
        .collect();
    let pruned = Pruned {
        blobs: report
            .blobs_removed
            .iter()
            .map(ToString::to_string)
            .collect(),
        snapshots: report
            .snapshots_removed
            .iter()
            .map(ToString::to_string)
            .collect(),
        bytes_freed: report.bytes_freed,
    };
    emit_then(supervisor, req.namespace, events, Response::Pruned(pruned)).await
}

pub async fn list_snapshots(store: &Arc<ImageStore>, req: ListSnapshotsRequest) -> Response {
    let filter = match Filter::<Snapshot>::parse(&req.filters) {
        Ok(filter) => filter,
        Err(e) => return invalid(e),
    };
    let store = store.clone();
    let namespace = req.namespace;
    let listed = blocking(move || visible_snapshots(&store, &namespace)).await;
    answer(listed, |snapshots| {
        Response::Snapshots(
            snapshots
                .into_iter()
                .filter(|s| filter.matches(s))
                .collect(),
        )
    })
}

/// The committed snapshots, which every namespace shares, and `namespace`'s active ones.
fn visible_snapshots(store: &ImageStore, namespace: &str) -> images::Result<Vec<Snapshot>> {
    let mut out = Vec::new();
    for s in store.list_snapshots()? {
        let kind = match &s.kind {
            images::SnapshotKind::Committed => SnapshotKind::Committed,
            images::SnapshotKind::Active { namespace: ns, .. } if ns == namespace => {
                SnapshotKind::Active
            }
            images::SnapshotKind::Active { .. } => continue,
        };
        out.push(Snapshot {
            key: s.key,
            parent: s.parent,
            kind,
            created: nanos(s.created),
        });
    }
    Ok(out)
}

/// What a snapshot key given in `namespace` names.
enum SnapshotRef {
    /// A container's active snapshot: `<namespace>/<id>`, or the id alone.
    Active(String),
    /// A committed snapshot, by chain ID.
    Committed(String),
}

fn snapshot_ref(namespace: &str, key: &str) -> Result<SnapshotRef, ErrorResponse> {
    match key.split_once('/') {
        Some((ns, id)) if ns == namespace => Ok(SnapshotRef::Active(id.to_string())),
        Some(_) => Err(ErrorResponse::new(
            ErrorKind::NotFound,
            format!("snapshot {key} not found in namespace {namespace}"),
        )),
        None if key.starts_with("sha256:") => Ok(SnapshotRef::Committed(key.to_string())),
        None => Ok(SnapshotRef::Active(key.to_string())),
    }
}

/// Releases one of the namespace's active snapshots, or removes a committed one.
pub async fn remove_snapshot(
    supervisor: &Addr<Supervisor>,
    store: &Arc<ImageStore>,
    req: RemoveSnapshotRequest,
) -> Response {
    let target = match snapshot_ref(&req.namespace, &req.key) {
        Ok(target) => target,
        Err(e) => return Response::Error(e),
    };
    let store = store.clone();
    let namespace = req.namespace.clone();
    let removed = blocking(move || match target {
        SnapshotRef::Active(id) => store
            .release(&namespace, &id)
            .map(|()| format!("{namespace}/{id}")),
        SnapshotRef::Committed(key) => store.remove_snapshot(&key).map(|()| key),
    })
    .await;
    match removed {
        Ok(key) => {
            let events = vec![StoreEvent::new(EventKind::SnapshotRemove, key)];
            emit_then(supervisor, req.namespace, events, Response::Done).await
        }
        Err(e) => Response::Error(e),
    }
}

pub async fn snapshot_usage(store: &Arc<ImageStore>, req: SnapshotUsageRequest) -> Response {
    let mut keys = Vec::new();
    for key in &req.keys {
        match snapshot_ref(&req.namespace, key) {
            Ok(SnapshotRef::Active(id)) => keys.push(format!("{}/{id}", req.namespace)),
            Ok(SnapshotRef::Committed(key)) => keys.push(key),
            Err(e) => return Response::Error(e),
        }
    }
    let store = store.clone();
    let measured = blocking(move || {
        if keys.is_empty() {
            keys = visible_snapshots(&store, &req.namespace)?
                .into_iter()
                .map(|s| s.key)
                .collect();
        }
        keys.into_iter()
            .map(|key| {
                let usage = store.snapshot_usage(&key)?;
                Ok(SnapshotUsage {
                    key,
                    size: usage.size,
                    inodes: usage.inodes,
                })
            })
            .collect()
    })
    .await;
    answer(measured, Response::SnapshotUsage)
}

pub async fn prepare(
    supervisor: &Addr<Supervisor>,
    store: &Arc<ImageStore>,
    req: PrepareSnapshotRequest,
) -> Response {
    let store = store.clone();
    let namespace = req.namespace.clone();
    match blocking(move || store.prepare(&namespace, &req.id, &req.image)).await {
        Ok(key) => {
            let events = vec![StoreEvent::new(EventKind::SnapshotPrepare, key.clone())];
            emit_then(supervisor, req.namespace, events, Response::Prepared(key)).await
        }
        Err(e) => Response::Error(e),
    }
}

pub async fn mount(store: &Arc<ImageStore>, req: MountSnapshotRequest) -> Response {
    if !Path::new(&req.target).is_absolute() {
        return not_absolute(&req.target);
    }
    let store = store.clone();
    let mounted =
        blocking(move || store.mount(&req.namespace, &req.id, Path::new(&req.target))).await;
    answer(mounted, |()| Response::Done)
}

pub async fn unmount(store: &Arc<ImageStore>, req: UnmountSnapshotRequest) -> Response {
    if !Path::new(&req.target).is_absolute() {
        return not_absolute(&req.target);
    }
    let store = store.clone();
    let unmounted = blocking(move || store.unmount(Path::new(&req.target))).await;
    answer(unmounted, |()| Response::Done)
}

pub async fn list_content(store: &Arc<ImageStore>, req: ListContentRequest) -> Response {
    let filter = match Filter::<ContentBlob>::parse(&req.filters) {
        Ok(filter) => filter,
        Err(e) => return invalid(e),
    };
    let store = store.clone();
    let listed = blocking(move || store.list_content()).await;
    answer(listed, |blobs| {
        let blobs = blobs
            .into_iter()
            .map(|b| ContentBlob {
                digest: b.digest.to_string(),
                size: b.size,
                created: nanos(b.created),
            })
            .filter(|b| filter.matches(b))
            .collect();
        Response::Content(blobs)
    })
}

/// Runs a store operation on a blocking thread.
async fn blocking<T, F>(op: F) -> Result<T, ErrorResponse>
where
    F: FnOnce() -> images::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(op).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(error_response(&e)),
        Err(_) => Err(ErrorResponse::new(
            ErrorKind::Internal,
            "the image store operation panicked",
        )),
    }
}

fn answer<T>(result: Result<T, ErrorResponse>, ok: impl FnOnce(T) -> Response) -> Response {
    result.map_or_else(Response::Error, ok)
}

/// Has the actor emit `events`, then answers with `response`: a client that sees the answer
/// can find the events in the journal.
pub(super) async fn emit_then(
    supervisor: &Addr<Supervisor>,
    namespace: String,
    events: Vec<StoreEvent>,
    response: Response,
) -> Response {
    match supervisor.send(StoreEvents { namespace, events }).await {
        Ok(()) => response,
        Err(_) => gone(),
    }
}

/// The error kind a client sees for each way the store refuses or fails.
fn error_kind(e: &images::Error) -> ErrorKind {
    use images::Error as E;
    match e {
        E::InvalidDigest(_)
        | E::DigestMismatch { .. }
        | E::SizeMismatch { .. }
        | E::MissingBlob { .. }
        | E::WrongMediaType { .. }
        | E::Malformed { .. }
        | E::InvalidArchive(_)
        | E::Unnamed { .. }
        | E::AmbiguousName { .. }
        | E::InvalidName { .. }
        | E::LayerCorrupt { .. }
        | E::DiffIdMismatch { .. }
        | E::UnsafeEntry { .. } => ErrorKind::InvalidArgument,
        E::ImageNotFound { .. } | E::SnapshotNotFound { .. } | E::NoMatchingPlatform { .. } => {
            ErrorKind::NotFound
        }
        E::SnapshotExists { .. } => ErrorKind::AlreadyExists,
        E::SnapshotInUse { .. } | E::MountOptionsTooLong { .. } => ErrorKind::FailedPrecondition,
        // A target that is missing or no directory is the caller's to fix.
        E::Mount {
            source: Errno::ENOENT | Errno::ENOTDIR | Errno::EINVAL,
            ..
        } => ErrorKind::InvalidArgument,
        E::Locked { .. } => ErrorKind::Unavailable,
        E::Io { .. } | E::Metadata(_) | E::Record { .. } | E::UnpackIo { .. } | E::Mount { .. } => {
            ErrorKind::Internal
        }
    }
}

pub(super) fn error_response(e: &images::Error) -> ErrorResponse {
    ErrorResponse::new(error_kind(e), e.to_string())
}

fn store_error(e: &images::Error) -> Response {
    Response::Error(error_response(e))
}

fn internal(message: &str) -> Response {
    Response::Error(ErrorResponse::new(ErrorKind::Internal, message))
}

fn not_absolute(target: &str) -> Response {
    Response::Error(ErrorResponse::new(
        ErrorKind::InvalidArgument,
        format!("mount target {target:?} is not an absolute path"),
    ))
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
