//! Live output of running tasks on the terminal: `grid map --stream-output`
//! and `grid run`.
//!
//! The client hands over each piece of a task's output as it arrives
//! ([`OutputChunk`], in order per task and stream). [`Lines`] shows them
//! for a map: complete lines at once, each prefixed with the item that
//! wrote it (`[stdout:7] ...`), a partial line held until its end comes.
//! [`Raw`] passes them through unchanged, for one command. Both remember
//! how much of each task's output they showed, so that when the task is
//! done its captured output (the complete record) supplies whatever live
//! output was lost on the way or overtaken by the result, and nothing is
//! shown twice. Lines that did not come live are labelled with the task's
//! items (`[stdout:0-9]` for a chunk), as without `--stream-output`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use grid_client::{MsgId, OutputChunk, Stream};

/// How much of one task's streams was shown, and a held partial line.
#[derive(Default)]
struct Shown {
    bytes: [usize; 2],
    partial: [Vec<u8>; 2],
    /// The item of the last piece, per stream (labels a held partial line).
    item: [Option<usize>; 2],
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

fn name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

/// Prefixed lines for a map (see the module docs).
#[derive(Default)]
pub struct Lines {
    tasks: Mutex<HashMap<MsgId, Shown>>,
}

impl Lines {
    /// The text to show for `chunk`: its complete lines, prefixed.
    pub fn chunk(&self, chunk: &OutputChunk) -> String {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let shown = tasks.entry(chunk.msg_id).or_default();
        let i = slot(chunk.stream);
        shown.bytes[i] += chunk.data.len();
        shown.item[i] = chunk.item;
        shown.partial[i].extend_from_slice(&chunk.data);
        let label = chunk.item.map(|n| n.to_string()).unwrap_or_default();
        take_lines(&mut shown.partial[i], name(chunk.stream), &label, false)
    }

    /// The text to show when task `msg_id` is done with this captured
    /// output: held partial lines and anything never streamed.
    pub fn done(&self, msg_id: MsgId, label: &str, stdout: &[u8], stderr: &[u8]) -> String {
        let shown = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&msg_id)
            .unwrap_or_default();
        let mut text = String::new();
        for (stream, all) in [(Stream::Stdout, stdout), (Stream::Stderr, stderr)] {
            let i = slot(stream);
            // A held partial line is its item's, what never came live the task's.
            let mut partial = shown.partial[i].clone();
            let mut rest = all.get(shown.bytes[i]..).unwrap_or_default().to_vec();
            if !partial.is_empty() {
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |n| n + 1);
                partial.extend(rest.drain(..end));
                let item = shown.item[i].map_or_else(|| label.to_string(), |n| n.to_string());
                text.push_str(&take_lines(&mut partial, name(stream), &item, true));
            }
            text.push_str(&take_lines(&mut rest, name(stream), label, true));
        }
        text
    }
}

/// Removes the complete lines (all, with `all`) from `buffer`, prefixed.
fn take_lines(buffer: &mut Vec<u8>, stream: &str, label: &str, all: bool) -> String {
    let end = if all {
        buffer.len()
    } else {
        buffer
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |n| n + 1)
    };
    let complete: Vec<u8> = buffer.drain(..end).collect();
    let mut text = String::new();
    for line in String::from_utf8_lossy(&complete).lines() {
        text.push_str(&format!("[{stream}:{label}]"));
        if !line.is_empty() {
            text.push(' ');
            text.push_str(line);
        }
        text.push('\n');
    }
    text
}

/// Output passed through as it is, for one command (see the module docs).
#[derive(Default)]
pub struct Raw {
    shown: Mutex<[usize; 2]>,
}

impl Raw {
    /// Writes `chunk` to our own stdout or stderr.
    pub fn chunk(&self, chunk: &OutputChunk) {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        shown[slot(chunk.stream)] += chunk.data.len();
        write_to(chunk.stream, &chunk.data);
    }

    /// Writes what of the captured output was not streamed.
    pub fn done(&self, stdout: &[u8], stderr: &[u8]) {
        let shown = *self.shown.lock().unwrap_or_else(|p| p.into_inner());
        for (stream, all) in [(Stream::Stdout, stdout), (Stream::Stderr, stderr)] {
            if let Some(rest) = all.get(shown[slot(stream)]..) {
                write_to(stream, rest);
            }
        }
    }
}

/// Writes to our stdout or stderr at once; a closed one is no error.
fn write_to(stream: Stream, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = match stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(data).and_then(|()| out.flush())
        }
        Stream::Stderr => std::io::stderr().lock().write_all(data),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(msg_id: MsgId, stream: Stream, item: usize, data: &[u8]) -> OutputChunk {
        OutputChunk {
            msg_id,
            stream,
            item: Some(item),
            data: data.to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn lines_are_shown_whole_and_prefixed_with_their_item() {
        let lines = Lines::default();
        let id = MsgId::new();
        assert_eq!(
            lines.chunk(&chunk(id, Stream::Stdout, 3, b"a\nb")),
            "[stdout:3] a\n"
        );
        assert_eq!(
            lines.chunk(&chunk(id, Stream::Stdout, 3, b"c\n")),
            "[stdout:3] bc\n"
        );
        assert_eq!(lines.chunk(&chunk(id, Stream::Stderr, 4, b"e")), "");
        // Done: the held partial line, and what was never streamed.
        assert_eq!(
            lines.done(id, "3-4", b"a\nbc\nlost\n", b"e"),
            "[stdout:3-4] lost\n[stderr:4] e\n"
        );
        let other = MsgId::new();
        assert_eq!(lines.done(other, "9", b"x\n", b""), "[stdout:9] x\n");
    }
}
