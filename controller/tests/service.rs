//! The controller's shell on a `LocalBus`, with fake engines and a fake
//! client made of plain subscriptions: registration, load-balanced dispatch,
//! results and queries, the timeout timer, malformed input, both ways of
//! stopping, an abort that overtakes its task, and dropped messages reported
//! (through a bus that pretends to drop).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use grid_bus::{BlobInfo, Bus, BusError, LocalBus, Message, Subscription};
use grid_controller::{ControllerConfig, ControllerHandle, start};
use grid_proto::{
    BlobHash, ClientId, ClusterEvent, Control, EngineId, EngineRef, EngineUuid, Heartbeat,
    HubReply, HubRequest, MsgId, Outcome, Reply, SchedFlags, Status, Subjects, Submission,
    TaskError, TaskResult, Timestamp, Value, Work, decode, encode,
};

/// Only reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(10);

struct Cluster {
    bus: Arc<DroppingBus>,
    subjects: Subjects,
    controller: ControllerHandle,
}

impl Cluster {
    async fn start() -> Cluster {
        let bus = Arc::new(DroppingBus::default());
        let subjects = Subjects::new("svc-test").unwrap();
        let controller = start(bus.clone(), subjects.clone(), ControllerConfig::default())
            .await
            .unwrap();
        Cluster {
            bus,
            subjects,
            controller,
        }
    }

    async fn ask(&self, request: HubRequest) -> HubReply {
        let subject = self.subjects.hub(request.op());
        let payload = Bytes::from(encode(&request).unwrap());
        let answer = self.bus.request(&subject, payload, PATIENCE).await.unwrap();
        decode(&answer.payload).unwrap()
    }

    async fn publish<T: serde::Serialize>(&self, subject: &str, value: &T) {
        let payload = Bytes::from(encode(value).unwrap());
        self.bus.publish(subject, payload).await.unwrap();
    }

    async fn subscribe(&self, subject: &str) -> Subscription {
        self.bus.subscribe(subject).await.unwrap()
    }

    /// Registers a fake engine that listens on its subjects, then says so
    /// with a heartbeat.
    async fn engine(&self) -> FakeEngine {
        self.engine_that_dropped(0).await
    }

    /// [`Cluster::engine`], whose heartbeat says its bus dropped `dropped`
    /// messages.
    async fn engine_that_dropped(&self, dropped: u64) -> FakeEngine {
        let uuid = EngineUuid::new();
        let request = HubRequest::Register {
            uuid,
            host: "test".into(),
        };
        let HubReply::Registered { id } = self.ask(request).await else {
            panic!("registration refused");
        };
        let tasks = self.subscribe(&self.subjects.engine_task(id)).await;
        let control = self.subscribe(&self.subjects.engine_control(id)).await;
        let me = EngineRef { id, uuid };
        let beat = Heartbeat {
            engine: me,
            running: None,
            queued: 0,
            done: 0,
            dropped,
            host: "fake".into(),
        };
        self.publish(&self.subjects.heartbeat(id), &beat).await;
        FakeEngine { me, tasks, control }
    }

    /// Asks `result_status` until every id is completed: results reach the
    /// controller on their own subscription, so a query can overtake them.
    async fn until_completed(&self, msg_ids: &[MsgId]) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let request = HubRequest::ResultStatus {
                msg_ids: msg_ids.to_vec(),
            };
            match self.ask(request).await {
                HubReply::ResultStatus {
                    pending, unknown, ..
                } if pending.is_empty() && unknown.is_empty() => return,
                HubReply::ResultStatus { .. } => {}
                other => panic!("unexpected answer {other:?}"),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "results never recorded"
            );
            tokio::task::yield_now().await;
        }
    }
}

struct FakeEngine {
    me: EngineRef,
    tasks: Subscription,
    control: Subscription,
}

async fn next(sub: &mut Subscription) -> Message {
    tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("nothing arrived in time")
        .expect("subscription closed")
}

async fn next_as<T: serde::de::DeserializeOwned>(sub: &mut Subscription) -> T {
    decode(&next(sub).await.payload).unwrap()
}

fn submission(client: ClientId) -> Submission {
    Submission {
        msg_id: MsgId::new(),
        client,
        submitted: Timestamp::now(),
        work: grid_proto::Body::new(&Work::Clear).unwrap(),
        sched: SchedFlags::default(),
    }
}

