//! Deterministic mode: what a task sees instead of the host's time and
//! entropy, so the same module and input give the same value, output and
//! fuel count on every engine, every run, every machine.
//!
//! - **Clocks.** The wall clock and the monotonic clock read one virtual
//!   time that starts at [`WALL_START`] (wall) and 0 (monotonic) and moves
//!   only by [`CLOCK_STEP`] per clock read and by the length of each sleep:
//!   a program that reads the clock, sleeps 10 ms and reads it again sees
//!   10 ms and one step pass, whatever the host did meanwhile.
//! - **Sleeps** return at once: `poll.rs` advances the virtual time instead
//!   of sleeping (an abort still ends a task, but it has nothing to wait for).
//! - **Random bytes** (`random_get`) come from [`SeededRng`], sha256 in
//!   counter mode over the task's seed: an explicit seed, else one derived
//!   from the module and the task's input ([`seed_for`]), so a task's random
//!   bytes are fixed by what it is, not by when or where it runs.
//! - The wasmtime side (NaN canonicalization, deterministic relaxed SIMD,
//!   fuel metering) is the deterministic flavor of the runtime
//!   (`runtime.rs`); a fresh instance per item of a chunk is `engine.rs`'s.
//!
//! Modelled on wasmtime's "deterministic execution" notes and Shopify's
//! `deterministic-wasi-ctx` (fixed clocks, seeded RNG), written here because
//! that crate follows wasi-common, not wasmtime-wasi 48. What is not covered:
//! a guest can still observe how long the host takes through a wall-time
//! limit (it ends the task, with an error saying so), and threads (not
//! enabled in Grid's engines).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use grid_proto::{ArgsHash, ModuleHash};
use sha2::{Digest, Sha256};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// Where the virtual wall clock starts: 2020-01-01T00:00:00Z.
pub(crate) const WALL_START: Duration = Duration::from_secs(1_577_836_800);
/// How far the virtual time moves on each clock read.
pub(crate) const CLOCK_STEP: Duration = Duration::from_micros(1);

/// The virtual time of one task (cheap to clone; clones share it).
#[derive(Clone, Default)]
pub(crate) struct VirtualTime {
    nanos: Arc<AtomicU64>,
}

impl VirtualTime {
    /// Reads the time, then moves it one step on.
    fn read(&self) -> u64 {
        self.nanos
            .fetch_add(CLOCK_STEP.as_nanos() as u64, Ordering::Relaxed)
    }

    /// Moves the time on by `by` (a sleep).
    pub(crate) fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(by))
            });
    }

    /// The time, in nanoseconds, without moving it.
    pub(crate) fn now(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

impl HostWallClock for VirtualTime {
    fn resolution(&self) -> Duration {
        CLOCK_STEP
    }

    fn now(&self) -> Duration {
        WALL_START + Duration::from_nanos(self.read())
    }
}

impl HostMonotonicClock for VirtualTime {
    fn resolution(&self) -> u64 {
        CLOCK_STEP.as_nanos() as u64
    }

    fn now(&self) -> u64 {
        self.read()
    }
}

/// The seed of a task that names none: fixed by its module and input.
pub(crate) fn seed_for(module: &ModuleHash, input: &ArgsHash) -> u64 {
    let mut h = Sha256::new();
    h.update(b"grid-seed/1");
    h.update(module.0);
    h.update(input.0);
    let digest = h.finalize();
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

/// Random bytes from a seed: block `i` is sha256(seed, i). The same seed
/// gives the same bytes on every platform and in every version of Grid
/// that keeps this definition.
pub(crate) struct SeededRng {
    seed: u64,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    pub(crate) fn new(seed: u64) -> SeededRng {
        SeededRng {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn refill(&mut self) {
        let mut h = Sha256::new();
        h.update(b"grid-random/1");
        h.update(self.seed.to_le_bytes());
        h.update(self.counter.to_le_bytes());
        self.block = h.finalize().into();
        self.counter += 1;
        self.used = 0;
    }

    fn fill(&mut self, dst: &mut [u8]) {
        let mut filled = 0;
        while filled < dst.len() {
            if self.used == self.block.len() {
                self.refill();
            }
            let n = (self.block.len() - self.used).min(dst.len() - filled);
            dst[filled..filled + n].copy_from_slice(&self.block[self.used..self.used + n]);
            self.used += n;
            filled += n;
        }
    }
}

impl rand_core::TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    #[test]
    fn the_same_seed_gives_the_same_bytes_however_they_are_read() {
        let mut a = SeededRng::new(7);
        let mut whole = [0u8; 100];
        a.fill_bytes(&mut whole);
        let mut b = SeededRng::new(7);
        let mut parts = [0u8; 100];
        b.fill_bytes(&mut parts[..3]);
        b.fill_bytes(&mut parts[3..70]);
        b.fill_bytes(&mut parts[70..]);
        assert_eq!(whole, parts);
        let mut c = SeededRng::new(8);
        let mut other = [0u8; 100];
        c.fill_bytes(&mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn virtual_time_moves_by_reads_and_sleeps_only() {
        let t = VirtualTime::default();
        let first = HostMonotonicClock::now(&t);
        t.advance(Duration::from_millis(10));
        let second = HostMonotonicClock::now(&t);
        assert_eq!(second - first, 10_000_000 + CLOCK_STEP.as_nanos() as u64);
        assert_eq!(
            HostWallClock::now(&t),
            WALL_START + Duration::from_nanos(second + 1000)
        );
    }
}
