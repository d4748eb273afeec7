//! A lock per key (a blob digest, a layer's chain ID), so that concurrent imports sharing a blob
//! or a layer write or unpack it once: the second waits for the first, then finds it done.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, PoisonError};

/// The set of keys currently held; waiters sleep on the condvar until theirs is released.
#[derive(Default)]
pub(crate) struct KeyedLocks {
    held: Mutex<HashSet<String>>,
    released: Condvar,
}

/// Holds one key until dropped.
pub(crate) struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
}

impl KeyedLocks {
    /// Blocks until no one else holds `key`, then holds it.
    pub(crate) fn lock(&self, key: &str) -> KeyGuard<'_> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        while held.contains(key) {
            held = self
                .released
                .wait(held)
                .unwrap_or_else(PoisonError::into_inner);
        }
        held.insert(key.to_string());
        KeyGuard {
            locks: self,
            key: key.to_string(),
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut held = self
            .locks
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.remove(&self.key);
        self.locks.released.notify_all();
    }
}
