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
//!
//! [`spawn_consumer`] decides, for a future that consumes a bus's messages,
//! between such a thread and a plain task, from where the bus produces them
//! ([`Bus::delivers_on_runtime`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::Bus;

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

/// Runs `consumer`, a future that takes messages from `bus` and never blocks
/// its thread, where it gets them soonest. On a bus that produces messages
/// on the runtime (NATS, reading its socket), that is a task there: no
/// hand-over between threads. On one that produces them on the publisher's
/// thread (in process), it is a thread of its own named `name` that spins
/// briefly before parking ([`spin_block_on`], the runtime entered): a reply
/// usually comes while a caller waits, and waking a parked thread costs more
/// than the rest of a local round trip. Either way the handle gives the
/// output, or the panic that ended it. Must be called inside a tokio runtime.
pub fn spawn_consumer<F>(
    bus: &dyn Bus,
    name: &str,
    consumer: F,
) -> std::io::Result<tokio::task::JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if bus.delivers_on_runtime() {
        return Ok(tokio::spawn(consumer));
    }
    let runtime = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _runtime = runtime.enter();
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(|| spin_block_on(consumer, SPIN)));
            let _ = done_tx.send(outcome);
        })?;
    let name = name.to_string();
    Ok(tokio::spawn(async move {
        match done_rx.await {
            Ok(Ok(output)) => output,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => panic!("the {name} thread ended without an outcome"),
        }
    }))
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_consumer_on_a_thread_gives_its_output_or_its_panic() {
        // The in-process bus: the consumer gets a spinning thread.
        let bus = crate::LocalBus::new();
        let done = spawn_consumer(&bus, "grid-test", async { 7 }).unwrap();
        assert_eq!(done.await.unwrap(), 7);
        let fail = true;
        let failed = spawn_consumer(&bus, "grid-test", async move {
            assert!(!fail, "the consumer failed");
        })
        .unwrap();
        assert!(failed.await.unwrap_err().is_panic());
    }
}
