//! An example WASI command for Grid: a task that runs `_start` with argv, an
//! environment and stdin, and whose value is the exit code (ABI.md section 3).
//!
//! It prints `args: ...` (argv without the program name) and, if set,
//! `GREETING=...`; copies stdin to stdout uppercased; writes `done` to stderr;
//! and exits with N when given `--exit N`. Options for the engine's other
//! tests: `--cat PATH` prints a file (directory grants), `--clock` prints
//! `now_ns=`, `elapsed_ns=` (across a 10 ms sleep) and `random=` (from
//! WASI's random bytes; deterministic mode), `--tick N MS` prints `tick I`
//! N times, MS milliseconds apart (live output). The tests check each of
//! these, so keep the output format as it is.

use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(exit) => {
            eprintln!("done");
            match exit {
                // `ExitCode` only carries a u8; a WASI exit code is a full i32.
                Some(code) => std::process::exit(code),
                // Returning from `main` (rather than `exit(0)`) is what the
                // engine's "`_start` returned" case exercises.
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("cmd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Does the work and returns the code to exit with, if `--exit N` asked for one.
fn run(args: &[String]) -> io::Result<Option<i32>> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "args: {}", args.join(" "))?;
    if let Ok(greeting) = std::env::var("GREETING") {
        writeln!(stdout, "GREETING={greeting}")?;
    }

    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input)?;
    // Uppercase text as text; bytes that are not UTF-8 only get ASCII letters
    // uppercased, so nothing is lost.
    match String::from_utf8(input) {
        Ok(text) => stdout.write_all(text.to_uppercase().as_bytes())?,
        Err(e) => stdout.write_all(&e.into_bytes().to_ascii_uppercase())?,
    }
    if let Some(path) = option(args, "--cat") {
        stdout.write_all(&std::fs::read(path)?)?;
    }
    if args.iter().any(|a| a == "--clock") {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        writeln!(stdout, "now_ns={}", now.as_nanos())?;
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(10));
        writeln!(stdout, "elapsed_ns={}", start.elapsed().as_nanos())?;
        let random = std::collections::hash_map::RandomState::new().hash_one(42u64);
        writeln!(stdout, "random={random}")?;
    }
    if let Some(n) = option(args, "--tick") {
        let n: u32 = n.parse().unwrap_or(0);
        let ms: u64 = args
            .iter()
            .position(|a| a == "--tick")
            .and_then(|at| args.get(at + 2))
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0);
        for i in 0..n {
            writeln!(stdout, "tick {i}")?;
            stdout.flush()?;
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
    // `process::exit` skips destructors, so nothing else would flush.
    stdout.flush()?;

    exit_code(args)
}

/// The value after `name`, if given.
fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).map(String::as_str)
}

/// N from `--exit N`.
fn exit_code(args: &[String]) -> io::Result<Option<i32>> {
    let Some(at) = args.iter().position(|a| a == "--exit") else {
        return Ok(None);
    };
    let value = args.get(at + 1).map(String::as_str).unwrap_or_default();
    value.parse().map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--exit needs an integer, got {value:?}"),
        )
    })
}
