//! [`NatsBus`] against a real `nats-server`: the [`Bus`] contract
//! (`semantics/`, the same checks the `LocalBus` passes, with `bus` and `peer`
//! on two connections), then what only a networked bus has: connecting to
//! nothing, the server going away and coming back, a corrupt blob store,
//! the record of blob uses as other NATS clients see it, messages dropped to
//! a slow consumer and counted.
//!
//! Every test starts its own server (`grid_bus::testing`) and stops it. When
//! `nats-server` is not installed, the tests fail, unless `GRID_SKIP_NATS` is
//! set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grid_bus::testing::NatsServer;
use grid_bus::{Bus, BusError, BusEvent, NatsBus, NatsOptions, SUBSCRIPTION_CAPACITY};
use grid_proto::BlobHash;
use tokio::sync::broadcast;

#[macro_use]
mod semantics;

use semantics::{PATIENCE, next, payload, with_patience};

async fn buses() -> Option<(Arc<dyn Bus>, Arc<dyn Bus>, NatsServer)> {
    let server = NatsServer::start_or_skip()?;
    let bus = NatsBus::connect(&server.url()).await.unwrap();
    let peer = NatsBus::connect(&server.url()).await.unwrap();
    Some((Arc::new(bus), Arc::new(peer), server))
}

bus_semantics!(buses);

