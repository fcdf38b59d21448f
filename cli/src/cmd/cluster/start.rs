//! `grid cluster start -n N`: a NATS server, a controller and N engines as
//! background processes; prints the URL once every engine is up.
//!
//! Without `--url` it runs `nats-server` (found on PATH) on a free port of
//! 127.0.0.1, with JetStream (the blob store) keeping its storage in the
//! cluster's directory, and with `GOMAXPROCS` at a quarter of the cores
//! unless the user set it (see `nats_env`). The controller and engines are this same binary
//! (`grid controller`, `grid engine`), detached (see `process`). The state
//! file is claimed first, holding this process as the `starter`, so a
//! second start of the same cluster is refused while this one works or its
//! cluster runs; each process is recorded as soon as it is started, so even
//! a start killed halfway leaves nothing `grid cluster stop` cannot find.
//! Start waits, polling the controller, until all N engines are registered;
//! if a process exits meanwhile, or the deadline passes, or SIGINT/SIGTERM
//! comes, it stops what it started, says why (with the last lines of the
//! dead process's log), and leaves no record.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use grid_bus::BusError;
use grid_client::{Client, Error, Scheme};
use tokio::time::Instant;

use super::stop;
use crate::cluster::ClusterName;
use crate::failure::FAILED;
use crate::limits::LimitArgs;
use crate::process::{self, POLL, Recorded};
use crate::service::{self, StopSignals};
use crate::slots::engine_slots;
use crate::state::{ClusterRecord, Created, StateFile};

/// How long the NATS server gets to listen.
const NATS_DEADLINE: Duration = Duration::from_secs(20);

/// How long the engines get to register (a cold machine compiles wasmtime's
/// pools and starts N slots).
const ENGINES_DEADLINE: Duration = Duration::from_secs(60);

/// Log lines shown when a process died.
const TAIL: usize = 10;

const ABOUT: &str = "Start a NATS server, a controller and N engines in the background";

const LONG_ABOUT: &str = "\
Start a NATS server, a controller and N engines in the background.

Without --url, runs nats-server (it must be on PATH: on Debian and Ubuntu, \
`apt install nats-server`) on a free port of 127.0.0.1, with JetStream for the \
blob store. With --url, uses that NATS server instead. Then starts `grid \
controller` and `grid engine -n N` as background processes, detached from the \
terminal, and waits until all N engines are registered.

Prints the URL to give clients (--url, or GRID_URL) on stdout, and how to use \
it on stderr. The processes, their logs and the NATS server's storage are \
recorded in $GRID_STATE_DIR (default: $XDG_STATE_HOME/grid, or \
~/.local/state/grid) under the cluster's name, for `grid cluster stop` and \
`grid cluster status`. A cluster of the same name that is still running must \
be stopped first; several clusters of different names can run at once.

If a process exits before the engines are up, or they are not up within 60 s, \
everything started is stopped again and the error shows the end of that \
process's log.";

const AFTER_HELP: &str = "\
Exit codes: 0 the cluster is up; 1 it could not be started (nats-server missing, \
a process died, timeout, a cluster of that name already running); 2 usage \
error.

Examples:
  grid cluster start -n 4
  export GRID_URL=$(grid cluster start -n 4)
  grid cluster start -n 2 --cluster team-a --max-memory 256M --timeout 30
  grid cluster start -n 8 --url nats://10.0.0.5:4222
  grid cluster start -n 4 --scheme pure";

/// The arguments of `grid cluster start`.
#[derive(Args, Debug)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct StartArgs {
    /// Engines to start [default: the number of cores]
    #[arg(short = 'n', long = "engines", value_name = "N")]
    pub engines: Option<NonZeroUsize>,

    /// Use the NATS server at URL instead of starting one (GRID_URL is not
    /// read here: it may name a cluster stopped since)
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    #[command(flatten)]
    pub name: ClusterName,

    #[command(flatten)]
    pub limits: LimitArgs,

    /// Count fuel (wasm instructions) on the engines (see `grid engine --help`)
    #[arg(long)]
    pub fuel: bool,

    /// Let commands be granted read access to DIR and what is under it
    /// (`grid run --dir`, `grid test`; see `grid engine --help`; repeatable)
    #[arg(long = "allow-dir", value_name = "DIR")]
    pub allow_dirs: Vec<PathBuf>,

    /// The controller's scheme (see `grid controller --help`)
    #[arg(long, value_name = "NAME", default_value = "leastload")]
    pub scheme: Scheme,

    /// The controller's SQLite task store (see `grid controller --help`);
    /// default: tasks.db in the cluster's state directory
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

impl StartArgs {
    /// The engines to start, all in one `grid engine` process: a usage
    /// error when one process cannot hold them.
    fn engines(&self) -> anyhow::Result<usize> {
        engine_slots(self.engines)
    }
}

/// A recorded process that exited while the cluster was starting.
#[derive(Debug)]
struct Died {
    role: String,
    status: String,
    log: PathBuf,
}

