//! The client library against whole clusters, each test once on the
//! LocalBus and once on a real nats-server (`local::` and `nats::`): apply
//! and map, direct and load-balanced, AsyncResult members, namespace data
//! movement, large values, failures, abort.

use std::collections::BTreeMap;
use std::time::Duration;

use grid_client::{EngineId, Error, Function, Status, Value, reference};
use grid_tests::{Backend, Cluster, on_both_buses};

const T: Option<Duration> = Some(Duration::from_secs(60));

on_both_buses!(
    apply_direct_and_load_balanced,
    map_ten_thousand_items_every_way,
    failures_in_the_middle_of_a_map,
    push_pull_scatter_gather_and_references,
    abort_queued_and_running_tasks,
    async_result_members_timeouts_and_streams,
    remote_errors_name_engine_function_and_kind,
    ten_megabyte_values_travel_through_the_blob_store,
);

fn cluster(backend: Backend) -> (Cluster, Function) {
    let client = grid_tests::cluster(backend, 2);
    let square = client
        .load_module(grid_examples::wat_square())
        .expect("module uploads")
        .func("square");
    (client, square)
}

fn apply_direct_and_load_balanced(backend: Backend) {
    let (client, square) = cluster(backend);
    assert_eq!(client.ids().unwrap(), vec![EngineId(0), EngineId(1)]);
    let lb = client.load_balanced_view();
    assert_eq!(
        lb.apply_sync(&square, [Value::from(7)]).unwrap(),
        Value::from(49)
    );
    let one = client.view_one(EngineId(1));
    assert_eq!(
        one.apply_sync(&square, [Value::from(3)]).unwrap(),
        Value::from(9)
    );
    let all = client.view_all().unwrap();
    let r = all.apply_async(&square, [Value::from(5)]).unwrap();
    assert_eq!(r.get(T).unwrap(), Value::from(vec![25, 25]));
    let by_engine = r.get_dict(T).unwrap();
    assert_eq!(
        by_engine.keys().copied().collect::<Vec<_>>(),
        vec![EngineId(0), EngineId(1)]
    );
    assert!(r.ready());
    assert_eq!(r.successful(), Some(true));
    assert_eq!(r.len(), 2);
    assert_eq!(r.progress(), 2);
    let md = r.metadata();
    assert_eq!(md[0].engine_id, Some(EngineId(0)));
    assert_eq!(md[0].status, Some(Status::Ok));
    assert!(md[0].started.unwrap() >= md[0].submitted);
    assert!(md[0].received.unwrap() >= md[0].completed.unwrap());
    assert!(r.wall_time() >= r.serial_time() / 2);
}

fn map_ten_thousand_items_every_way(backend: Backend) {
    let (client, square) = cluster(backend);
    let input: Vec<Value> = (0..10_000).map(Value::from).collect();
    let expected: Vec<Value> = (0..10_000i64).map(|i| Value::from(i * i)).collect();
    for chunksize in [1, 100] {
        let lb = client.load_balanced_view().chunksize(chunksize);
        assert_eq!(lb.map_sync(&square, vec![input.clone()]).unwrap(), expected);
        let unordered = lb.ordered(false).map(&square, vec![input.clone()]).unwrap();
        let mut got: Vec<Value> = unordered.iter().map(|r| r.unwrap()).collect();
        got.sort_by_key(|v| v.as_i64());
        assert_eq!(got, expected);
    }
    let direct = client.view_all().unwrap();
    assert_eq!(
        direct.map_sync(&square, vec![input.clone()]).unwrap(),
        expected
    );
    let ordered: Vec<Value> = client
        .load_balanced_view()
        .chunksize(7)
        .map(&square, vec![input])
        .unwrap()
        .iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(ordered, expected);
}

