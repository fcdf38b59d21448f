//! How many engine slots one process can hold, checked before any starts.
//!
//! Each slot is an OS thread with a wasm sandbox whose memory wasmtime's
//! pooling allocator reserves up front, so a count the machine cannot hold
//! (`--engines 100000`) used to fail halfway through starting, once with a
//! Rust runtime message about stack guard pages. Here the count is checked
//! against the tightest of Grid's own limit per process and what the
//! operating system allows (threads, memory mappings, address space), and a
//! count over it is a usage error that names the limit. This file only
//! computes; `--engines`, `grid engine -n` and `grid cluster start -n` call
//! [`engine_slots`].

use std::num::NonZeroUsize;
use std::path::Path;

use grid_host::{EngineConfig, MAX_MEMORY};
use nix::sys::resource::{Resource, getrlimit};

use crate::failure::usage;

/// The engine slots to start in one process: `engines` if given, else the
/// number of cores (the default of every `--engines`, capped at the
/// limit). A count over [`SlotLimit::here`] is a usage error naming the
/// limit: the process would fail halfway through starting them.
pub fn engine_slots(engines: Option<NonZeroUsize>) -> anyhow::Result<usize> {
    let limit = SlotLimit::here();
    match engines {
        Some(n) => limit.check(n.get()),
        None => {
            let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
            limit.check(cores.min(limit.max).max(1))
        }
    }
}

/// Engine slots one process runs at most, on any machine. Each slot is an
/// OS thread with a wasm sandbox whose memory wasmtime's pooling allocator
/// reserves up front: 4 GiB of address space plus guard pages, and about
/// ten memory mappings with the thread's stacks. 1024 slots reserve 4 TiB of
/// the 128 TiB a process can address and stay far inside the kernel's
/// default limits (threads, mappings) with room for several such
/// processes; more slots than cores only time-share the CPU, so a machine
/// that wants more runs several `grid engine` processes.
pub const MAX_SLOTS: usize = 1024;

/// Address space one slot reserves: a wasm32 memory of up to 4 GiB and its
/// guard region (wasmtime 48's pool measured 4 GiB + 32.5 MiB per memory),
/// rounded up for the slot's table.
const SLOT_ADDRESS_SPACE: u64 = MAX_MEMORY + (64 << 20);

/// Memory mappings one slot needs: its thread's stack and signal stack with
/// their guard pages (measured 4.3 per idle slot), and its sandbox's memory
/// split into accessible and reserved parts while a task runs (4 more).
const SLOT_MAPPINGS: u64 = 10;

/// Threads kept for the rest of the process (its tokio runtime, the epoch
/// ticker) and for the user's other processes.
const SPARE_THREADS: u64 = 128;

/// Mappings kept for the rest of the process (its code, heap and runtime:
/// ~200 measured with one slot), generously.
const SPARE_MAPPINGS: u64 = 1024;

/// The most engine slots one process can hold here, and what sets it: the
/// smallest of [`MAX_SLOTS`], the threads the user and the system allow
/// (a slot is a thread), the memory mappings a process may have, and the
/// address space it may reserve (`ulimit -v`; wasmtime reserves room for at
/// least [`EngineConfig::default`]'s 64 instances whatever the count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLimit {
    /// Slots one process may run.
    pub max: usize,
    /// Why, in words, for the error.
    pub cause: String,
}

/// What the operating system allows this process; `None` when unlimited or
/// unknown.
#[derive(Debug, Default, Clone, Copy)]
struct SystemLimits {
    /// Threads of this user, in all processes (`ulimit -u`, RLIMIT_NPROC).
    user_threads: Option<u64>,
    /// Threads of the whole system (`kernel.threads-max`).
    system_threads: Option<u64>,
    /// Memory mappings per process (`vm.max_map_count`).
    mappings: Option<u64>,
    /// Address space per process (`ulimit -v`, RLIMIT_AS), in bytes.
    address_space: Option<u64>,
}

impl SystemLimits {
    /// This process's limits.
    fn here() -> SystemLimits {
        SystemLimits {
            user_threads: soft_limit(Resource::RLIMIT_NPROC),
            system_threads: sysctl("kernel/threads-max"),
            mappings: sysctl("vm/max_map_count"),
            address_space: soft_limit(Resource::RLIMIT_AS),
        }
    }
}

/// The soft limit of `resource`; `None` when unlimited or unreadable.
fn soft_limit(resource: Resource) -> Option<u64> {
    let (soft, _hard) = getrlimit(resource).ok()?;
    (soft != nix::sys::resource::RLIM_INFINITY).then_some(soft)
}

