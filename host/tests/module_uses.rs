//! An engine slot records in the blob store that it uses its tasks' modules:
//! when a task needs one, and again from its heartbeat while the task runs,
//! so that the blob collector never takes a running task's module.
//!
//! One slot on a `LocalBus`, registered by a stand-in for the controller,
//! runs a task that spins until aborted; its runtime lets every use through
//! (`module_use_interval` zero), so the heartbeat's record comes within a
//! second.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use grid_bus::{Bus, LocalBus, Subscription};
use grid_host::{EngineConfig, EngineSlot, Runtime};
use grid_proto::{
    BlobHash, Body, ClientId, Control, EngineId, HubReply, ModuleHash, MsgId, Reply, SchedFlags,
    Status, Subjects, Submission, Task, Timestamp, Work, decode, encode,
};

/// Only reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(20);

const SPIN: &str = r#"(module (func (export "spin") (loop br 0)))"#;

/// Waits until the last recorded use of `hash` is later than `after` (or,
/// with `None`, until there is one), and returns it. The bus tells no one
/// about uses, so this looks every few milliseconds.
async fn use_after(bus: &dyn Bus, hash: BlobHash, after: Option<Timestamp>) -> Timestamp {
    let looking = async {
        loop {
            let used = bus.blob_uses().await.unwrap().get(&hash).copied();
            if let Some(used) = used
                && after.is_none_or(|after| used > after)
            {
                return used;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(PATIENCE, looking)
        .await
        .unwrap_or_else(|_| panic!("no use of {hash:?} after {after:?} within {PATIENCE:?}"))
}

/// Answers the slot's registration as the controller would.
async fn register_one_engine(bus: &Arc<dyn Bus>, subjects: &Subjects) {
    let mut register = bus.subscribe(&subjects.hub("register")).await.unwrap();
    let bus = bus.clone();
    tokio::spawn(async move {
        let request = register.next().await.expect("a registration");
        let reply = encode(&HubReply::Registered { id: EngineId(0) }).unwrap();
        let to = request.reply.expect("a request");
        bus.publish(&to, Bytes::from(reply)).await.unwrap();
    });
}

async fn next_reply(results: &mut Subscription) -> Reply {
    let message = tokio::time::timeout(PATIENCE, results.next())
        .await
        .expect("a result in time")
        .expect("the subscription is open");
    decode(&message.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_tasks_module_is_recorded_as_used_while_it_runs() {
    let bus: Arc<dyn Bus> = Arc::new(LocalBus::new());
    let subjects = Subjects::default();
    register_one_engine(&bus, &subjects).await;
    let config = EngineConfig::default()
        .cache_dir(None)
        .module_use_interval(Duration::ZERO);
    let runtime = Runtime::new(config).unwrap();
    let slot = EngineSlot::start(
        bus.clone(),
        subjects.clone(),
        runtime,
        "here".into(),
        PATIENCE,
    )
    .await
    .unwrap();

    let module = bus
        .put_blob(Bytes::from(wat::parse_str(SPIN).unwrap()))
        .await
        .unwrap();
    // Storing a new blob records no use: its stored time stands for one.
    assert_eq!(bus.blob_uses().await.unwrap().get(&module), None);

    let client = ClientId::new();
    let mut results = bus.subscribe(&subjects.result(client)).await.unwrap();
    let task = Task::call(ModuleHash(module.0), "spin", vec![]);
    let msg_id = MsgId::new();
    let submission = Submission {
        msg_id,
        client,
        submitted: Timestamp::now(),
        work: Body::new(&Work::Task(task)).unwrap(),
        sched: SchedFlags::default(),
    };
    bus.publish(
        &subjects.engine_task(slot.id()),
        Bytes::from(encode(&submission).unwrap()),
    )
    .await
    .unwrap();

    // Once when the task needs the module, then from a heartbeat: the task
    // spins until aborted, so it is still running.
    let needed = use_after(&*bus, module, None).await;
    use_after(&*bus, module, Some(needed)).await;

    let abort = encode(&Control::Abort(vec![msg_id])).unwrap();
    bus.publish(&subjects.engine_control(slot.id()), Bytes::from(abort))
        .await
        .unwrap();
    let reply = next_reply(&mut results).await;
    assert_eq!((reply.msg_id, reply.status), (msg_id, Status::Aborted));
    slot.kill();
}
