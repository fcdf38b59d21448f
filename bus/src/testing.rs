//! Throwaway NATS servers for tests (cargo feature `testing`).
//!
//! [`NatsServer::start`] runs a private `nats-server` with JetStream on a free
//! loopback port, its storage in a temporary directory, and returns once the
//! server accepts connections; dropping it kills the server and removes the
//! directory. [`NatsServer::stop`] and [`NatsServer::restart`] (same port, same
//! storage) let a test take the server away under a running client. Any
//! crate's tests can use it: `grid-bus = { workspace = true, features =
//! ["testing"] }` in `[dev-dependencies]`. Tests that need a server should call
//! [`NatsServer::start_or_skip`], which fails the test when `nats-server` is
//! missing unless `GRID_SKIP_NATS` is set.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The server binary, looked up on `PATH`.
const SERVER_BINARY: &str = "nats-server";

/// Set it to skip (rather than fail) tests that need `nats-server` when it
/// is not installed.
pub const SKIP_VAR: &str = "GRID_SKIP_NATS";

/// Generous: a server starts in tens of milliseconds, but a loaded CI
/// machine can be slow, and this only runs out when something is wrong.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// Between two connection attempts while the server starts.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// How much of the server's log goes into an error message.
const LOG_TAIL: u64 = 2000;

/// A `nats-server` with JetStream on `127.0.0.1`, for one test.
#[derive(Debug)]
pub struct NatsServer {
    /// `None` while stopped.
    process: Option<Child>,
    port: u16,
    /// Holds the JetStream storage and the server's log.
    dir: TempDir,
}

/// Why a server did not start; `missing` when the binary is not installed.
struct StartError {
    missing: bool,
    message: String,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    /// The error names the Debian package when `nats-server` is not on `PATH`.
    pub fn start() -> Result<NatsServer, String> {
        NatsServer::try_start().map_err(|error| error.message)
    }

    /// For tests: a started server, or `None` (with a note on stderr) when
    /// `nats-server` is not installed and `GRID_SKIP_NATS` is set; the test
    /// should then return.
    ///
    /// # Panics
    ///
    /// When the server cannot start otherwise: a test must not pass silently
    /// without the server it needs.
    pub fn start_or_skip() -> Option<NatsServer> {
        match NatsServer::try_start() {
            Ok(server) => Some(server),
            Err(error) if error.missing && std::env::var_os(SKIP_VAR).is_some() => {
                eprintln!("skipped ({SKIP_VAR} is set): {}", error.message);
                None
            }
            Err(error) => panic!("{} (set {SKIP_VAR}=1 to skip such tests)", error.message),
        }
    }

    fn try_start() -> Result<NatsServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("grid-nats-")
            .tempdir()
            .map_err(|error| StartError {
                missing: false,
                message: format!("cannot create a directory for nats-server: {error}"),
            })?;
        let port = free_port().map_err(|error| StartError {
            missing: false,
            message: format!("cannot find a free port for nats-server: {error}"),
        })?;
        let mut server = NatsServer {
            process: None,
            port,
            dir,
        };
        server.spawn()?;
        Ok(server)
    }

    /// The URL clients connect to: `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would: clients see the connection drop)
    /// and waits for it to exit. Stored blobs stay for [`NatsServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            // It may have exited already; either way `wait` reaps it.
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts the server again on the same port with the same storage
    /// (stopping it first if it runs), and waits until it accepts connections.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn().map_err(|error| error.message)
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        let failed = |message: String| StartError {
            missing: false,
            message,
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|error| failed(format!("cannot create the nats-server log: {error}")))?;
        let log_too = log
            .try_clone()
            .map_err(|error| failed(format!("cannot share the nats-server log: {error}")))?;
        let process = Command::new(SERVER_BINARY)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path().join("jetstream"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too)
            .spawn()
            .map_err(|error| StartError {
                missing: error.kind() == io::ErrorKind::NotFound,
                message: if error.kind() == io::ErrorKind::NotFound {
                    format!(
                        "{SERVER_BINARY} is not on PATH: install the Debian package \
                         `nats-server` (apt-get install nats-server)"
                    )
                } else {
                    format!("cannot run {SERVER_BINARY}: {error}")
                },
            })?;
        self.process = Some(process);
        self.wait_until_ready().map_err(|message| {
            self.stop();
            failed(message)
        })
    }

    /// Polls the port until the server accepts a connection, the server
    /// exits, or the deadline passes.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(process) = self.process.as_mut()
                && let Ok(Some(status)) = process.try_wait()
            {
                return Err(format!(
                    "{SERVER_BINARY} on port {} exited at start ({status}); its log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{SERVER_BINARY} did not accept connections on port {} within {START_DEADLINE:?}; its log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// The end of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let read = || -> io::Result<String> {
            let mut file = File::open(self.log_path())?;
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        read().unwrap_or_else(|error| format!("(no log: {error})"))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        // `dir` is removed after this, with the storage and the log.
    }
}

/// A loopback port that no one listened on a moment ago: bind port 0, read
/// what the system chose, release it.
fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
