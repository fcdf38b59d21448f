//! Waiting for bus messages on a thread of one's own, without paying for a
//! cold wake-up.
//!
//! [`spin_block_on`] runs a future on the calling thread like
//! `Handle::block_on`, but when the future is pending it keeps checking for a
//! wake-up for a short while before it parks the thread. Messages of a busy
//! cluster arrive microseconds apart, and waking a parked thread (an idle vCPU
//! in a VM) was measured here at 30-60 us, more than a whole local round trip.
//! The cost is that short spin, only after work and only on threads that
//! serve the bus (the controller, engine workers). Callers must have entered
//! a tokio runtime if the future uses tokio timers.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Polls `fut` once, without waiting: its output if it is ready. Dropping
/// a pending future must be harmless for the caller (it is for a channel
/// receive or send).
pub fn now_or_never<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// How long [`spin_block_on`] looks for a wake-up before parking.
pub const SPIN: Duration = Duration::from_micros(50);

struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Runs `future` to completion on this thread, spinning up to `spin` before
/// each park.
pub fn spin_block_on<F: Future>(future: F, spin: Duration) -> F::Output {
    let state = Arc::new(ThreadWaker {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let until = Instant::now() + spin;
        while !state.woken.load(Ordering::Acquire) && Instant::now() < until {
            std::thread::yield_now();
        }
        while !state.woken.swap(false, Ordering::AcqRel) {
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_a_future_woken_from_another_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            tx.send(42).unwrap();
        });
        assert_eq!(spin_block_on(rx, SPIN), Ok(42));
        sender.join().unwrap();
    }
}
