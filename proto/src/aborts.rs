//! [`EarlyAborts`]: aborts that overtook the task they name.
//!
//! An abort travels on other subjects than its task (`hub.abort` and
//! `engine.<id>.control`, against `sched.submit` and `engine.<id>.task`), so
//! both the controller and an engine can hear of an abort before the task.
//! Both remember such ids, a bounded number of them, and abort the task when
//! it shows up; this is the one memory they share. No I/O, like the rest of
//! this crate.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use crate::MsgId;

/// How many early aborts are remembered by default; beyond that the oldest
/// are forgotten.
pub const EARLY_ABORTS: usize = 10_000;

/// Ids aborted before their task was seen: at most a bound, the oldest
/// forgotten first. Each id carries its place in line, so spending one (its
/// task arrived) leaves nothing stale behind.
#[derive(Debug)]
pub struct EarlyAborts {
    by_id: HashMap<MsgId, u64>,
    in_order: BTreeMap<u64, MsgId>,
    next: u64,
    bound: usize,
}

impl Default for EarlyAborts {
    fn default() -> Self {
        EarlyAborts::with_bound(EARLY_ABORTS)
    }
}

impl EarlyAborts {
    /// Remembers at most `bound` ids.
    pub fn with_bound(bound: usize) -> EarlyAborts {
        EarlyAborts {
            by_id: HashMap::new(),
            in_order: BTreeMap::new(),
            next: 0,
            bound,
        }
    }

    /// Remembers `msg_id` (once: a repeated abort keeps its first place).
    pub fn remember(&mut self, msg_id: MsgId) {
        if let Entry::Vacant(entry) = self.by_id.entry(msg_id) {
            entry.insert(self.next);
            self.in_order.insert(self.next, msg_id);
            self.next += 1;
        }
        while self.by_id.len() > self.bound {
            let Some((_, oldest)) = self.in_order.pop_first() else {
                break;
            };
            self.by_id.remove(&oldest);
        }
    }

    /// Whether `msg_id` was aborted early; forgets it either way.
    pub fn take(&mut self, msg_id: &MsgId) -> bool {
        match self.by_id.remove(msg_id) {
            Some(place) => {
                self.in_order.remove(&place);
                true
            }
            None => false,
        }
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_forgotten_first_and_spent_once() {
        let mut early = EarlyAborts::with_bound(2);
        let ids: Vec<MsgId> = (0..3).map(|_| MsgId::new()).collect();
        for id in &ids {
            early.remember(*id);
        }
        early.remember(ids[1]);
        assert_eq!(early.len(), 2);
        assert!(!early.take(&ids[0]), "the oldest was forgotten");
        assert!(early.take(&ids[1]));
        assert!(!early.take(&ids[1]), "spent");
        assert!(early.take(&ids[2]));
        assert!(early.is_empty());
    }
}
