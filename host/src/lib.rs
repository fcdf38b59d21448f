//! `grid-host`: the Grid engine, running tasks in wasmtime sandboxes.
//!
//! A [`Runtime`] is what one engine process shares: the wasmtime engine
//! (pooling allocator, epoch interruption, optional fuel metering) and its
//! deterministic twin for reproducible tasks (`determinism.rs`), compiled
//! modules cached in memory and on disk, the epoch ticker, and the rate
//! limit on records of module uses. An [`Engine`]
//! is one sandbox slot made from it: it runs one [`Task`](grid_proto::Task)
//! at a time in a fresh instance and returns a
//! [`TaskResult`](grid_proto::TaskResult), owns a [`Namespace`], and can be
//! interrupted from another thread through its [`Interrupter`].
//!
//! ```no_run
//! use grid_host::{EngineConfig, Runtime};
//! use grid_proto::{EngineId, Task, Value};
//!
//! let runtime = Runtime::new(EngineConfig::default())?;
//! let module = runtime.load(br#"(module (func (export "square") (param i64) (result i64)
//!     local.get 0 local.get 0 i64.mul))"#)?;
//! let mut engine = runtime.engine(EngineId(0));
//! let result = engine.run(&Task::call(module, "square", vec![Value::from(7)]));
//! assert_eq!(result.value(), Ok(&Value::from(49)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`EngineSlot`] puts an engine on the bus: it registers with the
//! controller, takes work from `engine.<id>.task`, and publishes results,
//! and the running task's output as it comes ([`LiveOutput`], on
//! `iopub.<client>`); it records in the blob store that it uses its tasks'
//! modules, so that the blob collector keeps them.
//! The calling conventions are in `guest-sdk/ABI.md`. This crate does no
//! scheduling: that is the controller's.

mod abi;
mod cache;
mod config;
mod determinism;
mod engine;
mod failure;
mod imports;
mod interrupt;
mod iopub;
mod memory;
mod namespace;
mod output;
mod poll;
mod queue;
mod replay;
mod runtime;
mod sandbox;
mod service;
mod store;
mod ticker;
mod uses;

pub use config::{EngineConfig, MAX_MEMORY, MODULE_USE_INTERVAL, cache_home};
pub use engine::Engine;
pub use interrupt::Interrupter;
pub use namespace::Namespace;
pub use output::LiveOutput;
pub use runtime::{Runtime, RuntimeError, WASMTIME_VERSION};
pub use service::{EngineSlot, HEARTBEAT_PERIOD, ServiceError};
