//! The scheduler's whole job through the client, on both buses (`local::`
//! and `nats::`): dependencies (`after`, `follow`), impossible ones failing
//! at once down a chain, retries on another engine, engine death in a chain
//! with and without retries, and the `pure` scheme.
//!
//! The rules themselves are unit-tested in `controller/src/scheduler.rs`;
//! these tests check that the client, the hub, the engines and the bus carry
//! them: the flags reach the scheduler, results of retried tasks reach the
//! client once, metadata says what happened.

use std::time::{Duration, Instant};

use grid_client::{AsyncResult, Dependency, EngineId, Error, Scheme, Status, Value};
use grid_controller::{ControllerConfig, SchedulerConfig};
use grid_tests::{Backend, Cluster, on_both_buses};

on_both_buses!(
    after_orders_a_chain_and_fills_the_metadata,
    follow_runs_where_the_dependency_ran,
    a_dependency_may_name_another_clients_task,
    a_failure_fails_its_chain_at_once,
    retries_avoid_the_engine_where_the_task_failed,
    an_engine_dying_in_a_chain_fails_the_chain_without_retries,
    an_engine_dying_in_a_chain_is_survived_with_retries,
    the_pure_scheme_runs_balanced_work_without_a_scheduler,
);

/// Long enough for anything that is not a bug, on a loaded machine.
const PATIENCE: Option<Duration> = Some(Duration::from_secs(60));

/// The Rust demo guest (`None`, the test skipped, when it cannot be built
/// here and the run does not require it).
fn demo(client: &Cluster) -> Option<grid_client::Module> {
    let path = grid_examples::require_path(grid_examples::rust_guest())?;
    Some(client.load_module(path).expect("demo module uploads"))
}

fn cluster(backend: Backend, engines: usize, scheme: Scheme) -> Cluster {
    let config = ControllerConfig {
        scheduler: SchedulerConfig {
            scheme,
            ..SchedulerConfig::default()
        },
        // Short enough for a test to see an engine die.
        heartbeat_timeout: Some(Duration::from_secs(3)),
        ..ControllerConfig::default()
    };
    grid_tests::cluster_with(backend, engines, config)
}

fn after_orders_a_chain_and_fills_the_metadata(backend: Backend) {
    let client = cluster(backend, 2, Scheme::LeastLoad);
    let Some(demo) = demo(&client) else { return };
    let sleep = demo.func("sleep_ms");
    let lb = client.load_balanced_view();
    let first = lb.apply(&sleep, [50]).unwrap();
    let second = lb.clone().after(&first).apply(&sleep, [10]).unwrap();
    let both = Dependency::new([first.msg_ids()[0], second.msg_ids()[0]]);
    let third = lb.clone().after(both).apply(&sleep, [1]).unwrap();
    assert_eq!(third.get(PATIENCE).unwrap(), Value::from(1));
    let (m1, m2, m3) = (meta(&first), meta(&second), meta(&third));
    assert!(m2.started >= m1.completed, "{m1:?} {m2:?}");
    assert!(m3.started >= m2.completed, "{m2:?} {m3:?}");
    assert_eq!(m2.after, first.msg_ids());
    assert_eq!(m3.after.len(), 2);
    assert_eq!((m3.attempts, m3.status), (1, Some(Status::Ok)));
}

fn follow_runs_where_the_dependency_ran(backend: Backend) {
    let client = cluster(backend, 3, Scheme::LeastLoad);
    let Some(demo) = demo(&client) else { return };
    let (stash, bump) = (demo.func("stash"), demo.func("bump"));
    let lb = client.load_balanced_view();
    for round in 0..5 {
        let name = format!("counter{round}");
        let set = lb
            .apply(&stash, [Value::from(name.as_str()), Value::from(41)])
            .unwrap();
        // The namespace entry exists only where `set` ran.
        let next = lb
            .clone()
            .follow(&set)
            .apply(&bump, [name.as_str()])
            .unwrap();
        assert_eq!(next.get(PATIENCE).unwrap(), Value::from(42));
        assert_eq!(meta(&next).engine_id, meta(&set).engine_id);
        assert_eq!(meta(&next).follow, set.msg_ids());
    }
}

