//! What a task's wasmtime `Store` holds: the WASI context, the memory limiter,
//! the engine's namespace (moved in for the task, moved back after), and what
//! the host learned while the guest ran (a panic message, a limit that was hit).
//!
//! The engine reads these facts after a failed call to say *why* it failed;
//! they are recorded here rather than recovered from error messages.

use grid_proto::LimitKind;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::Namespace;
use crate::determinism::VirtualTime;
use crate::interrupt::Watch;
use crate::poll::PollFallback;

pub(crate) struct TaskState {
    pub wasi: WasiP1Ctx,
    pub limiter: MemoryLimiter,
    pub namespace: Namespace,
    /// Set by `grid.panic`.
    pub panic: Option<String>,
    /// Aborts and the deadline, for host calls that block (a guest's sleep).
    pub watch: Watch,
    /// wasmtime-wasi's own `poll_oneoff`, for the polls `poll.rs` does not
    /// answer itself; made on first use.
    pub poll_fallback: Option<PollFallback>,
    /// The clocks of a deterministic task (its sleeps advance them).
    pub virtual_time: Option<VirtualTime>,
}

/// Enforces the task's memory limit, remembering when it did.
pub(crate) struct MemoryLimiter {
    max_bytes: u64,
    pub hit: Option<(LimitKind, u64)>,
}

impl MemoryLimiter {
    pub fn new(max_bytes: u64) -> Self {
        MemoryLimiter {
            max_bytes,
            hit: None,
        }
    }
}

/// The guest asked for more memory than its limit allows.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {0} bytes exceeded")]
pub(crate) struct MemoryLimitExceeded(pub u64);

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_bytes {
            self.hit = Some((LimitKind::Memory, self.max_bytes));
            return Err(wasmtime::Error::new(MemoryLimitExceeded(self.max_bytes)));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pooling allocator's per-table maximum.
        Ok(true)
    }
}
