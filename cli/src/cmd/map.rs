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
//!
//! `--stream-output` shows the tasks' output as they write it rather than
//! when they are done (`live.rs`); `--json-meta` writes each item as an
//! object with its task's engine, times, fuel and fingerprint instead of
//! the bare value; `--deterministic`, `--seed` and `--fuel` are
//! `run_args.rs`'s. `--ids` submits every item and leaves, printing the
//! tasks' ids for `grid results` (`results.rs`) instead of their values.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Args;
use grid_client::{
    Client, Imap, LoadBalancedView, Metadata, OutputChunk, RemoteError, TaskError, Value,
};

use crate::cluster::{ClusterArgs, ModuleFile};
use crate::cmd::results;
use crate::failure::{self, FAILED};
use crate::items::{self, CallArgs};
use crate::limits::LimitArgs;
use crate::live::Lines;
use crate::output::{
    OutputArgs, OutputMode, Written, fingerprint_json, items_label, print_task_output, write_value,
};
use crate::progress::Progress;
use crate::run_args::{ReproArgs, RetryArgs};

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
`[stdout:0-99] ...` for a chunk (--output none hides it); once a task is \
done, or with --stream-output as it writes it, each line prefixed with the \
item that wrote it.

With --json-meta each line on stdout is an object: {\"item\", \"value\" or \
\"error\", \"engine\", \"started\", \"completed\" (microseconds since the \
epoch), \"fuel\", \"fingerprint\", \"attempts\" (runs, with --retries)}: the fingerprint identifies the work and \
the run (hashes of module, input, engine configuration and output; fuel). \
--deterministic runs every item reproducibly: the same value, output, fuel \
and fingerprint on any engine, any cluster size, any chunksize.

A failed item writes nothing on stdout and one line on stderr: `error: item N: \
[engine E] FUNC: cause` (items count from 0, in input order); the other items \
go on, and at the end `N of M items failed` and exit code 1. An invalid module \
or a FUNC the module does not export stops the map with one error (listing the \
module's exports) and exit code 2; so does a line of stdin that is not JSON, \
after the items before it.

With --ids (and --url) the map submits and leaves: it prints each task's id \
(msg id) on stdout, one per line in input order, as soon as the controller \
has the task, and exits without waiting for results; `grid results` prints \
them later, from any process: `grid map --url U --ids m.wasm f 1 2 3 > ids; \
grid results --url U $(cat ids)`, or `grid map --ids ... | grid results`. \
Every item is read before anything is submitted (a line of stdin that is not \
JSON submits nothing). With --chunksize K a task is a chunk: one id per K \
items, whose value in `grid results` is the array of its items' values. \
Failures, even of a FUNC the module does not export, show in `grid results`.";

const AFTER_HELP: &str = "\
Exit codes: 0 every item succeeded; 1 some item failed, or the cluster did; \
2 usage error (bad option, unreadable or invalid module, FUNC not exported, \
input that is not JSON).

Examples:
  grid map examples/guests/wat/square.wat square --range 0..10
  grid map examples/guests/wat/square.wat square 1 2 3
  grid map examples/guests/wat/square.wat hypot '[3,4]' '[5,12]'
  grid map examples/guests/wat/square.wat square --range 0..1000 --scheme twobin --retries 2
  seq 0 999 | grid map examples/guests/wat/square.wat square --chunksize 50 --stats
  grid map --url nats://127.0.0.1:4222 examples/guests/wat/square.wat square --range 0..100
  grid map --url nats://127.0.0.1:4222 --ids examples/guests/wat/square.wat square 1 2 3 > ids";

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
    /// "wall_time", "serial_time", "speedup", "fuel"}: times in seconds,
    /// serial_time the sum of the tasks' run times, speedup serial_time /
    /// wall_time, fuel the total used (when metered: --fuel or --deterministic)
    #[arg(long)]
    pub stats: bool,

    /// Show what the tasks print as they print it (each line prefixed with
    /// its item), not when they are done
    #[arg(long)]
    pub stream_output: bool,

    /// Write each item as a JSON object with its value (or error) and its
    /// task's engine, times, fuel and fingerprint
    #[arg(long)]
    pub json_meta: bool,

    /// Tasks in flight at most [default: 65536 / chunksize, between 4 and 256]
    #[arg(long, value_name = "N")]
    pub max_outstanding: Option<NonZeroUsize>,

    /// Submit and leave (needs --url): print each task's id on stdout, one
    /// per line in input order, once the controller has the task, instead
    /// of waiting for values; `grid results ID...` prints them later
    #[arg(
        long,
        conflicts_with_all = ["unordered", "stats", "stream_output", "json_meta", "max_outstanding"]
    )]
    pub ids: bool,

    #[command(flatten)]
    pub typed: items::TypedArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub repro: ReproArgs,

    #[command(flatten)]
    pub retry: RetryArgs,
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
            let items = items::from_texts(&self.items, &self.typed)?;
            let total = items.len() as u64;
            Ok((Box::new(items.into_iter()), Some(total)))
        } else {
            let lines = items::lines_lazily(io::stdin().lock(), "stdin", &self.typed, bad_input);
            Ok((Box::new(lines), None))
        }
    }

    /// The view the map's tasks go through, with its options.
    fn view(&self, client: &Client) -> LoadBalancedView {
        let view = client
            .load_balanced_view()
            .chunksize(self.chunksize.get())
            .ordered(!self.unordered)
            .limits(self.limits.limits());
        self.retry.apply(self.repro.apply(view))
    }
}

