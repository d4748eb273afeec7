//! A container's record on disk: what a restarted daemon needs to take the container over.
//!
//! The record is written when the container starts and rewritten when its set of processes
//! changes, and once the container's exit is in the event journal, with that exit: a stopped
//! container is kept (and survives restarts) until it is deleted, which removes the record, or
//! started again, which gives it a record of its new life. Each write goes to
//! a temporary file renamed over the record, so a daemon killed mid-write leaves the old record
//! or the new one, never half of one. Records are not fsynced: they describe running processes,
//! which do not outlive the host, and a daemon crash loses nothing the page cache holds.
//!
//! A record is named for the container's id and its creation time,
//! `<state-dir>/<namespace>/<id>@<created>.json`: `@` is not allowed in an id, so the name never
//! meets a container's directory, and two lives of one id (an exit being recorded while a new
//! start runs) never share a file.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{ContainerId, Namespace, StateDir};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub namespace: String,
    pub id: String,
    pub bundle: String,
    pub labels: BTreeMap<String, String>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Nanoseconds since the epoch when the start was accepted; names this life of the id.
    pub created: u64,
    pub init: ProcessRecord,
    /// Whether the output goes through pipes the keeper holds (a detached start), so a new daemon
    /// can take the relay over; an attached start's output went to a client's FIFOs.
    pub relayed: bool,
    pub execs: BTreeMap<String, ProcessRecord>,
    /// Once its init has exited and the exit is journaled: the container is stopped, kept until
    /// it is deleted.
    #[serde(default)]
    pub exit: Option<ExitRecord>,
    /// Started with `--rm`: deleted as soon as it stops.
    #[serde(default)]
    pub remove: bool,
}

/// How a stopped container's init ended, as its `exit` event reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// `None` when its status could not be known.
    pub status: Option<i32>,
    /// Nanoseconds since the epoch when the exit was reported.
    pub time: u64,
    pub oom_killed: bool,
}

/// One process of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: u32,
    /// Its start time (see [`crate::procstat`]); `None` if it had exited before it was read.
    pub start_time: Option<u64>,
    pub args: Vec<String>,
}

impl ContainerRecord {
    /// Names the container's kept output pipes at the keeper: unique to this life of the id.
    pub fn token(&self) -> String {
        token(&self.namespace, &self.id, self.created)
    }

    pub fn path(&self, state: &StateDir) -> io::Result<PathBuf> {
        let ns = Namespace::new(&self.namespace).map_err(invalid)?;
        let id = ContainerId::new(&self.id).map_err(invalid)?;
        Ok(path(state, &ns, &id, self.created))
    }

    /// Replaces the record on disk.
    pub fn write(&self, state: &StateDir) -> io::Result<()> {
        let path = self.path(state)?;
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(&tmp, json)?;
        fs::rename(&tmp, &path)
    }

    /// Removes the record; one already gone is no error.
    pub fn remove(&self, state: &StateDir) -> io::Result<()> {
        match fs::remove_file(self.path(state)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

pub fn token(namespace: &str, id: &str, created: u64) -> String {
    format!("{namespace}/{id}/{created}")
}

fn path(state: &StateDir, ns: &Namespace, id: &ContainerId, created: u64) -> PathBuf {
    state
        .path()
        .join(ns.as_str())
        .join(format!("{}@{created}.json", id.as_str()))
}

/// A record file that could not be used, and why.
#[derive(Debug)]
pub struct Unreadable {
    pub path: PathBuf,
    pub reason: String,
}

/// Every record under the state dir, and the files that looked like records but could not be
/// read (a torn write cannot happen, but a disk can fail).
pub fn load_all(state: &StateDir) -> io::Result<(Vec<ContainerRecord>, Vec<Unreadable>)> {
    let mut records = Vec::new();
    let mut unreadable = Vec::new();
    let entries = match fs::read_dir(state.path()) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((records, unreadable)),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Ok(namespace) = Namespace::new(&name.to_string_lossy()) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for file in fs::read_dir(entry.path())?.flatten() {
            let path = file.path();
            if !is_record_name(&path) {
                continue;
            }
            match read(&path) {
                Ok(record) if record.namespace == namespace.as_str() => records.push(record),
                Ok(record) => unreadable.push(Unreadable {
                    reason: format!("it names namespace {:?}", record.namespace),
                    path,
                }),
                Err(reason) => unreadable.push(Unreadable { path, reason }),
            }
        }
    }
    Ok((records, unreadable))
}

fn is_record_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
        && path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains('@'))
}

fn read(path: &Path) -> Result<ContainerRecord, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn invalid(err: crate::RuntimeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created: u64) -> ContainerRecord {
        ContainerRecord {
            namespace: "default".into(),
            id: id.into(),
            bundle: "/b".into(),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            stdout: "/s/out".into(),
            stderr: "/s/err".into(),
            created,
            init: ProcessRecord {
                pid: 42,
                start_time: Some(7),
                args: vec!["sleep".into(), "9".into()],
            },
            relayed: true,
            execs: BTreeMap::new(),
            exit: None,
            remove: false,
        }
    }

    #[test]
    fn written_records_load_back_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let a = record("a", 1);
        let mut b = record("b", 2);
        a.write(&state).unwrap();
        b.write(&state).unwrap();
        b.execs.insert(
            "sh".into(),
            ProcessRecord {
                pid: 43,
                start_time: None,
                args: vec!["sh".into()],
            },
        );
        b.write(&state).unwrap();
        b.exit = Some(ExitRecord {
            status: Some(137),
            time: 9,
            oom_killed: true,
        });
        b.write(&state).unwrap();
        // A container's own directory (logs) sits next to the records and is not one.
        fs::create_dir_all(dir.path().join("default/a")).unwrap();
        let (mut loaded, bad) = load_all(&state).unwrap();
        loaded.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(loaded, vec![a.clone(), b.clone()]);
        assert!(bad.is_empty());
        a.remove(&state).unwrap();
        a.remove(&state).unwrap();
        assert_eq!(load_all(&state).unwrap().0, vec![b]);
    }

    #[test]
    fn a_record_written_before_stopped_containers_were_kept_loads_as_running() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let mut json = serde_json::to_value(record("a", 1)).unwrap();
        let fields = json.as_object_mut().unwrap();
        fields.remove("exit");
        fields.remove("remove");
        fs::create_dir_all(dir.path().join("default")).unwrap();
        fs::write(dir.path().join("default/a@1.json"), json.to_string()).unwrap();
        assert_eq!(load_all(&state).unwrap().0, vec![record("a", 1)]);
    }

    #[test]
    fn two_lives_of_an_id_have_two_files() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let old = record("a", 1);
        let new = record("a", 2);
        old.write(&state).unwrap();
        new.write(&state).unwrap();
        old.remove(&state).unwrap();
        assert_eq!(load_all(&state).unwrap().0, vec![new]);
    }

    #[test]
    fn a_damaged_record_is_reported_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        fs::create_dir_all(dir.path().join("default")).unwrap();
        fs::write(dir.path().join("default/x@1.json"), b"{\"namespace\":").unwrap();
        let (loaded, bad) = load_all(&state).unwrap();
        assert!(loaded.is_empty());
        assert_eq!(bad.len(), 1);
        assert!(bad[0].path.ends_with("default/x@1.json"));
    }
}
