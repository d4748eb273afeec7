//! `run`: a container from an image. Off the actor, on a blocking thread, its bundle is made in
//! the state directory (`bundles/<namespace>/<id>/`): the image's config read, the container's
//! snapshot prepared and mounted as the bundle's `rootfs/`, its spec written as `config.json`
//! ([`spec::generate`]). The actor then starts it as it starts any bundle. Whatever fails undoes
//! what came before it, so a refused run leaves no snapshot, bundle or runc state behind.
//!
//! With `remove`, a task waits (through the journal) for the container's exit, then unmounts and
//! releases the snapshot and removes the bundle, and says so with a `snapshot-remove` event: the
//! client that asked waits for that event rather than guessing when it is done.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::images::ImageStore;
use actix::Addr;
use protocol::{
    ErrorKind, ErrorResponse, EventKind, Response, RunRequest, StartRequest, WaitRequest,
    IMAGE_LABEL, REMOVE_ERROR_LABEL,
};
use runtime::{ContainerId, Namespace, StateDir};
use spec::{Network, RunOptions, SpecError};
use tokio::sync::oneshot;

use super::dispatch::gone;
use super::images::{emit_then, error_response};
use crate::actor::{Start, StoreEvent, StoreEvents, Supervisor, Wait};

/// Why a container's bundle could not be made from its image.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Store(#[from] ::images::Error),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl RunError {
    fn response(&self) -> ErrorResponse {
        let kind = match self {
            RunError::Store(e) => return error_response(e),
            RunError::Spec(SpecError::Read { .. } | SpecError::Build(_)) => ErrorKind::Internal,
            RunError::Spec(_) => ErrorKind::InvalidArgument,
            RunError::Io { .. } => ErrorKind::Internal,
        };
        ErrorResponse::new(kind, self.to_string())
    }
}

/// A container's bundle made from its image: what [`Bundle::remove`] undoes.
#[derive(Clone)]
struct Bundle {
    store: Arc<ImageStore>,
    namespace: String,
    id: String,
    dir: PathBuf,
}

impl Bundle {
    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Makes the bundle; on failure nothing of it is left. Returns the container's labels: the
    /// image's, then the request's, then [`IMAGE_LABEL`].
    fn create(&self, req: &RunRequest) -> Result<BTreeMap<String, String>, RunError> {
        let config = self.store.host_config(&self.namespace, &req.image)?;
        // The snapshot's key is the container's: a second run with the id fails here, before
        // anything of the first is touched.
        self.store.prepare(&self.namespace, &self.id, &req.image)?;
        if let Err(e) = self.fill(&config, req) {
            if let Err(undo) = self.remove() {
                log::warn!("run {}: undoing a failed run: {undo}", self.key());
            }
            return Err(e);
        }
        let mut labels: BTreeMap<String, String> = config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        labels.extend(req.labels.clone());
        labels.insert(IMAGE_LABEL.to_string(), req.image.clone());
        Ok(labels)
    }

    fn fill(&self, config: &spec::ImageConfiguration, req: &RunRequest) -> Result<(), RunError> {
        let rootfs = self.rootfs();
        fs::create_dir_all(&rootfs).map_err(|source| RunError::Io {
            what: "create",
            path: rootfs.clone(),
            source,
        })?;
        self.store.mount(&self.namespace, &self.id, &rootfs)?;
        let spec = spec::generate(config, &rootfs, &self.namespace, &self.id, &options(req))?;
        let path = self.dir.join("config.json");
        spec.save(&path).map_err(|e| RunError::Io {
            what: "write",
            path,
            source: io::Error::other(e),
        })?;
        Ok(())
    }

    /// Unmounts and releases the snapshot and removes the bundle, each as far as it exists; the
    /// first failure stops it (a snapshot still mounted must not be released).
    fn remove(&self) -> Result<(), RunError> {
        let rootfs = self.rootfs();
        if is_mount_point(&rootfs) {
            self.store.unmount(&rootfs)?;
        }
        match self.store.release(&self.namespace, &self.id) {
            Ok(()) | Err(::images::Error::SnapshotNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RunError::Io {
                what: "remove",
                path: self.dir.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.id)
    }
}

/// `rootfs` is a mount point if it is on another device than its parent.
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(own), Some(Ok(parent))) = (fs::metadata(path), path.parent().map(fs::metadata)) else {
        return false;
    };
    own.dev() != parent.dev()
}

