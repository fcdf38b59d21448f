//! The [`Bus`] contract, written once and run against every implementation.
//!
//! Each check takes two handles on one bus: `bus` and `peer`, a second
//! client of the same cluster (for NATS, a second connection; for a
//! `LocalBus`, a clone). Subscribers mostly live on `bus` and publishers on
//! `peer`, so the NATS run proves that messages cross connections. To show
//! that something did *not* arrive without sleeping, a check first sends a
//! marker from the same publisher and waits for it ([`settle`]): NATS keeps
//! one publisher's messages in order to each subscriber, so anything
//! published before the marker has been handed over by then.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use grid_bus::{Bus, BusError, Message, Subscription, validate_subject};
use grid_proto::{BlobHash, Timestamp};

/// Generous: only reached when a test is failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The next message, failing the test if none comes within `PATIENCE`.
pub async fn next(subscription: &mut Subscription) -> Message {
    match tokio::time::timeout(PATIENCE, subscription.next()).await {
        Ok(Some(message)) => message,
        Ok(None) => panic!("subscription closed"),
        Err(_) => panic!("no message within {PATIENCE:?}"),
    }
}

/// A message already handed to the subscription, without waiting.
/// Unconstrained, or tokio's cooperative budget would answer "not yet" after
/// 128 polls in one task.
pub async fn delivered(subscription: &mut Subscription) -> Option<Message> {
    let poll_once = std::future::poll_fn(|cx| match Pin::new(&mut *subscription).poll_next(cx) {
        Poll::Ready(message) => Poll::Ready(message),
        Poll::Pending => Poll::Ready(None),
    });
    tokio::task::unconstrained(poll_once).await
}

/// Everything already handed to the subscription.
pub async fn drain(subscription: &mut Subscription) -> Vec<Message> {
    let mut messages = Vec::new();
    while let Some(message) = delivered(subscription).await {
        messages.push(message);
    }
    messages
}

/// Waits until everything `from` published so far has been handed to the
/// subscriptions of `to`: publishes a marker after it and waits for it.
pub async fn settle(from: &dyn Bus, to: &dyn Bus) {
    let marker = to.new_inbox();
    let mut markers = to.subscribe(&marker).await.unwrap();
    from.publish(&marker, Bytes::new()).await.unwrap();
    next(&mut markers).await;
}

pub fn payload(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

pub fn index_of(message: &Message) -> usize {
    let text = std::str::from_utf8(&message.payload).unwrap();
    text.parse().unwrap()
}

pub async fn with_patience<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("not done within the patience timeout")
}

fn subjects(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.subject.as_str()).collect()
}

pub async fn fan_out(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let mut exact = bus.subscribe("grid.default.events").await.unwrap();
    let mut one = bus.subscribe("grid.default.*").await.unwrap();
    let mut rest = bus.subscribe("grid.>").await.unwrap();
    let mut other = bus.subscribe("grid.other.>").await.unwrap();

    peer.publish("grid.default.events", payload("up"))
        .await
        .unwrap();
    peer.publish("grid.other.events", payload("elsewhere"))
        .await
        .unwrap();

    for subscription in [&mut exact, &mut one, &mut rest] {
        let message = next(subscription).await;
        assert_eq!(message.subject, "grid.default.events");
        assert_eq!(message.payload, payload("up"));
        assert_eq!(message.reply, None);
    }
    assert_eq!(next(&mut other).await.payload, payload("elsewhere"));
    assert_eq!(next(&mut rest).await.payload, payload("elsewhere"));
    settle(&*peer, &*bus).await;
    for subscription in [&mut exact, &mut one, &mut rest, &mut other] {
        assert_eq!(drain(subscription).await, vec![]);
    }
}

