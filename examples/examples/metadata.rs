//! Metadata and timing: every result says where and when its tasks ran,
//! how they ended and what they printed, and how far along it is; the
//! client waits for engines, for several results at once, and lists what is
//! still outstanding.
//! Run it with `cargo run -p grid-examples --example metadata`.

use std::time::Duration;

use grid_client::{Client, EngineId, Status, Value};

/// Prints a line to stdout through WASI, then returns `x * x`.
const GREET: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from a guest\n")
  (func (export "greet") (param $x i64) (result i64)
    ;; One iovec at 0: the 19 bytes at 16; the count written goes to 8.
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 19))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i64.mul (local.get $x) (local.get $x))))"#;

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::local(2)?;
    // rc.wait_for_engines(2, timeout=10): a script started before its
    // cluster waits here (a local cluster's engines are already up).
    let engines = client.wait_for_engines(2, Some(Duration::from_secs(10)))?;
    assert_eq!(engines.len(), 2);
    let square = client
        .load_module(grid_examples::wat_square())?
        .func("square");
    let greet = client.module_from_bytes(GREET.as_bytes())?.func("greet");

    // ar.metadata: engine, timestamps, status and captured output.
    let r = client
        .view_one(EngineId(1))
        .apply_async(&greet, [Value::from(6)])?;
    // ar.wait(timeout), then ar.ready(): ar.progress tasks of len(ar) are done.
    assert!(r.wait(Some(Duration::from_secs(30))));
    assert!(r.ready());
    assert_eq!((r.progress(), r.len()), (1, 1));
    assert_eq!(r.get(None)?, Value::from(36));
    let md = &r.metadata()[0];
    println!(
        "engine {:?}, status {:?}, stdout {:?}",
        md.engine_id,
        md.status,
        String::from_utf8_lossy(&md.stdout)
    );
    assert_eq!(md.engine_id, Some(EngineId(1)));
    assert_eq!(md.status, Some(Status::Ok));
    assert_eq!(md.stdout, b"hello from a guest\n");
    let (Some(started), Some(completed)) = (md.started, md.completed) else {
        return Err("a finished task has its start and end times".into());
    };
    assert!(md.submitted <= started && started <= completed);

    // ar.elapsed, ar.serial_time (the sum of the tasks' run times on their
    // engines) and ar.wall_time (first submission to last completion).
    let map = client
        .load_balanced_view()
        .chunksize(10)
        .map_async(&square, vec![(0..100).map(Value::from).collect()])?;
    let one = client
        .load_balanced_view()
        .apply_async(&square, [Value::from(9)])?;
    println!(
        "outstanding right after submitting: {}",
        client.outstanding().len()
    );

    // rc.wait([one, map], timeout): a result and a map result together.
    assert!(client.wait(&[&one, &map], Some(Duration::from_secs(30))));
    // rc.outstanding: nothing of this client's is waiting any more.
    assert!(client.outstanding().is_empty());
    assert_eq!((map.progress(), map.len(), map.items()), (10, 10, 100));
    println!(
        "map of {} items in {} tasks: elapsed {:?}, wall {:?}, serial {:?}",
        map.items(),
        map.len(),
        map.elapsed(),
        map.wall_time(),
        map.serial_time()
    );
    assert!(map.wall_time() <= map.elapsed());
    assert_eq!(map.metadata().len(), 10); // one per task, not per item
    assert!(map.metadata().iter().all(|m| m.status == Some(Status::Ok)));
    Ok(())
}
