//! When to record that this process uses a module: at most once per interval.
//!
//! The cluster's blob collector (`grid_controller::gc`) deletes the blobs no
//! one used for a while, so the engine slots record in the blob store that
//! they use a module when a task needs it and, from their heartbeat, while
//! the task runs. On NATS a record is a JetStream write, and a process may
//! start thousands of tasks a second: [`ModuleUses`] lets one record per
//! module through per interval, for all the slots of a process, so a task
//! pays a lock and a map lookup. It does no I/O (the slots send the records,
//! `service.rs`) and reads no clock. It remembers every module it let
//! through, as the runtime's module cache remembers every module loaded.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use grid_proto::ModuleHash;

/// The last time each module's use was let through, for one process.
pub(crate) struct ModuleUses {
    interval: Duration,
    recorded: Mutex<HashMap<ModuleHash, Instant>>,
}

impl ModuleUses {
    /// Lets a use of each module through at most once per `interval`.
    pub(crate) fn new(interval: Duration) -> ModuleUses {
        ModuleUses {
            interval,
            recorded: Mutex::default(),
        }
    }

    /// Whether a use of `module` at `now` is to be recorded: yes when none
    /// was let through within the interval before `now`. A yes counts as
    /// recorded, whether or not the record then reaches the store.
    pub(crate) fn due(&self, module: ModuleHash, now: Instant) -> bool {
        // A panic while holding the lock cannot leave the map half-updated.
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        match recorded.get(&module) {
            Some(&last) if now.saturating_duration_since(last) < self.interval => false,
            _ => {
                recorded.insert(module, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(10);

    #[test]
    fn one_use_per_module_per_interval_is_let_through() {
        let uses = ModuleUses::new(INTERVAL);
        let (a, b) = (ModuleHash::of(b"a"), ModuleHash::of(b"b"));
        let start = Instant::now();
        assert!(uses.due(a, start));
        assert!(!uses.due(a, start + Duration::from_secs(1)));
        assert!(uses.due(b, start + Duration::from_secs(1)), "per module");
        assert!(!uses.due(a, start + INTERVAL - Duration::from_millis(1)));
        assert!(uses.due(a, start + INTERVAL));
        assert!(!uses.due(a, start + INTERVAL + Duration::from_secs(1)));
    }

    #[test]
    fn a_zero_interval_lets_every_use_through() {
        let uses = ModuleUses::new(Duration::ZERO);
        let module = ModuleHash::of(b"m");
        let now = Instant::now();
        assert!(uses.due(module, now));
        assert!(uses.due(module, now));
    }

    #[test]
    fn an_earlier_instant_than_the_last_record_is_not_due() {
        // Slots of one process race to the lock: the later caller may
        // bring the earlier instant.
        let uses = ModuleUses::new(INTERVAL);
        let module = ModuleHash::of(b"m");
        let now = Instant::now() + Duration::from_secs(1);
        assert!(uses.due(module, now));
        assert!(!uses.due(module, now - Duration::from_secs(1)));
    }
}
