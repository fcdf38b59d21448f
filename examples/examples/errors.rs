//! Errors: a task that fails on an engine comes back as a `RemoteError`
//! naming the engine, the function, the item of a map and the kind of
//! failure (a trap with its wasm backtrace, bad arguments, a missing export,
//! ...); several failures of one result come as a `CompositeError`, as in
//! ipyparallel; a `get` that runs out of time is `Error::Timeout`. A map can
//! also hand back every item's own `Result` instead of failing as a whole.
//! Run it with `cargo run -p grid-examples --example errors`.

use std::time::Duration;

use grid_client::{Client, EngineId, Error, RemoteError, Value};

const FAILING: &str = r#"(module
  (func (export "boom") (param i64) (result i64) unreachable)
  (func (export "spin") (param i64) (result i64) (loop $forever (br $forever)) unreachable))"#;

/// The `RemoteError` of a failed call (or why it is not one).
fn remote(result: Result<Value, Error>) -> Result<RemoteError, Box<dyn std::error::Error>> {
    match result {
        Err(Error::Remote(e)) => Ok(*e),
        other => Err(format!("expected a remote error, got {other:?}").into()),
    }
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::local(2)?;
    let square = client
        .load_module(grid_examples::wat_square())?
        .func("square");
    let failing = client.module_from_bytes(FAILING.as_bytes())?;
    let e0 = client.view_one(EngineId(0));

    // A trap (ipyparallel: a RemoteError carrying the engine's traceback).
    let trap = remote(e0.apply_sync(&failing.func("boom"), [Value::from(1)]))?;
    println!("{}", trap.summary());
    assert_eq!(trap.kind(), "trap");
    assert_eq!(
        (trap.engine_id, trap.function.as_str()),
        (Some(EngineId(0)), "boom")
    );
    assert!(trap.to_string().contains("unreachable"), "{trap}");

    // Arguments the function cannot take: square wants an integer.
    let bad = remote(e0.apply_sync(&square, [Value::from("seven")]))?;
    println!("{}", bad.summary());
    assert_eq!(bad.kind(), "bad_arguments");

    // An export the module does not have: the error lists those it has.
    let missing = remote(e0.apply_sync(&failing.func("nope"), [Value::from(1)]))?;
    println!("{}", missing.summary());
    assert_eq!(missing.kind(), "export_missing");
    assert!(missing.to_string().contains("boom, spin"), "{missing}");

    // A map with several failures: one CompositeError, each part naming its item.
    let mut xs: Vec<Value> = (0..10).map(Value::from).collect();
    xs[3] = Value::from("three");
    xs[7] = Value::Null;
    let lb = client.load_balanced_view().chunksize(2);
    let map = lb.map_async(&square, vec![xs])?;
    let Err(Error::Composite(composite)) = map.get(None) else {
        return Err("expected two failed items".into());
    };
    println!("{composite}");
    let failed: Vec<Option<usize>> = composite.errors.iter().map(|e| e.item).collect();
    assert_eq!(failed, [Some(3), Some(7)]);
    assert!(composite.errors.iter().all(|e| e.kind() == "bad_arguments"));

    // The same map, item by item: the other eight values are all there.
    let items = map.results(None)?;
    assert_eq!(items[2], Ok(Value::from(4)));
    assert!(items[3].is_err());
    assert_eq!(items.iter().filter(|item| item.is_ok()).count(), 8);

    // ar.get(timeout=0.05) on a task that takes longer: a TimeoutError, and
    // the task goes on (abort it to stop it).
    let slow = e0.apply_async(&failing.func("spin"), [Value::from(1)])?;
    let short = Duration::from_millis(50);
    assert!(matches!(slow.get(Some(short)), Err(Error::Timeout(t)) if t == short));
    slow.abort()?;

    // None of this hurt the engines.
    assert_eq!(e0.apply_sync(&square, [Value::from(6)])?, Value::from(36));
    Ok(())
}
