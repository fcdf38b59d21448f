//! `grid`: run Wasm functions on a Grid cluster from the shell.
//!
//! This file only parses the command line and dispatches to one file per
//! subcommand in `cmd/`; those call `grid-client`, which does the work, or,
//! for the cluster's own processes (`grid controller`, `grid engine`),
//! `grid-controller` and `grid-host`.
//! Every failure ends as one `error: ...` line on stderr and an exit code
//! (see `failure`), never a panic message or a backtrace.

mod cluster;
mod cmd;
mod failure;
mod items;
mod limits;
mod live;
mod output;
mod process;
mod progress;
mod run_args;
mod service;
mod slots;
mod state;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const LONG_ABOUT: &str = "\
Run WebAssembly functions in parallel, sandboxed, on a Grid cluster.

`map` calls a function exported by a module (.wasm or .wat) on many items, \
`apply` once. Values go in and come out as JSON. By default each command \
starts a local cluster in its own process (a controller and --engines engines, \
one per core by default). With --url nats://HOST:PORT (or GRID_URL) it uses a \
running cluster instead: one started by `grid cluster start` on this machine, \
or by `grid controller` and `grid engine` processes anywhere that reach the \
same NATS server. `grid status` shows a running cluster's engines. Errors are \
one `error: ...` line each on stderr.

`test` runs libtest binaries built for wasm32-wasip1, each test alone in a \
sandbox over every engine (exit code 101 when a test fails, as cargo's).

Exit codes: 0 success; 1 some item or call failed, or the cluster did; 2 usage \
error (bad option, unreadable or invalid module, function not exported, input \
that is not JSON).";

const AFTER_HELP: &str = "\
Examples:
  grid map examples/guests/wat/square.wat square --range 0..10
  seq 0 99 | grid map examples/guests/wat/square.wat square --unordered
  grid map examples/guests/wat/square.wat hypot '[3,4]' '[5,12]'
  grid apply examples/guests/wat/square.wat square 12
  grid test target/wasm32-wasip1/debug/deps/mycrate-*.wasm --manifest-dir .
  CARGO_TARGET_WASM32_WASIP1_RUNNER=\"grid test --runner\" cargo test --target wasm32-wasip1

A cluster in the background, used by several commands:
  export GRID_URL=$(grid cluster start -n 4)
  grid map examples/guests/wat/square.wat square --range 0..1000
  grid status
  grid cluster stop

A cluster across machines, on a NATS server at 10.0.0.5:
  grid controller --url nats://10.0.0.5:4222            (on one machine)
  grid engine --url nats://10.0.0.5:4222 -n 16          (on each worker)
  grid map --url nats://10.0.0.5:4222 module.wasm f < inputs.jsonl

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
    Results(cmd::results::ResultsArgs),
    Run(cmd::run::RunArgs),
    Test(cmd::test::TestArgs),
    Status(cmd::status::StatusArgs),
    Cluster(cmd::cluster::ClusterCommandArgs),
    Controller(cmd::controller::ControllerArgs),
    Engine(cmd::engine::EngineArgs),
}

fn main() -> ExitCode {
    // Large values cross several buffers: keep them out of mmap.
    grid_bus::tune_allocator();
    failure::quiet_panics();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Map(args) => cmd::map::run(args),
        Command::Apply(args) => cmd::apply::run(args),
        Command::Results(args) => cmd::results::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Test(args) => cmd::test::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Cluster(args) => cmd::cluster::run(args),
        Command::Controller(args) => cmd::controller::run(args),
        Command::Engine(args) => cmd::engine::run(args),
    };
    result.unwrap_or_else(|e| failure::report(&e))
}
