//! One task's sandbox: a wasmtime `Store` and instance with the task's limits,
//! captured output, deadline and abort check.
//!
//! A function call uses one instance. A chunk of a map calls the function once
//! per item on the same instance (that is what makes chunks cheap), so the
//! wall-time deadline restarts for each item; after an item fails inside the
//! guest, the instance may be broken (a Rust guest that panicked is), so the
//! sandbox is renewed with a fresh store before the next item, keeping the
//! namespace, the output captured so far and the fuel count. In
//! deterministic mode every item gets a fresh store and instance (its own
//! seed and virtual time), so a chunk's items give what they would give as
//! tasks of their own, whatever the chunk size. This type holds no policy
//! about what to call: `engine.rs` decides.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use grid_proto::{Call, Limits, Outcome, Stream, TaskError, TrapKind, Value};
use wasmtime::{Instance, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::abi::{self, CallError, Convention};
use crate::config::MAX_MEMORY;
use crate::determinism::{SeededRng, VirtualTime};
use crate::failure::{self, Failure, Seen};
use crate::interrupt::{Watch, lock};
use crate::output::{Capture, CurrentItem, LiveOutput};
use crate::runtime::{Flavor, LoadedModule, Runtime};
use crate::store::{MemoryLimiter, TaskState};
use crate::{Interrupter, Namespace};

pub(crate) struct Sandbox<'a> {
    runtime: Arc<Runtime>,
    module: &'a LoadedModule,
    call: &'a Call,
    limits: Limits,
    watch: Watch,
    store: Store<TaskState>,
    instance: Option<Instance>,
    stdout: Capture,
    stderr: Capture,
    /// Fuel burnt by stores this sandbox already replaced.
    fuel_spent: u64,
    /// The seed of the current store, in deterministic mode.
    seed: Option<u64>,
    item: CurrentItem,
}

/// How a sandbox runs, beyond the task's call and limits.
#[derive(Clone, Default)]
pub(crate) struct Options {
    /// Deterministic mode, with this seed (of the first item, for a chunk).
    pub seed: Option<u64>,
    /// Where output goes as it is written.
    pub live: Option<Arc<dyn LiveOutput>>,
}

/// What is left when a sandbox closes.
pub(crate) struct Closed {
    pub namespace: Namespace,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub fuel_used: Option<u64>,
}

impl<'a> Sandbox<'a> {
    pub(crate) fn open(
        runtime: Arc<Runtime>,
        module: &'a LoadedModule,
        call: &'a Call,
        limits: Limits,
        namespace: Namespace,
        interrupter: Interrupter,
        options: Options,
    ) -> Sandbox<'a> {
        let item = CurrentItem::new(AtomicU32::new(u32::MAX));
        let capture = |limit: Option<u64>, stream| {
            let live = options.live.clone().map(|l| (l, stream, item.clone()));
            Capture::streaming(limit.unwrap_or(u64::MAX), live)
        };
        let stdout = capture(limits.stdout_bytes, Stream::Stdout);
        let stderr = capture(limits.stderr_bytes, Stream::Stderr);
        let watch = Watch::new(interrupter);
        let store = new_store(
            flavor(&runtime, options.seed),
            call,
            &limits,
            namespace,
            (&stdout, &stderr),
            &watch,
            options.seed,
        );
        let mut sandbox = Sandbox {
            runtime,
            module,
            call,
            limits,
            watch,
            store,
            instance: None,
            stdout,
            stderr,
            fuel_spent: 0,
            seed: options.seed,
            item,
        };
        sandbox.restart_clock();
        sandbox
    }

    /// Starts item `index` of a chunk: its output is marked with it and, in
    /// deterministic mode, it runs in a fresh store with its own `seed`.
    pub(crate) fn start_item(&mut self, index: usize, seed: Option<u64>) {
        self.item.store(
            u32::try_from(index).unwrap_or(u32::MAX - 1),
            Ordering::Relaxed,
        );
        if self.seed.is_some() && (index > 0 || self.seed != seed) {
            self.seed = seed;
            self.renew();
        }
        self.restart_clock();
    }

    /// The namespace, which lives in the store while the sandbox is open.
    pub(crate) fn namespace(&self) -> &Namespace {
        &self.store.data().namespace
    }

    /// Restarts the wall-time deadline (for the next item of a chunk).
    pub(crate) fn restart_clock(&mut self) {
        *lock(&self.watch.deadline) = self
            .limits
            .wall_time_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
    }

    /// Calls a function (one item of a chunk, or the whole task).
    pub(crate) fn call_function(
        &mut self,
        name: &str,
        convention: &Convention,
        args: &[Value],
        encoded: &[u8],
    ) -> Result<Value, CallError> {
        let instance = self.instance()?;
        let store = &mut self.store;
        match convention {
            Convention::Cbor { export } => abi::call_cbor(store, &instance, name, export, encoded),
            Convention::Numeric { params, results } => {
                abi::call_numeric(store, &instance, name, params, results.len(), args)
            }
        }
    }

    /// Runs `_start` as a WASI command; the value is the exit code.
    pub(crate) fn run_command(&mut self) -> Result<Value, CallError> {
        let instance = self.module.pre.instantiate(&mut self.store)?;
        let start = instance.get_typed_func::<(), ()>(&mut self.store, "_start")?;
        start.call(&mut self.store, ())?;
        Ok(failure::exit_value(0))
    }

    fn instance(&mut self) -> Result<Instance, CallError> {
        if let Some(instance) = self.instance {
            return Ok(instance);
        }
        let instance = self.module.pre.instantiate(&mut self.store)?;
        if self.module.exports.initialize {
            let init = instance.get_typed_func::<(), ()>(&mut self.store, "_initialize")?;
            init.call(&mut self.store, ())?;
        }
        self.instance = Some(instance);
        Ok(instance)
    }

    /// Turns a call's result into an outcome, explaining failures. After a
    /// failure inside the guest the sandbox is renewed, so it can go on.
    pub(crate) fn outcome(&mut self, result: Result<Value, CallError>) -> Outcome {
        let err = match result {
            Ok(v) => return Outcome::Ok(v),
            Err(CallError::Task(e)) => return Outcome::Err(e),
            Err(CallError::Wasm(err)) => err,
        };
        let seen = Seen {
            state: self.store.data(),
            interrupted: *lock(&self.watch.interrupted),
            stdout: &self.stdout,
            stderr: &self.stderr,
            limits: &self.limits,
        };
        let outcome = match failure::classify(err, seen) {
            Failure::Exit(code) if matches!(self.call, Call::Command { .. }) => {
                Outcome::Ok(failure::exit_value(code))
            }
            Failure::Exit(code) => Outcome::Err(TaskError::Trap {
                kind: TrapKind::Other,
                message: format!("the function called exit({code})"),
                backtrace: Vec::new(),
            }),
            Failure::Error(e) => Outcome::Err(e),
        };
        self.renew();
        outcome
    }

    /// Replaces the store with a fresh one, keeping namespace, output and fuel count.
    fn renew(&mut self) {
        self.fuel_spent += self.store_fuel_used();
        let namespace = std::mem::take(&mut self.store.data_mut().namespace);
        *lock(&self.watch.interrupted) = None;
        self.store = new_store(
            flavor(&self.runtime, self.seed),
            self.call,
            &self.limits,
            namespace,
            (&self.stdout, &self.stderr),
            &self.watch,
            self.seed,
        );
        self.instance = None;
    }

    fn store_fuel_used(&self) -> u64 {
        let budget = self.limits.fuel.unwrap_or(u64::MAX);
        budget.saturating_sub(self.store.get_fuel().unwrap_or(budget))
    }

    pub(crate) fn close(mut self) -> Closed {
        let fuel_used = flavor(&self.runtime, self.seed)
            .metered
            .then(|| self.fuel_spent + self.store_fuel_used());
        Closed {
            namespace: std::mem::take(&mut self.store.data_mut().namespace),
            stdout: self.stdout.take(),
            stderr: self.stderr.take(),
            fuel_used,
        }
    }
}

