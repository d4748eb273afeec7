//! Checkpoints: CRIU images of a container kept in its bundle, and the runc calls that make and
//! restore them.
//!
//! ```text
//! <bundle>/checkpoints/<name>/                  CRIU's images (runc checkpoint --image-path)
//! <bundle>/checkpoints/<name>/checkpoint.json   the options it was taken with, and when
//! <bundle>/checkpoints/<name>/network-*         the loopback's addresses and routes (criu_hook)
//! <bundle>/checkpoints/<name>/parent            CRIU's link to the pre-dump it builds on
//! ```
//! Keeping them in the bundle means a bundle copied elsewhere carries its checkpoints along,
//! which is what live migration relies on. CRIU's work directory (where its log goes) lives
//! under the container's state directory: removed after a success, kept after a failure, and
//! named in the error. Every CRIU call gets the [`NetworkHook`], so that a restored container
//! has its loopback back.
//!
//! Pre-copy: a *pre-dump* saves only memory, leaves the container running and has the kernel
//! track which pages it writes from then on (soft-dirty bits); a later pre-dump or the final
//! dump names it as its *parent* and saves only the pages written since, so the final dump (the
//! only one that freezes the container for long) is short. CRIU links the child to its parent
//! (`parent -> ../<name>`), so a restore reads the whole chain, and a pre-dump can neither be
//! restored on its own nor be deleted while a checkpoint builds on it. Kernels built without
//! `CONFIG_MEM_SOFT_DIRTY` cannot track pages: a pre-dump there is refused up front
//! ([`RuntimeError::NoDirtyTracking`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::criu_hook::{NetworkHook, RestoredNetwork};
use crate::runc::{CallWindow, Launched};
use crate::{Bundle, CheckpointName, ContainerId, Namespace, Runc, RuntimeError};

/// The directory of a bundle that holds its checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// The description written beside CRIU's images.
const META_FILE: &str = "checkpoint.json";

/// At most this many of CRIU's own error lines go into a failure's message.
const CRIU_ERROR_LINES: usize = 4;

/// What CRIU may dump besides plain processes and files; a restore needs the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointOptions {
    /// Established TCP connections (`--tcp-established`).
    pub tcp_established: bool,
    /// Unix sockets with a peer outside the container (`--ext-unix-sk`).
    pub ext_unix_sk: bool,
    /// A process tied to a terminal or session outside the container (`--shell-job`).
    pub shell_job: bool,
}

impl CheckpointOptions {
    fn runc_flags(self) -> impl Iterator<Item = &'static str> {
        [
            (self.tcp_established, "--tcp-established"),
            (self.ext_unix_sk, "--ext-unix-sk"),
            (self.shell_job, "--shell-job"),
        ]
        .into_iter()
        .filter_map(|(on, flag)| on.then_some(flag))
    }
}

/// `checkpoint.json`: how and when a checkpoint was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub name: String,
    pub options: CheckpointOptions,
    /// Whether the container was stopped once dumped.
    pub exit: bool,
    /// Nanoseconds since the Unix epoch.
    pub created: u64,
    /// A pre-dump: memory only, for a later checkpoint to build on; it cannot be restored.
    #[serde(default)]
    pub pre_dump: bool,
    /// The pre-dump this checkpoint holds only the changes since.
    #[serde(default)]
    pub parent: Option<String>,
}

/// A checkpoint as listed: its description and how much its directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCheckpoint {
    pub meta: CheckpointMeta,
    /// Bytes of the files in its directory (its parent's not included).
    pub size: u64,
}

/// A dump as a worker runs it.
pub struct CheckpointSpec<'a> {
    pub namespace: &'a Namespace,
    pub id: &'a ContainerId,
    pub bundle: &'a Bundle,
    pub name: &'a CheckpointName,
    pub options: CheckpointOptions,
    pub exit: bool,
    /// A pre-dump (see the module doc); never with `exit`.
    pub pre_dump: bool,
    /// A pre-dump in the same bundle to build on.
    pub parent: Option<&'a CheckpointName>,
}

