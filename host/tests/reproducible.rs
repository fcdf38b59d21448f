//! Engine tests of what test runs rely on: deterministic mode (virtual
//! clocks, seeded random bytes, fuel, a fresh instance per chunk item),
//! fingerprints, read-only directory grants and live output. Runs the
//! example WASI command (`cmd.wasm`, see its `--clock`, `--cat`, `--tick`)
//! and small WAT modules.

use std::sync::{Arc, Mutex};

use grid_host::{EngineConfig, LiveOutput, Runtime};
use grid_proto::{Arg, Call, Deterministic, DirGrant, EngineId, Stream, Task, TaskResult, Value};

fn runtime(config: EngineConfig) -> Arc<Runtime> {
    Runtime::new(config.cache_dir(None)).expect("runtime starts")
}

fn command() -> Option<Vec<u8>> {
    grid_examples::require(grid_examples::rust_command())
}

fn run_command(
    rt: &Arc<Runtime>,
    argv: &[&str],
    deterministic: Option<Deterministic>,
) -> TaskResult {
    let module = rt.load(&command().expect("checked by the caller")).unwrap();
    let mut task = Task::command(module, argv.iter().map(|s| s.to_string()).collect());
    task.deterministic = deterministic;
    rt.engine(EngineId(0)).run(&task)
}

fn stdout(r: &TaskResult) -> String {
    String::from_utf8_lossy(&r.stdout).into_owned()
}

#[test]
fn deterministic_commands_see_virtual_time_and_seeded_randomness() {
    if command().is_none() {
        return;
    }
    let det = Some(Deterministic::default());
    // Two runtimes (two "machines"), one metering fuel and one not.
    let a = run_command(&runtime(EngineConfig::default()), &["cmd", "--clock"], det);
    let b = run_command(
        &runtime(EngineConfig::default().fuel_metering(true)),
        &["cmd", "--clock"],
        det,
    );
    assert_eq!(
        a.value(),
        Ok(&Value::from(0)),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    let out = stdout(&a);
    assert!(out.contains("now_ns=1577836800000000000\n"), "{out}");
    // The 10 ms sleep took no time, and the clock moved by it plus one step per read.
    assert!(out.contains("elapsed_ns=10001000\n"), "{out}");
    assert_eq!(a.stdout, b.stdout);
    assert!(a.fingerprint.fuel_used.is_some_and(|f| f > 0));
    assert_eq!(
        a.fingerprint, b.fingerprint,
        "same work, same run, anywhere"
    );
    assert_eq!(a.fingerprint.digest(), b.fingerprint.digest());

    // Another seed, other random bytes; the same seed, the same bytes.
    let seeded = |seed| Some(Deterministic { seed: Some(seed) });
    let rt = runtime(EngineConfig::default());
    let s1 = run_command(&rt, &["cmd", "--clock"], seeded(1));
    let s1_again = run_command(&rt, &["cmd", "--clock"], seeded(1));
    let s2 = run_command(&rt, &["cmd", "--clock"], seeded(2));
    assert_eq!(s1.stdout, s1_again.stdout);
    assert_ne!(s1.stdout, s2.stdout);
    assert_ne!(s1.fingerprint.config, s2.fingerprint.config);

    // Without deterministic mode: the host's clock, and no fuel unless metered.
    let host = run_command(&rt, &["cmd", "--clock"], None);
    assert!(!stdout(&host).contains("now_ns=1577836800000000000"));
    assert_eq!(host.fingerprint.fuel_used, None);
    assert_ne!(host.fingerprint.config, a.fingerprint.config);
}

/// A guest with global state: each call in one instance counts up.
const COUNTER: &str = r#"(module
  (global $n (mut i64) (i64.const 0))
  (func (export "count") (param i64) (result i64)
    global.get $n i64.const 1 i64.add global.set $n
    global.get $n local.get 0 i64.add))"#;

#[test]
fn a_deterministic_chunk_gives_what_separate_tasks_give() {
    let rt = runtime(EngineConfig::default());
    let module = rt.load(COUNTER.as_bytes()).unwrap();
    let mut engine = rt.engine(EngineId(0));
    let items: Vec<Vec<Arg>> = (0..3)
        .map(|i| vec![Arg::Value(Value::from(i * 10))])
        .collect();
    let chunk = |deterministic| {
        let mut task = Task::call(module, "count", vec![]);
        task.call = Call::Map {
            name: "count".into(),
            items: items.clone(),
        };
        task.deterministic = deterministic;
        task
    };
    let values = |r: TaskResult| -> Vec<Value> {
        r.items
            .into_iter()
            .map(|o| match o {
                grid_proto::Outcome::Ok(v) => v,
                grid_proto::Outcome::Err(e) => panic!("{e}"),
            })
            .collect()
    };
    // By default the items of a chunk share an instance (documented).
    let shared = values(engine.run(&chunk(None)));
    assert_eq!(
        shared,
        vec![Value::from(1), Value::from(12), Value::from(23)]
    );
    // Deterministic: each item as if alone.
    let alone = values(engine.run(&chunk(Some(Deterministic::default()))));
    assert_eq!(
        alone,
        vec![Value::from(1), Value::from(11), Value::from(21)]
    );
    let single = engine.run(
        &Task::call(module, "count", vec![Value::from(10)]).deterministic(Deterministic::default()),
    );
    assert_eq!(single.value(), Ok(&Value::from(11)));

    // Random bytes too: each item gets the seed it would have alone.
    let random = rt.load(RANDOM.as_bytes()).unwrap();
    let det = Deterministic::default();
    let alone: Vec<TaskResult> = (0..2)
        .map(|i| engine.run(&Task::call(random, "random", vec![Value::from(i)]).deterministic(det)))
        .collect();
    let mut task = Task::call(random, "random", vec![]).deterministic(det);
    task.call = Call::Map {
        name: "random".into(),
        items: (0..2).map(|i| vec![Arg::Value(Value::from(i))]).collect(),
    };
    let chunk = engine.run(&task);
    for (i, r) in alone.iter().enumerate() {
        assert_eq!(chunk.items[i], r.outcome, "item {i}");
    }
    assert_ne!(alone[0].outcome, alone[1].outcome);
}

