//! Panic reporting: a Rust panic in a guest becomes a task failure of kind
//! `panic` carrying "MESSAGE at FILE:LINE:COL" (ABI.md section 4, `grid.panic`).
//!
//! Without this, a panic on `wasm32-wasip1` prints to stderr and traps with
//! `unreachable`, and the caller sees a bare trap. The hook is installed lazily,
//! once, by the export glue before the first call. On other targets installing it
//! does nothing, so native tests keep Rust's usual panic output and unwinding.

use std::fmt::Write;
use std::panic::Location;

/// Installs the panic hook that reports panics to the engine through
/// `grid.panic`. Idempotent and cheap after the first call.
///
/// Functions written with [`export`](crate::export) call this for you; call it
/// yourself at the start of a hand-written export (a numeric-ABI function, say)
/// that should report its panics the same way. On non-wasm targets it does nothing.
pub fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| std::panic::set_hook(Box::new(report)));
    }
}

#[cfg(target_arch = "wasm32")]
fn report(info: &std::panic::PanicHookInfo<'_>) {
    let message = describe(info.payload_as_str(), info.location());
    // SAFETY: the pointer and length describe `message`, alive for the call; the
    // import reads them and ends the task.
    unsafe { crate::imports::panic(message.as_ptr(), message.len()) }
}

/// "MESSAGE at FILE:LINE:COL", or just the message without a location.
/// A payload that is not a string (`panic_any(42)`) has no message to show.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn describe(payload: Option<&str>, location: Option<&Location<'_>>) -> String {
    let mut out = payload.unwrap_or("Box<dyn Any>").to_owned();
    if let Some(location) = location {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            " at {}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_message_and_location() {
        let here = Location::caller();
        assert_eq!(
            describe(Some("boom"), Some(here)),
            format!("boom at {}:{}:{}", here.file(), here.line(), here.column())
        );
        assert_eq!(describe(None, None), "Box<dyn Any>");
    }
}