/// A restore as a worker runs it: like a start, with the checkpoint to start from.
pub struct RestoreSpec<'a> {
    pub namespace: &'a Namespace,
    pub id: &'a ContainerId,
    pub bundle: &'a Bundle,
    pub name: &'a CheckpointName,
    pub pid_file: &'a Path,
    pub stdout: File,
    pub stderr: File,
}

pub fn checkpoint_dir(bundle: &Bundle, name: &CheckpointName) -> PathBuf {
    bundle.path().join(CHECKPOINTS_DIR).join(name.as_str())
}

/// The checkpoints in a bundle, by name, with their sizes. A directory without `checkpoint.json`
/// (made with runc by hand) is listed with default options and its modification time.
pub fn list(bundle: &Bundle) -> Result<Vec<ListedCheckpoint>, RuntimeError> {
    descriptions(bundle)?
        .into_iter()
        .map(|(name, meta)| {
            let dir = checkpoint_dir(bundle, &name);
            let size = dir_size(&dir).map_err(|e| RuntimeError::io("cannot read", &dir, e))?;
            Ok(ListedCheckpoint { meta, size })
        })
        .collect()
}

/// The checkpoints in a bundle and their descriptions, by name.
fn descriptions(bundle: &Bundle) -> Result<Vec<(CheckpointName, CheckpointMeta)>, RuntimeError> {
    let dir = bundle.path().join(CHECKPOINTS_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RuntimeError::io("cannot read", &dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RuntimeError::io("cannot read", &dir, e))?;
        let Ok(name) = CheckpointName::new(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        if !entry.path().is_dir() {
            continue;
        }
        let meta = read_meta(bundle, &name)?;
        found.push((name, meta));
    }
    found.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    Ok(found)
}

/// One checkpoint's description; [`RuntimeError::NoCheckpoint`] when the bundle lacks it.
pub fn read_meta(bundle: &Bundle, name: &CheckpointName) -> Result<CheckpointMeta, RuntimeError> {
    let dir = checkpoint_dir(bundle, name);
    let dir_meta = fs::metadata(&dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => RuntimeError::NoCheckpoint {
            name: name.to_string(),
            path: dir.clone(),
        },
        _ => RuntimeError::io("cannot read", &dir, e),
    })?;
    let path = dir.join(META_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RuntimeError::BadCheckpoint {
            path,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CheckpointMeta {
            name: name.to_string(),
            options: CheckpointOptions::default(),
            exit: false,
            created: dir_meta.modified().map(epoch_ns).unwrap_or(0),
            pre_dump: false,
            parent: None,
        }),
        Err(e) => Err(RuntimeError::io("cannot read", &path, e)),
    }
}

/// Removes a checkpoint, unless another builds on it.
pub fn delete(bundle: &Bundle, name: &CheckpointName) -> Result<(), RuntimeError> {
    let dir = checkpoint_dir(bundle, name);
    if let Some((child, _)) = descriptions(bundle)?
        .into_iter()
        .find(|(_, meta)| meta.parent.as_deref() == Some(name.as_str()))
    {
        return Err(RuntimeError::CheckpointInUse {
            name: name.to_string(),
            child: child.to_string(),
        });
    }
    fs::remove_dir_all(&dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => RuntimeError::NoCheckpoint {
            name: name.to_string(),
            path: dir.clone(),
        },
        _ => RuntimeError::io("cannot remove", &dir, e),
    })
}

