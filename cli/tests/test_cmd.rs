//! `grid test` through the real `grid` binary: the awkward libtest suite of
//! `examples/guests/testsuite` (every outcome a runner meets), selection,
//! JSON and JUnit reports, retries, cargo's runner mode (with a real
//! `cargo test`), deterministic runs on clusters of different sizes, the
//! crates.io suites of `grid_tests::testbins` against their native
//! outcomes, and a cluster on a real nats-server.
//!
//! Each run has its own module cache and its own cache home (so the timing
//! records of one test never reorder another's), and must end within
//! `common::DEADLINE` with no panic on stderr. A fixture that is not built
//! skips its test with a note, unless `GRID_REQUIRE_GUESTS` is set.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Processes, Run};
use grid_bus::testing::NatsServer;
use serde_json::Value;
use tempfile::TempDir;

/// The awkward suite's tests and what `grid test` must report for each
/// (the text after `test NAME ... `), with `--manifest-dir` given.
const AWKWARD: &[(&str, &str)] = &[
    ("tests::adds_small_numbers", "ok"),
    ("tests::catch_unwind_abort", "FAILED"),
    ("tests::clamps_into_range", "ok"),
    ("tests::fails_assert", "FAILED"),
    ("tests::fibonacci_first_terms", "ok"),
    ("tests::ignored_plain", "ignored"),
    (
        "tests::infinite_loop",
        "ignored, loops forever: run with --include-ignored and a timeout",
    ),
    ("tests::panics_after_passing", "FAILED"),
    ("tests::prints_a_lot", "ok"),
    ("tests::reads_fixture", "ok"),
    ("tests::reverses_words", "ok"),
    (
        "tests::should_panic_expected",
        "ignored, should_panic needs unwinding",
    ),
    (
        "tests::should_panic_plain",
        "ignored, should_panic needs unwinding",
    ),
    ("tests::sleeps_200ms", "ok"),
    ("tests::time_and_random", "ok"),
];

const SHOULD_PANIC: &str = "should_panic needs unwinding";

/// The awkward suite's binary, or `None` (said why) when it is not built.
fn suite() -> Option<String> {
    grid_examples::require_path(grid_examples::testsuite()).map(|p| p.display().to_string())
}

fn suite_dir() -> String {
    grid_examples::testsuite_dir().display().to_string()
}

/// A test's own module cache and cache home.
struct Home(TempDir);

impl Home {
    fn new() -> Home {
        Home(tempfile::tempdir().expect("temp dir"))
    }

    /// `grid args...`, with this home; no CARGO_MANIFEST_DIR from the
    /// test's own environment (runner mode would take it).
    fn command(&self, args: &[&str]) -> Command {
        let mut command = common::grid_command(args, &self.0.path().join("modules"));
        command
            .env("XDG_CACHE_HOME", self.0.path().join("cache"))
            .env_remove("CARGO_MANIFEST_DIR");
        command
    }

