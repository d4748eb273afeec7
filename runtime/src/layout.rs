//! Where the daemon keeps things under its state directory.
//!
//! ```text
//! <state-dir>/ctrd.sock               the socket (default)
//! <state-dir>/runc/<namespace>/       runc's --root: runc owns everything below
//! <state-dir>/runc-logs/              runc's --log files, one per call, removed after reading
//! <state-dir>/events/                 the event journal's segment files
//! <state-dir>/<namespace>/<id>/       a container's pid file and its stdout.log / stderr.log
//! <state-dir>/bundles/<namespace>/<id>/  the bundle of a container run from an image: its
//!                                     config.json and its snapshot mounted at rootfs/
//! ```
//! Every name joined here is a validated [`Namespace`] or [`ContainerId`].

use std::path::{Path, PathBuf};

use crate::{ContainerId, Namespace};

#[derive(Debug, Clone)]
pub struct StateDir(PathBuf);

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir(root.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// All runc roots live below this one, so one check shows nothing is left behind.
    pub fn runc_base(&self) -> PathBuf {
        self.0.join("runc")
    }

    pub fn runc_root(&self, ns: &Namespace) -> PathBuf {
        self.runc_base().join(ns.as_str())
    }

    pub fn runc_logs(&self) -> PathBuf {
        self.0.join("runc-logs")
    }

    pub fn events_dir(&self) -> PathBuf {
        self.0.join("events")
    }

    pub fn bundle_dir(&self, ns: &Namespace, id: &ContainerId) -> PathBuf {
        self.0.join("bundles").join(ns.as_str()).join(id.as_str())
    }

    pub fn container_dir(&self, ns: &Namespace, id: &ContainerId) -> PathBuf {
        self.0.join(ns.as_str()).join(id.as_str())
    }
}
