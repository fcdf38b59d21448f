//! The test-binary fixtures of `grid test` build, and their native outcomes
//! are what the fixtures promise.
//!
//! Each crate of `grid_tests::testbins::SUITES` must build for wasm32-wasip1
//! (fetched from crates.io on first use, cached after) into real wasm
//! modules, and pass natively with a non-trivial number of tests. The awkward
//! suite of `examples/guests/testsuite` must give, natively, exactly the
//! outcomes its module doc states. Whether Grid runs them alike is the
//! runner's own test, not this one.

use std::collections::BTreeMap;
use std::path::Path;

use grid_tests::testbins::{SUITES, Suite, TestBinary, crates_io_suite, native_outcomes};

/// Fewer tests than this in a suite would make a poor fixture.
const MIN_TESTS: usize = 10;

fn is_wasm(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"\0asm"))
}

#[test]
fn crates_io_suites_build_for_wasm_and_pass_natively() {
    for &(name, version) in SUITES {
        let suite = crates_io_suite(name, version).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (suite.name.as_str(), suite.version.as_str()),
            (name, version)
        );
        assert!(suite.src.join("Cargo.toml").is_file(), "{suite:?}");
        assert!(!suite.binaries.is_empty(), "{name}: no test binaries");
        for binary in &suite.binaries {
            assert!(
                is_wasm(&binary.wasm),
                "{name}: not a wasm module: {binary:?}"
            );
            assert!(matches!(binary.kind.as_str(), "lib" | "test"), "{binary:?}");
        }

        let outcomes = native_outcomes(&suite).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcomes.len(), suite.binaries.len(), "{name}: {outcomes:?}");
        let tests: usize = outcomes.values().map(BTreeMap::len).sum();
        assert!(
            tests >= MIN_TESTS,
            "{name}: only {tests} tests: {outcomes:?}"
        );
        for ((target, kind), tests) in &outcomes {
            let failed: Vec<_> = tests.iter().filter(|(_, o)| *o == "FAILED").collect();
            assert!(failed.is_empty(), "{name} {kind} {target}: {failed:?}");
        }
        eprintln!("{name} {version}: {tests} tests in {:?}", outcomes.keys());
    }
}

#[test]
fn a_cached_suite_is_the_same_from_every_thread() {
    let (name, version) = SUITES[0];
    let first = crates_io_suite(name, version).unwrap_or_else(|e| panic!("{e}"));
    let again: Vec<Suite> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| crates_io_suite(name, version)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("thread").unwrap_or_else(|e| panic!("{e}")))
            .collect()
    });
    assert!(again.iter().all(|suite| *suite == first), "{again:?}");
}

#[test]
fn crate_names_that_are_paths_are_refused() {
    assert!(crates_io_suite("../itoa", "1.0.0").is_err());
    assert!(crates_io_suite("itoa", "1.0.0/../..").is_err());
}

#[test]
fn awkward_testsuite_natively_gives_the_documented_outcomes() {
    if grid_examples::require(grid_examples::testsuite()).is_none() {
        return;
    }
    let wasm = grid_examples::testsuite().unwrap_or_else(|e| panic!("{e}"));
    let src = grid_examples::testsuite_dir();
    assert_eq!(
        std::fs::read_to_string(src.join("tests/fixtures/hello.txt"))
            .ok()
            .as_deref(),
        Some("hello fixture\n")
    );
    let suite = Suite {
        name: "grid-testsuite".into(),
        version: "0.1.0".into(),
        src,
        binaries: vec![TestBinary {
            target: "grid_testsuite".into(),
            kind: "lib".into(),
            wasm,
        }],
    };
    let outcomes = native_outcomes(&suite).unwrap_or_else(|e| panic!("{e}"));
    let expected: BTreeMap<String, String> = [
        ("adds_small_numbers", "ok"),
        ("catch_unwind_abort", "ok"),
        ("clamps_into_range", "ok"),
        ("fails_assert", "FAILED"),
        ("fibonacci_first_terms", "ok"),
        ("ignored_plain", "ignored"),
        ("infinite_loop", "ignored"),
        ("panics_after_passing", "FAILED"),
        ("prints_a_lot", "ok"),
        ("reads_fixture", "ok"),
        ("reverses_words", "ok"),
        ("should_panic_expected", "ok"),
        ("should_panic_plain", "ok"),
        ("sleeps_200ms", "ok"),
        ("time_and_random", "ok"),
    ]
    .into_iter()
    .map(|(name, outcome)| (format!("tests::{name}"), outcome.to_string()))
    .collect();
    let key = ("grid_testsuite".to_string(), "lib".to_string());
    assert_eq!(outcomes.get(&key), Some(&expected), "{outcomes:?}");
}
