//! `grid run MODULE [ARGS...]`: one WASI command, on the grid, as if here.
//!
//! Runs MODULE's `_start` on one engine (a local cluster of one engine
//! unless `--engines` or `--url` say otherwise) with ARGS as its argv after
//! the program name, `--env K=V` as its whole environment, read-only
//! `--dir HOST[::GUEST]` grants, and stdin: all of our stdin when it is a
//! pipe or a file, read before the command starts (the sandbox gets it as
//! a buffer); from a terminal nothing, unless `--stdin` asks to read what
//! is typed until end of file. What the command writes appears on our
//! stdout and stderr as it writes it (live output), and its exit code is
//! ours. A trap or panic prints one `error:` line and exits 134, as an
//! aborted process does; a limit or any other failure exits 1; usage
//! errors 2. `--stats` prints wall time, fuel and the fingerprint on
//! stderr as JSON.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use grid_client::{Command, Error, OutputChunk, Value};

use crate::cluster::{ClusterArgs, ModuleFile};
use crate::failure::{self, FAILED, usage};
use crate::limits::LimitArgs;
use crate::live::Raw;
use crate::run_args::{DirArgs, ReproArgs, program_name};

/// Exit code of a command that trapped or panicked (as after SIGABRT).
const ABORTED: u8 = 134;

const LONG_ABOUT: &str = "\
Run a WASI command module on the grid, as if it ran here.

Runs MODULE's _start in a sandbox on one engine: ARGS are its arguments \
(argv[0] is the module's file name), --env K=V its only environment variables, \
--dir HOST[::GUEST] read-only directories it may read. Stdin is passed in \
when it is a pipe or a file (read before the command starts); from a \
terminal, only with --stdin (type, then Ctrl-D). The command's stdout and \
stderr appear on ours as it writes them; its exit code is ours.";

const AFTER_HELP: &str = "\
Exit codes: the command's own (a code above 255 exits 1); 134 when it \
trapped or panicked; 1 when it hit a limit or the cluster failed; 2 usage \
error (bad option, unreadable or invalid module, not a command).

Examples:
  grid run prog.wasm --verbose input.txt --dir .
  echo hello | grid run prog.wasm
  grid run --deterministic --stats prog.wasm";

/// The arguments of `grid run`.
#[derive(Args, Debug)]
#[command(
    about = "Run a WASI command module (its _start) on the grid, output live",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct RunArgs {
    /// The command module: a .wasm binary or a .wat text file
    pub module: PathBuf,

    /// Its arguments (after `--` when they start with a dash meant for it)
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,

    /// An environment variable of the command, KEY=VALUE (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// Read stdin from the terminal too (until Ctrl-D)
    #[arg(long = "stdin", short = 'i')]
    pub stdin: bool,

    /// Print wall time, fuel and the result's fingerprint on stderr as JSON
    #[arg(long)]
    pub stats: bool,

    #[command(flatten)]
    pub dirs: DirArgs,

    #[command(flatten)]
    pub repro: ReproArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Parses `KEY=VALUE`.
fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

pub fn run(mut args: RunArgs) -> anyhow::Result<ExitCode> {
    let module = ModuleFile::read(&args.module)?;
    let mut command = Command::new(program_name(&args.module)).args(args.args.clone());
    for (key, value) in &args.env {
        command = command.env(key, value);
    }
    command = args.dirs.grant(command)?;
    let stdin = std::io::stdin();
    if args.stdin || !stdin.is_terminal() {
        let mut bytes = Vec::new();
        stdin
            .lock()
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        command = command.stdin(bytes);
    }
    // One command needs one engine.
    if args.cluster.engines.is_none() {
        args.cluster.engines = std::num::NonZeroUsize::new(1);
    }
    let client = args
        .cluster
        .connect_with(args.repro.engine_config())?
        .client;
    let uploaded = module.upload(&client)?;
    let live = Arc::new(Raw::default());
    let shown = live.clone();
    client.on_output(Some(Arc::new(move |chunk: &OutputChunk| {
        shown.chunk(chunk)
    })));
    let view = args
        .repro
        .apply(client.load_balanced_view().limits(args.limits.limits()));
    let result = view
        .run(&uploaded, &command)
        .context("cannot submit the command")?;
    let outcome = result.get(None);
    client.on_output(None);
    let metadata = result.metadata().into_iter().next();
    if let Some(m) = &metadata {
        live.done(&m.stdout, &m.stderr);
    }
    if args.stats {
        eprintln!("{}", stats(&result, metadata.as_ref()));
    }
    match outcome {
        Ok(Value::Int(code)) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(FAILED))),
        Ok(other) => Err(anyhow::anyhow!("unexpected result of a command: {other}")),
        Err(Error::Remote(e)) if failure::is_fatal(&e) => Err(failure::fatal(&module.name(), &e)),
        Err(Error::Remote(e)) if e.error.kind() == "bad_arguments" => {
            Err(usage(format!("{}: {}", module.name(), e.error.summary())))
        }
        Err(Error::Remote(e)) => {
            eprintln!("error: {}", e.summary());
            let aborted = matches!(e.error.kind(), "trap" | "panic");
            Ok(ExitCode::from(if aborted { ABORTED } else { FAILED }))
        }
        Err(other) => Err(other.into()),
    }
}

/// The `--stats` object.
fn stats(
    result: &grid_client::AsyncResult,
    m: Option<&grid_client::Metadata>,
) -> serde_json::Value {
    let fingerprint = m.and_then(|m| m.fingerprint.as_ref());
    serde_json::json!({
        "wall_time": result.wall_time().as_secs_f64(),
        "engine": m.and_then(|m| m.engine_id).map(|e| e.0),
        "fuel": m.and_then(|m| m.fuel_used),
        "fingerprint": fingerprint.map(crate::output::fingerprint_json),
    })
}