/// `random(x)`: 8 bytes from WASI's `random_get`, as an i64 (x is ignored).
const RANDOM: &str = r#"(module
  (import "wasi_snapshot_preview1" "random_get" (func $get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "random") (param i64) (result i64)
    (drop (call $get (i32.const 0) (i32.const 8)))
    (i64.load (i32.const 0))))"#;

/// 0/0: x86 makes a NaN with the sign bit set, canonicalization a positive one.
const NAN: &str = r#"(module
  (func (export "nan_bits") (param f64 f64) (result i64)
    local.get 0 local.get 1 f64.div i64.reinterpret_f64))"#;

#[test]
fn deterministic_mode_canonicalizes_nans() {
    let rt = runtime(EngineConfig::default());
    let module = rt.load(NAN.as_bytes()).unwrap();
    let task = Task::call(module, "nan_bits", vec![Value::from(0.0), Value::from(0.0)]);
    let det = rt
        .engine(EngineId(0))
        .run(&task.clone().deterministic(Deterministic::default()));
    assert_eq!(det.value(), Ok(&Value::from(0x7ff8_0000_0000_0000_i64)));
    let host = rt.engine(EngineId(0)).run(&task);
    assert!(host.value().is_ok());
}

#[test]
fn directory_grants_are_read_only_and_need_the_operator() {
    if command().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fixture.txt"), "fixture text\n").unwrap();
    let host = dir.path().to_str().unwrap().to_string();
    let grant = vec![DirGrant {
        host: host.clone(),
        guest: "/data".into(),
    }];
    let task = |rt: &Arc<Runtime>, argv: &[&str]| {
        let module = rt.load(&command().unwrap()).unwrap();
        let mut task = Task::command(module, argv.iter().map(|s| s.to_string()).collect());
        if let Call::Command { dirs, .. } = &mut task.call {
            *dirs = grant.clone();
        }
        rt.engine(EngineId(0)).run(&task)
    };

    // An engine whose operator allows nothing refuses, naming the path.
    let closed = runtime(EngineConfig::default());
    let r = task(&closed, &["cmd", "--cat", "/data/fixture.txt"]);
    let e = r.value().unwrap_err();
    assert_eq!(e.kind(), "bad_arguments");
    assert!(e.to_string().contains(&host), "{e}");

    // Allowed: the command reads the file through the guest path.
    let open = runtime(EngineConfig::default().allow_dir(dir.path()));
    let r = task(&open, &["cmd", "--cat", "/data/fixture.txt"]);
    assert_eq!(
        r.value(),
        Ok(&Value::from(0)),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(stdout(&r).ends_with("fixture text\n"), "{}", stdout(&r));
    // Nothing outside the grant.
    let r = task(&open, &["cmd", "--cat", "/data/../etc/passwd"]);
    assert_ne!(r.value(), Ok(&Value::from(0)));
    // A grant of something that is not a directory is refused.
    let other = runtime(EngineConfig::default().allow_dir("/"));
    let module = other.load(&command().unwrap()).unwrap();
    let mut t = Task::command(module, vec!["cmd".into()]);
    if let Call::Command { dirs, .. } = &mut t.call {
        dirs.push(DirGrant {
            host: dir.path().join("fixture.txt").to_str().unwrap().into(),
            guest: "f".into(),
        });
    }
    let r = other.engine(EngineId(0)).run(&t);
    assert!(
        r.value()
            .unwrap_err()
            .to_string()
            .contains("not a directory")
    );
}

#[derive(Default)]
struct Recorded(Mutex<Vec<(Stream, u64, Vec<u8>)>>);

impl LiveOutput for Recorded {
    fn write(&self, stream: Stream, _: Option<u32>, offset: u64, data: &[u8], _: bool) {
        self.0.lock().unwrap().push((stream, offset, data.to_vec()));
    }
}

#[test]
fn live_output_is_what_the_result_captures_in_order() {
    if command().is_none() {
        return;
    }
    let rt = runtime(EngineConfig::default());
    let module = rt.load(&command().unwrap()).unwrap();
    let mut engine = rt.engine(EngineId(0));
    let recorded = Arc::new(Recorded::default());
    engine.set_live_output(Some(recorded.clone()));
    let r = engine.run(&Task::command(
        module,
        ["cmd", "--tick", "3", "1"].map(String::from).to_vec(),
    ));
    let seen = recorded.0.lock().unwrap();
    let mut stdout = Vec::new();
    for (stream, offset, data) in seen.iter().filter(|c| c.0 == Stream::Stdout) {
        assert_eq!(*stream, Stream::Stdout);
        assert_eq!(*offset, stdout.len() as u64);
        stdout.extend_from_slice(data);
    }
    assert_eq!(stdout, r.stdout);
    // Each tick was flushed on its own: one write each.
    assert!(seen.iter().filter(|c| c.2.starts_with(b"tick")).count() == 3);
}
