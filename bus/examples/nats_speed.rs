//! How fast is the `NatsBus`? A measurement, not a test.
//!
//! Starts a private `nats-server` (it must be on `PATH`) and prints, over
//! loopback: the request-reply round trip of raw async-nats (the floor), the
//! same through `NatsBus::request` (what Grid pays on top), publish-to-deliver
//! latency to one parked subscriber on another connection, publish
//! throughput to one subscriber, the cost of `subscribe` (which waits for a
//! round trip through the server, so that the subscription is registered when
//! it returns), a 10 MB blob through the JetStream object store, and 10 MB
//! blobs offered by one connection and fetched by the other (directly over
//! TCP). Run it in release mode, on an otherwise idle machine (`blobs` after
//! `--` for the blob figures only):
//!
//! ```text
//! cargo run --release -p grid-bus --features testing --example nats_speed
//! ```
//!
//! It checks nothing and must not be used as a gate: figures depend on the
//! machine.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use grid_bus::testing::NatsServer;
use grid_bus::{Bus, BusError, NatsBus};

const WARM_UP: usize = 500;
const SAMPLES: usize = 5_000;
const THROUGHPUT_BATCH: usize = 20_000;
const THROUGHPUT_BATCHES: usize = 10;
const SUBSCRIBE_SAMPLES: usize = 1_000;
const BLOB_BYTES: usize = 10 * 1024 * 1024;
const PAYLOAD: &[u8] = &[0u8; 64];

type Outcome = Result<(), Box<dyn std::error::Error>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Outcome {
    let server = NatsServer::start()?;
    let url = server.url();
    println!("nats-server at {url}; {SAMPLES} sequential samples each, 64-byte payloads");

    let near = NatsBus::connect(&url).await?;
    let far = NatsBus::connect(&url).await?;
    // `nats_speed blobs`: the blob figures only.
    if std::env::args().nth(1).as_deref() == Some("blobs") {
        return blobs(&near, &far).await;
    }
    raw_request_reply(&url, "speed.raw.first").await?;
    bus_request_reply(&near, &far).await?;
    // Again, as the machine may have been busy the first time.
    raw_request_reply(&url, "speed.raw.again").await?;
    publish_to_deliver(&near, &far).await?;
    throughput(&near, &far).await?;
    subscribe_cost(&near).await?;
    blobs(&near, &far).await?;
    Ok(())
}

/// The floor: async-nats alone, a responder on one connection, the asker on
/// another.
async fn raw_request_reply(url: &str, subject: &'static str) -> Outcome {
    let responder = async_nats::connect(url).await?;
    let mut service = responder.subscribe(subject).await?;
    tokio::spawn(async move {
        while let Some(request) = poll_fn(|cx| Pin::new(&mut service).poll_next(cx)).await {
            if let Some(reply) = request.reply {
                let _ = responder.publish(reply, request.payload).await;
            }
        }
    });
    let asker = async_nats::connect(url).await?;
    // Raw async-nats cannot tell when the subscription is registered: ask
    // until someone answers.
    while asker
        .request(subject, Bytes::from_static(PAYLOAD))
        .await
        .is_err()
    {}
    let samples = sample(async || {
        asker
            .request(subject, Bytes::from_static(PAYLOAD))
            .await
            .map(drop)
            .map_err(|error| BusError::Other(error.to_string()))
    })
    .await?;
    report("raw async-nats request-reply", &samples);
    Ok(())
}

async fn bus_request_reply(near: &NatsBus, far: &NatsBus) -> Outcome {
    let mut service = near.subscribe("speed.bus").await?;
    let responder = near.clone();
    tokio::spawn(async move {
        while let Some(request) = service.next().await {
            if let Some(reply) = request.reply {
                let _ = responder.publish(&reply, request.payload).await;
            }
        }
    });
    let timeout = Duration::from_secs(5);
    let samples = sample(async || {
        far.request("speed.bus", Bytes::from_static(PAYLOAD), timeout)
            .await
            .map(drop)
    })
    .await?;
    report("NatsBus request-reply", &samples);
    Ok(())
}

/// One message at a time, from `far`'s publish to `near`'s parked subscriber.
async fn publish_to_deliver(near: &NatsBus, far: &NatsBus) -> Outcome {
    let mut subscription = near.subscribe("speed.latency").await?;
    let samples = sample(async || {
        far.publish("speed.latency", Bytes::from_static(PAYLOAD))
            .await?;
        subscription.next().await.map(drop).ok_or(BusError::Closed)
    })
    .await?;
    report("NatsBus publish -> deliver", &samples);
    Ok(())
}

