//! Engine tests on modules written in WAT: the numeric ABI, argument
//! checking, invalid modules, traps with backtraces, every limit, abort,
//! references, commands and the disk cache. Each failure is followed by a
//! successful task on the same engine, to show the engine keeps serving.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grid_host::{Engine, EngineConfig, Runtime};
use grid_proto::{
    Arg, Call, EngineId, LimitKind, Limits, ModuleHash, Status, Task, TaskError, TaskResult,
    TrapKind, Value,
};

fn runtime(config: EngineConfig) -> Arc<Runtime> {
    Runtime::new(config.cache_dir(None)).expect("runtime starts")
}

fn engine() -> (Engine, ModuleHash) {
    let rt = runtime(EngineConfig::default());
    let square = rt
        .load(&std::fs::read(grid_examples::wat_square()).unwrap())
        .unwrap();
    (rt.engine(EngineId(0)), square)
}

fn call(engine: &mut Engine, module: ModuleHash, f: &str, args: Vec<Value>) -> TaskResult {
    engine.run(&Task::call(module, f, args))
}

fn err(result: &TaskResult) -> &TaskError {
    match result.value() {
        Err(e) => e,
        Ok(v) => panic!("expected an error, got {v}"),
    }
}

/// The engine still works: square(12) on the WAT example.
fn still_serves(engine: &mut Engine) {
    let rt = engine.runtime().clone();
    let square = rt
        .load(&std::fs::read(grid_examples::wat_square()).unwrap())
        .unwrap();
    assert_eq!(
        call(engine, square, "square", vec![Value::from(12)]).value(),
        Ok(&Value::from(144))
    );
}

#[test]
fn wat_example_square_and_two_arguments() {
    let (mut e, m) = engine();
    let r = call(&mut e, m, "square", vec![Value::from(9)]);
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(r.value(), Ok(&Value::from(81)));
    assert!(r.completed >= r.started);
    assert_eq!(r.fingerprint.module, m);
    assert_eq!(r.fingerprint.fuel_used, None);
    let r = call(&mut e, m, "hypot", vec![Value::from(3), Value::Float(4.0)]);
    assert_eq!(r.value(), Ok(&Value::Float(5.0)));
}

#[test]
fn numeric_arguments_are_checked() {
    let (mut e, m) = engine();
    let cases = [
        (
            vec![Value::from("seven")],
            "expected an integer for i64, got string",
        ),
        (vec![Value::Float(1.5)], "got float 1.5"),
        (vec![], "takes 1 argument (i64), got 0"),
        (vec![Value::from(1), Value::from(2)], "got 2"),
    ];
    for (args, expected) in cases {
        let r = call(&mut e, m, "square", args);
        let e = err(&r);
        assert_eq!(e.kind(), "bad_arguments");
        assert!(e.to_string().contains(expected), "{e}");
    }
    let rt = e.runtime().clone();
    let m32 = rt
        .load(br#"(module (func (export "neg") (param i32) (result i32) i32.const 0 local.get 0 i32.sub))"#)
        .unwrap();
    let r = call(&mut e, m32, "neg", vec![Value::from(1i64 << 40)]);
    assert!(
        err(&r)
            .to_string()
            .contains("1099511627776 does not fit i32"),
        "{}",
        err(&r)
    );
    assert_eq!(
        call(&mut e, m32, "neg", vec![Value::from(5)]).value(),
        Ok(&Value::from(-5))
    );
    still_serves(&mut e);
}

#[test]
fn missing_exports_list_what_the_module_exports() {
    let (mut e, m) = engine();
    let r = call(&mut e, m, "cube", vec![Value::from(2)]);
    match err(&r) {
        TaskError::ExportMissing { name, exports } => {
            assert_eq!(name, "cube");
            assert_eq!(exports, &vec!["hypot".to_string(), "square".to_string()]);
        }
        other => panic!("{other}"),
    }
    assert!(
        err(&r)
            .to_string()
            .contains("the module exports: hypot, square")
    );
}

#[test]
fn invalid_modules_are_reported_with_the_reason() {
    let rt = runtime(EngineConfig::default());
    let e = rt.load(b"\0asm\x01\0\0\0\x99garbage").unwrap_err();
    assert_eq!(e.kind(), "module_invalid");
    let e = rt
        .load(b"(module (func (export \"f\") (result i32) i64.const 1))")
        .unwrap_err();
    assert!(e.to_string().contains("type mismatch"), "{e}");
    let e = rt
        .load(b"(module (import \"env\" \"nope\" (func)))")
        .unwrap_err();
    assert!(e.to_string().contains("cannot link"), "{e}");
    assert!(e.to_string().contains("nope"), "{e}");
    let mut engine = rt.engine(EngineId(0));
    let r = engine.run(&Task::call(ModuleHash::of(b"never loaded"), "f", vec![]));
    assert_eq!(err(&r).kind(), "module_not_found");
    still_serves(&mut engine);
}

const TRAPS: &str = r#"(module
  (memory 1)
  (func $inner (export "boom") unreachable)
  (func $outer (export "outer") call $inner)
  (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func (export "oob") (result i32) i32.const 100000 i32.load)
  (func $recurse (export "recurse") (param i64) (result i64)
    local.get 0 i64.const 1 i64.add call $recurse)
  (func (export "spin") (loop br 0))
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))"#;

