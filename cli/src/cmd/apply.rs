//! `grid apply MODULE FUNC [ARG...]`: one call, on whichever engine the
//! scheduler picks, its result printed as JSON.
//!
//! Each ARG is one JSON argument (never spread, unlike `map`'s items). What
//! the call printed is shown on stderr first, as `[stdout:E] ...` lines (E
//! the engine), even when the call failed. A failed call prints one line
//! saying which engine and why, and exits 1; an invalid module or a missing
//! export is a usage error, exit 2. `--ids` submits the call and leaves,
//! printing its task id for `grid results` instead of its value.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use grid_client::Error;

use crate::cluster::{ClusterArgs, ModuleFile};
use crate::cmd::results;
use crate::failure::{self, FAILED};
use crate::items;
use crate::limits::LimitArgs;
use crate::output::{OutputArgs, print_task_output, write_value};
use crate::run_args::{ReproArgs, RetryArgs};

const ABOUT: &str = "Call a function once and print its result as JSON";

const LONG_ABOUT: &str = "\
Call a function once and print its result as JSON.

Calls FUNC of MODULE with the ARGs, each one JSON value (a string is written \
with its quotes: '\"text\"'), on an engine that the scheduler picks, of a \
local cluster or, with --url, of a running one, and writes the result as one \
line of JSON on stdout.

What the function printed to its stdout and stderr is shown on stderr, before \
the result, each line prefixed with the stream and the engine that ran it: \
`[stdout:0] hello`; --output none hides it.

A failed call prints `error: [engine E] FUNC: cause` on stderr and exits 1. An \
invalid module or a FUNC the module does not export is reported with the \
module's exports and exits 2.

With --ids (and --url) apply submits and leaves: it prints the task's id \
(msg id) on stdout once the controller has the task, and exits without \
waiting; `grid results ID` prints its value later, from any process.";

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 the call failed, or the cluster did; 2 usage error \
(bad option, unreadable or invalid module, FUNC not exported, ARG not JSON).

Examples:
  grid apply examples/guests/wat/square.wat square 12
  grid apply examples/guests/wat/square.wat hypot 3 4
  grid apply examples/guests/wat/square.wat square -5 --timeout 0.5
  grid apply examples/guests/wat/square.wat square 12 --retries 2 --scheme lru
  grid apply --url nats://127.0.0.1:4222 --cluster a examples/guests/wat/square.wat square 12
  grid apply --url nats://127.0.0.1:4222 --ids examples/guests/wat/square.wat square 12";

/// The arguments of `grid apply`.
#[derive(Args, Debug)]
#[command(
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    allow_negative_numbers = true
)]
pub struct ApplyArgs {
    /// The module: a .wasm binary or a .wat text file
    pub module: PathBuf,

    /// The exported function to call
    pub func: String,

    /// The arguments, each one JSON value (a string with its quotes: '"text"')
    #[arg(value_name = "ARG")]
    pub args: Vec<String>,

    /// Submit and leave (needs --url): print the task's id on stdout once
    /// the controller has the task, instead of waiting for its value;
    /// `grid results ID` prints it later
    #[arg(long)]
    pub ids: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub typed: items::TypedArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub repro: ReproArgs,

    #[command(flatten)]
    pub retry: RetryArgs,
}

pub fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    if args.ids {
        results::need_url(&args.cluster, "--ids")?;
    }
    let call_args = items::arguments(&args.args, &args.typed)?;
    let module = ModuleFile::read(&args.module)?;
    let client = args
        .cluster
        .connect_with(args.repro.engine_config())?
        .client;
    let func = module.upload(&client)?.func(&args.func);
    let view = args
        .repro
        .apply(client.load_balanced_view().limits(args.limits.limits()));
    let view = args.retry.apply(view);
    let result = view
        .apply_async(&func, call_args)
        .context("cannot submit the call")?;
    if args.ids {
        results::hand_over(&client, &result.msg_ids())?;
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = result.get(None);
    for task in result.metadata() {
        let engine = task
            .engine_id
            .map_or_else(|| "?".to_string(), |id| id.to_string());
        print_task_output(&engine, &task.stdout, &task.stderr, args.output.output);
    }
    match outcome {
        Ok(value) => {
            write_value(&mut std::io::stdout(), &value)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Remote(e)) if failure::is_fatal(&e) => Err(failure::fatal(&module.name(), &e)),
        Err(Error::Remote(e)) => {
            eprintln!("error: {}", e.summary());
            Ok(ExitCode::from(FAILED))
        }
        Err(other) => Err(other.into()),
    }
}
