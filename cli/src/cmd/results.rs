//! `grid results`: what became of tasks, asked of the controller, whoever
//! submitted them and whether or not their client still runs.
//!
//! Three modes over the controller's task records: by id, it waits for each
//! task through `Client::get_result` and prints its value as `grid map`
//! does; `--query` lists records (`db_query`); `--purge` forgets them. The
//! records live in a cluster that outlives its clients, so this command
//! never starts a local one: without `--url` it uses the cluster `grid
//! cluster start` recorded, as `grid status` does. [`hand_over`] is the
//! other end, for `grid map --ids` and `grid apply --ids`: it prints task
//! ids once the controller holds their tasks, so that the submitter may
//! exit.

use std::collections::HashSet;
use std::io::{self, BufRead, IsTerminal, Write};
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use grid_client::{
    AsyncResult, Client, ClientId, Dependency, EngineId, Error, Metadata, MsgId, Purge, RecordKey,
    RecordStatus, RemoteError, TaskFilter, TaskRecord, Timestamp, Value,
};

use crate::cluster::{self, ClusterArgs, ClusterName};
use crate::cmd::map::{error_json, insert_outcome, task_json};
use crate::failure::{FAILED, one_line, usage};
use crate::limits::{parse_age, parse_seconds};
use crate::output::{OutputArgs, Written, fingerprint_json, print_task_output, write_value};
use crate::state::StateFile;

const ABOUT: &str = "Print the results of tasks by id, list task records, or purge them";

const LONG_ABOUT: &str = "\
Print the results of tasks by id, list task records, or purge them.