/// `--ids`: submits every item, prints the tasks' ids once the controller
/// has them, and leaves the results to `grid results`.
fn submit_and_leave(args: &MapArgs) -> anyhow::Result<ExitCode> {
    results::need_url(&args.cluster, "--ids")?;
    // Every item first: a bad line submits nothing rather than half a map.
    let bad_input = RefCell::new(None);
    let (items, _) = args.items(&bad_input)?;
    let items: Vec<CallArgs> = items.collect();
    if let Some(e) = bad_input.borrow_mut().take() {
        return Err(e);
    }
    let module = ModuleFile::read(&args.module)?;
    let cluster = args.cluster.connect_with(args.repro.engine_config())?;
    let func = module.upload(&cluster.client)?.func(&args.func);
    let map = args
        .view(&cluster.client)
        .map_items(&func, items)
        .context("cannot submit the map")?;
    results::hand_over(&cluster.client, &map.msg_ids())?;
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: MapArgs) -> anyhow::Result<ExitCode> {
    if args.ids {
        return submit_and_leave(&args);
    }
    // Items on the command line first: a typo should not wait for a cluster.
    let bad_input = RefCell::new(None);
    let (items, total) = args.items(&bad_input)?;
    let module = ModuleFile::read(&args.module)?;
    let cluster = args.cluster.connect_with(args.repro.engine_config())?;
    let func = module.upload(&cluster.client)?.func(&args.func);
    let view = args.view(&cluster.client);
    let progress = Progress::start(total);
    let mode = args.output.output;
    let lines = Arc::new(Lines::default());
    if args.stream_output && mode == OutputMode::All {
        let (lines, shown) = (lines.clone(), progress.clone());
        cluster
            .client
            .on_output(Some(Arc::new(move |chunk: &OutputChunk| {
                let text = lines.chunk(chunk);
                if !text.is_empty() {
                    shown.suspend(|| eprint!("{text}"));
                }
            })));
    }
    let (shown, stream) = (progress.clone(), args.stream_output);
    let fuel = Arc::new(Mutex::new(None::<u64>));
    let tasks = Arc::new(Mutex::new(VecDeque::new()));
    let (total_fuel, task_meta, json_meta) = (fuel.clone(), tasks.clone(), args.json_meta);
    let mut map = view
        .imap_items(&func, items)
        .on_task(move |items, metadata| {
            if let Some(f) = metadata.fuel_used {
                let mut total = total_fuel.lock().unwrap_or_else(|p| p.into_inner());
                *total = Some(total.unwrap_or(0).saturating_add(f));
            }
            if json_meta {
                let mut tasks = task_meta.lock().unwrap_or_else(|p| p.into_inner());
                tasks.push_back((items.clone(), task_json(metadata)));
            }
            if mode == OutputMode::None {
                return;
            }
            let label = items_label(items.start, items.len());
            if stream {
                let text = lines.done(metadata.msg_id, &label, &metadata.stdout, &metadata.stderr);
                shown.suspend(|| eprint!("{text}"));
            } else {
                shown.suspend(|| {
                    print_task_output(&label, &metadata.stdout, &metadata.stderr, mode)
                });
            }
        });
    if let Some(n) = args.max_outstanding {
        map = map.max_outstanding(n.get());
    }

    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut failed = 0;
    let mut meta = MetaLines::default();
    while let Some(item) = map.next() {
        progress.set(map.items_done());
        let line = args.json_meta.then(|| meta.line(&tasks, &item));
        match item {
            Ok(value) => {
                let value = line.unwrap_or(value);
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
                if let Some(line) = line {
                    progress.suspend_for_stdout(|| write_value(&mut out, &line))?;
                }
                flush(&mut out)?;
                progress.suspend(|| eprintln!("error: {}", e.summary()));
            }
        }
    }
    progress.finish();
    cluster.client.on_output(None);
    if flush(&mut out)? == Written::ReaderGone {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(e) = bad_input.borrow_mut().take() {
        return Err(e);
    }
    let total = map.items_done();
    if args.stats {
        let fuel = *fuel.lock().unwrap_or_else(|p| p.into_inner());
        eprintln!("{}", stats(&map, cluster.engines, fuel));
    }
    if failed > 0 {
        eprintln!("error: {failed} of {total} items failed");
        return Ok(ExitCode::from(FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--json-meta` fields of a task (`grid results --meta` too).
pub fn task_json(m: &Metadata) -> serde_json::Value {
    serde_json::json!({
        "engine": m.engine_id.map(|e| e.0),
        "started": m.started.map(|t| t.as_micros()),
        "completed": m.completed.map(|t| t.as_micros()),
        "fuel": m.fuel_used,
        "fingerprint": m.fingerprint.as_ref().map(fingerprint_json),
        "attempts": m.attempts,
    })
}

/// Pairs the items of `--json-meta` with their tasks: the imap hands out a
/// task's items right after telling its `on_task`, so tasks queue in the
/// order their items come.
#[derive(Default)]
struct MetaLines {
    current: Option<(Range<usize>, serde_json::Value)>,
    next: usize,
}

impl MetaLines {
    fn line(
        &mut self,
        tasks: &Mutex<VecDeque<(Range<usize>, serde_json::Value)>>,
        item: &Result<Value, RemoteError>,
    ) -> Value {
        let exhausted = self
            .current
            .as_ref()
            .is_none_or(|(range, _)| self.next >= range.end);
        if exhausted
            && let Some((range, meta)) = tasks.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
        {
            self.next = range.start;
            self.current = Some((range, meta));
        }
        let mut object = match &self.current {
            Some((_, serde_json::Value::Object(meta))) => meta.clone(),
            _ => serde_json::Map::new(),
        };
        object.insert("item".into(), self.next.into());
        self.next += 1;
        insert_outcome(&mut object, item.as_ref());
        Value::from_json(serde_json::Value::Object(object))
    }
}

/// Adds an item's `value`, or its `error` as `{"kind", "message"}`, to its
/// `--json-meta` object (`grid results --meta` too).
pub fn insert_outcome(
    object: &mut serde_json::Map<String, serde_json::Value>,
    item: Result<&Value, &RemoteError>,
) {
    match item {
        Ok(value) => {
            object.insert("value".into(), value.to_json());
        }
        Err(e) => {
            object.insert("error".into(), error_json(&e.error));
        }
    }
}

/// A task's error in `--json-meta`'s form.
pub fn error_json(error: &TaskError) -> serde_json::Value {
    serde_json::json!({"kind": error.kind(), "message": error.summary()})
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
fn stats<I: Iterator>(map: &Imap<I>, engines: usize, fuel: Option<u64>) -> serde_json::Value {
    let wall = map.wall_time().as_secs_f64();
    let serial = map.serial_time().as_secs_f64();
    serde_json::json!({
        "tasks": map.tasks_done(),
        "items": map.items_done(),
        "engines": engines,
        "wall_time": wall,
        "serial_time": serial,
        "speedup": (wall > 0.0).then(|| serial / wall),
        "fuel": fuel,
    })
}
