//! Stopping a running task from outside: abort and wall-time deadlines.
//!
//! Each engine slot has one [`Interrupter`], cloneable and usable from any
//! thread. `abort(msg_id)` sets a flag only if that task is the one running,
//! so an abort that arrives late cannot hit the next task. The running store
//! checks the flag and its deadline (its [`Watch`]) at every epoch tick
//! (wasmtime's epoch interruption), and a sleeping guest between slices of
//! its sleep (`poll.rs`); when one fires, it ends the guest with an [`Interrupted`]
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
    slot: Mutex<Slot>,
    abort: AtomicBool,
}

/// Early aborts remembered (tasks aborted just before they begin).
const PENDING: usize = 64;

#[derive(Default)]
struct Slot {
    running: Option<MsgId>,
    /// Aborts of tasks not begun yet, most recent last.
    pending: std::collections::VecDeque<MsgId>,
}

impl Interrupter {
    /// Aborts task `msg_id` if it is running now; returns whether it was.
    /// Otherwise the abort is kept for `msg_id` in case it is about to begin
    /// (a queue hands a task over before the slot starts it): see [`Self::begin`].
    pub fn abort(&self, msg_id: MsgId) -> bool {
        let mut slot = self.slot();
        if slot.running == Some(msg_id) {
            self.inner.abort.store(true, Ordering::Release);
            true
        } else {
            if slot.pending.len() == PENDING {
                slot.pending.pop_front();
            }
            slot.pending.push_back(msg_id);
            false
        }
    }

    /// Aborts whatever task is running; returns its id.
    pub fn abort_current(&self) -> Option<MsgId> {
        let slot = self.slot();
        if slot.running.is_some() {
            self.inner.abort.store(true, Ordering::Release);
        }
        slot.running
    }

    /// The task running now, if any.
    pub fn current(&self) -> Option<MsgId> {
        self.slot().running
    }

    /// Marks `msg_id` as running: aborted at once if an abort for it came early.
    pub(crate) fn begin(&self, msg_id: MsgId) {
        let mut slot = self.slot();
        slot.running = Some(msg_id);
        let early = match slot.pending.iter().position(|id| *id == msg_id) {
            Some(i) => slot.pending.remove(i).is_some(),
            None => false,
        };
        self.inner.abort.store(early, Ordering::Release);
    }

    pub(crate) fn end(&self) {
        self.slot().running = None;
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.inner.slot.lock().unwrap_or_else(|p| p.into_inner())
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

/// What a running store watches: its slot's aborts, the task's wall-time
/// deadline, and why it stopped the guest. Checked at every epoch tick by the
/// store's callback, and between the slices of a guest's sleep (`poll.rs`).
#[derive(Clone)]
pub(crate) struct Watch {
    pub interrupter: Interrupter,
    pub deadline: Arc<Mutex<Option<Instant>>>,
    pub interrupted: Arc<Mutex<Option<Interrupted>>>,
}

impl Watch {
    pub(crate) fn new(interrupter: Interrupter) -> Watch {
        Watch {
            interrupter,
            deadline: Arc::new(Mutex::new(None)),
            interrupted: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether the guest must stop now; if so, remembers why, for the
    /// engine to explain the error the guest is ended with.
    pub(crate) fn check(&self) -> Result<(), Interrupted> {
        let due = *lock(&self.deadline);
        self.interrupter.check(due).inspect_err(|why| {
            *lock(&self.interrupted) = Some(*why);
        })
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        let (a, b, c) = (MsgId::new(), MsgId::new(), MsgId::new());
        i.begin(a);
        assert!(!i.abort(b));
        assert_eq!(i.check(None), Ok(()));
        assert!(i.abort(a));
        assert_eq!(i.check(None), Err(Interrupted::Aborted));
        i.end();
        i.begin(c);
        assert_eq!(i.check(None), Ok(()), "a new task starts un-aborted");
    }

    #[test]
    fn an_abort_just_before_begin_is_not_lost() {
        let i = Interrupter::default();
        let a = MsgId::new();
        assert!(!i.abort(a), "not running yet");
        i.begin(a);
        assert_eq!(i.check(None), Err(Interrupted::Aborted));
    }
}
