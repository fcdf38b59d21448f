//! Builds the example guests so tests and benchmarks can load them.
//!
//! The Rust guests (`guests/rust`) are built with a nested
//! `cargo build --release --target wasm32-wasip1` into `target/guests`, a
//! target directory of their own (sharing the outer build's would deadlock on
//! its lock), with the outer build's host RUSTFLAGS cleared. The awkward test
//! suite (`guests/testsuite`) is built the same way, as a libtest binary
//! (`cargo test --no-run`), whose path cargo's JSON messages tell. The C guest
//! is built by `guests/c/build.sh` with clang. A guest whose toolchain is
//! missing is not an error here: its path is replaced by the reason, which
//! `grid_examples` reports when a test asks for it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("examples/ is inside the workspace")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guests");
    for watched in [
        "examples/guests/rust/src",
        "examples/guests/rust/Cargo.toml",
        "examples/guests/testsuite/src",
        "examples/guests/testsuite/Cargo.toml",
        "examples/guests/c",
        "guest-sdk/src",
        "guest-sdk/Cargo.toml",
        "guest-sdk/macros/src",
        "guest-sdk/macros/Cargo.toml",
        "guest-sdk/c/grid.h",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let rust = build_rust(&root.join("examples/guests/rust"), &target);
    emit(
        "GRID_EXAMPLE_RUST_GUEST",
        rust.clone().map(|dir| dir.join("grid_example_guest.wasm")),
    );
    emit(
        "GRID_EXAMPLE_RUST_COMMAND",
        rust.map(|dir| dir.join("cmd.wasm")),
    );
    emit(
        "GRID_EXAMPLE_TESTSUITE",
        build_testsuite(
            &root.join("examples/guests/testsuite"),
            &target.join("testsuite"),
        ),
    );
    emit(
        "GRID_EXAMPLE_C_GUEST",
        build_c(&root.join("examples/guests/c"), &target.join("c")),
    );
}

/// Passes a guest's path, or why it is missing, to the library.
fn emit(name: &str, built: Result<PathBuf, String>) {
    match built {
        Ok(path) => println!("cargo:rustc-env={name}=ok:{}", path.display()),
        Err(why) => {
            println!(
                "cargo:warning={name} not built: {}",
                why.lines().next().unwrap_or("")
            );
            println!("cargo:rustc-env={name}=err:{}", why.replace('\n', " "));
        }
    }
}

/// A nested cargo for wasm32-wasip1, free of the outer build's host flags
/// and target settings.
fn nested_cargo(subcommand: &str, manifest: &Path, target: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg(subcommand)
        .args(["--target", "wasm32-wasip1", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    command
}

/// Runs a nested cargo (`what`, for the error); its stdout when it succeeds,
/// else why it failed.
fn run_cargo(mut command: Command, what: &str, dir: &Path) -> Result<String, String> {
    let out = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint =
            if stderr.contains("wasm32-wasip1") && stderr.contains("target may not be installed") {
                " (install it with `rustup target add wasm32-wasip1`)"
            } else {
                ""
            };
        return Err(format!(
            "{what} of {} failed{hint}: {stderr}",
            dir.display()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn build_rust(dir: &Path, target: &Path) -> Result<PathBuf, String> {
    let mut command = nested_cargo("build", &dir.join("Cargo.toml"), target);
    command.arg("--release");
    run_cargo(command, "cargo build", dir)?;
    Ok(target.join("wasm32-wasip1/release"))
}

/// Builds the test suite's libtest binary and returns its path.
fn build_testsuite(dir: &Path, target: &Path) -> Result<PathBuf, String> {
    let mut command = nested_cargo("test", &dir.join("Cargo.toml"), target);
    // Diagnostics rendered to stderr (for the error), artifacts as JSON.
    command.args(["--no-run", "--message-format=json-render-diagnostics"]);
    let messages = run_cargo(command, "cargo test --no-run", dir)?;
    messages
        .lines()
        .find_map(test_executable)
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
                "cargo test --no-run of {} named no test binary",
                dir.display()
            )
        })
}

/// The executable of a cargo JSON message that reports a built test binary:
/// `"reason":"compiler-artifact"` with `"profile":{..."test":true...}`.
/// Build scripts have no JSON parser at hand; cargo's messages are one compact
/// object a line, so looking at the fields' text is enough.
fn test_executable(message: &str) -> Option<String> {
    if !message.contains(r#""reason":"compiler-artifact""#) {
        return None;
    }
    let profile = &message[message.find(r#""profile":{"#)?..];
    let profile = &profile[..profile.find('}')?];
    if !profile.contains(r#""test":true"#) {
        return None;
    }
    let executable = &message[message.find(r#""executable":""#)? + r#""executable":""#.len()..];
    let mut path = String::new();
    let mut chars = executable.chars();
    loop {
        match chars.next()? {
            '"' => return Some(path),
            '\\' => path.push(chars.next()?),
            c => path.push(c),
        }
    }
}

fn build_c(dir: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let wasm = out_dir.join("c_guest.wasm");
    let out = Command::new("sh")
        .arg(dir.join("build.sh"))
        .arg(&wasm)
        .output()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed (needs Debian's clang, lld, wasi-libc, libclang-rt-14-dev-wasm32): {}",
            dir.join("build.sh").display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(wasm)
}
