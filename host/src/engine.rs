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
//! others, an abort stops them all.
//!
//! This type does no queueing and no I/O: whoever feeds it tasks decides what
//! runs when, and uses the [`Interrupter`] to abort the running task from
//! another thread.

use std::sync::Arc;

use grid_proto::{
    Arg, ArgsHash, Call, EngineId, EngineUuid, Fingerprint, Limits, Outcome, Task, TaskError,
    TaskResult, Timestamp, Value,
};

use crate::abi::Convention;
use crate::runtime::{LoadedModule, Runtime};
use crate::sandbox::Sandbox;
use crate::{Interrupter, Namespace};

/// One sandbox slot.
pub struct Engine {
    runtime: Arc<Runtime>,
    id: EngineId,
    uuid: EngineUuid,
    namespace: Namespace,
    interrupter: Interrupter,
}

/// What a run produced, before it becomes a [`TaskResult`].
struct Ran {
    outcome: Outcome,
    items: Vec<Outcome>,
    args: ArgsHash,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    fuel_used: Option<u64>,
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
        self.interrupter.begin(task.msg_id);
        let runtime = self.runtime.clone();
        let ran = {
            let _ticking = runtime.ticker.running();
            match self.runtime.module(&task.module) {
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
            stdout: ran.stdout,
            stderr: ran.stderr,
            started,
            completed: Timestamp::now(),
            fingerprint: Fingerprint {
                module: task.module,
                args: ran.args,
                config: self.runtime.config_hash(),
                fuel_used: ran.fuel_used,
            },
        }
    }

    fn execute(&mut self, task: &Task, limits: Limits, module: &LoadedModule) -> Ran {
        if limits.fuel.is_some() && !self.runtime.config.fuel_metering {
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
                let (args, encoded) = match self.arguments(name, args) {
                    Ok(a) => a,
                    Err(e) => return Ran::failed(e),
                };
                let hash = ArgsHash::of(&encoded);
                let mut sandbox = self.open(module, &task.call, limits);
                let result = sandbox.call_function(name, &convention, &args, &encoded);
                let outcome = sandbox.outcome(result);
                self.close(sandbox, outcome, Vec::new(), hash)
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
            Call::Command { .. } => {
                let hash = ArgsHash::of(&grid_proto::encode(&task.call).unwrap_or_default());
                let mut sandbox = self.open(module, &task.call, limits);
                let result = sandbox.run_command();
                let outcome = sandbox.outcome(result);
                self.close(sandbox, outcome, Vec::new(), hash)
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
        let mut sandbox = self.open(module, &task.call, limits);
        for item in items {
            if outcomes.last() == Some(&Outcome::Err(TaskError::Aborted)) {
                outcomes.push(Outcome::Err(TaskError::Aborted));
                continue;
            }
            let outcome = match resolve(sandbox.namespace(), name, item) {
                Err(e) => Outcome::Err(e),
                Ok((args, encoded)) => {
                    all_encoded.extend_from_slice(&encoded);
                    sandbox.restart_clock();
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
        self.close(sandbox, outcome, outcomes, ArgsHash::of(&all_encoded))
    }

    /// Resolves references and encodes the arguments of one call.
    fn arguments(&self, name: &str, args: &[Arg]) -> Result<(Vec<Value>, Vec<u8>), TaskError> {
        resolve(&self.namespace, name, args)
    }

    fn open<'a>(
        &mut self,
        module: &'a LoadedModule,
        call: &'a Call,
        limits: Limits,
    ) -> Sandbox<'a> {
        let namespace = std::mem::take(&mut self.namespace);
        Sandbox::open(
            self.runtime.clone(),
            module,
            call,
            limits,
            namespace,
            self.interrupter.clone(),
        )
    }

    fn close(
        &mut self,
        sandbox: Sandbox<'_>,
        outcome: Outcome,
        items: Vec<Outcome>,
        args: ArgsHash,
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
        }
    }
}

fn resolve(
    namespace: &Namespace,
    name: &str,
    args: &[Arg],
) -> Result<(Vec<Value>, Vec<u8>), TaskError> {
    let args = namespace.resolve(name, args)?;
    let encoded = grid_proto::encode(&args).map_err(|e| TaskError::BadArguments {
        function: name.to_string(),
        message: e.to_string(),
    })?;
    Ok((args, encoded))
}
