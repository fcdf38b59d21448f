//! The epoch ticker: one thread per runtime that advances wasmtime's epoch
//! while any task runs, so running tasks check their abort flag and wall-time
//! deadline once per tick (see `interrupt.rs`).
//!
//! It drives every wasmtime engine of the runtime (its normal and its
//! deterministic flavor). It parks when no task runs, so an idle engine
//! costs nothing. It holds only weak references to the wasmtime engines and
//! stops when the runtime drops.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub(crate) struct Ticker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    active: AtomicUsize,
    stop: AtomicBool,
    engines: Mutex<Vec<wasmtime::EngineWeak>>,
}

impl Ticker {
    pub(crate) fn start(tick: Duration) -> std::io::Result<Ticker> {
        let shared = Arc::new(Shared {
            active: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            engines: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let thread = thread::Builder::new()
            .name("grid-epoch".into())
            .spawn(move || {
                while !s.stop.load(Ordering::Acquire) {
                    if s.active.load(Ordering::Acquire) == 0 {
                        thread::park();
                        continue;
                    }
                    thread::sleep(tick);
                    let engines = s.engines.lock().unwrap_or_else(|p| p.into_inner());
                    for engine in engines.iter().filter_map(wasmtime::EngineWeak::upgrade) {
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(Ticker {
            shared,
            thread: Some(thread),
        })
    }

    /// Advances `engine`'s epoch too, from now on.
    pub(crate) fn drive(&self, engine: &wasmtime::Engine) {
        self.shared
            .engines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(engine.weak());
    }

    /// Marks a task as running until the guard drops.
    pub(crate) fn running(&self) -> Running<'_> {
        if self.shared.active.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(t) = &self.thread
        {
            t.thread().unpark();
        }
        Running { ticker: self }
    }
}

pub(crate) struct Running<'a> {
    ticker: &'a Ticker,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.ticker.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
