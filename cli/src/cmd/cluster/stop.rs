//! `grid cluster stop`: stops exactly the processes `grid cluster start`
//! recorded, and forgets the cluster.
//!
//! First it asks the controller to shut the cluster down, which stops the
//! engines too, and gives them a moment; then SIGTERM for whatever grid
//! process remains, SIGKILL after a grace period; then the same for the NATS
//! server, last, since the others talk through it. A signal goes only to a
//! process that is still the one recorded (same pid, same start time, same
//! boot: see `process`), so a pid reused since is never touched. The state
//! file and the NATS server's storage are removed; the logs stay for
//! reading.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;

use super::not_started;
use crate::cluster::{self, ClusterName};
use crate::process::{self, Recorded};
use crate::state::{ClusterRecord, StateFile};

/// How long the controller and engines get to stop when asked.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a process gets between SIGTERM and SIGKILL, and after SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

const ABOUT: &str = "Stop the cluster started by `grid cluster start`";

const LONG_ABOUT: &str = "\
Stop the cluster started by `grid cluster start`.

Asks the controller to shut the cluster down (the engines stop with it), then \
sends SIGTERM, and after 5 s SIGKILL, to any of the recorded processes still \
running, and last to the NATS server if start started it. Only the processes \
start recorded are signalled, and only while they are still those processes \
(a pid the system has reused since is left alone). Removes the record and the \
NATS server's storage; the logs stay in the cluster's directory.";

const AFTER_HELP: &str = "\
Exit codes: 0 stopped; 1 no such cluster recorded, or some process could not be \
stopped (its record is kept); 2 usage error.

Examples:
  grid cluster stop
  grid cluster stop --cluster team-a";

/// The arguments of `grid cluster stop`.
#[derive(Args, Debug)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct StopArgs {
    #[command(flatten)]
    pub name: ClusterName,
}

pub fn run(args: StopArgs) -> anyhow::Result<ExitCode> {
    let cluster = &args.name.cluster;
    let state = StateFile::of(cluster)?;
    let Some(record) = state.read()? else {
        return Err(not_started(cluster, &state));
    };
    let running = record.running().len();
    let survivors = stop_processes(&record, true);
    if !survivors.is_empty() {
        let names: Vec<String> = survivors.iter().map(|p| p.describe()).collect();
        return Err(anyhow!(
            "cannot stop {} of cluster `{cluster}`; its record stays in {}",
            names.join(", "),
            state.path().display()
        ));
    }
    forget(&state, &record)?;
    eprintln!(
        "cluster `{cluster}` stopped ({running} process{} stopped); its logs stay in {}",
        if running == 1 { "" } else { "es" },
        record.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Stops the recorded processes (never this one), asking the controller
/// first if `ask_controller`. Returns those still running after all.
pub fn stop_processes(record: &ClusterRecord, ask_controller: bool) -> Vec<Recorded> {
    let me = std::process::id();
    let others = |roles: &dyn Fn(&str) -> bool| -> Vec<&Recorded> {
        record
            .processes
            .iter()
            .filter(|p| p.pid != me && roles(&p.role))
            .collect()
    };
    let grid = others(&|role| role != "nats-server");
    let nats = others(&|role| role == "nats-server");

    let controller_runs = grid
        .iter()
        .any(|p| p.role == "controller" && p.is_running());
    if ask_controller && controller_runs {
        // No server, no controller, no answer: SIGTERM does it then.
        if let Ok(client) = cluster::connect(&record.url, &record.cluster)
            && client.shutdown().is_ok()
        {
            process::wait_gone(&grid, SHUTDOWN_GRACE);
        }
    }
    let mut survivors = process::terminate(&grid, TERM_GRACE);
    survivors.extend(process::terminate(&nats, TERM_GRACE));
    survivors.into_iter().cloned().collect()
}

/// Removes the record, and the NATS server's storage if we ran the server.
pub fn forget(state: &StateFile, record: &ClusterRecord) -> anyhow::Result<()> {
    if !record.with_role("nats-server").is_empty() {
        let storage = record.dir.join("nats");
        if storage.exists() {
            std::fs::remove_dir_all(&storage).map_err(|e| {
                anyhow!("cannot remove the NATS storage {}: {e}", storage.display())
            })?;
        }
    }
    state.remove()
}
