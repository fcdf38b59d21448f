//! `grid-examples`: where the example guests are, for tests and benchmarks.
//!
//! `build.rs` builds the Rust and C guests and the awkward test suite's
//! libtest binary; the functions here return the path of each module, or
//! [`Unavailable`] with the reason it could not be built (typically a
//! missing `wasm32-wasip1` target or clang). Tests call
//! [`require`] (or [`require_path`]), which skips a test with a note when a guest is missing, or
//! fails it when `GRID_REQUIRE_GUESTS=1` (as `.ci/run` sets), so CI never
//! skips silently.

use std::path::{Path, PathBuf};

/// A guest that could not be built, and why.
#[derive(Debug, Clone)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn built(encoded: &str) -> Result<PathBuf, Unavailable> {
    match encoded.split_once(':') {
        Some(("ok", path)) => Ok(PathBuf::from(path)),
        Some((_, why)) => Err(Unavailable(why.to_string())),
        None => Err(Unavailable(encoded.to_string())),
    }
}

/// The repository's root directory.
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `examples/guests/wat/square.wat`: numeric `square(i64)` and `hypot(f64, f64)`.
pub fn wat_square() -> PathBuf {
    repo_root().join("examples/guests/wat/square.wat")
}

/// The Rust example guest (`examples/guests/rust`, functions through the SDK).
pub fn rust_guest() -> Result<PathBuf, Unavailable> {
    built(env!("GRID_EXAMPLE_RUST_GUEST"))
}

/// The Rust example WASI command (`examples/guests/rust/src/bin/cmd.rs`).
pub fn rust_command() -> Result<PathBuf, Unavailable> {
    built(env!("GRID_EXAMPLE_RUST_COMMAND"))
}

/// The awkward test suite's libtest binary for wasm32-wasip1
/// (`examples/guests/testsuite`, built with `cargo test --no-run`): one test
/// of each kind a test runner must cope with, by stable names.
pub fn testsuite() -> Result<PathBuf, Unavailable> {
    built(env!("GRID_EXAMPLE_TESTSUITE"))
}

/// The test suite's source directory: its tests read
/// `tests/fixtures/hello.txt` relative to the current directory and under
/// `CARGO_MANIFEST_DIR`, so a runner maps this directory for them.
pub fn testsuite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/testsuite")
}

/// The C example guest (`examples/guests/c`, built with `grid.h`).
pub fn c_guest() -> Result<PathBuf, Unavailable> {
    built(env!("GRID_EXAMPLE_C_GUEST"))
}

/// The path of a guest, or `None` (after printing why) when it is
/// unavailable and `GRID_REQUIRE_GUESTS` is not set. Panics when it is
/// required but missing.
pub fn require_path(guest: Result<PathBuf, Unavailable>) -> Option<PathBuf> {
    match guest {
        Ok(path) => Some(path),
        Err(why) if std::env::var_os("GRID_REQUIRE_GUESTS").is_some() => {
            panic!("example guest required (GRID_REQUIRE_GUESTS is set) but not built: {why}")
        }
        Err(why) => {
            eprintln!("skipping: example guest not built: {why}");
            None
        }
    }
}

/// The bytes of a guest, or `None` as [`require_path`] says.
pub fn require(guest: Result<PathBuf, Unavailable>) -> Option<Vec<u8>> {
    let path = require_path(guest)?;
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}
