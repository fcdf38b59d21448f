//! WASI `poll_oneoff`, answered here for a guest's plain sleep: precise to
//! tens of microseconds, and ended by an abort or the wall-time limit.
//!
//! A plain sleep (Rust's `std::thread::sleep`, C's `nanosleep`) reaches the
//! host as `poll_oneoff` on one relative clock. wasmtime-wasi answers it with
//! one `std::thread::sleep`, which on the VMs we run on wakes ~0.2 ms late on
//! average (0.5 ms at worst), and which nothing can cut short: an aborted or
//! timed-out guest slept on, because epoch interruption only stops guest code.
//! This module shadows `poll_oneoff` in the engine's linker and answers that
//! one case itself:
//! - It sleeps in slices of at most [`SLICE`], checking the task's abort flag
//!   and deadline between them (the store's [`Watch`]), so a sleeping task
//!   is stopped within a slice, with the same error as a running one.
//! - It sleeps until shortly before the end, then yields the CPU in a loop
//!   until the end: the last 1/20 of the sleep, at most [`MAX_SPIN`]. That
//!   costs at most 5% of a core while sleeping, for a sleep that ends within
//!   ~10 us of when it should. (Measured here: 20 sleeps of 50 ms overshoot
//!   by 0.2 ms each with one `thread::sleep`, ~10 us with the final spin.)
//!
//! The answer is what wasmtime-wasi writes for the same poll: one clock
//! event with the subscription's userdata. Every other poll (absolute
//! clocks, several subscriptions, file descriptors, bad pointers) goes to
//! wasmtime-wasi's own implementation, so its results and errors are
//! unchanged. That implementation finds the guest's memory through the
//! *calling instance's* `memory` export, so a host function cannot call it
//! directly (it would fail with "missing required memory export"). It is
//! called through a tiny shim module instead, instantiated in the task's
//! store on first need, which imports the guest's memory and exports it
//! again. This module must not answer any poll it does not fully understand.
//!
//! In deterministic mode (the store has a virtual time, see
//! `determinism.rs`) a sleep does not sleep: it moves the virtual time on
//! by its length and returns at once, with the same event. An absolute
//! sleep on one clock counts from the virtual time too. A poll that mixes
//! clocks and file descriptors still goes to wasmtime-wasi, whose timeouts
//! then read the virtual clocks but wait in real time.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::{Caller, Extern, Instance, Linker, Memory, Module, TypedFunc};

use crate::determinism::WALL_START;
use crate::interrupt::{Interrupted, Watch};
use crate::store::TaskState;

const WASI: &str = "wasi_snapshot_preview1";
const POLL: &str = "poll_oneoff";

/// The longest a sleeping guest goes without its abort flag being checked.
const SLICE: Duration = Duration::from_millis(5);
/// The longest final stretch of a sleep spent yielding rather than asleep.
const MAX_SPIN: Duration = Duration::from_millis(1);

/// wasmtime-wasi's `poll_oneoff`, reached through the shim.
pub(crate) type PollFallback = TypedFunc<(i32, i32, i32, i32), i32>;

const SHIM: &str = r#"(module
  (import "guest" "memory" (memory 0))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll (param i32 i32 i32 i32) (result i32)))
  (export "memory" (memory 0))
  (func (export "poll_oneoff") (param i32 i32 i32 i32) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 call $poll))"#;

// Layouts from the WASI preview 1 witx: a `subscription` is 48 bytes
// (userdata u64 at 0, the union's tag u8 at 8, a clock's id u32 at 16,
// timeout u64 at 24, precision u64 at 32, flags u16 at 40); an `event` is
// 32 bytes (userdata u64 at 0, errno u16 at 8, type u8 at 10, nbytes u64 at
// 16, flags u16 at 24). Everything is 8-aligned and little-endian.
const SUBSCRIPTION: usize = 48;
const EVENT: usize = 32;
const TAG_CLOCK: u8 = 0;
const FLAG_ABSTIME: u16 = 1;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;

/// Shadows WASI's `poll_oneoff` in `linker`, which must already hold
/// wasmtime-wasi's preview 1 functions.
pub(crate) fn add_to_linker(linker: &mut Linker<TaskState>) -> wasmtime::Result<()> {
    let fallback = Arc::new(Fallback {
        wasi: linker.clone(),
        shim: OnceLock::new(),
    });
    linker.allow_shadowing(true);
    let defined = linker
        .func_wrap(
            WASI,
            POLL,
            move |mut caller: Caller<'_, TaskState>, subs: i32, events: i32, n: i32, out: i32| {
                match PlainSleep::read(&mut caller, subs, events, n, out) {
                    Some(sleep) => sleep.run(&mut caller),
                    None => fallback.poll(&mut caller, (subs, events, n, out)),
                }
            },
        )
        .map(|_| ());
    linker.allow_shadowing(false);
    defined
}

/// A poll that is a plain sleep, with everything checked that answering it
/// needs (so nothing can fail after the sleep).
struct PlainSleep {
    memory: Memory,
    userdata: u64,
    length: Duration,
    events: usize,
    out: usize,
}

