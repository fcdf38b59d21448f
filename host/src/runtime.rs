//! The runtime: what the engine slots of one process share.
//!
//! Two *flavors* of wasmtime engine, each with its `Linker` (WASI preview 1,
//! its `poll_oneoff` shadowed by `poll.rs` for precise, abortable sleeps,
//! and the `grid` imports) and its compiled-module caches:
//! - the normal one: pooling allocator, epoch interruption, fuel metering
//!   when the operator turns it on;
//! - the deterministic one, made on first use by a deterministic task: fuel
//!   metering always, NaN canonicalization, deterministic relaxed SIMD, the
//!   on-demand allocator (test runs are not where the pool's microseconds
//!   matter, and a second pool would reserve its address space twice).
//!
//! One epoch ticker drives both. Loading a module compiles it (or loads the
//! cached artifact) and pre-links it once per flavor, so a task only pays
//! for a fresh store and instance; the binary is kept so the other flavor
//! can compile it when a task asks for it. Create engine slots with
//! [`Runtime::engine`]. The runtime also holds what rate-limits the slots'
//! records of module uses in the blob store (`uses.rs`), which is per
//! process too.
//!
//! The configuration hash in each result's fingerprint is a sha256 of what
//! can change a result: the wasmtime version (read from Cargo.lock by
//! `build.rs`), the flavor's settings, and the task's effective limits and
//! deterministic seed. It leaves out what cannot (CPU features, cache
//! paths, pool sizes), so two machines running the same deterministic task
//! agree on it.

use std::sync::{Arc, OnceLock};

use grid_proto::{ConfigHash, Deterministic, EngineId, EngineUuid, Limits, ModuleHash, TaskError};
use sha2::{Digest, Sha256};
use wasmtime::{
    Enabled, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig,
};

use crate::abi::Exports;
use crate::cache::{DiskCache, MemoryCache};
use crate::config::{EngineConfig, MAX_MEMORY};
use crate::store::TaskState;
use crate::ticker::Ticker;
use crate::uses::ModuleUses;
use crate::{Engine, imports, poll};

/// How much of a freed memory or table slot stays resident, when the kernel
/// lets wasmtime find the touched pages (see [`Runtime::new`]): enough for a
/// Rust guest's 1 MiB shadow stack, its data and a small heap. A slot holds
/// at most this much while idle; only slots that were used hold any.
const KEEP_RESIDENT: usize = 2 << 20;

/// Why a runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot configure wasmtime: {0}")]
    Wasmtime(String),
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(#[from] std::io::Error),
}

/// A module compiled and linked, ready to instantiate.
pub(crate) struct LoadedModule {
    pub pre: InstancePre<TaskState>,
    pub exports: Exports,
}

/// The wasmtime version Grid is built with.
pub const WASMTIME_VERSION: &str = env!("GRID_WASMTIME_VERSION");

/// One wasmtime engine with its linker and compiled modules.
pub(crate) struct Flavor {
    pub(crate) engine: wasmtime::Engine,
    linker: Linker<TaskState>,
    modules: MemoryCache<LoadedModule>,
    disk: Option<DiskCache>,
    /// Whether stores count fuel.
    pub(crate) metered: bool,
    /// What of this flavor's settings can change a result, for the config hash.
    settings: String,
}

