//! No task lost without someone noticing (issue 10, trap 0), once on the
//! LocalBus and once on a real nats-server.
//!
//! Core NATS drops messages to slow consumers; here the loss is made
//! deterministic by a bus that drops every n-th message of some kind, in
//! front of a real bus:
//! - a client whose bus drops every 7th submission it publishes and every
//!   5th reply it would receive still gets every value: its watchdog
//!   publishes again what the controller never saw, and fetches from the
//!   controller the results it recorded but the client never received;
//! - engines whose bus drops every 7th task sent to them (and says so in
//!   their heartbeats) leave no one waiting: the controller fails those
//!   tasks as `lost` once the engine is idle without them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use grid_bus::testing::NatsServer;
use grid_bus::{BlobInfo, Bus, BusError, Message, NatsBus, Subscription};
use grid_client::{Client, Value};
use grid_controller::ControllerConfig;
use grid_host::EngineConfig;
use grid_local::LocalCluster;
use grid_proto::{BlobHash, Subjects, Timestamp};
use grid_tests::{Backend, on_both_buses};

const T: Option<Duration> = Some(Duration::from_secs(120));

on_both_buses!(
    dropped_submissions_and_replies_are_recovered,
    tasks_dropped_before_their_engine_fail_as_lost_instead_of_hanging,
);

/// A runtime, a NATS server for `Backend::Nats`, and a connection to it
/// (or a LocalBus).
fn backend_bus(backend: Backend) -> (tokio::runtime::Runtime, Option<NatsServer>, Arc<dyn Bus>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = match backend {
        Backend::Nats => Some(NatsServer::start().unwrap_or_else(|e| panic!("{e}"))),
        Backend::Local => None,
    };
    let bus = runtime.block_on(connect(&server));
    (runtime, server, bus)
}

/// A new connection to the test's server, or a new LocalBus.
async fn connect(server: &Option<NatsServer>) -> Arc<dyn Bus> {
    match server {
        Some(server) => Arc::new(NatsBus::connect(&server.url()).await.expect("connects")),
        None => Arc::new(grid_bus::LocalBus::new()),
    }
}

/// Drops every `submissions`-th task it publishes and every `replies`-th
/// message its subscriptions to subjects containing `deliveries_to` would
/// deliver; counts both.
struct LossyBus {
    inner: Arc<dyn Bus>,
    submissions: u64,
    replies: u64,
    deliveries_to: &'static str,
    published: AtomicU64,
    delivered: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl LossyBus {
    fn drops_this_publish(&self, subject: &str) -> bool {
        let task = subject.ends_with(".sched.submit") || subject.ends_with(".task");
        if !task {
            return false;
        }
        let n = self.published.fetch_add(1, Ordering::SeqCst) + 1;
        let drop = n.is_multiple_of(self.submissions);
        if drop {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
        drop
    }
}

#[async_trait::async_trait]
impl Bus for LossyBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        if self.drops_this_publish(subject) {
            return Ok(());
        }
        self.inner.publish(subject, payload).await
    }

    async fn publish_with_reply(
        &self,
        subject: &str,
        reply: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        self.inner.publish_with_reply(subject, reply, payload).await
    }

    fn publish_now(&self, _: &str, _: &Bytes) -> Option<Result<(), BusError>> {
        // Everything goes through `publish`, where the drops are decided.
        None
    }

    fn delivers_on_runtime(&self) -> bool {
        self.inner.delivers_on_runtime()
    }

    fn dropped_messages(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }

    async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        let inner = self.inner.subscribe(subject).await?;
        if !subject.contains(self.deliveries_to) {
            return Ok(inner);
        }
        let (every, delivered, dropped) =
            (self.replies, self.delivered.clone(), self.dropped.clone());
        let lossy = inner.filter(move |_: &Message| {
            let n = delivered.fetch_add(1, Ordering::SeqCst) + 1;
            let keep = !n.is_multiple_of(every);
            if !keep {
                dropped.fetch_add(1, Ordering::SeqCst);
            }
            std::future::ready(keep)
        });
        Ok(Subscription::new(lossy))
    }

    async fn queue_subscribe(&self, subject: &str, queue: &str) -> Result<Subscription, BusError> {
        self.inner.queue_subscribe(subject, queue).await
    }

    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message, BusError> {
        self.inner.request(subject, payload, timeout).await
    }

    fn new_inbox(&self) -> String {
        self.inner.new_inbox()
    }

    async fn flush(&self) -> Result<(), BusError> {
        self.inner.flush().await
    }

    async fn put_blob(&self, bytes: Bytes) -> Result<BlobHash, BusError> {
        self.inner.put_blob(bytes).await
    }

    async fn get_blob(&self, hash: &BlobHash) -> Result<Option<Bytes>, BusError> {
        self.inner.get_blob(hash).await
    }

    async fn offer_blob(&self, bytes: Bytes) -> Result<BlobHash, BusError> {
        self.inner.offer_blob(bytes).await
    }

    fn release_blob(&self, hash: &BlobHash) {
        self.inner.release_blob(hash)
    }

    async fn list_blobs(&self) -> Result<Vec<BlobInfo>, BusError> {
        self.inner.list_blobs().await
    }

    async fn delete_blob(&self, hash: &BlobHash) -> Result<bool, BusError> {
        self.inner.delete_blob(hash).await
    }

    async fn touch_blob(&self, hash: &BlobHash) -> Result<(), BusError> {
        self.inner.touch_blob(hash).await
    }

    async fn blob_uses(&self) -> Result<HashMap<BlobHash, Timestamp>, BusError> {
        self.inner.blob_uses().await
    }
}