impl PlainSleep {
    fn read(
        caller: &mut Caller<'_, TaskState>,
        subs: i32,
        events: i32,
        n: i32,
        out: i32,
    ) -> Option<PlainSleep> {
        if n != 1 {
            return None;
        }
        let memory = caller.get_export("memory")?.into_memory()?;
        let data = memory.data(&*caller);
        let sub = region(data, subs, SUBSCRIPTION, 8)?;
        region(data, events, EVENT, 8)?;
        region(data, out, 4, 4)?;
        let flags = u16::from_le_bytes(sub[40..42].try_into().ok()?);
        if sub[8] != TAG_CLOCK {
            return None;
        }
        let timeout = u64::from_le_bytes(sub[24..32].try_into().ok()?);
        let length = match (flags & FLAG_ABSTIME != 0, &caller.data().virtual_time) {
            (false, _) => timeout,
            (true, None) => return None,
            (true, Some(time)) => {
                let clock = u32::from_le_bytes(sub[16..20].try_into().ok()?);
                let now = match clock {
                    CLOCK_REALTIME => time.now() + WALL_START.as_nanos() as u64,
                    CLOCK_MONOTONIC => time.now(),
                    _ => return None,
                };
                timeout.saturating_sub(now)
            }
        };
        Some(PlainSleep {
            memory,
            userdata: u64::from_le_bytes(sub[0..8].try_into().ok()?),
            length: Duration::from_nanos(length),
            events: events as u32 as usize,
            out: out as u32 as usize,
        })
    }

    /// Sleeps, then writes the clock event; errno 0.
    fn run(self, caller: &mut Caller<'_, TaskState>) -> wasmtime::Result<i32> {
        match &caller.data().virtual_time {
            Some(time) => {
                caller.data().watch.check().map_err(wasmtime::Error::new)?;
                time.advance(self.length);
            }
            None => sleep(&caller.data().watch, self.length).map_err(wasmtime::Error::new)?,
        }
        let data = self.memory.data_mut(&mut *caller);
        let event = &mut data[self.events..self.events + EVENT];
        event[0..8].copy_from_slice(&self.userdata.to_le_bytes());
        event[8..10].copy_from_slice(&0u16.to_le_bytes()); // errno success
        event[10] = TAG_CLOCK; // eventtype clock
        event[16..24].copy_from_slice(&1u64.to_le_bytes()); // as wasmtime-wasi
        event[24..26].copy_from_slice(&0u16.to_le_bytes());
        data[self.out..self.out + 4].copy_from_slice(&1u32.to_le_bytes());
        Ok(0)
    }
}

/// `len` bytes at guest address `ptr`, if in bounds and aligned to `align`.
fn region(data: &[u8], ptr: i32, len: usize, align: usize) -> Option<&[u8]> {
    let start = ptr as u32 as usize;
    if !start.is_multiple_of(align) {
        return None;
    }
    data.get(start..start.checked_add(len)?)
}

/// Sleeps for `length` unless `watch` says to stop; see the module docs.
pub(crate) fn sleep(watch: &Watch, length: Duration) -> Result<(), Interrupted> {
    let start = Instant::now();
    let spin = (length / 20).min(MAX_SPIN);
    loop {
        watch.check()?;
        let left = length.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(());
        }
        if left > spin {
            std::thread::sleep((left - spin).min(SLICE));
        } else {
            std::thread::yield_now();
        }
    }
}

/// Reaches wasmtime-wasi's own `poll_oneoff`.
struct Fallback {
    /// The linker before the shadowing: wasmtime-wasi's functions.
    wasi: Linker<TaskState>,
    /// The shim, compiled on first need (most engines never need it).
    shim: OnceLock<Result<Module, String>>,
}

impl Fallback {
    fn poll(
        &self,
        caller: &mut Caller<'_, TaskState>,
        args: (i32, i32, i32, i32),
    ) -> wasmtime::Result<i32> {
        let poll = match &caller.data().poll_fallback {
            Some(poll) => poll.clone(),
            None => {
                let poll = self.instantiate(caller)?;
                caller.data_mut().poll_fallback = Some(poll.clone());
                poll
            }
        };
        poll.call(&mut *caller, args)
    }

    fn instantiate(&self, caller: &mut Caller<'_, TaskState>) -> wasmtime::Result<PollFallback> {
        // wasmtime-wasi's own message for a module without memory.
        let memory = caller
            .get_export("memory")
            .filter(|e| matches!(e, Extern::Memory(_)))
            .ok_or_else(|| wasmtime::Error::msg("missing required memory export"))?;
        let shim = self
            .shim
            .get_or_init(|| Module::new(caller.engine(), SHIM).map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| wasmtime::Error::msg(format!("the poll_oneoff shim: {e}")))?;
        let original = self.wasi.get(&mut *caller, WASI, POLL)?;
        let instance = Instance::new(&mut *caller, shim, &[memory, original])?;
        instance.get_typed_func(&mut *caller, POLL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Interrupter;

    #[test]
    fn a_sleep_lasts_as_long_as_asked() {
        let watch = Watch::new(Interrupter::default());
        for length in [
            Duration::ZERO,
            Duration::from_micros(300),
            Duration::from_millis(12),
        ] {
            let t = Instant::now();
            assert_eq!(sleep(&watch, length), Ok(()));
            assert!(t.elapsed() >= length, "{length:?} took {:?}", t.elapsed());
        }
    }

    #[test]
    fn a_sleep_ends_at_the_deadline() {
        let watch = Watch::new(Interrupter::default());
        *watch.deadline.lock().unwrap() = Some(Instant::now() + Duration::from_millis(20));
        assert_eq!(
            sleep(&watch, Duration::from_secs(60)),
            Err(Interrupted::WallTime)
        );
        assert_eq!(
            *watch.interrupted.lock().unwrap(),
            Some(Interrupted::WallTime)
        );
    }

    #[test]
    fn region_checks_bounds_and_alignment() {
        let data = [0u8; 64];
        assert!(region(&data, 16, 48, 8).is_some());
        assert!(region(&data, 17, 8, 8).is_none());
        assert!(region(&data, 24, 48, 8).is_none());
        assert!(region(&data, -8, 8, 8).is_none());
    }
}