impl Runc {
    /// Dumps the container into `<bundle>/checkpoints/<name>`. A failed dump leaves the container
    /// running and no checkpoint directory; its error names CRIU's log, which is kept.
    pub fn checkpoint(&self, spec: &CheckpointSpec<'_>) -> Result<CheckpointMeta, RuntimeError> {
        let images = checkpoint_dir(spec.bundle, spec.name);
        let parent_path = self.check_parent(spec)?;
        let checkpoints = spec.bundle.path().join(CHECKPOINTS_DIR);
        fs::create_dir_all(&checkpoints)
            .map_err(|e| RuntimeError::io("cannot create", &checkpoints, e))?;
        // create_dir, not create_dir_all: two dumps under one name cannot both get this far.
        fs::create_dir(&images).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => RuntimeError::CheckpointExists {
                name: spec.name.to_string(),
                path: images.clone(),
            },
            _ => RuntimeError::io("cannot create", &images, e),
        })?;
        let work = self.fresh_work_dir(spec.namespace, spec.id, "checkpoint", spec.name)?;
        let meta = CheckpointMeta {
            name: spec.name.to_string(),
            options: spec.options,
            exit: spec.exit,
            created: epoch_ns(SystemTime::now()),
            pre_dump: spec.pre_dump,
            parent: spec.parent.map(|p| p.to_string()),
        };
        let hook = NetworkHook::write(&work, &images);
        let (images_arg, work_arg) = (path_arg(&images), path_arg(&work));
        let criu = path_arg(self.criu());
        let mut args = vec![
            "--criu",
            &criu,
            "checkpoint",
            "--image-path",
            &images_arg,
            "--work-path",
            &work_arg,
        ];
        if spec.pre_dump {
            args.push("--pre-dump");
        } else if !spec.exit {
            args.push("--leave-running");
        }
        if let Some(parent) = &parent_path {
            args.extend(["--parent-path", parent]);
        }
        for flag in spec.options.runc_flags() {
            args.push(flag);
        }
        args.push(spec.id.as_str());
        let log = work.join(if spec.pre_dump {
            "pre-dump.log"
        } else {
            "dump.log"
        });
        let dumped = hook
            .and_then(|hook| {
                self.call_criu("checkpoint", spec.namespace, spec.id, &args, &hook, quiet())
                    .map_err(|e| with_criu_errors(e, &log, &hook))
            })
            .and_then(|()| write_meta(&images, &meta));
        if let Err(failure) = dumped {
            let _ = fs::remove_dir_all(&images);
            return Err(failure);
        }
        let _ = fs::remove_dir_all(&work);
        Ok(meta)
    }

    /// Restores the container detached from its checkpoint (with the options it was taken
    /// with) and returns the restored init, known by the start time runc records for it.
    pub fn restore(&self, spec: RestoreSpec<'_>) -> Result<Launched, RuntimeError> {
        let (ns, id) = (spec.namespace, spec.id);
        let meta = read_meta(spec.bundle, spec.name)?;
        if meta.pre_dump {
            return Err(RuntimeError::PreDumpRestore {
                name: spec.name.to_string(),
            });
        }
        check_chain(spec.bundle, spec.name, &meta)?;
        let images = checkpoint_dir(spec.bundle, spec.name);
        let work = self.fresh_work_dir(ns, id, "restore", spec.name)?;
        let hook = NetworkHook::write(&work, &images)?;
        let (images_arg, work_arg) = (path_arg(&images), path_arg(&work));
        let (criu, pid_file) = (path_arg(self.criu()), path_arg(spec.pid_file));
        let bundle = path_arg(spec.bundle.path());
        let mut args = vec![
            "--criu",
            &criu,
            "restore",
            "--detach",
            "--image-path",
            &images_arg,
            "--work-path",
            &work_arg,
            "--pid-file",
            &pid_file,
            "--bundle",
            &bundle,
        ];
        for flag in meta.options.runc_flags() {
            args.push(flag);
        }
        args.push(id.as_str());
        // runc hands its own stdio to CRIU, which gives it to the restored process in place of
        // the pipes it had when dumped.
        let stdio = (
            Stdio::null(),
            Stdio::from(spec.stdout),
            Stdio::from(spec.stderr),
        );
        let restored = CallWindow::open().and_then(|window| {
            self.call_criu("restore", ns, id, &args, &hook, stdio)
                .map_err(|e| with_criu_errors(e, &work.join("restore.log"), &hook))?;
            let window = window.close()?;
            let pid = crate::runc::read_pid_file(spec.pid_file)?;
            Ok(self.launched_init(ns, id, pid, window))
        });
        match restored {
            Ok(launched) => {
                if hook.restored() == RestoredNetwork::NotRun {
                    log::warn!(
                        "container {ns}/{id}: restored with its loopback down: CRIU ({}) did not \
                         run ctrd's network hook (it reads CRIU_CONFIG_FILE as `criu swrk` from \
                         CRIU 4 on)",
                        self.criu().display()
                    );
                }
                let _ = fs::remove_dir_all(&work);
                Ok(launched)
            }
            Err(failure) => Err(self.clean_up_failed_start(ns, id, failure)),
        }
    }

    /// The `--parent-path` of a checkpoint that builds on a pre-dump (relative to its own
    /// directory, so a bundle copied elsewhere keeps the link), after checking that the parent is
    /// a pre-dump and that this kernel can track the pages written since.
    fn check_parent(&self, spec: &CheckpointSpec<'_>) -> Result<Option<String>, RuntimeError> {
        if spec.pre_dump || spec.parent.is_some() {
            self.check_dirty_tracking()?;
        }
        let Some(parent) = spec.parent else {
            return Ok(None);
        };
        let meta = read_meta(spec.bundle, parent)?;
        if !meta.pre_dump {
            return Err(RuntimeError::NotAPreDump {
                name: parent.to_string(),
            });
        }
        Ok(Some(format!("../{parent}")))
    }

    /// `criu check --feature mem_dirty_track`: soft-dirty bits, which a pre-dump needs.
    fn check_dirty_tracking(&self) -> Result<(), RuntimeError> {
        let mut cmd = Command::new(self.criu());
        cmd.args(["check", "--feature", "mem_dirty_track"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match cmd.status() {
            Ok(status) if status.success() => Ok(()),
            Ok(_) => Err(RuntimeError::NoDirtyTracking),
            Err(source) => Err(RuntimeError::Spawn {
                binary: self.criu().to_path_buf(),
                source,
            }),
        }
    }

    /// `<state-dir>/<namespace>/<id>/<what>-<name>.work`, emptied of an earlier attempt's files.
    fn fresh_work_dir(
        &self,
        ns: &Namespace,
        id: &ContainerId,
        what: &str,
        name: &CheckpointName,
    ) -> Result<PathBuf, RuntimeError> {
        let work = self
            .state_dir()
            .container_dir(ns, id)
            .join(format!("{what}-{name}.work"));
        match fs::remove_dir_all(&work) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io("cannot remove", &work, e)),
        }
        fs::create_dir_all(&work).map_err(|e| RuntimeError::io("cannot create", &work, e))?;
        Ok(work)
    }
}

