//! The blob collector (`grid_controller::gc`) on both buses: of three blobs
//! older than `max_age`, the one used since and the protected one stay, the
//! third goes, and so does a stale use record of a blob no longer stored.
//!
//! Time passing is the point here, so each run sleeps past `max_age` once;
//! `max_age` is short on the `LocalBus` and longer on NATS, where it must
//! comfortably outlast the collector's own round trips to the server.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use grid_bus::testing::NatsServer;
use grid_bus::{Bus, LocalBus, NatsBus};
use grid_controller::{GcReport, collect_blobs};
use grid_proto::BlobHash;

async fn collects_only_the_unused_and_unprotected(bus: &dyn Bus, max_age: Duration) {
    let [used, protected, unused] =
        ["used", "protected", "unused"].map(|name| Bytes::from(format!("a blob to be {name}")));
    let used = bus.put_blob(used).await.unwrap();
    let protected = bus.put_blob(protected).await.unwrap();
    let unused_size = unused.len() as u64;
    let unused = bus.put_blob(unused).await.unwrap();
    // Recorded by an engine that still held the module after it was
    // collected, then stopped.
    let gone = BlobHash::of(b"collected long ago");
    bus.touch_blob(&gone).await.unwrap();

    tokio::time::sleep(max_age + Duration::from_millis(10)).await;
    bus.touch_blob(&used).await.unwrap();
    let report = collect_blobs(bus, &HashSet::from([protected]), max_age)
        .await
        .unwrap();
    assert_eq!(
        report,
        GcReport {
            examined: 3,
            collected: 1,
            bytes_freed: unused_size,
            forgotten: 1,
        }
    );

    let mut left: Vec<BlobHash> = bus
        .list_blobs()
        .await
        .unwrap()
        .iter()
        .map(|blob| blob.hash)
        .collect();
    left.sort();
    let mut kept = vec![used, protected];
    kept.sort();
    assert_eq!(left, kept);
    assert_eq!(bus.get_blob(&unused).await.unwrap(), None);
    let uses = bus.blob_uses().await.unwrap();
    assert_eq!(uses.keys().collect::<Vec<_>>(), vec![&used]);

    // Nothing more to do; with no age at all, only the protected one stays.
    let again = collect_blobs(bus, &HashSet::from([protected]), max_age)
        .await
        .unwrap();
    assert_eq!((again.examined, again.collected), (2, 0));
    tokio::time::sleep(Duration::from_millis(2)).await;
    let all = collect_blobs(bus, &HashSet::from([protected]), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((all.examined, all.collected), (2, 1));
    assert_eq!(bus.get_blob(&used).await.unwrap(), None);
}

#[tokio::test]
async fn on_a_local_bus() {
    let bus = LocalBus::new();
    collects_only_the_unused_and_unprotected(&bus, Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_nats() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let bus = NatsBus::connect(&server.url()).await.unwrap();
    collects_only_the_unused_and_unprotected(&bus, Duration::from_secs(1)).await;
}
