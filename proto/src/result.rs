//! Results: what an engine sends back for a task.
//!
//! A result always carries what happened (a value or a [`TaskError`]), the
//! captured stdout and stderr, when the task started and completed, and a
//! [`Fingerprint`] that identifies the work done. Errors are values: every way a
//! task can fail has a variant with the facts a person needs to fix it, so the
//! engine never panics on a bad module or bad input, it reports.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ArgsHash, ConfigHash, ModuleHash, MsgId, OutputHash, Timestamp, Value};

/// The result of one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub msg_id: MsgId,
    /// For a chunk ([`Call::Map`](crate::Call)): `Ok(null)` when every item
    /// succeeded, else the first failing item's error.
    pub outcome: Outcome,
    /// For a chunk: one outcome per item, in order. Empty otherwise.
    #[serde(default)]
    pub items: Vec<Outcome>,
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    pub started: Timestamp,
    pub completed: Timestamp,
    pub fingerprint: Fingerprint,
}

impl TaskResult {
    /// A result for work that ended before running (aborted in a queue, failed
    /// by the scheduler, or a namespace operation), with no output.
    pub fn immediate(msg_id: MsgId, outcome: Outcome) -> TaskResult {
        let now = Timestamp::now();
        TaskResult {
            msg_id,
            outcome,
            items: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            started: now,
            completed: now,
            fingerprint: Fingerprint::default(),
        }
    }

    pub fn status(&self) -> Status {
        match &self.outcome {
            Outcome::Ok(_) => Status::Ok,
            Outcome::Err(e) => e.status(),
        }
    }

    /// The value, or the error.
    pub fn value(&self) -> Result<&Value, &TaskError> {
        match &self.outcome {
            Outcome::Ok(v) => Ok(v),
            Outcome::Err(e) => Err(e),
        }
    }
}

/// What a task produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Ok(Value),
    Err(TaskError),
}

impl From<Result<Value, TaskError>> for Outcome {
    fn from(r: Result<Value, TaskError>) -> Outcome {
        match r {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Err(e),
        }
    }
}

/// How a task ended, as ipyparallel's metadata reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
    Aborted,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Aborted => "aborted",
        })
    }
}

/// What identifies the work a result comes from: the same module, arguments
/// and configuration mean the same work; with the same output hash and fuel,
/// the same run. A deterministic task gives the same fingerprint on every
/// engine, every run, every machine; two fingerprints that differ tell two
/// runs apart (a flaky test, a different input or configuration).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub module: ModuleHash,
    /// Hash of the CBOR-encoded arguments after references were resolved
    /// (for commands: of argv, env, stdin and directory grants).
    pub args: ArgsHash,
    /// Hash of what in the engine's configuration can change the result:
    /// the wasmtime version and settings, the task's effective limits, and
    /// the deterministic flag with its seed.
    pub config: ConfigHash,
    /// Fuel consumed, when the engine metered it (always in deterministic mode).
    pub fuel_used: Option<u64>,
    /// Hash of the captured stdout and stderr.
    #[serde(default)]
    pub output: OutputHash,
    /// The seed of `random_get`, for a deterministic task.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Fingerprint {
    /// One sha256 over every field: equal for equal fingerprints.
    pub fn digest(&self) -> String {
        let mut bytes = Vec::with_capacity(4 * 32 + 18);
        bytes.extend_from_slice(&self.module.0);
        bytes.extend_from_slice(&self.args.0);
        bytes.extend_from_slice(&self.config.0);
        bytes.extend_from_slice(&self.output.0);
        for n in [self.fuel_used, self.seed] {
            match n {
                Some(n) => {
                    bytes.push(1);
                    bytes.extend_from_slice(&n.to_le_bytes());
                }
                None => bytes.push(0),
            }
        }
        ArgsHash::of(&bytes).to_hex()
    }
}

