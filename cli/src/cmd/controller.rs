//! `grid controller --url URL`: the controller of a cluster on a NATS
//! server, in the foreground.
//!
//! It registers engines, watches their heartbeats, schedules load-balanced
//! tasks and records results (all of it `grid-controller`'s work) until a
//! client asks it to shut down (`hub.shutdown`, which also stops the
//! engines) or it gets SIGINT or SIGTERM (which stops only the controller).
//! A cluster has one controller: if one already answers for this cluster
//! name, this one refuses to start rather than race it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use grid_client::Client;
use grid_controller::{
    ControllerConfig, DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_RECORDS, MemoryStore, SchedulerConfig,
    Scheme, SqliteStore, TaskStore,
};

use crate::limits::parse_age;
use crate::service::{self, ServiceArgs, StopSignals};

const ABOUT: &str = "Run the controller of a cluster on a NATS server, in the foreground";

const LONG_ABOUT: &str = "\
Run the controller of a cluster on a NATS server, in the foreground.

The controller registers engines (`grid engine`), watches their heartbeats \
(an engine silent for 3 s is declared dead and its tasks fail), schedules \
load-balanced tasks and records every result. Clients (`grid map --url`, \
`grid status --url`, the client library) talk to it through the NATS server.

It runs until a client asks the cluster to shut down, which stops its engines \
too, or until SIGINT (Ctrl-C) or SIGTERM, which stops only the controller. It \
logs to stderr; RUST_LOG sets the level (default: info).

One NATS server can carry several clusters, each with its own controller and \
engines, told apart by --cluster. Starting a second controller for a cluster \
that has one is an error.

Task records (for `grid results`, get_result and db_query from any client) are \
kept in memory by default, the oldest completed ones forgotten past \
--max-records. With --db they go to an SQLite file instead (written in \
batches), kept until purged, and a controller started again on the same file \
after a crash takes over: engines keep their ids, results recorded before the \
crash are still there, and tasks that waited in the old controller's \
scheduler are sent again by their clients (or fail, saying the controller \
restarted, when their client is gone).";

const AFTER_HELP: &str = "\
Exit codes: 0 shut down on request or by a signal; 1 no NATS server at URL, \
or a controller already runs for this cluster; 2 usage error.

Examples:
  nats-server -js &
  grid controller --url nats://127.0.0.1:4222
  grid controller --url nats://10.0.0.5:4222 --cluster team-a
  grid controller --url nats://127.0.0.1:4222 --scheme twobin
  grid controller --url nats://127.0.0.1:4222 --db tasks.db
  sqlite3 tasks.db \"SELECT status, count(*) FROM tasks GROUP BY status\"
  GRID_URL=nats://127.0.0.1:4222 RUST_LOG=debug grid controller";

/// The arguments of `grid controller`.
#[derive(Args, Debug)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub service: ServiceArgs,

    /// How load-balanced tasks are placed (ipyparallel's schemes): leastload
    /// (the engine with the fewest outstanding tasks), lru (the one given
    /// work least recently), twobin (of two random engines, the less
    /// recently used), weighted (of two random picks weighted by inverse
    /// load, the lighter), plainrandom, or pure (no scheduler: engines take
    /// tasks from a NATS queue group; no dependencies, retries, targets or
    /// timeouts then)
    #[arg(long, value_name = "NAME", default_value = "leastload")]
    pub scheme: Scheme,

    /// Keep task records in this SQLite file (created if absent; taken
    /// over if an earlier controller left it) instead of in memory
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Completed task records kept in memory without --db; the oldest are
    /// forgotten first
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_RECORDS)]
    pub max_records: usize,

    /// Bytes of results kept in memory without --db; the oldest are
    /// forgotten first
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_RECORD_BYTES)]
    pub max_record_bytes: usize,

    /// Delete modules and stored values from the blob store once nothing
    /// has used them for this long (a running task's module is in use;
    /// results of the records kept are never deleted): 45s, 30m, 24h, 7d;
    /// 0 never deletes
    #[arg(long, value_name = "DUR", default_value = "7d", value_parser = parse_blob_age)]
    pub blob_max_age: Duration,
}

/// `--blob-max-age`: a duration, or 0 for never.
fn parse_blob_age(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_age(text)
}

pub fn run(args: ControllerArgs) -> anyhow::Result<ExitCode> {
    service::init_logging();
    let subjects = args.service.subjects()?;
    let (url, cluster) = (args.service.url.as_str(), args.service.cluster());
    service::block_on_one_thread(async {
        let mut signals = StopSignals::install()?;
        let bus = args.service.connect("controller").await?;

        let probe = Client::connect_bus(bus.clone(), subjects.clone())
            .await
            .context("cannot query the cluster")?;
        if probe.engines_async().await.is_ok() {
            return Err(anyhow!(
                "a controller of cluster `{cluster}` already runs at {url}: stop it \
                 first, or give another --cluster"
            ));
        }
        drop(probe);

        let config = ControllerConfig {
            scheduler: SchedulerConfig {
                scheme: args.scheme,
                seed: random_seed(),
                ..SchedulerConfig::default()
            },
            max_records: args.max_records,
            max_record_bytes: args.max_record_bytes,
            blob_max_age: Some(args.blob_max_age).filter(|age| !age.is_zero()),
            ..ControllerConfig::default()
        };
        let store: Box<dyn TaskStore> = match &args.db {
            Some(path) => Box::new(SqliteStore::open(path)?),
            None => Box::new(MemoryStore::new(args.max_records, args.max_record_bytes)),
        };
        let controller = grid_controller::start_with_store(bus, subjects, config, store)
            .await
            .context("cannot start the controller")?;
        let records = match &args.db {
            Some(path) => format!("task records in {}", path.display()),
            None => format!("the last {} task records in memory", args.max_records),
        };
        tracing::info!(
            "controller of cluster `{cluster}` running at {url}, scheme {}, {records}",
            args.scheme
        );
        tokio::select! {
            stopped = controller.stopped() => {
                stopped.context("the controller failed")?;
                tracing::info!("controller shut down on request");
            }
            // Dropping the controller's handle stops it.
            name = signals.recv() => tracing::info!("controller stopped by {name}"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A seed for the random schemes that differs between runs.
fn random_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_nanos() as u64)
}