fn failures_in_the_middle_of_a_map(backend: Backend) {
    let (client, square) = cluster(backend);
    let mut input: Vec<Value> = (0..100).map(Value::from).collect();
    input[42] = Value::from("forty-two");
    let lb = client.load_balanced_view().chunksize(10);
    let r = lb.map(&square, vec![input.clone()]).unwrap();
    match r.get(T) {
        Err(Error::Remote(e)) => {
            assert_eq!(e.item, Some(42));
            assert_eq!(e.kind(), "bad_arguments");
            assert!(e.engine_id.is_some());
        }
        other => panic!("expected one remote error, got {other:?}"),
    }
    let per_item = r.results(T).unwrap();
    assert_eq!(per_item[41], Ok(Value::from(41 * 41)));
    assert!(per_item[42].is_err());
    assert_eq!(per_item[43], Ok(Value::from(43 * 43)));
    // Engines keep serving.
    assert_eq!(
        lb.apply_sync(&square, [Value::from(2)]).unwrap(),
        Value::from(4)
    );
}

fn push_pull_scatter_gather_and_references(backend: Backend) {
    let (client, square) = cluster(backend);
    let all = client.view_all().unwrap();
    let mut values = BTreeMap::new();
    values.insert("a".to_string(), Value::from(5));
    all.push(values).unwrap().get(T).unwrap();
    assert_eq!(
        all.pull("a").unwrap().get(T).unwrap(),
        Value::from(vec![5, 5])
    );
    let e0 = client.view_one(EngineId(0));
    e0.set("b", Value::from("hello")).unwrap();
    assert_eq!(e0.get("b").unwrap(), Value::from("hello"));

    // ipyparallel's example: scatter the engine ids as `id`, then use a reference.
    let ids: Vec<Value> = client
        .ids()
        .unwrap()
        .into_iter()
        .map(|i| Value::from(i.0))
        .collect();
    all.scatter("id", ids, true).unwrap().get(T).unwrap();
    let r = all.apply(&square, [reference("id")]).unwrap();
    assert_eq!(r.get(T).unwrap(), Value::from(vec![0, 1]));

    let seq: Vec<Value> = (0..7).map(Value::from).collect();
    all.scatter("xs", seq.clone(), false)
        .unwrap()
        .get(T)
        .unwrap();
    assert_eq!(e0.get("xs").unwrap(), Value::from(vec![0, 1, 2, 3]));
    assert_eq!(all.gather("xs", T).unwrap(), seq);

    all.clear().unwrap().get(T).unwrap();
    match all.pull("a").unwrap().get(T) {
        Err(Error::Composite(c)) => assert_eq!(c.errors.len(), 2),
        other => panic!("expected both engines to miss `a`, got {other:?}"),
    }
}

const SPIN: &str = r#"(module (func (export "spin") (loop br 0)))"#;

fn abort_queued_and_running_tasks(backend: Backend) {
    let (client, square) = cluster(backend);
    let spin = client
        .module_from_bytes(SPIN.as_bytes())
        .unwrap()
        .func("spin");
    let e0 = client.view_one(EngineId(0));
    let running = e0.apply_async(&spin, Vec::<Value>::new()).unwrap();
    let queued = e0.apply_async(&square, [Value::from(3)]).unwrap();
    // Wait until the spin is running: the controller's queue status says so.
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while client
        .queue_status()
        .unwrap()
        .engines
        .get(&EngineId(0))
        .map_or(0, |q| q.running + q.queue)
        < 2
    {
        assert!(std::time::Instant::now() < give_up);
        std::thread::yield_now();
    }
    queued.abort().unwrap();
    running.abort().unwrap();
    assert!(matches!(running.get(T), Err(Error::Remote(e)) if e.kind() == "aborted"));
    assert!(matches!(queued.get(T), Err(Error::Remote(e)) if e.kind() == "aborted"));
    assert_eq!(running.metadata()[0].status, Some(Status::Aborted));
    // The engine goes on.
    assert_eq!(
        e0.apply_sync(&square, [Value::from(6)]).unwrap(),
        Value::from(36)
    );
}