grid results MSG_ID... waits for each task (submitted by any client: one that \
ran `grid map --ids` or `grid apply --ids` and exited, or one still running) \
and writes its value as one line of JSON on stdout, in the order given, as \
`grid map` does. The ids are the arguments, or, when there are none or one \
is `-`, lines of stdin (blank lines skipped), so `grid map --ids ... | grid \
results` works. What a task printed goes to stderr, each line prefixed with \
its id: `[stdout:ID] ...` (--output none hides it). A failed task writes \
nothing on stdout and one line on stderr: `error: task ID: [engine E] cause`; \
the others go on, and at the end `N of M tasks failed` and exit code 1. An id \
the controller does not know (never submitted, or purged) fails as `lost`. \
With --meta each line on stdout is an object, as with `grid map --json-meta`: \
{\"msg_id\", \"value\" or \"error\", \"engine\", \"started\", \"completed\" \
(microseconds since the epoch), \"fuel\", \"fingerprint\", \"attempts\"}. \
--timeout SECS gives up waiting (exit code 1) after printing the tasks done \
before the first that is not.

grid results --query EXPR lists the controller's records of tasks, oldest \
first. EXPR is `status=LIST`, LIST one or more of pending, ok, error, aborted \
separated by commas (status=ok,error), or `all`; --engine, --client, --since, \
--until and --limit narrow it. DUR is a whole number and a unit: 45s, 30m, \
1h, 2d; --since 1h selects tasks submitted in the last hour, --until 1h those \
submitted before then. The table has each task's id, status, engine, \
submission time (RFC 3339, UTC), run time and error. --json prints one \
object per record instead: {\"msg_id\", \"client\", \"status\", \"engine\", \
\"engine_uuid\", \"submitted\", \"started\", \"completed\", \"received\" \
(integers, microseconds since the epoch), \"error\" ({\"kind\", \
\"message\"}), \"stdout\", \"stderr\" (text, bytes that are not UTF-8 \
replaced), \"after\", \"follow\" ({\"msg_ids\", \"all\", \"success\", \
\"failure\"}), \"fingerprint\", \"attempts\", \"value\" (JSON), \
\"result_blob\"}; a field not known is null (value: while pending, when \
failed, or for a result too large for a message, which result_blob names).

grid results --purge forgets the records of finished tasks: --all, those \
completed --before DUR ago, or the MSG_IDs given (`-`: from stdin). It writes \
the number purged on stdout and `purged N records` on stderr. Naming a task \
that is not done purges nothing: the controller's error, exit code 1.

The records are the controller's, so this command needs a running cluster: \
--url (or GRID_URL), or else the one started by `grid cluster start` under \
--cluster (as `grid status`); it never starts a local one.";

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 some task failed, the wait timed out, the controller \
refused (a purge of a task not done), or the cluster failed; 2 usage error \
(an id, duration or query that does not parse, no --url and no cluster started \
by `grid cluster start`).

Examples:
  grid map --url $GRID_URL --ids examples/guests/wat/square.wat square 1 2 3 > ids
  grid results $(cat ids)
  grid map --ids examples/guests/wat/square.wat square --range 0..10 | grid results --meta
  grid results --query status=error --since 1h
  grid results --query status=ok,error --engine 3 --limit 20 --json
  grid results --purge --before 2d";

/// Ids asked of the controller at once while waiting for results: one
/// answer holds their values.
const RESULTS_BATCH: usize = 256;

/// Ids asked at once whether the controller has them (16 bytes each).
const KNOWN_BATCH: usize = 4096;

/// The first and the longest pause before asking the controller again about
/// tasks it has not seen yet.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// The arguments of `grid results`.
#[derive(Args, Debug)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct ResultsArgs {
    /// Task ids (msg ids, as `grid map --ids` prints them); none, or `-`:
    /// read them from stdin, one per line
    #[arg(value_name = "MSG_ID")]
    pub ids: Vec<String>,

    /// Write each task as a JSON object with its msg_id, value (or error),
    /// engine, times, fuel, fingerprint and attempts (as `grid map
    /// --json-meta`)
    #[arg(long)]
    pub meta: bool,

    /// Stop waiting after this many seconds (fractions allowed): an error
    /// naming the first task not done [default: wait as long as it takes]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,

    #[command(flatten)]
    pub output: OutputArgs,

    /// List task records instead: EXPR is status=LIST (pending, ok, error,
    /// aborted; several separated by commas) or all
    #[arg(
        long,
        value_name = "EXPR",
        value_parser = parse_query,
        conflicts_with_all = ["ids", "meta", "timeout", "output", "purge"]
    )]
    pub query: Option<Query>,

    /// With --query: tasks submitted less than DUR ago (45s, 30m, 1h, 2d)
    #[arg(long, value_name = "DUR", value_parser = parse_age, requires = "query")]
    pub since: Option<Duration>,

    /// With --query: tasks submitted more than DUR ago
    #[arg(long, value_name = "DUR", value_parser = parse_age, requires = "query")]
    pub until: Option<Duration>,

    /// With --query: tasks on this engine (repeat for several)
    #[arg(long, value_name = "N", requires = "query")]
    pub engine: Vec<u32>,

    /// With --query: tasks of this client (its uuid; repeat for several)
    #[arg(long, value_name = "UUID", value_parser = parse_client, requires = "query")]
    pub client: Vec<ClientId>,

    /// With --query: at most N records (the oldest)
    #[arg(long, value_name = "N", requires = "query")]
    pub limit: Option<NonZeroUsize>,

    /// With --query: one JSON object per record instead of a table
    #[arg(long, requires = "query")]
    pub json: bool,

    /// Forget the records of finished tasks: --all, --before DUR, or the MSG_IDs
    #[arg(long, conflicts_with_all = ["meta", "timeout", "output"])]
    pub purge: bool,

    /// With --purge: every finished task
    #[arg(long, requires = "purge", conflicts_with_all = ["ids", "before"])]
    pub all: bool,

    /// With --purge: tasks completed more than DUR ago (45s, 30m, 1h, 2d)
    #[arg(
        long,
        value_name = "DUR",
        value_parser = parse_age,
        requires = "purge",
        conflicts_with = "ids"
    )]
    pub before: Option<Duration>,

    /// The NATS server of the cluster (nats://HOST:PORT) [default: the one
    /// recorded by `grid cluster start`]
    #[arg(long, value_name = "URL", env = "GRID_URL", hide_env_values = true)]
    pub url: Option<String>,

    #[command(flatten)]
    pub name: ClusterName,
}

/// `--query EXPR`: the statuses asked for (`None`: all).
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    statuses: Option<Vec<RecordStatus>>,
}

pub fn run(args: ResultsArgs) -> anyhow::Result<ExitCode> {
    // What was typed is checked before anything is asked of the cluster.
    if let Some(query) = &args.query {
        let filter = args.filter(query);
        return list(&args.connect()?, filter, args.json);
    }
    if args.purge {
        let which = args.purge_which()?;
        return purge(&args.connect()?, which);
    }
    let ids = task_ids(&args.ids)?;
    let remote = args.connect()?;
    let mut printer = Printer {
        out: io::BufWriter::new(io::stdout().lock()),
        meta: args.meta,
        output: args.output.output,
        failed: 0,
    };
    printer.results(&remote, &ids, args.timeout)
}

