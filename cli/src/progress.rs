//! The progress bar of a map: tasks done out of tasks submitted, on stderr,
//! only when stderr is a terminal.
//!
//! A small thread reads the result's progress (tasks done, in any order), so
//! the bar moves even while the ordered output waits for a slow early item.
//! Whatever the CLI prints while the bar shows goes through
//! [`Progress::suspend`], so lines and bar do not garble each other.

use std::io::IsTerminal;
use std::thread::JoinHandle;
use std::time::Duration;

use grid_client::AsyncMapResult;
use indicatif::{ProgressBar, ProgressStyle};

/// How often the bar reads the result's progress.
const TICK: Duration = Duration::from_millis(100);

/// A progress bar, or nothing when stderr is not a terminal.
pub struct Progress {
    shown: Option<(ProgressBar, JoinHandle<()>)>,
    /// Whether stdout is a terminal too, likely the bar's.
    stdout_terminal: bool,
}

impl Progress {
    /// Starts a bar for `result` if stderr is a terminal.
    pub fn start(result: &AsyncMapResult) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                shown: None,
                stdout_terminal: false,
            };
        }
        let bar = ProgressBar::new(result.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} tasks, {elapsed_precise}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let ticker = {
            let bar = bar.clone();
            let result = result.clone();
            std::thread::spawn(move || {
                while !bar.is_finished() {
                    bar.set_position(result.progress() as u64);
                    std::thread::sleep(TICK);
                }
            })
        };
        Progress {
            shown: Some((bar, ticker)),
            stdout_terminal: std::io::stdout().is_terminal(),
        }
    }

    /// Runs `print`, which writes to stderr, with the bar hidden.
    pub fn suspend<T>(&self, print: impl FnOnce() -> T) -> T {
        match &self.shown {
            Some((bar, _)) => bar.suspend(print),
            None => print(),
        }
    }

    /// Runs `print`, which writes to stdout, with the bar hidden if stdout is
    /// a terminal too (redirected, it cannot garble the bar).
    pub fn suspend_for_stdout<T>(&self, print: impl FnOnce() -> T) -> T {
        if self.stdout_terminal {
            self.suspend(print)
        } else {
            print()
        }
    }

    /// Removes the bar (dropping it does too).
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((bar, ticker)) = self.shown.take() {
            bar.finish_and_clear();
            let _ = ticker.join();
        }
    }
}
