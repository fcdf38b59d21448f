//! An engine slot: runs one task at a time in a fresh sandbox and owns a
//! namespace.
//!
//! `run` takes a [`Task`] and always returns a [`TaskResult`]: every failure,
//! from a missing module to a trap deep in the guest, is a value in the
//! result, and the slot is ready for the next task afterwards. Each task gets
//! a new wasmtime `Store` and instance (from the pooling allocator), its own
//! captured stdout/stderr, and the limits of the runtime lowered by the task's.
//! The namespace is moved into the store for the task (guests reach it through
//! the `grid` imports) and moved back after, whatever happened.
//!
//! This type does no queueing and no I/O: whoever feeds it tasks (a thread per
//! slot, in `grid engine`) decides what runs when, and uses the
//! [`Interrupter`] to abort the running task from another thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grid_proto::{
    ArgsHash, Call, EngineId, EngineUuid, Fingerprint, Limits, Outcome, Task, TaskError,
    TaskResult, Timestamp, Value,
};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

use crate::abi::{self, CallError, Convention};
use crate::config::MAX_MEMORY;
use crate::failure::{self, Failure, Seen};
use crate::output::Capture;
use crate::runtime::{LoadedModule, Runtime};
use crate::store::{MemoryLimiter, TaskState};
use crate::{Interrupter, Namespace};

/// One sandbox slot.
pub struct Engine {
    runtime: Arc<Runtime>,
    id: EngineId,
    uuid: EngineUuid,
    namespace: Namespace,
    interrupter: Interrupter,
}

/// What a task is about to run, after checks that need no instance.
enum Prepared {
    Function {
        name: String,
        convention: Convention,
        args: Vec<Value>,
        encoded: Vec<u8>,
    },
    Command,
}

impl Engine {
    pub(crate) fn new(runtime: Arc<Runtime>, id: EngineId, uuid: EngineUuid) -> Engine {
        Engine {
            runtime,
            id,
            uuid,
            namespace: Namespace::default(),
            interrupter: Interrupter::default(),
        }
    }

    pub fn id(&self) -> EngineId {
        self.id
    }

