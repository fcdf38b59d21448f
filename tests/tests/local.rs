//! The client library against a local cluster (controller + engines on the
//! LocalBus): apply and map, direct and load-balanced, AsyncResult members,
//! namespace data movement, failures, abort.

use std::collections::BTreeMap;
use std::time::Duration;

use grid_client::{Client, EngineId, Error, Function, Status, Value, reference};

const T: Option<Duration> = Some(Duration::from_secs(60));

fn cluster() -> (Client, Function) {
    let client = Client::local(2).expect("local cluster starts");
    let square = client
        .load_module(grid_examples::wat_square())
        .expect("module uploads")
        .func("square");
    (client, square)
}

#[test]
fn apply_direct_and_load_balanced() {
    let (client, square) = cluster();
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

#[test]
fn map_ten_thousand_items_every_way() {
    let (client, square) = cluster();
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

#[test]
fn failures_in_the_middle_of_a_map() {
    let (client, square) = cluster();
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

#[test]
fn push_pull_scatter_gather_and_references() {
    let (client, square) = cluster();
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

#[test]
fn abort_queued_and_running_tasks() {
    let (client, square) = cluster();
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
