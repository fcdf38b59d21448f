//! Data movement and references: each engine has a namespace of named
//! values. A `DirectView` pushes and pulls them, sets and gets them like a
//! dict, scatters a sequence over its engines and gathers it back, and a
//! task argument may be `reference("name")`, which the engine resolves from
//! its namespace before the call.
//! Run it with `cargo run -p grid-examples --example data`.

use std::collections::BTreeMap;

use grid_client::{Client, EngineId, Error, Value, reference};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::local(2)?;
    let square = client
        .load_module(grid_examples::wat_square())?
        .func("square");
    let all = client.view_all()?; // rc[:]
    let e0 = client.view_one(EngineId(0)); // rc[0]

    // dview.push({'a': 5}) and dview.pull('a'): one value per engine.
    let values = BTreeMap::from([("a".to_string(), Value::from(5))]);
    all.push(values)?.get(None)?;
    assert_eq!(all.pull("a")?.get(None)?, Value::from(vec![5, 5]));

    // dview['b'] = 'hello' and dview['b'], dict style (these wait).
    e0.set("b", Value::from("hello"))?;
    assert_eq!(e0.get("b")?, Value::from("hello"));

    // f(Reference('a')): the engine passes its own `a` to the function,
    // so the value never travels with the task.
    let lb = client.load_balanced_view();
    assert_eq!(lb.apply_sync(&square, [reference("a")])?, Value::from(25));

    // dview.scatter('id', rc.ids, flatten=True): engine 0 gets 0, engine 1
    // gets 1 (without flatten each would get a one-element list).
    let ids: Vec<Value> = client.ids()?.iter().map(|id| Value::from(id.0)).collect();
    all.scatter("id", ids, true)?.get(None)?;
    let squared_ids = all.apply_sync(&square, [reference("id")])?;
    println!("square(id) on each engine: {squared_ids}");
    assert_eq!(squared_ids, Value::from(vec![0, 1]));

    // dview.scatter('xs', range(7)) then dview.gather('xs'): contiguous
    // parts, the larger first, concatenated back in engine order.
    let xs: Vec<Value> = (0..7).map(Value::from).collect();
    all.scatter("xs", xs.clone(), false)?.get(None)?;
    println!("engine 0 holds xs = {}", e0.get("xs")?);
    assert_eq!(e0.get("xs")?, Value::from(vec![0, 1, 2, 3]));
    assert_eq!(all.gather("xs", None)?, xs);

    // dview.clear(): the namespaces are empty again, so pulling `a` fails on
    // both engines (two failures of one result: a CompositeError).
    all.clear()?.get(None)?;
    let Err(Error::Composite(missing)) = all.pull("a")?.get(None) else {
        return Err("expected both engines to miss `a`".into());
    };
    println!("after clear: {}", missing.errors[0].summary());
    assert_eq!(missing.errors.len(), 2);
    Ok(())
}