    pub fn uuid(&self) -> EngineUuid {
        self.uuid
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    pub fn namespace_mut(&mut self) -> &mut Namespace {
        &mut self.namespace
    }

    /// A handle that aborts this slot's running task from any thread.
    pub fn interrupter(&self) -> Interrupter {
        self.interrupter.clone()
    }

    /// Runs `task` to completion, failure or abort.
    pub fn run(&mut self, task: &Task) -> TaskResult {
        let started = Timestamp::now();
        let limits = self.runtime.config.limits.lowered_by(&task.limits);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut fuel_used = None;
        let mut args_hash = ArgsHash([0; 32]);
        let outcome = match self.prepare(task, &limits) {
            Err(e) => Outcome::Err(e),
            Ok((module, prepared)) => {
                args_hash = match &prepared {
                    Prepared::Function { encoded, .. } => ArgsHash::of(encoded),
                    Prepared::Command => command_hash(&task.call),
                };
                let ran = self.execute(task, &limits, &module, prepared);
                stdout = ran.stdout;
                stderr = ran.stderr;
                fuel_used = ran.fuel_used;
                ran.outcome
            }
        };
        TaskResult {
            msg_id: task.msg_id,
            outcome,
            stdout,
            stderr,
            started,
            completed: Timestamp::now(),
            fingerprint: Fingerprint {
                module: task.module,
                args: args_hash,
                config: self.runtime.config_hash(),
                fuel_used,
            },
        }
    }

    /// Everything that can be checked before instantiating.
    fn prepare(
        &self,
        task: &Task,
        limits: &Limits,
    ) -> Result<(Arc<LoadedModule>, Prepared), TaskError> {
        let module = self.runtime.module(&task.module)?;
        if limits.fuel.is_some() && !self.runtime.config.fuel_metering {
            return Err(TaskError::BadArguments {
                function: task.function().to_string(),
                message: "a fuel limit needs an engine that meters fuel, and this one does not"
                    .into(),
            });
        }
        let prepared = match &task.call {
            Call::Function { name, args } => {
                let convention = module.exports.find(name)?.clone();
                let args = self.namespace.resolve(name, args)?;
                let encoded = grid_proto::encode(&args).map_err(|e| TaskError::BadArguments {
                    function: name.clone(),
                    message: e.to_string(),
                })?;
                Prepared::Function {
                    name: name.clone(),
                    convention,
                    args,
                    encoded,
                }
            }
            Call::Command { .. } if !module.exports.command => {
                return Err(TaskError::ExportMissing {
                    name: "_start".into(),
                    exports: module.exports.callable(),
                });
            }
            Call::Command { .. } => Prepared::Command,
        };
        Ok((module, prepared))
    }

    fn execute(
        &mut self,
        task: &Task,
        limits: &Limits,
        module: &LoadedModule,
        prepared: Prepared,
    ) -> Ran {
        let stdout = Capture::new(limits.stdout_bytes.unwrap_or(u64::MAX));
        let stderr = Capture::new(limits.stderr_bytes.unwrap_or(u64::MAX));
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        if let Call::Command { argv, env, stdin } = &task.call {
            wasi.args(argv)
                .envs(env)
                .stdin(MemoryInputPipe::new(bytes::Bytes::copy_from_slice(stdin)));
        }
        let state = TaskState {
            wasi: wasi.build_p1(),
            limiter: MemoryLimiter::new(limits.memory_bytes.unwrap_or(MAX_MEMORY)),
            namespace: std::mem::take(&mut self.namespace),
            panic: None,
        };
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        let fuel_budget = limits.fuel.unwrap_or(u64::MAX);
        if self.runtime.config.fuel_metering {
            // Cannot fail: metering is on.
            let _ = store.set_fuel(fuel_budget);
        }
        let deadline = limits
            .wall_time_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        let interrupter = self.interrupter.clone();
        let interrupted = Arc::new(std::sync::Mutex::new(None));
        let seen_interrupt = interrupted.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| match interrupter.check(deadline) {
            Ok(()) => Ok(UpdateDeadline::Continue(1)),
            Err(why) => {
                *seen_interrupt.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                Err(wasmtime::Error::new(why))
            }
        });

        self.interrupter.begin(task.msg_id);
        let result = {
            let _ticking = self.runtime.ticker.running();
            call(&mut store, module, prepared)
        };
        self.interrupter.end();

        let fuel_used = self
            .runtime
            .config
            .fuel_metering
            .then(|| fuel_budget.saturating_sub(store.get_fuel().unwrap_or(0)));
        let outcome = match result {
            Ok(v) => Outcome::Ok(v),
            Err(CallError::Task(e)) => Outcome::Err(e),
            Err(CallError::Wasm(err)) => {
                let seen = Seen {
                    state: store.data(),
                    interrupted: *interrupted.lock().unwrap_or_else(|p| p.into_inner()),
                    stdout: &stdout,
                    stderr: &stderr,
                    limits,
                };
                match failure::classify(err, seen) {
                    Failure::Exit(code) if matches!(task.call, Call::Command { .. }) => {
                        Outcome::Ok(failure::exit_value(code))
                    }
                    Failure::Exit(code) => Outcome::Err(TaskError::Trap {
                        kind: grid_proto::TrapKind::Other,
                        message: format!("the function called exit({code})"),
                        backtrace: Vec::new(),
                    }),
                    Failure::Error(e) => Outcome::Err(e),
                }
            }
        };
        self.namespace = std::mem::take(&mut store.data_mut().namespace);
        Ran {
            outcome,
            stdout: stdout.take(),
            stderr: stderr.take(),
            fuel_used,
        }
    }
}

struct Ran {
    outcome: Outcome,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    fuel_used: Option<u64>,
}

/// Instantiates and calls; every error is left for `failure::classify`.
fn call(
    store: &mut Store<TaskState>,
    module: &LoadedModule,
    prepared: Prepared,
) -> Result<Value, CallError> {
    let instance = module.pre.instantiate(&mut *store)?;
    match prepared {
        Prepared::Command => {
            let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
            start.call(&mut *store, ())?;
            Ok(failure::exit_value(0))
        }
        Prepared::Function {
            name,
            convention,
            args,
            encoded,
        } => {
            if module.exports.initialize {
                let init = instance.get_typed_func::<(), ()>(&mut *store, "_initialize")?;
                init.call(&mut *store, ())?;
            }
            match &convention {
                Convention::Cbor { export } => {
                    abi::call_cbor(&mut *store, &instance, &name, export, &encoded)
                }
                Convention::Numeric { params, results } => {
                    abi::call_numeric(&mut *store, &instance, &name, params, results.len(), &args)
                }
            }
        }
    }
}

/// The fingerprint of a command's inputs.
fn command_hash(call: &Call) -> ArgsHash {
    ArgsHash::of(&grid_proto::encode(call).unwrap_or_default())
}
