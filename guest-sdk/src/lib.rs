//! Write Grid guest functions in Rust.
//!
//! A Grid guest is a WebAssembly module whose functions the engine calls with
//! task values (see `ABI.md` next to this crate for the contract). This crate is
//! the Rust side of that contract: put [`#[export]`](export) on an ordinary
//! function with serde parameter and result types, build the crate as a `cdylib`
//! for `wasm32-wasip1`, and the function is callable from Grid as `NAME`. The
//! crate also provides the exports the engine needs (`grid_alloc`, `grid_free`,
//! and `grid_typed_arrays`, which asks for arrays of numbers as RFC 8746 typed
//! arrays), reports panics as task failures with their message and location,
//! gives access to the engine's namespace ([`ns`]) and moves arrays of numbers in
//! and out with one memcpy ([`typed`]).
//!
//! It does no I/O of its own and holds no state between calls beyond the panic
//! hook: every task runs in a fresh instance anyway.
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! /// Called from Grid as `add(2, 3)`.
//! #[grid_guest::export]
//! pub fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! /// `Err` becomes a `guest_error` task failure carrying the string.
//! #[grid_guest::export]
//! pub fn checked_div(a: i64, b: i64) -> Result<i64, String> {
//!     a.checked_div(b).ok_or_else(|| format!("cannot divide {a} by {b}"))
//! }
//!
//! /// Any serde type works, including `grid_guest::Value` for "anything".
//! #[grid_guest::export]
//! pub fn tally(words: Vec<String>) -> BTreeMap<String, u64> {
//!     let mut counts = BTreeMap::new();
//!     for word in words {
//!         *counts.entry(word).or_default() += 1;
//!     }
//!     counts
//! }
//!
//! // The functions stay ordinary Rust functions, so they test natively.
//! assert_eq!(add(2, 3), 5);
//! assert!(checked_div(1, 0).is_err());
//! ```
//!
//! The guest crate's `Cargo.toml` needs `crate-type = ["cdylib"]` under `[lib]`;
//! build with `cargo build --release --target wasm32-wasip1`.
//!
//! On targets other than wasm the exports are not generated, the namespace is a
//! thread-local map and panics behave as usual, so `cargo test` of a guest crate
//! runs on the host.

// Lets the macro's `::grid_guest::...` paths resolve in this crate's own tests.
extern crate self as grid_guest;

pub mod cbor;
mod envelope;
mod error;
mod export;
#[cfg(target_arch = "wasm32")]
mod imports;
// Only the wasm exports use it; native builds compile it for its tests.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod memory;
pub mod ns;
mod panic;
pub mod typed;
mod value;

pub use envelope::Envelope;
pub use error::Error;
pub use panic::install_panic_hook;
pub use value::Value;

/// Makes a Rust function callable from Grid through the CBOR ABI.
///
/// ```
/// #[grid_guest::export]
/// fn scale(x: f64, factor: f64) -> f64 {
///     x * factor
/// }
/// ```
///
/// The function keeps working as written. On wasm the attribute adds an export
/// `grid:scale` (ABI.md section 2) that:
///
/// - decodes the argument array into the parameters, answering
///   `{"bad_arguments": ...}` when the count is wrong (`expected 2 arguments,
///   got 3`) or an argument does not fit its type (`argument 1 (x): invalid
///   type: string "a", expected f64`); a float parameter accepts an integer;
/// - calls the function and answers `{"ok": result}`; no return type, or `()`,
///   answers `{"ok": null}`;
/// - when the return type is written `Result<T, E>` (any path ending in
///   `Result` with two type arguments), answers `{"err": e}` for `Err(e)`. A
///   type alias for `Result` is not recognized and the `Result` is returned as a
///   value.
///
/// Arrays of numbers take a fast path, chosen by how the type is written: a
/// parameter written `Vec<N>`, `&[N]`, `&mut [N]` or `Box<[N]>`, with `N` one of
/// `u8 i8 u16 i16 u32 i32 u64 i64 f32 f64`, takes a typed array of `N`s
/// (ABI.md section 2) with one memcpy, and still accepts a plain array of
/// numbers (and, for `u8`, a byte string), converted as serde would with
/// serde's messages; a result written `Vec<N>` or `Box<[N]>`, also as the `T`
/// of `Result<T, E>`, is answered as a typed array, with one memcpy. (A guest's
/// typed-array results need an engine that knows typed arrays.) An alias or a
/// wrapper of these types goes through serde, element by element.
///
/// ```
/// #[grid_guest::export]
/// fn norm(xs: &[f64]) -> f64 {
///     xs.iter().map(|x| x * x).sum::<f64>().sqrt()
/// }
///
/// #[grid_guest::export]
/// fn doubled(mut xs: Vec<i64>) -> Vec<i64> {
///     xs.iter_mut().for_each(|x| *x *= 2);
///     xs
/// }
/// # let args = grid_guest::cbor::to_vec(&([3.0, 4.0],)).unwrap();
/// # let envelope = grid_guest::Envelope::decode(&__grid_export_norm(&args)).unwrap();
/// # assert_eq!(envelope, grid_guest::Envelope::Ok(5.0.into()));
/// ```
///
/// Other parameters must be owned types implementing `serde::de::DeserializeOwned`
/// (`String`, not `&str`), the result must implement `serde::Serialize`. The
/// function must be a free function (not a method), and neither generic, `async`
/// nor `unsafe`. `#[grid_guest::export(name = "other")]` exports it as
/// `grid:other` instead.
///
/// For native tests of the CBOR layer, the attribute also adds a hidden function
/// `__grid_export_NAME(arguments: &[u8]) -> Vec<u8>` (NAME being the Rust name)
/// that takes the CBOR argument array and returns the envelope bytes; read them
/// with [`Envelope::decode`].
pub use grid_guest_macros::export;

/// Converts a [`Value`] into any type that can be deserialized, with serde's
/// messages on mismatch. A float target accepts an integer.
///
/// # Errors
/// When the value does not fit `T`, e.g. `invalid type: string "x", expected i64`.
pub fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    T::deserialize(value)
}

/// Converts any serializable value into a [`Value`] (by encoding it as CBOR and
/// decoding that, so the result is exactly what the engine would see).
///
/// # Errors
/// When the value's `Serialize` impl fails or it is outside what CBOR can carry.
pub fn to_value<T: serde::Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
    cbor::decode_value(&cbor::to_vec(value)?)
}

#[doc(hidden)]
pub mod __private {
    //! Used by the code `#[export]` generates; not a public API.
    #[cfg(target_arch = "wasm32")]
    pub use crate::export::entry;
    pub use crate::export::{Arguments, err, ok, ok_array};
}

#[cfg(test)]
mod tests;
