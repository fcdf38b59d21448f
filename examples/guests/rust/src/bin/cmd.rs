//! An example WASI command for Grid: a task that runs `_start` with argv, an
//! environment and stdin, and whose value is the exit code (ABI.md section 3).
//!
//! It prints `args: ...` (argv without the program name) and, if set,
//! `GREETING=...`; copies stdin to stdout uppercased; writes `done` to stderr;
//! and exits with N when given `--exit N`. The engine's tests check each of
//! these, so keep the output format as it is.

use std::io::{self, Read, Write};
use std::process::ExitCode;

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
    // `process::exit` skips destructors, so nothing else would flush.
    stdout.flush()?;

    exit_code(args)
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