fn dropped_submissions_and_replies_are_recovered(backend: Backend) {
    let (runtime, server, bus) = backend_bus(backend);
    let (cluster, real_bus) = runtime.block_on(async {
        let config = ControllerConfig {
            heartbeat_timeout: None,
            ..ControllerConfig::default()
        };
        let cluster = LocalCluster::start_on(
            bus.clone(),
            Subjects::default(),
            2,
            EngineConfig::default().cache_dir(None),
            config,
        )
        .await
        .expect("cluster starts");
        // The client gets a connection of its own on NATS, as a client would.
        let client_bus = match &server {
            Some(_) => connect(&server).await,
            None => bus,
        };
        (cluster, client_bus)
    });
    let dropped = Arc::new(AtomicU64::new(0));
    let lossy = Arc::new(LossyBus {
        inner: real_bus,
        submissions: 7,
        replies: 5,
        deliveries_to: ".result.",
        published: AtomicU64::new(0),
        delivered: Arc::new(AtomicU64::new(0)),
        dropped: dropped.clone(),
    });
    let (published, delivered) = (lossy.clone(), lossy.clone());
    let client = runtime
        .block_on(Client::connect_bus(lossy, Subjects::default()))
        .expect("client connects");
    let square = client
        .load_module(grid_examples::wat_square())
        .expect("module uploads")
        .func("square");

    let n = 300i64;
    let lb = client.load_balanced_view();
    let values = lb
        .map_async(&square, vec![(0..n).map(Value::from).collect()])
        .unwrap()
        .get(T)
        .expect("every task answered, none lost");
    assert_eq!(
        values,
        (0..n).map(|i| Value::from(i * i)).collect::<Vec<_>>()
    );
    // Direct tasks too, and apply.
    let direct = client.view_all().unwrap();
    let parts = direct
        .map_async(&square, vec![(0..n).map(Value::from).collect()])
        .unwrap()
        .get(T)
        .unwrap();
    assert_eq!(parts.len(), n as usize);
    for i in 0..30 {
        let r = lb.apply_async(&square, [Value::from(i)]).unwrap();
        assert_eq!(r.get(T).unwrap(), Value::from(i * i));
    }
    // Both kinds of loss happened, so both ways of recovery were exercised.
    assert!(published.published.load(Ordering::SeqCst) >= 7 * 10);
    assert!(delivered.delivered.load(Ordering::SeqCst) >= 5 * 10);
    assert!(dropped.load(Ordering::SeqCst) >= 20);
    assert!(client.outstanding().is_empty());
    drop(client);
    runtime.block_on(cluster.stop());
}

fn tasks_dropped_before_their_engine_fail_as_lost_instead_of_hanging(backend: Backend) {
    let (runtime, server, bus) = backend_bus(backend);
    let dropped = Arc::new(AtomicU64::new(0));
    let (controller, slots, client) = runtime.block_on(async {
        let config = ControllerConfig {
            heartbeat_timeout: None,
            ..ControllerConfig::default()
        };
        let subjects = Subjects::default();
        let controller = grid_controller::start(bus.clone(), subjects.clone(), config)
            .await
            .expect("controller starts");
        // The engines' connection drops every 7th task sent to them.
        let engine_bus: Arc<dyn Bus> = Arc::new(LossyBus {
            inner: match &server {
                Some(_) => connect(&server).await,
                None => bus.clone(),
            },
            submissions: u64::MAX,
            replies: 7,
            deliveries_to: ".task",
            published: AtomicU64::new(0),
            delivered: Arc::new(AtomicU64::new(0)),
            dropped: dropped.clone(),
        });
        let wasm =
            grid_host::Runtime::new(EngineConfig::default().cache_dir(None)).expect("runtime");
        let mut slots = Vec::new();
        for _ in 0..2 {
            let slot = grid_host::EngineSlot::start(
                engine_bus.clone(),
                subjects.clone(),
                wasm.clone(),
                "lossy".into(),
                Duration::from_secs(10),
            )
            .await
            .expect("engine starts");
            slots.push(slot);
        }
        let client_bus = match &server {
            Some(_) => connect(&server).await,
            None => bus,
        };
        let client = Client::connect_bus(client_bus, subjects)
            .await
            .expect("client");
        (controller, slots, client)
    });
    client.wait_for_engines(2, T).expect("engines up");
    let square = client
        .load_module(grid_examples::wat_square())
        .expect("module uploads")
        .func("square");
    let n = 100i64;
    for view in ["load-balanced", "direct"] {
        // One task per item, so that some are dropped on both views.
        let results: Vec<_> = match view {
            "direct" => client.view_all().unwrap().imap(&square, 0..n).collect(),
            _ => client.load_balanced_view().imap(&square, 0..n).collect(),
        };
        let mut lost = 0;
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, Value::from(i as i64 * i as i64)),
                Err(e) => {
                    assert_eq!(e.kind(), "lost", "{view}: {e}");
                    assert!(e.to_string().contains("slow consumer"), "{e}");
                    lost += 1;
                }
            }
        }
        assert!(
            lost > 0,
            "{view}: some tasks were dropped, so some are lost"
        );
    }
    drop(client);
    for slot in &slots {
        slot.kill();
    }
    runtime.block_on(async { controller.stop().await.ok() });
}
