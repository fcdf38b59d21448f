//! `grid run` and the reproducibility and live-output options of `grid map`,
//! through the real binary on a local cluster: a WASI command's argv, env,
//! stdin, directory grants, exit code and live output; deterministic runs
//! that repeat byte for byte; fingerprints and fuel in `--json-meta` and
//! `--stats`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use common::{Run, grid_command, run};
use tempfile::TempDir;

/// An example guest's path (see `grid_examples::require_path`).
fn guest(built: Result<PathBuf, grid_examples::Unavailable>) -> Option<String> {
    grid_examples::require_path(built).map(|p| p.display().to_string())
}

fn grid(args: &[&str], stdin: Option<&str>) -> (Run, TempDir) {
    let cache = tempfile::tempdir().expect("temp dir");
    let run = run(grid_command(args, cache.path()), stdin);
    (run, cache)
}

#[test]
fn run_passes_argv_env_and_stdin_and_exits_with_the_code() {
    let Some(cmd) = guest(grid_examples::rust_command()) else {
        return;
    };
    let (r, _c) = grid(
        &["run", "--env", "GREETING=hi", &cmd, "--exit", "3"],
        Some("abc\n"),
    );
    assert_eq!(r.code, 3, "stderr:\n{}", r.stderr);
    assert_eq!(r.stdout, "args: --exit 3\nGREETING=hi\nABC\n");
    assert_eq!(r.stderr, "done\n");
    let (r, _c) = grid(&["run", &cmd], None);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout, "args: \n");
}

#[test]
fn run_shows_output_as_it_is_written() {
    let Some(cmd) = guest(grid_examples::rust_command()) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mut child = grid_command(&["run", &cmd, "--tick", "3", "700"], cache.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut first_tick = None;
    for line in lines.by_ref() {
        if line.unwrap() == "tick 0" {
            first_tick = Some(started.elapsed());
            // The command sleeps 1.4 s more: it must still be running.
            assert!(
                child.try_wait().unwrap().is_none(),
                "tick 0 came at the end"
            );
            break;
        }
    }
    assert!(first_tick.is_some(), "no tick 0");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(rest, ["tick 1", "tick 2"]);
    assert!(child.wait().unwrap().success());
}

#[test]
fn run_grants_directories_read_only() {
    let Some(cmd) = guest(grid_examples::rust_command()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "from the host\n").unwrap();
    let host = dir.path().display().to_string();
    let grant = format!("{host}::/in");
    let (r, _c) = grid(
        &["run", "--dir", &grant, &cmd, "--cat", "/in/data.txt"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.ends_with("from the host\n"), "{}", r.stdout);
    // `--dir .` is the working directory.
    let cache = tempfile::tempdir().unwrap();
    let mut command = grid_command(
        &["run", "--dir", ".", &cmd, "--cat", "data.txt"],
        cache.path(),
    );
    command.current_dir(dir.path());
    let r = run(command, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.ends_with("from the host\n"));
    // Without a grant there is nothing to read.
    let (r, _c) = grid(&["run", &cmd, "--cat", "/in/data.txt"], None);
    assert_eq!(r.code, 1);
    // A grant of something that is not a directory is a usage error.
    let (r, _c) = grid(&["run", "--dir", "/no/such/dir", &cmd], None);
    assert_eq!(r.code, 2);
}

#[test]
fn run_reports_traps_and_modules_that_are_not_commands() {
    let dir = tempfile::tempdir().unwrap();
    let trap = dir.path().join("trap.wat");
    std::fs::write(&trap, r#"(module (func (export "_start") unreachable))"#).unwrap();
    let (r, _c) = grid(&["run", &trap.display().to_string()], None);
    assert_eq!(r.code, 134, "{}", r.stderr);
    r.assert_error_lines();
    assert!(r.stderr.contains("unreachable"), "{}", r.stderr);
    let square = square_wat();
    let (r, _c) = grid(&["run", &square], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("_start"), "{}", r.stderr);
}

#[test]
fn deterministic_runs_repeat_byte_for_byte() {
    let Some(cmd) = guest(grid_examples::rust_command()) else {
        return;
    };
    let once = || {
        let (r, _c) = grid(
            &["run", "--deterministic", "--stats", &cmd, "--clock"],
            None,
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let stats = r
            .stderr
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap()
            .to_string();
        let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
        (
            r.stdout,
            stats["fingerprint"]["digest"].clone(),
            stats["fuel"].clone(),
        )
    };
    let (a, b) = (once(), once());
    assert_eq!(a, b);
    assert!(a.0.contains("now_ns=1577836800000000000"), "{}", a.0);
    assert!(a.2.as_u64().is_some_and(|f| f > 0));
    let (r, _c) = grid(&["run", &cmd, "--clock"], None);
    assert_ne!(r.stdout, a.0);
}

#[test]
fn map_streams_output_and_reports_fingerprints_and_fuel() {
    let Some(guest) = guest(grid_examples::rust_guest()) else {
        return;
    };
    let (r, _c) = grid(
        &[
            "map",
            &guest,
            "hello",
            "\"a\"",
            "\"b\"",
            "--stream-output",
            "--engines",
            "2",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.lines(), ["\"hello, a\"", "\"hello, b\""]);
    for line in [
        "[stdout:0] hello, a",
        "[stdout:1] hello, b",
        "[stderr:1] greeted b",
    ] {
        assert!(
            r.stderr.lines().any(|l| l == line),
            "{line} in\n{}",
            r.stderr
        );
    }

    // Deterministic: the same lines from any cluster size and chunksize.
    let meta = |engines: &str, chunksize: &str| {
        let (r, _c) = grid(
            &[
                "map",
                &guest,
                "hello",
                "\"a\"",
                "\"b\"",
                "\"c\"",
                "--deterministic",
                "--json-meta",
                "--engines",
                engines,
                "--chunksize",
                chunksize,
                "--output",
                "none",
            ],
            None,
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.lines()
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["item"].clone(),
                    v["value"].clone(),
                    v["fingerprint"]["config"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let one = meta("1", "1");
    assert_eq!(one, meta("3", "2"));
    assert_eq!(one[2].0, 2);
    assert_eq!(one[2].1, "hello, c");

    let (r, _c) = grid(
        &[
            "map",
            &square_wat(),
            "square",
            "--range",
            "0..4",
            "--fuel",
            "--stats",
        ],
        None,
    );
    assert_eq!(r.code, 0);
    let stats: serde_json::Value =
        serde_json::from_str(r.stderr.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert!(stats["fuel"].as_u64().is_some_and(|f| f > 0), "{stats}");
}

fn square_wat() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/guests/wat/square.wat")
        .display()
        .to_string()
}
