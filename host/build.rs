//! Tells the crate which wasmtime it is built with (`GRID_WASMTIME_VERSION`),
//! read from the workspace's Cargo.lock: the version is part of every
//! result's configuration hash, and wasmtime does not export it. Without a
//! lock file (a build outside this workspace) it falls back to the major
//! version the manifest asks for.

use std::path::PathBuf;

fn main() {
    let mut dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let version = loop {
        let lock = dir.join("Cargo.lock");
        if let Ok(text) = std::fs::read_to_string(&lock) {
            println!("cargo:rerun-if-changed={}", lock.display());
            break wasmtime_version(&text);
        }
        if !dir.pop() {
            break None;
        }
    };
    let version = version.unwrap_or_else(|| "48".to_string());
    println!("cargo:rustc-env=GRID_WASMTIME_VERSION={version}");
}

/// The version of the `wasmtime` package in a Cargo.lock.
fn wasmtime_version(lock: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasmtime\"" {
            let next = lines.next()?.trim();
            return Some(
                next.strip_prefix("version = \"")?
                    .trim_end_matches('"')
                    .to_string(),
            );
        }
    }
    None
}