/// A number from `/proc/sys/<name>`; `None` when absent or unreadable.
fn sysctl(name: &str) -> Option<u64> {
    std::fs::read_to_string(Path::new("/proc/sys").join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl SlotLimit {
    /// The limit of this process on this machine.
    pub fn here() -> SlotLimit {
        SlotLimit::of(SystemLimits::here())
    }

    fn of(system: SystemLimits) -> SlotLimit {
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let fixed = SlotLimit {
            max: MAX_SLOTS,
            cause: format!(
                "Grid's limit per process: each slot is a thread with a sandbox that \
                 reserves {} GiB of address space; run several `grid engine` processes \
                 for more",
                SLOT_ADDRESS_SPACE >> 30
            ),
        };
        let mut limits = Vec::new();
        if let Some(n) = system.user_threads {
            limits.push(SlotLimit {
                max: count(n.saturating_sub(SPARE_THREADS)),
                cause: format!("one thread each, and the user may run {n} threads (ulimit -u)"),
            });
        }
        if let Some(n) = system.system_threads {
            limits.push(SlotLimit {
                max: count(n.saturating_sub(SPARE_THREADS)),
                cause: format!(
                    "one thread each, and the system runs at most {n} (kernel.threads-max)"
                ),
            });
        }
        if let Some(n) = system.mappings {
            limits.push(SlotLimit {
                max: count(n.saturating_sub(SPARE_MAPPINGS) / SLOT_MAPPINGS),
                cause: format!(
                    "about {SLOT_MAPPINGS} memory mappings each, and a process may have \
                     {n} (vm.max_map_count)"
                ),
            });
        }
        if let Some(bytes) = system.address_space {
            // The pool holds at least the default number of instances.
            let floor = u64::from(EngineConfig::default().max_instances);
            let fit = bytes / SLOT_ADDRESS_SPACE;
            limits.push(SlotLimit {
                max: if fit < floor { 0 } else { count(fit) },
                cause: format!(
                    "the sandboxes reserve {} GiB of address space per slot, for at least \
                     {floor} slots, and the process may reserve {} GiB (ulimit -v)",
                    SLOT_ADDRESS_SPACE >> 30,
                    bytes >> 30
                ),
            });
        }
        // The first of the smallest: the fixed limit when it binds.
        let mut least = fixed;
        for next in limits {
            if next.max < least.max {
                least = next;
            }
        }
        least
    }

    /// `n` if one process can hold that many slots, else a usage error
    /// naming the limit.
    pub fn check(&self, n: usize) -> anyhow::Result<usize> {
        if n <= self.max {
            return Ok(n);
        }
        Err(match self.max {
            0 => usage(format!(
                "no engine slot fits in this process: {}",
                self.cause
            )),
            max => usage(format!(
                "--engines {n} is more than one process can hold: at most {max} engine \
                 slots ({})",
                self.cause
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_limit_names_the_tightest_of_its_causes() {
        let none = SystemLimits::default();
        assert_eq!(SlotLimit::of(none).max, MAX_SLOTS);
        let roomy = SystemLimits {
            user_threads: Some(100_000),
            system_threads: Some(200_000),
            mappings: Some(65_530),
            address_space: None,
        };
        let limit = SlotLimit::of(roomy);
        assert_eq!(limit.max, MAX_SLOTS);
        assert!(
            limit.cause.starts_with("Grid's limit per process"),
            "{limit:?}"
        );

        let threads = SlotLimit::of(SystemLimits {
            user_threads: Some(600),
            ..roomy
        });
        assert_eq!(threads.max, 600 - SPARE_THREADS as usize);
        assert!(
            threads.cause.contains("600 threads (ulimit -u)"),
            "{threads:?}"
        );
        let mappings = SlotLimit::of(SystemLimits {
            mappings: Some(5_024),
            ..roomy
        });
        assert_eq!(mappings.max, 400);
        assert!(mappings.cause.contains("vm.max_map_count"), "{mappings:?}");

        // Address space for the pool's 64 instances at least, or nothing fits.
        let small = SlotLimit::of(SystemLimits {
            address_space: Some(100 << 30),
            ..roomy
        });
        assert_eq!(small.max, 0);
        assert!(small.cause.contains("(ulimit -v)"), "{small:?}");
        let large = SlotLimit::of(SystemLimits {
            address_space: Some(1 << 40),
            ..roomy
        });
        assert_eq!(large.max, 252);
    }

    #[test]
    fn a_count_over_the_limit_is_a_usage_error_naming_it() {
        let limit = SlotLimit {
            max: 8,
            cause: "because".into(),
        };
        assert_eq!(limit.check(8).unwrap(), 8);
        let e = limit.check(9).unwrap_err();
        assert!(e.downcast_ref::<crate::failure::Usage>().is_some());
        assert_eq!(
            e.to_string(),
            "--engines 9 is more than one process can hold: at most 8 engine slots (because)"
        );
        let none = SlotLimit { max: 0, ..limit };
        assert_eq!(
            none.check(1).unwrap_err().to_string(),
            "no engine slot fits in this process: because"
        );
    }
}
