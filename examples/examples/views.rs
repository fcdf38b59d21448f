//! Views and slices: where work goes. A `DirectView` sends each call to every
//! engine it names; `client.select(...)` picks engines by position as
//! ipyparallel's `rc[...]` does; a `LoadBalancedView` lets the scheduler pick.
//! Run it with `cargo run -p grid-examples --example views`.

use grid_client::{Client, EngineId, Value};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A controller and 4 engines in this process (ipyparallel: `ipcluster start -n 4`).
    let client = Client::local(4)?;
    let square = client
        .load_module(grid_examples::wat_square())?
        .func("square");
    let x = [Value::from(3)];

    // rc.ids
    let ids = client.ids()?;
    println!("engines: {ids:?}");
    assert_eq!(ids, [EngineId(0), EngineId(1), EngineId(2), EngineId(3)]);

    // One engine by id: its result is one value, not a list.
    let e2 = client.view_one(EngineId(2));
    assert_eq!(e2.apply_sync(&square, x.clone())?, Value::from(9));

    // Every engine registered now (rc[:]): one value per engine, in target order.
    let all = client.view_all()?;
    assert_eq!(all.apply_sync(&square, x.clone())?, Value::from(vec![9; 4]));

    // By position, evaluated now, with Python's slicing rules.
    let first = client.select(0)?; // rc[0]
    let last = client.select(-1)?; // rc[-1]
    let middle = client.select(1..3)?; // rc[1:3]
    let every = client.select(..)?; // rc[:]
    let even = client.select((.., 2))?; // rc[::2]
    assert_eq!(first.targets(), [EngineId(0)]);
    assert_eq!(last.targets(), [EngineId(3)]);
    assert_eq!(middle.targets(), [EngineId(1), EngineId(2)]);
    assert_eq!(every.targets(), &ids[..]);
    assert_eq!(even.targets(), [EngineId(0), EngineId(2)]);
    for (name, view) in [
        ("rc[0]", &first),
        ("rc[-1]", &last),
        ("rc[1:3]", &middle),
        ("rc[:]", &every),
        ("rc[::2]", &even),
    ] {
        // An index gives a one-engine view (a value); a slice a list, even of one.
        let value = view.apply_sync(&square, x.clone())?;
        println!("{name:8} {:?} -> {value}", view.targets());
    }
    assert_eq!(last.apply_sync(&square, x.clone())?, Value::from(9));
    assert_eq!(
        even.apply_sync(&square, x.clone())?,
        Value::from(vec![9, 9])
    );

    // The result says which engine answered each part (ar.get_dict()).
    let by_engine = even.apply_async(&square, x.clone())?.get_dict(None)?;
    assert_eq!(
        by_engine.keys().copied().collect::<Vec<_>>(),
        even.targets()
    );

    // rc.load_balanced_view(): the scheduler picks one engine per task.
    let lb = client.load_balanced_view();
    let r = lb.apply_async(&square, x.clone())?;
    assert_eq!(r.get(None)?, Value::from(9));
    println!(
        "load-balanced: ran on engine {:?}",
        r.metadata()[0].engine_id
    );

    // view.block = True: apply waits, and its AsyncResult is ready at once.
    let r = every.clone().block(true).apply(&square, x.clone())?;
    assert!(r.ready());
    assert_eq!(r.get(None)?, Value::from(vec![9; 4]));
    let r = lb.clone().block(true).apply(&square, x)?;
    assert!(r.ready());
    Ok(())
}