#[tokio::test]
async fn balances_work_answers_queries_and_shuts_down() {
    let cluster = Cluster::start().await;
    let mut events = cluster.subscribe(&cluster.subjects.events()).await;
    let mut engines = vec![cluster.engine().await, cluster.engine().await];
    for engine in &engines {
        let ClusterEvent::EngineRegistered(info) = next_as(&mut events).await else {
            panic!("expected a registration");
        };
        assert_eq!(info.id, engine.me.id);
    }
    assert_eq!(engines[1].me.id, EngineId(1));
    // An engine takes work once the controller has its first heartbeat,
    // which travels on a subject of its own: wait for both, or the tasks
    // below could all go to the engine whose heartbeat came first.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !matches!(cluster.ask(HubRequest::Engines).await, HubReply::Engines(live) if live.len() == 2)
    {
        assert!(tokio::time::Instant::now() < deadline, "engines never live");
        tokio::task::yield_now().await;
    }

    let client = ClientId::new();
    let mut results = cluster.subscribe(&cluster.subjects.result(client)).await;
    let tasks: Vec<Submission> = (0..4).map(|_| submission(client)).collect();
    for t in &tasks {
        cluster.publish(&cluster.subjects.sched_submit(), t).await;
    }

    // Least load alternates between the two engines. Every task is placed
    // before any result goes back: a result handled between two submissions
    // would lower that engine's load and change where the next one goes.
    let mut placed = Vec::new();
    for engine in &mut engines {
        for _ in 0..2 {
            let work: Submission = next_as(&mut engine.tasks).await;
            placed.push((engine.me, work));
        }
    }
    for (me, work) in placed {
        let result = TaskResult::immediate(work.msg_id, Outcome::Ok(Value::Null));
        let reply = Reply::new(work.client, work.submitted, Some(me), &result).unwrap();
        cluster
            .publish(&cluster.subjects.result(work.client), &reply)
            .await;
    }
    for _ in 0..4 {
        let reply: Reply = next_as(&mut results).await;
        assert!(tasks.iter().any(|t| t.msg_id == reply.msg_id));
    }
    let ids: Vec<MsgId> = tasks.iter().map(|t| t.msg_id).collect();
    cluster.until_completed(&ids).await;
    let HubReply::Results(stored) = cluster.ask(HubRequest::GetResult { msg_ids: ids }).await
    else {
        panic!("no results");
    };
    assert_eq!(stored.len(), 4);
    let HubReply::QueueStatus(status) = cluster.ask(HubRequest::QueueStatus).await else {
        panic!("no queue status");
    };
    assert_eq!(status.engines[&EngineId(0)].completed, 2);
    assert_eq!(status.engines[&EngineId(1)].completed, 2);

    assert_eq!(cluster.ask(HubRequest::Shutdown).await, HubReply::Ok);
    for engine in &mut engines {
        assert_eq!(
            next_as::<Control>(&mut engine.control).await,
            Control::Shutdown
        );
    }
    tokio::time::timeout(PATIENCE, cluster.controller.stopped())
        .await
        .expect("the controller did not stop")
        .unwrap();
}

