//! Offered blobs: large transient values held by the process that made them.
//!
//! A work or result body over the spill threshold is needed by one or a few
//! receivers, once, right away. Putting it in the durable blob store and
//! reading it back there (JetStream's object store acknowledges every chunk)
//! costs far more than the value is worth, so the sender *offers* it instead:
//! it keeps the bytes in memory and serves them by hash to whoever asks
//! (`Bus::get_blob` asks the offerers first, then the store). This file is
//! the bookkeeping both buses share: which blobs are offered, how many
//! holders each has, and which to move to the durable store when the offers
//! outgrow their memory budget. It does no I/O; the buses do.
//!
//! The lifetime rules, which the callers follow:
//! - an offer is reference-counted: the same content offered twice is held
//!   once, and stays until released as many times (a client releases a work
//!   body when the reply to its task arrives: the engine has read it);
//! - an offer never released (a result body: any client may ask the
//!   controller for any result later) stays until the offers of the process
//!   outgrow [`OFFER_BUDGET`]; then the oldest are written to the durable
//!   store first and dropped after, so a value is never lost while its
//!   process lives and the store works. A value offered by a process that
//!   died before it was persisted is gone: the fetch fails, naming the blob.

use std::collections::HashMap;

use bytes::Bytes;
use grid_proto::BlobHash;

/// Bytes of offered blobs a process holds before it persists the oldest.
pub const OFFER_BUDGET: usize = 256 << 20;

/// The offers of one process. `S` is what a bus keeps per offer to serve it
/// (the NATS bus: the task answering fetches).
pub(crate) struct Offers<S> {
    entries: HashMap<BlobHash, Entry<S>>,
    /// Bytes held by entries not being persisted.
    held: usize,
    next_age: u64,
    budget: usize,
}

struct Entry<S> {
    bytes: Bytes,
    refs: usize,
    age: u64,
    /// Chosen for the durable store; dropped once it is there.
    persisting: bool,
    serving: Option<S>,
}

impl<S> Offers<S> {
    pub(crate) fn new(budget: usize) -> Offers<S> {
        Offers {
            entries: HashMap::new(),
            held: 0,
            next_age: 0,
            budget,
        }
    }

    /// The bytes offered under `hash`, if any (a cheap clone).
    pub(crate) fn get(&self, hash: &BlobHash) -> Option<Bytes> {
        self.entries.get(hash).map(|entry| entry.bytes.clone())
    }

    /// Adds a holder of `bytes` (whose hash is `hash`). True when the blob
    /// was not offered before: the caller must start serving it.
    pub(crate) fn add(&mut self, hash: BlobHash, bytes: Bytes) -> bool {
        if let Some(entry) = self.entries.get_mut(&hash) {
            entry.refs += 1;
            return false;
        }
        self.held += bytes.len();
        self.next_age += 1;
        self.entries.insert(
            hash,
            Entry {
                bytes,
                refs: 1,
                age: self.next_age,
                persisting: false,
                serving: None,
            },
        );
        true
    }

    /// Records how the offer of `hash` is served.
    pub(crate) fn set_serving(&mut self, hash: &BlobHash, serving: S) {
        if let Some(entry) = self.entries.get_mut(hash) {
            entry.serving = Some(serving);
        }
    }

    /// Drops one holder of `hash`. When it was the last, the offer is removed
    /// and its serving handle returned (to stop it). Releasing what is not
    /// offered (persisted meanwhile, or never offered) does nothing.
    pub(crate) fn release(&mut self, hash: &BlobHash) -> Option<Option<S>> {
        let entry = self.entries.get_mut(hash)?;
        entry.refs = entry.refs.saturating_sub(1);
        if entry.refs > 0 || entry.persisting {
            return None;
        }
        self.remove(hash)
    }

    /// Removes the offer of `hash` whatever its holders (once persisted).
    pub(crate) fn remove(&mut self, hash: &BlobHash) -> Option<Option<S>> {
        let entry = self.entries.remove(hash)?;
        if !entry.persisting {
            self.held -= entry.bytes.len();
        }
        Some(entry.serving)
    }

    /// The oldest offers to move to the durable store so that the rest fit
    /// the budget. They stay offered (and served) until [`Offers::remove`].
    pub(crate) fn over_budget(&mut self) -> Vec<(BlobHash, Bytes)> {
        if self.held <= self.budget {
            return Vec::new();
        }
        let mut candidates: Vec<(u64, BlobHash)> = self
            .entries
            .iter()
            .filter(|(_, entry)| !entry.persisting)
            .map(|(hash, entry)| (entry.age, *hash))
            .collect();
        candidates.sort_unstable();
        let mut chosen = Vec::new();
        for (_, hash) in candidates {
            if self.held <= self.budget {
                break;
            }
            let entry = self.entries.get_mut(&hash).expect("listed just above");
            entry.persisting = true;
            self.held -= entry.bytes.len();
            chosen.push((hash, entry.bytes.clone()));
        }
        chosen
    }

    /// How many blobs are offered.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(byte: u8, len: usize) -> (BlobHash, Bytes) {
        let bytes = Bytes::from(vec![byte; len]);
        (BlobHash::of(&bytes), bytes)
    }

    #[test]
    fn an_offer_lives_until_its_last_holder_releases_it() {
        let mut offers = Offers::<&str>::new(1 << 20);
        let (hash, bytes) = blob(1, 100);
        assert!(offers.add(hash, bytes.clone()));
        offers.set_serving(&hash, "server");
        assert!(!offers.add(hash, bytes.clone()));
        assert_eq!(offers.release(&hash), None);
        assert_eq!(offers.get(&hash), Some(bytes));
        assert_eq!(offers.release(&hash), Some(Some("server")));
        assert_eq!(offers.get(&hash), None);
        assert_eq!(offers.release(&hash), None);
        assert_eq!(offers.len(), 0);
    }

    #[test]
    fn the_oldest_offers_are_persisted_past_the_budget() {
        let mut offers = Offers::<()>::new(250);
        let (first, _) = blob(1, 100);
        let (second, _) = blob(2, 100);
        let (third, _) = blob(3, 100);
        offers.add(first, blob(1, 100).1);
        offers.add(second, blob(2, 100).1);
        assert!(offers.over_budget().is_empty());
        offers.add(third, blob(3, 100).1);
        let chosen: Vec<BlobHash> = offers.over_budget().into_iter().map(|(h, _)| h).collect();
        assert_eq!(chosen, vec![first]);
        // Chosen once only, and still served until removed.
        assert!(offers.over_budget().is_empty());
        assert!(offers.get(&first).is_some());
        // A release while it is being persisted does not drop it early.
        assert_eq!(offers.release(&first), None);
        assert!(offers.get(&first).is_some());
        assert_eq!(offers.remove(&first), Some(None));
        assert_eq!(offers.len(), 2);
        assert!(offers.over_budget().is_empty());
    }
}