/// Every way a task can fail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum TaskError {
    #[error("module {} is not loaded on this engine", .0.short())]
    ModuleNotFound(ModuleHash),
    #[error("invalid module: {reason}")]
    ModuleInvalid { reason: String },
    #[error("{}", missing_export(name, exports))]
    ExportMissing { name: String, exports: Vec<String> },
    #[error("bad arguments for `{function}`: {message}")]
    BadArguments { function: String, message: String },
    #[error("{}", with_backtrace(&format!("trap ({kind}): {message}"), backtrace))]
    Trap {
        kind: TrapKind,
        message: String,
        backtrace: Vec<Frame>,
    },
    /// The guest panicked (Rust SDK) or aborted with a message.
    #[error("{}", with_backtrace(&format!("guest panicked: {message}"), backtrace))]
    Panic {
        message: String,
        backtrace: Vec<Frame>,
    },
    /// The guest returned an error through the CBOR ABI's error envelope.
    #[error("guest error: {}", guest_error_message(.0))]
    Guest(Value),
    /// The guest's CBOR-ABI function returned something that is not an envelope.
    #[error("the guest returned a malformed result: {0}")]
    BadResult(String),
    #[error("{limit} limit of {} exceeded", limit.show(*value))]
    Limit { limit: LimitKind, value: u64 },
    #[error("aborted")]
    Aborted,
    /// The engine running (or holding) the task died or left the cluster.
    #[error("engine {0} died before the task finished")]
    EngineDied(crate::EngineId),
    /// The client lost its connection to the cluster while waiting.
    #[error("lost the connection to the cluster: {0}")]
    Disconnected(String),
    /// The scheduler could not place the task (no engine, none eligible,
    /// timeout, impossible dependency).
    #[error("cannot schedule: {0}")]
    Unschedulable(String),
    /// A dependency (`after` or `follow`) can never be met: a task it needs
    /// failed (or succeeded) the wrong way, its tasks ran on different
    /// engines, the engine to follow died, or it names a task the
    /// controller does not know (ipyparallel's `ImpossibleDependency`).
    #[error("impossible dependency: {0}")]
    ImpossibleDependency(String),
    /// The dependencies were not met within the task's timeout
    /// (ipyparallel's `DependencyTimeout`).
    #[error("dependency timeout: {0}")]
    DependencyTimeout(String),
    /// The task or its result was lost on the way, and whoever noticed gave
    /// up on it rather than let anyone wait forever: the client (a task the
    /// controller never saw however often it was published again, or a
    /// controller that stopped answering), or the controller (a task an
    /// idle engine no longer has after messages were dropped).
    #[error("lost: {0}")]
    Lost(String),
    #[error("internal engine error: {0}")]
    Internal(String),
}

impl TaskError {
    /// The error on one line, for logs and command lines: a wasm backtrace
    /// becomes `(wasm backtrace: inner <- outer)`.
    pub fn summary(&self) -> String {
        let (head, backtrace) = match self {
            TaskError::Trap {
                kind,
                message,
                backtrace,
            } => (format!("trap ({kind}): {message}"), backtrace),
            TaskError::Panic { message, backtrace } => {
                (format!("guest panicked: {message}"), backtrace)
            }
            other => return one_line(&other.to_string()),
        };
        let head = one_line(&head);
        if backtrace.is_empty() {
            return head;
        }
        let frames: Vec<String> = backtrace.iter().map(ToString::to_string).collect();
        format!("{head} (wasm backtrace: {})", frames.join(" <- "))
    }

    /// How a task that failed this way ended: `aborted` for an abort,
    /// `error` for anything else.
    pub fn status(&self) -> Status {
        match self {
            TaskError::Aborted => Status::Aborted,
            _ => Status::Error,
        }
    }

    /// A short name of the kind of failure: `trap`, `limit`, `bad_arguments`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            TaskError::ModuleNotFound(_) => "module_not_found",
            TaskError::ModuleInvalid { .. } => "module_invalid",
            TaskError::ExportMissing { .. } => "export_missing",
            TaskError::BadArguments { .. } => "bad_arguments",
            TaskError::Trap { .. } => "trap",
            TaskError::Panic { .. } => "panic",
            TaskError::Guest(_) => "guest_error",
            TaskError::BadResult(_) => "bad_result",
            TaskError::Limit { .. } => "limit",
            TaskError::Aborted => "aborted",
            TaskError::EngineDied(_) => "engine_died",
            TaskError::Unschedulable(_) => "unschedulable",
            TaskError::ImpossibleDependency(_) => "impossible_dependency",
            TaskError::DependencyTimeout(_) => "dependency_timeout",
            TaskError::Disconnected(_) => "disconnected",
            TaskError::Lost(_) => "lost",
            TaskError::Internal(_) => "internal",
        }
    }
}

