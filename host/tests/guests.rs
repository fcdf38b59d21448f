//! Engine tests on the example guests built by `grid-examples`: the Rust
//! guest (CBOR ABI through the SDK macro, a numeric export, a WASI command)
//! and the C guest (through `grid.h`). They prove the SDKs and the engine
//! agree on ABI.md: values, guest errors, panics, output, the namespace and
//! limits, with the engine serving after every failure.

use std::sync::Arc;

use grid_host::{Engine, EngineConfig, Runtime};
use grid_proto::{
    Call, EngineId, LimitKind, Limits, ModuleHash, Task, TaskError, TaskResult, Value,
};

struct Guest {
    engine: Engine,
    module: ModuleHash,
}

impl Guest {
    fn load(bytes: Option<Vec<u8>>, config: EngineConfig) -> Option<Guest> {
        let runtime: Arc<Runtime> = Runtime::new(config.cache_dir(None)).expect("runtime");
        let module = runtime.load(&bytes?).expect("the example guest loads");
        Some(Guest {
            engine: runtime.engine(EngineId(0)),
            module,
        })
    }

    fn rust() -> Option<Guest> {
        Self::load(
            grid_examples::require(grid_examples::rust_guest()),
            EngineConfig::default(),
        )
    }

    fn c() -> Option<Guest> {
        Self::load(
            grid_examples::require(grid_examples::c_guest()),
            EngineConfig::default(),
        )
    }

    fn run(&mut self, f: &str, args: Vec<Value>) -> TaskResult {
        self.engine.run(&Task::call(self.module, f, args))
    }

    fn ok(&mut self, f: &str, args: Vec<Value>) -> Value {
        let r = self.run(f, args);
        match r.value() {
            Ok(v) => v.clone(),
            Err(e) => panic!("{f}: {e}"),
        }
    }

    fn err(&mut self, f: &str, args: Vec<Value>) -> TaskError {
        match self.run(f, args).outcome {
            grid_proto::Outcome::Err(e) => e,
            grid_proto::Outcome::Ok(v) => panic!("{f}: expected an error, got {v}"),
        }
    }
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect(),
    )
}

#[test]
fn rust_guest_functions_return_values() {
    let Some(mut g) = Guest::rust() else { return };
    assert_eq!(g.ok("square", vec![Value::from(7)]), Value::from(49));
    assert_eq!(
        g.ok("add", vec![Value::from(2), Value::from(3)]),
        Value::from(5)
    );
    assert_eq!(
        g.ok("fib", vec![Value::from(10)]),
        Value::from(55),
        "numeric export, no SDK"
    );
    assert_eq!(
        g.ok("word_count", vec![Value::from("The cat, the hat.")]),
        map(&[
            ("cat", Value::from(1)),
            ("hat", Value::from(1)),
            ("the", Value::from(2))
        ])
    );
    let any = map(&[
        ("list", Value::from(vec![1, 2, 3])),
        ("bytes", Value::Bytes(vec![0, 255])),
        (
            "nested",
            map(&[("x", Value::Float(0.5)), ("n", Value::Null)]),
        ),
    ]);
    assert_eq!(g.ok("echo", vec![any.clone()]), any);
}

/// `std::thread::sleep` in the guest (WASI `poll_oneoff` on a relative
/// clock) sleeps as long as asked; a zero sleep returns at once.
#[test]
fn rust_guest_sleeps_as_long_as_asked() {
    let Some(mut g) = Guest::rust() else { return };
    for ms in [0u64, 1, 20] {
        let started = std::time::Instant::now();
        assert_eq!(g.ok("sleep_ms", vec![Value::from(ms)]), Value::from(ms));
        let took = started.elapsed();
        assert!(
            took >= std::time::Duration::from_millis(ms),
            "{ms} ms took {took:?}"
        );
    }
}

#[test]
fn rust_guest_monte_carlo_is_seeded() {
    let Some(mut g) = Guest::rust() else { return };
    let a = g.ok("pi", vec![Value::from(200_000), Value::from(42)]);
    let b = g.ok("pi", vec![Value::from(200_000), Value::from(42)]);
    let c = g.ok("pi", vec![Value::from(200_000), Value::from(7)]);
    assert_eq!(a, b, "same seed, same estimate");
    assert_ne!(a, c);
    let pi = a.as_f64().unwrap();
    assert!((pi - std::f64::consts::PI).abs() < 0.05, "{pi}");
}