impl ResultsArgs {
    /// Connects to the cluster at --url, or to the one `grid cluster start`
    /// recorded.
    fn connect(&self) -> anyhow::Result<Remote> {
        let cluster = self.name.cluster.clone();
        let url = match &self.url {
            Some(url) => url.clone(),
            None => {
                let state = StateFile::of(&cluster)?;
                match state.read()? {
                    Some(record) => record.url,
                    None => {
                        return Err(usage(format!(
                            "give --url URL (or set GRID_URL): task records are kept by a \
                             running cluster, and no cluster `{cluster}` was started by \
                             `grid cluster start` (no {})",
                            state.path().display()
                        )));
                    }
                }
            }
        };
        let client = cluster::connect(&url, &cluster)?;
        Ok(Remote {
            client,
            url,
            cluster,
        })
    }

    /// The records `--query` and its options select.
    fn filter(&self, query: &Query) -> TaskFilter {
        let now = Timestamp::now();
        let mut filter = TaskFilter::new();
        if let Some(statuses) = &query.statuses {
            filter = filter.status_in(statuses.iter().copied());
        }
        if !self.engine.is_empty() {
            filter = filter.engine_in(self.engine.iter().map(|&id| EngineId(id)));
        }
        if !self.client.is_empty() {
            filter = filter.client_in(self.client.iter().copied());
        }
        if let Some(age) = self.since {
            filter = filter.submitted_gt(ago(now, age));
        }
        if let Some(age) = self.until {
            filter = filter.submitted_lt(ago(now, age));
        }
        if let Some(n) = self.limit {
            filter = filter.limit(n.get());
        }
        filter
    }

    /// What `--purge` forgets.
    fn purge_which(&self) -> anyhow::Result<Purge> {
        if self.all {
            return Ok(Purge::All);
        }
        if let Some(age) = self.before {
            return Ok(Purge::Before(ago(Timestamp::now(), age)));
        }
        if self.ids.is_empty() {
            return Err(usage(
                "--purge needs what to purge: --all, --before DUR, or MSG_IDs (`-`: from stdin)",
            ));
        }
        Ok(Purge::Ids(task_ids(&self.ids)?))
    }
}

/// A connection to a cluster, and its name for messages.
struct Remote {
    client: Client,
    url: String,
    cluster: String,
}

impl Remote {
    /// The error of a request: the controller's refusal as it said it, a
    /// missing controller named as such.
    fn failed(&self, e: Error) -> anyhow::Error {
        match e {
            Error::Hub(_) => anyhow!(e),
            other => cluster::no_controller(other, &self.url, &self.cluster),
        }
    }
}

/// One task's value or failure.
type Outcome = Result<Value, Box<RemoteError>>;

/// Writes tasks' values (or `--meta` objects) on stdout, their output and
/// failures on stderr.
struct Printer<W: Write> {
    out: W,
    meta: bool,
    output: crate::output::OutputMode,
    failed: usize,
}

