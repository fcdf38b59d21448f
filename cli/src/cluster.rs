//! Where the work runs: a local cluster in this process, or a cluster on a
//! NATS server; and the module uploaded to it.
//!
//! Without `--url`, `--engines N` starts a controller and N engine slots on
//! an in-process bus (`Client::local_with`). With `--url` (or `GRID_URL`) the
//! client connects to cluster `--cluster` on that NATS server, and checks at
//! once that a controller answers: a missing one is an error at once. A
//! cluster with no engines yet (just started, or its engines restarting) is
//! waited for up to `--wait-engines` seconds, with one line on stderr
//! saying so; then it is an error too, not a hang. Either way the CLI then
//! talks to the cluster only through the client library. A module file is
//! read before connecting, so that a missing file fails fast, and a missing
//! file and a file that is not wasm get their own one-line messages.
//!
//! How many engine slots one process can hold is checked here, where
//! `--engines` is resolved, before anything starts: see [`SlotLimit`].

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use grid_bus::BusError;
use grid_client::{Client, Error, Module};
use grid_host::{EngineConfig, MAX_MEMORY};
use grid_proto::{DEFAULT_CLUSTER, Subjects};

use crate::failure::{one_line, usage};
use crate::limits::parse_seconds;

/// The `--engines`, `--url` and `--cluster` options of the client commands.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Engines to start in the local cluster [default: the number of cores].
    /// Ignored with --url: the remote cluster has the engines it has
    #[arg(long, value_name = "N")]
    pub engines: Option<NonZeroUsize>,

    /// Use the cluster on this NATS server (nats://HOST:PORT) instead of
    /// starting a local one
    #[arg(long, value_name = "URL", env = "GRID_URL", hide_env_values = true)]
    pub url: Option<String>,

    /// With --url, when the cluster has no engines yet: wait this long for
    /// one to register before failing (0: fail at once)
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        value_parser = parse_wait
    )]
    pub wait_engines: Duration,

    #[command(flatten)]
    pub name: ClusterName,
}

/// Parses `--wait-engines`: seconds, possibly fractional, or 0.
fn parse_wait(text: &str) -> Result<Duration, String> {
    if text.trim().parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_seconds(text).map_err(|_| {
        format!("`{text}` is not a number of seconds (e.g. 10 or 0.5; 0: do not wait)")
    })
}

/// `--cluster NAME`: one NATS server carries several clusters by name.
#[derive(Args, Debug, Clone)]
pub struct ClusterName {
    /// The cluster's name on the NATS server (letters, digits, - and _)
    #[arg(
        long = "cluster",
        value_name = "NAME",
        env = "GRID_CLUSTER",
        hide_env_values = true,
        default_value = DEFAULT_CLUSTER,
        value_parser = parse_cluster_name
    )]
    pub cluster: String,
}

/// A cluster name is one subject token.
pub fn parse_cluster_name(text: &str) -> Result<String, String> {
    Subjects::new(text)
        .map(|_| text.to_string())
        .map_err(|_| format!("`{text}` is not a cluster name: use letters, digits, - and _"))
}

/// A connected client and how many engines its cluster has.
pub struct Connected {
    pub client: Client,
    pub engines: usize,
}

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

/// `config` with room in wasmtime's pool for an instance per slot, however
/// many slots (its default holds 64).
pub fn config_for_slots(mut config: EngineConfig, slots: usize) -> EngineConfig {
    let slots = u32::try_from(slots).unwrap_or(u32::MAX);
    config.max_instances = config.max_instances.max(slots);
    config
}

impl ClusterArgs {
    /// Connects to the remote cluster, or starts the local one.
    pub fn connect(&self) -> anyhow::Result<Connected> {
        if let Some(url) = &self.url {
            let client = connect(url, &self.name.cluster)?;
            let engines = engines_of(&client, url, &self.name.cluster, self.wait_engines)?;
            return Ok(Connected { client, engines });
        }
        let engines = engine_slots(self.engines)?;
        let config = config_for_slots(EngineConfig::default(), engines);
        let client = Client::local_with(engines, config)
            .with_context(|| format!("cannot start a local cluster of {engines} engines"))?;
        Ok(Connected { client, engines })
    }
}

/// Connects to cluster `cluster` on the NATS server at `url`: `cannot
/// connect to URL: why` when no server is there.
pub fn connect(url: &str, cluster: &str) -> anyhow::Result<Client> {
    Client::connect(url, cluster).map_err(|e| match e {
        Error::Bus(e @ BusError::Connect { .. }) => anyhow!(e),
        other => anyhow::Error::new(other)
            .context(format!("cannot connect to cluster `{cluster}` at {url}")),
    })
}

