//! An engine slot: runs one task at a time in a fresh sandbox and owns a
//! namespace.
//!
//! `run` takes a [`Task`] and always returns a [`TaskResult`]: every failure,
//! from a missing module to a trap deep in the guest, is a value in the
//! result, and the slot is ready for the next task afterwards. Each task gets
//! a new wasmtime `Store` and instance (see `sandbox.rs`), its own captured
//! stdout/stderr, and the limits of the runtime lowered by the task's. The
//! namespace is moved into the store for the task (guests reach it through
//! the `grid` imports) and moved back after, whatever happened.
//!
//! A chunk of a map ([`Call::Map`]) is one task: the items run in order on one
//! instance and each gets its own outcome; a failing item does not stop the
//! others, an abort stops them all. A deterministic chunk runs each item in
//! a fresh instance with the seed it would have as a task of its own, so
//! its values do not depend on the chunk size.
//!
//! A command's directory grants are checked here against the directories
//! the operator allows ([`EngineConfig::allowed_dirs`](crate::EngineConfig)):
//! a grant outside them, or of something that is not a directory, fails the
//! task with `bad_arguments` naming the path.
//!
//! This type does no queueing and no I/O: whoever feeds it tasks decides what
//! runs when, and uses the [`Interrupter`] to abort the running task from
//! another thread.

use std::path::Path;
use std::sync::Arc;

use grid_proto::{
    Arg, ArgsHash, Call, ConfigHash, Deterministic, DirGrant, EngineId, EngineUuid, Fingerprint,
    Limits, Outcome, OutputHash, Task, TaskError, TaskResult, Timestamp, Value,
};

use grid_proto::cbor::{self, Typed};

use crate::abi::Convention;
use crate::determinism::seed_for;
use crate::output::LiveOutput;
use crate::runtime::{LoadedModule, Runtime};
use crate::sandbox::{Options, Sandbox};
use crate::{Interrupter, Namespace};

/// One sandbox slot.
pub struct Engine {
    runtime: Arc<Runtime>,
    id: EngineId,
    uuid: EngineUuid,
    namespace: Namespace,
    interrupter: Interrupter,
    live: Option<Arc<dyn LiveOutput>>,
    /// The configuration hash of the last task's options: tasks of one map
    /// share them, and hashing them again costs microseconds per task.
    last_config: Option<((Limits, Option<Deterministic>), ConfigHash)>,
}

/// What a run produced, before it becomes a [`TaskResult`].
struct Ran {
    outcome: Outcome,
    items: Vec<Outcome>,
    args: ArgsHash,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    fuel_used: Option<u64>,
    /// The seed of a deterministic run.
    seed: Option<u64>,
}

impl Ran {
    fn failed(error: TaskError) -> Ran {
        Ran {
            outcome: Outcome::Err(error),
            items: Vec::new(),
            args: ArgsHash::default(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            fuel_used: None,
            seed: None,
        }
    }
}

impl Engine {
    pub(crate) fn new(runtime: Arc<Runtime>, id: EngineId, uuid: EngineUuid) -> Engine {
        Engine {
            runtime,
            id,
            uuid,
            namespace: Namespace::default(),
            interrupter: Interrupter::default(),
            live: None,
            last_config: None,
        }
    }

    /// Streams every task's output to `live` as it is written (or stops).
    pub fn set_live_output(&mut self, live: Option<Arc<dyn LiveOutput>>) {
        self.live = live;
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
        self.interrupter.begin(task.msg_id);
        let runtime = self.runtime.clone();
        let ran = {
            let _ticking = runtime.ticker.running();
            match self
                .runtime
                .module(&task.module, task.deterministic.is_some())
            {
                // Aborted before it began: do not start it at all.
                _ if self.interrupter.check(None).is_err() => Ran::failed(TaskError::Aborted),
                Err(e) => Ran::failed(e),
                Ok(module) => self.execute(task, limits, &module),
            }
        };
        self.interrupter.end();
        TaskResult {
            msg_id: task.msg_id,
            outcome: ran.outcome,
            items: ran.items,
            started,
            completed: Timestamp::now(),
            fingerprint: Fingerprint {
                module: task.module,
                args: ran.args,
                config: self.config_hash(limits, task.deterministic),
                fuel_used: ran.fuel_used,
                output: OutputHash::of_output(&ran.stdout, &ran.stderr),
                seed: ran.seed,
            },
            stdout: ran.stdout,
            stderr: ran.stderr,
        }
    }

    /// The runtime's configuration hash for these options (see `last_config`).
    fn config_hash(&mut self, limits: Limits, deterministic: Option<Deterministic>) -> ConfigHash {
        let key = (limits, deterministic);
        match &self.last_config {
            Some((last, hash)) if *last == key => *hash,
            _ => {
                let hash = self.runtime.config_hash(&limits, deterministic);
                self.last_config = Some((key, hash));
                hash
            }
        }
    }

    /// The seed of a deterministic run with input `args`.
    fn seed(task: &Task, args: &ArgsHash) -> Option<u64> {
        let Deterministic { seed } = task.deterministic?;
        Some(seed.unwrap_or_else(|| seed_for(&task.module, args)))
    }

