//! `grid status`: the engines of a running cluster and their queues.
//!
//! Asks the controller for its engines and their queues (two queries, so an
//! engine that joins in between shows with empty queues) and prints a table,
//! or one JSON object with `--json`. Without `--url` it shows the cluster
//! that `grid cluster start` recorded under `--cluster`: a local cluster
//! started only to be shown would have nothing to show. The current task is
//! what the engine's last heartbeat (every second) said it was running.
//!
//! It also shows the messages NATS dropped because a subscriber fell behind
//! (slow consumer) or a connection was lost (one per disconnect): each
//! engine's count as of its last heartbeat (shared by
//! the slots of one `grid engine` process, which share a connection) and the
//! controller's. Counts are lower bounds. When any is non-zero, a warning on
//! stderr says so: a task or result may have been lost, which clients
//! recover from by asking the controller about their tasks.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use grid_proto::{EngineInfo, QueueStatus};
use serde::Serialize;

use crate::cluster::{self, ClusterName};
use crate::failure::usage;
use crate::state::StateFile;

const ABOUT: &str = "Show the engines of a running cluster and their queues";

const LONG_ABOUT: &str = "\
Show the engines of a running cluster and their queues.

Asks the controller of cluster --cluster on the NATS server at --url for its \
engines and prints one line per engine: its id, uuid and host, whether it is \
busy or idle, the tasks queued on it, running (0 or 1) and done, and the id of \
the task it runs (as of its last heartbeat); then the load-balanced tasks still \
waiting for an engine. DROPPED counts the messages the engine's NATS connection \
dropped because it fell behind (slow consumer), and its reconnects; the controller's own count follows \
the number of waiting tasks when it is not zero. When any count is not zero, a \
warning on stderr says so. --json prints the same as one JSON object: \
{\"cluster\", \"url\", \"engines\": [{\"id\", \"uuid\", \"host\", \"state\", \
\"queued\", \"running\", \"done\", \"dropped\", \"current\"}], \"unassigned\", \
\"dropped\"}.

Without --url (or GRID_URL), shows the cluster started by `grid cluster start` \
(as `grid cluster status` does).";

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 no NATS server at URL, or no controller for the \
cluster; 2 usage error (also: no --url, and no cluster started by `grid cluster \
start`).

Examples:
  grid status --url nats://127.0.0.1:4222
  grid status --url nats://127.0.0.1:4222 --cluster team-a --json
  grid status";

/// The arguments of `grid status`.
#[derive(Args, Debug)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct StatusArgs {
    /// The NATS server of the cluster (nats://HOST:PORT) [default: the one
    /// recorded by `grid cluster start`]
    #[arg(long, value_name = "URL", env = "GRID_URL", hide_env_values = true)]
    pub url: Option<String>,

    #[command(flatten)]
    pub name: ClusterName,

    /// Print one JSON object rather than a table
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let cluster = &args.name.cluster;
    if let Some(url) = &args.url {
        return show(url, cluster, args.json);
    }
    let state = StateFile::of(cluster)?;
    match state.read()? {
        Some(record) => show(&record.url, cluster, args.json),
        None => Err(usage(format!(
            "give --url URL (or set GRID_URL): no cluster `{cluster}` was started by \
             `grid cluster start` (no {})",
            state.path().display()
        ))),
    }
}

