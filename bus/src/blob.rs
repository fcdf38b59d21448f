//! The in-memory content-addressed blob store, used by the [`LocalBus`](crate::LocalBus).
//!
//! Modules and large values travel as a sha256 hash; the bytes are put here once
//! and fetched by hash. Content addressing makes putting idempotent: the same
//! bytes stored twice are kept once. The store is shared between threads and
//! cheap to clone (all clones see the same blobs). It never evicts and never
//! touches disk: a local cluster lives as long as its process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use grid_proto::BlobHash;

/// Blobs in memory, keyed by the sha256 of their content.
#[derive(Clone, Default)]
pub struct MemoryBlobStore {
    blobs: Arc<RwLock<HashMap<BlobHash, Bytes>>>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> MemoryBlobStore {
        MemoryBlobStore::default()
    }

    /// Stores `bytes` and returns their hash. Storing content that is already
    /// there keeps the first copy.
    pub fn put(&self, bytes: Bytes) -> BlobHash {
        // Hash outside the lock: it is the expensive part.
        let hash = BlobHash::of(&bytes);
        // A poisoned lock only means a panic elsewhere while holding it; the
        // map itself is always consistent (single inserts), so carry on.
        let mut blobs = self.blobs.write().unwrap_or_else(PoisonError::into_inner);
        blobs.entry(hash).or_insert(bytes);
        hash
    }

    /// The blob stored under `hash`, if any (a cheap, reference-counted clone).
    pub fn get(&self, hash: &BlobHash) -> Option<Bytes> {
        let blobs = self.blobs.read().unwrap_or_else(PoisonError::into_inner);
        blobs.get(hash).cloned()
    }

    /// How many distinct blobs are stored.
    pub fn len(&self) -> usize {
        self.blobs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for MemoryBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBlobStore")
            .field("blobs", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_get_returns_the_bytes() {
        let store = MemoryBlobStore::new();
        let bytes = Bytes::from_static(b"(module)");
        let hash = store.put(bytes.clone());
        assert_eq!(hash, BlobHash::of(b"(module)"));
        assert_eq!(store.get(&hash), Some(bytes));
        assert_eq!(store.get(&BlobHash::of(b"something else")), None);
    }

    #[test]
    fn same_content_is_stored_once() {
        let store = MemoryBlobStore::new();
        let first = store.put(Bytes::from(vec![7u8; 1024]));
        let second = store.put(Bytes::from(vec![7u8; 1024]));
        assert_eq!(first, second);
        assert_eq!(store.len(), 1);
        store.put(Bytes::from_static(b"other"));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn clones_share_the_blobs() {
        let store = MemoryBlobStore::new();
        let hash = store.put(Bytes::from_static(b"shared"));
        let clone = store.clone();
        assert_eq!(clone.get(&hash), Some(Bytes::from_static(b"shared")));
    }
}