impl<W: Write> Printer<W> {
    /// Waits for the tasks `ids` and prints them in order, a batch at a
    /// time, so that values come out while later tasks still run.
    fn results(
        &mut self,
        remote: &Remote,
        ids: &[MsgId],
        timeout: Option<Duration>,
    ) -> anyhow::Result<ExitCode> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut printed = 0;
        for batch in ids.chunks(RESULTS_BATCH) {
            let result = remote
                .client
                .get_result(batch.to_vec())
                .map_err(|e| remote.failed(e))?;
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if result.wait(left) {
                let outcomes = outcomes(&result).map_err(|e| remote.failed(e))?;
                if self.tasks(&result.metadata(), outcomes)? == Written::ReaderGone {
                    return Ok(ExitCode::SUCCESS);
                }
                printed += batch.len();
                continue;
            }
            // Timed out: the tasks done before the first that is not, then why.
            let done = result
                .metadata()
                .iter()
                .take_while(|m| m.status.is_some())
                .count();
            if done > 0 {
                let prefix = remote
                    .client
                    .get_result(batch[..done].to_vec())
                    .map_err(|e| remote.failed(e))?;
                let outcomes = outcomes(&prefix).map_err(|e| remote.failed(e))?;
                if self.tasks(&prefix.metadata(), outcomes)? == Written::ReaderGone {
                    return Ok(ExitCode::SUCCESS);
                }
                printed += done;
            }
            let waited = timeout.unwrap_or_default().as_secs_f64();
            bail!(
                "timed out after {waited} s waiting for task {} ({printed} of {} printed)",
                batch[done],
                ids.len()
            );
        }
        if self.failed > 0 {
            eprintln!("error: {} of {} tasks failed", self.failed, ids.len());
            return Ok(ExitCode::from(FAILED));
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Prints finished tasks, each with its output first (on stderr).
    fn tasks(&mut self, metadata: &[Metadata], outcomes: Vec<Outcome>) -> anyhow::Result<Written> {
        for (meta, outcome) in metadata.iter().zip(outcomes) {
            print_task_output(
                &meta.msg_id.to_string(),
                &meta.stdout,
                &meta.stderr,
                self.output,
            );
            let line = self.meta.then(|| meta_line(meta, &outcome));
            let value = match (line, &outcome) {
                (Some(line), _) => Some(line),
                (None, Ok(value)) => Some(value.clone()),
                (None, Err(_)) => None,
            };
            if let Some(value) = value
                && write_value(&mut self.out, &value)? == Written::ReaderGone
            {
                return Ok(Written::ReaderGone);
            }
            // Before anything goes to stderr, and so that a reader sees
            // each task as soon as it is printed.
            match self.out.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Written::ReaderGone),
                Err(e) => return Err(e).context("cannot write to stdout"),
            }
            if let Err(e) = outcome {
                self.failed += 1;
                eprintln!("error: {}", failure_line(&e));
            }
        }
        Ok(Written::Yes)
    }
}

/// The value or failure of each task of `result`, which is done.
fn outcomes(result: &AsyncResult) -> Result<Vec<Outcome>, Error> {
    Ok(result
        .results(Some(Duration::ZERO))?
        .into_iter()
        .map(|r| r.map_err(Box::new))
        .collect())
}

/// A failed task on one line: `task ID: [engine E] cause` (a task asked
/// for by id has no function name to show, unlike `grid map`'s lines).
fn failure_line(e: &RemoteError) -> String {
    let engine = match e.engine_id {
        Some(id) => format!("engine {id}"),
        None => "no engine".to_string(),
    };
    format!("task {}: [{engine}] {}", e.msg_id, e.error.summary())
}

/// A task's `--meta` line: `grid map --json-meta`'s object, with the task's
/// msg_id where map has the item.
fn meta_line(meta: &Metadata, outcome: &Outcome) -> Value {
    let mut object = match task_json(meta) {
        serde_json::Value::Object(object) => object,
        _ => serde_json::Map::new(),
    };
    object.insert("msg_id".into(), meta.msg_id.to_string().into());
    insert_outcome(&mut object, outcome.as_ref().map_err(|e| &**e));
    Value::from_json(serde_json::Value::Object(object))
}

