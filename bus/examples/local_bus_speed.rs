//! How fast is the `LocalBus`? A measurement, not a test.
//!
//! Prints, for one subscriber: messages per second when one publisher sends as
//! fast as it can, publish-to-deliver latency when the subscriber is parked
//! waiting (the cost of a wake-up included), and the round trip of `request`
//! to a responder task. Run it in release mode, on an otherwise idle machine:
//!
//! ```text
//! cargo run --release -p grid-bus --example local_bus_speed
//! ```
//!
//! It checks nothing and must not be used as a gate: figures depend on the
//! machine.

use std::time::{Duration, Instant};

use bytes::Bytes;
use grid_bus::{Bus, LocalBus};
use tokio::sync::mpsc;

const THROUGHPUT_MESSAGES: usize = 1_000_000;
const LATENCY_SAMPLES: usize = 20_000;
const PAYLOAD: &[u8] = &[0u8; 64];

fn main() -> Outcome {
    let multi_thread = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("== multi-thread runtime (2 workers), measured from `block_on`");
    multi_thread.block_on(measure_all())?;
    println!("== multi-thread runtime (2 workers), measured from a worker task");
    multi_thread.block_on(async { tokio::spawn(measure_all()).await })??;

    let current_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!("== current-thread runtime");
    current_thread.block_on(measure_all())?;
    Ok(())
}

type Outcome = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn measure_all() -> Outcome {
    throughput().await?;
    delivery_latency().await?;
    request_round_trip().await
}

/// One publisher sending as fast as it can to one subscriber task.
async fn throughput() -> Outcome {
    let bus = LocalBus::new();
    let mut subscription = bus.subscribe("grid.default.result.client").await?;
    let counter = tokio::spawn(async move {
        let mut received = 0;
        while received < THROUGHPUT_MESSAGES {
            if subscription.next().await.is_none() {
                break;
            }
            received += 1;
        }
        received
    });
    let payload = Bytes::from_static(PAYLOAD);
    let start = Instant::now();
    for _ in 0..THROUGHPUT_MESSAGES {
        bus.publish("grid.default.result.client", payload.clone())
            .await?;
    }
    let published = start.elapsed();
    let received = counter.await?;
    let delivered = start.elapsed();
    println!(
        "throughput: {received} msgs, publish {:.0} ns/msg, delivered {:.2} M msgs/s",
        published.as_nanos() as f64 / THROUGHPUT_MESSAGES as f64,
        received as f64 / delivered.as_secs_f64() / 1e6,
    );
    Ok(())
}

/// From just before `publish` to the moment the parked subscriber task has
/// the message, one message at a time.
async fn delivery_latency() -> Outcome {
    let bus = LocalBus::new();
    let mut subscription = bus.subscribe("grid.default.engine.*.task").await?;
    let (done, mut arrivals) = mpsc::unbounded_channel::<Instant>();
    tokio::spawn(async move {
        while subscription.next().await.is_some() {
            if done.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    let payload = Bytes::from_static(PAYLOAD);
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let sent = Instant::now();
        bus.publish("grid.default.engine.1.task", payload.clone())
            .await?;
        let arrived = arrivals.recv().await.ok_or("subscriber gone")?;
        samples.push(arrived - sent);
    }
    report("publish->deliver", &mut samples);
    Ok(())
}

/// `request` to a responder task that echoes, one at a time.
async fn request_round_trip() -> Outcome {
    let bus = LocalBus::new();
    let mut service = bus
        .queue_subscribe("grid.default.hub.engines", "hub")
        .await?;
    let responder = bus.clone();
    tokio::spawn(async move {
        while let Some(request) = service.next().await {
            if let Some(reply) = request.reply {
                // A failed reply is the requester's timeout to report.
                let _ = responder.publish(&reply, request.payload).await;
            }
        }
    });
    let payload = Bytes::from_static(PAYLOAD);
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let sent = Instant::now();
        bus.request(
            "grid.default.hub.engines",
            payload.clone(),
            Duration::from_secs(5),
        )
        .await?;
        samples.push(sent.elapsed());
    }
    report("request round trip", &mut samples);
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
        samples.get(index).copied().unwrap_or_default()
    };
    println!(
        "{what}: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us ({} samples)",
        at(0.50).as_nanos() as f64 / 1e3,
        at(0.90).as_nanos() as f64 / 1e3,
        at(0.99).as_nanos() as f64 / 1e3,
        samples.len(),
    );
}