/// Waits for `wanted`, skipping other events.
async fn wait_for(events: &mut broadcast::Receiver<BusEvent>, wanted: BusEvent) {
    let waiting = async {
        loop {
            match events.recv().await {
                Ok(event) if event == wanted => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("events ended"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap_or_else(|_| panic!("no {wanted:?} event within {PATIENCE:?}"));
}

#[tokio::test]
async fn connecting_where_no_server_listens_fails_at_once_and_says_where() {
    // A port no one listens on: bound a moment ago, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let started = Instant::now();
    let error = NatsBus::connect(&url).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "not at once");
    let BusError::Connect { url: named, reason } = &error else {
        panic!("not a connect error: {error:?}");
    };
    assert_eq!(named, &url);
    assert!(reason.contains("refused"), "{reason}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot connect to {url}: "))
    );

    let error = NatsBus::connect("nats://[not a url").await.unwrap_err();
    assert!(matches!(error, BusError::Connect { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_goes_away_and_comes_back() {
    let Some(mut server) = NatsServer::start_or_skip() else {
        return;
    };
    let stall_timeout = Duration::from_secs(1);
    let options = NatsOptions {
        stall_timeout,
        ..NatsOptions::default()
    };
    let bus = NatsBus::connect_with(&server.url(), options).await.unwrap();
    let mut events = bus.events();
    assert!(bus.is_connected());

    let mut service = bus.subscribe("svc.echo").await.unwrap();
    let responder = {
        let bus = bus.clone();
        tokio::spawn(async move {
            while let Some(request) = service.next().await {
                if let Some(reply) = request.reply {
                    // Fails while the server is away; the asker times out.
                    let _ = bus.publish(&reply, request.payload).await;
                }
            }
        })
    };
    let mut outage = bus.subscribe("outage.news").await.unwrap();
    let reply = bus.request("svc.echo", payload("before"), PATIENCE).await;
    assert_eq!(reply.map(|m| m.payload), Ok(payload("before")));

    server.stop();
    wait_for(&mut events, BusEvent::Disconnected).await;
    assert!(!bus.is_connected());

    // A request ends with its timeout, not later.
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    assert_eq!(
        bus.request("svc.echo", payload("during"), timeout).await,
        Err(BusError::Timeout {
            subject: "svc.echo".into(),
            timeout
        })
    );
    assert!(started.elapsed() < timeout + Duration::from_secs(1));
    // A publish is queued for after the reconnect.
    with_patience(bus.publish("outage.news", payload("queued")))
        .await
        .unwrap();
    // What needs the server gives up after the stall timeout.
    let started = Instant::now();
    assert!(matches!(bus.flush().await, Err(BusError::Stalled { .. })));
    assert!(matches!(
        bus.put_blob(payload("blob")).await,
        Err(BusError::Stalled { .. })
    ));
    assert!(matches!(
        bus.subscribe("too.late").await,
        Err(BusError::Stalled { .. })
    ));
    assert!(started.elapsed() < 3 * stall_timeout + Duration::from_secs(2));

    server.restart().unwrap();
    wait_for(&mut events, BusEvent::Connected).await;
    assert!(bus.is_connected());
    // `Connected` means that the subscriptions made before the outage are
    // registered again: the responder answers at once, from anywhere.
    let reply = bus.request("svc.echo", payload("after"), PATIENCE).await;
    assert_eq!(reply.map(|m| m.payload), Ok(payload("after")));
    let peer = NatsBus::connect(&server.url()).await.unwrap();
    let reply = peer
        .request("svc.echo", payload("from afar"), PATIENCE)
        .await;
    assert_eq!(reply.map(|m| m.payload), Ok(payload("from afar")));
    assert_eq!(next(&mut outage).await.payload, payload("queued"));
    let hash = bus.put_blob(payload("blob")).await.unwrap();
    assert_eq!(bus.get_blob(&hash).await, Ok(Some(payload("blob"))));

    // The responder holds a clone of the bus, so it is stopped rather than
    // left to end with the bus.
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_a_subscriptions_capacity_are_dropped_and_counted() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    assert_eq!(
        NatsOptions::default().subscription_capacity,
        SUBSCRIPTION_CAPACITY
    );
    let options = NatsOptions {
        subscription_capacity: 8,
        ..NatsOptions::default()
    };
    let bus = NatsBus::connect_with(&server.url(), options).await.unwrap();
    let peer = NatsBus::connect(&server.url()).await.unwrap();
    let mut events = bus.events();
    assert_eq!(bus.dropped_messages(), 0);
    // Not read until all have arrived: it holds 8, the other 92 are dropped.
    let mut slow = bus.subscribe("slow.consumer").await.unwrap();
    for i in 0..100 {
        peer.publish("slow.consumer", payload(&i.to_string()))
            .await
            .unwrap();
    }
    peer.flush().await.unwrap();
    wait_for(&mut events, BusEvent::SlowConsumer).await;
    // One event per dropped message; 92 events fit in async-nats's event
    // channel (128), so none is lost here and the count is exact.
    let started = Instant::now();
    while bus.dropped_messages() < 92 {
        assert!(started.elapsed() < PATIENCE, "{}", bus.dropped_messages());
        tokio::task::yield_now().await;
    }
    assert_eq!(bus.dropped_messages(), 92);
    for i in 0..8 {
        assert_eq!(next(&mut slow).await.payload, payload(&i.to_string()));
    }
    // What was dropped is gone: the next message is a new one.
    peer.publish("slow.consumer", payload("after"))
        .await
        .unwrap();
    assert_eq!(next(&mut slow).await.payload, payload("after"));
    assert_eq!(bus.dropped_messages(), 92);
    assert_eq!(peer.dropped_messages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_bus_ends_its_subscriptions() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let bus = NatsBus::connect(&server.url()).await.unwrap();
    let mut subscription = bus.subscribe("a.>").await.unwrap();
    bus.publish("a.b", payload("0")).await.unwrap();
    assert_eq!(next(&mut subscription).await.payload, payload("0"));
    drop(bus);
    assert_eq!(with_patience(subscription.next()).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_past_the_budget_are_persisted_and_outlive_their_offerer() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let options = NatsOptions {
        offer_budget: 1024,
        ..NatsOptions::default()
    };
    let bus = NatsBus::connect_with(&server.url(), options).await.unwrap();
    let peer = NatsBus::connect(&server.url()).await.unwrap();
    let (older, newer) = (payload(&"1".repeat(800)), payload(&"2".repeat(800)));
    let older_hash = bus.offer_blob(older.clone()).await.unwrap();
    // Past the budget: the older one goes to the bucket in the background.
    let newer_hash = bus.offer_blob(newer.clone()).await.unwrap();
    let jetstream = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    // The bucket itself may not exist until the background write makes it.
    let persisted = async {
        loop {
            if let Ok(store) = jetstream.get_object_store(grid_bus::BLOB_BUCKET).await
                && store.info(older_hash.to_hex()).await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    with_patience(persisted).await;
    drop(bus);
    assert_eq!(peer.get_blob(&older_hash).await, Ok(Some(older)));
    // The newer one was only in the offerer's memory: gone with it (once
    // its connection has drained), as a plain "not there", not a hang.
    let gone = async {
        while peer.get_blob(&newer_hash).await != Ok(None) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    with_patience(gone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_blob_is_an_error_not_data() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let bus = NatsBus::connect(&server.url()).await.unwrap();
    // Creates the bucket.
    bus.put_blob(payload("honest")).await.unwrap();

    // Someone stores other bytes under the name of a hash.
    let client = async_nats::connect(server.url()).await.unwrap();
    let store = async_nats::jetstream::new(client)
        .get_object_store(grid_bus::BLOB_BUCKET)
        .await
        .unwrap();
    let claimed = BlobHash::of(b"what was asked for");
    let mut forged: &[u8] = b"something else";
    store
        .put(claimed.to_hex().as_str(), &mut forged)
        .await
        .unwrap();

    assert_eq!(
        bus.get_blob(&claimed).await,
        Err(BusError::BlobMismatch {
            expected: claimed,
            actual: BlobHash::of(b"something else"),
        })
    );
}

/// The record of uses is plain JetStream key-value data that any NATS client
/// can read and write: the hex sha256 as the key, microseconds since the
/// epoch as decimal text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_uses_are_decimal_microseconds_under_the_hex_hash() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let bus = NatsBus::connect(&server.url()).await.unwrap();
    let hash = BlobHash::of(b"used");
    let before = grid_proto::Timestamp::now();
    bus.touch_blob(&hash).await.unwrap();

    let client = async_nats::connect(server.url()).await.unwrap();
    let uses = async_nats::jetstream::new(client)
        .get_key_value(grid_bus::BLOB_USES_BUCKET)
        .await
        .unwrap();
    let value = uses.get(hash.to_hex()).await.unwrap().expect("recorded");
    let micros: u64 = std::str::from_utf8(&value).unwrap().parse().unwrap();
    assert!(micros >= before.as_micros());

    // Written by someone else: read back; what is not a use is ignored.
    let other = BlobHash::of(b"used elsewhere");
    uses.put(other.to_hex(), "1234".into()).await.unwrap();
    uses.put(BlobHash::of(b"x").to_hex(), "yesterday".into())
        .await
        .unwrap();
    uses.put("not-a-hash", "5678".into()).await.unwrap();
    let read = bus.blob_uses().await.unwrap();
    assert_eq!(read.len(), 2, "{read:?}");
    assert_eq!(read[&hash].as_micros(), micros);
    assert_eq!(read[&other], grid_proto::Timestamp(1234));
}

#[test]
fn a_stopped_server_refuses_and_a_restarted_one_listens_on_the_same_port() {
    let Some(mut server) = NatsServer::start_or_skip() else {
        return;
    };
    let address = ("127.0.0.1", server.port());
    assert!(std::net::TcpStream::connect(address).is_ok());
    server.stop();
    assert!(std::net::TcpStream::connect(address).is_err());
    server.restart().unwrap();
    assert!(std::net::TcpStream::connect(address).is_ok());
    assert!(server.url().ends_with(&format!(":{}", server.port())));
}
