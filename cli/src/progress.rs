//! The progress bar of a map: items done, out of the total when it is known
//! (a `--range` or items on the command line; stdin is read lazily, so its
//! length is not), on stderr, only when stderr is a terminal.
//!
//! The map's loop moves the bar as it hands out results; indicatif redraws
//! it on its own ticker, so the elapsed time moves even while the ordered
//! output waits for a slow early item. Whatever the CLI prints while the bar
//! shows goes through [`Progress::suspend`], so lines and bar do not garble
//! each other. A `Progress` is a cheap handle: clones share the bar.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How often the bar redraws.
const TICK: Duration = Duration::from_millis(100);

/// A progress bar, or nothing when stderr is not a terminal.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Whether stdout is a terminal too, likely the bar's.
    stdout_terminal: bool,
}

impl Progress {
    /// Starts a bar of `total` items (a counter when unknown) if stderr is
    /// a terminal.
    pub fn start(total: Option<u64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                stdout_terminal: false,
            };
        }
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::new(total),
                "{bar:40} {pos}/{len} items, {elapsed_precise}",
            ),
            None => (
                ProgressBar::no_length(),
                "{spinner} {pos} items, {per_sec}, {elapsed_precise}",
            ),
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(TICK);
        Progress {
            bar: Some(bar),
            stdout_terminal: std::io::stdout().is_terminal(),
        }
    }

    /// `n` items are done.
    pub fn set(&self, n: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(n as u64);
        }
    }

    /// Runs `print`, which writes to stderr, with the bar hidden.
    pub fn suspend<T>(&self, print: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(bar) => bar.suspend(print),
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

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
