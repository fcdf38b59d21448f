//! `grid-testsuite`: a test suite made to be awkward for a test runner.
//!
//! `examples/build.rs` builds its libtest binary for `wasm32-wasip1`
//! (`cargo test --no-run`), and `grid test`'s own tests run it, one test per
//! sandbox, against the outcomes below. The few functions here only give the
//! tests something to call; the tests are the point: passing, failing,
//! panicking, `#[should_panic]`, `catch_unwind` (which aborts under wasm's
//! panic=abort), ignored, endless, reading a fixture, printing a lot, and
//! reading clocks and randomness (which Grid's deterministic mode pins).
//! Test names are part of the fixture's contract: rename none without
//! updating the runner's tests. Nothing here may depend on a crate.
//!
//! Natively (`cargo test`), every test that is not ignored passes except
//! `tests::fails_assert` and `tests::panics_after_passing`.

/// The sum of two numbers, wrapping on overflow.
pub fn add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

/// `value` limited to `low..=high` (`low` when the range is empty).
pub fn clamp(value: i64, low: i64, high: i64) -> i64 {
    value.min(high).max(low)
}

/// The first `n` Fibonacci numbers, starting 0, 1; saturating at `u64::MAX`.
pub fn fibonacci(n: usize) -> Vec<u64> {
    let mut terms = Vec::with_capacity(n);
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        terms.push(a);
        (a, b) = (b, a.saturating_add(b));
    }
    terms
}

/// The words of `text` in reverse order, separated by single spaces.
pub fn reverse_words(text: &str) -> String {
    text.split_whitespace().rev().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    /// The fixture's path relative to the crate's directory.
    const FIXTURE: &str = "tests/fixtures/hello.txt";

    #[test]
    fn adds_small_numbers() {
        assert_eq!(add(2, 3), 5);
        assert_eq!(add(u64::MAX, 1), 0);
    }

    #[test]
    fn clamps_into_range() {
        assert_eq!(clamp(-5, 0, 10), 0);
        assert_eq!(clamp(5, 0, 10), 5);
        assert_eq!(clamp(50, 0, 10), 10);
    }

    #[test]
    fn fibonacci_first_terms() {
        assert_eq!(fibonacci(8), [0, 1, 1, 2, 3, 5, 8, 13]);
        assert!(fibonacci(0).is_empty());
    }

    #[test]
    fn reverses_words() {
        assert_eq!(reverse_words("  one two\tthree "), "three two one");
        assert_eq!(reverse_words(""), "");
    }

    #[test]
    fn sleeps_200ms() {
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn fails_assert() {
        assert_eq!(add(2, 2), 5, "deliberate failure");
    }

    #[test]
    fn panics_after_passing() {
        assert_eq!(add(1, 1), 2);
        panic!("boom: deliberate panic");
    }

    #[test]
    #[should_panic]
    fn should_panic_plain() {
        let empty: Vec<u64> = Vec::new();
        let _ = empty[std::hint::black_box(3)];
    }

    #[test]
    #[should_panic(expected = "expected panic message")]
    fn should_panic_expected() {
        panic!("an expected panic message, in full");
    }

    #[test]
    fn catch_unwind_abort() {
        let caught = std::panic::catch_unwind(|| panic!("caught: deliberate panic"));
        assert!(caught.is_err(), "catch_unwind did not catch the panic");
    }

    #[test]
    #[ignore = "loops forever: run with --include-ignored and a timeout"]
    fn infinite_loop() {
        let mut spins = 0u64;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }

    #[test]
    fn reads_fixture() {
        let relative = std::fs::read_to_string(FIXTURE)
            .unwrap_or_else(|e| panic!("cannot read {FIXTURE} from the current directory: {e}"));
        assert_eq!(relative, "hello fixture\n");
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|e| panic!("CARGO_MANIFEST_DIR at run time: {e}"));
        let absolute = format!("{dir}/{FIXTURE}");
        let through_env = std::fs::read_to_string(&absolute)
            .unwrap_or_else(|e| panic!("cannot read {absolute}: {e}"));
        assert_eq!(through_env, "hello fixture\n");
    }

    #[test]
    fn prints_a_lot() {
        for line in 0..2000 {
            println!("stdout line {line} of 2000");
        }
        for line in 0..100 {
            eprintln!("stderr line {line} of 100");
        }
    }

    #[test]
    #[ignore]
    fn ignored_plain() {
        assert_eq!(add(40, 2), 42);
    }

    #[test]
    fn time_and_random() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_else(|e| panic!("clock before 1970: {e}"));
        println!("now_ns={}", now.as_nanos());
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(10));
        println!("elapsed_ns={}", start.elapsed().as_nanos());
        let random = std::collections::hash_map::RandomState::new().hash_one(42u64);
        println!("random={random}");
    }
}
