//! Local cluster benchmark: the whole path (client -> LocalBus -> controller
//! -> engine -> client) on an embedded cluster of 2 engines.
//!
//! Prints apply_sync round-trip p50/p99 (load-balanced and direct), a
//! load-balanced map of 10,000 unchunked trivial tasks (tasks/s) and a
//! chunked map of 1,000,000 items (items/s). Run in release:
//! `cargo run --release -p grid-bench --bin local-bench`.
//! Targets (issue 3): p50 <= 50 us, >= 50,000 tasks/s, >= 1,000,000 items/s.

use std::time::{Duration, Instant};

use grid_client::{Client, EngineId, Value};

fn main() -> Result<(), grid_client::Error> {
    // `local-bench WORD` runs only the figures whose name contains WORD.
    let only = std::env::args().nth(1).unwrap_or_default();
    let wanted = |name: &str| name.contains(&only);
    let client = Client::local(2)?;
    let square = client
        .load_module(grid_examples::wat_square())?
        .func("square");
    println!("grid local cluster benchmark (release build, 2 engines, LocalBus)");

    let lb = client.load_balanced_view();
    let direct = client.view_one(EngineId(0));
    if wanted("round trip") {
        round_trip("apply_sync round trip, load-balanced", || {
            lb.apply_sync(&square, [Value::from(3)])
        })?;
        round_trip("apply_sync round trip, direct", || {
            direct.apply_sync(&square, [Value::from(3)])
        })?;
    }

    if wanted("unchunked") {
        unchunked(&lb, &square)?;
    }
    if wanted("chunked") {
        chunked(&lb, &square)?;
    }
    Ok(())
}

fn unchunked(
    lb: &grid_client::LoadBalancedView,
    square: &grid_client::Function,
) -> Result<(), grid_client::Error> {
    let items: Vec<Value> = (0..10_000).map(Value::from).collect();
    lb.map_sync(square, vec![items.clone()])?;
    let t = Instant::now();
    let out = lb.map_sync(square, vec![items])?;
    let rate = out.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "{:<44} {rate:>10.0} tasks/s  (target >= 50,000: {})",
        "load-balanced map, 10,000 unchunked tasks",
        verdict(rate >= 50_000.0)
    );

    Ok(())
}

fn chunked(
    lb: &grid_client::LoadBalancedView,
    square: &grid_client::Function,
) -> Result<(), grid_client::Error> {
    let items: Vec<Value> = (0..1_000_000).map(Value::from).collect();
    let chunked = lb.clone().chunksize(10_000);
    let t = Instant::now();
    let out = chunked.map_sync(square, vec![items])?;
    let rate = out.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "{:<44} {rate:>10.0} items/s  (target >= 1,000,000: {})",
        "load-balanced map, 1,000,000 items, chunks of 10,000",
        verdict(rate >= 1_000_000.0)
    );
    Ok(())
}

fn round_trip(
    name: &str,
    run: impl Fn() -> Result<Value, grid_client::Error>,
) -> Result<(), grid_client::Error> {
    for _ in 0..500 {
        run()?;
    }
    let mut samples = Vec::with_capacity(5_000);
    for _ in 0..5_000 {
        let t = Instant::now();
        run()?;
        samples.push(t.elapsed());
    }
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    println!(
        "{name:<44} p50 {p50:>9.1?}  p99 {p99:>9.1?}  (target p50 <= 50us: {})",
        verdict(p50 <= Duration::from_micros(50))
    );
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
