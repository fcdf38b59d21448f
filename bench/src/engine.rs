//! Engine benchmark: what one task costs inside an engine slot.
//!
//! Prints the median and p99 of a fresh instance plus a call of a numeric
//! export (the WAT example), the same through the CBOR ABI (Rust guest), a
//! CBOR round trip of a 1 KiB value, and the time to load a module from the
//! compiled cache against compiling it. Run in release:
//! `cargo run --release -p grid-bench --bin engine-bench`.
//! Targets (issue 2): fresh instance + numeric call < 10 us median; cached
//! load >= 50x faster than compiling.

use std::time::{Duration, Instant};

use grid_host::{EngineConfig, Runtime};
use grid_proto::{EngineId, Task, Value};

fn main() {
    let runtime = Runtime::new(EngineConfig::default().cache_dir(None)).expect("runtime");
    let mut engine = runtime.engine(EngineId(0));
    let wat = std::fs::read(grid_examples::wat_square()).expect("the WAT example");
    let square = runtime.load(&wat).expect("loads");

    println!("grid engine benchmark (release build, one engine slot, pooling allocator)");
    let numeric = Task::call(square, "square", vec![Value::from(12)]);
    let d = sample(20_000, || {
        engine.run(&numeric);
    });
    report(
        "fresh instance + numeric call (wat square)",
        &d,
        Some(Duration::from_micros(10)),
    );

    let Some(rust) = grid_examples::require(grid_examples::rust_guest()) else {
        return;
    };
    let guest = runtime.load(&rust).expect("rust guest loads");
    let cbor = Task::call(guest, "square", vec![Value::from(12)]);
    assert!(engine.run(&cbor).value().is_ok());
    let d = sample(20_000, || {
        engine.run(&cbor);
    });
    report("fresh instance + CBOR call (rust square)", &d, None);

    let kib: Vec<Value> = (0..128)
        .map(|i| Value::from(format!("item{i:03}")))
        .collect();
    let echo = Task::call(guest, "echo", vec![Value::Array(kib)]);
    assert!(engine.run(&echo).value().is_ok());
    let d = sample(10_000, || {
        engine.run(&echo);
    });
    report(
        "fresh instance + CBOR round trip of ~1 KiB (rust echo)",
        &d,
        None,
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig::default().cache_dir(Some(dir.path().into()));
    let hash = Runtime::new(config.clone())
        .expect("runtime")
        .load(&rust)
        .expect("compiles");
    let mut compiles = Vec::new();
    let mut loads = Vec::new();
    for _ in 0..10 {
        let cold = Runtime::new(EngineConfig::default().cache_dir(None)).expect("runtime");
        let t = Instant::now();
        cold.load(&rust).expect("compiles");
        compiles.push(t.elapsed());
        let warm = Runtime::new(config.clone()).expect("runtime");
        let t = Instant::now();
        assert!(warm.load_cached(&hash));
        loads.push(t.elapsed());
    }
    compiles.sort();
    loads.sort();
    report(
        &format!("compile rust guest ({} KiB)", rust.len() / 1024),
        &compiles,
        None,
    );
    report("load it from the compiled cache", &loads, None);
    let ratio = median(&compiles).as_secs_f64() / median(&loads).as_secs_f64();
    println!(
        "  cache load is {ratio:.0}x faster than compiling (target >= 50x): {}",
        if ratio >= 50.0 { "met" } else { "MISSED" }
    );
}

/// Runs `f` `n` times after a warm-up and returns the sorted durations.
fn sample(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..n / 10 {
        f();
    }
    let mut out: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    out.sort();
    out
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn report(what: &str, sorted: &[Duration], target: Option<Duration>) {
    let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
    let med = median(sorted);
    print!("{what:<58} median {:>10.1?}  p99 {:>10.1?}", med, p99);
    match target {
        Some(t) => println!(
            "  (target < {t:?}: {})",
            if med < t { "met" } else { "MISSED" }
        ),
        None => println!(),
    }
}
