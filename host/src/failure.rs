//! Turning a failed guest call into a [`TaskError`] that says why.
//!
//! The facts come first from what the host recorded while the guest ran
//! (a `grid.panic` message, the memory limiter, the output captures, an
//! abort or deadline from the epoch callback), then from wasmtime's trap
//! code, and only last from the error's text. The wasm backtrace, with
//! demangled function names when the module has a name section, goes with
//! traps and panics.

use grid_proto::{Frame, LimitKind, Limits, TaskError, TrapKind, Value};
use wasmtime::{Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

use crate::interrupt::Interrupted;
use crate::output::Capture;
use crate::store::TaskState;

/// What a failed call means, given what the host saw.
pub(crate) enum Failure {
    /// `proc_exit(code)`: a normal end for a command.
    Exit(i32),
    Error(TaskError),
}

pub(crate) struct Seen<'a> {
    pub state: &'a TaskState,
    pub interrupted: Option<Interrupted>,
    pub stdout: &'a Capture,
    pub stderr: &'a Capture,
    pub limits: &'a Limits,
}

pub(crate) fn classify(err: wasmtime::Error, seen: Seen<'_>) -> Failure {
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return Failure::Exit(exit.0);
    }
    let limit = |limit: LimitKind, value: Option<u64>| {
        Failure::Error(TaskError::Limit {
            limit,
            value: value.unwrap_or(0),
        })
    };
    if let Some(message) = &seen.state.panic {
        return Failure::Error(TaskError::Panic {
            message: message.clone(),
            backtrace: backtrace(&err),
        });
    }
    if let Some((kind, value)) = seen.state.limiter.hit {
        return limit(kind, Some(value));
    }
    if seen.stdout.exceeded() {
        return limit(LimitKind::Stdout, seen.limits.stdout_bytes);
    }
    if seen.stderr.exceeded() {
        return limit(LimitKind::Stderr, seen.limits.stderr_bytes);
    }
    match seen
        .interrupted
        .or_else(|| err.downcast_ref::<Interrupted>().copied())
    {
        Some(Interrupted::Aborted) => return Failure::Error(TaskError::Aborted),
        Some(Interrupted::WallTime) => return limit(LimitKind::WallTime, seen.limits.wall_time_ms),
        None => {}
    }
    let trap = err.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::OutOfFuel) {
        return limit(LimitKind::Fuel, seen.limits.fuel);
    }
    let kind = trap.map_or(TrapKind::Other, trap_kind);
    let message = match trap {
        Some(t) => t.to_string(),
        None => root_message(&err),
    };
    Failure::Error(TaskError::Trap {
        kind,
        message,
        backtrace: backtrace(&err),
    })
}

/// A command's value: its exit code.
pub(crate) fn exit_value(code: i32) -> Value {
    Value::from(code)
}

fn trap_kind(t: Trap) -> TrapKind {
    match t {
        Trap::StackOverflow => TrapKind::StackOverflow,
        Trap::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
        Trap::HeapMisaligned => TrapKind::HeapMisaligned,
        Trap::TableOutOfBounds => TrapKind::TableOutOfBounds,
        Trap::IndirectCallToNull => TrapKind::IndirectCallToNull,
        Trap::BadSignature => TrapKind::BadSignature,
        Trap::IntegerOverflow => TrapKind::IntegerOverflow,
        Trap::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        Trap::BadConversionToInteger => TrapKind::BadConversionToInteger,
        Trap::UnreachableCodeReached => TrapKind::Unreachable,
        Trap::NullReference => TrapKind::NullReference,
        _ => TrapKind::Other,
    }
}

/// The error's own message, without the backtrace wasmtime attaches as context.
fn root_message(err: &wasmtime::Error) -> String {
    err.root_cause().to_string()
}

fn backtrace(err: &wasmtime::Error) -> Vec<Frame> {
    let Some(bt) = err.downcast_ref::<WasmBacktrace>() else {
        return Vec::new();
    };
    bt.frames()
        .iter()
        .map(|f| Frame {
            func_index: f.func_index(),
            func_name: f
                .func_name()
                .map(|n| rustc_demangle::demangle(n).to_string()),
            offset: f.module_offset().map(|o| o as u64),
        })
        .collect()
}
