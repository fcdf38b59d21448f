//! The in-memory content-addressed blob store, used by the [`LocalBus`](crate::LocalBus).
//!
//! Modules and large values travel as a sha256 hash; the bytes are put here once
//! and fetched by hash. Content addressing makes putting idempotent: the same
//! bytes stored twice are kept once. The store is shared between threads and
//! cheap to clone (all clones see the same blobs). Beside each blob it keeps
//! when it was stored, and for any hash the last recorded use (a `touch`, or
//! putting content already there), which is what the blob collector
//! (`grid_controller::gc`) reads. It never evicts by itself, only on
//! [`MemoryBlobStore::delete`], and never touches disk: a local cluster lives
//! as long as its process.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use grid_proto::{BlobHash, Timestamp};

use crate::BlobInfo;

/// Blobs in memory, keyed by the sha256 of their content.
#[derive(Clone, Default)]
pub struct MemoryBlobStore {
    inner: Arc<RwLock<Blobs>>,
}

#[derive(Default)]
struct Blobs {
    stored: HashMap<BlobHash, Stored>,
    /// The last recorded use of a hash (stored or not: see `touch`).
    uses: HashMap<BlobHash, Timestamp>,
}

struct Stored {
    bytes: Bytes,
    at: Timestamp,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> MemoryBlobStore {
        MemoryBlobStore::default()
    }

    /// Stores `bytes` and returns their hash. Storing content that is already
    /// there keeps the first copy and records a use of it.
    pub fn put(&self, bytes: Bytes) -> BlobHash {
        // Hash outside the lock: it is the expensive part.
        let hash = BlobHash::of(&bytes);
        let now = Timestamp::now();
        let mut guard = self.write();
        let blobs = &mut *guard;
        match blobs.stored.entry(hash) {
            Entry::Occupied(_) => {
                blobs.uses.insert(hash, now);
            }
            Entry::Vacant(new) => {
                new.insert(Stored { bytes, at: now });
            }
        }
        hash
    }

    /// The blob stored under `hash`, if any (a cheap, reference-counted clone).
    pub fn get(&self, hash: &BlobHash) -> Option<Bytes> {
        self.read().stored.get(hash).map(|blob| blob.bytes.clone())
    }

    /// Every stored blob, in no particular order.
    pub fn list(&self) -> Vec<BlobInfo> {
        self.read()
            .stored
            .iter()
            .map(|(hash, blob)| BlobInfo {
                hash: *hash,
                size: blob.bytes.len() as u64,
                stored: blob.at,
            })
            .collect()
    }

    /// Removes `hash` and its recorded use; true if it was stored.
    pub fn delete(&self, hash: &BlobHash) -> bool {
        let mut blobs = self.write();
        blobs.uses.remove(hash);
        blobs.stored.remove(hash).is_some()
    }

    /// Records that `hash` is used now. Recorded even if it is not stored
    /// (yet), as the NATS bus does, which cannot tell without asking.
    pub fn touch(&self, hash: &BlobHash) {
        self.write().uses.insert(*hash, Timestamp::now());
    }

    /// The last recorded use of each hash that has one.
    pub fn uses(&self) -> HashMap<BlobHash, Timestamp> {
        self.read().uses.clone()
    }

    /// How many distinct blobs are stored.
    pub fn len(&self) -> usize {
        self.read().stored.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A poisoned lock only means a panic elsewhere while holding it; the
    // maps themselves are always consistent (single inserts and removals),
    // so carry on.
    fn read(&self) -> RwLockReadGuard<'_, Blobs> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Blobs> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
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

    #[test]
    fn blobs_are_listed_with_when_they_were_stored() {
        let store = MemoryBlobStore::new();
        let before = Timestamp::now();
        let hash = store.put(Bytes::from_static(b"listed"));
        let after = Timestamp::now();
        let listed = store.list();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].hash, listed[0].size), (hash, 6));
        assert!(before <= listed[0].stored && listed[0].stored <= after);
    }

    #[test]
    fn uses_are_recorded_by_touching_and_by_storing_again() {
        let store = MemoryBlobStore::new();
        let hash = store.put(Bytes::from_static(b"used"));
        // A new blob's use is its stored time: no record yet.
        assert_eq!(store.uses().get(&hash), None);
        let before = Timestamp::now();
        store.put(Bytes::from_static(b"used"));
        let stored_again = store.uses()[&hash];
        assert!(stored_again >= before);
        store.touch(&hash);
        assert!(store.uses()[&hash] >= stored_again);
        // A hash that is not stored can be touched (and is reported).
        let absent = BlobHash::of(b"absent");
        store.touch(&absent);
        assert!(store.uses().contains_key(&absent));
    }

    #[test]
    fn deleting_removes_the_blob_and_its_uses() {
        let store = MemoryBlobStore::new();
        let hash = store.put(Bytes::from_static(b"doomed"));
        store.touch(&hash);
        assert!(store.delete(&hash));
        assert_eq!(store.get(&hash), None);
        assert!(store.list().is_empty());
        assert!(store.uses().is_empty());
        assert!(!store.delete(&hash));
        // A record without a blob goes too, and reports `false`.
        store.touch(&hash);
        assert!(!store.delete(&hash));
        assert!(store.uses().is_empty());
    }
}