fn options(req: &RunRequest) -> RunOptions {
    RunOptions {
        command: (!req.command.is_empty()).then(|| req.command.clone()),
        env: req.env.clone(),
        cwd: req.cwd.clone(),
        user: req.user.clone(),
        labels: req.labels.clone(),
        hostname: req.hostname.clone(),
        read_only: req.read_only,
        network: if req.net_host {
            Network::Host
        } else {
            Network::Own
        },
        memory_limit: req.memory_limit,
        pids_limit: req.pids_limit,
        terminal: req.terminal.is_some(),
    }
}

/// See the module docs.
pub async fn run(
    supervisor: &Addr<Supervisor>,
    store: &Arc<ImageStore>,
    state: &StateDir,
    req: RunRequest,
) -> Response {
    let dir = match (Namespace::new(&req.namespace), ContainerId::new(&req.id)) {
        (Ok(ns), Ok(id)) => state.bundle_dir(&ns, &id),
        (Err(e), _) | (_, Err(e)) => {
            return Response::Error(ErrorResponse::new(
                ErrorKind::InvalidArgument,
                e.to_string(),
            ))
        }
    };
    let bundle = Bundle {
        store: store.clone(),
        namespace: req.namespace.clone(),
        id: req.id.clone(),
        dir,
    };
    let making = {
        let (bundle, req) = (bundle.clone(), req.clone());
        tokio::task::spawn_blocking(move || bundle.create(&req)).await
    };
    let labels = match making {
        Ok(Ok(labels)) => labels,
        Ok(Err(e)) => return Response::Error(e.response()),
        Err(_) => {
            return Response::Error(ErrorResponse::new(
                ErrorKind::Internal,
                "making the bundle panicked",
            ))
        }
    };
    let prepared = vec![StoreEvent::new(EventKind::SnapshotPrepare, bundle.key())];
    if let response @ Response::Error(_) =
        emit_then(supervisor, req.namespace.clone(), prepared, Response::Done).await
    {
        remove(supervisor, bundle).await;
        return response;
    }
    let start = StartRequest {
        namespace: req.namespace.clone(),
        id: req.id.clone(),
        bundle: bundle.dir.to_string_lossy().into_owned(),
        labels,
        stdout: req.stdout.clone(),
        stderr: req.stderr.clone(),
        checkpoint: None,
        stdin: req.stdin.clone(),
        terminal: req.terminal,
        // With --rm the container goes too, once it stops; without, it is kept stopped, as a
        // started one is.
        remove: req.remove,
    };
    let (reply, answer) = oneshot::channel();
    let started = if supervisor.send(Start { req: start, reply }).await.is_err() {
        gone()
    } else {
        answer.await.unwrap_or_else(|_| gone())
    };
    match started {
        Response::Started(_) if req.remove => {
            actix_rt::spawn(remove_at_exit(supervisor.clone(), bundle));
        }
        Response::Started(_) => {}
        _ => remove(supervisor, bundle).await,
    }
    started
}

/// Waits for the container's exit, then removes what [`run`] made.
async fn remove_at_exit(supervisor: Addr<Supervisor>, bundle: Bundle) {
    let (reply, answer) = oneshot::channel();
    let wait = WaitRequest {
        namespace: bundle.namespace.clone(),
        id: bundle.id.clone(),
        process: "init".to_string(),
    };
    if supervisor.send(Wait { req: wait, reply }).await.is_err() || answer.await.is_err() {
        log::warn!(
            "run {}: the daemon stopped before the container exited; its snapshot and bundle stay",
            bundle.key()
        );
        return;
    }
    remove(&supervisor, bundle).await;
}

/// Removes the bundle and its snapshot on a blocking thread, then emits `snapshot-remove`; if
/// that failed, the event carries why in its [`REMOVE_ERROR_LABEL`] label, so a client waiting
/// for it learns of the failure instead of waiting on.
async fn remove(supervisor: &Addr<Supervisor>, bundle: Bundle) {
    let key = bundle.key();
    let namespace = bundle.namespace.clone();
    let removed = tokio::task::spawn_blocking(move || bundle.remove())
        .await
        .unwrap_or_else(|_| {
            Err(RunError::Io {
                what: "remove",
                path: PathBuf::from(&key),
                source: io::Error::other("the removal panicked"),
            })
        });
    let mut event = StoreEvent::new(EventKind::SnapshotRemove, key.clone());
    if let Err(e) = removed {
        log::warn!("run {key}: {e}");
        event
            .labels
            .insert(REMOVE_ERROR_LABEL.to_string(), e.to_string());
    }
    let events = vec![event];
    let _ = supervisor.send(StoreEvents { namespace, events }).await;
}
