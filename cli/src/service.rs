//! What `grid controller` and `grid engine` share: they are long-running
//! processes of a cluster on a NATS server, not clients.
//!
//! Each takes `--url` (required, or `GRID_URL`) and `--cluster`, logs to
//! stderr through `tracing` (`RUST_LOG` filters; by default Grid's info lines,
//! a few per process lifetime), runs on a multi-threaded tokio runtime,
//! and stops cleanly on SIGINT or SIGTERM: [`StopSignals::recv`] is the
//! future to race against the work.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use grid_bus::{Bus, BusEvent, NatsBus, NatsOptions};
use grid_proto::Subjects;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing_subscriber::EnvFilter;

use crate::cluster::ClusterName;

/// `--url` (required) and `--cluster`.
#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    /// The NATS server to serve the cluster on (nats://HOST:PORT)
    #[arg(
        long,
        value_name = "URL",
        env = "GRID_URL",
        hide_env_values = true,
        required = true
    )]
    pub url: String,

    #[command(flatten)]
    pub name: ClusterName,
}

impl ServiceArgs {
    pub fn cluster(&self) -> &str {
        &self.name.cluster
    }

    /// The cluster's subjects (the name was checked when parsed).
    pub fn subjects(&self) -> anyhow::Result<Subjects> {
        Subjects::new(self.cluster()).map_err(|e| anyhow!("{e}"))
    }

    /// Connects to the NATS server as `role` (the connection's name in the
    /// server's monitoring): `cannot connect to URL: why` when no server is
    /// there. Losing and regaining the connection is logged.
    pub async fn connect(&self, role: &str) -> anyhow::Result<Arc<dyn Bus>> {
        let options = NatsOptions {
            name: Some(format!("grid {role} (cluster {})", self.cluster())),
            ..NatsOptions::default()
        };
        let bus = NatsBus::connect_with(&self.url, options)
            .await
            .map_err(|e| anyhow!(e))?;
        tokio::spawn(log_events(bus.events(), self.url.clone()));
        Ok(Arc::new(bus))
    }
}

