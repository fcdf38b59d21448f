//! Real test suites from crates.io, built for `wasm32-wasip1` and natively,
//! as fixtures for `grid test` and its benchmarks.
//!
//! [`crates_io_suite`] fetches one published crate version, copies its source
//! out of cargo's registry (nothing is ever written there) into
//! `<target>/test-crates/src/`, and builds its libtest binaries (lib
//! unittests and integration tests) for wasm32-wasip1; [`native_outcomes`]
//! runs the same tests natively, the reference a runner's results are held
//! against. Builds are cached (a marker per suite lists its binaries, and
//! a record keeps its native outcomes) and serialized, between threads and
//! between processes, by one lock. This module builds fixtures only: it
//! never runs a wasm binary, and any failure is a [`BuildError`], never a
//! panic.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The crates whose test suites the runner's tests use: small, without
/// dependencies of their own, whose suites build for wasm32-wasip1 unchanged
/// and pass there. Pinned, so test names and counts stay put. Between them
/// they cover what a runner meets in real suites: itoa, 11 tests in an
/// integration test beside a lib binary with none; ryu, 47 tests over 9
/// binaries, one ignored, two taking seconds (rand as a dev-dependency);
/// memchr, 83 quickcheck-heavy unittests in one binary (natively 141: its
/// x86_64 SIMD modules are not compiled for wasm).
pub const SUITES: &[(&str, &str)] = &[("itoa", "1.0.18"), ("ryu", "1.0.23"), ("memchr", "2.7.6")];

/// The target the suites are built for.
const WASM_TARGET: &str = "wasm32-wasip1";

/// One crate version's test suite, built for wasm32-wasip1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    pub name: String,
    pub version: String,
    /// The copied crate source: the tests' current directory and
    /// `CARGO_MANIFEST_DIR`.
    pub src: PathBuf,
    pub binaries: Vec<TestBinary>,
}

/// One libtest binary of a suite.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TestBinary {
    /// Cargo's target name: the crate's (`itoa`) for its unittests, the file
    /// stem (`test`) for an integration test.
    pub target: String,
    /// `"lib"` (unittests) or `"test"` (an integration test).
    pub kind: String,
    /// The binary: a `.wasm` module in a [`Suite`], a native executable in
    /// [`native_outcomes`]' own build.
    pub wasm: PathBuf,
}

/// Test name -> `"ok"` | `"FAILED"` | `"ignored"`, for one binary.
pub type Outcomes = BTreeMap<String, String>;

/// [`Outcomes`] for each binary of a suite, by `(target, kind)`.
pub type SuiteOutcomes = BTreeMap<(String, String), Outcomes>;

/// Why a suite could not be built or run; each names its step.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("not a crate name and version: {name:?} {version:?}")]
    InvalidCrate { name: String, version: String },
    #[error("{step}: {source}")]
    Io {
        step: String,
        #[source]
        source: io::Error,
    },
    #[error("{step} failed ({status}); its stderr ends:\n{stderr_tail}")]
    Command {
        step: String,
        status: String,
        stderr_tail: String,
    },
    #[error("{name}-{version} is not in cargo's registry sources ({registry}) after `cargo fetch`")]
    SourceNotFound {
        name: String,
        version: String,
        registry: PathBuf,
    },
    #[error("{step}: {detail}")]
    Unexpected { step: String, detail: String },
}

/// Fetches and builds the test suite of crates.io's `name` at exactly
/// `version` for wasm32-wasip1, or returns the cached build.
pub fn crates_io_suite(name: &str, version: &str) -> Result<Suite, BuildError> {
    let id = CrateId::new(name, version)?;
    let lock = BuildLock::acquire()?;
    let base = &lock.base;
    let src = base.join("src").join(id.dir_name());
    let marker = base
        .join("built")
        .join(format!("{}.binaries", id.dir_name()));
    let binaries = match read_marker(&marker, &src) {
        Some(binaries) => binaries,
        None => {
            if !src.join("Cargo.toml").is_file() {
                copy_source(&id, base, &src)?;
            }
            let binaries = build_tests(&id, &src, &base.join("target"), Some(WASM_TARGET))?;
            write_marker(&marker, &binaries)?;
            binaries
        }
    };
    Ok(Suite {
        name: id.name,
        version: id.version,
        src,
        binaries,
    })
}