/// Shows cluster `cluster` at `url`.
pub fn show(url: &str, cluster: &str, json: bool) -> anyhow::Result<ExitCode> {
    let client = cluster::connect(url, cluster)?;
    let engines = client
        .engines()
        .map_err(|e| cluster::no_controller(e, url, cluster))?;
    let queues = client
        .queue_status()
        .map_err(|e| cluster::no_controller(e, url, cluster))?;
    let status = Status::new(cluster, url, engines, &queues);
    let mut out = std::io::stdout().lock();
    let text = if json {
        format!(
            "{}\n",
            serde_json::to_string(&status).context("cannot encode")?
        )
    } else {
        status.table()
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    if let Some(warning) = status.warning() {
        eprintln!("{warning}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What `grid status` shows.
#[derive(Debug, Serialize)]
struct Status {
    cluster: String,
    url: String,
    engines: Vec<EngineRow>,
    /// Load-balanced tasks not yet placed on an engine.
    unassigned: u64,
    /// Messages the controller's NATS connection dropped (slow consumer).
    dropped: u64,
}

#[derive(Debug, Serialize)]
struct EngineRow {
    id: u32,
    uuid: String,
    host: String,
    /// `busy` when running a task, else `idle`.
    state: &'static str,
    queued: u64,
    running: u64,
    done: u64,
    /// Messages the engine's NATS connection dropped (slow consumer), as of
    /// its last heartbeat.
    dropped: u64,
    /// The task running at the engine's last heartbeat.
    current: Option<String>,
}

impl Status {
    fn new(cluster: &str, url: &str, engines: Vec<EngineInfo>, queues: &QueueStatus) -> Status {
        let engines = engines
            .into_iter()
            .map(|e| {
                let queue = queues.engines.get(&e.id).copied().unwrap_or_default();
                EngineRow {
                    id: e.id.0,
                    uuid: e.uuid.0.to_string(),
                    host: e.host,
                    state: if queue.running > 0 { "busy" } else { "idle" },
                    queued: queue.queue,
                    running: queue.running,
                    done: queue.completed,
                    dropped: queue.dropped,
                    current: queue.current.map(|id| id.to_string()),
                }
            })
            .collect();
        Status {
            cluster: cluster.to_string(),
            url: url.to_string(),
            engines,
            unassigned: queues.unassigned,
            dropped: queues.dropped,
        }
    }

    /// The line for stderr when messages were dropped anywhere.
    fn warning(&self) -> Option<String> {
        let mut counts = Vec::new();
        if self.dropped > 0 {
            counts.push(format!("controller: {}", self.dropped));
        }
        for e in self.engines.iter().filter(|e| e.dropped > 0) {
            counts.push(format!("engine {}: {}", e.id, e.dropped));
        }
        if counts.is_empty() {
            return None;
        }
        Some(format!(
            "warning: NATS dropped messages to slow consumers ({}); tasks or results may \
             have been lost, which clients recover by asking the controller about their tasks",
            counts.join(", ")
        ))
    }

    /// Aligned columns, a header, and a summary line.
    fn table(&self) -> String {
        let mut rows = vec![
            [
                "ENGINE", "UUID", "HOST", "STATE", "QUEUED", "RUNNING", "DONE", "DROPPED",
                "CURRENT",
            ]
            .map(String::from),
        ];
        for e in &self.engines {
            rows.push([
                e.id.to_string(),
                e.uuid.clone(),
                e.host.clone(),
                e.state.to_string(),
                e.queued.to_string(),
                e.running.to_string(),
                e.done.to_string(),
                e.dropped.to_string(),
                e.current.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        let widths: Vec<usize> = (0..9)
            .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        let mut text = format!(
            "cluster `{}` at {}: {} engine{}, {} task{} waiting for an engine",
            self.cluster,
            self.url,
            self.engines.len(),
            plural(self.engines.len() as u64),
            self.unassigned,
            plural(self.unassigned)
        );
        if self.dropped > 0 {
            text.push_str(&format!(
                ", {} message{} dropped by the controller",
                self.dropped,
                plural(self.dropped)
            ));
        }
        text.push('\n');
        if self.engines.is_empty() {
            return text;
        }
        text.push('\n');
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                // Numbers (columns 4 to 7) align right.
                .map(|(c, (cell, &w))| {
                    if (4..8).contains(&c) {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect();
            text.push_str(cells.join("  ").trim_end());
            text.push('\n');
        }
        text
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use grid_proto::{EngineId, EngineQueue, EngineUuid};

    use super::*;

    #[test]
    fn the_table_aligns_columns_and_counts() {
        let nil = "00000000-0000-0000-0000-000000000000";
        let uuid: EngineUuid = serde_json::from_value(serde_json::json!(nil)).expect("a uuid");
        let engines = vec![
            EngineInfo {
                id: EngineId(0),
                uuid,
                host: "alpha".into(),
            },
            EngineInfo {
                id: EngineId(12),
                uuid,
                host: "b".into(),
            },
        ];
        let queues = QueueStatus {
            engines: BTreeMap::from([(
                EngineId(12),
                EngineQueue {
                    queue: 3,
                    running: 1,
                    completed: 140,
                    current: None,
                    dropped: 0,
                },
            )]),
            unassigned: 1,
            dropped: 0,
        };
        let mut status = Status::new("c", "nats://h:1", engines, &queues);
        assert_eq!(
            status.table(),
            format!(
                "cluster `c` at nats://h:1: 2 engines, 1 task waiting for an engine\n\
                 \n\
                 ENGINE  UUID{pad}  HOST   STATE  QUEUED  RUNNING  DONE  DROPPED  CURRENT\n\
                 0       {nil}  alpha  idle        0        0     0        0  -\n\
                 12      {nil}  b      busy        3        1   140        0  -\n",
                pad = " ".repeat(nil.len() - 4)
            )
        );
        assert_eq!(status.warning(), None);
        let json = serde_json::to_value(&status).expect("json");
        assert_eq!(json["engines"][1]["state"], "busy");
        assert_eq!(json["engines"][0]["done"], 0);
        assert_eq!(json["engines"][0]["dropped"], 0);
        assert_eq!(json["unassigned"], 1);
        assert_eq!(json["dropped"], 0);

        // Drops show in the table, the summary and a warning.
        status.dropped = 1;
        status.engines[1].dropped = 12345;
        let table = status.table();
        assert!(
            table.starts_with(
                "cluster `c` at nats://h:1: 2 engines, 1 task waiting for an engine, \
                 1 message dropped by the controller\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("  busy        3        1   140    12345  -\n"),
            "{table}"
        );
        let warning = status.warning().expect("a warning");
        assert!(
            warning.starts_with(
                "warning: NATS dropped messages to slow consumers (controller: 1, engine 12: 12345)"
            ),
            "{warning}"
        );
        assert!(warning.contains("asking the controller"), "{warning}");
    }
}