/// The flavor the task's module was loaded in (`Engine::run` made it).
fn flavor(runtime: &Runtime, seed: Option<u64>) -> &Flavor {
    runtime.flavor_made(seed.is_some())
}

/// A store with the task's WASI context, limits, fuel and epoch callback.
fn new_store(
    flavor: &Flavor,
    call: &Call,
    limits: &Limits,
    namespace: Namespace,
    (stdout, stderr): (&Capture, &Capture),
    watch: &Watch,
    seed: Option<u64>,
) -> Store<TaskState> {
    let mut wasi = WasiCtxBuilder::new();
    // A task runs on its engine's own thread, so WASI calls may block it
    // rather than go through tokio's blocking pool. (A guest's plain sleep
    // does not reach wasmtime-wasi at all: see `poll.rs`.)
    wasi.stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_blocking_current_thread(true);
    if let Call::Command {
        argv,
        env,
        stdin,
        dirs,
    } = call
    {
        wasi.args(argv)
            .envs(env)
            .stdin(MemoryInputPipe::new(bytes::Bytes::copy_from_slice(stdin)));
        for dir in dirs {
            // `engine.rs` checked the grants against the operator's list.
            if let Err(e) = wasi.preopened_dir(&dir.host, &dir.guest, FsPerms::ReadOnly) {
                tracing::warn!(dir = %dir.host, error = %e, "cannot open a granted directory");
            }
        }
    }
    let virtual_time = seed.map(|seed| {
        let time = VirtualTime::default();
        wasi.wall_clock(time.clone())
            .monotonic_clock(time.clone())
            .secure_random(SeededRng::new(seed))
            .insecure_random(SeededRng::new(seed.rotate_left(32)))
            .insecure_random_seed(u128::from(seed));
        time
    });
    let state = TaskState {
        wasi: wasi.build_p1(),
        limiter: MemoryLimiter::new(limits.memory_bytes.unwrap_or(MAX_MEMORY)),
        namespace,
        panic: None,
        watch: watch.clone(),
        poll_fallback: None,
        virtual_time,
    };
    let mut store = Store::new(&flavor.engine, state);
    store.limiter(|s| &mut s.limiter);
    if flavor.metered {
        // Cannot fail: metering is on.
        let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
    }
    let watch = watch.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| match watch.check() {
        Ok(()) => Ok(UpdateDeadline::Continue(1)),
        Err(why) => Err(wasmtime::Error::new(why)),
    });
    store
}