impl std::fmt::Display for Died {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} exited ({}) before the cluster was up; its log: {}",
            self.role,
            self.status,
            self.log.display()
        )
    }
}

impl std::error::Error for Died {}

pub fn run(args: StartArgs) -> anyhow::Result<ExitCode> {
    let engines = args.engines()?;
    let cluster = args.name.cluster.clone();
    let state = StateFile::of(&cluster)?;
    let starter = Recorded::identify(
        "starter",
        std::process::id(),
        std::env::args().collect(),
        None,
    )?;
    let mut record = ClusterRecord::new(&cluster, "", engines, state.dir());
    record.processes.push(starter);
    claim(&state, &record)?;

    let mut start = Start {
        args: &args,
        state: &state,
        record,
        children: Vec::new(),
    };
    let outcome = service::block_on(async {
        let mut signals = StopSignals::install()?;
        tokio::select! {
            up = start.start() => up,
            name = signals.recv() => Err(anyhow!("interrupted by {name}")),
        }
    });
    let Start {
        mut record,
        children,
        ..
    } = start;
    // Children are not waited for: once this process exits, they belong to init.
    drop(children);
    match outcome {
        Ok(()) => {
            record.processes.retain(|p| p.role != "starter");
            state.write(&record)?;
            println!("{}", record.url);
            eprint!("{}", usage_note(&record));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let survivors = stop::stop_processes(&record, false);
            let undone = if survivors.is_empty() {
                stop::forget(&state, &record).err()
            } else {
                Some(anyhow!(
                    "could not stop {}; see {}",
                    survivors
                        .iter()
                        .map(Recorded::describe)
                        .collect::<Vec<_>>()
                        .join(", "),
                    state.path().display()
                ))
            };
            if let Some(undone) = undone {
                eprintln!("error: {undone:#}");
            }
            let Some(died) = e.downcast_ref::<Died>() else {
                return Err(e.context(format!("cannot start cluster `{cluster}`")));
            };
            eprintln!("error: cannot start cluster `{cluster}`: {died}");
            for line in process::log_tail(&died.log, TAIL) {
                eprintln!("  | {line}");
            }
            Ok(ExitCode::from(FAILED))
        }
    }
}

/// Claims the state file for `record`; a stale record (none of its processes
/// runs) is replaced, a live one refused.
fn claim(state: &StateFile, record: &ClusterRecord) -> anyhow::Result<()> {
    let cluster = &record.cluster;
    // Twice: once more after removing a stale record.
    for _ in 0..2 {
        if state.create(record)? == Created::Yes {
            return Ok(());
        }
        let Some(existing) = state.read()? else {
            continue;
        };
        let running = existing.running();
        if running.iter().any(|p| p.role == "starter") {
            return Err(anyhow!(
                "cluster `{cluster}` is being started by another `grid cluster start`"
            ));
        }
        if !running.is_empty() {
            let names: Vec<String> = running.iter().map(|p| p.describe()).collect();
            return Err(anyhow!(
                "cluster `{cluster}` is already running at {} ({}): stop it with `grid \
                 cluster stop{}`, or give another --cluster",
                existing.url,
                names.join(", "),
                cluster_option(cluster)
            ));
        }
        state.remove()?;
    }
    Err(anyhow!(
        "cannot claim {}: another `grid cluster start` is racing this one",
        state.path().display()
    ))
}

/// A start under way.
struct Start<'a> {
    args: &'a StartArgs,
    state: &'a StateFile,
    record: ClusterRecord,
    /// The processes started, to notice one that exits.
    children: Vec<(String, PathBuf, Child)>,
}

