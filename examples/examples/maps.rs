//! Maps and imap: one function over many inputs. `map` takes whole
//! sequences and gives an `AsyncMapResult` (values in input order, or as
//! they complete); `imap` pulls items lazily from any iterator with a bounded
//! number of tasks in flight, so its memory stays flat whatever the length.
//! Run it with `cargo run -p grid-examples --example maps` (add `--release`
//! to map the million items in a second rather than some twenty).

use futures_util::StreamExt;
use grid_client::{Client, Value};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(1_000_000)
}

/// Everything, with an imap over `n` items (the test passes fewer: a debug
/// build of the engines spends some 20 us per item, a release build far less).
pub fn run(n: i64) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::local(2)?;
    let module = client.load_module(grid_examples::wat_square())?;
    let square = module.func("square");
    let hypot = module.func("hypot");
    let lb = client.load_balanced_view();
    let xs: Vec<Value> = (0..10).map(Value::from).collect();
    let squares: Vec<Value> = (0..10i64).map(|x| Value::from(x * x)).collect();

    // lview.map_sync(square, xs): one sequence per argument of the function.
    assert_eq!(lb.map_sync(&square, vec![xs.clone()])?, squares);

    // lview.map_async(...).get(): submit now, collect later.
    let r = lb.map_async(&square, vec![xs.clone()])?;
    assert_eq!(r.get(None)?, squares);

    // for v in amr: items as their tasks finish, in input order...
    let in_order: Vec<Value> = r.iter().collect::<Result<_, _>>()?;
    assert_eq!(in_order, squares);
    // ...or, with ordered=False, in the order they complete.
    let r = lb.clone().ordered(false).map(&square, vec![xs.clone()])?;
    let mut as_done = Vec::new();
    for value in &r {
        as_done.push(value?.as_i64().unwrap_or(0));
    }
    as_done.sort();
    assert_eq!(as_done, (0..10).map(|x| x * x).collect::<Vec<i64>>());

    // chunksize=4: 10 items travel as 3 tasks (4 + 4 + 2), one engine call each.
    let r = lb.clone().chunksize(4).map(&square, vec![xs])?;
    assert_eq!((r.items(), r.len()), (10, 3));
    assert_eq!(r.get(None)?, squares);

    // map(hypot, [3, 5, 8], [4, 12, 15]): several sequences are zipped.
    let a = vec![Value::from(3.0), Value::from(5.0), Value::from(8.0)];
    let b = vec![Value::from(4.0), Value::from(12.0), Value::from(15.0)];
    let hypots = lb.map_sync(&hypot, vec![a, b])?;
    println!("hypot: {}", Value::from(hypots.clone()));
    assert_eq!(hypots, [5.0, 13.0, 17.0].map(Value::from));

    // lview.imap(square, range(1_000_000)): a lazy iterator in, results out
    // as they come; at most `max_outstanding` chunks of 1,000 are in flight,
    // so neither the input nor the results are ever all in memory.
    let mut total = 0i64;
    for value in lb.clone().chunksize(1000).imap(&square, 0..n) {
        total += value?.as_i64().unwrap_or(0);
    }
    println!("sum of the squares below {n}: {total}");
    assert_eq!(total, (n - 1) * n * (2 * n - 1) / 6); // 333_332_833_333_500_000 for a million

    // The same as an async Stream. It only waits on results and never
    // spawns, so it runs on any executor: here futures' own block_on, no tokio.
    let stream = lb
        .clone()
        .chunksize(100)
        .imap(&square, 0..10_000i64)
        .into_stream();
    let total = futures_executor::block_on(async {
        let mut stream = std::pin::pin!(stream);
        let mut total = 0i64;
        while let Some(value) = stream.next().await {
            total += value?.as_i64().unwrap_or(0);
        }
        Ok::<_, grid_client::RemoteError>(total)
    })?;
    println!("sum of the squares below 10,000, streamed: {total}");
    assert_eq!(total, 333_283_335_000);
    Ok(())
}
