//! What only a cluster on a real NATS server can do: lose its server.

use std::time::{Duration, Instant};

use grid_client::{EngineId, Error, Value};
use grid_tests::Backend;

#[test]
fn a_server_going_away_fails_waiting_tasks_instead_of_hanging() {
    let mut cluster = grid_tests::cluster(Backend::Nats, 1);
    let spin = cluster
        .module_from_bytes(br#"(module (func (export "spin") (loop br 0)))"#)
        .unwrap()
        .func("spin");
    let running = cluster
        .view_one(EngineId(0))
        .apply_async(&spin, Vec::<Value>::new())
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    while cluster.queue_status().unwrap().engines[&EngineId(0)]
        .current
        .is_none()
    {
        assert!(Instant::now() < give_up, "the task never started");
        std::thread::yield_now();
    }
    cluster.nats_server().expect("a NATS cluster").stop();
    let stopped = Instant::now();
    match running.get(Some(Duration::from_secs(60))) {
        Err(Error::Remote(e)) => {
            assert_eq!(e.kind(), "disconnected", "{e}");
            assert!(e.to_string().contains("unreachable"), "{e}");
        }
        other => panic!("expected a disconnected error, got {other:?}"),
    }
    assert!(
        stopped.elapsed() < Duration::from_secs(30),
        "took {:?}",
        stopped.elapsed()
    );
}