/// `text` with its lines trimmed and joined by spaces.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn missing_export(name: &str, exports: &[String]) -> String {
    if exports.is_empty() {
        format!("no export `{name}`: the module exports no callable function")
    } else {
        format!(
            "no export `{name}`; the module exports: {}",
            exports.join(", ")
        )
    }
}

fn with_backtrace(head: &str, backtrace: &[Frame]) -> String {
    let mut out = head.to_string();
    if !backtrace.is_empty() {
        out.push_str("\nwasm backtrace:");
        for (i, frame) in backtrace.iter().enumerate() {
            out.push_str(&format!("\n  {i:>2}: {frame}"));
        }
    }
    out
}

/// A guest error's message: the string itself, a map's `message` entry, or JSON.
fn guest_error_message(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => match other.get("message") {
            Some(Value::Str(s)) => s.clone(),
            _ => other.to_string(),
        },
    }
}

/// Which limit a task hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    Memory,
    WallTime,
    Fuel,
    Stdout,
    Stderr,
}

impl LimitKind {
    /// A limit's value with its unit.
    pub fn show(self, value: u64) -> String {
        match self {
            LimitKind::WallTime => format!("{value} ms"),
            LimitKind::Fuel => format!("{value} units"),
            _ => format!("{value} bytes"),
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Memory => "memory",
            LimitKind::WallTime => "wall time",
            LimitKind::Fuel => "fuel",
            LimitKind::Stdout => "stdout",
            LimitKind::Stderr => "stderr",
        })
    }
}

/// The kind of a wasm trap (mirrors wasmtime's trap codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrapKind {
    StackOverflow,
    MemoryOutOfBounds,
    HeapMisaligned,
    TableOutOfBounds,
    IndirectCallToNull,
    BadSignature,
    IntegerOverflow,
    IntegerDivisionByZero,
    BadConversionToInteger,
    Unreachable,
    NullReference,
    Other,
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrapKind::StackOverflow => "stack overflow",
            TrapKind::MemoryOutOfBounds => "memory out of bounds",
            TrapKind::HeapMisaligned => "misaligned memory access",
            TrapKind::TableOutOfBounds => "table out of bounds",
            TrapKind::IndirectCallToNull => "indirect call to null",
            TrapKind::BadSignature => "bad signature",
            TrapKind::IntegerOverflow => "integer overflow",
            TrapKind::IntegerDivisionByZero => "integer division by zero",
            TrapKind::BadConversionToInteger => "bad conversion to integer",
            TrapKind::Unreachable => "unreachable",
            TrapKind::NullReference => "null reference",
            TrapKind::Other => "other",
        })
    }
}

/// One frame of a wasm backtrace, innermost first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub func_index: u32,
    /// The function's name from the module's name section, demangled.
    pub func_name: Option<String>,
    /// Offset of the instruction within the module binary.
    pub offset: Option<u64>,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.func_name {
            Some(name) => write!(f, "{name}")?,
            None => write!(f, "<function {}>", self.func_index)?,
        }
        if let Some(offset) = self.offset {
            write!(f, " @ 0x{offset:x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_their_cause() {
        let e = TaskError::ExportMissing {
            name: "sqr".into(),
            exports: vec!["square".into(), "add".into()],
        };
        assert_eq!(
            e.to_string(),
            "no export `sqr`; the module exports: square, add"
        );
        let e = TaskError::Limit {
            limit: LimitKind::Memory,
            value: 65536,
        };
        assert_eq!(e.to_string(), "memory limit of 65536 bytes exceeded");
        let e = TaskError::Guest(Value::Map(vec![(
            Value::from("message"),
            Value::from("negative input"),
        )]));
        assert_eq!(e.to_string(), "guest error: negative input");
    }

    #[test]
    fn trap_display_carries_the_backtrace() {
        let e = TaskError::Trap {
            kind: TrapKind::Unreachable,
            message: "wasm trap: unreachable".into(),
            backtrace: vec![Frame {
                func_index: 3,
                func_name: Some("boom".into()),
                offset: Some(0x2a),
            }],
        };
        let text = e.to_string();
        assert!(text.starts_with("trap (unreachable): wasm trap: unreachable"));
        assert!(text.contains("0: boom @ 0x2a"), "{text}");
        assert_eq!(
            e.summary(),
            "trap (unreachable): wasm trap: unreachable (wasm backtrace: boom @ 0x2a)"
        );
    }
}
