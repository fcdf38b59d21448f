//! The runtime: what the engine slots of one process share.
//!
//! One wasmtime `Engine` (pooling allocator, epoch interruption, optional fuel
//! metering), one `Linker` with WASI preview 1 (its `poll_oneoff` shadowed
//! by `poll.rs` for precise, abortable sleeps) and the `grid` imports, the
//! compiled-module caches, and the epoch ticker. Loading a module compiles it
//! (or loads the cached artifact) and pre-links it once, so a task only pays
//! for a fresh store and instance. Create engine slots with
//! [`Runtime::engine`].

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use grid_proto::{EngineId, EngineUuid, ModuleHash, TaskError};
use wasmtime::{
    Enabled, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig,
};

use crate::abi::Exports;
use crate::cache::{DiskCache, MemoryCache};
use crate::config::{EngineConfig, MAX_MEMORY};
use crate::store::TaskState;
use crate::ticker::Ticker;
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

/// Shared by all engine slots of a process.
pub struct Runtime {
    pub(crate) config: EngineConfig,
    pub(crate) engine: wasmtime::Engine,
    linker: Linker<TaskState>,
    modules: MemoryCache<LoadedModule>,
    disk: Option<DiskCache>,
    pub(crate) ticker: Ticker,
    config_hash: u64,
}

impl Runtime {
    /// Starts a runtime with this configuration.
    pub fn new(config: EngineConfig) -> Result<Arc<Runtime>, RuntimeError> {
        let wasm_err = |e: wasmtime::Error| RuntimeError::Wasmtime(format!("{e:#}"));
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
        let mut wasm = wasmtime::Config::new();
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .consume_fuel(config.fuel_metering)
            .max_wasm_stack(config.max_wasm_stack);
        let engine = wasmtime::Engine::new(&wasm).map_err(wasm_err)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut TaskState| &mut s.wasi)
            .map_err(wasm_err)?;
        poll::add_to_linker(&mut linker).map_err(wasm_err)?;
        imports::add_to_linker(&mut linker).map_err(wasm_err)?;

        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:?}", config.limits).hash(&mut h);
        let config_hash = h.finish();

        let disk = config
            .cache_dir
            .as_deref()
            .map(|dir| DiskCache::new(dir, &engine));
        let ticker = Ticker::start(&engine, config.epoch_tick)?;
        Ok(Arc::new(Runtime {
            config,
            engine,
            linker,
            modules: MemoryCache::default(),
            disk,
            ticker,
            config_hash,
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

    /// A hash of this runtime's configuration, part of every result's fingerprint.
    pub fn config_hash(&self) -> u64 {
        self.config_hash
    }

    /// Compiles (or loads from the disk cache) and links a module given as a
    /// wasm binary or `.wat` text. Returns its hash, the sha256 of the binary.
    pub fn load(&self, bytes: &[u8]) -> Result<ModuleHash, TaskError> {
        let binary = wat::parse_bytes(bytes).map_err(|e| TaskError::ModuleInvalid {
            reason: format!("not a wasm binary, and not valid WAT text: {e}"),
        })?;
        let hash = ModuleHash::of(&binary);
        if self.modules.get(&hash).is_some() || self.load_cached(&hash) {
            return Ok(hash);
        }
        let module = Module::new(&self.engine, &binary).map_err(|e| TaskError::ModuleInvalid {
            reason: format!("{e:#}"),
        })?;
        self.link(hash, &module)?;
        if let Some(disk) = &self.disk {
            disk.store(&hash, &module);
        }
        Ok(hash)
    }

    /// Makes `hash` ready from the disk cache alone, without its bytes.
    /// Returns whether it is loaded now.
    pub fn load_cached(&self, hash: &ModuleHash) -> bool {
        if self.modules.get(hash).is_some() {
            return true;
        }
        let Some(module) = self.disk.as_ref().and_then(|d| d.load(&self.engine, hash)) else {
            return false;
        };
        self.link(*hash, &module).is_ok()
    }

    /// Whether `hash` is loaded in this process.
    pub fn is_loaded(&self, hash: &ModuleHash) -> bool {
        self.modules.get(hash).is_some()
    }

    /// The callable functions of a loaded module (CBOR and numeric exports,
    /// and `_start` for commands).
    pub fn exports(&self, hash: &ModuleHash) -> Option<Vec<String>> {
        self.modules.get(hash).map(|m| m.exports.callable())
    }

    pub(crate) fn module(&self, hash: &ModuleHash) -> Result<Arc<LoadedModule>, TaskError> {
        self.modules
            .get(hash)
            .ok_or(TaskError::ModuleNotFound(*hash))
    }

    fn link(&self, hash: ModuleHash, module: &Module) -> Result<(), TaskError> {
        let pre = self
            .linker
            .instantiate_pre(module)
            .map_err(|e| TaskError::ModuleInvalid {
                reason: format!("cannot link: {e:#}"),
            })?;
        let exports = Exports::of(module);
        self.modules.insert(hash, LoadedModule { pre, exports });
        Ok(())
    }
}
