//! `grid map MODULE FUNC [ITEM...]`: a function over many items, in parallel.
//!
//! The items (from the command line, `--range` or stdin) are read lazily
//! and mapped through the client's bounded `imap` in tasks of `--chunksize`
//! items: only a bounded number of tasks is in flight, and each result is
//! written, one JSON line per item, as soon as its turn comes (input order,
//! or completion order with `--unordered`), so `seq 1 100000000 | grid map
//! ...` runs in constant memory. Each task's own output goes to stderr,
//! prefixed by its items, before its values. A failed item prints its error
//! on stderr and nothing on stdout, and the map goes on; a failure that
//! every item would share (an invalid module, a missing export) stops the
//! map and is reported once. A line of stdin that is not JSON stops the map
//! where it is (the items before it are done and written) with a usage
//! error naming the line.

use std::cell::RefCell;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use grid_client::Imap;

use crate::cluster::{ClusterArgs, ModuleFile};
use crate::failure::{self, FAILED};
use crate::items::{self, CallArgs};
use crate::limits::LimitArgs;
use crate::output::{OutputArgs, Written, items_label, print_task_output, write_value};
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

Input is read as it is needed: at most --max-outstanding tasks are in flight, \
and each result is written as soon as its turn comes, so an endless stdin \
(`seq 1 100000000 | grid map ...`) runs in constant memory. What the tasks print \
goes to stderr, each line prefixed with its item: `[stdout:7] ...`, or \
`[stdout:0-99] ...` for a chunk (--output none hides it).

A failed item writes nothing on stdout and one line on stderr: `error: item N: \
[engine E] FUNC: cause` (items count from 0, in input order); the other items \
go on, and at the end `N of M items failed` and exit code 1. An invalid module \
or a FUNC the module does not export stops the map with one error (listing the \
module's exports) and exit code 2; so does a line of stdin that is not JSON, \
after the items before it.";

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

    /// Tasks in flight at most [default: 65536 / chunksize, between 4 and 256]
    #[arg(long, value_name = "N")]
    pub max_outstanding: Option<NonZeroUsize>,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

impl MapArgs {
    /// Each item's call arguments, from wherever they were given, lazily
    /// for a range and stdin; a bad line of stdin ends the items and leaves
    /// its error in `bad_input`. The total, when known.
    fn items<'a>(
        &'a self,
        bad_input: &'a RefCell<Option<anyhow::Error>>,
    ) -> anyhow::Result<(Box<dyn Iterator<Item = CallArgs> + 'a>, Option<u64>)> {
        if let Some(range) = &self.range {
            let total = range.end.abs_diff(range.start);
            Ok((Box::new(items::from_range(range.clone())), Some(total)))
        } else if !self.items.is_empty() {
            let items = items::from_texts(&self.items)?;
            let total = items.len() as u64;
            Ok((Box::new(items.into_iter()), Some(total)))
        } else {
            let lines = items::lines_lazily(io::stdin().lock(), "stdin", bad_input);
            Ok((Box::new(lines), None))
        }
    }
}

pub fn run(args: MapArgs) -> anyhow::Result<ExitCode> {
    // Items on the command line first: a typo should not wait for a cluster.
    let bad_input = RefCell::new(None);
    let (items, total) = args.items(&bad_input)?;
    let module = ModuleFile::read(&args.module)?;
    let cluster = args.cluster.connect()?;
    let func = module.upload(&cluster.client)?.func(&args.func);
    let view = cluster
        .client
        .load_balanced_view()
        .chunksize(args.chunksize.get())
        .ordered(!args.unordered)
        .limits(args.limits.limits());
    let progress = Progress::start(total);
    let shown = progress.clone();
    let mode = args.output.output;
    let mut map = view
        .imap_items(&func, items)
        .on_task(move |items, metadata| {
            if metadata.stdout.is_empty() && metadata.stderr.is_empty() {
                return;
            }
            let label = items_label(items.start, items.len());
            shown.suspend(|| print_task_output(&label, &metadata.stdout, &metadata.stderr, mode));
        });
    if let Some(n) = args.max_outstanding {
        map = map.max_outstanding(n.get());
    }

    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut failed = 0;
    while let Some(item) = map.next() {
        progress.set(map.items_done());
        match item {
            Ok(value) => {
                let written = progress.suspend_for_stdout(|| write_value(&mut out, &value))?;
                if written == Written::ReaderGone {
                    let _ = map.abort();
                    return Ok(ExitCode::SUCCESS);
                }
                // A task's items are written together, then let out at once.
                if map.buffered() == 0 && flush(&mut out)? == Written::ReaderGone {
                    let _ = map.abort();
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Err(e) if failure::is_fatal(&e) => {
                let _ = map.abort();
                return Err(failure::fatal(&module.name(), &e));
            }
            Err(e) => {
                failed += 1;
                flush(&mut out)?;
                progress.suspend(|| eprintln!("error: {}", e.summary()));
            }
        }
    }
    progress.finish();
    if flush(&mut out)? == Written::ReaderGone {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(e) = bad_input.borrow_mut().take() {
        return Err(e);
    }
    let total = map.items_done();
    if args.stats {
        eprintln!("{}", stats(&map, cluster.engines));
    }
    if failed > 0 {
        eprintln!("error: {failed} of {total} items failed");
        return Ok(ExitCode::from(FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Flushes stdout; a reader that went away is not an error.
fn flush(out: &mut impl Write) -> anyhow::Result<Written> {
    match out.flush() {
        Ok(()) => Ok(Written::Yes),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Written::ReaderGone),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// The `--stats` object.
fn stats<I: Iterator>(map: &Imap<I>, engines: usize) -> serde_json::Value {
    let wall = map.wall_time().as_secs_f64();
    let serial = map.serial_time().as_secs_f64();
    serde_json::json!({
        "tasks": map.tasks_done(),
        "items": map.items_done(),
        "engines": engines,
        "wall_time": wall,
        "serial_time": serial,
        "speedup": (wall > 0.0).then(|| serial / wall),
    })
}