impl Flavor {
    fn new(config: &EngineConfig, deterministic: bool) -> Result<Flavor, RuntimeError> {
        let wasm_err = |e: wasmtime::Error| RuntimeError::Wasmtime(format!("{e:#}"));
        let mut wasm = wasmtime::Config::new();
        wasm.epoch_interruption(true)
            .max_wasm_stack(config.max_wasm_stack);
        if deterministic {
            wasm.consume_fuel(true)
                .cranelift_nan_canonicalization(true)
                .relaxed_simd_deterministic(true);
        } else {
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(config)))
                .consume_fuel(config.fuel_metering);
        }
        let engine = wasmtime::Engine::new(&wasm).map_err(wasm_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut TaskState| &mut s.wasi)
            .map_err(wasm_err)?;
        poll::add_to_linker(&mut linker).map_err(wasm_err)?;
        imports::add_to_linker(&mut linker).map_err(wasm_err)?;
        let disk = config
            .cache_dir
            .as_deref()
            .map(|dir| DiskCache::new(dir, &engine));
        let fuel = deterministic || config.fuel_metering;
        let settings = format!(
            "fuel={fuel} nan_canonicalization={deterministic} \
             relaxed_simd_deterministic={deterministic} max_wasm_stack={}",
            config.max_wasm_stack
        );
        Ok(Flavor {
            engine,
            linker,
            modules: MemoryCache::default(),
            disk,
            metered: fuel,
            settings,
        })
    }

    /// Compiles `binary` (or loads its cached artifact) and links it.
    fn compile(&self, hash: ModuleHash, binary: &[u8]) -> Result<Arc<LoadedModule>, TaskError> {
        self.modules.get_or_load(&hash, || {
            if let Some(module) = self.disk_artifact(&hash) {
                return self.link(&module);
            }
            let module =
                Module::new(&self.engine, binary).map_err(|e| TaskError::ModuleInvalid {
                    reason: format!("{e:#}"),
                })?;
            let loaded = self.link(&module)?;
            if let Some(disk) = &self.disk {
                disk.store(&hash, &module);
            }
            Ok(loaded)
        })
    }

    /// The module from memory or the disk cache.
    fn cached(&self, hash: &ModuleHash) -> Option<Arc<LoadedModule>> {
        self.modules
            .get_or_load(hash, || match self.disk_artifact(hash) {
                Some(module) => self.link(&module).map_err(|_| ()),
                None => Err(()),
            })
            .ok()
    }

    fn disk_artifact(&self, hash: &ModuleHash) -> Option<Module> {
        self.disk.as_ref()?.load(&self.engine, hash)
    }

    fn link(&self, module: &Module) -> Result<LoadedModule, TaskError> {
        let pre = self
            .linker
            .instantiate_pre(module)
            .map_err(|e| TaskError::ModuleInvalid {
                reason: format!("cannot link: {e:#}"),
            })?;
        let exports = Exports::of(module);
        Ok(LoadedModule { pre, exports })
    }
}

/// The pooling allocator of the normal flavor.
fn pool(config: &EngineConfig) -> PoolingAllocationConfig {
    let memory_cap = config
        .limits
        .memory_bytes
        .unwrap_or(MAX_MEMORY)
        .min(MAX_MEMORY);
    let mut pool = PoolingAllocationConfig::default();
    // Twice the slots: a task's store may hold the `poll.rs` shim beside
    // the guest's instance.
    pool.total_core_instances(config.max_instances.saturating_mul(2))
        .total_memories(config.max_instances)
        .total_tables(config.max_instances)
        .total_stacks(config.max_instances)
        .max_memory_size(memory_cap as usize);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        // Reset a freed slot by rewriting only the pages the guest
        // touched, keeping them resident, instead of dropping every page
        // with madvise and faulting them back in on the next instance: a
        // fresh instance of the Rust example guest plus a CBOR call goes
        // from ~27 us to ~7 us. Without PAGEMAP_SCAN (Linux < 6.7) keeping
        // memory resident means memset of the whole prefix, which costs
        // more than it saves, so the defaults stay.
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
    }
    pool
}

/// Shared by all engine slots of a process.
pub struct Runtime {
    pub(crate) config: EngineConfig,
    normal: Flavor,
    deterministic: OnceLock<Result<Flavor, String>>,
    /// Module binaries loaded here, for the flavor that has not compiled them yet.
    binaries: MemoryCache<Vec<u8>>,
    pub(crate) ticker: Ticker,
    /// When the slots last recorded a use of each module (see `uses.rs`).
    pub(crate) module_uses: ModuleUses,
}

impl Runtime {
    /// Starts a runtime with this configuration.
    pub fn new(config: EngineConfig) -> Result<Arc<Runtime>, RuntimeError> {
        let normal = Flavor::new(&config, false)?;
        let ticker = Ticker::start(config.epoch_tick)?;
        ticker.drive(&normal.engine);
        Ok(Arc::new(Runtime {
            module_uses: ModuleUses::new(config.module_use_interval),
            config,
            normal,
            deterministic: OnceLock::new(),
            binaries: MemoryCache::default(),
            ticker,
        }))
    }

    /// A new engine slot with its own id, uuid and empty namespace.
    pub fn engine(self: &Arc<Self>, id: EngineId) -> Engine {
        self.engine_with(id, EngineUuid::new())
    }