    fn grid(&self, args: &[&str]) -> Run {
        run_to_end(self.command(args))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Runs `command` to the end within `common::DEADLINE`. Unlike
/// `common::run`, stderr may hold panic messages: with `--json` the report
/// there shows the failed tests' own stderr. Only `grid`'s own panic (its
/// one `internal error` line, or a Rust backtrace) fails the check.
fn run_to_end(mut command: Command) -> Run {
    let started = std::time::Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("grid starts");
    let output = common::finish(child, &format!("{command:?}"));
    let run = Run {
        code: output.status.code().expect("grid exits, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    };
    for bad in ["error: internal error", "stack backtrace"] {
        assert!(
            !run.stderr.contains(bad),
            "{bad} in stderr:\n{}",
            run.stderr
        );
    }
    run
}

/// `grid args...` in a fresh home.
fn grid(args: &[&str]) -> Run {
    Home::new().grid(args)
}

/// Test name -> what follows `test NAME ... ` on its line.
fn outcomes(report: &str) -> BTreeMap<String, String> {
    report
        .lines()
        .filter_map(|line| line.strip_prefix("test ")?.split_once(" ... "))
        .map(|(name, rest)| (name.to_string(), rest.to_string()))
        .collect()
}

fn expected(tests: &[(&str, &str)]) -> BTreeMap<String, String> {
    tests
        .iter()
        .map(|(name, outcome)| (name.to_string(), outcome.to_string()))
        .collect()
}

/// The `test result:` line of a report.
fn summary(report: &str) -> &str {
    report
        .lines()
        .find(|l| l.starts_with("test result: "))
        .unwrap_or_else(|| panic!("no summary in:\n{report}"))
}

/// The JSON lines of `--json`, by test name.
fn json_tests(stdout: &str) -> BTreeMap<String, Value> {
    stdout
        .lines()
        .map(|line| {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let name = v["name"].as_str().expect("a name").to_string();
            (name, v)
        })
        .collect()
}

#[test]
fn the_awkward_suite_gives_every_outcome() {
    let Some(suite) = suite() else { return };
    let dir = suite_dir();
    let run = grid(&["test", &suite, "--engines", "2", "--manifest-dir", &dir]);
    assert_eq!(run.code, 101, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(outcomes(&run.stdout), expected(AWKWARD), "{}", run.stdout);
    assert!(
        run.stdout.starts_with("\nrunning 15 tests\n"),
        "{}",
        run.stdout
    );
    let summary = summary(&run.stdout);
    assert!(
        summary.starts_with(
            "test result: FAILED. 8 passed; 3 failed; 4 ignored; 0 measured; \
             0 filtered out; finished in "
        ),
        "{summary}"
    );
    // Each failure with its panic message (from stderr) and its cause.
    let failures = run
        .stdout
        .split_once("\nfailures:\n\n")
        .map(|(_, f)| f)
        .unwrap_or_else(|| panic!("no failures section:\n{}", run.stdout));
    for (test, message) in [
        (
            "fails_assert",
            "assertion `left == right` failed: deliberate failure",
        ),
        ("panics_after_passing", "boom: deliberate panic"),
        ("catch_unwind_abort", "caught: deliberate panic"),
    ] {
        let block = failures
            .split_once(&format!("---- tests::{test} stderr ----\n"))
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("no stderr of {test}:\n{failures}"));
        assert!(block.contains(message), "{test}: {block}");
        let cause = format!("---- tests::{test} failed: trap (unreachable): ");
        assert!(failures.contains(&cause), "{cause} in:\n{failures}");
        // The backtrace is cut to the test's own frames.
        let line = failures.lines().find(|l| l.starts_with(&cause)).unwrap();
        assert!(line.contains(&format!("tests::{test}")), "{line}");
        assert!(!line.contains("rust_begin_unwind"), "{line}");
    }
    let names: Vec<&str> = failures
        .split("\nfailures:\n")
        .nth(1)
        .expect("a list of failed tests")
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .collect();
    assert_eq!(
        names,
        [
            "tests::catch_unwind_abort",
            "tests::fails_assert",
            "tests::panics_after_passing"
        ]
    );
    assert!(
        !failures.contains("stdout line"),
        "passing tests' output is not shown"
    );
    assert_eq!(run.stderr.trim(), format!("Running {suite}"));
}

#[test]
fn a_hung_test_times_out_and_the_engine_goes_on() {
    let Some(suite) = suite() else { return };
    let run = grid(&[
        "test",
        &suite,
        "--ignored",
        "--timeout",
        "2",
        "--engines",
        "1",
    ]);
    assert_eq!(run.code, 101, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        outcomes(&run.stdout),
        expected(&[
            ("tests::ignored_plain", "ok"),
            ("tests::infinite_loop", "TIMEOUT"),
        ])
    );
    assert!(
        summary(&run.stdout).starts_with(
            "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 13 filtered out;"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("---- tests::infinite_loop timed out: wall time limit of 2000 ms exceeded"),
        "{}",
        run.stdout
    );
}

#[test]
fn filters_skip_and_exact_select_as_libtest_does() {
    let Some(suite) = suite() else { return };
    let run = grid(&["test", &suite, "adds", "clamps", "--engines", "2"]).ok();
    assert_eq!(
        outcomes(&run.stdout),
        expected(&[
            ("tests::adds_small_numbers", "ok"),
            ("tests::clamps_into_range", "ok"),
        ])
    );
    assert!(
        summary(&run.stdout).contains("2 passed; 0 failed; 0 ignored; 0 measured; 13 filtered out")
    );

    let run = grid(&[
        "test",
        &suite,
        "--skip",
        "should",
        "--skip",
        "sleeps",
        "--skip",
        "prints",
        "--engines",
        "2",
    ]);
    let got = outcomes(&run.stdout);
    assert_eq!(
        got.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "tests::adds_small_numbers",
            "tests::catch_unwind_abort",
            "tests::clamps_into_range",
            "tests::fails_assert",
            "tests::fibonacci_first_terms",
            "tests::ignored_plain",
            "tests::infinite_loop",
            "tests::panics_after_passing",
            "tests::reads_fixture",
            "tests::reverses_words",
            "tests::time_and_random"
        ],
        "{}",
        run.stdout
    );
    // Without --manifest-dir the fixture is not there.
    assert_eq!(got["tests::reads_fixture"], "FAILED");
    assert!(
        run.stdout
            .contains("cannot read tests/fixtures/hello.txt from the current directory"),
        "{}",
        run.stdout
    );
    assert!(
        summary(&run.stdout).contains("5 passed; 4 failed; 2 ignored; 0 measured; 4 filtered out"),
        "{}",
        run.stdout
    );

    let run = grid(&[
        "test",
        &suite,
        "--exact",
        "tests::adds_small_numbers",
        "adds",
    ])
    .ok();
    assert_eq!(
        outcomes(&run.stdout),
        expected(&[("tests::adds_small_numbers", "ok")])
    );
    let run = grid(&["test", &suite, "--exact", "adds_small_numbers"]).ok();
    assert!(
        run.stdout.starts_with("\nrunning 0 tests\n"),
        "{}",
        run.stdout
    );
    assert!(
        summary(&run.stdout).contains("0 passed; 0 failed; 0 ignored; 0 measured; 15 filtered out")
    );
}

#[test]
fn json_and_junit_reports() {
    let Some(suite) = suite() else { return };
    let home = Home::new();
    let junit = home.path("report.xml");
    let junit_arg = junit.display().to_string();
    let dir = suite_dir();
    let run = home.grid(&[
        "test",
        &suite,
        "--json",
        "--junit",
        &junit_arg,
        "--manifest-dir",
        &dir,
        "--engines",
        "2",
    ]);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let tests = json_tests(&run.stdout);
    let got: BTreeMap<String, String> = tests
        .iter()
        .map(|(name, v)| (name.clone(), v["outcome"].as_str().unwrap().to_string()))
        .collect();
    let want: BTreeMap<String, String> = AWKWARD
        .iter()
        .map(|(name, o)| (name.to_string(), o.split(',').next().unwrap().to_string()))
        .collect();
    assert_eq!(got, want);
    for (name, v) in &tests {
        assert_eq!(v["binary"], suite.as_str(), "{v}");
        assert_eq!(v["attempts"], 1, "{v}");
        assert!(v["duration"].as_f64().is_some_and(|d| d >= 0.0), "{v}");
        assert!(v["engine"].as_u64().is_some_and(|e| e < 2), "{v}");
        let fingerprint = v["fingerprint"].as_str().expect("a fingerprint");
        assert!(
            fingerprint.len() == 64 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()),
            "{name}: {fingerprint}"
        );
        assert!(v.get("fuel").is_none(), "no fuel unless metered: {v}");
    }
    assert_eq!(tests["tests::should_panic_plain"]["reason"], SHOULD_PANIC);
    assert!(
        tests["tests::fails_assert"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("trap (unreachable)"))
    );
    assert!(
        tests["tests::sleeps_200ms"]["duration"]
            .as_f64()
            .is_some_and(|d| d >= 0.2),
        "{}",
        tests["tests::sleeps_200ms"]
    );
    // The usual report went to stderr.
    assert!(
        summary(&run.stderr).starts_with("test result: FAILED. 8 passed; 3 failed; 4 ignored;")
    );

    let text = std::fs::read_to_string(&junit).expect("the JUnit report");
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    let ts = suites[0];
    assert_eq!(ts.attribute("name"), Some(suite.as_str()));
    assert_eq!(ts.attribute("tests"), Some("15"));
    assert_eq!(ts.attribute("failures"), Some("3"));
    assert_eq!(ts.attribute("skipped"), Some("4"));
    let cases: BTreeMap<&str, roxmltree::Node> = ts
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| (n.attribute("name").expect("a name"), n))
        .collect();
    assert_eq!(cases.len(), 15);
    let child = |test: &str, tag: &str| {
        cases[test]
            .children()
            .find(|n| n.has_tag_name(tag))
            .unwrap_or_else(|| panic!("{test} has no <{tag}>"))
    };
    let failure = child("tests::panics_after_passing", "failure");
    assert!(
        failure
            .attribute("message")
            .is_some_and(|m| m.starts_with("trap (unreachable)"))
    );
    let err = child("tests::panics_after_passing", "system-err");
    assert!(
        err.text()
            .is_some_and(|t| t.contains("boom: deliberate panic")),
        "{err:?}"
    );
    let err = child("tests::fails_assert", "system-err");
    assert!(
        err.text().is_some_and(|t| t.contains("`left == right`")),
        "escaped and read back: {err:?}"
    );
    let skipped = child("tests::should_panic_expected", "skipped");
    assert_eq!(skipped.attribute("message"), Some(SHOULD_PANIC));
    assert!(
        cases["tests::adds_small_numbers"]
            .children()
            .all(|n| !n.is_element())
    );
}

#[test]
fn a_failed_test_is_retried() {
    let Some(suite) = suite() else { return };
    let run = grid(&[
        "test",
        &suite,
        "fails_assert",
        "adds",
        "--retries",
        "2",
        "--json",
        "--engines",
        "2",
    ]);
    assert_eq!(run.code, 101, "{}", run.stderr);
    let tests = json_tests(&run.stdout);
    assert_eq!(tests["tests::fails_assert"]["outcome"], "FAILED");
    assert_eq!(tests["tests::fails_assert"]["attempts"], 3);
    assert_eq!(tests["tests::adds_small_numbers"]["attempts"], 1);
    assert!(
        run.stderr
            .contains("---- tests::fails_assert failed (3 attempts): trap (unreachable)"),
        "{}",
        run.stderr
    );
}

/// A stand-in for a libtest binary whose tests fail at random, one time in
/// two: it lists `count` tests (`t00` ...) and, asked to run one, prints a
/// passing `test result:` line or exits 101 by a random byte.
fn coin_flip_suite(count: usize) -> String {
    let list: String = (0..count).map(|i| format!("t{i:02}: test\\n")).collect();
    let list_len = count * 10;
    let passed = "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; \
                  0 filtered out; finished in 0.00s\\n";
    let passed_len = passed.len() - 1; // the escaped newline is one byte
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "{list}")
  (data (i32.const 2048) "{passed}")
  (func $write (param $at i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (drop (call $sizes (i32.const 16) (i32.const 20)))
    (drop (call $args (i32.const 4096) (i32.const 8192)))
    ;; argv[1] is --list (its third byte an `l`): list, unless --ignored follows.
    (if (i32.eq (i32.load8_u (i32.add (i32.load (i32.const 4100)) (i32.const 2))) (i32.const 108))
      (then
        (if (i32.eq (i32.load (i32.const 16)) (i32.const 4))
          (then (call $write (i32.const 1024) (i32.const {list_len}))))
        (return)))
    (drop (call $random (i32.const 32) (i32.const 1)))
    (if (i32.and (i32.load8_u (i32.const 32)) (i32.const 1))
      (then (call $exit (i32.const 101))))
    (call $write (i32.const 2048) (i32.const {passed_len}))))"#
    )
}

