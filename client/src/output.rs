//! Live output of running tasks (ipyparallel's iopub), as the client sees it.
//!
//! Engines publish what a running task writes on `iopub.<client>` in chunks
//! that carry their offset in the stream (see `grid_proto::Iopub`), a few
//! milliseconds after it was written (a task that ends sooner publishes
//! nothing: its result has it all). The
//! dispatcher files each chunk with its task: [`Live`] puts the bytes in
//! order (a chunk that arrives early waits for the gap before it to fill;
//! one that repeats bytes already seen is cut), so what a task's
//! `stdout()` shows while it runs is a prefix of what its result will
//! carry. Once the result arrives its captured output replaces the live
//! buffers, which are dropped. A [`OutputHandler`] set on the client sees
//! each new piece as it is put in order, with the map item that wrote it.
//!
//! Bounded by the engines' output limits per task: a client holds at most
//! what its running tasks may write. Chunks lost on the way leave a gap that
//! holds back later ones until the result arrives; the result's output is
//! always complete.

use std::collections::BTreeMap;

use grid_proto::{MsgId, Stream};

/// A piece of a running task's output, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputChunk {
    pub msg_id: MsgId,
    pub stream: Stream,
    /// The item of a map that wrote it (its index in the whole input), or
    /// `None` for a task that is not part of a map.
    pub item: Option<usize>,
    pub data: Vec<u8>,
    /// The stream reached the task's output limit: nothing more follows.
    pub truncated: bool,
}

/// Called on the client's dispatcher for every piece of live output, in
/// order per task and stream. It must return quickly.
pub type OutputHandler = std::sync::Arc<dyn Fn(&OutputChunk) + Send + Sync>;

/// One stream of one running task.
#[derive(Default)]
pub(crate) struct LiveStream {
    /// Everything in order so far.
    pub bytes: Vec<u8>,
    /// Chunks that came before the bytes preceding them, by offset.
    early: BTreeMap<u64, (Option<u32>, Vec<u8>)>,
}

impl LiveStream {
    /// Takes a chunk; returns the pieces now in order (with their item).
    pub(crate) fn take(
        &mut self,
        offset: u64,
        item: Option<u32>,
        data: Vec<u8>,
    ) -> Vec<(Option<u32>, Vec<u8>)> {
        self.early.insert(offset, (item, data));
        let mut ready = Vec::new();
        while let Some(entry) = self.early.first_entry() {
            let start = *entry.key();
            let end = self.bytes.len() as u64;
            if start > end {
                break; // a gap: wait for it
            }
            let (item, data) = entry.remove();
            let skip = usize::try_from(end - start).unwrap_or(usize::MAX);
            if skip < data.len() {
                let new = data[skip..].to_vec();
                self.bytes.extend_from_slice(&new);
                ready.push((item, new));
            }
        }
        ready
    }
}

/// Both streams of one running task.
#[derive(Default)]
pub(crate) struct Live {
    pub stdout: LiveStream,
    pub stderr: LiveStream,
}

impl Live {
    pub(crate) fn stream(&mut self, stream: Stream) -> &mut LiveStream {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_put_in_order_and_repeats_cut() {
        let mut s = LiveStream::default();
        assert_eq!(
            s.take(0, None, b"ab".to_vec()),
            vec![(None, b"ab".to_vec())]
        );
        // Early: waits for 2..4.
        assert!(s.take(4, Some(1), b"ef".to_vec()).is_empty());
        assert_eq!(
            s.take(1, None, b"bcd".to_vec()),
            vec![(None, b"cd".to_vec()), (Some(1), b"ef".to_vec())]
        );
        assert!(s.take(0, None, b"abc".to_vec()).is_empty());
        assert_eq!(s.bytes, b"abcdef");
    }
}