/// Written to a temporary name, made durable, and renamed: a reader (or a crash) never sees half
/// a description, and the rename is on disk before the checkpoint counts as taken.
fn write_meta(images: &Path, meta: &CheckpointMeta) -> Result<(), RuntimeError> {
    let path = images.join(META_FILE);
    let tmp = images.join(format!(".{META_FILE}.tmp"));
    let json = serde_json::to_vec_pretty(meta).map_err(|e| RuntimeError::BadCheckpoint {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut file = File::create(&tmp).map_err(|e| RuntimeError::io("cannot create", &tmp, e))?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(|e| RuntimeError::io("cannot write", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| RuntimeError::io("cannot rename", &tmp, e))?;
    File::open(images)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| RuntimeError::io("cannot sync", images, e))
}

/// A restore reads the whole chain of pre-dumps a checkpoint builds on: each must be there.
fn check_chain(
    bundle: &Bundle,
    name: &CheckpointName,
    meta: &CheckpointMeta,
) -> Result<(), RuntimeError> {
    let (mut child, mut next) = (name.clone(), meta.parent.clone());
    // A chain longer than the bundle's checkpoints loops (only a hand-edited one can).
    for _ in 0..=descriptions(bundle)?.len() {
        let Some(parent) = next else {
            return Ok(());
        };
        let parent = CheckpointName::new(&parent).map_err(|e| RuntimeError::BadCheckpoint {
            path: checkpoint_dir(bundle, &child).join(META_FILE),
            message: e.to_string(),
        })?;
        next = read_meta(bundle, &parent)?.parent;
        child = parent;
    }
    Err(RuntimeError::BadCheckpoint {
        path: checkpoint_dir(bundle, name).join(META_FILE),
        message: "its parents form a loop".into(),
    })
}

/// The bytes of the files below `dir`; links are not followed (CRIU's `parent` is one).
fn dir_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// runc says only "criu failed" and where the log is; CRIU's own error lines say why, and the
/// network hook's last complaint when it has one. (When CRIU never ran, runc's message is all
/// there is.)
fn with_criu_errors(err: RuntimeError, log: &Path, hook: &NetworkHook) -> RuntimeError {
    let RuntimeError::Failed { op, id, message } = err else {
        return err;
    };
    let mut message = message;
    if !message.contains("log file:") && log.is_file() {
        message.push_str(&format!("; log file: {}", log.display()));
    }
    let log_text = fs::read_to_string(log).unwrap_or_default();
    let errors = criu_errors(&log_text);
    if !errors.is_empty() {
        message.push_str(&format!("; criu: {}", errors.join("; ")));
    }
    if let Some(complaint) = hook.log_tail() {
        message.push_str(&format!("; network hook: {complaint}"));
    }
    RuntimeError::Failed { op, id, message }
}

/// CRIU's `Error (file:line): ...` lines, without the source location and without the
/// harmless complaint about raising its own file limit.
fn criu_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|line| line.split_once("Error (").map(|(_, rest)| rest))
        .map(|rest| rest.split_once("): ").map_or(rest, |(_, msg)| msg))
        .filter(|msg| !msg.starts_with("rlimit:"))
        .take(CRIU_ERROR_LINES)
        .collect()
}