#[test]
fn a_test_that_passes_on_a_retry_is_flaky_and_counts_as_passed() {
    let home = Home::new();
    let module = home.path("coin.wat");
    std::fs::write(&module, coin_flip_suite(20)).expect("write module");
    let module = module.display().to_string();
    // Each test fails its first attempt with probability 1/2 and all 31
    // with 2^-31: some are flaky, none fails.
    let run = home.grid(&[
        "test",
        &module,
        "--retries",
        "30",
        "--json",
        "--engines",
        "2",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let tests = json_tests(&run.stdout);
    assert_eq!(tests.len(), 20);
    let mut flaky = 0;
    for v in tests.values() {
        match v["outcome"].as_str() {
            Some("ok") => assert_eq!(v["attempts"], 1, "{v}"),
            Some("FLAKY") => {
                flaky += 1;
                assert!(v["attempts"].as_u64().is_some_and(|a| a > 1), "{v}");
                assert_eq!(v["reason"], "exit code 101", "{v}");
            }
            _ => panic!("neither ok nor flaky: {v}"),
        }
    }
    assert!(flaky > 0, "not one of 20 failed first: {}", run.stdout);
    assert!(run.stderr.contains("FLAKY ("), "{}", run.stderr);
    assert!(
        summary(&run.stderr).starts_with("test result: ok. 20 passed; 0 failed;"),
        "{}",
        run.stderr
    );
}

#[test]
fn runner_mode_takes_libtests_arguments() {
    let Some(suite) = suite() else { return };
    let home = Home::new();
    let run = home
        .grid(&[
            "test",
            "--runner",
            &suite,
            "--exact",
            "tests::adds_small_numbers",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .ok();
    assert_eq!(
        outcomes(&run.stdout),
        expected(&[("tests::adds_small_numbers", "ok")])
    );
    assert!(
        summary(&run.stdout).contains("1 passed; 0 failed; 0 ignored; 0 measured; 14 filtered out")
    );
    assert_eq!(run.stderr, "", "cargo names the binary itself");

    // cargo's CARGO_MANIFEST_DIR is the tests' directory.
    let mut command = home.command(&["test", "--runner", &suite, "reads_fixture"]);
    command.env("CARGO_MANIFEST_DIR", suite_dir());
    let run = run_to_end(command).ok();
    assert_eq!(
        outcomes(&run.stdout),
        expected(&[("tests::reads_fixture", "ok")])
    );

    let run = home
        .grid(&[
            "test", "--runner", &suite, "--list", "--format", "terse", "should",
        ])
        .ok();
    assert_eq!(
        run.lines(),
        [
            "tests::should_panic_expected: test",
            "tests::should_panic_plain: test"
        ]
    );
}

#[test]
fn cargo_test_runs_through_grid_as_its_runner() {
    if suite().is_none() {
        return;
    }
    let home = Home::new();
    let manifest = grid_examples::testsuite_dir().join("Cargo.toml");
    let mut command = grid_tests::testbins::cargo();
    command
        .args(["test", "--target", "wasm32-wasip1", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(home.path("target"))
        .env(
            "CARGO_TARGET_WASM32_WASIP1_RUNNER",
            format!("{} test --runner --engines 2", env!("CARGO_BIN_EXE_grid")),
        )
        .env("GRID_CACHE_DIR", home.path("modules"))
        .env("XDG_CACHE_HOME", home.path("cache"))
        .env("RUST_BACKTRACE", "1");
    for var in ["CARGO_MANIFEST_DIR", "GRID_URL", "GRID_CLUSTER"] {
        command.env_remove(var);
    }
    command.args(["--", "--skip", "sleeps"]);
    let run = run_to_end(command);
    assert_eq!(run.code, 101, "{}\n{}", run.stdout, run.stderr);
    let mut want = expected(AWKWARD);
    want.remove("tests::sleeps_200ms");
    assert_eq!(outcomes(&run.stdout), want, "{}", run.stdout);
    assert!(
        summary(&run.stdout).starts_with(
            "test result: FAILED. 7 passed; 3 failed; 4 ignored; 0 measured; 1 filtered out;"
        ),
        "{}",
        run.stdout
    );
}

/// Test name -> (outcome, fingerprint, fuel) of a `--json` run.
fn fingerprints(run: &Run) -> BTreeMap<String, (String, String, Option<u64>)> {
    json_tests(&run.stdout)
        .into_iter()
        .map(|(name, v)| {
            let outcome = v["outcome"].as_str().expect("an outcome").to_string();
            let fingerprint = v["fingerprint"]
                .as_str()
                .expect("a fingerprint")
                .to_string();
            (name, (outcome, fingerprint, v["fuel"].as_u64()))
        })
        .collect()
}

#[test]
fn deterministic_runs_agree_on_any_cluster_size() {
    let Some(suite) = suite() else { return };
    let dir = suite_dir();
    let run_on = |engines: &str, deterministic: bool| {
        let mut args = vec![
            "test",
            &suite,
            "--json",
            "--manifest-dir",
            &dir,
            "--engines",
            engines,
        ];
        if deterministic {
            args.push("--deterministic");
        }
        let run = grid(&args);
        assert_eq!(run.code, 101, "{}", run.stderr);
        fingerprints(&run)
    };
    let one = run_on("1", true);
    let three = run_on("3", true);
    assert_eq!(one.len(), 15);
    assert_eq!(one, three);
    for (name, (_, _, fuel)) in &one {
        assert!(fuel.is_some(), "{name}: deterministic runs meter fuel");
    }
    // What makes it so: without --deterministic, clocks and random bytes
    // change time_and_random's output, and so its fingerprint.
    let a = run_on("2", false);
    let b = run_on("2", false);
    let test = "tests::time_and_random";
    assert_eq!(a[test].0, "ok");
    assert_ne!(a[test].1, b[test].1);
    assert_ne!(a[test].1, one[test].1);
}

/// `grid test` on every binary of crates.io's `name` (pinned in
/// `SUITES`): the outcome of every test the wasm binary lists is its native
/// one, except `#[should_panic]` tests (which cannot run on wasm and must
/// say so).
fn matches_native(name: &str) {
    use grid_tests::testbins::{SUITES, crates_io_suite, native_outcomes};
    let (_, version) = SUITES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("{name} is not in SUITES"));
    let suite = crates_io_suite(name, version).unwrap_or_else(|e| panic!("{e}"));
    let native = native_outcomes(&suite).unwrap_or_else(|e| panic!("{e}"));
    let binaries: Vec<String> = suite
        .binaries
        .iter()
        .map(|b| b.wasm.display().to_string())
        .collect();
    let src = suite.src.display().to_string();
    let mut args = vec!["test", "--json", "--manifest-dir", &src, "--engines", "2"];
    args.extend(binaries.iter().map(String::as_str));
    let run = grid(&args);
    assert_eq!(run.code, 0, "{name}:\n{}", run.stderr);
    let mut checked = 0;
    for line in run.stdout.lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        let test = v["name"].as_str().expect("a name");
        let binary = suite
            .binaries
            .iter()
            .find(|b| b.wasm.display().to_string() == v["binary"].as_str().unwrap_or_default())
            .unwrap_or_else(|| panic!("{name}: no binary for {v}"));
        let expected = native
            .get(&(binary.target.clone(), binary.kind.clone()))
            .and_then(|tests| tests.get(test))
            .unwrap_or_else(|| panic!("{name}: {test} is not among the native tests"));
        let outcome = v["outcome"].as_str().unwrap_or_default();
        if v["reason"] == SHOULD_PANIC {
            assert_eq!((outcome, expected.as_str()), ("ignored", "ok"), "{v}");
        } else {
            assert_eq!(outcome, expected, "{name}: {v}");
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "{name}: only {checked} tests:\n{}",
        run.stderr
    );
    eprintln!("{name} {version}: {checked} tests as native");
}

#[test]
fn itoa_tests_match_native() {
    matches_native("itoa");
}

#[test]
fn ryu_tests_match_native() {
    matches_native("ryu");
}

#[test]
fn memchr_tests_match_native() {
    matches_native("memchr");
}

/// The engines of cluster `default` at `url` (`grid status --json`).
fn engine_count(home: &Home, url: &str) -> usize {
    let run = home.grid(&["status", "--url", url, "--json"]);
    if run.code != 0 {
        return 0;
    }
    serde_json::from_str::<Value>(&run.stdout)
        .ok()
        .and_then(|v| v["engines"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn on_a_nats_cluster() {
    let Some(suite) = suite() else { return };
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let url = server.url();
    let home = Home::new();
    let dir = suite_dir();
    let spawn = |args: &[&str], log: &str| {
        let out = std::fs::File::create(home.path(log)).expect("log file");
        let err = out.try_clone().expect("log file");
        home.command(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("grid starts")
    };
    let _cluster = Processes(vec![
        spawn(&["controller", "--url", &url], "controller.log"),
        spawn(
            &["engine", "--url", &url, "-n", "2", "--allow-dir", &dir],
            "engine.log",
        ),
    ]);
    common::wait_for("2 engines", Duration::from_secs(60), || {
        (engine_count(&home, &url) == 2).then_some(())
    });
    let run = home.grid(&[
        "test",
        "--url",
        &url,
        &suite,
        "--manifest-dir",
        &dir,
        "--timeout",
        "60",
    ]);
    assert_eq!(run.code, 101, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(outcomes(&run.stdout), expected(AWKWARD), "{}", run.stdout);
    assert!(
        summary(&run.stdout).starts_with("test result: FAILED. 8 passed; 3 failed; 4 ignored;")
    );
    // A directory the engines do not allow is refused, and says so.
    let elsewhere = home.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("create dir");
    let elsewhere = elsewhere.display().to_string();
    let run = home.grid(&["test", "--url", &url, &suite, "--manifest-dir", &elsewhere]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    run.assert_error_lines();
    assert!(
        run.stderr.contains("cannot list its tests") && run.stderr.lines().count() == 1,
        "{}",
        run.stderr
    );
}
