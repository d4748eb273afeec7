//! Garbage collection from references, never from guesses.
//!
//! Alive are: every blob an image record lists; every committed snapshot an image's manifest
//! sits on, or an active snapshot sits on, with all their parents; and everything an in-flight
//! operation holds a lease on ([`crate::lease`]). Everything else committed or stored is removed:
//! snapshot records first (one transaction), then their directories, then blob files. Active
//! snapshots belong to their containers and are only removed by releasing them.
//!
//! An import that fails runs the same collection limited to what it wrote itself, so it leaves
//! nothing behind that nothing else needs.

use std::collections::{BTreeSet, HashSet};

use crate::digest::Digest;
use crate::error::Result;
use crate::metadata::SnapshotKind;
use crate::ImageStore;

/// What a collection removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub blobs_removed: Vec<Digest>,
    /// Chain IDs of the committed snapshots removed.
    pub snapshots_removed: Vec<Digest>,
    /// Bytes of blob content removed (snapshot directories not counted).
    pub bytes_freed: u64,
}

/// What a collection may look at.
pub(crate) enum Scope<'a> {
    /// Everything in the store (`prune`).
    All,
    /// Only these (what one import wrote).
    Only {
        blobs: &'a [Digest],
        snapshots: &'a [Digest],
    },
}

/// Removes what nothing references within `scope`.
pub(crate) fn collect(store: &ImageStore, scope: Scope<'_>) -> Result<PruneReport> {
    let leases = store.leases.lock();
    let images = store.meta.images(None)?;
    let snapshots = store.meta.snapshots()?;

    let live_blobs: HashSet<&Digest> = images.iter().flat_map(|(_, i)| &i.blobs).collect();

    // Roots: what images and containers sit on, and what in-flight operations hold.
    let mut pending: Vec<Digest> = images
        .iter()
        .flat_map(|(_, i)| i.manifests.iter().filter_map(|m| m.top_snapshot.clone()))
        .chain(snapshots.values().filter_map(|r| match r.kind {
            SnapshotKind::Active { .. } => r.parent.clone(),
            SnapshotKind::Committed => None,
        }))
        .chain(leases.held_snapshots().cloned())
        .collect();
    let mut live_snapshots: HashSet<Digest> = HashSet::new();
    while let Some(chain_id) = pending.pop() {
        if let Some(record) = snapshots.get(&chain_id.to_string()) {
            pending.extend(record.parent.clone());
        }
        live_snapshots.insert(chain_id);
    }

    let committed: BTreeSet<Digest> = snapshots
        .iter()
        .filter(|(_, r)| r.kind == SnapshotKind::Committed)
        .filter_map(|(key, _)| key.parse().ok())
        .collect();
    let dead_snapshots: Vec<Digest> = match scope {
        Scope::All => committed.iter().cloned().collect::<Vec<_>>(),
        Scope::Only { snapshots, .. } => snapshots
            .iter()
            .filter(|s| committed.contains(*s))
            .cloned()
            .collect(),
    }
    .into_iter()
    .filter(|s| !live_snapshots.contains(s))
    .collect();
    store
        .snapshots
        .remove_committed(&store.meta, &dead_snapshots)?;

    let candidates: Vec<(Digest, u64)> = match scope {
        Scope::All => store
            .content
            .list()?
            .into_iter()
            .map(|c| (c.digest, c.size))
            .collect(),
        Scope::Only { blobs, .. } => {
            let mut out = Vec::new();
            for digest in blobs.iter().collect::<BTreeSet<_>>() {
                if let Some(size) = store.content.size(digest)? {
                    out.push((digest.clone(), size));
                }
            }
            out
        }
    };
    let mut report = PruneReport {
        snapshots_removed: dead_snapshots,
        ..PruneReport::default()
    };
    for (digest, size) in candidates {
        if live_blobs.contains(&digest) || leases.holds_blob(&digest) {
            continue;
        }
        store.content.remove(&digest)?;
        report.bytes_freed += size;
        report.blobs_removed.push(digest);
    }
    Ok(report)
}