/// Native outcomes of the same suite: for each of its binaries, by
/// `(target, kind)`, test name -> `"ok"` | `"FAILED"` | `"ignored"`.
///
/// Builds the suite natively (cached by cargo) and runs each binary as
/// `cargo test` would, one test at a time, in the crate's directory. A
/// crates.io suite's outcomes are kept beside its marker (a pinned version's
/// tests give the same outcomes every time, and memchr's take half a
/// minute); any other suite, whose source may change, is run every time.
pub fn native_outcomes(suite: &Suite) -> Result<SuiteOutcomes, BuildError> {
    let id = CrateId::new(&suite.name, &suite.version)?;
    let lock = BuildLock::acquire()?;
    let cache = (suite.src == lock.base.join("src").join(id.dir_name())).then(|| {
        lock.base
            .join("built")
            .join(format!("{}.native.json", id.dir_name()))
    });
    if let Some(outcomes) = cache.as_deref().and_then(|c| read_outcomes(c, suite)) {
        return Ok(outcomes);
    }
    let native = build_tests(&id, &suite.src, &lock.base.join("target-native"), None)?;
    let mut outcomes = BTreeMap::new();
    for binary in &suite.binaries {
        let step = format!(
            "native run of {} {} {}",
            id.dir_name(),
            binary.kind,
            binary.target
        );
        let Some(built) = native
            .iter()
            .find(|n| n.target == binary.target && n.kind == binary.kind)
        else {
            return Err(BuildError::Unexpected {
                step,
                detail: "the native build has no such binary".into(),
            });
        };
        let out = Command::new(&built.wasm)
            .arg("--test-threads=1")
            .current_dir(&suite.src)
            .env("CARGO_MANIFEST_DIR", &suite.src)
            .env("CARGO_PKG_NAME", &suite.name)
            .env("CARGO_PKG_VERSION", &suite.version)
            .output()
            .map_err(|source| BuildError::Io {
                step: step.clone(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !stdout.lines().any(|line| line.starts_with("test result: ")) {
            return Err(BuildError::Command {
                step,
                status: out.status.to_string(),
                stderr_tail: tail(&String::from_utf8_lossy(&out.stderr)),
            });
        }
        outcomes.insert(
            (binary.target.clone(), binary.kind.clone()),
            parse_outcomes(&stdout),
        );
    }
    if let Some(cache) = &cache {
        let entries: Vec<_> = outcomes.iter().collect();
        let text = serde_json::to_string(&entries).map_err(|e| BuildError::Unexpected {
            step: format!("record the native outcomes of {}", id.dir_name()),
            detail: e.to_string(),
        })?;
        write_beside(cache, &text)?;
    }
    Ok(outcomes)
}

/// A crate name and exact version, checked to be safe in paths and manifests.
struct CrateId {
    name: String,
    version: String,
}

impl CrateId {
    fn new(name: &str, version: &str) -> Result<CrateId, BuildError> {
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let version_ok = version.starts_with(|c: char| c.is_ascii_digit())
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
        if !name_ok || !version_ok {
            return Err(BuildError::InvalidCrate {
                name: name.into(),
                version: version.into(),
            });
        }
        Ok(CrateId {
            name: name.into(),
            version: version.into(),
        })
    }

    /// `name-version`, as cargo's registry names the source directory.
    fn dir_name(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// `<target>/test-crates`, held exclusively: by this process's threads
/// (a mutex) and by other processes (a lock on `.lock`, released when the
/// file closes). Cargo has locks of its own, but not over the copying and
/// the markers.
struct BuildLock {
    base: PathBuf,
    _file: File,
    _thread: MutexGuard<'static, ()>,
}

impl BuildLock {
    fn acquire() -> Result<BuildLock, BuildError> {
        static IN_PROCESS: Mutex<()> = Mutex::new(());
        // A thread that panicked while holding it left nothing half-done
        // that the marker does not already guard.
        let thread = IN_PROCESS.lock().unwrap_or_else(PoisonError::into_inner);
        let base = target_dir().join("test-crates");
        let io = |step: &str| {
            let step = format!("{step} {}", base.display());
            move |source| BuildError::Io { step, source }
        };
        fs::create_dir_all(&base).map_err(io("create"))?;
        let base = fs::canonicalize(&base).map_err(io("resolve"))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(base.join(".lock"))
            .map_err(io("open the lock file in"))?;
        file.lock().map_err(io("lock"))?;
        Ok(BuildLock {
            base,
            _file: file,
            _thread: thread,
        })
    }
}

/// The workspace's target directory, as `examples/build.rs` finds it:
/// `CARGO_TARGET_DIR` (relative to the workspace root) or `target/`.
fn target_dir() -> PathBuf {
    let root = grid_examples::repo_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// `CARGO_HOME`, or `~/.cargo`.
fn cargo_home() -> Result<PathBuf, BuildError> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(home));
    }
    std::env::home_dir()
        .map(|home| home.join(".cargo"))
        .ok_or_else(|| BuildError::Unexpected {
            step: "find cargo's registry".into(),
            detail: "neither CARGO_HOME nor HOME is set".into(),
        })
}

/// A cargo command free of the outer build's flags and target settings (a
/// test run inherits them from its `cargo test`).
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs `command`; its stdout, or an error with its stderr's tail.
fn run(mut command: Command, step: &str) -> Result<String, BuildError> {
    let out = command.output().map_err(|source| BuildError::Io {
        step: step.into(),
        source,
    })?;
    if !out.status.success() {
        return Err(BuildError::Command {
            step: step.into(),
            status: out.status.to_string(),
            stderr_tail: tail(&String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last lines of a command's stderr, where cargo puts the error.
fn tail(stderr: &str) -> String {
    const LINES: usize = 40;
    let lines: Vec<&str> = stderr.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

/// Downloads the crate with `cargo fetch` (through a scratch package that
/// depends on it) and copies its source from the registry to `src`.
fn copy_source(id: &CrateId, base: &Path, src: &Path) -> Result<(), BuildError> {
    let step = format!("cargo fetch of {}", id.dir_name());
    let io = |what: &str, path: &Path| {
        let step = format!("{step}: {what} {}", path.display());
        move |source| BuildError::Io { step, source }
    };
    let scratch = base.join("fetch").join(id.dir_name());
    fs::create_dir_all(&scratch).map_err(io("create", &scratch))?;
    // Its own workspace: it lies inside Grid's, whose members it is not.
    let manifest = format!(
        "[package]\nname = \"grid-test-crates-fetch\"\nversion = \"0.0.0\"\n\
         edition = \"2021\"\npublish = false\n\n[lib]\npath = \"lib.rs\"\n\n\
         [workspace]\n\n[dependencies]\n{} = \"={}\"\n",
        id.name, id.version
    );
    let scratch_manifest = scratch.join("Cargo.toml");
    fs::write(&scratch_manifest, manifest).map_err(io("write", &scratch_manifest))?;
    fs::write(scratch.join("lib.rs"), "").map_err(io("write", &scratch.join("lib.rs")))?;
    let mut fetch = cargo();
    fetch
        .arg("fetch")
        .arg("--manifest-path")
        .arg(&scratch_manifest);
    run(fetch, &step)?;

    let registry = cargo_home()?.join("registry").join("src");
    let found = fs::read_dir(&registry)
        .map_err(io("read", &registry))?
        .filter_map(Result::ok)
        .map(|index| index.path().join(id.dir_name()))
        .find(|dir| dir.join("Cargo.toml").is_file());
    let Some(found) = found else {
        return Err(BuildError::SourceNotFound {
            name: id.name.clone(),
            version: id.version.clone(),
            registry,
        });
    };
    // Copy beside, then rename: a copy cut short is never taken for a source.
    let partial = src.with_file_name(format!(".{}.partial", id.dir_name()));
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(io("remove", &partial))?;
    }
    copy_dir(&found, &partial).map_err(io("copy the source to", &partial))?;
    // The copy lies inside Grid's workspace too; published manifests have no
    // `[workspace]` of their own (cargo package strips it).
    let manifest = partial.join("Cargo.toml");
    let mut text = fs::read_to_string(&manifest).map_err(io("read", &manifest))?;
    if !text.lines().any(|line| line.trim() == "[workspace]") {
        text.push_str("\n[workspace]\n");
        fs::write(&manifest, text).map_err(io("write", &manifest))?;
    }
    if src.exists() {
        fs::remove_dir_all(src).map_err(io("remove", src))?;
    }
    fs::rename(&partial, src).map_err(io("rename the copy to", src))
}

/// Copies a directory tree of regular files (a crate's source has nothing
/// else that matters; symbolic links are followed).
fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        if fs::metadata(&source)?.is_dir() {
            copy_dir(&source, &dest)?;
        } else {
            fs::copy(&source, &dest)?;
        }
    }
    Ok(())
}

/// Builds the crate's lib and integration test binaries with
/// `cargo test --no-run`, for `target` or the host, and lists them from
/// cargo's JSON messages. Doctests are not built by `--no-run`; benches,
/// examples and binaries are left out.
fn build_tests(
    id: &CrateId,
    src: &Path,
    target_dir: &Path,
    target: Option<&str>,
) -> Result<Vec<TestBinary>, BuildError> {
    let step = format!(
        "cargo test --no-run of {} for {}",
        id.dir_name(),
        target.unwrap_or("the host")
    );
    let mut build = cargo();
    build
        .args([
            "test",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(src.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    if let Some(target) = target {
        build.args(["--target", target]);
    }
    let messages = run(build, &step)?;
    let mut binaries: Vec<TestBinary> = messages.lines().filter_map(test_binary).collect();
    binaries.sort();
    binaries.dedup();
    if binaries.is_empty() {
        return Err(BuildError::Unexpected {
            step,
            detail: "cargo built no lib or integration test binary".into(),
        });
    }
    Ok(binaries)
}

/// The test binary a cargo JSON message reports, if it reports one of a lib
/// or an integration test.
fn test_binary(message: &str) -> Option<TestBinary> {
    let message: serde_json::Value = serde_json::from_str(message).ok()?;
    if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
        return None;
    }
    let executable = message["executable"].as_str()?;
    let kinds = message["target"]["kind"].as_array()?;
    let kind = if kinds.iter().any(|k| k == "test") {
        "test"
    } else if kinds
        .iter()
        .any(|k| matches!(k.as_str(), Some("lib" | "rlib" | "dylib" | "cdylib")))
    {
        "lib"
    } else {
        return None;
    };
    Some(TestBinary {
        target: message["target"]["name"].as_str()?.to_string(),
        kind: kind.to_string(),
        wasm: PathBuf::from(executable),
    })
}

/// The binaries a marker lists, if the marker and all they name exist.
/// Lines are `kind<TAB>target<TAB>path`.
fn read_marker(marker: &Path, src: &Path) -> Option<Vec<TestBinary>> {
    if !src.join("Cargo.toml").is_file() {
        return None;
    }
    let text = fs::read_to_string(marker).ok()?;
    let binaries = text
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, '\t');
            let (kind, target, path) = (fields.next()?, fields.next()?, fields.next()?);
            Some(TestBinary {
                target: target.into(),
                kind: kind.into(),
                wasm: PathBuf::from(path),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let complete = !binaries.is_empty() && binaries.iter().all(|b| b.wasm.is_file());
    complete.then_some(binaries)
}

/// Records a finished build.
fn write_marker(marker: &Path, binaries: &[TestBinary]) -> Result<(), BuildError> {
    let text: String = binaries
        .iter()
        .map(|b| format!("{}\t{}\t{}\n", b.kind, b.target, b.wasm.display()))
        .collect();
    write_beside(marker, &text)
}

/// Recorded native outcomes, if they are there and cover the suite's
/// binaries exactly.
fn read_outcomes(cache: &Path, suite: &Suite) -> Option<SuiteOutcomes> {
    let text = fs::read_to_string(cache).ok()?;
    let entries: Vec<((String, String), Outcomes)> = serde_json::from_str(&text).ok()?;
    let outcomes: SuiteOutcomes = entries.into_iter().collect();
    let covered = outcomes.len() == suite.binaries.len()
        && suite
            .binaries
            .iter()
            .all(|b| outcomes.contains_key(&(b.target.clone(), b.kind.clone())));
    covered.then_some(outcomes)
}

/// Writes `text` to `path` through a file beside it, renamed into place, so
/// a write cut short is never read as a record.
fn write_beside(path: &Path, text: &str) -> Result<(), BuildError> {
    let io = |what: &str| {
        let step = format!("{what} {}", path.display());
        move |source| BuildError::Io { step, source }
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io("create the directory of"))?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    fs::write(&partial, text).map_err(io("write"))?;
    fs::rename(&partial, path).map_err(io("rename into place"))
}

/// Test name -> outcome, from libtest's human output: lines like
/// `test NAME ... ok`, `test NAME - should panic ... ok`,
/// `test NAME ... ignored, reason`, `test NAME ... FAILED`.
fn parse_outcomes(stdout: &str) -> Outcomes {
    stdout
        .lines()
        .filter_map(|line| {
            let (name, outcome) = line.strip_prefix("test ")?.split_once(" ... ")?;
            let name = name.strip_suffix(" - should panic").unwrap_or(name);
            let outcome = outcome.split([',', ' ']).next()?;
            matches!(outcome, "ok" | "FAILED" | "ignored")
                .then(|| (name.to_string(), outcome.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_lines() {
        let stdout = "\nrunning 4 tests\n\
            test a::b ... ok\n\
            test c - should panic ... ok\n\
            test d ... ignored, slow\n\
            test e ... FAILED\n\
            noise\n\
            test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out\n";
        let outcomes = parse_outcomes(stdout);
        let expected: Outcomes = [
            ("a::b", "ok"),
            ("c", "ok"),
            ("d", "ignored"),
            ("e", "FAILED"),
        ]
        .into_iter()
        .map(|(n, o)| (n.to_string(), o.to_string()))
        .collect();
        assert_eq!(outcomes, expected);
    }

    #[test]
    fn rejects_names_that_are_paths() {
        for (name, version) in [("../x", "1.0.0"), ("itoa", "1.0/.."), ("", "1"), ("a", "")] {
            assert!(CrateId::new(name, version).is_err(), "{name} {version}");
        }
        assert!(CrateId::new("serde_json", "1.0.0-rc.1+meta").is_ok());
    }

    #[test]
    fn reads_test_artifacts_only() {
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"itoa","test":true},"profile":{"test":true},"executable":"/t/itoa-1.wasm"}"#;
        let test = r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"test","test":true},"profile":{"test":true},"executable":"/t/test-2.wasm"}"#;
        let rlib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"itoa","test":true},"profile":{"test":false},"executable":null}"#;
        let bench = r#"{"reason":"compiler-artifact","target":{"kind":["bench"],"name":"b"},"profile":{"test":true},"executable":"/t/b.wasm"}"#;
        let binary = |target: &str, kind: &str, path: &str| TestBinary {
            target: target.into(),
            kind: kind.into(),
            wasm: path.into(),
        };
        assert_eq!(
            test_binary(lib),
            Some(binary("itoa", "lib", "/t/itoa-1.wasm"))
        );
        assert_eq!(
            test_binary(test),
            Some(binary("test", "test", "/t/test-2.wasm"))
        );
        assert_eq!(test_binary(rlib), None);
        assert_eq!(test_binary(bench), None);
        assert_eq!(test_binary("not json"), None);
    }
}
