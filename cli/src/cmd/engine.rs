//! `grid engine --url URL -n N`: N engine slots of a cluster on a NATS
//! server, in one process, in the foreground.
//!
//! The slots share one wasmtime runtime, so a module is compiled once per
//! process, and one set of default limits (`--timeout`, `--max-memory`,
//! `--fuel`). Each registers with the cluster's controller; the first waits
//! up to [`REGISTER_TIMEOUT`] for one, so engines may start before their
//! controller. The process ends when the controller has shut every slot
//! down, or at SIGINT or SIGTERM, after unregistering its slots so that the
//! controller fails their tasks at once rather than after the heartbeat
//! timeout.

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use grid_bus::Bus;
use grid_client::Client;
use grid_host::{EngineConfig, EngineSlot, Runtime};
use grid_proto::{EngineId, HubRequest, Subjects};
use tokio::task::JoinSet;

use crate::limits::LimitArgs;
use crate::service::{self, ServiceArgs, StopSignals};
use crate::slots::engine_slots;

/// How long the slots wait, together, for a controller to register them.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long unregistering may take when stopping on a signal.
const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

const ABOUT: &str = "Run engines of a cluster on a NATS server, in the foreground";

const LONG_ABOUT: &str = "\
Run engines of a cluster on a NATS server, in the foreground.

Starts N engine slots (one per core by default) in this process. Each runs one \
task at a time in a fresh wasmtime sandbox; the slots share one compiled-module \
cache. Each registers with the cluster's controller (`grid controller`), \
waiting up to 30 s for one to answer, and then takes the tasks the controller \
and clients send it.

--timeout and --max-memory are these engines' limits: every task runs under \
them, and may ask for lower ones, never higher. --fuel turns fuel metering on \
(wasm instructions are counted: needed for tasks with a fuel limit, and results \
then report the fuel they used).

The process runs until the controller shuts the cluster down, or until SIGINT \
(Ctrl-C) or SIGTERM, when it unregisters its engines (their unfinished tasks \
fail at once with `engine N died`) and exits. A process killed without warning \
is noticed by the controller within 3 s, with the same effect. It logs to \
stderr; RUST_LOG sets the level (default: info).";

const AFTER_HELP: &str = "\
Exit codes: 0 shut down on request or by a signal; 1 no NATS server at URL, \
or no controller answered within 30 s; 2 usage error.

Examples:
  grid engine --url nats://127.0.0.1:4222
  grid engine --url nats://10.0.0.5:4222 -n 8 --max-memory 512M --timeout 60
  grid engine --url nats://10.0.0.5:4222 --cluster team-a -n 2 --fuel";

/// The arguments of `grid engine`.
#[derive(Args, Debug)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct EngineArgs {
    #[command(flatten)]
    pub service: ServiceArgs,

    /// Engine slots to run in this process [default: the number of cores]
    #[arg(short = 'n', long = "engines", value_name = "N")]
    pub engines: Option<NonZeroUsize>,

    #[command(flatten)]
    pub limits: LimitArgs,

    /// Count fuel (wasm instructions) on these engines: needed by tasks with
    /// a fuel limit; results report the fuel used
    #[arg(long)]
    pub fuel: bool,

    /// Let commands be granted read-only access to DIR and what is under it
    /// (`grid run --dir`, `grid test --dir`); without it no directory is
    /// granted (repeatable)
    #[arg(long = "allow-dir", value_name = "DIR")]
    pub allow_dirs: Vec<std::path::PathBuf>,
}

impl EngineArgs {
    /// The slots to start: a usage error when this process cannot hold them.
    fn slots(&self) -> anyhow::Result<usize> {
        engine_slots(self.engines)
    }

    /// The engine configuration for `slots` slots: defaults, with the limits
    /// given here.
    fn config(&self, slots: usize) -> EngineConfig {
        let given = self.limits.limits();
        let mut config = EngineConfig::default().fuel_metering(self.fuel);
        config.limits.wall_time_ms = given.wall_time_ms.or(config.limits.wall_time_ms);
        config.limits.memory_bytes = given.memory_bytes.or(config.limits.memory_bytes);
        config.allowed_dirs = self.allow_dirs.clone();
        config.room_for_slots(slots)
    }
}