/// How many engines the cluster has; an error if no controller answers, or
/// if it has no engine and none registers within `wait` (announced on
/// stderr, only when there is something to wait for).
fn engines_of(client: &Client, url: &str, cluster: &str, wait: Duration) -> anyhow::Result<usize> {
    let engines = client
        .engines()
        .map_err(|e| no_controller(e, url, cluster))?;
    if !engines.is_empty() {
        return Ok(engines.len());
    }
    let mut waited = String::new();
    if !wait.is_zero() {
        let secs = wait.as_secs_f64();
        eprintln!("waiting up to {secs} s for the engines of cluster `{cluster}` at {url}");
        match client.wait_for_engines(1, Some(wait)) {
            Ok(engines) => return Ok(engines.len()),
            Err(Error::EnginesTimeout { .. }) => waited = format!(" after {secs} s"),
            Err(e) => return Err(no_controller(e, url, cluster)),
        }
    }
    Err(anyhow!(
        "cluster `{cluster}` at {url} has no engines{waited}: start some with \
         `grid engine --url {url} --cluster {cluster}`"
    ))
}

/// The error of a hub query: a missing controller gets its own message.
pub fn no_controller(e: Error, url: &str, cluster: &str) -> anyhow::Error {
    match e {
        Error::Bus(BusError::NoResponders(_) | BusError::Timeout { .. }) => anyhow!(
            "no controller of cluster `{cluster}` answers at {url}: start one with \
             `grid controller --url {url} --cluster {cluster}`, or a whole cluster \
             with `grid cluster start`"
        ),
        other => anyhow::Error::new(other).context(format!("cluster `{cluster}` at {url}")),
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
        use nix::libc;
        SystemLimits {
            user_threads: soft_limit(|l| {
                // SAFETY: getrlimit writes only the struct it is given.
                unsafe { libc::getrlimit(libc::RLIMIT_NPROC, l) }
            }),
            system_threads: sysctl("kernel/threads-max"),
            mappings: sysctl("vm/max_map_count"),
            address_space: soft_limit(|l| {
                // SAFETY: getrlimit writes only the struct it is given.
                unsafe { libc::getrlimit(libc::RLIMIT_AS, l) }
            }),
        }
    }
}

/// The soft limit that `get` (a `getrlimit` call) reads; `None` when
/// unlimited or unreadable.
fn soft_limit(get: impl FnOnce(&mut nix::libc::rlimit) -> i32) -> Option<u64> {
    let mut limit = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    (get(&mut limit) == 0 && limit.rlim_cur != nix::libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// The number in `/proc/sys/<name>`, if there is one.
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

/// A module file read from disk, not yet uploaded.
pub struct ModuleFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl ModuleFile {
    /// Reads the module at `path` (`.wasm`, or `.wat` text).
    pub fn read(path: &Path) -> anyhow::Result<ModuleFile> {
        let bytes = std::fs::read(path)
            .map_err(|e| usage(format!("cannot read module {}: {e}", path.display())))?;
        Ok(ModuleFile {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// The path, for messages.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Uploads the module to the cluster (text is turned into wasm first).
    pub fn upload(&self, client: &Client) -> anyhow::Result<Module> {
        client.module_from_bytes(&self.bytes).map_err(|e| match e {
            Error::Module { reason, .. } => usage(format!(
                "{}: invalid module: {}",
                self.name(),
                wat_reason(&reason)
            )),
            other => {
                anyhow::Error::new(other).context(format!("cannot upload module {}", self.name()))
            }
        })
    }
}

/// The client's reason for rejecting a module, on one line: the WAT parser's
/// message draws the offending source line under a `--> <anon>:L:C` line;
/// keep the message and the position.
fn wat_reason(reason: &str) -> String {
    let head = reason.lines().next().unwrap_or_default().trim();
    let at = reason.lines().find_map(|l| {
        let location = l.trim().strip_prefix("-->")?.trim();
        let (rest, column) = location.rsplit_once(':')?;
        let (_, line) = rest.rsplit_once(':')?;
        Some(format!(" (line {line}, column {column})"))
    });
    match at {
        Some(at) => format!("{head}{at}"),
        None => one_line(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_one_subject_token() {
        assert_eq!(parse_cluster_name("a-1_b"), Ok("a-1_b".to_string()));
        for bad in ["", "a.b", "a b", "*", ">"] {
            assert!(parse_cluster_name(bad).is_err(), "{bad}");
        }
    }

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
        assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_wait("-1").is_err() && parse_wait("soon").is_err());
    }

    #[test]
    fn wat_errors_keep_message_and_position() {
        let reason = "not a wasm binary, and not valid WAT text: expected `(`\n     \
                      --> <anon>:3:7\n      |\n    3 | garbage\n      |       ^";
        assert_eq!(
            wat_reason(reason),
            "not a wasm binary, and not valid WAT text: expected `(` (line 3, column 7)"
        );
        assert_eq!(wat_reason("short\nreason"), "short reason");
    }
}