pub async fn wildcards(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let mut one = bus.subscribe("w.*").await.unwrap();
    let mut rest = bus.subscribe("w.>").await.unwrap();
    let mut middle = bus.subscribe("w.*.end").await.unwrap();
    let mut exact = bus.subscribe("w").await.unwrap();
    for subject in ["w", "w.a", "w.a.b", "w.a.end", "x.a", "w.end"] {
        peer.publish(subject, Bytes::new()).await.unwrap();
    }
    settle(&*peer, &*bus).await;
    assert_eq!(subjects(&drain(&mut one).await), ["w.a", "w.end"]);
    assert_eq!(
        subjects(&drain(&mut rest).await),
        ["w.a", "w.a.b", "w.a.end", "w.end"]
    );
    assert_eq!(subjects(&drain(&mut middle).await), ["w.a.end"]);
    assert_eq!(subjects(&drain(&mut exact).await), ["w"]);
}

pub async fn queue_groups(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(bus.queue_subscribe("jobs.>", "workers").await.unwrap());
    }
    // A member with another pattern is in the same group (groups are keyed
    // by name).
    workers.push(bus.queue_subscribe("jobs.*", "workers").await.unwrap());
    let mut auditor = bus.queue_subscribe("jobs.run", "auditors").await.unwrap();
    let mut watcher = bus.subscribe("jobs.run").await.unwrap();

    const COUNT: usize = 1000;
    for i in 0..COUNT {
        peer.publish("jobs.run", payload(&i.to_string()))
            .await
            .unwrap();
    }
    settle(&*peer, &*bus).await;

    let mut seen = HashSet::new();
    for worker in &mut workers {
        let got = drain(worker).await;
        assert!(!got.is_empty(), "a worker got nothing");
        for message in got {
            assert!(seen.insert(index_of(&message)), "delivered twice");
        }
    }
    assert_eq!(seen.len(), COUNT, "each message to exactly one worker");
    for subscription in [&mut auditor, &mut watcher] {
        let indexes: Vec<usize> = drain(subscription).await.iter().map(index_of).collect();
        assert_eq!(indexes, (0..COUNT).collect::<Vec<_>>());
    }
}

pub async fn queue_group_survives_losing_members(bus: Arc<dyn Bus>, _peer: Arc<dyn Bus>) {
    let gone = bus.queue_subscribe("jobs.run", "workers").await.unwrap();
    let mut stays = bus.queue_subscribe("jobs.run", "workers").await.unwrap();
    drop(gone);
    // Published through the bus that unsubscribed: on NATS, the server has
    // the unsubscription before these (one connection is handled in order).
    for i in 0..10 {
        bus.publish("jobs.run", payload(&i.to_string()))
            .await
            .unwrap();
    }
    for i in 0..10 {
        assert_eq!(index_of(&next(&mut stays).await), i);
    }
}

pub async fn request_gets_the_first_reply(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let mut service = peer.subscribe("svc.echo").await.unwrap();
    let responder = tokio::spawn(async move {
        let request = next(&mut service).await;
        let reply = request.reply.expect("a request has a reply subject");
        peer.publish(&reply, request.payload).await.unwrap();
        // A second reply is ignored (and must not fail).
        peer.publish(&reply, payload("late")).await.unwrap();
        // This task holds the last handle on `peer`: dropping it closes the
        // connection, which may discard replies not yet written out.
        peer.flush().await.unwrap();
    });
    let reply = bus
        .request("svc.echo", payload("ping"), PATIENCE)
        .await
        .unwrap();
    assert_eq!(reply.payload, payload("ping"));
    assert!(reply.subject.starts_with("_INBOX."));
    with_patience(responder).await.unwrap();
}

pub async fn request_without_subscribers_fails_at_once(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    // A subscriber elsewhere does not count.
    let _elsewhere = peer.subscribe("svc.other").await.unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(
        bus.request("svc.none", payload("ping"), PATIENCE).await,
        Err(BusError::NoResponders("svc.none".into()))
    );
    assert!(started.elapsed() < PATIENCE / 2, "not at once");
}

pub async fn request_times_out_without_reply(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let mut silent = peer.subscribe("svc.silent").await.unwrap();
    let timeout = Duration::from_millis(200);
    assert_eq!(
        bus.request("svc.silent", payload("ping"), timeout).await,
        Err(BusError::Timeout {
            subject: "svc.silent".into(),
            timeout
        })
    );
    // The request did arrive, with somewhere to reply.
    let request = next(&mut silent).await;
    assert!(request.reply.is_some());
}