pub fn run(args: EngineArgs) -> anyhow::Result<ExitCode> {
    let slots = args.slots()?;
    service::init_logging();
    let subjects = args.service.subjects()?;
    let runtime = Runtime::new(args.config(slots)).context("cannot start the wasm runtime")?;
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let (url, cluster) = (args.service.url.as_str(), args.service.cluster());
    service::block_on(async {
        let mut signals = StopSignals::install()?;
        let bus = args.service.connect("engine").await?;
        let start = start_slots(&bus, &subjects, &runtime, &host, slots);
        let slots = tokio::select! {
            slots = start => slots.with_context(|| format!(
                "cannot register the engines with cluster `{cluster}` at {url} within {} s \
                 (is `grid controller --url {url} --cluster {cluster}` running?)",
                REGISTER_TIMEOUT.as_secs()
            ))?,
            name = signals.recv() => {
                tracing::info!("stopped by {name} before the engines registered");
                return Ok(ExitCode::SUCCESS);
            }
        };
        let ids: Vec<EngineId> = slots.iter().map(EngineSlot::id).collect();
        tracing::info!(
            "{} of cluster `{cluster}` registered at {url} (host {host})",
            engines(&ids)
        );
        let mut running: JoinSet<()> = slots.into_iter().map(EngineSlot::stopped).collect();
        tokio::select! {
            () = async { while running.join_next().await.is_some() {} } => {
                tracing::info!("engines shut down by the controller");
            }
            name = signals.recv() => {
                tracing::info!("stopping on {name}: unregistering {}", engines(&ids));
                unregister(bus, subjects, &ids).await;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Starts `n` slots, all registered before a shared deadline.
async fn start_slots(
    bus: &Arc<dyn Bus>,
    subjects: &Subjects,
    runtime: &Arc<Runtime>,
    host: &str,
    n: usize,
) -> anyhow::Result<Vec<EngineSlot>> {
    let deadline = tokio::time::Instant::now() + REGISTER_TIMEOUT;
    let mut slots = Vec::with_capacity(n);
    for _ in 0..n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let slot = EngineSlot::start(
            bus.clone(),
            subjects.clone(),
            runtime.clone(),
            host.to_string(),
            left,
        )
        .await?;
        slots.push(slot);
    }
    Ok(slots)
}

/// Tells the controller these engines are leaving; best effort, briefly:
/// if it does not answer, its heartbeat timeout does the same a bit later.
async fn unregister(bus: Arc<dyn Bus>, subjects: Subjects, ids: &[EngineId]) {
    let leave = async {
        let client = Client::connect_bus(bus, subjects).await?;
        for &id in ids {
            client.hub(HubRequest::Unregister { id }).await?;
        }
        Ok::<(), grid_client::Error>(())
    };
    match tokio::time::timeout(UNREGISTER_TIMEOUT, leave).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("cannot unregister the engines: {e}"),
        Err(_) => tracing::warn!("the controller did not answer the unregistration"),
    }
}

/// `engine 0`, `engines 0, 1, 2`.
fn engines(ids: &[EngineId]) -> String {
    let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let s = if ids.len() == 1 { "" } else { "s" };
    format!("engine{s} {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        engine: EngineArgs,
    }

    #[test]
    fn given_limits_replace_the_engine_defaults() {
        let cli = Cli::parse_from([
            "grid",
            "--url",
            "nats://x",
            "-n",
            "100",
            "--timeout",
            "2",
            "--fuel",
        ]);
        let slots = cli.engine.slots().unwrap();
        assert_eq!(slots, 100);
        let config = cli.engine.config(slots);
        let defaults = EngineConfig::default();
        assert_eq!(config.limits.wall_time_ms, Some(2000));
        assert_eq!(config.limits.memory_bytes, defaults.limits.memory_bytes);
        assert_eq!(config.limits.stdout_bytes, defaults.limits.stdout_bytes);
        assert!(config.fuel_metering);
        assert_eq!(config.max_instances, 100);
    }
}
