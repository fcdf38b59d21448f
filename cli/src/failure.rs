//! How failures reach a person: one line on stderr each, and an exit code.
//!
//! `0` when everything succeeded, `1` when some item (or the cluster) failed,
//! `2` for usage errors: bad arguments, an unreadable or invalid module, a
//! function the module does not export, input that is not JSON. A failure
//! that is the module's or the function name's rather than an item's (every
//! item would fail the same way) is reported once, as a usage error. Panics
//! are bugs; even those print one line, never a backtrace.

use std::fmt;
use std::process::ExitCode;

use grid_client::{RemoteError, TaskError};

/// Exit code when some items failed, or the cluster did.
pub const FAILED: u8 = 1;
/// Exit code of usage errors (clap's own use it too).
pub const USAGE: u8 = 2;

/// A mistake in how grid was called, as opposed to a failure while running.
#[derive(Debug)]
pub struct Usage(String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A usage error with this message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(message.into()))
}

/// Prints `err` as one line and returns the exit code it deserves.
pub fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(&format!("{err:#}")));
    if err.downcast_ref::<Usage>().is_some() {
        ExitCode::from(USAGE)
    } else {
        ExitCode::from(FAILED)
    }
}

/// Whether the failure is the module's or the function name's, so that every
/// item fails the same way: worth one report, not one per item.
pub fn is_fatal(e: &RemoteError) -> bool {
    matches!(
        e.error,
        TaskError::ModuleInvalid { .. } | TaskError::ExportMissing { .. }
    )
}

/// A fatal failure (see [`is_fatal`]) of the module at `module`, as a usage error.
pub fn fatal(module: &str, e: &RemoteError) -> anyhow::Error {
    usage(format!("{module}: {}", e.error.summary()))
}

/// `text` with its lines trimmed and joined by spaces.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes a panic print `error: internal error: ...` on one line (the exit
/// code stays 101): a bug report, not a backtrace.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error: {}{at}", one_line(&message));
    }));
}

#[cfg(test)]
mod tests {
    use grid_client::{EngineId, MsgId};
    use grid_proto::{Frame, LimitKind, TrapKind};

    use super::*;

    fn remote(error: TaskError) -> RemoteError {
        RemoteError {
            msg_id: MsgId::new(),
            engine_id: Some(EngineId(1)),
            function: "boom".into(),
            item: Some(3),
            error,
        }
    }

    #[test]
    fn a_trap_is_one_line_with_its_backtrace() {
        let e = remote(TaskError::Trap {
            kind: TrapKind::Unreachable,
            message: "wasm trap: unreachable".into(),
            backtrace: vec![
                Frame {
                    func_index: 1,
                    func_name: Some("boom".into()),
                    offset: Some(0x2a),
                },
                Frame {
                    func_index: 0,
                    func_name: None,
                    offset: None,
                },
            ],
        });
        assert_eq!(
            e.summary(),
            "item 3: [engine 1] boom: trap (unreachable): wasm trap: unreachable \
             (wasm backtrace: boom @ 0x2a <- <function 0>)"
        );
    }

    #[test]
    fn other_failures_use_their_own_words() {
        let e = remote(TaskError::Limit {
            limit: LimitKind::WallTime,
            value: 50,
        });
        assert_eq!(
            e.summary(),
            "item 3: [engine 1] boom: wall time limit of 50 ms exceeded"
        );
        let e = RemoteError {
            item: None,
            engine_id: None,
            ..remote(TaskError::Aborted)
        };
        assert_eq!(e.summary(), "[no engine] boom: aborted");
    }

    #[test]
    fn only_module_and_export_failures_are_fatal() {
        assert!(is_fatal(&remote(TaskError::ExportMissing {
            name: "f".into(),
            exports: vec![],
        })));
        assert!(is_fatal(&remote(TaskError::ModuleInvalid {
            reason: "bad".into()
        })));
        assert!(!is_fatal(&remote(TaskError::BadArguments {
            function: "f".into(),
            message: "m".into(),
        })));
    }

    #[test]
    fn usage_errors_exit_2_even_with_context() {
        let e = usage("bad").context("while reading");
        assert!(e.downcast_ref::<Usage>().is_some());
        assert_eq!(one_line("a\n   b\n\n c "), "a b c");
    }
}