pub async fn hand_made_request_reply(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let inbox = bus.new_inbox();
    assert!(inbox.starts_with("_INBOX."));
    assert!(validate_subject(&inbox, false).is_ok());
    assert_ne!(inbox, bus.new_inbox());
    let mut replies = bus.subscribe(&inbox).await.unwrap();
    // Asking no one: nothing comes back (on NATS the server answers "no
    // responders", which the bus keeps to itself).
    bus.publish_with_reply("svc.nobody", &inbox, payload("anyone?"))
        .await
        .unwrap();

    let mut service = peer.subscribe("svc.double").await.unwrap();
    bus.publish_with_reply("svc.double", &inbox, payload("21"))
        .await
        .unwrap();
    let request = next(&mut service).await;
    assert_eq!(request.reply.as_deref(), Some(inbox.as_str()));
    let doubled = 2 * index_of(&request);
    peer.publish(&inbox, payload(&doubled.to_string()))
        .await
        .unwrap();
    let reply = next(&mut replies).await;
    assert_eq!(index_of(&reply), 42);
    settle(&*peer, &*bus).await;
    assert_eq!(drain(&mut replies).await, vec![]);
}

pub async fn messages_arrive_in_publish_order(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    const COUNT: usize = 10_000;
    let mut subscription = bus.subscribe("ordered.>").await.unwrap();
    let publisher = tokio::spawn(async move {
        for i in 0..COUNT {
            peer.publish("ordered.x", payload(&i.to_string()))
                .await
                .unwrap();
        }
        peer.flush().await.unwrap();
    });
    for i in 0..COUNT {
        assert_eq!(index_of(&next(&mut subscription).await), i);
    }
    with_patience(publisher).await.unwrap();
}

pub async fn a_dropped_subscription_gets_nothing_more(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let mut first = bus.subscribe("a.b").await.unwrap();
    let mut second = bus.subscribe("a.b").await.unwrap();
    peer.publish("a.b", payload("0")).await.unwrap();
    assert_eq!(index_of(&next(&mut first).await), 0);
    drop(first);
    peer.publish("a.b", payload("1")).await.unwrap();
    assert_eq!(index_of(&next(&mut second).await), 0);
    assert_eq!(index_of(&next(&mut second).await), 1);

    // A request through the bus that dropped its only responder finds no one.
    let responder = bus.subscribe("svc.gone").await.unwrap();
    drop(responder);
    assert_eq!(
        bus.request("svc.gone", Bytes::new(), PATIENCE).await,
        Err(BusError::NoResponders("svc.gone".into()))
    );
}

pub async fn subscription_churn(bus: Arc<dyn Bus>, _peer: Arc<dyn Bus>) {
    const ROUNDS: usize = 1000;
    let mut stays = bus.subscribe("churn.>").await.unwrap();
    for i in 0..ROUNDS {
        let subscription = match i % 3 {
            0 => bus.subscribe("churn.a").await.unwrap(),
            1 => bus.subscribe("churn.*").await.unwrap(),
            _ => bus.queue_subscribe("churn.a", "q").await.unwrap(),
        };
        bus.publish("churn.a", Bytes::new()).await.unwrap();
        drop(subscription);
    }
    settle(&*bus, &*bus).await;
    assert_eq!(drain(&mut stays).await.len(), ROUNDS);
}

/// A subscription is registered when `subscribe` returns: a message from
/// another client right after reaches it, every time.
pub async fn subscriptions_are_registered_on_return(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    for i in 0..50 {
        let subject = format!("fresh.{i}");
        let mut subscription = bus.subscribe(&subject).await.unwrap();
        peer.publish(&subject, payload(&i.to_string()))
            .await
            .unwrap();
        assert_eq!(index_of(&next(&mut subscription).await), i);

        let service = format!("fresh.svc.{i}");
        let mut responder = bus.queue_subscribe(&service, "svc").await.unwrap();
        let asking = {
            let peer = Arc::clone(&peer);
            tokio::spawn(async move { peer.request(&service, Bytes::new(), PATIENCE).await })
        };
        let request = next(&mut responder).await;
        let reply = request.reply.expect("a request has a reply subject");
        bus.publish(&reply, payload("here")).await.unwrap();
        let answer = with_patience(asking).await.unwrap();
        assert_eq!(answer.map(|m| m.payload), Ok(payload("here")));
    }
}

