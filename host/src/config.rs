//! How an operator configures an engine process: default limits, fuel
//! metering, the on-disk cache of compiled modules, pool sizes, and how
//! often it records in the blob store that it uses a module.
//!
//! Decisions recorded here: limits left at `None` mean "unlimited" except
//! memory, which wasm32 caps at 4 GiB anyway; captured output defaults to
//! 16 MiB per stream so a flood cannot exhaust the host. Fuel metering is an
//! engine-wide switch because wasmtime compiles metered code differently; a
//! task may ask for a fuel limit only on a metered engine.

use std::path::PathBuf;
use std::time::Duration;

use grid_proto::Limits;

/// Configuration of a [`Runtime`](crate::Runtime), shared by its engine slots.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Limits every task runs under; a task can lower them, never raise them.
    pub limits: Limits,
    /// Count fuel (wasm instructions): needed for fuel limits and fuel reports.
    pub fuel_metering: bool,
    /// Where compiled modules are cached across restarts; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may exist at once in this process (the pooling allocator
    /// reserves address space for this many).
    pub max_instances: u32,
    /// How often running tasks are checked for abort and wall-time deadlines.
    pub epoch_tick: Duration,
    /// Wasm stack size; deeper recursion traps with `stack_overflow`.
    pub max_wasm_stack: usize,
    /// Directories (and everything under them) that a command task may be
    /// granted read-only access to. Empty: no grants. A local cluster,
    /// whose operator is the client itself, allows `/`.
    pub allowed_dirs: Vec<PathBuf>,
    /// The slots of this process record a use of a module in the blob
    /// store at most this often ([`MODULE_USE_INTERVAL`] by default): when a
    /// task needs it, and from the heartbeat while a task using it runs. The
    /// blob collector's age limit must be far above it.
    pub module_use_interval: Duration,
}

/// How often, at most, an engine process records a use of each module it
/// uses (see [`EngineConfig::module_use_interval`]). On NATS a record is a
/// JetStream write; a few per module and process each minute cost nothing.
pub const MODULE_USE_INTERVAL: Duration = Duration::from_secs(10);

/// The largest linear memory of a wasm32 module.
pub const MAX_MEMORY: u64 = 4 << 30;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: Limits {
                memory_bytes: Some(MAX_MEMORY),
                wall_time_ms: None,
                fuel: None,
                stdout_bytes: Some(16 << 20),
                stderr_bytes: Some(16 << 20),
            },
            fuel_metering: false,
            cache_dir: default_cache_dir(),
            max_instances: 64,
            epoch_tick: Duration::from_millis(1),
            max_wasm_stack: 512 << 10,
            allowed_dirs: Vec::new(),
            module_use_interval: MODULE_USE_INTERVAL,
        }
    }
}

impl EngineConfig {
    /// Sets the default limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Turns fuel metering on or off.
    pub fn fuel_metering(mut self, on: bool) -> Self {
        self.fuel_metering = on;
        self
    }

    /// Sets (or, with `None`, disables) the compiled-module cache directory.
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Allows tasks to be granted read access to `dir` and what is under it.
    pub fn allow_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.allowed_dirs.push(dir.into());
        self
    }

    /// Sets how often, at most, a use of a module is recorded.
    pub fn module_use_interval(mut self, interval: Duration) -> Self {
        self.module_use_interval = interval;
        self
    }

    /// Room in the pool for an instance per slot, however many slots share
    /// the runtime (the default holds 64; more slots than instances fail
    /// their tasks with the pool's "maximum concurrent limit").
    pub fn room_for_slots(mut self, slots: usize) -> Self {
        let slots = u32::try_from(slots).unwrap_or(u32::MAX);
        self.max_instances = self.max_instances.max(slots);
        self
    }
}

/// `$GRID_CACHE_DIR`, else `<cache home>/modules` (see [`cache_home`]).
fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("GRID_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    Some(cache_home()?.join("modules"))
}

/// Where Grid keeps what it caches for this user: `$XDG_CACHE_HOME/grid`,
/// else `~/.cache/grid` (a relative `XDG_CACHE_HOME` or `HOME` is ignored,
/// as the XDG spec says). Compiled modules go in `modules/`; `grid test`
/// keeps its test timings in `test-times/`.
pub fn cache_home() -> Option<PathBuf> {
    let absolute = |var| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = absolute("XDG_CACHE_HOME").or_else(|| Some(absolute("HOME")?.join(".cache")))?;
    Some(base.join("grid"))
}
