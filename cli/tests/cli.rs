//! The `grid` binary, run for real: map and apply on a local cluster of two
//! engines, every way of giving items, and every kind of failure with its
//! exit code and its one-line message.
//!
//! Each run gets its own compiled-module cache in a temp dir, and must end
//! within a generous deadline; its stderr must never hold a panic or a Rust
//! backtrace (see `common`). Clusters on NATS servers are tested in
//! `remote.rs`.

mod common;

use std::path::{Path, PathBuf};

use common::Run;
use tempfile::TempDir;

fn square_wat() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/guests/wat/square.wat")
        .display()
        .to_string()
}

/// A module of failing functions: `boom` traps in a named inner function,
/// `spin` loops forever, `grow` grows memory by its argument in pages.
const FAILING_WAT: &str = r#"(module
  (memory 1)
  (func $inner unreachable)
  (func (export "boom") (param i64) (result i64) call $inner local.get 0)
  (func (export "spin") (param i64) (result i64) (loop $l br $l) local.get 0)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))"#;

/// A module that prints: `talk` writes a line and a partial line to stdout
/// and a line that is not UTF-8 to stderr, then returns its argument;
/// `talk_then_trap` prints the same, then traps.
const TALKING_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "one\0atwo")
  (data (i32.const 200) "bad \ff byte\0a")
  (func $write (param $fd i32) (param $at i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $print
    (call $write (i32.const 1) (i32.const 100) (i32.const 7))
    (call $write (i32.const 2) (i32.const 200) (i32.const 11)))
  (func (export "talk") (param i64) (result i64) call $print local.get 0)
  (func (export "talk_then_trap") (param i64) (result i64) call $print unreachable))"#;

/// The Rust example guest's path (see `grid_examples::require_path`).
fn rust_guest() -> Option<String> {
    grid_examples::require_path(grid_examples::rust_guest()).map(|p| p.display().to_string())
}

/// A temp dir for modules written by a test.
struct Dir(TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().expect("temp dir"))
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path: PathBuf = self.0.path().join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path.display().to_string()
    }
}

/// Runs `grid args...` with `stdin` (or none) on a local cluster.
fn grid(args: &[&str], stdin: Option<&str>) -> Run {
    let cache = tempfile::tempdir().expect("temp dir");
    common::run(common::grid_command(args, cache.path()), stdin)
}

fn squares(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| (i * i).to_string()).collect()
}