pub async fn invalid_subjects_are_refused(bus: Arc<dyn Bus>, _peer: Arc<dyn Bus>) {
    for subject in ["", "a..b", "a b", "a.>.b"] {
        let invalid = Err(BusError::InvalidSubject(subject.to_string()));
        assert_eq!(bus.publish(subject, Bytes::new()).await, invalid);
        assert_eq!(bus.subscribe(subject).await.err(), invalid.clone().err());
    }
    // Wildcards: fine to subscribe, not to publish.
    assert!(bus.subscribe("a.*").await.is_ok());
    assert_eq!(
        bus.publish("a.*", Bytes::new()).await,
        Err(BusError::InvalidSubject("a.*".into()))
    );
    assert_eq!(
        bus.publish_with_reply("a.b", "reply.>", Bytes::new()).await,
        Err(BusError::InvalidSubject("reply.>".into()))
    );
    assert!(bus.queue_subscribe("a.b", "").await.is_err());
    assert!(bus.queue_subscribe("a.b", "two words").await.is_err());
    assert_eq!(
        bus.request("a.>", Bytes::new(), PATIENCE).await,
        Err(BusError::InvalidSubject("a.>".into()))
    );
}

pub async fn publishing_to_no_one_is_fine(bus: Arc<dyn Bus>, _peer: Arc<dyn Bus>) {
    bus.publish("nobody.listens", payload("x")).await.unwrap();
    bus.flush().await.unwrap();
}

pub async fn blobs_round_trip(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let module = Bytes::from_static(b"\0asm\x01\0\0\0");
    let hash = bus.put_blob(module.clone()).await.unwrap();
    assert_eq!(hash, BlobHash::of(&module));
    // Idempotent.
    assert_eq!(bus.put_blob(module.clone()).await.unwrap(), hash);
    // Every client of the cluster sees it.
    assert_eq!(peer.get_blob(&hash).await.unwrap(), Some(module));
    assert_eq!(bus.get_blob(&BlobHash::of(b"none")).await.unwrap(), None);
    let empty = bus.put_blob(Bytes::new()).await.unwrap();
    assert_eq!(peer.get_blob(&empty).await.unwrap(), Some(Bytes::new()));
}

/// Ten times NATS's largest message.
pub async fn large_blobs_round_trip(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let big: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big = Bytes::from(big);
    let hash = with_patience(bus.put_blob(big.clone())).await.unwrap();
    assert_eq!(hash, BlobHash::of(&big));
    let back = with_patience(peer.get_blob(&hash))
        .await
        .unwrap()
        .expect("the blob is stored");
    assert_eq!(back.len(), big.len());
    assert_eq!(BlobHash::of(&back), hash);
    assert!(back == big);
}

/// An offered blob is served by its holder until the last release.
pub async fn offered_blobs_live_until_released(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let value = payload("a transient value");
    let hash = bus.offer_blob(value.clone()).await.unwrap();
    assert_eq!(hash, BlobHash::of(&value));
    // Offered twice: held once, released twice.
    assert_eq!(bus.offer_blob(value.clone()).await.unwrap(), hash);
    assert_eq!(peer.get_blob(&hash).await.unwrap(), Some(value.clone()));
    assert_eq!(bus.get_blob(&hash).await.unwrap(), Some(value.clone()));
    bus.release_blob(&hash);
    assert_eq!(peer.get_blob(&hash).await.unwrap(), Some(value));
    bus.release_blob(&hash);
    assert_eq!(peer.get_blob(&hash).await.unwrap(), None);
    // Releasing what is not offered does nothing.
    bus.release_blob(&hash);
    let empty = bus.offer_blob(Bytes::new()).await.unwrap();
    assert_eq!(peer.get_blob(&empty).await.unwrap(), Some(Bytes::new()));
}