impl Start<'_> {
    async fn start(&mut self) -> anyhow::Result<()> {
        let dir = self.state.dir().to_path_buf();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let cluster = self.record.cluster.clone();

        self.record.url = match &self.args.url {
            Some(url) => url.clone(),
            None => self.start_nats(&dir).await?,
        };
        self.state.write(&self.record)?;
        let url = self.record.url.clone();
        let client = Client::connect_async(&url, &cluster)
            .await
            .map_err(|e| match e {
                Error::Bus(e @ BusError::Connect { .. }) => anyhow!(e),
                other => anyhow!(other).context(format!("cannot connect to {url}")),
            })?;
        if client.engines_async().await.is_ok() {
            return Err(anyhow!(
                "a controller of cluster `{cluster}` already runs at {url}: give another \
                 --cluster"
            ));
        }

        let exe = std::env::current_exe().context("cannot find the grid executable")?;
        let common = ["--url", &url, "--cluster", &cluster].map(String::from);
        let mut controller = vec!["controller".to_string()];
        controller.extend(common.clone());
        controller.extend(["--scheme".to_string(), self.args.scheme.to_string()]);
        let db = self.args.db.clone().unwrap_or_else(|| dir.join("tasks.db"));
        let db = std::path::absolute(&db).unwrap_or(db);
        controller.extend(["--db".to_string(), db.display().to_string()]);
        self.spawn(
            "controller",
            &exe,
            controller,
            &[],
            &dir.join("controller.log"),
        )?;
        let n = self.record.engines;
        let mut engine = vec!["engine".to_string()];
        engine.extend(common);
        engine.extend(["-n".to_string(), n.to_string()]);
        engine.extend(self.args.limits.to_args());
        if self.args.fuel {
            engine.push("--fuel".into());
        }
        for dir in &self.args.allow_dirs {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            engine.extend(["--allow-dir".to_string(), dir.display().to_string()]);
        }
        self.spawn("engine", &exe, engine, &[], &dir.join("engine.log"))?;

        let deadline = Instant::now() + ENGINES_DEADLINE;
        let mut registered = 0;
        loop {
            self.check_children()?;
            if let Ok(engines) = client.engines_async().await {
                registered = engines.len();
                if registered >= n {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "only {registered} of {n} engines registered within {} s; see the logs in {}",
                    ENGINES_DEADLINE.as_secs(),
                    dir.display()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts nats-server on a free port; returns its URL once it listens.
    async fn start_nats(&mut self, dir: &Path) -> anyhow::Result<String> {
        let program = process::find_on_path("nats-server").ok_or_else(|| {
            anyhow!(
                "nats-server is not on PATH: install the Debian package `nats-server` \
                 (apt install nats-server), or give --url of a running NATS server"
            )
        })?;
        let port = free_port()?;
        let storage = dir.join("nats");
        let args = ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]
            .map(String::from)
            .into_iter()
            .chain([storage.display().to_string()])
            .collect();
        let log = dir.join("nats-server.log");
        self.spawn("nats-server", &program, args, &nats_env(), &log)?;
        let deadline = Instant::now() + NATS_DEADLINE;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            self.check_children()?;
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "nats-server did not listen on port {port} within {} s; see {}",
                    NATS_DEADLINE.as_secs(),
                    dir.join("nats-server.log").display()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(format!("nats://127.0.0.1:{port}"))
    }

    /// Starts a process detached and records it at once.
    fn spawn(
        &mut self,
        role: &str,
        program: &Path,
        args: Vec<String>,
        envs: &[(&str, String)],
        log: &Path,
    ) -> anyhow::Result<()> {
        let mut child = process::spawn_detached(program, &args, envs, log)?;
        let mut command = vec![program.display().to_string()];
        command.extend(args);
        let recorded = match Recorded::identify(role, child.id(), command, Some(log.to_path_buf()))
        {
            Ok(recorded) => recorded,
            Err(e) => {
                // Unrecorded, nothing could stop it later.
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        self.children
            .push((role.to_string(), log.to_path_buf(), child));
        self.record.processes.push(recorded);
        self.state.write(&self.record)
    }

    /// Fails with [`Died`] if a process started has exited.
    fn check_children(&mut self) -> anyhow::Result<()> {
        for (role, log, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(anyhow!(Died {
                    role: role.clone(),
                    status: status.to_string(),
                    log: log.clone(),
                }));
            }
        }
        Ok(())
    }
}

/// The private server's environment: unless the user set `GOMAXPROCS`, Go
/// runs on a quarter of the cores (at least one). This server shares the
/// machine with the controller and the engines, and on few cores a second
/// Go thread costs more than it gives: the Go scheduler wakes and spins
/// threads to hand messages between them, CPU that the engines and the
/// controller then lack. Measured with `compare-grid --backend nats` on 2
/// cores: apply_sync p50 ~10% lower with one thread, and unchunked map
/// throughput no lower.
fn nats_env() -> Vec<(&'static str, String)> {
    if std::env::var_os("GOMAXPROCS").is_some() {
        return Vec::new();
    }
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    vec![("GOMAXPROCS", (cores / 4).max(1).to_string())]
}

/// A port of 127.0.0.1 that is free now (the system picks it).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot find a free port on 127.0.0.1")?;
    Ok(listener
        .local_addr()
        .context("cannot find a free port on 127.0.0.1")?
        .port())
}

/// ` --cluster NAME`, or nothing for the default cluster.
fn cluster_option(cluster: &str) -> String {
    if cluster == grid_proto::DEFAULT_CLUSTER {
        String::new()
    } else {
        format!(" --cluster {cluster}")
    }
}

/// What to tell a person once the cluster is up.
fn usage_note(record: &ClusterRecord) -> String {
    let url = &record.url;
    let option = cluster_option(&record.cluster);
    format!(
        "cluster `{cluster}` is up: {n} engine{s} at {url}; logs in {dir}\n\
         Use it with --url (or GRID_URL){and_cluster}:\n  \
         export GRID_URL={url}\n  \
         grid map --url {url}{option} MODULE FUNC --range 0..100\n  \
         grid cluster status{option}\n  \
         grid cluster stop{option}\n",
        cluster = record.cluster,
        n = record.engines,
        s = if record.engines == 1 { "" } else { "s" },
        dir = record.dir.display(),
        and_cluster = if option.is_empty() {
            String::new()
        } else {
            format!(" and --cluster {}", record.cluster)
        },
    )
}
