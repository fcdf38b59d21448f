//! What the `grid` binary's tests share: running `grid` with a deadline and
//! a clean environment, checking that stderr never holds a panic, and
//! waiting for a condition by polling it.
//!
//! Every run gets `RUST_BACKTRACE=1` (so a backtrace would show, and fail
//! the check) and none of the caller's `GRID_URL`, `GRID_CLUSTER` or
//! `GRID_STATE_DIR`: a test says which cluster it means.

#![allow(dead_code)] // each test binary uses its own part

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Only fires when `grid` hangs.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// How often [`wait_for`] looks again.
const POLL: Duration = Duration::from_millis(50);

/// A `grid` command with a clean environment and its own module cache.
pub fn grid_command(args: &[&str], cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grid"));
    command
        .args(args)
        .env("GRID_CACHE_DIR", cache)
        .env("RUST_BACKTRACE", "1")
        .env_remove("GRID_URL")
        .env_remove("GRID_CLUSTER")
        .env_remove("GRID_STATE_DIR")
        .env_remove("RUST_LOG");
    command
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Our own errors: every stderr line is `error: ...` (or the stats object).
    pub fn assert_error_lines(&self) {
        for line in self.stderr.lines() {
            assert!(
                line.starts_with("error: ") || line.starts_with('{'),
                "not a one-line error: {line:?} in\n{}",
                self.stderr
            );
        }
    }

    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect()
    }

    /// Asserts success, showing stderr otherwise.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stderr:\n{}", self.stderr);
        self
    }
}

/// Runs `command` to the end with `stdin` (or none) within [`DEADLINE`].
pub fn run(mut command: Command, stdin: Option<&str>) -> Run {
    let started = Instant::now();
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("grid starts");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let output = finish(child, &format!("{command:?}"));
    checked(output, started.elapsed())
}

/// Waits for a started `grid` (its output piped) within [`DEADLINE`],
/// killing it if it hangs.
pub fn finish(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(output) => output.expect("grid runs"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("{what} did not finish within {DEADLINE:?}");
        }
    }
}

/// The output as a [`Run`], checked for panics and backtraces.
pub fn checked(output: Output, elapsed: Duration) -> Run {
    let run = Run {
        code: output.status.code().expect("grid exits, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed,
    };
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "internal error",
    ] {
        assert!(
            !run.stderr.contains(bad),
            "{bad} in stderr:\n{}",
            run.stderr
        );
    }
    run
}

/// Kills the processes it holds when dropped, even when the test fails
/// (the processes of a cluster a test started).
pub struct Processes(pub Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `probe` until it gives a value; panics, naming `what`, if that
/// takes longer than `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let give_up = Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < give_up,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}