/// Batches below async-nats's 65,536-message subscription buffer, so that
/// nothing is dropped as a slow consumer.
async fn throughput(near: &NatsBus, far: &NatsBus) -> Outcome {
    let mut subscription = near.subscribe("speed.throughput").await?;
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let (batch_done, mut wait_batch) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while subscription.next().await.is_some() {
            let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
            if count.is_multiple_of(THROUGHPUT_BATCH) && batch_done.send(()).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    for _ in 0..THROUGHPUT_BATCHES {
        for _ in 0..THROUGHPUT_BATCH {
            far.publish("speed.throughput", Bytes::from_static(PAYLOAD))
                .await?;
        }
        far.flush().await?;
        wait_batch.recv().await.ok_or("the receiver stopped")?;
    }
    let elapsed = started.elapsed();
    let total = received.load(Ordering::Relaxed);
    println!(
        "{:<36} {:>10.0} msg/s ({total} messages of {} B in {elapsed:.2?})",
        "NatsBus publish, one subscriber",
        total as f64 / elapsed.as_secs_f64(),
        PAYLOAD.len(),
    );
    Ok(())
}

async fn subscribe_cost(bus: &NatsBus) -> Outcome {
    let mut samples = Vec::with_capacity(SUBSCRIBE_SAMPLES);
    for i in 0..SUBSCRIBE_SAMPLES {
        let started = Instant::now();
        let subscription = bus.subscribe(&format!("speed.subscribe.{i}")).await?;
        samples.push(started.elapsed());
        drop(subscription);
    }
    report("NatsBus subscribe (registered)", &samples);
    Ok(())
}

async fn blobs(near: &NatsBus, far: &NatsBus) -> Outcome {
    let blob: Bytes = (0..BLOB_BYTES).map(|i| (i % 251) as u8).collect();
    let megabytes = BLOB_BYTES as f64 / 1e6;
    let started = Instant::now();
    let hash = near.put_blob(blob.clone()).await?;
    let put = started.elapsed();
    let started = Instant::now();
    let back = far.get_blob(&hash).await?.ok_or("the blob is missing")?;
    let get = started.elapsed();
    assert_eq!(back.len(), blob.len());
    let started = Instant::now();
    near.put_blob(blob).await?;
    let again = started.elapsed();
    println!(
        "{:<36} put {put:.2?} ({:.0} MB/s), get {get:.2?} ({:.0} MB/s), put again {again:.2?}",
        "blob of 10 MiB (sha256 included)",
        megabytes / put.as_secs_f64(),
        megabytes / get.as_secs_f64(),
    );
    for round in 0..10u8 {
        let blob: Bytes = (0..BLOB_BYTES)
            .map(|i| (i % 251) as u8 ^ round ^ 0x55)
            .collect();
        let started = Instant::now();
        let hash = near.offer_blob(blob.clone()).await?;
        let offer = started.elapsed();
        let started = Instant::now();
        let back = far
            .get_blob(&hash)
            .await?
            .ok_or("the offered blob is missing")?;
        let get = started.elapsed();
        assert_eq!(back, blob);
        near.release_blob(&hash);
        println!(
            "{:<36} offer {offer:.2?}, fetch {get:.2?} ({:.0} MB/s end to end)",
            "offered blob of 10 MiB (sha256 incl.)",
            megabytes / (offer + get).as_secs_f64(),
        );
    }
    Ok(())
}

/// Times `SAMPLES` sequential runs of `once`, after `WARM_UP` untimed ones.
async fn sample(
    mut once: impl AsyncFnMut() -> Result<(), BusError>,
) -> Result<Vec<Duration>, BusError> {
    for _ in 0..WARM_UP {
        once().await?;
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        once().await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

fn report(what: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = |quantile: f64| sorted[((sorted.len() - 1) as f64 * quantile) as usize];
    let total: Duration = sorted.iter().sum();
    println!(
        "{what:<36} p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}  ({:.0}/s sequential)",
        at(0.50),
        at(0.99),
        at(1.0),
        sorted.len() as f64 / total.as_secs_f64(),
    );
}