#[test]
fn rust_guest_errors_panics_and_bad_arguments() {
    let Some(mut g) = Guest::rust() else { return };
    assert_eq!(
        g.ok("checked_sqrt", vec![Value::Float(9.0)]),
        Value::Float(3.0)
    );
    let e = g.err("checked_sqrt", vec![Value::Float(-1.0)]);
    assert_eq!(e.kind(), "guest_error");
    assert!(e.to_string().contains("negative"), "{e}");

    match g.err("boom", vec![Value::from("kaboom")]) {
        TaskError::Panic { message, backtrace } => {
            assert!(message.contains("kaboom"), "{message}");
            assert!(
                backtrace
                    .iter()
                    .any(|f| f.func_name.as_deref().is_some_and(|n| n.contains("boom"))),
                "{backtrace:?}"
            );
        }
        other => panic!("expected a panic, got {other}"),
    }

    let e = g.err("square", vec![Value::from("seven")]);
    assert_eq!(e.kind(), "bad_arguments", "{e}");
    assert!(e.to_string().contains("argument 1"), "{e}");
    let e = g.err("add", vec![Value::from(1)]);
    assert_eq!(e.kind(), "bad_arguments", "{e}");
    assert!(e.to_string().contains("expected 2 arguments, got 1"), "{e}");
    assert_eq!(
        g.ok("square", vec![Value::from(3)]),
        Value::from(9),
        "still serving"
    );
}

#[test]
fn rust_guest_output_is_captured() {
    let Some(mut g) = Guest::rust() else { return };
    let r = g.run("hello", vec![Value::from("grid")]);
    assert_eq!(r.value(), Ok(&Value::from("hello, grid")));
    assert_eq!(String::from_utf8_lossy(&r.stdout), "hello, grid\n");
    assert_eq!(String::from_utf8_lossy(&r.stderr), "greeted grid\n");
}

#[test]
fn rust_guest_uses_the_namespace() {
    let Some(mut g) = Guest::rust() else { return };
    assert_eq!(g.ok("bump", vec![Value::from("n")]), Value::from(1));
    assert_eq!(g.ok("bump", vec![Value::from("n")]), Value::from(2));
    assert_eq!(g.engine.namespace().get("n"), Some(&Value::from(2)));

    let v = map(&[("a", Value::from(vec![1, 2]))]);
    assert_eq!(
        g.ok("stash", vec![Value::from("k"), v.clone()]),
        Value::Null
    );
    assert_eq!(g.engine.namespace().get("k"), Some(&v));

    assert_eq!(
        g.err("scale", vec![Value::Float(2.0)]).kind(),
        "guest_error"
    );
    g.engine.namespace_mut().set("factor", Value::Float(1.5));
    assert_eq!(g.ok("scale", vec![Value::Float(2.0)]), Value::Float(3.0));

    // A namespace write stays even when the task fails afterwards.
    g.engine
        .namespace_mut()
        .set("factor", Value::from("not a number"));
    assert!(g.run("scale", vec![Value::Float(2.0)]).value().is_err());
    assert_eq!(g.ok("bump", vec![Value::from("n")]), Value::from(3));
}

