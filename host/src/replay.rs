//! The results an engine slot published lately, kept to publish them again
//! for a controller that restarted.
//!
//! Results go straight from an engine to its client (`result.<client>`),
//! and the controller records them on the same subject. While no
//! controller runs (it crashed and is being restarted), nobody records
//! them, and results of tasks sent with retries (`sched.result`) reach no
//! one at all. So each slot keeps what it published in the last moments,
//! bounded ([`KEEP_RESULTS`], [`KEEP_BYTES`], oldest dropped first), and
//! when the controller's beat comes from a new incarnation, it publishes
//! again everything from shortly before the old one's last beat
//! ([`MARGIN`]): the new controller records them (the first result of a
//! task wins, so one it had is unchanged) and delivers the held ones; a
//! client ignores a result it has. While the same controller beats, what
//! is older than the margin is dropped. This file keeps and hands out; the
//! slot's shell does the watching and publishing.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Results kept at most, per slot.
pub const KEEP_RESULTS: usize = 4096;

/// Bytes of results kept at most, per slot (a large result is a blob: its
/// message is small).
pub const KEEP_BYTES: usize = 4 << 20;

/// How long before the old controller's last beat a result may have been
/// published and still not recorded (on its way when it died).
pub const MARGIN: Duration = Duration::from_secs(2);

/// A slot's recently published results.
#[derive(Default)]
pub(crate) struct Recent {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    results: VecDeque<(Instant, String, Bytes)>,
    bytes: usize,
}

impl Recent {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A result was published on `subject`.
    pub(crate) fn note(&self, subject: &str, payload: &Bytes) {
        let mut kept = self.lock();
        kept.bytes += payload.len();
        kept.results
            .push_back((Instant::now(), subject.to_string(), payload.clone()));
        while kept.results.len() > KEEP_RESULTS || kept.bytes > KEEP_BYTES {
            match kept.results.pop_front() {
                Some((_, _, old)) => kept.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Drops what was published before `t`.
    pub(crate) fn forget_before(&self, t: Instant) {
        let mut kept = self.lock();
        while kept.results.front().is_some_and(|(at, _, _)| *at < t) {
            if let Some((_, _, old)) = kept.results.pop_front() {
                kept.bytes -= old.len();
            }
        }
    }

    /// What was published from `t` on, oldest first.
    pub(crate) fn since(&self, t: Instant) -> Vec<(String, Bytes)> {
        self.lock()
            .results
            .iter()
            .filter(|(at, _, _)| *at >= t)
            .map(|(_, subject, payload)| (subject.clone(), payload.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_within_its_bounds() {
        let recent = Recent::default();
        let start = Instant::now();
        for i in 0..KEEP_RESULTS + 10 {
            recent.note("result.a", &Bytes::from(i.to_string()));
        }
        let all = recent.since(start);
        assert_eq!(all.len(), KEEP_RESULTS);
        assert_eq!(all[0].1, Bytes::from("10"), "the oldest go first");
        recent.note("big", &Bytes::from(vec![0; KEEP_BYTES]));
        assert_eq!(recent.since(start).len(), 1, "bytes bound too");
        recent.forget_before(Instant::now() + Duration::from_secs(1));
        assert!(recent.since(start).is_empty());
    }
}
