//! The controller's shell on a `LocalBus`, with fake engines and a fake
//! client made of plain subscriptions: registration, load-balanced dispatch,
//! results and queries, the timeout timer, malformed input, and both ways of
//! stopping.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use grid_bus::{Bus, LocalBus, Message, Subscription};
use grid_controller::{ControllerConfig, ControllerHandle, start};
use grid_proto::{
    ClientId, ClusterEvent, Control, EngineId, EngineRef, EngineUuid, Heartbeat, HubReply,
    HubRequest, MsgId, Outcome, Reply, SchedFlags, Subjects, Submission, TaskError, TaskResult,
    Timestamp, Value, Work, decode, encode,
};

/// Only reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(10);

struct Cluster {
    bus: Arc<LocalBus>,
    subjects: Subjects,
    controller: ControllerHandle,
}

impl Cluster {
    async fn start() -> Cluster {
        let bus = Arc::new(LocalBus::new());
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
                HubReply::ResultStatus { pending, .. } if pending.is_empty() => return,
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