#[test]
fn rust_guest_limits() {
    let config = EngineConfig::default().fuel_metering(true).limits(Limits {
        memory_bytes: Some(32 << 20),
        ..EngineConfig::default().limits
    });
    let Some(mut g) = Guest::load(grid_examples::require(grid_examples::rust_guest()), config)
    else {
        return;
    };
    assert!(g.ok("alloc_mb", vec![Value::from(4)]).as_i64().is_some());
    assert_eq!(
        g.err("alloc_mb", vec![Value::from(64)]),
        TaskError::Limit {
            limit: LimitKind::Memory,
            value: 32 << 20
        }
    );
    let spin =
        |limits| Task::call(g.module, "spin", vec![Value::from(u64::MAX)]).with_limits(limits);
    let r = g.engine.run(&spin(Limits {
        wall_time_ms: Some(30),
        ..Limits::default()
    }));
    assert!(matches!(
        r.value(),
        Err(TaskError::Limit {
            limit: LimitKind::WallTime,
            value: 30
        })
    ));
    let r = g.engine.run(&spin(Limits {
        fuel: Some(1_000_000),
        ..Limits::default()
    }));
    assert!(matches!(
        r.value(),
        Err(TaskError::Limit {
            limit: LimitKind::Fuel,
            ..
        })
    ));

    // Metered runs are reproducible to the unit of fuel.
    let a = g.run("pi", vec![Value::from(1000), Value::from(1)]);
    let b = g.run("pi", vec![Value::from(1000), Value::from(1)]);
    assert_eq!(a.value(), b.value());
    assert_eq!(a.fingerprint, b.fingerprint);
    assert!(a.fingerprint.fuel_used.unwrap() > 1000);
}

#[test]
fn rust_command_gets_argv_env_and_stdin() {
    let Some(mut g) = Guest::load(
        grid_examples::require(grid_examples::rust_command()),
        EngineConfig::default(),
    ) else {
        return;
    };
    let command = |argv: &[&str]| Task {
        call: Call::Command {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("GREETING".into(), "hola".into())],
            stdin: b"shout\n".to_vec(),
            dirs: vec![],
        },
        ..Task::command(g.module, vec![])
    };
    let r = g.engine.run(&command(&["cmd", "a", "b"]));
    assert_eq!(r.value(), Ok(&Value::from(0)));
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "args: a b\nGREETING=hola\nSHOUT\n"
    );
    assert_eq!(String::from_utf8_lossy(&r.stderr), "done\n");
    let r = g.engine.run(&command(&["cmd", "--exit", "3"]));
    assert_eq!(r.value(), Ok(&Value::from(3)));
}

#[test]
fn c_guest_functions() {
    let Some(mut g) = Guest::c() else { return };
    assert_eq!(g.ok("square", vec![Value::from(9)]), Value::from(81));
    assert_eq!(
        g.ok("cube", vec![Value::from(3)]),
        Value::from(27),
        "numeric export"
    );
    let r = g.run("greet", vec![Value::from("ann")]);
    assert_eq!(r.value(), Ok(&Value::from("hi ann")));
    assert_eq!(r.stdout, b"hi ann\n");
    assert_eq!(
        g.ok("safe_div", vec![Value::from(7), Value::from(2)]),
        Value::from(3)
    );
    let e = g.err("safe_div", vec![Value::from(7), Value::from(0)]);
    assert_eq!(e, TaskError::Guest(Value::from("division by zero")));
    assert_eq!(
        g.ok(
            "sum",
            vec![Value::from(vec![Value::from(1), Value::Float(2.5)])]
        ),
        Value::Float(3.5)
    );
    let e = g.err("square", vec![Value::from("x")]);
    assert_eq!(e.kind(), "bad_arguments", "{e}");
    assert_eq!(g.ok("c_bump", vec![Value::from("n")]), Value::from(1));
    assert_eq!(g.ok("c_bump", vec![Value::from("n")]), Value::from(2));
}

#[test]
fn guests_in_different_languages_share_an_engines_namespace() {
    let (Some(rust), Some(c)) = (
        grid_examples::require(grid_examples::rust_guest()),
        grid_examples::require(grid_examples::c_guest()),
    ) else {
        return;
    };
    let runtime = Runtime::new(EngineConfig::default().cache_dir(None)).unwrap();
    let (rust, c) = (runtime.load(&rust).unwrap(), runtime.load(&c).unwrap());
    let mut engine = runtime.engine(EngineId(0));
    let bump = |m, f| Task::call(m, f, vec![Value::from("shared")]);
    assert_eq!(engine.run(&bump(rust, "bump")).value(), Ok(&Value::from(1)));
    assert_eq!(engine.run(&bump(c, "c_bump")).value(), Ok(&Value::from(2)));
    assert_eq!(engine.run(&bump(rust, "bump")).value(), Ok(&Value::from(3)));
}
