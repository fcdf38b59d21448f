//! An example Grid guest in Rust: one function per engine feature, for users to
//! copy and for the engine's tests to call.
//!
//! Built with `cargo build --release --target wasm32-wasip1`, this crate becomes
//! `target/wasm32-wasip1/release/grid_example_guest.wasm`. Each function shows
//! one thing: typed arguments and results (`square`, `add`, `word_count`, `pi`),
//! expected failures (`checked_sqrt`), panics (`boom`), captured output
//! (`hello`), the namespace (`bump`, `stash`, `scale`), dynamic values (`echo`),
//! typed arrays of numbers (`sum_f64`, `scale_f64`, `cumsum_i64`,
//! `u8_histogram`), limits (`spin`, `alloc_mb`) and the numeric ABI without the
//! SDK (`fib`). The
//! names and signatures are part of the engine's test suite: do not change them
//! without changing those tests.

use std::collections::BTreeMap;

use grid_guest::{Value, export, ns};

/// `x * x`, wrapping on overflow like any wasm `i64.mul`.
#[export]
pub fn square(x: i64) -> i64 {
    x.wrapping_mul(x)
}

/// `a + b`, wrapping on overflow.
#[export]
pub fn add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

/// How often each word occurs; words are lowercased runs of alphanumeric
/// characters, so "It's it" counts "it" twice and "s" once.
#[export]
pub fn word_count(text: String) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let lower = text.to_lowercase();
    for word in lower.split(|c: char| !c.is_alphanumeric()) {
        if !word.is_empty() {
            *counts.entry(word.to_owned()).or_default() += 1;
        }
    }
    counts
}