/// Ten times NATS's largest message, offered rather than stored.
pub async fn large_offered_blobs_round_trip(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    let big: Vec<u8> = (0..10 * 1024 * 1024 + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let big = Bytes::from(big);
    let hash = with_patience(bus.offer_blob(big.clone())).await.unwrap();
    let back = with_patience(peer.get_blob(&hash))
        .await
        .unwrap()
        .expect("the blob is offered");
    assert!(back == big);
    bus.release_blob(&hash);
}

/// The durable store is listed and pruned, and records when each blob was
/// last used: what the blob collector works from.
pub async fn stored_blobs_are_listed_used_and_deleted(bus: Arc<dyn Bus>, peer: Arc<dyn Bus>) {
    assert_eq!(bus.list_blobs().await.unwrap(), vec![]);
    assert_eq!(bus.blob_uses().await.unwrap(), HashMap::new());

    let module = payload("a module, one day unused");
    let before = Timestamp::now();
    let hash = bus.put_blob(module.clone()).await.unwrap();
    let listed = peer.list_blobs().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].hash, listed[0].size),
        (hash, module.len() as u64)
    );
    assert!(before <= listed[0].stored && listed[0].stored <= Timestamp::now());

    // A use recorded by one client is seen by the others.
    let touched = Timestamp::now();
    peer.touch_blob(&hash).await.unwrap();
    let used = bus.blob_uses().await.unwrap()[&hash];
    assert!(touched <= used && used <= Timestamp::now());
    // Storing the same content again is a use.
    let stored_again = Timestamp::now();
    bus.put_blob(module.clone()).await.unwrap();
    assert!(peer.blob_uses().await.unwrap()[&hash] >= stored_again);

    // Offered blobs are not in the durable store.
    let offered = bus.offer_blob(payload("offered")).await.unwrap();
    assert_eq!(peer.list_blobs().await.unwrap().len(), 1);
    bus.release_blob(&offered);

    // Deleted: gone from the store, the listing and the uses.
    assert!(peer.delete_blob(&hash).await.unwrap());
    assert_eq!(bus.get_blob(&hash).await.unwrap(), None);
    assert_eq!(bus.list_blobs().await.unwrap(), vec![]);
    assert_eq!(bus.blob_uses().await.unwrap(), HashMap::new());
    assert!(!peer.delete_blob(&hash).await.unwrap());
    // And it can be stored again.
    assert_eq!(bus.put_blob(module.clone()).await.unwrap(), hash);
    assert_eq!(peer.get_blob(&hash).await.unwrap(), Some(module));
    assert_eq!(peer.list_blobs().await.unwrap().len(), 1);

    // A use of a hash that is not stored is recorded all the same (a bus
    // cannot always tell), and deleting the hash forgets it.
    let never_stored = BlobHash::of(b"never stored");
    bus.touch_blob(&never_stored).await.unwrap();
    assert!(peer.blob_uses().await.unwrap().contains_key(&never_stored));
    assert!(!peer.delete_blob(&never_stored).await.unwrap());
    assert_eq!(bus.blob_uses().await.unwrap(), HashMap::new());
}

/// Declares one test per check above. `$buses` is an async function that
/// returns `Some((bus, peer, keep))`, `keep` living as long as the test, or
/// `None` to skip. Needs `#[macro_use] mod semantics;`.
macro_rules! bus_semantics {
    ($buses:path) => {
        bus_semantics!(@tests $buses;
            fan_out,
            wildcards,
            queue_groups,
            queue_group_survives_losing_members,
            request_gets_the_first_reply,
            request_without_subscribers_fails_at_once,
            request_times_out_without_reply,
            hand_made_request_reply,
            messages_arrive_in_publish_order,
            a_dropped_subscription_gets_nothing_more,
            subscription_churn,
            subscriptions_are_registered_on_return,
            invalid_subjects_are_refused,
            publishing_to_no_one_is_fine,
            blobs_round_trip,
            large_blobs_round_trip,
            offered_blobs_live_until_released,
            large_offered_blobs_round_trip,
            stored_blobs_are_listed_used_and_deleted,
        );
    };
    (@tests $buses:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some((bus, peer, _keep)) = $buses().await else {
                    return;
                };
                semantics::$check(bus, peer).await;
            }
        )*
    };
}