fn a_dependency_may_name_another_clients_task(backend: Backend) {
    let client = cluster(backend, 2, Scheme::LeastLoad);
    let Some(demo) = demo(&client) else { return };
    let other = client.another_client();
    let theirs = other
        .load_balanced_view()
        .apply(&demo.func("sleep_ms"), [300])
        .unwrap();
    let mine = client
        .load_balanced_view()
        .after(theirs.msg_ids()[0])
        .apply(&demo.func("square"), [5])
        .unwrap();
    assert_eq!(mine.get(PATIENCE).unwrap(), Value::from(25));
    assert!(meta(&mine).started >= meta(&theirs).completed);
}

fn a_failure_fails_its_chain_at_once(backend: Backend) {
    let client = cluster(backend, 2, Scheme::LeastLoad);
    let Some(demo) = demo(&client) else { return };
    let (boom, square) = (demo.func("boom"), demo.func("square"));
    let lb = client.load_balanced_view();
    let root = lb.apply(&boom, ["no"]).unwrap();
    let mut chain = vec![root.clone()];
    for i in 0..20 {
        let parent = chain.last().unwrap();
        chain.push(lb.clone().after(parent).apply(&square, [i]).unwrap());
    }
    // Runs only because the root failed.
    let rescue = lb
        .clone()
        .after(Dependency::from(&root).success(false).failure(true))
        .apply(&square, [7])
        .unwrap();
    let start = Instant::now();
    for link in &chain[1..] {
        match link.get(PATIENCE) {
            Err(Error::Remote(e)) => assert_eq!(e.kind(), "impossible_dependency", "{e}"),
            other => panic!("expected an impossible dependency, got {other:?}"),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "no timeout waited for"
    );
    assert_eq!(rescue.get(PATIENCE).unwrap(), Value::from(49));
    // An unknown task is an impossible dependency too, once its grace is over.
    let unknown = lb
        .clone()
        .after(grid_client::MsgId::new())
        .apply(&square, [1])
        .unwrap();
    match unknown.get(PATIENCE) {
        Err(Error::Remote(e)) => assert!(e.to_string().contains("unknown task"), "{e}"),
        other => panic!("expected an impossible dependency, got {other:?}"),
    }
    // A dependency that is never met in time.
    let slow = lb.apply(&demo.func("sleep_ms"), [3000]).unwrap();
    let hasty = lb
        .clone()
        .after(&slow)
        .timeout(Duration::from_millis(200))
        .apply(&square, [1])
        .unwrap();
    match hasty.get(PATIENCE) {
        Err(Error::Remote(e)) => assert_eq!(e.kind(), "dependency_timeout", "{e}"),
        other => panic!("expected a dependency timeout, got {other:?}"),
    }
}

fn retries_avoid_the_engine_where_the_task_failed(backend: Backend) {
    let client = cluster(backend, 2, Scheme::LeastLoad);
    let Some(demo) = demo(&client) else { return };
    let scale = demo.func("scale");
    // `scale` fails where "factor" is not a number: on engine 0.
    client
        .view(vec![EngineId(0)])
        .set("factor", Value::from("none"))
        .unwrap();
    client
        .view(vec![EngineId(1)])
        .set("factor", Value::from(2.0))
        .unwrap();
    let lb = client.load_balanced_view().retries(3);
    for i in 0..6 {
        // Both idle: least load picks engine 0 first, where it fails.
        let r = lb.apply(&scale, [Value::from(i as f64)]).unwrap();
        assert_eq!(r.get(PATIENCE).unwrap(), Value::from(2.0 * i as f64));
        let m = meta(&r);
        assert!(m.attempts <= 2, "never twice on engine 0: {m:?}");
        assert_eq!(m.engine_id, Some(EngineId(1)));
    }
    // Out of retries: the last failure, counted.
    let hopeless = client
        .load_balanced_view()
        .retries(2)
        .apply(&demo.func("boom"), ["again"])
        .unwrap();
    assert!(hopeless.get(PATIENCE).is_err());
    assert_eq!(meta(&hopeless).attempts, 3);
}

/// A chain whose head runs on engine 1 when engine 1 dies; engine 0 is
/// kept busy meanwhile by a task pinned to it.
fn chain_across_a_death(backend: Backend, retries: u32) -> (Cluster, Vec<AsyncResult>) {
    let client = cluster(backend, 2, Scheme::LeastLoad);
    let Some(demo) = demo(&client) else {
        return (client, Vec::new());
    };
    let (sleep, square) = (demo.func("sleep_ms"), demo.func("square"));
    let lb = client.load_balanced_view();
    let pinned = lb
        .clone()
        .targets(vec![EngineId(0)])
        .apply(&sleep, [500])
        .unwrap();
    let head = lb.clone().retries(retries).apply(&sleep, [1500]).unwrap();
    let second = lb.clone().after(&head).apply(&square, [2]).unwrap();
    let third = lb.clone().after(&second).apply(&square, [3]).unwrap();
    wait_until_running(&client, &head, EngineId(1));
    assert!(client.kill_engine(EngineId(1)));
    let _ = pinned.get(PATIENCE);
    (client, vec![head, second, third])
}

fn an_engine_dying_in_a_chain_fails_the_chain_without_retries(backend: Backend) {
    let (_client, chain) = chain_across_a_death(backend, 0);
    let [head, second, third] = &chain[..] else {
        return;
    };
    match head.get(PATIENCE) {
        Err(Error::Remote(e)) => assert_eq!(e.kind(), "engine_died", "{e}"),
        other => panic!("expected engine_died, got {other:?}"),
    }
    for link in [second, third] {
        match link.get(PATIENCE) {
            Err(Error::Remote(e)) => assert_eq!(e.kind(), "impossible_dependency", "{e}"),
            other => panic!("expected an impossible dependency, got {other:?}"),
        }
    }
}

fn an_engine_dying_in_a_chain_is_survived_with_retries(backend: Backend) {
    let (_client, chain) = chain_across_a_death(backend, 1);
    let [head, second, third] = &chain[..] else {
        return;
    };
    assert_eq!(third.get(PATIENCE).unwrap(), Value::from(9));
    assert_eq!(second.get(PATIENCE).unwrap(), Value::from(4));
    assert_eq!(head.get(PATIENCE).unwrap(), Value::from(1500));
    assert_eq!(meta(head).attempts, 2);
    assert!(meta(second).started >= meta(head).completed);
}

fn the_pure_scheme_runs_balanced_work_without_a_scheduler(backend: Backend) {
    let client = cluster(backend, 2, Scheme::Pure);
    let square = client
        .load_module(grid_examples::wat_square())
        .unwrap()
        .func("square");
    let lb = client.load_balanced_view();
    let items: Vec<Value> = (0..500).map(Value::from).collect();
    let values = lb.map_sync(&square, vec![items]).unwrap();
    assert_eq!(values[499], Value::from(499 * 499));
    let give_up = Instant::now() + Duration::from_secs(30);
    while client.scheme() != Some(Scheme::Pure) {
        assert!(
            Instant::now() < give_up,
            "the client never learnt the scheme"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let values = lb
        .map_sync(&square, vec![(0..500).map(Value::from).collect()])
        .unwrap();
    assert_eq!(values.len(), 500);
    // Every task is recorded by the controller (which may read the result
    // a moment after the client).
    let r = lb.apply(&square, [12]).unwrap();
    assert_eq!(r.get(PATIENCE).unwrap(), Value::from(144));
    while client.result_status(r.msg_ids()).unwrap().0 != r.msg_ids() {
        assert!(Instant::now() < give_up, "the controller never recorded it");
        std::thread::sleep(Duration::from_millis(20));
    }
    // What needs a scheduler is refused, saying why.
    match lb.clone().retries(1).apply(&square, [1]) {
        Err(Error::Usage(why)) => assert!(why.contains("pure"), "{why}"),
        other => panic!(
            "expected a usage error, got {:?}",
            other.map(|r| r.msg_ids())
        ),
    }
}

/// The metadata of `r`'s one task, once done.
fn meta(r: &AsyncResult) -> grid_client::Metadata {
    r.wait(PATIENCE);
    r.metadata().remove(0)
}

/// Waits until `engine` says it runs `r`'s task.
fn wait_until_running(client: &Cluster, r: &AsyncResult, engine: EngineId) {
    let give_up = Instant::now() + Duration::from_secs(30);
    let id = r.msg_ids()[0];
    loop {
        let status = client.queue_status().expect("queue status");
        if status.engines.get(&engine).and_then(|q| q.current) == Some(id) {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "the task never ran on engine {engine}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