    /// A new engine slot with the given ids (registered with a controller).
    pub fn engine_with(self: &Arc<Self>, id: EngineId, uuid: EngineUuid) -> Engine {
        Engine::new(self.clone(), id, uuid)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The flavor tasks run in: deterministic ones in their own.
    pub(crate) fn flavor(&self, deterministic: bool) -> Result<&Flavor, TaskError> {
        if !deterministic {
            return Ok(&self.normal);
        }
        let made = self.deterministic.get_or_init(|| {
            let flavor = Flavor::new(&self.config, true).map_err(|e| e.to_string())?;
            self.ticker.drive(&flavor.engine);
            Ok(flavor)
        });
        made.as_ref()
            .map_err(|e| TaskError::Internal(format!("cannot start deterministic mode: {e}")))
    }

    /// The deterministic flavor if asked and made (it is, once a task got
    /// its module from it), else the normal one.
    pub(crate) fn flavor_made(&self, deterministic: bool) -> &Flavor {
        match self.deterministic.get() {
            Some(Ok(flavor)) if deterministic => flavor,
            _ => &self.normal,
        }
    }

    /// The hash of what in this runtime can change a task's result, for a
    /// task with these effective limits, run deterministically or not (see
    /// the module docs). A seed derived from the input is not part of it
    /// (the input is, in the fingerprint); a seed the task chose is.
    pub fn config_hash(&self, limits: &Limits, deterministic: Option<Deterministic>) -> ConfigHash {
        let settings = match deterministic {
            Some(_) => self.flavor(true).map(|f| f.settings.as_str()).unwrap_or(""),
            None => self.normal.settings.as_str(),
        };
        let mut h = Sha256::new();
        h.update(b"grid-config/1\0wasmtime ");
        h.update(WASMTIME_VERSION.as_bytes());
        h.update(b"\0");
        h.update(settings.as_bytes());
        h.update(format!("\0{limits:?}\0").as_bytes());
        match deterministic {
            Some(Deterministic { seed: Some(seed) }) => {
                h.update(format!("deterministic seed={seed}").as_bytes())
            }
            Some(Deterministic { seed: None }) => h.update(b"deterministic seed=derived"),
            None => h.update(b"host time and randomness"),
        }
        ConfigHash(h.finalize().into())
    }

    /// Compiles (or loads from the disk cache) and links a module given as a
    /// wasm binary or `.wat` text, for normal tasks (deterministic ones
    /// compile it again, from the binary kept here, when they first need
    /// it). Returns its hash, the sha256 of the binary.
    pub fn load(&self, bytes: &[u8]) -> Result<ModuleHash, TaskError> {
        self.load_for(bytes, false)
    }

    /// [`load`](Self::load), for deterministic tasks or normal ones.
    pub fn load_for(&self, bytes: &[u8], deterministic: bool) -> Result<ModuleHash, TaskError> {
        let binary = wat::parse_bytes(bytes).map_err(|e| TaskError::ModuleInvalid {
            reason: format!("not a wasm binary, and not valid WAT text: {e}"),
        })?;
        let hash = ModuleHash::of(&binary);
        self.flavor(deterministic)?.compile(hash, &binary)?;
        self.binaries.insert(hash, binary.into_owned());
        Ok(hash)
    }

    /// Makes `hash` ready for normal tasks from the disk cache alone,
    /// without its bytes. Returns whether it is loaded now.
    pub fn load_cached(&self, hash: &ModuleHash) -> bool {
        self.prepare(hash, false)
    }

    /// Makes `hash` ready for normal or deterministic tasks without being
    /// given its bytes: from memory, the binary kept by an earlier load, or
    /// the disk cache. Returns whether it is ready now.
    pub fn prepare(&self, hash: &ModuleHash, deterministic: bool) -> bool {
        self.module(hash, deterministic).is_ok()
    }

    /// Whether `hash` is loaded in this process (for normal tasks).
    pub fn is_loaded(&self, hash: &ModuleHash) -> bool {
        self.normal.modules.get(hash).is_some()
    }

    /// The callable functions of a loaded module (CBOR and numeric exports,
    /// and `_start` for commands).
    pub fn exports(&self, hash: &ModuleHash) -> Option<Vec<String>> {
        self.normal.modules.get(hash).map(|m| m.exports.callable())
    }

    pub(crate) fn module(
        &self,
        hash: &ModuleHash,
        deterministic: bool,
    ) -> Result<Arc<LoadedModule>, TaskError> {
        let flavor = self.flavor(deterministic)?;
        if let Some(m) = flavor.cached(hash) {
            return Ok(m);
        }
        match self.binaries.get(hash) {
            Some(binary) => flavor.compile(*hash, &binary),
            None => Err(TaskError::ModuleNotFound(*hash)),
        }
    }
}