    fn execute(&mut self, task: &Task, limits: Limits, module: &LoadedModule) -> Ran {
        let metered = self
            .runtime
            .flavor_made(task.deterministic.is_some())
            .metered;
        if limits.fuel.is_some() && !metered {
            return Ran::failed(TaskError::BadArguments {
                function: task.function().to_string(),
                message: "a fuel limit needs an engine that meters fuel, and this one does not"
                    .into(),
            });
        }
        match &task.call {
            Call::Function { name, args } => {
                let convention = match module.exports.find(name) {
                    Ok(c) => c.clone(),
                    Err(e) => return Ran::failed(e),
                };
                let typed = module.exports.typed();
                let (args, encoded) = match resolve(&self.namespace, name, args, typed) {
                    Ok(a) => a,
                    Err(e) => return Ran::failed(e),
                };
                let hash = ArgsHash::of(&encoded);
                let seed = Self::seed(task, &hash);
                let mut sandbox = self.open(module, &task.call, limits, seed);
                let result = sandbox.call_function(name, &convention, &args, &encoded);
                let outcome = sandbox.outcome(result);
                self.close(sandbox, outcome, Vec::new(), hash, seed)
            }
            Call::Map { name, items } => {
                let convention = match module.exports.find(name) {
                    Ok(c) => c.clone(),
                    Err(e) => return Ran::failed(e),
                };
                self.execute_chunk(task, limits, module, name, &convention, items)
            }
            Call::Command { .. } if !module.exports.command => {
                Ran::failed(TaskError::ExportMissing {
                    name: "_start".into(),
                    exports: module.exports.callable(),
                })
            }
            Call::Command { dirs, .. } => {
                if let Err(e) = self.check_grants(dirs) {
                    return Ran::failed(e);
                }
                let hash = ArgsHash::of(&grid_proto::encode(&task.call).unwrap_or_default());
                let seed = Self::seed(task, &hash);
                let mut sandbox = self.open(module, &task.call, limits, seed);
                let result = sandbox.run_command();
                let outcome = sandbox.outcome(result);
                self.close(sandbox, outcome, Vec::new(), hash, seed)
            }
        }
    }

    fn execute_chunk(
        &mut self,
        task: &Task,
        limits: Limits,
        module: &LoadedModule,
        name: &str,
        convention: &Convention,
        items: &[Vec<Arg>],
    ) -> Ran {
        let mut all_encoded = Vec::new();
        let mut outcomes = Vec::with_capacity(items.len());
        // Each item has its own seed, made when it starts.
        let first_seed = task.deterministic.map(|_| 0);
        let mut sandbox = self.open(module, &task.call, limits, first_seed);
        for (index, item) in items.iter().enumerate() {
            if outcomes.last() == Some(&Outcome::Err(TaskError::Aborted)) {
                outcomes.push(Outcome::Err(TaskError::Aborted));
                continue;
            }
            let outcome = match resolve(sandbox.namespace(), name, item, module.exports.typed()) {
                Err(e) => Outcome::Err(e),
                Ok((args, encoded)) => {
                    all_encoded.extend_from_slice(&encoded);
                    sandbox.start_item(index, Self::seed(task, &ArgsHash::of(&encoded)));
                    let result = sandbox.call_function(name, convention, &args, &encoded);
                    sandbox.outcome(result)
                }
            };
            outcomes.push(outcome);
        }
        let outcome = outcomes
            .iter()
            .find(|o| matches!(o, Outcome::Err(_)))
            .cloned()
            .unwrap_or(Outcome::Ok(Value::Null));
        let hash = ArgsHash::of(&all_encoded);
        let seed = Self::seed(task, &hash);
        self.close(sandbox, outcome, outcomes, hash, seed)
    }

    /// Refuses a directory grant the operator does not allow.
    fn check_grants(&self, dirs: &[DirGrant]) -> Result<(), TaskError> {
        let refuse = |message: String| TaskError::BadArguments {
            function: "_start".into(),
            message,
        };
        for grant in dirs {
            let path = Path::new(&grant.host);
            let real = path
                .canonicalize()
                .map_err(|e| refuse(format!("cannot grant {}: {e}", grant.host)))?;
            if !real.is_dir() {
                return Err(refuse(format!(
                    "cannot grant {}: not a directory",
                    grant.host
                )));
            }
            let allowed = self
                .runtime
                .config
                .allowed_dirs
                .iter()
                .filter_map(|d| d.canonicalize().ok())
                .any(|d| real.starts_with(d));
            if !allowed {
                return Err(refuse(format!(
                    "cannot grant {}: this engine allows no directory there \
                     (its operator allows directories with `grid engine --allow-dir`)",
                    grant.host
                )));
            }
        }
        Ok(())
    }

    fn open<'a>(
        &mut self,
        module: &'a LoadedModule,
        call: &'a Call,
        limits: Limits,
        seed: Option<u64>,
    ) -> Sandbox<'a> {
        let namespace = std::mem::take(&mut self.namespace);
        let options = Options {
            seed,
            live: self.live.clone(),
        };
        Sandbox::open(
            self.runtime.clone(),
            module,
            call,
            limits,
            namespace,
            self.interrupter.clone(),
            options,
        )
    }

    fn close(
        &mut self,
        sandbox: Sandbox<'_>,
        outcome: Outcome,
        items: Vec<Outcome>,
        args: ArgsHash,
        seed: Option<u64>,
    ) -> Ran {
        let closed = sandbox.close();
        self.namespace = closed.namespace;
        Ran {
            outcome,
            items,
            args,
            stdout: closed.stdout,
            stderr: closed.stderr,
            fuel_used: closed.fuel_used,
            seed,
        }
    }
}

/// Resolves references and encodes the arguments of one call, as the
/// module reads them.
fn resolve(
    namespace: &Namespace,
    name: &str,
    args: &[Arg],
    typed: Typed,
) -> Result<(Vec<Value>, Vec<u8>), TaskError> {
    let args = namespace.resolve(name, args)?;
    let encoded = cbor::encode_array(&args, typed).map_err(|e| TaskError::BadArguments {
        function: name.to_string(),
        message: e.to_string(),
    })?;
    Ok((args, encoded))
}
