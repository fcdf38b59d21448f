//! Tasks: what a client asks an engine to run.
//!
//! A task names a module by hash, says what to call in it (a function with
//! arguments, or a WASI command with argv, env and stdin), and may lower the
//! engine's limits for itself. Arguments may be references to names in the
//! engine's namespace, resolved by the engine just before the call.
//!
//! A task may ask to run [`Deterministic`]ally: the engine then gives it
//! virtual clocks, seeded random bytes, canonical NaNs, fuel metering and a
//! fresh instance per item of a chunk, so that the same module and input
//! give the same value, output and fuel on every engine (`guest-sdk/ABI.md`
//! says what the guest sees).

use serde::{Deserialize, Serialize};

use crate::{ModuleHash, MsgId, Value};

/// One unit of work for one engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub msg_id: MsgId,
    pub module: ModuleHash,
    pub call: Call,
    /// Lowers the engine's limits for this task; a limit above the engine's is ignored.
    #[serde(default)]
    pub limits: Limits,
    /// Run reproducibly (see [`Deterministic`]); `None` runs with the host's
    /// clocks and random bytes.
    #[serde(default)]
    pub deterministic: Option<Deterministic>,
}

/// How a task runs reproducibly. The seed of `random_get` is `seed` when
/// given, else derived from the module and the task's input, so a task's
/// random bytes are the same wherever and whenever it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Deterministic {
    pub seed: Option<u64>,
}

/// A host directory a command may read, at a path the guest sees. Always
/// read-only; the engine refuses a grant outside the directories its
/// operator allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirGrant {
    /// The directory on the engine's machine (absolute).
    pub host: String,
    /// Where the guest finds it (`.` for its working directory).
    pub guest: String,
}

impl Task {
    /// A task calling `function` in `module` with plain value arguments.
    pub fn call(module: ModuleHash, function: &str, args: Vec<Value>) -> Task {
        Task {
            msg_id: MsgId::new(),
            module,
            call: Call::Function {
                name: function.to_string(),
                args: args.into_iter().map(Arg::Value).collect(),
            },
            limits: Limits::default(),
            deterministic: None,
        }
    }

    /// A task running `module`'s `_start` as a WASI command with this argv
    /// (`argv[0]` is the program's name), no environment and empty stdin.
    pub fn command(module: ModuleHash, argv: Vec<String>) -> Task {
        Task {
            msg_id: MsgId::new(),
            module,
            call: Call::Command {
                argv,
                env: Vec::new(),
                stdin: Vec::new(),
                dirs: Vec::new(),
            },
            limits: Limits::default(),
            deterministic: None,
        }
    }

    /// The same task, run reproducibly.
    pub fn deterministic(mut self, deterministic: Deterministic) -> Task {
        self.deterministic = Some(deterministic);
        self
    }

    /// The same task with `limits` applied.
    pub fn with_limits(mut self, limits: Limits) -> Task {
        self.limits = limits;
        self
    }

    /// The function called or, for a command, `_start`.
    pub fn function(&self) -> &str {
        match &self.call {
            Call::Function { name, .. } | Call::Map { name, .. } => name,
            Call::Command { .. } => "_start",
        }
    }
}

/// What to run in the module.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Call {
    /// Call an exported function (numeric or CBOR ABI, see `guest-sdk/ABI.md`).
    Function { name: String, args: Vec<Arg> },
    /// Call an exported function once per item, in one instance: a chunk of a
    /// map. Per-item outcomes are in [`TaskResult::items`](crate::TaskResult).
    Map { name: String, items: Vec<Vec<Arg>> },
    /// Run the module's `_start` as a WASI command. The result's value is the exit code.
    Command {
        argv: Vec<String>,
        #[serde(default)]
        env: Vec<(String, String)>,
        #[serde(default, with = "serde_bytes")]
        stdin: Vec<u8>,
        /// Read-only directories the command may read.
        #[serde(default)]
        dirs: Vec<DirGrant>,
    },
}

/// One argument of a function call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Arg {
    Value(Value),
    /// The value stored under this name in the engine's namespace.
    Ref(String),
}

impl From<Value> for Arg {
    fn from(v: Value) -> Arg {
        Arg::Value(v)
    }
}

// Plain Rust values are arguments too: `apply(&f, [3])`, `apply(&f, ["text"])`.
// A string is a string value; a namespace name is `Arg::Ref` only when asked.
macro_rules! arg_from_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Arg {
                Arg::Value(Value::from(v))
            }
        }
    )*};
}
arg_from_value!(
    i8, i16, i32, i64, u8, u16, u32, u64, isize, usize, f32, f64, bool, &str, String
);

/// Resource limits. `None` means "no limit" in an engine's configuration and
/// "keep the engine's" in a task. A task can only lower the engine's limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// Linear memory (and table) size of the instance, in bytes.
    pub memory_bytes: Option<u64>,
    /// Wall-clock time of one task, in milliseconds.
    pub wall_time_ms: Option<u64>,
    /// Fuel (roughly, wasm instructions); needs an engine that meters fuel.
    pub fuel: Option<u64>,
    /// Bytes of captured stdout.
    pub stdout_bytes: Option<u64>,
    /// Bytes of captured stderr.
    pub stderr_bytes: Option<u64>,
}

impl Limits {
    /// These limits lowered by `task`'s: for each limit, the smaller of the two.
    pub fn lowered_by(&self, task: &Limits) -> Limits {
        fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        Limits {
            memory_bytes: min(self.memory_bytes, task.memory_bytes),
            wall_time_ms: min(self.wall_time_ms, task.wall_time_ms),
            fuel: min(self.fuel, task.fuel),
            stdout_bytes: min(self.stdout_bytes, task.stdout_bytes),
            stderr_bytes: min(self.stderr_bytes, task.stderr_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_lower_limits_and_never_raise_them() {
        let engine = Limits {
            memory_bytes: Some(1 << 20),
            wall_time_ms: None,
            ..Limits::default()
        };
        let task = Limits {
            memory_bytes: Some(1 << 30),
            wall_time_ms: Some(10),
            ..Limits::default()
        };
        let eff = engine.lowered_by(&task);
        assert_eq!(eff.memory_bytes, Some(1 << 20));
        assert_eq!(eff.wall_time_ms, Some(10));
        assert_eq!(eff.fuel, None);
    }

    #[test]
    fn tasks_round_trip_through_cbor() {
        let task = Task::call(ModuleHash::of(b"m"), "f", vec![Value::from(1)]);
        let back: Task = crate::decode(&crate::encode(&task).unwrap()).unwrap();
        assert_eq!(back, task);
    }
}