#[test]
fn traps_carry_kind_message_and_named_backtrace() {
    let rt = runtime(EngineConfig::default());
    let m = rt.load(TRAPS.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    let r = call(&mut e, m, "outer", vec![]);
    match err(&r) {
        TaskError::Trap {
            kind, backtrace, ..
        } => {
            assert_eq!(*kind, TrapKind::Unreachable);
            let names: Vec<_> = backtrace
                .iter()
                .filter_map(|f| f.func_name.as_deref())
                .collect();
            assert_eq!(names, ["inner", "outer"]);
        }
        other => panic!("{other}"),
    }
    let r = call(&mut e, m, "div", vec![Value::from(1), Value::from(0)]);
    assert!(
        matches!(
            err(&r),
            TaskError::Trap {
                kind: TrapKind::IntegerDivisionByZero,
                ..
            }
        ),
        "{}",
        err(&r)
    );
    let r = call(&mut e, m, "oob", vec![]);
    assert!(matches!(
        err(&r),
        TaskError::Trap {
            kind: TrapKind::MemoryOutOfBounds,
            ..
        }
    ));
    let r = call(&mut e, m, "recurse", vec![Value::from(0)]);
    assert!(
        matches!(
            err(&r),
            TaskError::Trap {
                kind: TrapKind::StackOverflow,
                ..
            }
        ),
        "{}",
        err(&r)
    );
    still_serves(&mut e);
}

#[test]
fn wall_time_limit_stops_a_loop() {
    let rt = runtime(EngineConfig::default());
    let m = rt.load(TRAPS.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    let task = Task::call(m, "spin", vec![]).with_limits(Limits {
        wall_time_ms: Some(50),
        ..Limits::default()
    });
    let r = e.run(&task);
    assert_eq!(
        err(&r),
        &TaskError::Limit {
            limit: LimitKind::WallTime,
            value: 50
        }
    );
    assert_eq!(err(&r).to_string(), "wall time limit of 50 ms exceeded");
    still_serves(&mut e);
}

#[test]
fn memory_limit_stops_growth_and_is_lowered_never_raised() {
    let config = EngineConfig::default().limits(Limits {
        memory_bytes: Some(4 << 20),
        ..EngineConfig::default().limits
    });
    let rt = runtime(config);
    let m = rt.load(TRAPS.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    // 1 page + 16 pages = 1.06 MiB: within 4 MiB.
    assert_eq!(
        call(&mut e, m, "grow", vec![Value::from(16)]).value(),
        Ok(&Value::from(1))
    );
    let r = call(&mut e, m, "grow", vec![Value::from(100)]);
    assert_eq!(
        err(&r),
        &TaskError::Limit {
            limit: LimitKind::Memory,
            value: 4 << 20
        }
    );
    // A task may lower the limit...
    let lowered = Task::call(m, "grow", vec![Value::from(16)]).with_limits(Limits {
        memory_bytes: Some(1 << 20),
        ..Limits::default()
    });
    assert!(
        matches!(err(&e.run(&lowered)), TaskError::Limit { limit: LimitKind::Memory, value } if *value == 1 << 20)
    );
    // ...but not raise it.
    let raised = Task::call(m, "grow", vec![Value::from(100)]).with_limits(Limits {
        memory_bytes: Some(1 << 30),
        ..Limits::default()
    });
    assert!(
        matches!(err(&e.run(&raised)), TaskError::Limit { limit: LimitKind::Memory, value } if *value == 4 << 20)
    );
    still_serves(&mut e);
}

#[test]
fn fuel_is_metered_limited_and_reproducible() {
    let rt = runtime(EngineConfig::default().fuel_metering(true));
    let m = rt.load(TRAPS.as_bytes()).unwrap();
    let sq = rt
        .load(&std::fs::read(grid_examples::wat_square()).unwrap())
        .unwrap();
    let mut e = rt.engine(EngineId(0));
    let task = Task::call(m, "spin", vec![]).with_limits(Limits {
        fuel: Some(100_000),
        ..Limits::default()
    });
    assert_eq!(
        err(&e.run(&task)),
        &TaskError::Limit {
            limit: LimitKind::Fuel,
            value: 100_000
        }
    );
    let a = call(&mut e, sq, "square", vec![Value::from(3)]);
    let b = call(&mut e, sq, "square", vec![Value::from(3)]);
    assert!(a.fingerprint.fuel_used.unwrap() > 0);
    assert_eq!(a.fingerprint, b.fingerprint, "same work, same fingerprint");
    let c = call(&mut e, sq, "square", vec![Value::from(4)]);
    assert_ne!(a.fingerprint.args, c.fingerprint.args);

    // An engine without metering refuses a fuel limit instead of ignoring it.
    let unmetered = runtime(EngineConfig::default());
    let m = unmetered.load(TRAPS.as_bytes()).unwrap();
    let r = unmetered
        .engine(EngineId(1))
        .run(&Task::call(m, "spin", vec![]).with_limits(Limits {
            fuel: Some(10),
            ..Limits::default()
        }));
    assert!(err(&r).to_string().contains("meters fuel"), "{}", err(&r));
}

const WASI: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi!\n")
  (func $write (param $fd i32)
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "hello") (result i32) (call $write (i32.const 1)) (call $write (i32.const 2)) i32.const 7)
  (func (export "flood") (loop (call $write (i32.const 1)) (br 0)))
  (func (export "_start") (call $write (i32.const 1)) (call $proc_exit (i32.const 3))))"#;

#[test]
fn stdout_and_stderr_are_captured_and_limited() {
    let config = EngineConfig::default().limits(Limits {
        stdout_bytes: Some(1000),
        ..EngineConfig::default().limits
    });
    let rt = runtime(config);
    let m = rt.load(WASI.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    let r = call(&mut e, m, "hello", vec![]);
    assert_eq!(r.value(), Ok(&Value::from(7)));
    assert_eq!(r.stdout, b"hi!\n");
    assert_eq!(r.stderr, b"hi!\n");
    let r = call(&mut e, m, "flood", vec![]);
    assert_eq!(
        err(&r),
        &TaskError::Limit {
            limit: LimitKind::Stdout,
            value: 1000
        }
    );
    assert_eq!(r.stdout.len(), 1000, "output up to the limit is kept");
    still_serves(&mut e);
}

#[test]
fn commands_return_their_exit_code() {
    let rt = runtime(EngineConfig::default());
    let m = rt.load(WASI.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    let task = Task::command(m, vec!["prog".into()]);
    let r = e.run(&task);
    assert_eq!(r.value(), Ok(&Value::from(3)));
    assert_eq!(r.stdout, b"hi!\n");
    // A module without `_start` is not a command.
    let sq = rt
        .load(&std::fs::read(grid_examples::wat_square()).unwrap())
        .unwrap();
    let r = e.run(&Task { module: sq, ..task });
    assert_eq!(err(&r).kind(), "export_missing");
}

#[test]
fn abort_interrupts_a_running_task_and_the_engine_goes_on() {
    let rt = runtime(EngineConfig::default());
    let m = rt.load(TRAPS.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    let interrupter = e.interrupter();
    let task = Task::call(m, "spin", vec![]);
    let id = task.msg_id;
    let aborter = std::thread::spawn(move || {
        let give_up = Instant::now() + Duration::from_secs(30);
        while interrupter.current() != Some(id) {
            assert!(Instant::now() < give_up, "the task never started");
            std::thread::yield_now();
        }
        assert!(interrupter.abort(id), "the task was running");
    });
    let r = e.run(&task);
    aborter.join().unwrap();
    assert_eq!(r.status(), Status::Aborted);
    assert_eq!(err(&r), &TaskError::Aborted);
    // An abort aimed at a finished task does not touch the next one.
    assert!(!e.interrupter().abort(id));
    still_serves(&mut e);
}

#[test]
fn references_resolve_from_the_namespace() {
    let (mut e, m) = engine();
    e.namespace_mut().set("x", Value::from(7));
    let task = Task {
        call: Call::Function {
            name: "square".into(),
            args: vec![Arg::Ref("x".into())],
        },
        ..Task::call(m, "square", vec![])
    };
    assert_eq!(e.run(&task).value(), Ok(&Value::from(49)));
    let missing = Task {
        call: Call::Function {
            name: "square".into(),
            args: vec![Arg::Ref("y".into())],
        },
        ..task
    };
    assert!(err(&e.run(&missing)).to_string().contains("`y`"));
}

#[test]
fn malformed_cbor_results_are_errors() {
    let rt = runtime(EngineConfig::default());
    let m = rt
        .load(
            br#"(module (memory (export "memory") 1)
                 (func (export "grid_alloc") (param i32) (result i32) i32.const 1024)
                 (func (export "grid:wild") (param i32 i32) (result i64) i64.const 0x7fff000000000010)
                 (func (export "grid:junk") (param i32 i32) (result i64) i64.const 0x0000000000000004))"#,
        )
        .unwrap();
    let mut e = rt.engine(EngineId(0));
    let r = call(&mut e, m, "wild", vec![]);
    assert_eq!(err(&r).kind(), "bad_result");
    assert!(
        err(&r).to_string().contains("outside the guest's memory"),
        "{}",
        err(&r)
    );
    let r = call(&mut e, m, "junk", vec![]);
    assert_eq!(err(&r).kind(), "bad_result", "{}", err(&r));
    still_serves(&mut e);
}

#[test]
fn compiled_modules_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig::default().cache_dir(Some(dir.path().to_path_buf()));
    let bytes = std::fs::read(grid_examples::wat_square()).unwrap();
    let first = Runtime::new(config.clone()).unwrap();
    let hash = first.load(&bytes).unwrap();
    drop(first);
    // A new process (here: a new runtime) loads it by hash alone.
    let second = Runtime::new(config).unwrap();
    assert!(!second.is_loaded(&hash));
    assert!(second.load_cached(&hash));
    let r = second
        .engine(EngineId(0))
        .run(&Task::call(hash, "square", vec![Value::from(5)]));
    assert_eq!(r.value(), Ok(&Value::from(25)));
    // A corrupt artifact is dropped, not executed.
    let artifact = walk(dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .unwrap();
    std::fs::write(&artifact, b"not an artifact").unwrap();
    let third =
        Runtime::new(EngineConfig::default().cache_dir(Some(dir.path().to_path_buf()))).unwrap();
    assert!(!third.load_cached(&hash));
    assert_eq!(third.load(&bytes).unwrap(), hash);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn chunk(module: ModuleHash, f: &str, items: Vec<Vec<Value>>) -> Task {
    Task {
        call: Call::Map {
            name: f.into(),
            items: items
                .into_iter()
                .map(|args| args.into_iter().map(Arg::Value).collect())
                .collect(),
        },
        ..Task::call(module, f, vec![])
    }
}

#[test]
fn chunks_give_one_outcome_per_item_and_survive_failures() {
    let rt = runtime(EngineConfig::default());
    let m = rt.load(TRAPS.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    let items = vec![
        vec![Value::from(6), Value::from(3)],
        vec![Value::from(1), Value::from(0)],
        vec![Value::from("x"), Value::from(1)],
        vec![Value::from(8), Value::from(2)],
    ];
    let r = e.run(&chunk(m, "div", items));
    assert_eq!(r.items.len(), 4);
    assert_eq!(r.items[0], grid_proto::Outcome::Ok(Value::from(2)));
    assert!(matches!(
        &r.items[1],
        grid_proto::Outcome::Err(TaskError::Trap {
            kind: TrapKind::IntegerDivisionByZero,
            ..
        })
    ));
    assert!(matches!(
        &r.items[2],
        grid_proto::Outcome::Err(TaskError::BadArguments { .. })
    ));
    assert_eq!(
        r.items[3],
        grid_proto::Outcome::Ok(Value::from(4)),
        "runs on after a trap"
    );
    assert_eq!(r.outcome, r.items[1], "the chunk reports its first failure");

    let (mut e, sq) = engine();
    let r = e.run(&chunk(
        sq,
        "square",
        (0..100).map(|i| vec![Value::from(i)]).collect(),
    ));
    assert_eq!(r.outcome, grid_proto::Outcome::Ok(Value::Null));
    assert_eq!(r.items[99], grid_proto::Outcome::Ok(Value::from(99 * 99)));
}

#[test]
fn wall_time_applies_to_each_item_of_a_chunk() {
    let rt = runtime(EngineConfig::default());
    let m = rt.load(TRAPS.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    let task = chunk(m, "spin", vec![vec![], vec![]]).with_limits(Limits {
        wall_time_ms: Some(20),
        ..Limits::default()
    });
    let r = e.run(&task);
    let limit = grid_proto::Outcome::Err(TaskError::Limit {
        limit: LimitKind::WallTime,
        value: 20,
    });
    assert_eq!(r.items, vec![limit.clone(), limit]);
    still_serves(&mut e);
}

#[test]
fn a_task_aborted_before_it_begins_does_not_run() {
    let rt = runtime(EngineConfig::default());
    let m = rt.load(WASI.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    let task = Task::call(m, "hello", vec![]);
    assert!(!e.interrupter().abort(task.msg_id), "not running yet");
    let r = e.run(&task);
    assert_eq!(err(&r), &TaskError::Aborted);
    assert!(r.stdout.is_empty(), "it never ran");
    still_serves(&mut e);
}

/// Calls WASI `poll_oneoff` on clock subscriptions (monotonic, userdata 7,
/// from address 0, events at 256, count at 512); each export returns errno *
/// 1000 + events written, after checking the first event's userdata.
const POLL: &str = r#"(module
    (import "wasi_snapshot_preview1" "poll_oneoff"
        (func $poll (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func $clock (param $at i32) (param $ns i64) (param $flags i32)
        (i64.store (local.get $at) (i64.const 7))
        (i32.store8 (i32.add (local.get $at) (i32.const 8)) (i32.const 0))
        (i32.store (i32.add (local.get $at) (i32.const 16)) (i32.const 1))
        (i64.store (i32.add (local.get $at) (i32.const 24)) (local.get $ns))
        (i32.store16 (i32.add (local.get $at) (i32.const 40)) (local.get $flags)))
    (func $poll_n (param $n i32) (result i64)
        (local $errno i32)
        (local.set $errno (call $poll (i32.const 0) (i32.const 256) (local.get $n) (i32.const 512)))
        (if (i32.and (i32.eqz (local.get $errno))
                     (i64.ne (i64.load (i32.const 256)) (i64.const 7)))
            (then unreachable))
        (i64.add (i64.mul (i64.extend_i32_u (local.get $errno)) (i64.const 1000))
                 (i64.extend_i32_u (i32.load (i32.const 512)))))
    ;; A plain sleep: one relative clock.
    (func (export "sleep") (param $ns i64) (result i64)
        (call $clock (i32.const 0) (local.get $ns) (i32.const 0))
        (call $poll_n (i32.const 1)))
    ;; An absolute deadline of 0, long past.
    (func (export "past") (result i64)
        (call $clock (i32.const 0) (i64.const 0) (i32.const 1))
        (call $poll_n (i32.const 1)))
    ;; Two relative clocks, 1 ms and 1 s: the first one fires.
    (func (export "two") (result i64)
        (call $clock (i32.const 0) (i64.const 1000000) (i32.const 0))
        (call $clock (i32.const 48) (i64.const 1000000000) (i32.const 0))
        (call $poll_n (i32.const 2)))
    (func (export "none") (result i64)
        (call $poll_n (i32.const 0))))"#;

/// WASI `poll_oneoff` in the sandbox. A plain sleep (answered by the engine
/// itself) blocks the engine's thread for as long as asked and writes its
/// event back; every other poll is wasmtime-wasi's: an absolute deadline in
/// the past fires at once, of two clocks the first fires, and no
/// subscriptions at all is EINVAL (28).
#[test]
fn poll_oneoff_sleeps_on_the_engine_thread() {
    let rt = runtime(EngineConfig::default());
    let m = rt.load(POLL.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    let started = Instant::now();
    let r = call(&mut e, m, "sleep", vec![Value::from(5_000_000)]);
    assert_eq!(r.value(), Ok(&Value::from(1)), "success, one event");
    assert!(started.elapsed() >= Duration::from_millis(5));
    let r = call(&mut e, m, "sleep", vec![Value::from(0)]);
    assert_eq!(r.value(), Ok(&Value::from(1)), "a zero sleep");
    let r = call(&mut e, m, "past", vec![]);
    assert_eq!(r.value(), Ok(&Value::from(1)), "an absolute deadline");
    let started = Instant::now();
    let r = call(&mut e, m, "two", vec![]);
    assert_eq!(r.value(), Ok(&Value::from(1)), "the 1 ms clock of two");
    assert!(started.elapsed() < Duration::from_millis(900));
    let r = call(&mut e, m, "none", vec![]);
    assert_eq!(
        r.value(),
        Ok(&Value::from(28_000)),
        "EINVAL from wasmtime-wasi"
    );
    still_serves(&mut e);
}

/// A guest asleep is stopped by an abort, and by its wall-time limit, as a
/// running one is: it does not sleep on.
#[test]
fn a_sleeping_guest_is_aborted_and_timed_out() {
    let rt = runtime(EngineConfig::default());
    let m = rt.load(POLL.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    let minute = Value::from(60_000_000_000i64);
    let started = Instant::now();
    let task = Task::call(m, "sleep", vec![minute.clone()]).with_limits(Limits {
        wall_time_ms: Some(50),
        ..Limits::default()
    });
    let r = e.run(&task);
    assert_eq!(
        err(&r),
        &TaskError::Limit {
            limit: LimitKind::WallTime,
            value: 50
        }
    );
    let task = Task::call(m, "sleep", vec![minute]);
    let (interrupter, id) = (e.interrupter(), task.msg_id);
    let aborter = std::thread::spawn(move || {
        while interrupter.current() != Some(id) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(interrupter.abort(id), "the task was running");
    });
    let r = e.run(&task);
    aborter.join().unwrap();
    assert_eq!(err(&r), &TaskError::Aborted);
    assert!(started.elapsed() < Duration::from_secs(30), "slept on");
    still_serves(&mut e);
}

/// A module without a `memory` export that polls gets an error that says so,
/// whichever poll it makes.
#[test]
fn poll_oneoff_without_memory_is_an_error() {
    let wat = r#"(module
        (import "wasi_snapshot_preview1" "poll_oneoff"
            (func $poll (param i32 i32 i32 i32) (result i32)))
        (func (export "poll") (param $n i32) (result i32)
            (call $poll (i32.const 0) (i32.const 64) (local.get $n) (i32.const 128))))"#;
    let rt = runtime(EngineConfig::default());
    let m = rt.load(wat.as_bytes()).unwrap();
    let mut e = rt.engine(EngineId(0));
    for n in [0, 1, 2] {
        let r = call(&mut e, m, "poll", vec![Value::from(n)]);
        assert!(err(&r).to_string().contains("memory"), "{}", err(&r));
    }
    still_serves(&mut e);
}
