//! Leases: what in-flight operations hold alive before the metadata names it.
//!
//! An import writes blobs and unpacks layers first and records its images last; until then
//! nothing in the database references what it wrote. A lease marks those blobs and snapshots so
//! garbage collection leaves them alone. The rule that makes this race-free: an operation takes
//! its lease on a digest *before* it looks for or writes that digest, and the collector holds the
//! table's lock for its whole run, so it sees either the lease or the finished record.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::digest::Digest;

/// Lease counts per blob and per committed snapshot (by chain ID).
#[derive(Default)]
pub(crate) struct LeaseTable {
    blobs: HashMap<Digest, usize>,
    snapshots: HashMap<Digest, usize>,
}

impl LeaseTable {
    pub(crate) fn holds_blob(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }

    pub(crate) fn held_snapshots(&self) -> impl Iterator<Item = &Digest> {
        self.snapshots.keys()
    }
}

/// The store's lease table.
#[derive(Default)]
pub(crate) struct Leases {
    table: Mutex<LeaseTable>,
}

impl Leases {
    /// Locks the table; the garbage collector holds this for its whole run.
    pub(crate) fn lock(&self) -> MutexGuard<'_, LeaseTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new, empty lease, released when dropped.
    pub(crate) fn begin(&self) -> Lease<'_> {
        Lease {
            leases: self,
            blobs: Vec::new(),
            snapshots: Vec::new(),
        }
    }
}

/// What one operation holds.
pub(crate) struct Lease<'a> {
    leases: &'a Leases,
    blobs: Vec<Digest>,
    snapshots: Vec<Digest>,
}

impl Lease<'_> {
    pub(crate) fn blob(&mut self, digest: &Digest) {
        *self.leases.lock().blobs.entry(digest.clone()).or_default() += 1;
        self.blobs.push(digest.clone());
    }

    pub(crate) fn snapshot(&mut self, chain_id: &Digest) {
        *self
            .leases
            .lock()
            .snapshots
            .entry(chain_id.clone())
            .or_default() += 1;
        self.snapshots.push(chain_id.clone());
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut guard = self.leases.lock();
        let table = &mut *guard;
        release(&mut table.blobs, &self.blobs);
        release(&mut table.snapshots, &self.snapshots);
    }
}

fn release(counts: &mut HashMap<Digest, usize>, keys: &[Digest]) {
    for key in keys {
        if let Some(count) = counts.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(key);
            }
        }
    }
}