#[tokio::test]
async fn a_task_nobody_can_take_times_out_on_the_timer() {
    let cluster = Cluster::start().await;
    let client = ClientId::new();
    let mut results = cluster.subscribe(&cluster.subjects.result(client)).await;
    let mut t = submission(client);
    t.sched.timeout_ms = Some(20);
    cluster.publish(&cluster.subjects.sched_submit(), &t).await;
    let reply: Reply = next_as(&mut results).await;
    assert_eq!(reply.msg_id, t.msg_id);
    assert_eq!(reply.engine, None);
    assert!(matches!(
        reply.result.decode().unwrap().outcome,
        Outcome::Err(TaskError::Unschedulable(ref why)) if why.contains("no engines are registered")
    ));
    cluster.controller.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_messages_are_skipped_or_answered_with_an_error() {
    let cluster = Cluster::start().await;
    let garbage = Bytes::from_static(b"\xff\x00 not cbor");
    for subject in [
        cluster.subjects.sched_submit(),
        cluster.subjects.engine_task(EngineId(3)),
        cluster.subjects.all_results().replace('*', "someone"),
    ] {
        cluster
            .bus
            .publish(&subject, garbage.clone())
            .await
            .unwrap();
    }
    let answer = cluster
        .bus
        .request(&cluster.subjects.hub("engines"), garbage, PATIENCE)
        .await
        .unwrap();
    assert!(matches!(
        decode(&answer.payload).unwrap(),
        HubReply::Error(_)
    ));
    // A request on the wrong subject is refused, not obeyed.
    let payload = Bytes::from(encode(&HubRequest::Shutdown).unwrap());
    let answer = cluster
        .bus
        .request(&cluster.subjects.hub("engines"), payload, PATIENCE)
        .await
        .unwrap();
    assert!(matches!(
        decode(&answer.payload).unwrap(),
        HubReply::Error(_)
    ));

    assert_eq!(
        cluster.ask(HubRequest::Engines).await,
        HubReply::Engines(vec![])
    );
    assert!(!cluster.controller.is_finished());
    cluster.controller.stop().await.unwrap();
}

#[tokio::test]
async fn a_stopped_controller_no_longer_answers() {
    let cluster = Cluster::start().await;
    cluster.controller.stop().await.unwrap();
    let payload = Bytes::from(encode(&HubRequest::Engines).unwrap());
    let answer = cluster
        .bus
        .request(&cluster.subjects.hub("engines"), payload, PATIENCE)
        .await;
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test]
async fn an_abort_that_overtakes_its_submission_still_aborts_it() {
    let cluster = Cluster::start().await;
    let mut engine = cluster.engine().await;
    let client = ClientId::new();
    let mut results = cluster.subscribe(&cluster.subjects.result(client)).await;
    let early = submission(client);
    // The answer comes back once the hub has handled the abort: the
    // submission published after it is certainly later.
    let abort = HubRequest::Abort {
        msg_ids: vec![early.msg_id],
    };
    assert_eq!(cluster.ask(abort).await, HubReply::Ok);
    cluster
        .publish(&cluster.subjects.sched_submit(), &early)
        .await;
    let reply: Reply = next_as(&mut results).await;
    assert_eq!(
        (reply.msg_id, reply.status),
        (early.msg_id, Status::Aborted)
    );
    assert_eq!(reply.engine, None);

    // A direct task aborted early: its engine is told.
    let direct = submission(client);
    let abort = HubRequest::Abort {
        msg_ids: vec![direct.msg_id],
    };
    assert_eq!(cluster.ask(abort).await, HubReply::Ok);
    cluster
        .publish(&cluster.subjects.engine_task(engine.me.id), &direct)
        .await;
    assert_eq!(
        next_as::<Control>(&mut engine.control).await,
        Control::Abort(vec![direct.msg_id])
    );
    // The load-balanced one never reached the engine: the direct one is
    // the first (and only) task it saw.
    let first: Submission = next_as(&mut engine.tasks).await;
    assert_eq!(first.msg_id, direct.msg_id);
    cluster.controller.stop().await.unwrap();
}

#[tokio::test]
async fn queue_status_reports_the_messages_buses_dropped() {
    let cluster = Cluster::start().await;
    let engine = cluster.engine_that_dropped(2).await;
    let queue_status = || async {
        match cluster.ask(HubRequest::QueueStatus).await {
            HubReply::QueueStatus(status) => status,
            other => panic!("unexpected answer {other:?}"),
        }
    };
    // The heartbeat travels on its own subject: wait until it is handled.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while queue_status()
        .await
        .engines
        .get(&engine.me.id)
        .is_none_or(|q| q.dropped != 2)
    {
        assert!(tokio::time::Instant::now() < deadline, "heartbeat unseen");
        tokio::task::yield_now().await;
    }
    assert_eq!(queue_status().await.dropped, 0);
    // The controller reads its bus's count before each message it handles,
    // the request included.
    cluster.bus.dropped.store(17, Ordering::Relaxed);
    assert_eq!(queue_status().await.dropped, 17);
    cluster.controller.stop().await.unwrap();
}

/// A `LocalBus` that reports as many dropped messages as the test says.
#[derive(Default)]
struct DroppingBus {
    inner: LocalBus,
    dropped: AtomicU64,
}

/// What `async_trait` makes of an `async fn` in the `Bus` trait (this crate
/// does not depend on it): the inner bus's futures are passed on as they are.
type BusFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BusError>> + Send + 'a>>;

impl Bus for DroppingBus {
    fn dropped_messages(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn publish<'a, 'b, 'f>(&'a self, subject: &'b str, payload: Bytes) -> BusFuture<'f, ()>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.inner.publish(subject, payload)
    }

    fn publish_with_reply<'a, 'b, 'c, 'f>(
        &'a self,
        subject: &'b str,
        reply: &'c str,
        payload: Bytes,
    ) -> BusFuture<'f, ()>
    where
        'a: 'f,
        'b: 'f,
        'c: 'f,
        Self: 'f,
    {
        self.inner.publish_with_reply(subject, reply, payload)
    }

    fn publish_now(&self, subject: &str, payload: &Bytes) -> Option<Result<(), BusError>> {
        self.inner.publish_now(subject, payload)
    }

    fn delivers_on_runtime(&self) -> bool {
        self.inner.delivers_on_runtime()
    }

    fn subscribe<'a, 'b, 'f>(&'a self, subject: &'b str) -> BusFuture<'f, Subscription>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.inner.subscribe(subject)
    }

    fn queue_subscribe<'a, 'b, 'c, 'f>(
        &'a self,
        subject: &'b str,
        queue: &'c str,
    ) -> BusFuture<'f, Subscription>
    where
        'a: 'f,
        'b: 'f,
        'c: 'f,
        Self: 'f,
    {
        self.inner.queue_subscribe(subject, queue)
    }

    fn request<'a, 'b, 'f>(
        &'a self,
        subject: &'b str,
        payload: Bytes,
        timeout: Duration,
    ) -> BusFuture<'f, Message>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.inner.request(subject, payload, timeout)
    }

    fn new_inbox(&self) -> String {
        self.inner.new_inbox()
    }

    fn flush<'a, 'f>(&'a self) -> BusFuture<'f, ()>
    where
        'a: 'f,
        Self: 'f,
    {
        self.inner.flush()
    }

    fn put_blob<'a, 'f>(&'a self, bytes: Bytes) -> BusFuture<'f, BlobHash>
    where
        'a: 'f,
        Self: 'f,
    {
        self.inner.put_blob(bytes)
    }

    fn get_blob<'a, 'b, 'f>(&'a self, hash: &'b BlobHash) -> BusFuture<'f, Option<Bytes>>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.inner.get_blob(hash)
    }

    fn offer_blob<'a, 'f>(&'a self, bytes: Bytes) -> BusFuture<'f, BlobHash>
    where
        'a: 'f,
        Self: 'f,
    {
        self.inner.offer_blob(bytes)
    }

    fn release_blob(&self, hash: &BlobHash) {
        self.inner.release_blob(hash)
    }

    fn list_blobs<'a, 'f>(&'a self) -> BusFuture<'f, Vec<BlobInfo>>
    where
        'a: 'f,
        Self: 'f,
    {
        self.inner.list_blobs()
    }

    fn delete_blob<'a, 'b, 'f>(&'a self, hash: &'b BlobHash) -> BusFuture<'f, bool>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.inner.delete_blob(hash)
    }

    fn touch_blob<'a, 'b, 'f>(&'a self, hash: &'b BlobHash) -> BusFuture<'f, ()>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.inner.touch_blob(hash)
    }

    fn blob_uses<'a, 'f>(&'a self) -> BusFuture<'f, HashMap<BlobHash, Timestamp>>
    where
        'a: 'f,
        Self: 'f,
    {
        self.inner.blob_uses()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_beats_and_collects_blobs_nothing_uses() {
    let bus = Arc::new(LocalBus::new());
    let subjects = Subjects::new("gc-test").unwrap();
    let mut beats = bus.subscribe(&subjects.controller()).await.unwrap();
    let config = ControllerConfig {
        blob_max_age: Some(Duration::from_millis(500)),
        ..ControllerConfig::default()
    };
    let controller = start(bus.clone(), subjects.clone(), config).await.unwrap();
    let beat: grid_proto::ControllerBeat = next_as(&mut beats).await;
    let again: grid_proto::ControllerBeat = next_as(&mut beats).await;
    assert_eq!(beat.incarnation, again.incarnation);

    let unused = bus
        .put_blob(Bytes::from_static(b"nobody uses me"))
        .await
        .unwrap();
    let kept = bus
        .put_blob(Bytes::from_static(b"used all the time"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        bus.touch_blob(&kept).await.unwrap();
        let stored: Vec<BlobHash> = bus
            .list_blobs()
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.hash)
            .collect();
        if !stored.contains(&unused) {
            assert!(stored.contains(&kept), "a blob in use is kept");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never collected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    controller.stop().await.unwrap();
}
