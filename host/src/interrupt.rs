//! Stopping a running task from outside: abort and wall-time deadlines.
//!
//! Each engine slot has one [`Interrupter`], cloneable and usable from any
//! thread. `abort(msg_id)` sets a flag only if that task is the one running,
//! so an abort that arrives late cannot hit the next task. The running store
//! checks the flag and its deadline at every epoch tick (wasmtime's epoch
//! interruption) and, when one fires, ends the guest with an [`Interrupted`]
//! error that the engine turns into `aborted` or a wall-time `limit`. Queued
//! tasks are not this module's business: whoever holds the queue drops them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use grid_proto::MsgId;

/// Interrupts the task running on one engine slot.
#[derive(Clone, Default)]
pub struct Interrupter {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    running: Mutex<Option<MsgId>>,
    abort: AtomicBool,
}

impl Interrupter {
    /// Aborts task `msg_id` if it is running now; returns whether it was.
    pub fn abort(&self, msg_id: MsgId) -> bool {
        let running = self.running();
        if *running == Some(msg_id) {
            self.inner.abort.store(true, Ordering::Release);
            true
        } else {
            false
        }
    }

    /// Aborts whatever task is running; returns its id.
    pub fn abort_current(&self) -> Option<MsgId> {
        let running = self.running();
        if running.is_some() {
            self.inner.abort.store(true, Ordering::Release);
        }
        *running
    }

    /// The task running now, if any.
    pub fn current(&self) -> Option<MsgId> {
        *self.running()
    }

    pub(crate) fn begin(&self, msg_id: MsgId) {
        let mut running = self.running();
        *running = Some(msg_id);
        self.inner.abort.store(false, Ordering::Release);
    }

    pub(crate) fn end(&self) {
        *self.running() = None;
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Option<MsgId>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the store's epoch callback calls at every tick.
    pub(crate) fn check(&self, deadline: Option<Instant>) -> Result<(), Interrupted> {
        if self.inner.abort.load(Ordering::Acquire) {
            return Err(Interrupted::Aborted);
        }
        match deadline {
            Some(d) if Instant::now() >= d => Err(Interrupted::WallTime),
            _ => Ok(()),
        }
    }
}

/// Why a running guest was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Interrupted {
    #[error("task aborted")]
    Aborted,
    #[error("wall-time limit reached")]
    WallTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_hits_only_the_running_task() {
        let i = Interrupter::default();
        let (a, b) = (MsgId::new(), MsgId::new());
        assert!(!i.abort(a), "nothing runs yet");
        i.begin(a);
        assert!(!i.abort(b));
        assert_eq!(i.check(None), Ok(()));
        assert!(i.abort(a));
        assert_eq!(i.check(None), Err(Interrupted::Aborted));
        i.end();
        i.begin(b);
        assert_eq!(i.check(None), Ok(()), "a new task starts un-aborted");
    }
}
