//! `grid cluster start|stop|status`: a whole cluster on this machine, in the
//! background, for as long as you need it.
//!
//! `start` runs a NATS server (unless given one), a `grid controller` and a
//! `grid engine -n N` as detached processes and records them in a state file
//! (see `state`); `stop` stops exactly those; `status` is `grid status` on
//! the recorded URL. Clients then use the cluster with `--url`, from this
//! machine or, given a server that listens beyond localhost, from others.

pub mod start;
pub mod stop;

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::cluster::ClusterName;
use crate::cmd::status;
use crate::state::StateFile;

const ABOUT: &str = "Start, stop or show a cluster running in the background on this machine";

const LONG_ABOUT: &str = "\
Start, stop or show a cluster running in the background on this machine.

`grid cluster start` starts a NATS server (when nats-server is installed and no \
--url is given), a controller and N engines as background processes, waits \
until the engines are up, and prints the URL that clients give to --url. \
`grid cluster stop` stops exactly the processes that start started. `grid \
cluster status` shows the engines.

Several clusters can run at once under different --cluster names. What start \
started is recorded in $GRID_STATE_DIR (default: $XDG_STATE_HOME/grid, or \
~/.local/state/grid), with the processes' logs.";

const AFTER_HELP: &str = "\
Examples:
  grid cluster start -n 4
  grid map --url nats://127.0.0.1:PORT examples/guests/wat/square.wat square --range 0..100
  grid cluster status
  grid cluster stop";

/// The arguments of `grid cluster`.
#[derive(Args, Debug)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct ClusterCommandArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    Start(start::StartArgs),
    Stop(stop::StopArgs),
    Status(StatusArgs),
}

/// The arguments of `grid cluster status`.
#[derive(Args, Debug)]
#[command(
    about = "Show the engines of the cluster started by `grid cluster start`",
    long_about = "\
Show the engines of the cluster started by `grid cluster start`: `grid status` \
on its recorded URL (see `grid status --help` for what is shown).",
    after_help = "\
Exit codes: 0 success; 1 no such cluster recorded, or it does not answer; 2 \
usage error.

Examples:
  grid cluster status
  grid cluster status --cluster team-a --json"
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub name: ClusterName,

    /// Print one JSON object rather than a table
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ClusterCommandArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ClusterCommand::Start(args) => start::run(args),
        ClusterCommand::Stop(args) => stop::run(args),
        ClusterCommand::Status(args) => {
            let cluster = &args.name.cluster;
            let state = StateFile::of(cluster)?;
            match state.read()? {
                Some(record) => status::show(&record.url, cluster, args.json),
                None => Err(not_started(cluster, &state)),
            }
        }
    }
}

/// The error when `cluster` has no state file.
fn not_started(cluster: &str, state: &StateFile) -> anyhow::Error {
    anyhow::anyhow!(
        "no cluster `{cluster}` was started by `grid cluster start` (no {})",
        state.path().display()
    )
}
