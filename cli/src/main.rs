//! `grid`: run Wasm functions on a Grid cluster from the shell.
//!
//! This file only parses the command line and dispatches to one file per
//! subcommand in `cmd/`; those call `grid-client`, which does the work.
//! Every failure ends as one `error: ...` line on stderr and an exit code
//! (see `failure`), never a panic message or a backtrace.

mod cluster;
mod cmd;
mod failure;
mod items;
mod limits;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const LONG_ABOUT: &str = "\
Run WebAssembly functions in parallel, sandboxed, on a Grid cluster.

Each command starts a local cluster in this process (a controller and \
--engines engines, one per core by default) and runs a function exported by a \
module (.wasm or .wat) on it: `map` calls it on many items, `apply` once. \
Values go in and come out as JSON. Errors are one `error: ...` line each on \
stderr.

Exit codes: 0 success; 1 some item or call failed, or the cluster did; 2 usage \
error (bad option, unreadable or invalid module, function not exported, input \
that is not JSON).";

const AFTER_HELP: &str = "\
Examples:
  grid map examples/guests/wat/square.wat square --range 0..10
  seq 0 99 | grid map examples/guests/wat/square.wat square --unordered
  grid map examples/guests/wat/square.wat hypot '[3,4]' '[5,12]'
  grid apply examples/guests/wat/square.wat square 12

Run `grid help <COMMAND>` for the options of each command.";

#[derive(Parser, Debug)]
#[command(
    name = "grid",
    version,
    about = "Run WebAssembly functions in parallel, sandboxed, on a Grid cluster",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Map(cmd::map::MapArgs),
    Apply(cmd::apply::ApplyArgs),
}

fn main() -> ExitCode {
    failure::quiet_panics();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Map(args) => cmd::map::run(args),
        Command::Apply(args) => cmd::apply::run(args),
    };
    result.unwrap_or_else(|e| failure::report(&e))
}