#[test]
fn map_items_from_arguments() {
    let m = square_wat();
    let run = grid(
        &["map", &m, "square", "3", "-4", "5", "--engines", "2"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["9", "16", "25"]);
    assert_eq!(run.stderr, "");
}

#[test]
fn map_a_range() {
    let m = square_wat();
    let run = grid(
        &["map", &m, "square", "--range", "0..10", "--engines", "2"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), squares(0..10));
    let run = grid(
        &["map", &m, "square", "--range", "-2..1", "--engines", "2"],
        None,
    );
    assert_eq!(run.lines(), ["4", "1", "0"]);
}

#[test]
fn map_json_lines_from_stdin() {
    let m = square_wat();
    let run = grid(
        &["map", &m, "square", "--engines", "2"],
        Some("1\n\n  \n2\n3\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["1", "4", "9"]);
}

#[test]
fn array_items_are_spread_into_arguments() {
    let m = square_wat();
    let run = grid(
        &["map", &m, "hypot", "[3,4]", "[5,12]", "--engines", "2"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["5.0", "13.0"]);
    let run = grid(&["map", &m, "hypot", "--engines", "2"], Some("[8, 15]\n"));
    assert_eq!(run.lines(), ["17.0"]);
}

#[test]
fn unordered_gives_every_result() {
    let m = square_wat();
    let run = grid(
        &[
            "map",
            &m,
            "square",
            "--range",
            "0..50",
            "--unordered",
            "--engines",
            "2",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut got: Vec<i64> = run.lines().iter().map(|l| l.parse().unwrap()).collect();
    got.sort();
    assert_eq!(got, (0..50i64).map(|i| i * i).collect::<Vec<_>>());
}

#[test]
fn chunks_keep_input_order_and_stats_count_tasks() {
    let m = square_wat();
    let run = grid(
        &[
            "map",
            &m,
            "square",
            "--range",
            "0..100",
            "--chunksize",
            "7",
            "--stats",
            "--engines",
            "2",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), squares(0..100));
    let stats: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("stats JSON");
    assert_eq!(stats["tasks"], 15);
    assert_eq!(stats["items"], 100);
    assert_eq!(stats["engines"], 2);
    let wall = stats["wall_time"].as_f64().expect("wall_time in seconds");
    let serial = stats["serial_time"]
        .as_f64()
        .expect("serial_time in seconds");
    assert!(wall > 0.0 && serial > 0.0, "{stats}");
    let speedup = stats["speedup"].as_f64().expect("speedup");
    assert!((speedup - serial / wall).abs() < 1e-9, "{stats}");
}

#[test]
fn apply_prints_one_result() {
    let m = square_wat();
    let run = grid(&["apply", &m, "square", "12", "--engines", "2"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "144\n");
    let run = grid(&["apply", &m, "hypot", "3", "4", "--engines", "2"], None);
    assert_eq!(run.stdout, "5.0\n");
}

#[test]
fn apply_shows_what_the_guest_printed_on_stderr() {
    let Some(guest) = rust_guest() else { return };
    let run = grid(
        &["apply", &guest, "hello", r#""x""#, "--engines", "1"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "\"hello, x\"\n", "values alone on stdout");
    assert_eq!(run.stderr, "[stdout:0] hello, x\n[stderr:0] greeted x\n");

    let args = ["apply", &guest, "hello", r#""x""#, "--engines", "1"];
    let run = grid(&[&args[..], &["--output", "none"]].concat(), None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "\"hello, x\"\n");
    assert_eq!(run.stderr, "", "--output none hides the task's output");
}

#[test]
fn task_output_keeps_partial_lines_odd_bytes_and_prints_before_a_trap() {
    let dir = Dir::new();
    let m = dir.file("talking.wat", TALKING_WAT.as_bytes());
    let printed = "[stdout:0] one\n[stdout:0] two\n[stderr:0] bad \u{fffd} byte\n";
    let run = grid(&["apply", &m, "talk", "5", "--engines", "1"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "5\n");
    assert_eq!(run.stderr, printed);

    let run = grid(
        &["apply", &m, "talk_then_trap", "5", "--engines", "1"],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let (output, error) = run.stderr.split_at(printed.len().min(run.stderr.len()));
    assert_eq!(output, printed, "the print shows before the error");
    assert!(
        error.starts_with("error: [engine 0] talk_then_trap: trap (unreachable)")
            && error.lines().count() == 1,
        "{}",
        run.stderr
    );

    let run = grid(
        &[
            "apply",
            &m,
            "talk_then_trap",
            "5",
            "--engines",
            "1",
            "--output",
            "none",
        ],
        None,
    );
    assert_eq!(run.code, 1);
    run.assert_error_lines();
    let run = grid(&["apply", &m, "talk", "5", "--output", "some"], None);
    assert_eq!(run.code, 2, "an unknown --output is a usage error");
}

#[test]
fn more_engines_than_a_process_can_hold_is_a_usage_error() {
    let m = square_wat();
    let state = tempfile::tempdir().expect("temp dir");
    for args in [
        vec!["map", m.as_str(), "square", "1", "--engines", "100000"],
        vec!["apply", m.as_str(), "square", "1", "--engines", "100000"],
        vec!["engine", "--url", "nats://127.0.0.1:1", "-n", "100000"],
        vec!["cluster", "start", "-n", "100000"],
    ] {
        let cache = tempfile::tempdir().expect("temp dir");
        let mut command = common::grid_command(&args, cache.path());
        command.env("GRID_STATE_DIR", state.path());
        let run = common::run(command, None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{args:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .starts_with("error: --engines 100000 is more than one process can hold: at most "),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.elapsed < std::time::Duration::from_secs(10),
            "{args:?}: not checked before starting ({:?})",
            run.elapsed
        );
    }
    assert!(
        std::fs::read_dir(state.path())
            .expect("state dir")
            .next()
            .is_none(),
        "cluster start recorded nothing"
    );
}

#[test]
fn a_trap_names_item_engine_kind_and_function() {
    let dir = Dir::new();
    let m = dir.file("failing.wat", FAILING_WAT.as_bytes());
    let run = grid(&["map", &m, "boom", "7", "--engines", "2"], None);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    run.assert_error_lines();
    let errors = run.error_lines();
    assert!(
        errors[0].starts_with("error: item 0: [engine "),
        "{errors:?}"
    );
    assert!(errors[0].contains("boom: trap (unreachable)"), "{errors:?}");
    assert!(errors[0].contains("wasm backtrace: inner"), "{errors:?}");
    assert_eq!(errors[1], "error: 1 of 1 items failed");

    let run = grid(&["apply", &m, "boom", "7", "--engines", "2"], None);
    assert_eq!(run.code, 1);
    run.assert_error_lines();
    assert!(
        run.stderr.starts_with("error: [engine "),
        "apply has no item: {}",
        run.stderr
    );
    assert!(run.stderr.contains("trap (unreachable)"), "{}", run.stderr);
}

#[test]
fn a_timeout_is_a_wall_time_limit() {
    let dir = Dir::new();
    let m = dir.file("failing.wat", FAILING_WAT.as_bytes());
    let run = grid(
        &[
            "map",
            &m,
            "spin",
            "1",
            "--timeout",
            "0.05",
            "--engines",
            "2",
        ],
        None,
    );
    assert_eq!(run.code, 1);
    run.assert_error_lines();
    assert!(
        run.stderr.contains("item 0: [engine ")
            && run
                .stderr
                .contains("spin: wall time limit of 50 ms exceeded"),
        "{}",
        run.stderr
    );
}

#[test]
fn max_memory_is_a_memory_limit() {
    let dir = Dir::new();
    let m = dir.file("failing.wat", FAILING_WAT.as_bytes());
    // One page (64 KiB) to start; growing by one fits in 1M, by 100 does not.
    let run = grid(
        &[
            "map",
            &m,
            "grow",
            "1",
            "100",
            "--max-memory",
            "1M",
            "--engines",
            "2",
        ],
        None,
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.lines(), ["1"]);
    assert!(
        run.stderr.contains("item 1: [engine ")
            && run
                .stderr
                .contains("memory limit of 1048576 bytes exceeded"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_export_is_reported_once_with_the_exports() {
    let m = square_wat();
    let run = grid(
        &["map", &m, "sqr", "--range", "0..20", "--engines", "2"],
        None,
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    run.assert_error_lines();
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("no export `sqr`; the module exports: ")
            && run.stderr.contains("square")
            && run.stderr.contains("hypot"),
        "{}",
        run.stderr
    );
    let run = grid(&["apply", &m, "sqr", "2", "--engines", "2"], None);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no export `sqr`"), "{}", run.stderr);
}

#[test]
fn bad_arguments_fail_the_item() {
    let m = square_wat();
    let run = grid(&["map", &m, "square", r#""four""#, "--engines", "2"], None);
    assert_eq!(run.code, 1);
    run.assert_error_lines();
    assert!(
        run.stderr.contains("item 0: [engine ")
            && run.stderr.contains("bad arguments for `square`"),
        "{}",
        run.stderr
    );
}

#[test]
fn items_that_succeed_are_printed_when_one_in_the_middle_fails() {
    let m = square_wat();
    // One task per item; then the failing item in the middle of a chunk.
    for chunksize in ["1", "2"] {
        let args = [
            "map",
            m.as_str(),
            "square",
            "1",
            "2",
            r#""x""#,
            "4",
            "5",
            "--chunksize",
            chunksize,
            "--engines",
            "2",
        ];
        let run = grid(&args, None);
        assert_eq!(run.code, 1);
        assert_eq!(run.lines(), ["1", "4", "16", "25"]);
        run.assert_error_lines();
        let errors = run.error_lines();
        assert_eq!(errors.len(), 2, "{}", run.stderr);
        assert!(
            errors[0].starts_with("error: item 2: [engine "),
            "{errors:?}"
        );
        assert_eq!(errors[1], "error: 1 of 5 items failed");
    }
}

#[test]
fn a_garbage_module_is_one_usage_error() {
    let dir = Dir::new();
    let m = dir.file("garbage.wasm", b"this is not wasm\n");
    let run = grid(&["map", &m, "f", "1", "2", "3", "--engines", "2"], None);
    assert_eq!(run.code, 2);
    run.assert_error_lines();
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("garbage.wasm: invalid module"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_module_the_engines_reject_is_reported_once() {
    // A wasm header, then nonsense: only an engine's compiler finds out.
    let dir = Dir::new();
    let m = dir.file("broken.wasm", b"\0asm\x01\0\0\0garbage");
    let run = grid(
        &["map", &m, "f", "--range", "0..20", "--engines", "2"],
        None,
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    run.assert_error_lines();
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("broken.wasm: invalid module"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_module_file_is_a_usage_error() {
    let run = grid(
        &["apply", "no/such/module.wat", "f", "--engines", "2"],
        None,
    );
    assert_eq!(run.code, 2);
    run.assert_error_lines();
    assert!(
        run.stderr
            .starts_with("error: cannot read module no/such/module.wat: "),
        "{}",
        run.stderr
    );
}

#[test]
fn input_that_is_not_json_is_a_usage_error() {
    let m = square_wat();
    // stdin is read lazily: the items before the bad line are mapped.
    let run = grid(
        &["map", &m, "square", "--engines", "2"],
        Some("1\n2\n{oops\n4\n"),
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "1\n4\n");
    run.assert_error_lines();
    assert!(
        run.stderr
            .starts_with("error: line 3 of stdin: not valid JSON"),
        "{}",
        run.stderr
    );
    let run = grid(&["map", &m, "square", "1", "two", "--engines", "2"], None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: item 1 (`two`): not valid JSON"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_options_are_usage_errors() {
    let m = square_wat();
    for args in [
        vec!["map", m.as_str(), "square", "--range", "5..2"],
        vec!["map", m.as_str(), "square", "--range", "0..2", "1"],
        vec!["map", m.as_str(), "square", "1", "--max-memory", "12Q"],
        vec!["map", m.as_str(), "square", "1", "--timeout", "-1"],
        vec!["map", m.as_str(), "square", "1", "--chunksize", "0"],
        vec!["map", &m],
        vec!["map", m.as_str(), "square", "1", "--cluster", "a.b"],
        vec!["controller"],
        vec!["engine", "--url", "nats://127.0.0.1:1", "-n", "0"],
        vec!["cluster", "start", "--cluster", "no way"],
    ] {
        let run = grid(&args, None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn help_describes_everything_with_examples() {
    let run = grid(&["--help"], None);
    assert_eq!(run.code, 0);
    for needle in [
        "map",
        "apply",
        "status",
        "cluster",
        "controller",
        "engine",
        "--url",
        "Exit codes",
        "Examples:",
    ] {
        assert!(run.stdout.contains(needle), "{needle} in\n{}", run.stdout);
    }
    let run = grid(&["map", "--help"], None);
    assert_eq!(run.code, 0);
    for needle in [
        "--range <A..B>",
        "--unordered",
        "--chunksize <K>",
        "--stats",
        "--engines <N>",
        "--timeout <SECS>",
        "--max-memory <SIZE>",
        "--url <URL>",
        "--cluster <NAME>",
        "GRID_URL",
        "GRID_CLUSTER",
        "Ignored with --url",
        "--wait-engines <SECS>",
        "[3,4]",
        "stdin",
        "Exit codes",
        "grid map examples/guests/wat/square.wat square --range 0..10",
    ] {
        assert!(run.stdout.contains(needle), "{needle} in\n{}", run.stdout);
    }
    let run = grid(&["apply", "--help"], None);
    assert_eq!(run.code, 0);
    for needle in [
        "grid apply examples/guests/wat/square.wat square 12",
        "--output <WHICH>",
        "[stdout:0]",
        "--wait-engines <SECS>",
    ] {
        assert!(run.stdout.contains(needle), "{needle} in\n{}", run.stdout);
    }
    for (command, needles) in [
        (
            vec!["cluster", "start", "--help"],
            vec![
                "-n, --engines <N>",
                "--url <URL>",
                "--cluster <NAME>",
                "nats-server",
                "GRID_STATE_DIR",
                "Examples:",
                "grid cluster start -n 4",
            ],
        ),
        (
            vec!["cluster", "stop", "--help"],
            vec!["SIGTERM", "Examples:", "grid cluster stop"],
        ),
        (
            vec!["cluster", "status", "--help"],
            vec!["--json", "Examples:"],
        ),
        (
            vec!["engine", "--help"],
            vec![
                "-n, --engines <N>",
                "--max-memory <SIZE>",
                "--timeout <SECS>",
                "--fuel",
                "SIGTERM",
                "Examples:",
                "grid engine --url nats://127.0.0.1:4222",
            ],
        ),
        (
            vec!["controller", "--help"],
            vec![
                "--url <URL>",
                "--cluster <NAME>",
                "Examples:",
                "grid controller --url",
            ],
        ),
        (
            vec!["status", "--help"],
            vec!["--json", "--url <URL>", "Examples:", "grid status --url"],
        ),
    ] {
        let run = grid(&command, None);
        assert_eq!(run.code, 0, "{command:?}: {}", run.stderr);
        for needle in needles {
            assert!(
                run.stdout.contains(needle),
                "{needle} in `grid {}`:\n{}",
                command.join(" "),
                run.stdout
            );
        }
    }
}

#[test]
fn retries_and_schemes_on_the_command_line() {
    let m = square_wat();
    for scheme in [
        "leastload",
        "lru",
        "twobin",
        "weighted",
        "plainrandom",
        "pure",
    ] {
        let args = [
            "map",
            m.as_str(),
            "square",
            "--range",
            "0..50",
            "--engines",
            "2",
        ];
        let run = grid(&[&args[..], &["--scheme", scheme]].concat(), None);
        assert_eq!(run.code, 0, "{scheme}: {}", run.stderr);
        assert_eq!(run.stdout.lines().nth(49), Some("2401"), "{scheme}");
    }
    let run = grid(
        &[
            "apply",
            &m,
            "square",
            "3",
            "--scheme",
            "pure",
            "--retries",
            "1",
        ],
        None,
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("pure") && run.stderr.contains("retries"),
        "{}",
        run.stderr
    );
    let run = grid(
        &[
            "map",
            &m,
            "square",
            "1",
            "--url",
            "nats://127.0.0.1:1",
            "--scheme",
            "lru",
        ],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--scheme applies to a local cluster"),
        "{}",
        run.stderr
    );

    // A call that always fails is run 1 + 2 times, and fails.
    let dir = Dir::new();
    let talking = dir.file("talking.wat", TALKING_WAT.as_bytes());
    let run = grid(
        &[
            "apply",
            &talking,
            "talk_then_trap",
            "5",
            "--retries",
            "2",
            "--engines",
            "2",
            "--output",
            "none",
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("trap (unreachable)"), "{}", run.stderr);
    let Some(guest) = rust_guest() else { return };
    let run = grid(
        &[
            "map",
            &guest,
            "square",
            "4",
            "--retries",
            "2",
            "--json-meta",
            "--engines",
            "2",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json");
    assert_eq!(
        (line["value"].clone(), line["attempts"].clone()),
        (16.into(), 1.into())
    );
}

#[test]
fn typed_arguments_reach_the_guest_as_typed_arrays() {
    let Some(guest) = rust_guest() else { return };
    let run = grid(
        &[
            "apply",
            &guest,
            "sum_f64",
            "[1, 2, 3.5]",
            "--typed",
            "f64",
            "--engines",
            "1",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "6.5\n");
    // Typed results print as JSON arrays; each stdin line is one item.
    let run = grid(
        &[
            "map",
            &guest,
            "cumsum_i64",
            "--typed",
            "i64",
            "--engines",
            "2",
        ],
        Some("[[1, 2, 3]]\n[[10, -10]]\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "[1,3,6]\n[10,0]\n");
    let run = grid(
        &["apply", &guest, "sum_f64", "[1, 256]", "--typed", "u8"],
        None,
    );
    assert_eq!(run.code, 2);
    run.assert_error_lines();
    assert!(
        run.stderr.starts_with(
            "error: the call, argument 1: --typed u8: item 1: 256 does not fit a u8 array"
        ),
        "{}",
        run.stderr
    );
    let run = grid(&["apply", &guest, "sum_f64", "[1]", "--typed", "f16"], None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unknown element type \"f16\""),
        "{}",
        run.stderr
    );
}
