//! What a command prints: results on stdout, one line of compact JSON per
//! value; and what the tasks themselves printed, on stderr.
//!
//! A reader that goes away early (`grid map ... | head`) is not an error:
//! writing says so, and the command stops quietly. Any other failure to
//! write a value is an error.
//!
//! A task's own output (captured by its engine, returned in its metadata)
//! is copied to stderr once the task is done, before its value, each line
//! prefixed as ipyparallel prints it: `[stdout:N] line`, `[stderr:N] line`,
//! where N is the engine for `apply` and the item (or `A-B`, the items of a
//! chunk) for `map`. Stdout stays for values alone. Bytes that are not
//! UTF-8 are shown lossily, and a last line without its newline is shown
//! too. `--output none` hides it all.

use std::io::{self, Write};

use anyhow::Context;
use clap::{Args, ValueEnum};
use grid_proto::Value;

/// Which of the tasks' own output to show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputMode {
    /// Their stdout and stderr, on stderr, each line prefixed
    #[default]
    All,
    /// Nothing
    None,
}

/// The `--output` option of the commands that run tasks.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// What the tasks print to their stdout and stderr: `all` shows it on
    /// stderr, each line prefixed `[stdout:N]` or `[stderr:N]` (N: the engine
    /// for apply, the item for map), once the task is done; `none` hides it
    #[arg(
        long = "output",
        value_name = "WHICH",
        value_enum,
        default_value_t = OutputMode::All
    )]
    pub output: OutputMode,
}

/// Shows a finished task's output on stderr (see the module docs), all of
/// it at once, so the lines of two tasks never interleave. `label` is the
/// N of `[stdout:N]`. A stderr that cannot be written is no reason to fail.
pub fn print_task_output(label: &str, stdout: &[u8], stderr: &[u8], mode: OutputMode) {
    if mode == OutputMode::None || (stdout.is_empty() && stderr.is_empty()) {
        return;
    }
    let mut text = String::new();
    prefix_lines(&mut text, "stdout", label, stdout);
    prefix_lines(&mut text, "stderr", label, stderr);
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// The label of the items `first..first + count` of a map: `7`, or `0-99`
/// for a chunk (inclusive).
pub fn items_label(first: usize, count: usize) -> String {
    match count {
        0 | 1 => first.to_string(),
        n => format!("{first}-{}", first + n - 1),
    }
}

/// Appends `[stream:label] line` for each line of `bytes`.
fn prefix_lines(text: &mut String, stream: &str, label: &str, bytes: &[u8]) {
    for line in String::from_utf8_lossy(bytes).lines() {
        text.push_str(&format!("[{stream}:{label}]"));
        if !line.is_empty() {
            text.push(' ');
            text.push_str(line);
        }
        text.push('\n');
    }
}

/// A result's fingerprint as JSON: every hash in hex, fuel and seed when
/// there are some, and `digest`, one hash of them all.
pub fn fingerprint_json(f: &grid_client::Fingerprint) -> serde_json::Value {
    serde_json::json!({
        "digest": f.digest(),
        "module": f.module.to_hex(),
        "args": f.args.to_hex(),
        "config": f.config.to_hex(),
        "output": f.output.to_hex(),
        "fuel": f.fuel_used,
        "seed": f.seed,
    })
}

/// Whether a value reached the reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The reader closed the pipe: nothing more will be read.
    ReaderGone,
}

/// Writes `value` as one line of JSON.
pub fn write_value(out: &mut impl Write, value: &Value) -> anyhow::Result<Written> {
    match writeln!(out, "{value}") {
        Ok(()) => Ok(Written::Yes),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Written::ReaderGone),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn prefixed(label: &str, stdout: &[u8], stderr: &[u8]) -> String {
        let mut text = String::new();
        prefix_lines(&mut text, "stdout", label, stdout);
        prefix_lines(&mut text, "stderr", label, stderr);
        text
    }

    #[test]
    fn task_output_is_prefixed_line_by_line() {
        assert_eq!(
            prefixed("3", b"hello\n\nworld\r\npartial", b"oops\n"),
            "[stdout:3] hello\n[stdout:3]\n[stdout:3] world\n[stdout:3] partial\n\
             [stderr:3] oops\n"
        );
        assert_eq!(
            prefixed("0-9", b"", b"bad \xff byte"),
            "[stderr:0-9] bad \u{fffd} byte\n"
        );
        assert_eq!(prefixed("1", b"", b""), "");
    }

    #[test]
    fn chunks_are_labelled_by_their_items() {
        assert_eq!(items_label(7, 1), "7");
        assert_eq!(items_label(0, 100), "0-99");
    }

    #[test]
    fn values_are_json_lines_and_a_closed_pipe_is_no_error() {
        let mut out = Vec::new();
        let value = Value::parse_json(r#"{"a": [1, 2.5, "x"]}"#).unwrap();
        assert_eq!(write_value(&mut out, &value).unwrap(), Written::Yes);
        assert_eq!(out, b"{\"a\":[1,2.5,\"x\"]}\n");
        assert_eq!(
            write_value(&mut ClosedPipe, &value).unwrap(),
            Written::ReaderGone
        );
    }
}