fn quiet() -> (Stdio, Stdio, Stdio) {
    (Stdio::null(), Stdio::null(), Stdio::null())
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn epoch_ns(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> (tempfile::TempDir, Bundle) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), "{}").unwrap();
        let bundle = Bundle::open(dir.path()).unwrap();
        (dir, bundle)
    }

    #[test]
    fn criu_errors_keep_the_cause_and_drop_the_noise() {
        let log = "(00.07) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self\n\
                   (00.10) Some info\n\
                   (00.19) Error (criu/files-reg.c:1790): Can't lookup mount=27 for fd=1\n\
                   (00.27) Error (criu/cr-dump.c:2111): Dumping FAILED.\n";
        assert_eq!(
            criu_errors(log),
            ["Can't lookup mount=27 for fd=1", "Dumping FAILED."]
        );
    }

    #[test]
    fn options_become_runc_flags() {
        let all = CheckpointOptions {
            tcp_established: true,
            ext_unix_sk: true,
            shell_job: true,
        };
        assert_eq!(
            all.runc_flags().collect::<Vec<_>>(),
            ["--tcp-established", "--ext-unix-sk", "--shell-job"]
        );
        assert_eq!(CheckpointOptions::default().runc_flags().count(), 0);
    }

    #[test]
    fn lists_described_and_hand_made_checkpoints_and_deletes_them() {
        let (_dir, bundle) = bundle();
        assert!(list(&bundle).unwrap().is_empty());
        let c1 = CheckpointName::new("c1").unwrap();
        let by_hand = CheckpointName::new("by-hand").unwrap();
        fs::create_dir_all(checkpoint_dir(&bundle, &c1)).unwrap();
        fs::create_dir_all(checkpoint_dir(&bundle, &by_hand)).unwrap();
        fs::create_dir_all(bundle.path().join(CHECKPOINTS_DIR).join(".hidden")).unwrap();
        let meta = CheckpointMeta {
            name: "c1".into(),
            options: CheckpointOptions {
                tcp_established: true,
                ..Default::default()
            },
            exit: true,
            created: 42,
            pre_dump: false,
            parent: None,
        };
        write_meta(&checkpoint_dir(&bundle, &c1), &meta).unwrap();
        let listed = list(&bundle).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].meta.name, "by-hand");
        assert_eq!(listed[0].meta.options, CheckpointOptions::default());
        assert!(listed[0].meta.created > 0);
        assert_eq!(listed[0].size, 0);
        assert_eq!(listed[1].meta, meta);
        let json_len = fs::metadata(checkpoint_dir(&bundle, &c1).join(META_FILE))
            .unwrap()
            .len();
        assert_eq!(listed[1].size, json_len);

        delete(&bundle, &c1).unwrap();
        assert!(!checkpoint_dir(&bundle, &c1).exists());
        let err = delete(&bundle, &c1).unwrap_err();
        assert!(
            err.to_string().starts_with("checkpoint \"c1\" not found"),
            "{err}"
        );
        let err = read_meta(&bundle, &c1).unwrap_err();
        assert!(matches!(err, RuntimeError::NoCheckpoint { .. }), "{err}");
    }

    /// `pre` <- `final`: the pre-dump cannot go while `final` builds on it, a restore of
    /// `final` needs `pre`, and sizes count a directory's own files, not its parent's.
    #[test]
    fn a_checkpoint_built_on_a_pre_dump_keeps_it() {
        let (_dir, bundle) = bundle();
        let pre = CheckpointName::new("pre").unwrap();
        let last = CheckpointName::new("final").unwrap();
        for (name, pre_dump, parent) in [(&pre, true, None), (&last, false, Some("pre"))] {
            let dir = checkpoint_dir(&bundle, name);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("pages-1.img"), vec![0u8; 4096]).unwrap();
            let meta = CheckpointMeta {
                name: name.to_string(),
                options: CheckpointOptions::default(),
                exit: false,
                created: 1,
                pre_dump,
                parent: parent.map(String::from),
            };
            write_meta(&dir, &meta).unwrap();
        }
        std::os::unix::fs::symlink("../pre", checkpoint_dir(&bundle, &last).join("parent"))
            .unwrap();
        let listed = list(&bundle).unwrap();
        assert_eq!(listed[0].meta.name, "final");
        assert!(
            listed[0].size > 4096 && listed[0].size < 2 * 4096,
            "{}",
            listed[0].size
        );

        let err = delete(&bundle, &pre).unwrap_err();
        assert!(matches!(err, RuntimeError::CheckpointInUse { .. }), "{err}");
        assert!(err.to_string().contains("\"final\""), "{err}");
        let final_meta = read_meta(&bundle, &last).unwrap();
        check_chain(&bundle, &last, &final_meta).unwrap();

        delete(&bundle, &last).unwrap();
        delete(&bundle, &pre).unwrap();
        let err = check_chain(&bundle, &last, &final_meta).unwrap_err();
        assert!(matches!(err, RuntimeError::NoCheckpoint { .. }), "{err}");
    }

    #[test]
    fn a_broken_description_is_an_error_naming_the_file() {
        let (_dir, bundle) = bundle();
        let c1 = CheckpointName::new("c1").unwrap();
        fs::create_dir_all(checkpoint_dir(&bundle, &c1)).unwrap();
        fs::write(checkpoint_dir(&bundle, &c1).join(META_FILE), "{").unwrap();
        let err = read_meta(&bundle, &c1).unwrap_err().to_string();
        assert!(err.contains("checkpoint.json"), "{err}");
    }
}
