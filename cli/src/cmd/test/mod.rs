//! `grid test FILE.wasm... [FILTER...]`: run libtest binaries built for
//! wasm32-wasip1, each test alone in a fresh sandbox, over every engine.
//!
//! It exists because wasm32-wasip1 is `panic=abort`: under one wasmtime
//! process the first failing test aborts the whole binary and hides every
//! test after it. Here each binary first lists its tests through its own
//! command line (`libtest.rs`); then every selected test is one WASI
//! command task (`--exact NAME --nocapture`), all submitted at once (the
//! client bounds what is in flight), the longest first when an earlier
//! run's timings are known (`timings.rs`), load-balanced over the cluster.
//! An abort ends only its own sandbox. Results are reported as libtest
//! does, or as JSON lines, and JUnit XML (`report.rs`); the exit code is
//! 101 when any test failed, like cargo's.
//!
//! A test's outcome: exit code 0 passes; another exit code, a trap (a
//! panic aborts with `unreachable`), a guest panic or any other error fails
//! it, with the error's one-line summary beside its captured output; a
//! wall-time limit (`--timeout`) is TIMEOUT. `#[should_panic]` tests cannot
//! run on this target, and libtest does not mark them in its listing (they
//! are not in `--list --ignored`): it reports them, when asked to run one,
//! as `test NAME - should panic ... ignored`. So every selected test runs,
//! and one that libtest reports ignored with that marker although it was
//! asked to run is shown as `ignored, should_panic needs unwinding`. An
//! `#[ignore]`d test that the run does not include still gets a task (libtest
//! only prints its line), to show libtest's reason for it.
//!
//! As cargo's runner (`CARGO_TARGET_WASM32_WASIP1_RUNNER="grid test
//! --runner"`), the first argument is the binary and the rest are libtest's:
//! its selection flags are ours, the display flags it may pass are accepted
//! and ignored, `--list` lists through the binary, cargo's
//! `CARGO_MANIFEST_DIR` becomes `--manifest-dir`, and its `CARGO_PKG_*` and
//! `CARGO_CRATE_NAME` reach the tests. This file wires options,
//! cluster and printing together; it must not grow libtest parsing or
//! report formatting of its own (those are the submodules', and pure).

mod libtest;
mod report;
mod timings;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Args;
use grid_client::{
    AsyncResult, Command, Error, LimitKind, LoadBalancedView, Metadata, Module, TaskError, Value,
};

use crate::cluster::{ClusterArgs, ModuleFile};
use crate::failure::{self, one_line, usage};
use crate::limits::LimitArgs;
use crate::run_args::{DirArgs, ReproArgs, program_name};

use libtest::{Listed, Plan, Planned, Selection, Verdict};
use report::{Emit, Outcome, Printer, TestReport};

/// Exit code when a test failed (cargo's and libtest's).
const TESTS_FAILED: u8 = 101;

/// What an ignored `#[should_panic]` test is reported with.
const SHOULD_PANIC: &str = "should_panic needs unwinding";

const LONG_ABOUT: &str = "\
Run libtest binaries built for wasm32-wasip1, each test alone in a sandbox.

Give the test binaries that `cargo test --no-run --target wasm32-wasip1` \
builds (the .wasm files it names), then FILTERs. Each binary lists its tests \
(`--list`), and every selected test then runs alone in a fresh sandbox \
(`--exact NAME --nocapture`), load-balanced over all engines of a local \
cluster (--engines, one per core by default) or, with --url, of a running \
one; the longest tests first once an earlier run timed them (kept under \
~/.cache/grid/test-times). A panic aborts only its own test.

The report is libtest's: `running N tests`, one `test NAME ... ok|FAILED|\
ignored|FLAKY|TIMEOUT` line per test as it completes (in listing order with \
--ordered), the failed tests' output and cause, and `test result: ...`. \
#[should_panic] tests cannot run on wasm32-wasip1 (no unwinding): they are \
reported as `ignored, should_panic needs unwinding`.

Selection is libtest's: a test runs when any FILTER is part of its name (all \
of it with --exact) and no --skip is; #[ignore]d tests are reported ignored \
unless --ignored (only them) or --include-ignored (them too).

