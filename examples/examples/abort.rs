//! Abort: queued tasks are dropped and running ones interrupted (through
//! wasmtime's epochs: ipyparallel can only drop queued ones), each ending
//! with status `aborted`; the engine goes on with its next task. A map's
//! abort stops the tasks not done yet and keeps the items already computed.
//! Run it with `cargo run -p grid-examples --example abort`.

use std::time::{Duration, Instant};

use grid_client::{Client, EngineId, Error, Status, Value};

/// `spin(x)`: returns `x` when it is 0 or more, else loops forever.
const SPIN: &str = r#"(module
  (func (export "spin") (param $x i64) (result i64)
    (if (i64.lt_s (local.get $x) (i64.const 0))
      (then (loop $forever (br $forever))))
    (local.get $x)))"#;

const T: Option<Duration> = Some(Duration::from_secs(30));

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::local(2)?;
    let square = client
        .load_module(grid_examples::wat_square())?
        .func("square");
    let spin = client.module_from_bytes(SPIN.as_bytes())?.func("spin");

    // A task that never ends on engine 0, and one queued behind it.
    let e0 = client.view_one(EngineId(0));
    let running = e0.apply_async(&spin, [Value::from(-1)])?;
    let queued = e0.apply_async(&square, [Value::from(3)])?;
    // Wait until the engine reports the spin as its current task (its
    // heartbeat says so within a second), so the abort interrupts it.
    let give_up = Instant::now() + Duration::from_secs(30);
    while client
        .queue_status()?
        .engines
        .get(&EngineId(0))
        .and_then(|q| q.current)
        != Some(running.msg_ids()[0])
    {
        assert!(Instant::now() < give_up, "the spin never started");
        std::thread::sleep(Duration::from_millis(20));
    }

    // rc.abort([ar1, ar2]) (ipyparallel's aborts only queued tasks). Both at
    // once: aborting the running one alone would free the engine, which
    // would take the queued task at once.
    client.abort_results(&[&queued, &running])?;
    for (name, r) in [("running", &running), ("queued", &queued)] {
        let Err(Error::Remote(e)) = r.get(T) else {
            return Err(format!("the {name} task should have been aborted").into());
        };
        println!("{name} task: {e}");
        assert_eq!(e.kind(), "aborted");
        assert_eq!(r.metadata()[0].status, Some(Status::Aborted));
    }
    // The engine survived the interrupted task and runs the next one.
    assert_eq!(e0.apply_sync(&square, [Value::from(5)])?, Value::from(25));

    // A map of 4 quick items, then 4 that never end: 2 of those run (one
    // per engine) and 2 wait behind them. Take the quick ones, abort.
    let mut xs = vec![Value::from(7); 4];
    xs.extend(vec![Value::from(-1); 4]);
    let map = client.load_balanced_view().map_async(&spin, vec![xs])?;
    let quick: Vec<Value> = map.iter().take(4).collect::<Result<_, _>>()?;
    assert_eq!(quick, vec![Value::from(7); 4]);
    map.abort()?;
    // Per item: what finished keeps its value, the rest ends `aborted`.
    let items = map.results(T)?;
    let kinds: Vec<&str> = items
        .iter()
        .map(|item| item.as_ref().map_or_else(|e| e.kind(), |_| "ok"))
        .collect();
    println!("map items after abort: {kinds:?}");
    assert_eq!(
        kinds,
        [
            "ok", "ok", "ok", "ok", "aborted", "aborted", "aborted", "aborted"
        ]
    );
    assert_eq!(items[0], Ok(Value::from(7)));

    // Both engines go on.
    let all = client.view_all()?;
    assert_eq!(
        all.apply_sync(&square, [Value::from(4)])?,
        Value::from(vec![16, 16])
    );
    Ok(())
}
