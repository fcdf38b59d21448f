//! Cluster benchmark: the whole path (client -> bus -> controller -> engine
//! -> client) on 2 engines, on the in-process LocalBus or on a real
//! nats-server (started for the run, on loopback).
//!
//! Prints apply_sync round-trip p50/p99 (load-balanced and direct), a
//! load-balanced map of 10,000 unchunked trivial tasks (tasks/s), a chunked
//! map of 1,000,000 items (items/s) and a 10 MB push (MB/s); over NATS also
//! a raw async-nats request-reply round trip measured in the same run.
//! Run in release:
//!
//! ```text
//! cargo run --release -p grid-bench --bin cluster-bench            # LocalBus
//! cargo run --release -p grid-bench --bin cluster-bench -- nats    # nats-server
//! cargo run --release -p grid-bench --bin cluster-bench -- local chunked   # one figure
//! ```
//!
//! Targets: local (issue 3) p50 <= 50 us, >= 50,000 tasks/s, >= 1,000,000
//! items/s; NATS (issue 4) p50 <= 2x the raw round trip, >= 15,000 tasks/s,
//! 10 MB push >= 400 MB/s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use grid_client::{EngineId, Function, LoadBalancedView, Value};
use grid_tests::Backend;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the `grid` binary does.
    grid_bus::tune_allocator();
    let mut args = std::env::args().skip(1);
    let backend = match args.next().as_deref() {
        None | Some("local") => Backend::Local,
        Some("nats") => Backend::Nats,
        Some(other) => return Err(format!("unknown bus {other:?}: use `local` or `nats`").into()),
    };
    // `cluster-bench BUS WORD` runs only the figures whose name contains WORD.
    let only = args.next().unwrap_or_default();
    let wanted = |name: &str| name.contains(&only);

    let cluster = grid_tests::cluster(backend, 2);
    let square = cluster
        .load_module(grid_examples::wat_square())?
        .func("square");
    println!("grid cluster benchmark (release build, 2 engines, {backend:?} bus)");

    let mut raw = None;
    if backend == Backend::Nats && wanted("round trip") {
        raw = Some(raw_nats_round_trip()?);
    }
    let lb = cluster.load_balanced_view();
    let direct = cluster.view_one(EngineId(0));
    if wanted("round trip") {
        let target = match raw {
            Some(raw) => (2 * raw, "2x raw NATS"),
            None => (Duration::from_micros(50), "50us"),
        };
        round_trip("apply_sync round trip, load-balanced", target, || {
            lb.apply_sync(&square, [Value::from(3)])
        })?;
        round_trip("apply_sync round trip, direct", target, || {
            direct.apply_sync(&square, [Value::from(3)])
        })?;
    }
    if wanted("unchunked") {
        let target = if backend == Backend::Nats {
            15_000.0
        } else {
            50_000.0
        };
        unchunked(&lb, &square, target)?;
    }
    if wanted("chunked") {
        chunked(&lb, &square)?;
    }
    if wanted("push") {
        let target = if backend == Backend::Nats {
            Some(400.0)
        } else {
            None
        };
        push_10mb(&cluster, target)?;
    }
    Ok(())
}

/// Raw async-nats request-reply p50 on a server of its own, the floor that
/// Grid's round trip over NATS is compared with.
fn raw_nats_round_trip() -> Result<Duration, Box<dyn std::error::Error>> {
    use futures_util::StreamExt;
    let server = grid_bus::testing::NatsServer::start()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let p50 = rt.block_on(async {
        let responder = async_nats::connect(server.url()).await?;
        let asker = async_nats::connect(server.url()).await?;
        let mut sub = responder.subscribe("bench.echo").await?;
        responder.flush().await?;
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                if let Some(reply) = msg.reply {
                    let _ = responder.publish(reply, msg.payload).await;
                }
            }
        });
        let payload = bytes::Bytes::from_static(b"ping");
        for _ in 0..500 {
            asker.request("bench.echo", payload.clone()).await?;
        }
        let mut samples = Vec::with_capacity(5_000);
        for _ in 0..5_000 {
            let t = Instant::now();
            asker.request("bench.echo", payload.clone()).await?;
            samples.push(t.elapsed());
        }
        samples.sort();
        let (p50, p99) = (
            samples[samples.len() / 2],
            samples[samples.len() * 99 / 100],
        );
        println!(
            "{:<44} p50 {p50:>9.1?}  p99 {p99:>9.1?}",
            "raw async-nats request-reply"
        );
        Ok::<_, Box<dyn std::error::Error>>(p50)
    })?;
    Ok(p50)
}

fn round_trip(
    name: &str,
    (target, target_name): (Duration, &str),
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
        "{name:<44} p50 {p50:>9.1?}  p99 {p99:>9.1?}  (target p50 <= {target_name}: {})",
        verdict(p50 <= target)
    );
    Ok(())
}

fn unchunked(
    lb: &LoadBalancedView,
    square: &Function,
    target: f64,
) -> Result<(), grid_client::Error> {
    let items: Vec<Value> = (0..10_000).map(Value::from).collect();
    lb.map_sync(square, vec![items.clone()])?;
    let t = Instant::now();
    let out = lb.map_sync(square, vec![items])?;
    let rate = out.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "{:<44} {rate:>10.0} tasks/s  (target >= {target:.0}: {})",
        "load-balanced map, 10,000 unchunked tasks",
        verdict(rate >= target)
    );
    Ok(())
}

fn chunked(lb: &LoadBalancedView, square: &Function) -> Result<(), grid_client::Error> {
    let items: Vec<Value> = (0..1_000_000).map(Value::from).collect();
    let chunked = lb.clone().chunksize(10_000);
    let t = Instant::now();
    let out = chunked.map_sync(square, vec![items])?;
    let rate = out.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "{:<44} {rate:>10.0} items/s  (target >= 1,000,000: {})",
        "load-balanced map, 1,000,000 items in chunks of 10,000",
        verdict(rate >= 1_000_000.0)
    );
    Ok(())
}

fn push_10mb(client: &grid_client::Client, target: Option<f64>) -> Result<(), grid_client::Error> {
    let e0 = client.view_one(EngineId(0));
    let mut samples = Vec::new();
    for round in 0..5u8 {
        // Different bytes each time: a blob already stored would cost nothing.
        let big = Value::Bytes(
            (0..10_000_000u32)
                .map(|i| (i % 251) as u8 ^ round)
                .collect(),
        );
        let mut values = BTreeMap::new();
        values.insert("big".to_string(), big);
        let t = Instant::now();
        e0.push(values)?.get(None)?;
        samples.push(t.elapsed());
    }
    samples.sort();
    let rate = 10.0 / samples[samples.len() / 2].as_secs_f64();
    match target {
        Some(target) => println!(
            "{:<44} {rate:>10.0} MB/s  (target >= {target:.0}: {})",
            "push of 10 MB to one engine",
            verdict(rate >= target)
        ),
        None => println!("{:<44} {rate:>10.0} MB/s", "push of 10 MB to one engine"),
    }
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
