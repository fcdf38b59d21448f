//! Results on stdout: one line of compact JSON per value.
//!
//! A reader that goes away early (`grid map ... | head`) is not an error:
//! writing says so, and the command stops quietly. Any other failure to
//! write is an error.

use std::io::{self, Write};

use anyhow::Context;
use grid_proto::Value;

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