/// A Monte Carlo estimate of pi from `samples` random points in the unit square,
/// drawn from a generator seeded with `seed`: the same arguments always give the
/// same answer, on any engine. Zero samples estimate 0.
#[export]
pub fn pi(samples: u64, seed: u64) -> f64 {
    if samples == 0 {
        return 0.0;
    }
    let mut rng = SplitMix64(seed);
    let mut inside = 0u64;
    for _ in 0..samples {
        let (x, y) = (rng.next_f64(), rng.next_f64());
        if x * x + y * y <= 1.0 {
            inside += 1;
        }
    }
    4.0 * inside as f64 / samples as f64
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable and good enough for an
/// example, so the guest needs no `rand` crate.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`: the top 53 bits, as many as an f64 mantissa holds.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The square root, or an expected failure (a `guest_error` task) for a
/// negative number.
#[export]
pub fn checked_sqrt(x: f64) -> Result<f64, String> {
    if x < 0.0 {
        Err(format!(
            "cannot take the square root of a negative number: {x}"
        ))
    } else {
        Ok(x.sqrt())
    }
}

/// Panics with `message`: the task fails with kind `panic` and
/// "MESSAGE at src/lib.rs:LINE:COL".
#[export]
pub fn boom(message: String) -> i64 {
    panic!("{message}")
}

/// Greets `name` on stdout, notes it on stderr, and returns the greeting.
#[export]
pub fn hello(name: String) -> String {
    println!("hello, {name}");
    eprintln!("greeted {name}");
    format!("hello, {name}")
}

/// Adds one to the namespace counter `name` (absent counts as 0), stores it and
/// returns it. Panics if the entry holds something other than an integer.
#[export]
pub fn bump(name: String) -> i64 {
    let current: i64 = match ns::get(&name) {
        Ok(value) => value.unwrap_or(0),
        Err(e) => panic!("bump: {e}"),
    };
    let Some(next) = current.checked_add(1) else {
        panic!("bump: counter {name:?} is at i64::MAX");
    };
    if let Err(e) = ns::set(&name, &next) {
        panic!("bump: {e}");
    }
    next
}

/// Stores `value` in the namespace under `name`; answers null.
#[export]
pub fn stash(name: String, value: Value) {
    if let Err(e) = ns::set(&name, &value) {
        panic!("stash: {e}");
    }
}

/// `x` times the namespace entry "factor" (a float or an integer). An absent or
/// non-numeric factor is an expected failure, reported as a `guest_error`.
#[export]
pub fn scale(x: f64) -> Result<f64, String> {
    match ns::get::<f64>("factor") {
        Ok(Some(factor)) => Ok(x * factor),
        Ok(None) => Err("namespace entry \"factor\" is not set".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Returns its argument unchanged, whatever it is.
#[export]
pub fn echo(v: Value) -> Value {
    v
}

/// The sum of `xs`. A typed float64 array arrives with one memcpy; a plain
/// array of numbers works too.
#[export]
pub fn sum_f64(xs: &[f64]) -> f64 {
    xs.iter().sum()
}

/// `xs` with every element times `k`, returned as a typed float64 array.
#[export]
pub fn scale_f64(mut xs: Vec<f64>, k: f64) -> Vec<f64> {
    for x in &mut xs {
        *x *= k;
    }
    xs
}

/// The running totals of `xs` (`[1, 2, 3]` gives `[1, 3, 6]`), wrapping on
/// overflow, as a typed int64 array.
#[export]
pub fn cumsum_i64(mut xs: Vec<i64>) -> Vec<i64> {
    let mut total = 0i64;
    for x in &mut xs {
        total = total.wrapping_add(*x);
        *x = total;
    }
    xs
}

/// How often each byte value occurs in `bytes`: 256 counts, as a typed uint64
/// array. Takes a uint8 typed array, a byte string or a plain array.
#[export]
pub fn u8_histogram(bytes: &[u8]) -> Vec<u64> {
    let mut counts = vec![0u64; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    counts
}

/// Busy work for fuel and wall-time limits: `iterations` rounds of xorshift64,
/// summed. Each round depends on the last, so the loop cannot be folded away.
#[export]
pub fn spin(iterations: u64) -> u64 {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut sum = 0u64;
    for _ in 0..iterations {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        sum = sum.wrapping_add(state);
    }
    sum
}

/// Sleeps `ms` milliseconds (a WASI clock wait, not busy) and returns `ms`:
/// a task that takes time without using the CPU.
#[export]
pub fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

/// Allocates `mb` MiB, writing every byte (so every page is really touched), and
/// returns the sum of the first, middle and last bytes: `3 * 0xA5` for any
/// `mb > 0`. For memory-limit tests: past the limit, the allocation fails.
#[export]
pub fn alloc_mb(mb: u32) -> u64 {
    let Some(len) = usize::try_from(mb)
        .ok()
        .and_then(|mb| mb.checked_mul(1024 * 1024))
    else {
        panic!("alloc_mb: {mb} MiB does not fit in the address space");
    };
    let mut buffer = vec![0xa5u8; len];
    // Without this the optimizer may see through the buffer and never allocate it.
    std::hint::black_box(&mut buffer);
    match (buffer.first(), buffer.get(len / 2), buffer.last()) {
        (Some(&a), Some(&b), Some(&c)) => u64::from(a) + u64::from(b) + u64::from(c),
        _ => 0,
    }
}

/// The `n`th Fibonacci number (0, 1, 1, 2, ...), wrapping on overflow; 0 for
/// negative `n`. A plain numeric-ABI export: no SDK, no CBOR, Grid calls it with
/// the number directly.
#[unsafe(no_mangle)]
pub extern "C" fn fib(n: i64) -> i64 {
    let (mut a, mut b) = (0i64, 1i64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a
}

#[cfg(test)]
mod tests {
    //! Native tests: the functions are plain Rust, and the namespace is a
    //! thread-local map, so `cargo test` runs them on the host.
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(square(-7), 49);
        assert_eq!(add(2, 3), 5);
        assert_eq!(fib(0), 0);
        assert_eq!(fib(10), 55);
        assert_eq!(fib(-3), 0);
    }

    #[test]
    fn words_are_lowercased_alphanumeric_runs() {
        let counts = word_count("The cat; the HAT, it's 2 cats".to_owned());
        assert_eq!(counts.get("the"), Some(&2));
        assert_eq!(counts.get("s"), Some(&1));
        assert_eq!(counts.get("2"), Some(&1));
        assert_eq!(counts.len(), 7);
    }

    #[test]
    fn pi_is_seeded_and_close() {
        let estimate = pi(100_000, 42);
        assert_eq!(estimate, pi(100_000, 42));
        assert!((estimate - std::f64::consts::PI).abs() < 0.05, "{estimate}");
        assert_ne!(estimate, pi(100_000, 43));
    }

    #[test]
    fn negative_square_root_is_an_error() {
        assert_eq!(checked_sqrt(4.0), Ok(2.0));
        assert_eq!(
            checked_sqrt(-1.0),
            Err("cannot take the square root of a negative number: -1".to_owned())
        );
    }

    #[test]
    fn namespace_functions() {
        assert_eq!(bump("n".to_owned()), 1);
        assert_eq!(bump("n".to_owned()), 2);
        assert!(scale(2.0).is_err());
        stash("factor".to_owned(), Value::Integer(3));
        assert_eq!(scale(2.0), Ok(6.0));
        stash("factor".to_owned(), Value::from("x"));
        assert!(scale(2.0).is_err());
    }

    #[test]
    fn typed_array_functions() {
        assert_eq!(sum_f64(&[1.5, 2.5]), 4.0);
        assert_eq!(sum_f64(&[]), 0.0);
        assert_eq!(scale_f64(vec![1.0, -2.0], 3.0), [3.0, -6.0]);
        assert_eq!(cumsum_i64(vec![1, 2, 3]), [1, 3, 6]);
        assert_eq!(cumsum_i64(vec![i64::MAX, 1]), [i64::MAX, i64::MIN]);
        let counts = u8_histogram(&[0, 255, 255]);
        assert_eq!(counts.len(), 256);
        assert_eq!((counts[0], counts[1], counts[255]), (1, 0, 2));
    }

    #[test]
    fn limits_helpers() {
        assert_eq!(spin(0), 0);
        assert_ne!(spin(1000), spin(1001));
        assert_eq!(alloc_mb(1), 3 * 0xa5);
        assert_eq!(alloc_mb(0), 0);
    }
}