/// Lists the records `filter` selects, as a table or JSON lines.
fn list(remote: &Remote, filter: TaskFilter, json: bool) -> anyhow::Result<ExitCode> {
    // An empty list asks for every heavy field; the table needs none of
    // them, so it asks for one only.
    let keys: &[RecordKey] = if json { &[] } else { &[RecordKey::Stderr] };
    let records = remote
        .client
        .db_query(filter, keys)
        .map_err(|e| remote.failed(e))?;
    let text = if json {
        records
            .iter()
            .map(|r| format!("{}\n", record_json(r)))
            .collect()
    } else if records.is_empty() {
        eprintln!("no task records match");
        String::new()
    } else {
        table(&records)
    };
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// A record as one JSON object (see the long help).
fn record_json(r: &TaskRecord) -> serde_json::Value {
    let text = |bytes: &Option<Vec<u8>>| {
        bytes
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let dependency = |d: &Option<Dependency>| {
        d.as_ref().map(|d| {
            serde_json::json!({
                "msg_ids": d.msg_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "all": d.all,
                "success": d.success,
                "failure": d.failure,
            })
        })
    };
    serde_json::json!({
        "msg_id": r.msg_id.to_string(),
        "client": r.client.0.to_string(),
        "status": r.record_status().name(),
        "engine": r.engine.map(|e| e.id.0),
        "engine_uuid": r.engine.map(|e| e.uuid.to_string()),
        "submitted": r.submitted.as_micros(),
        "started": r.started.map(Timestamp::as_micros),
        "completed": r.completed.map(Timestamp::as_micros),
        "received": r.received.map(Timestamp::as_micros),
        "error": r.error.as_ref().map(error_json),
        "stdout": text(&r.stdout),
        "stderr": text(&r.stderr),
        "after": dependency(&r.after),
        "follow": dependency(&r.follow),
        "fingerprint": r.fingerprint.as_ref().map(fingerprint_json),
        "attempts": r.attempts,
        "value": r.value.as_ref().map(Value::to_json),
        "result_blob": r.result_blob.map(|h| h.to_hex()),
    })
}

/// Aligned columns under a header; the error, last, is not padded.
fn table(records: &[TaskRecord]) -> String {
    let header = [
        "MSG_ID",
        "STATUS",
        "ENGINE",
        "SUBMITTED",
        "RUN_TIME",
        "ERROR",
    ]
    .map(String::from);
    let mut rows = vec![header];
    for r in records {
        rows.push([
            r.msg_id.to_string(),
            r.record_status().name().to_string(),
            r.engine.map_or_else(|| "-".into(), |e| e.id.to_string()),
            rfc3339(r.submitted),
            match (r.started, r.completed) {
                (Some(started), Some(completed)) => run_time(completed.since(started)),
                _ => "-".into(),
            },
            r.error
                .as_ref()
                .map(|e| one_line(&e.summary()))
                .unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in &rows {
        let mut line: Vec<String> = widths
            .iter()
            .zip(row)
            .map(|(&w, cell)| format!("{cell:<w$}"))
            .collect();
        line.push(row[5].clone());
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// A run time for the table, without spaces (columns stay splittable):
/// `12.3ms`, `1.52s`.
fn run_time(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{:.1}ms", secs * 1000.0)
    } else {
        format!("{secs:.2}s")
    }
}

/// `t` in RFC 3339, UTC, to the millisecond: `2024-05-01T12:34:56.789Z`.
fn rfc3339(t: Timestamp) -> String {
    let micros = t.as_micros();
    let secs = micros / 1_000_000;
    let millis = micros % 1_000_000 / 1000;
    let (day, second) = (secs / 86_400, secs % 86_400);
    let (year, month, date) = civil_from_days(day);
    format!(
        "{year:04}-{month:02}-{date:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second / 3600,
        second % 3600 / 60,
        second % 60
    )
}

/// The proleptic Gregorian date of the `days`th day after 1970-01-01
/// (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let date = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, date)
}

/// Purges, and says how many records went.
fn purge(remote: &Remote, which: Purge) -> anyhow::Result<ExitCode> {
    let count = remote
        .client
        .purge_results(which)
        .map_err(|e| remote.failed(e))?;
    println!("{count}");
    eprintln!("purged {count} record{}", if count == 1 { "" } else { "s" });
    Ok(ExitCode::SUCCESS)
}

/// `now` less `age` (the epoch at the earliest).
fn ago(now: Timestamp, age: Duration) -> Timestamp {
    let micros = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
    Timestamp(now.as_micros().saturating_sub(micros))
}

/// The task ids of the command line, `-` (or no argument at all) read
/// from stdin, one per line.
fn task_ids(texts: &[String]) -> anyhow::Result<Vec<MsgId>> {
    if texts.is_empty() && io::stdin().is_terminal() {
        return Err(usage(
            "no task ids: give MSG_IDs, or pipe them in one per line \
             (`grid map --ids ... | grid results`)",
        ));
    }
    let stdin = ["-".to_string()];
    let texts = if texts.is_empty() { &stdin[..] } else { texts };
    let mut ids = Vec::new();
    for text in texts {
        if text == "-" {
            ids.extend(read_ids(io::stdin().lock(), "stdin")?);
        } else {
            ids.push(parse_id(text).map_err(usage)?);
        }
    }
    Ok(ids)
}

/// Task ids, one per line of `input` (`source` in messages); blank lines
/// are skipped.
fn read_ids(input: impl BufRead, source: &str) -> anyhow::Result<Vec<MsgId>> {
    let mut ids = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line =
            line.map_err(|e| usage(format!("cannot read line {} of {source}: {e}", n + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let id =
            parse_id(&line).map_err(|why| usage(format!("line {} of {source}: {why}", n + 1)))?;
        ids.push(id);
    }
    Ok(ids)
}

fn parse_id(text: &str) -> Result<MsgId, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "`{}` is not a task id (a msg id, as `grid map --ids` prints: a uuid, \
             8-4-4-4-12 hex digits)",
            text.trim()
        )
    })
}

/// Parses `--client`: a client's uuid.
fn parse_client(text: &str) -> Result<ClientId, String> {
    // A client id is a uuid, as a msg id is: parse it as one.
    text.trim()
        .parse::<MsgId>()
        .map(|id| ClientId(id.0))
        .map_err(|_| format!("`{text}` is not a client id (a uuid, 8-4-4-4-12 hex digits)"))
}

/// Parses `--query`: `status=LIST` or `all`.
fn parse_query(text: &str) -> Result<Query, String> {
    let text = text.trim();
    if text == "all" {
        return Ok(Query { statuses: None });
    }
    let Some(list) = text.strip_prefix("status=") else {
        return Err(format!(
            "`{text}` is not a query: give status=LIST (pending, ok, error, aborted, \
             separated by commas) or all; select engines with --engine, clients with \
             --client, times with --since and --until"
        ));
    };
    let statuses = list
        .split(',')
        .map(|s| s.trim().parse::<RecordStatus>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Query {
        statuses: Some(statuses),
    })
}

/// `--ids` needs a cluster that outlives the command: a usage error
/// without --url.
pub fn need_url(cluster: &ClusterArgs, option: &str) -> anyhow::Result<()> {
    if cluster.url.is_some() {
        return Ok(());
    }
    Err(usage(format!(
        "{option} needs a cluster that outlives this command: give --url URL (or set \
         GRID_URL; `grid cluster start` starts one)"
    )))
}

/// Prints `ids` on stdout, one per line, in order, each once the controller
/// knows its task (pending or done), and returns when it knows them all:
/// until then a task may exist only in this client (waiting for room in its
/// in-flight window, or on the wire) and would be lost with it. Asks again,
/// a little later each time, while some are still on their way.
pub fn hand_over(client: &Client, ids: &[MsgId]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let mut reader = true;
    let mut known = 0;
    let mut pause = FIRST_PAUSE;
    while known < ids.len() {
        let asked = &ids[known..ids.len().min(known + KNOWN_BATCH)];
        let unknown = client
            .task_status(asked.to_vec())
            .context("cannot ask the controller whether it has the tasks")?
            .unknown;
        let unknown: HashSet<MsgId> = unknown.into_iter().collect();
        let newly = asked.iter().take_while(|id| !unknown.contains(id)).count();
        if reader {
            let text: String = asked[..newly].iter().map(|id| format!("{id}\n")).collect();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => {}
                // Nobody reads the ids: the tasks are still handed over.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => reader = false,
                Err(e) => return Err(e).context("cannot write to stdout"),
            }
        }
        known += newly;
        if newly < asked.len() {
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_PAUSE);
        } else {
            pause = FIRST_PAUSE;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_a_number_and_a_unit() {
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_age("2d"), Ok(Duration::from_secs(172_800)));
        for bad in [
            "",
            "1",
            "h",
            "1.5h",
            "-1h",
            "1w",
            "1 h",
            "99999999999999999999d",
        ] {
            let e = parse_age(bad).expect_err(bad);
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn queries_name_statuses_or_all() {
        assert_eq!(parse_query("all"), Ok(Query { statuses: None }));
        assert_eq!(
            parse_query("status=ok,error"),
            Ok(Query {
                statuses: Some(vec![RecordStatus::Ok, RecordStatus::Error])
            })
        );
        assert!(parse_query("status=done").unwrap_err().contains("`done`"));
        assert!(parse_query("engine=3").unwrap_err().contains("--engine"));
    }

    #[test]
    fn ids_parse_from_lines_and_a_bad_one_is_named() {
        let a = MsgId::new();
        let b = MsgId::new();
        let text = format!("{a}\n\n  {b}  \n");
        assert_eq!(read_ids(text.as_bytes(), "stdin").unwrap(), [a, b]);
        let e = read_ids(format!("{a}\nnope\n").as_bytes(), "stdin").unwrap_err();
        assert!(e.downcast_ref::<crate::failure::Usage>().is_some());
        assert!(e.to_string().starts_with("line 2 of stdin: `nope`"), "{e}");
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(1_700_000_000_123_456)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            rfc3339(Timestamp(951_782_400_000_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(Timestamp(4_102_444_799_999_999)),
            "2099-12-31T23:59:59.999Z"
        );
        assert_eq!(run_time(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(run_time(Duration::from_millis(1520)), "1.52s");
    }
}
