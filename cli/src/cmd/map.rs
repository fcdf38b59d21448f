//! `grid map MODULE FUNC [ITEM...]`: a function over many items, in parallel.
//!
//! The items are read whole (from the command line, `--range` or stdin), then
//! submitted at once as a load-balanced map in tasks of `--chunksize` items;
//! results are written as they arrive, one JSON line per item, in input order
//! or, with `--unordered`, in completion order. A failed item prints its
//! error on stderr and nothing on stdout, and the map goes on; a failure that
//! every item would share (an invalid module, a missing export) stops the map
//! and is reported once.

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use grid_client::AsyncMapResult;

use crate::cluster::{ClusterArgs, ModuleFile};
use crate::failure::{self, FAILED};
use crate::items::{self, CallArgs};
use crate::limits::LimitArgs;
use crate::output::{Written, write_value};
use crate::progress::Progress;

const ABOUT: &str = "Map a function over items, in parallel, printing one JSON result per line";

const LONG_ABOUT: &str = "\
Map a function over items, in parallel, printing one JSON result per line.

Calls FUNC of MODULE once per item on the engines of a local cluster (or, with \
--url, of a running cluster) and writes each result as one line of JSON on \
stdout, in input order (completion order with --unordered), as results arrive.

Items are the ITEM arguments, or the integers of --range A..B, or else JSON \
lines read from stdin (blank lines are skipped). An item that is a JSON array is \
spread into arguments: [3,4] calls FUNC(3, 4); wrap an array to pass it as one \
argument: [[1,2]]. Any other item is the one argument.

A failed item writes nothing on stdout and one line on stderr: `error: item N: \
[engine E] FUNC: cause` (items count from 0, in input order); the other items \
go on, and at the end `N of M items failed` and exit code 1. An invalid module \
or a FUNC the module does not export stops the map with one error (listing the \
module's exports) and exit code 2.";

const AFTER_HELP: &str = "\
Exit codes: 0 every item succeeded; 1 some item failed, or the cluster did; \
2 usage error (bad option, unreadable or invalid module, FUNC not exported, \
input that is not JSON).

Examples:
  grid map examples/guests/wat/square.wat square --range 0..10
  grid map examples/guests/wat/square.wat square 1 2 3
  grid map examples/guests/wat/square.wat hypot '[3,4]' '[5,12]'
  seq 0 999 | grid map examples/guests/wat/square.wat square --chunksize 50 --stats
  grid map --url nats://127.0.0.1:4222 examples/guests/wat/square.wat square --range 0..100";

/// The arguments of `grid map`.
#[derive(Args, Debug)]
#[command(
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    allow_negative_numbers = true
)]
pub struct MapArgs {
    /// The module: a .wasm binary or a .wat text file
    pub module: PathBuf,

    /// The exported function to call on each item
    pub func: String,

    /// Items as JSON values ([3,4] is spread into two arguments). Without
    /// ITEMs or --range, JSON lines are read from stdin
    #[arg(value_name = "ITEM", conflicts_with = "range")]
    pub items: Vec<String>,

    /// Map over the integers A, A+1, ..., B-1 (half-open)
    #[arg(
        long,
        value_name = "A..B",
        value_parser = items::parse_range,
        allow_hyphen_values = true
    )]
    pub range: Option<Range<i64>>,

    /// Items per task: larger chunks cost less per item, smaller ones balance better
    #[arg(long, value_name = "K", default_value = "1")]
    pub chunksize: NonZeroUsize,

    /// Print results in completion order rather than input order
    #[arg(long)]
    pub unordered: bool,

    /// At the end, print on stderr a JSON object {"tasks", "items", "engines",
    /// "wall_time", "serial_time", "speedup"}: times in seconds, serial_time the
    /// sum of the tasks' run times, speedup serial_time / wall_time
    #[arg(long)]
    pub stats: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

impl MapArgs {
    /// Each item's call arguments, from wherever they were given.
    fn items(&self) -> anyhow::Result<Vec<CallArgs>> {
        if let Some(range) = &self.range {
            Ok(items::from_range(range.clone()))
        } else if !self.items.is_empty() {
            items::from_texts(&self.items)
        } else {
            items::from_lines(io::stdin().lock(), "stdin")
        }
    }
}

pub fn run(args: MapArgs) -> anyhow::Result<ExitCode> {
    // Input first: a typo in it should not wait for a cluster to start.
    let items = args.items()?;
    let module = ModuleFile::read(&args.module)?;
    let cluster = args.cluster.connect()?;
    let func = module.upload(&cluster.client)?.func(&args.func);
    let view = cluster
        .client
        .load_balanced_view()
        .chunksize(args.chunksize.get())
        .ordered(!args.unordered)
        .limits(args.limits.limits());
    let result = view
        .map_items(&func, items)
        .context("cannot submit the map")?;
    let total = result.items();

    let progress = Progress::start(&result);
    let mut out = io::stdout().lock();
    let mut failed = 0;
    for item in result.iter() {
        match item {
            Ok(value) => {
                let written = progress.suspend_for_stdout(|| write_value(&mut out, &value))?;
                if written == Written::ReaderGone {
                    let _ = result.abort();
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Err(e) if failure::is_fatal(&e) => {
                let _ = result.abort();
                return Err(failure::fatal(&module.name(), &e));
            }
            Err(e) => {
                failed += 1;
                progress.suspend(|| eprintln!("error: {}", e.summary()));
            }
        }
    }
    progress.finish();
    out.flush().context("cannot write to stdout")?;

    if args.stats {
        eprintln!("{}", stats(&result, cluster.engines));
    }
    if failed > 0 {
        eprintln!("error: {failed} of {total} items failed");
        return Ok(ExitCode::from(FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--stats` object.
fn stats(result: &AsyncMapResult, engines: usize) -> serde_json::Value {
    let wall = result.wall_time().as_secs_f64();
    let serial = result.serial_time().as_secs_f64();
    serde_json::json!({
        "tasks": result.len(),
        "items": result.items(),
        "engines": engines,
        "wall_time": wall,
        "serial_time": serial,
        "speedup": (wall > 0.0).then(|| serial / wall),
    })
}