fn async_result_members_timeouts_and_streams(backend: Backend) {
    let (client, square) = cluster(backend);
    let spin = client
        .module_from_bytes(SPIN.as_bytes())
        .unwrap()
        .func("spin");
    let e1 = client.view_one(EngineId(1));
    let slow = e1.apply_async(&spin, Vec::<Value>::new()).unwrap();
    assert!(!slow.ready());
    assert_eq!(slow.successful(), None);
    assert!(!slow.wait(Some(Duration::from_millis(20))));
    assert!(matches!(
        slow.get(Some(Duration::from_millis(20))),
        Err(Error::Timeout(_))
    ));
    assert_eq!(slow.progress(), 0);
    assert_eq!(slow.msg_ids().len(), 1);
    let (completed, pending) = client.result_status(slow.msg_ids()).unwrap();
    assert!(completed.is_empty());
    assert_eq!(pending, slow.msg_ids());
    slow.abort().unwrap();
    assert!(slow.wait(T));
    assert!(slow.elapsed() >= Duration::from_millis(20));

    // Results recorded by the controller can be fetched by msg_id.
    let r = client
        .load_balanced_view()
        .apply_async(&square, [Value::from(11)])
        .unwrap();
    assert_eq!(r.get(T).unwrap(), Value::from(121));
    // The controller records the reply on its own schedule: wait until it has.
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    let recorded = loop {
        let recorded = client.fetch_results(r.msg_ids()).unwrap();
        if !recorded.is_empty() {
            break recorded;
        }
        assert!(std::time::Instant::now() < give_up, "never recorded");
        std::thread::yield_now();
    };
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].msg_id, r.msg_ids()[0]);

    // The async Stream gives the same items as the blocking iterator.
    let lb = client.load_balanced_view().chunksize(3);
    let m = lb
        .map(&square, vec![(0..20).map(Value::from).collect()])
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let streamed: Vec<Value> = rt.block_on(async {
        use futures_util::StreamExt;
        m.stream().map(|r| r.unwrap()).collect().await
    });
    assert_eq!(
        streamed,
        (0..20i64).map(|i| Value::from(i * i)).collect::<Vec<_>>()
    );
    assert_eq!(m.items(), 20);
    assert_eq!(m.len(), 7, "20 items in chunks of 3");
    m.wait_interactive();
    assert!(m.serial_time() > Duration::ZERO);
}

const FAILING: &str = r#"(module
  (func $boom (export "boom") unreachable)
  (func (export "spin") (loop br 0))
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (memory 1))"#;

fn remote_errors_name_engine_function_and_kind(backend: Backend) {
    let (client, square) = cluster(backend);
    let m = client.module_from_bytes(FAILING.as_bytes()).unwrap();
    let e0 = client.view_one(EngineId(0));
    let err = |r: Result<Value, Error>| match r {
        Err(Error::Remote(e)) => e,
        other => panic!("expected a remote error, got {other:?}"),
    };
    let trap = err(e0.apply_sync(&m.func("boom"), Vec::<Value>::new()));
    assert_eq!(
        (trap.kind(), trap.engine_id, trap.function.as_str()),
        ("trap", Some(EngineId(0)), "boom")
    );
    assert!(trap.to_string().contains("unreachable"), "{trap}");
    let limited = e0.clone().limits(grid_client::Limits {
        wall_time_ms: Some(30),
        ..Default::default()
    });
    let limit = err(limited.apply_sync(&m.func("spin"), Vec::<Value>::new()));
    assert_eq!(limit.kind(), "limit");
    assert!(
        limit.to_string().contains("wall time limit of 30 ms"),
        "{limit}"
    );
    let missing = err(e0.apply_sync(&m.func("nope"), Vec::<Value>::new()));
    assert_eq!(missing.kind(), "export_missing");
    assert!(
        missing.to_string().contains("boom, grow, spin"),
        "{missing}"
    );
    let bad = err(e0.apply_sync(&square, [Value::from("x")]));
    assert_eq!(bad.kind(), "bad_arguments");
    let invalid = client.module_from_bytes(b"\0asm\x01\0\0\0garbage").unwrap();
    let invalid = err(e0.apply_sync(&invalid.func("f"), Vec::<Value>::new()));
    assert_eq!(invalid.kind(), "module_invalid");
    // After all that, both engines still serve.
    let all = client.view_all().unwrap();
    assert_eq!(
        all.apply_sync(&square, [Value::from(4)]).unwrap(),
        Value::from(vec![16, 16])
    );
}

fn ten_megabyte_values_travel_through_the_blob_store(backend: Backend) {
    let (client, _) = cluster(backend);
    let e0 = client.view_one(EngineId(0));
    let big = Value::Bytes((0..10 << 20).map(|i| (i % 251) as u8).collect());
    e0.set("big", big.clone()).unwrap();
    assert_eq!(e0.get("big").unwrap(), big);
}