/// How often at most a line says that messages were dropped: a flood of
/// drops (one event each) is then a line per second with a count.
const DROPS_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Logs what happens to the connection (async-nats's own lines about it are
/// filtered out by default: see [`DEFAULT_LOG`]). Dropped messages (slow
/// consumer) and events missed under a flood are counted and logged at most
/// once per [`DROPS_LOG_INTERVAL`].
async fn log_events(mut events: broadcast::Receiver<BusEvent>, url: String) {
    let mut lost = false;
    let mut drops = DropsLog::default();
    loop {
        let event = match drops.due() {
            // Counts wait for their line: log them when it is time, even
            // if no event comes.
            Some(due) => tokio::select! {
                event = events.recv() => event,
                () = tokio::time::sleep_until(due) => {
                    drops.log(&url);
                    continue;
                }
            },
            None => events.recv().await,
        };
        match event {
            Ok(BusEvent::Disconnected) => {
                lost = true;
                tracing::warn!("lost the connection to {url}; reconnecting");
            }
            Ok(BusEvent::Connected) if lost => {
                lost = false;
                tracing::info!("connected to {url} again");
            }
            Ok(BusEvent::Connected) => {}
            // Our own drop closes it too; if the server did, what stops
            // working says so.
            Ok(BusEvent::Closed) => {
                drops.log(&url);
                tracing::debug!("the connection to {url} is closed");
                return;
            }
            Ok(BusEvent::SlowConsumer) => drops.count(1, 0, &url),
            Ok(event) => tracing::warn!("NATS connection: {event:?}"),
            // Under a flood, the missed events are nearly all drops.
            Err(broadcast::error::RecvError::Lagged(n)) => drops.count(0, n, &url),
            Err(broadcast::error::RecvError::Closed) => {
                drops.log(&url);
                return;
            }
        }
    }
}

/// Dropped messages and missed events not logged yet, and when the last
/// line about them was.
#[derive(Default)]
struct DropsLog {
    dropped: u64,
    missed: u64,
    last: Option<Instant>,
}

impl DropsLog {
    /// Counts, and logs now unless a line went out less than
    /// [`DROPS_LOG_INTERVAL`] ago.
    fn count(&mut self, dropped: u64, missed: u64, url: &str) {
        self.dropped += dropped;
        self.missed += missed;
        if self.due().is_some_and(|due| due <= Instant::now()) {
            self.log(url);
        }
    }

    /// When the counts should be logged; `None` if there is nothing to log.
    fn due(&self) -> Option<Instant> {
        if self.dropped == 0 && self.missed == 0 {
            return None;
        }
        Some(
            self.last
                .map_or_else(Instant::now, |last| last + DROPS_LOG_INTERVAL),
        )
    }

    fn log(&mut self, url: &str) {
        match (self.dropped, self.missed) {
            (0, 0) => return,
            (0, missed) => tracing::warn!(
                "{missed} events of the connection to {url} were not logged (under a flood, \
                 most likely dropped messages: slow consumer)"
            ),
            (dropped, missed) => {
                let missed = match missed {
                    0 => String::new(),
                    n => format!(", and {n} more events were not logged"),
                };
                tracing::warn!(
                    "the connection to {url} dropped {dropped} message{} (slow consumer: a \
                     subscriber fell behind){missed}; clients recover lost tasks by asking \
                     the controller",
                    if dropped == 1 { "" } else { "s" }
                );
            }
        }
        self.dropped = 0;
        self.missed = 0;
        self.last = Some(Instant::now());
    }
}

/// What is logged unless `RUST_LOG` says otherwise: Grid's own info lines;
/// of the NATS client only warnings (it reports every connection at info).
const DEFAULT_LOG: &str = "info,async_nats=warn";

/// Logs `tracing` events to stderr: `RUST_LOG` if set, else [`DEFAULT_LOG`].
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Runs a service's async main on a multi-threaded tokio runtime. The
/// runtime is then dropped without waiting for its tasks: the service has
/// finished what it had to, and engine slots may still be running a task
/// that no one will read.
pub fn block_on<T>(main: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    run_on(tokio::runtime::Builder::new_multi_thread(), main)
}

/// [`block_on`] on a runtime of one thread: for a service whose work is all
/// async and light (the controller), so that the thread which reads the
/// sockets also does the work, with no hand-over between threads.
pub fn block_on_one_thread<T>(main: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    run_on(tokio::runtime::Builder::new_current_thread(), main)
}

fn run_on<T>(
    mut builder: tokio::runtime::Builder,
    main: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(main);
    runtime.shutdown_background();
    result
}

/// SIGINT and SIGTERM, caught from [`StopSignals::install`] on: from then
/// on they no longer kill the process but resolve [`StopSignals::recv`].
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Catches the signals. Must be called inside the tokio runtime.
    pub fn install() -> anyhow::Result<StopSignals> {
        let catch = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| anyhow!("cannot handle {name}: {e}"))
        };
        Ok(StopSignals {
            interrupt: catch(SignalKind::interrupt(), "SIGINT")?,
            terminate: catch(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    /// Resolves with the signal's name at the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_logged_at_once_then_at_most_once_a_second() {
        let mut drops = DropsLog::default();
        assert_eq!(drops.due(), None);
        drops.count(1, 0, "nats://h:1");
        let first = drops.last.expect("logged at once");
        assert_eq!((drops.dropped, drops.due()), (0, None));
        for _ in 0..1000 {
            drops.count(1, 0, "nats://h:1");
        }
        drops.count(0, 64, "nats://h:1");
        assert_eq!(
            (drops.dropped, drops.missed),
            (1000, 64),
            "counted, not logged"
        );
        assert_eq!(drops.due(), Some(first + DROPS_LOG_INTERVAL));
        // A second later (as if).
        drops.last = first.checked_sub(DROPS_LOG_INTERVAL);
        drops.count(1, 0, "nats://h:1");
        assert_eq!((drops.dropped, drops.missed), (0, 0), "one line for all");
    }
}
