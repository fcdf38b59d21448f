//! The README's "client library in ten lines", as a program: a test
//! (`examples/tests/readme.rs`) checks that the README shows exactly this
//! code and runs it, so the README never rots. Run it from the repository
//! root with `cargo run -p grid-examples --example readme`.

use grid_client::{Client, EngineId, Value, reference};

fn main() -> Result<(), grid_client::Error> {
    // A controller and 2 engines, in this process; no --url, no NATS.
    let client = Client::local(2)?;
    let module = client.load_module("examples/guests/wat/square.wat")?;
    let square = module.func("square");

    // Load-balanced: the scheduler places each task of 100 items.
    let lb = client.load_balanced_view().chunksize(100);
    let squares = lb.map_sync(&square, vec![(0..10_000).map(Value::from).collect()])?;
    assert_eq!(squares[9_999], Value::from(9_999i64 * 9_999));

    // Direct, on engine 0; the result carries its metadata.
    let r = client
        .view_one(EngineId(0))
        .apply_async(&square, [Value::from(7)])?;
    println!("{} on engine {:?}", r.get(None)?, r.metadata()[0].engine_id);

    // rc[:] in ipyparallel: every engine. Engine 0 gets id = 0, engine 1 id = 1,
    // and an argument may name a value in each engine's namespace.
    let all = client.select(..)?;
    let ids = vec![Value::from(0), Value::from(1)];
    all.scatter("id", ids, true)?.get(None)?;
    let squared = all.apply_sync(&square, [reference("id")])?;
    assert_eq!(squared, Value::from(vec![0, 1]));

    // A lazy map over any iterator, however long, in bounded memory.
    let mut total = 0;
    for value in lb.imap(&square, 0..100_000i64) {
        total += value?.as_i64().unwrap_or(0);
    }
    assert_eq!(total, 333_328_333_350_000);
    Ok(())
}
