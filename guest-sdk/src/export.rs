//! Runtime support for the code `#[grid_guest::export]` generates.
//!
//! The macro emits, per function, a decoder that turns the CBOR argument array
//! into typed parameters and an envelope encoder for the result; the logic they
//! share lives here, so the generated code stays a short list of calls and the
//! messages a caller sees are written in one place. Not a public API: only the
//! macro's output may use it, and it may change in any release.

use std::vec;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::typed::{self, Element};
use crate::{Error, Value, cbor, envelope};

/// The decoded argument array, handed out one typed parameter at a time.
pub struct Arguments {
    values: vec::IntoIter<Value>,
}

impl Arguments {
    /// Decodes the argument array and checks it has `expected` elements.
    ///
    /// # Errors
    /// A ready `bad_arguments` envelope.
    pub fn decode(bytes: &[u8], expected: usize) -> Result<Arguments, Vec<u8>> {
        let values = match cbor::decode_value(bytes) {
            Ok(Value::Array(values)) => values,
            Ok(other) => {
                return Err(envelope::bad_arguments(&format!(
                    "arguments must be an array, got {}",
                    kind(&other)
                )));
            }
            Err(e) => {
                return Err(envelope::bad_arguments(&format!(
                    "arguments are not valid CBOR: {e}"
                )));
            }
        };
        if values.len() != expected {
            let plural = if expected == 1 { "" } else { "s" };
            return Err(envelope::bad_arguments(&format!(
                "expected {expected} argument{plural}, got {}",
                values.len()
            )));
        }
        Ok(Arguments {
            values: values.into_iter(),
        })
    }

    /// The next argument as a `Vec<N>`: a typed array of `N`s without a copy,
    /// anything else as [`typed::from_value`] converts it.
    ///
    /// # Errors
    /// A ready `bad_arguments` envelope, as [`Arguments::next`].
    pub fn next_array<N: Element>(
        &mut self,
        position: usize,
        name: &str,
    ) -> Result<Vec<N>, Vec<u8>> {
        let value = self.take(position)?;
        typed::from_value(value).map_err(|e| bad_argument(position, name, &e))
    }

    /// The next argument as a `T`. `position` counts from 1; `name` is the
    /// parameter's name, or empty when its pattern is not a plain identifier.
    ///
    /// # Errors
    /// A ready `bad_arguments` envelope naming the argument and serde's message.
    pub fn next<T: DeserializeOwned>(&mut self, position: usize, name: &str) -> Result<T, Vec<u8>> {
        let value = self.take(position)?;
        crate::from_value(value).map_err(|e| bad_argument(position, name, &e))
    }

    fn take(&mut self, position: usize) -> Result<Value, Vec<u8>> {
        // `decode` checked the count; this is a bug in the macro if reached.
        self.values
            .next()
            .ok_or_else(|| envelope::bad_arguments(&format!("missing argument {position}")))
    }
}

/// `argument 2 (name): message`, or `argument 2: message` without a name.
fn bad_argument(position: usize, name: &str, e: &Error) -> Vec<u8> {
    let message = if name.is_empty() {
        format!("argument {position}: {e}")
    } else {
        format!("argument {position} ({name}): {e}")
    };
    envelope::bad_arguments(&message)
}

/// `{"ok": value}`. A top-level `()` becomes `null`.
///
/// # Panics
/// When the value cannot be encoded: that is a bug in the guest (a `Serialize`
/// impl that fails), and a panic reports it with the function's name.
pub fn ok<T: Serialize + ?Sized>(function: &str, value: &T) -> Vec<u8> {
    match envelope::ok(value) {
        Ok(bytes) => bytes,
        Err(e) => panic!("grid_guest: cannot encode the result of `{function}` as CBOR: {e}"),
    }
}

/// `{"ok": typed array}`, the elements copied in one go.
pub fn ok_array<N: Element>(xs: &[N]) -> Vec<u8> {
    envelope::ok_array(xs)
}

/// `{"err": error}`.
///
/// # Panics
/// As [`ok`], when the error value cannot be encoded.
pub fn err<E: Serialize + ?Sized>(function: &str, error: &E) -> Vec<u8> {
    match envelope::err(error) {
        Ok(bytes) => bytes,
        Err(e) => panic!("grid_guest: cannot encode the error of `{function}` as CBOR: {e}"),
    }
}

/// A word for the kind of a value, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Bytes(_) => "a byte string",
        Value::Text(_) => "a text string",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Typed(_) => "a typed array",
    }
}

/// The body of every `grid:NAME` export: takes ownership of the argument bytes,
/// runs `call` (the generated decoder + function + encoder), flushes stdout, and
/// hands the envelope to the engine as a packed location.
///
/// # Safety
/// `ptr, len` must be a buffer the engine got from `grid_alloc(len)` and filled,
/// as ABI.md section 2 promises; it is freed here.
#[cfg(target_arch = "wasm32")]
pub unsafe fn entry(ptr: *mut u8, len: usize, call: fn(&[u8]) -> Vec<u8>) -> u64 {
    crate::install_panic_hook();
    let envelope = {
        // SAFETY: the caller's contract is exactly `Received::from_raw`'s.
        let arguments = unsafe { crate::memory::Received::from_raw(ptr, len) };
        call(arguments.as_slice())
    };
    // Rust's stdout is line-buffered and a reactor never exits, so a last line
    // without '\n' would be lost (ABI.md section 2). A failed flush (an output
    // limit, say) must not turn a result into a failure, so it is ignored.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let (ptr, len) = crate::memory::into_raw(envelope);
    // On wasm32 pointers and lengths are 32 bits, so these casts are exact.
    crate::memory::pack(ptr as usize as u32, len as u32)
}