Tests see no files but those granted: --dir HOST[::GUEST] as for `grid run`, \
and --manifest-dir DIR (the crate's directory) both as their working \
directory and at its own absolute path, with CARGO_MANIFEST_DIR set to it.

As cargo's runner, with CARGO_TARGET_WASM32_WASIP1_RUNNER=\"grid test \
--runner\", `cargo test --target wasm32-wasip1` runs every test binary through \
Grid: the first argument is then the binary, the rest are libtest's \
(filters, --exact, --skip, --ignored, --include-ignored, --list; \
--nocapture, --quiet, --test-threads and the like are accepted and ignored), \
and cargo's CARGO_MANIFEST_DIR is the default --manifest-dir.";

const AFTER_HELP: &str = "\
Exit codes: 0 every selected test passed (or was ignored); 101 some test \
failed or timed out; 1 the cluster failed; 2 usage error (bad option, \
unreadable or invalid binary).

Examples:
  cargo test --no-run --target wasm32-wasip1
  grid test target/wasm32-wasip1/debug/deps/mycrate-*.wasm --manifest-dir .
  grid test suite.wasm parser:: --skip slow --retries 2 --timeout 30
  grid test suite.wasm --json --junit report.xml > results.jsonl
  grid test --url nats://127.0.0.1:4222 --deterministic suite.wasm
  CARGO_TARGET_WASM32_WASIP1_RUNNER=\"grid test --runner\" cargo test --target wasm32-wasip1";

/// The arguments of `grid test`.
#[derive(Args, Debug)]
#[command(
    about = "Run libtest binaries (wasm32-wasip1), each test in its own sandbox",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct TestArgs {
    /// The test binaries (.wasm), then FILTERs: a test runs when a filter
    /// is part of its name. With --runner: the binary, then libtest's
    /// arguments
    #[arg(value_name = "FILE.wasm|FILTER", required = true)]
    pub args: Vec<String>,

    /// Run as cargo's test runner: the first argument is the binary
    /// (CARGO_TARGET_WASM32_WASIP1_RUNNER="grid test --runner")
    #[arg(long)]
    pub runner: bool,

    /// Filters (and --skip) match whole test names, not parts
    #[arg(long)]
    pub exact: bool,

    /// Leave out the tests whose names contain S (repeatable)
    #[arg(long, value_name = "S")]
    pub skip: Vec<String>,

    /// Run only the #[ignore]d tests
    #[arg(long, conflicts_with = "include_ignored")]
    pub ignored: bool,

    /// Run the #[ignore]d tests too
    #[arg(long)]
    pub include_ignored: bool,

    /// List the tests (as libtest does), run none
    #[arg(long)]
    pub list: bool,

    /// Report the tests in listing order rather than as they complete
    #[arg(long)]
    pub ordered: bool,

    /// Run a failed test up to N more times; one that then passes is
    /// FLAKY, and counts as passed
    #[arg(long, value_name = "N", default_value = "0")]
    pub retries: u32,

    #[command(flatten)]
    pub limits: LimitArgs,

    /// Also write a JUnit XML report to PATH (a testsuite per binary)
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,

    /// Print one JSON object per test on stdout ({"name", "binary",
    /// "outcome", "duration", "attempts", "engine", "fingerprint",
    /// "reason", "fuel"}); the usual report goes to stderr
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub dirs: DirArgs,

    /// The crate's directory: granted read-only as the tests' working
    /// directory and at its absolute path, and CARGO_MANIFEST_DIR
    #[arg(long, value_name = "DIR", value_parser = parse_manifest_dir)]
    pub manifest_dir: Option<PathBuf>,

    #[command(flatten)]
    pub repro: ReproArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub compat: LibtestCompat,
}

/// libtest options that cargo or a person may pass through the runner and
/// that mean nothing here (output is always captured per test, every test
/// is alone); `--format` matters only to `--list`.
#[derive(Args, Debug, Clone, Default)]
pub struct LibtestCompat {
    #[arg(long, hide = true)]
    nocapture: bool,
    #[arg(long, hide = true)]
    show_output: bool,
    #[arg(long, short = 'q', hide = true)]
    quiet: bool,
    #[arg(long, hide = true, value_name = "N")]
    test_threads: Option<String>,
    #[arg(long, hide = true, value_name = "WHEN")]
    color: Option<String>,
    #[arg(long, hide = true, value_name = "FORMAT")]
    format: Option<String>,
    #[arg(short = 'Z', hide = true, value_name = "FLAG")]
    unstable: Vec<String>,
    /// cargo passes it to test (not bench) targets' runners.
    #[arg(long = "test", hide = true)]
    test: bool,
}

/// `--manifest-dir`: an existing directory, made absolute.
fn parse_manifest_dir(text: &str) -> Result<PathBuf, String> {
    let path = Path::new(text);
    if !path.is_dir() {
        return Err(format!("{text} is not a directory"));
    }
    std::path::absolute(path).map_err(|e| format!("{text}: {e}"))
}

/// The binaries and the filters among the positional arguments: with
/// `runner`, the first is the binary; else the leading ones that are
/// files or end in `.wasm`/`.wat` (`is_file` tells), the rest filters.
fn split_positionals(
    args: &[String],
    runner: bool,
    is_file: impl Fn(&str) -> bool,
) -> (Vec<PathBuf>, Vec<String>) {
    let binaries = if runner {
        args.len().min(1)
    } else {
        args.iter()
            .take_while(|a| a.ends_with(".wasm") || a.ends_with(".wat") || is_file(a))
            .count()
    };
    let (binaries, filters) = args.split_at(binaries);
    (
        binaries.iter().map(PathBuf::from).collect(),
        filters.to_vec(),
    )
}

/// What every test's sandbox gets: the directory grants and environment.
struct Sandbox {
    dirs: DirArgs,
    manifest_dir: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Sandbox {
    fn new(args: &TestArgs) -> anyhow::Result<Sandbox> {
        let mut manifest_dir = args.manifest_dir.clone();
        let mut env = Vec::new();
        if args.runner {
            // cargo describes the crate to its runner; tests may read these
            // at run time (`env!` ones are compiled in already).
            if manifest_dir.is_none()
                && let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR")
            {
                let dir = dir.to_string_lossy().into_owned();
                manifest_dir = Some(
                    parse_manifest_dir(&dir)
                        .map_err(|e| usage(format!("CARGO_MANIFEST_DIR: {e}")))?,
                );
            }
            env.extend(
                std::env::vars()
                    .filter(|(k, _)| k.starts_with("CARGO_PKG_") || k == "CARGO_CRATE_NAME"),
            );
        }
        if let Some(dir) = &manifest_dir {
            let text = dir.to_str().ok_or_else(|| {
                usage(format!(
                    "--manifest-dir {}: the path is not UTF-8",
                    dir.display()
                ))
            })?;
            env.push(("CARGO_MANIFEST_DIR".into(), text.to_string()));
        }
        Ok(Sandbox {
            dirs: args.dirs.clone(),
            manifest_dir,
            env,
        })
    }

    /// The command running `binary` (its file name as argv[0]) with no
    /// arguments yet.
    fn command(&self, binary: &Path) -> anyhow::Result<Command> {
        let mut command = Command::new(program_name(binary));
        for (key, value) in &self.env {
            command = command.env(key, value);
        }
        command = self.dirs.grant(command)?;
        if let Some(dir) = &self.manifest_dir {
            let guest = dir.display().to_string();
            command = command
                .dir(dir, ".")
                .and_then(|c| c.dir(dir, guest))
                .map_err(|e| usage(e.to_string()))?;
        }
        Ok(command)
    }
}

/// A binary of this run, uploaded.
struct Binary {
    path: PathBuf,
    name: String,
    module: Module,
    command: Command,
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let (paths, filters) = split_positionals(&args.args, args.runner, |a| Path::new(a).is_file());
    if paths.is_empty() {
        return Err(usage(
            "no test binary given: grid test FILE.wasm... [FILTER...] \
             (binaries from `cargo test --no-run --target wasm32-wasip1`)",
        ));
    }
    let selection = Selection {
        filters,
        exact: args.exact,
        skip: args.skip.clone(),
        ignored: args.ignored,
        include_ignored: args.include_ignored,
    };
    let files = paths
        .iter()
        .map(|p| ModuleFile::read(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sandbox = Sandbox::new(&args)?;
    let client = args
        .cluster
        .connect_with(args.repro.engine_config())?
        .client;
    let mut binaries = Vec::new();
    for (path, file) in paths.into_iter().zip(&files) {
        binaries.push(Binary {
            command: sandbox.command(&path)?,
            module: file.upload(&client)?,
            name: file.name(),
            path,
        });
    }
    let view = args
        .repro
        .apply(client.load_balanced_view().limits(args.limits.limits()));
    if args.list {
        return list_through(&view, &binaries, &selection, args.compat.format.as_deref());
    }
    let listings = list_tests(&view, &binaries)?;
    let plans: Vec<Plan> = listings.iter().map(|l| selection.plan(l)).collect();
    let run = Run {
        view,
        binaries,
        plans,
        retries: args.retries,
        json: args.json,
        ordered: args.ordered,
        announce: !args.runner,
    };
    let suites = run.run()?;
    for suite in &suites {
        let times = suite
            .tests
            .iter()
            .filter(|t| t.outcome != Outcome::Ignored)
            .map(|t| (t.name.clone(), t.duration));
        timings::update(timings::path(Path::new(&suite.binary)).as_deref(), times);
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&suites))
            .with_context(|| format!("cannot write the JUnit report {}", path.display()))?;
    }
    let failed = suites
        .iter()
        .flat_map(|s| &s.tests)
        .any(|t| t.outcome.failed());
    Ok(if failed {
        ExitCode::from(TESTS_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// How a command task ended: its exit code or error, and its metadata.
struct Ended {
    result: Result<i128, Error>,
    meta: Option<Metadata>,
}

impl Ended {
    /// `ar`'s end (it must be done).
    fn of(ar: &AsyncResult) -> Ended {
        let result = ar.get(None).and_then(|value| match value {
            Value::Int(code) => Ok(code),
            other => Err(Error::Usage(format!(
                "the command returned {} instead of an exit code",
                other.type_name()
            ))),
        });
        Ended {
            result,
            meta: ar.metadata().into_iter().next(),
        }
    }

    fn stdout(&self) -> String {
        self.meta
            .as_ref()
            .map(|m| String::from_utf8_lossy(&m.stdout).into_owned())
            .unwrap_or_default()
    }

    fn stderr(&self) -> String {
        self.meta
            .as_ref()
            .map(|m| String::from_utf8_lossy(&m.stderr).into_owned())
            .unwrap_or_default()
    }
}

/// Runs `binary` with libtest's `args` to the end.
fn submit_args(
    view: &LoadBalancedView,
    binary: &Binary,
    args: Vec<String>,
) -> anyhow::Result<AsyncResult> {
    view.run(&binary.module, &binary.command.clone().args(args))
        .with_context(|| format!("{}: cannot submit", binary.name))
}

/// A listing that did not end well, as an error naming the binary.
fn listing_failed(binary: &Binary, ended: Ended) -> anyhow::Error {
    match ended.result {
        Err(Error::Remote(e)) if failure::is_fatal(&e) => failure::fatal(&binary.name, &e),
        Err(Error::Remote(e)) => anyhow!(
            "{}: cannot list its tests: {}",
            binary.name,
            e.error.summary()
        ),
        Err(other) => {
            anyhow::Error::new(other).context(format!("{}: cannot list its tests", binary.name))
        }
        Ok(code) => {
            let stderr = one_line(&ended.stderr());
            anyhow!(
                "{}: listing its tests exited with code {code}{}{stderr} (is it a libtest binary?)",
                binary.name,
                if stderr.is_empty() { "" } else { ": " }
            )
        }
    }
}

/// Every binary's tests, through `--list --format terse` with and without
/// `--ignored`, all listed at once.
fn list_tests(view: &LoadBalancedView, binaries: &[Binary]) -> anyhow::Result<Vec<Vec<Listed>>> {
    let mut pending = Vec::new();
    for binary in binaries {
        let all = submit_args(view, binary, libtest::list_args(false))?;
        let ignored = submit_args(view, binary, libtest::list_args(true))?;
        pending.push((all, ignored));
    }
    let mut listings = Vec::new();
    for (binary, (all, ignored)) in binaries.iter().zip(pending) {
        let mut names = Vec::new();
        for ar in [all, ignored] {
            let ended = Ended::of(&ar);
            if !matches!(ended.result, Ok(0)) {
                return Err(listing_failed(binary, ended));
            }
            names.push(libtest::parse_list(&ended.stdout()));
        }
        let ignored = names.pop().unwrap_or_default();
        let all = names.pop().unwrap_or_default();
        listings.push(libtest::listing(all, &ignored));
    }
    Ok(listings)
}

/// `--list`: each binary lists its tests itself, with the selection flags,
/// its output passed through; the exit code is the first non-zero one.
fn list_through(
    view: &LoadBalancedView,
    binaries: &[Binary],
    selection: &Selection,
    format: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let mut args = vec!["--list".to_string()];
    if let Some(format) = format {
        args.extend(["--format".to_string(), format.to_string()]);
    }
    args.extend(selection.to_args());
    let pending = binaries
        .iter()
        .map(|b| submit_args(view, b, args.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut code = 0;
    for (binary, ar) in binaries.iter().zip(pending) {
        let ended = Ended::of(&ar);
        print!("{}", ended.stdout());
        eprint!("{}", ended.stderr());
        match ended.result {
            Ok(0) => {}
            Ok(c) => code = if code == 0 { c } else { code },
            Err(_) => return Err(listing_failed(binary, ended)),
        }
    }
    std::io::stdout()
        .flush()
        .context("cannot write the listing")?;
    Ok(ExitCode::from(
        u8::try_from(code).unwrap_or(failure::FAILED),
    ))
}

/// One selected test through its attempts.
struct Job {
    suite: usize,
    index: usize,
    attempts: u32,
    /// The cause of the last failed attempt (for a flaky test).
    last_failure: Option<String>,
}

/// The tests of every binary, being run.
struct Run {
    view: LoadBalancedView,
    binaries: Vec<Binary>,
    plans: Vec<Plan>,
    retries: u32,
    json: bool,
    ordered: bool,
    /// Name each binary on stderr before its report (cargo does, as runner).
    announce: bool,
}

impl Run {
    /// Runs every test to its end and reports it; the binaries' results.
    fn run(self) -> anyhow::Result<Vec<report::Suite>> {
        let mut jobs: Vec<Job> = self
            .plans
            .iter()
            .enumerate()
            .flat_map(|(suite, plan)| {
                (0..plan.tests.len()).map(move |index| Job {
                    suite,
                    index,
                    attempts: 0,
                    last_failure: None,
                })
            })
            .collect();
        let times: Vec<timings::Times> = self
            .binaries
            .iter()
            .map(|b| timings::read(timings::path(&b.path).as_deref()))
            .collect();
        // A test that does not run (only asked for its line) takes no time.
        timings::longest_first(&mut jobs, |job| {
            let test = &self.plans[job.suite].tests[job.index];
            match test.run {
                true => times[job.suite].get(&test.name).copied(),
                false => Some(0.0),
            }
        });

        let mut printer = Printer::new(
            self.binaries
                .iter()
                .zip(&self.plans)
                .map(|(b, plan)| (b.name.clone(), plan.tests.len(), plan.filtered_out))
                .collect(),
            self.ordered,
        );
        let waiter = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("grid-test-wait")
            .build()
            .context("cannot start the runtime that waits for results")?;
        let (done_tx, done_rx) = mpsc::channel::<(usize, AsyncResult)>();
        let submit = |id: usize, job: &Job| -> anyhow::Result<()> {
            let test = &self.plans[job.suite].tests[job.index];
            let ar = submit_args(
                &self.view,
                &self.binaries[job.suite],
                libtest::run_args(test),
            )?;
            let done_tx = done_tx.clone();
            waiter.spawn(async move {
                ar.wait_async().await;
                let _ = done_tx.send((id, ar));
            });
            Ok(())
        };

        let started = Instant::now();
        let emits = printer.start();
        self.show(&printer, emits)?;
        for (id, job) in jobs.iter().enumerate() {
            submit(id, job)?;
        }
        let mut remaining = jobs.len();
        while remaining > 0 {
            let (id, ar) = done_rx.recv().context("lost the results of the tests")?;
            let job = &mut jobs[id];
            job.attempts += 1;
            let test = &self.plans[job.suite].tests[job.index];
            let mut attempt = judge(test, &Ended::of(&ar));
            if attempt.outcome.failed() && job.attempts <= self.retries {
                job.last_failure = attempt.reason;
                submit(id, job)?;
                continue;
            }
            attempt.attempts = job.attempts;
            if attempt.outcome == Outcome::Passed && job.attempts > 1 {
                attempt.outcome = Outcome::Flaky;
                attempt.reason = job.last_failure.take();
            }
            remaining -= 1;
            let emits = printer.arrive(job.suite, job.index, attempt, started.elapsed());
            self.show(&printer, emits)?;
        }
        Ok(printer.into_suites())
    }

    /// Writes what the printer says can be shown now.
    fn show(&self, printer: &Printer, emits: Vec<Emit>) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        for emit in emits {
            if let Emit::Start { suite } = emit
                && self.announce
            {
                let _ = writeln!(err, "     Running {}", printer.binary(suite));
            }
            let human = printer.human(emit);
            if self.json {
                let _ = err.write_all(human.as_bytes());
                if let Emit::Test { suite, index } = emit
                    && let Some(t) = printer.report(suite, index)
                {
                    writeln!(out, "{}", report::json_line(printer.binary(suite), t))
                        .context("cannot write to stdout")?;
                }
            } else {
                out.write_all(human.as_bytes())
                    .context("cannot write to stdout")?;
            }
        }
        out.flush().context("cannot write to stdout")?;
        Ok(())
    }
}

/// The error's one-line summary; a trap's backtrace cut to the test's own
/// frames (see [`libtest::test_frames`]).
fn own_summary(error: &TaskError) -> String {
    match error {
        TaskError::Trap {
            kind,
            message,
            backtrace,
        } => TaskError::Trap {
            kind: *kind,
            message: message.clone(),
            backtrace: libtest::test_frames(backtrace),
        }
        .summary(),
        other => other.summary(),
    }
}

/// One attempt's report: what libtest and the sandbox say about `test`.
fn judge(test: &Planned, ended: &Ended) -> TestReport {
    let stdout = ended.stdout();
    let verdict = libtest::verdict(&test.name, &stdout);
    let (outcome, reason) = match (&ended.result, verdict) {
        (
            _,
            Verdict::Ignored {
                reason,
                should_panic,
            },
        ) => {
            let reason = if should_panic && test.run {
                Some(SHOULD_PANIC.to_string())
            } else {
                reason
            };
            (Outcome::Ignored, reason)
        }
        // Not asked to run: libtest was only asked for its line.
        _ if !test.run => (Outcome::Ignored, None),
        (Ok(0), Verdict::Ok) => (Outcome::Passed, None),
        (Ok(0), Verdict::Missing) => (
            Outcome::Failed,
            Some(format!("libtest ran no test named `{}`", test.name)),
        ),
        (Ok(0), Verdict::Failed) => (Outcome::Failed, Some("libtest reported a failure".into())),
        (Ok(code), _) => (Outcome::Failed, Some(format!("exit code {code}"))),
        (Err(Error::Remote(e)), _) => {
            let outcome = match e.error {
                TaskError::Limit {
                    limit: LimitKind::WallTime,
                    ..
                } => Outcome::TimedOut,
                _ => Outcome::Failed,
            };
            (outcome, Some(own_summary(&e.error)))
        }
        (Err(other), _) => (Outcome::Failed, Some(one_line(&other.to_string()))),
    };
    let meta = ended.meta.as_ref();
    TestReport {
        name: test.name.clone(),
        outcome,
        reason,
        stdout: libtest::test_stdout(&test.name, &stdout),
        stderr: ended.stderr(),
        duration: meta
            .and_then(|m| Some(m.completed?.since(m.started?)))
            .unwrap_or(Duration::ZERO),
        attempts: 1,
        engine: meta.and_then(|m| m.engine_id).map(|id| id.0),
        fingerprint: meta
            .and_then(|m| m.fingerprint.as_ref())
            .map(|f| f.digest()),
        fuel: meta.and_then(|m| m.fuel_used),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn binaries_lead_and_filters_follow() {
        let files = |a: &str| a == "built";
        let (binaries, filters) = split_positionals(
            &strings(&["a.wasm", "b.wat", "built", "parse", "x.wasm"]),
            false,
            files,
        );
        assert_eq!(
            binaries,
            [PathBuf::from("a.wasm"), "b.wat".into(), "built".into()]
        );
        assert_eq!(filters, ["parse", "x.wasm"]);
        let (binaries, filters) = split_positionals(&strings(&["bin", "f1", "f2"]), true, files);
        assert_eq!(binaries, [PathBuf::from("bin")]);
        assert_eq!(filters, ["f1", "f2"]);
        let (binaries, _) = split_positionals(&strings(&["filter"]), false, files);
        assert!(binaries.is_empty());
    }

    fn planned(run: bool) -> Planned {
        Planned {
            name: "m::t".into(),
            ignored: !run,
            run,
        }
    }

    fn ended(result: Result<i128, Error>, stdout: &str) -> Ended {
        let mut meta = Metadata {
            msg_id: grid_client::MsgId::new(),
            submitted: grid_client::Timestamp::now(),
            started: None,
            completed: None,
            received: None,
            engine_id: Some(grid_client::EngineId(2)),
            engine_uuid: None,
            status: None,
            error: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: b"panicked".to_vec(),
            fuel_used: None,
            fingerprint: None,
            after: Vec::new(),
            follow: Vec::new(),
            attempts: 1,
        };
        meta.fuel_used = Some(7);
        Ended {
            result,
            meta: Some(meta),
        }
    }

    const OK: &str = "\nrunning 1 test\ntest m::t ... ok\n\ntest result: ok. 1 passed; 0 failed; \
                      0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
    const SHOULD_PANIC_LINE: &str = "\nrunning 1 test\ntest m::t - should panic ... ignored\n\n\
        test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; \
        finished in 0.00s\n";

    fn remote(error: TaskError) -> Error {
        Error::from(grid_client::RemoteError {
            msg_id: grid_client::MsgId::new(),
            engine_id: None,
            function: "_start".into(),
            item: None,
            error,
        })
    }

    #[test]
    fn outcomes_follow_exit_codes_errors_and_libtest() {
        let t = judge(&planned(true), &ended(Ok(0), OK));
        assert_eq!(
            (t.outcome, t.engine, t.fuel),
            (Outcome::Passed, Some(2), Some(7))
        );
        let t = judge(&planned(true), &ended(Ok(101), "test m::t ... "));
        assert_eq!(
            (t.outcome, t.reason.as_deref()),
            (Outcome::Failed, Some("exit code 101"))
        );
        assert_eq!(t.stderr, "panicked");
        let t = judge(&planned(true), &ended(Ok(0), ""));
        assert_eq!(
            t.outcome,
            Outcome::Failed,
            "exit 0 without the test ran nothing"
        );
        let t = judge(&planned(true), &ended(Ok(0), SHOULD_PANIC_LINE));
        assert_eq!(
            (t.outcome, t.reason.as_deref()),
            (Outcome::Ignored, Some(SHOULD_PANIC))
        );
        let t = judge(&planned(false), &ended(Ok(0), ""));
        assert_eq!((t.outcome, t.reason), (Outcome::Ignored, None));

        let limit = remote(TaskError::Limit {
            limit: LimitKind::WallTime,
            value: 2000,
        });
        let t = judge(&planned(true), &ended(Err(limit), "test m::t ... "));
        assert_eq!(t.outcome, Outcome::TimedOut);
        assert_eq!(
            t.reason.as_deref(),
            Some("wall time limit of 2000 ms exceeded")
        );
        let memory = remote(TaskError::Limit {
            limit: LimitKind::Memory,
            value: 1 << 20,
        });
        assert_eq!(
            judge(&planned(true), &ended(Err(memory), "")).outcome,
            Outcome::Failed
        );
        let trap = remote(TaskError::Panic {
            message: "boom".into(),
            backtrace: vec![],
        });
        let t = judge(&planned(true), &ended(Err(trap), ""));
        assert_eq!(
            (t.outcome, t.reason.as_deref()),
            (Outcome::Failed, Some("guest panicked: boom"))
        );
    }
}
