//! Where the work runs: a local cluster in this process, or a cluster on a
//! NATS server; and the module uploaded to it.
//!
//! Without `--url`, `--engines N` starts a controller and N engine slots on
//! an in-process bus (`Client::local_with`). With `--url` (or `GRID_URL`) the
//! client connects to cluster `--cluster` on that NATS server, and checks at
//! once that a controller answers: a missing one is an error at once. A
//! cluster with no engines yet (just started, or its engines restarting) is
//! waited for up to `--wait-engines` seconds, with one line on stderr
//! saying so; then it is an error too, not a hang. Either way the CLI then
//! talks to the cluster only through the client library. A module file is
//! read before connecting, so that a missing file fails fast, and a missing
//! file and a file that is not wasm get their own one-line messages.
//! How many engine slots one process can hold is checked where `--engines`
//! is resolved, before anything starts (`slots.rs`).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use grid_bus::BusError;
use grid_client::{Client, Error, Module};
use grid_host::EngineConfig;
use grid_proto::{DEFAULT_CLUSTER, Scheme, Subjects};

use crate::failure::{one_line, usage};
use crate::limits::parse_seconds;
use crate::slots::engine_slots;

/// The `--engines`, `--url` and `--cluster` options of the client commands.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Engines to start in the local cluster [default: the number of cores].
    /// Ignored with --url: the remote cluster has the engines it has
    #[arg(long, value_name = "N")]
    pub engines: Option<NonZeroUsize>,

    /// Use the cluster on this NATS server (nats://HOST:PORT) instead of
    /// starting a local one
    #[arg(long, value_name = "URL", env = "GRID_URL", hide_env_values = true)]
    pub url: Option<String>,

    /// With --url, when the cluster has no engines yet: wait this long for
    /// one to register before failing (0: fail at once)
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        value_parser = parse_wait
    )]
    pub wait_engines: Duration,

    /// How the local cluster's scheduler places tasks: leastload (the
    /// fewest outstanding tasks), lru, twobin, weighted, plainrandom, or
    /// pure (no scheduler: engines take tasks from a shared queue). A cluster
    /// at --url schedules as its controller was told (`grid controller --scheme`)
    #[arg(long, value_name = "NAME")]
    pub scheme: Option<Scheme>,

    /// With --url: when the controller's beat stops for this long (it died
    /// or cannot be reached), the tasks waiting in its scheduler fail,
    /// naming it, rather than wait for it to come back
    #[arg(
        long,
        value_name = "SECS",
        env = "GRID_CONTROLLER_TIMEOUT",
        default_value = "5",
        value_parser = parse_seconds_arg
    )]
    pub controller_timeout: Duration,

    #[command(flatten)]
    pub name: ClusterName,
}

/// Parses a positive number of seconds, possibly fractional.
fn parse_seconds_arg(text: &str) -> Result<Duration, String> {
    parse_seconds(text).map_err(|_| format!("`{text}` is not a number of seconds (e.g. 5 or 0.5)"))
}

/// Parses `--wait-engines`: seconds, possibly fractional, or 0.
fn parse_wait(text: &str) -> Result<Duration, String> {
    if text.trim().parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_seconds(text).map_err(|_| {
        format!("`{text}` is not a number of seconds (e.g. 10 or 0.5; 0: do not wait)")
    })
}

/// `--cluster NAME`: one NATS server carries several clusters by name.
#[derive(Args, Debug, Clone)]
pub struct ClusterName {
    /// The cluster's name on the NATS server (letters, digits, - and _)
    #[arg(
        long = "cluster",
        value_name = "NAME",
        env = "GRID_CLUSTER",
        hide_env_values = true,
        default_value = DEFAULT_CLUSTER,
        value_parser = parse_cluster_name
    )]
    pub cluster: String,
}

/// A cluster name is one subject token.
pub fn parse_cluster_name(text: &str) -> Result<String, String> {
    Subjects::new(text)
        .map(|_| text.to_string())
        .map_err(|_| format!("`{text}` is not a cluster name: use letters, digits, - and _"))
}

/// A connected client and how many engines its cluster has.
pub struct Connected {
    pub client: Client,
    pub engines: usize,
}

impl ClusterArgs {
    /// Connects to the remote cluster, or starts the local one with
    /// `config` for its engines.
    pub fn connect_with(&self, config: EngineConfig) -> anyhow::Result<Connected> {
        if let Some(url) = &self.url {
            if self.scheme.is_some() {
                return Err(usage(
                    "--scheme applies to a local cluster; a cluster at --url schedules as \
                     its controller was started (grid controller --scheme)",
                ));
            }
            let client = connect(url, &self.name.cluster)?;
            client.set_controller_timeout(self.controller_timeout);
            let engines = engines_of(&client, url, &self.name.cluster, self.wait_engines)?;
            return Ok(Connected { client, engines });
        }
        let engines = engine_slots(self.engines)?;
        let client = Client::local_builder(engines)
            .config(config)
            .scheme(self.scheme.unwrap_or_default())
            .start()
            .with_context(|| format!("cannot start a local cluster of {engines} engines"))?;
        Ok(Connected { client, engines })
    }
}

/// Connects to cluster `cluster` on the NATS server at `url`: `cannot
/// connect to URL: why` when no server is there.
pub fn connect(url: &str, cluster: &str) -> anyhow::Result<Client> {
    Client::connect(url, cluster).map_err(|e| match e {
        Error::Bus(e @ BusError::Connect { .. }) => anyhow!(e),
        other => anyhow::Error::new(other)
            .context(format!("cannot connect to cluster `{cluster}` at {url}")),
    })
}

/// How many engines the cluster has; an error if no controller answers, or
/// if it has no engine and none registers within `wait` (announced on
/// stderr, only when there is something to wait for).
fn engines_of(client: &Client, url: &str, cluster: &str, wait: Duration) -> anyhow::Result<usize> {
    let engines = client
        .engines()
        .map_err(|e| no_controller(e, url, cluster))?;
    if !engines.is_empty() {
        return Ok(engines.len());
    }
    let mut waited = String::new();
    if !wait.is_zero() {
        let secs = wait.as_secs_f64();
        eprintln!("waiting up to {secs} s for the engines of cluster `{cluster}` at {url}");
        match client.wait_for_engines(1, Some(wait)) {
            Ok(engines) => return Ok(engines.len()),
            Err(Error::EnginesTimeout { .. }) => waited = format!(" after {secs} s"),
            Err(e) => return Err(no_controller(e, url, cluster)),
        }
    }
    Err(anyhow!(
        "cluster `{cluster}` at {url} has no engines{waited}: start some with \
         `grid engine --url {url} --cluster {cluster}`"
    ))
}

/// The error of a hub query: a missing controller gets its own message.
pub fn no_controller(e: Error, url: &str, cluster: &str) -> anyhow::Error {
    match e {
        Error::Bus(BusError::NoResponders(_) | BusError::Timeout { .. }) => anyhow!(
            "no controller of cluster `{cluster}` answers at {url}: start one with \
             `grid controller --url {url} --cluster {cluster}`, or a whole cluster \
             with `grid cluster start`"
        ),
        other => anyhow::Error::new(other).context(format!("cluster `{cluster}` at {url}")),
    }
}

/// A module file read from disk, not yet uploaded.
pub struct ModuleFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl ModuleFile {
    /// Reads the module at `path` (`.wasm`, or `.wat` text).
    pub fn read(path: &Path) -> anyhow::Result<ModuleFile> {
        let bytes = std::fs::read(path)
            .map_err(|e| usage(format!("cannot read module {}: {e}", path.display())))?;
        Ok(ModuleFile {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// The path, for messages.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Uploads the module to the cluster (text is turned into wasm first).
    pub fn upload(&self, client: &Client) -> anyhow::Result<Module> {
        client.module_from_bytes(&self.bytes).map_err(|e| match e {
            Error::Module { reason, .. } => usage(format!(
                "{}: invalid module: {}",
                self.name(),
                wat_reason(&reason)
            )),
            other => {
                anyhow::Error::new(other).context(format!("cannot upload module {}", self.name()))
            }
        })
    }
}

/// The client's reason for rejecting a module, on one line: the WAT parser's
/// message draws the offending source line under a `--> <anon>:L:C` line;
/// keep the message and the position.
fn wat_reason(reason: &str) -> String {
    let head = reason.lines().next().unwrap_or_default().trim();
    let at = reason.lines().find_map(|l| {
        let location = l.trim().strip_prefix("-->")?.trim();
        let (rest, column) = location.rsplit_once(':')?;
        let (_, line) = rest.rsplit_once(':')?;
        Some(format!(" (line {line}, column {column})"))
    });
    match at {
        Some(at) => format!("{head}{at}"),
        None => one_line(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_one_subject_token() {
        assert_eq!(parse_cluster_name("a-1_b"), Ok("a-1_b".to_string()));
        for bad in ["", "a.b", "a b", "*", ">"] {
            assert!(parse_cluster_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wait_is_seconds_or_zero() {
        assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_wait("-1").is_err() && parse_wait("soon").is_err());
    }

    #[test]
    fn wat_errors_keep_message_and_position() {
        let reason = "not a wasm binary, and not valid WAT text: expected `(`\n     \
                      --> <anon>:3:7\n      |\n    3 | garbage\n      |       ^";
        assert_eq!(
            wat_reason(reason),
            "not a wasm binary, and not valid WAT text: expected `(` (line 3, column 7)"
        );
        assert_eq!(wat_reason("short\nreason"), "short reason");
    }
}
