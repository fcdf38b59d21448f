//! Captured stdout and stderr of one task, with a byte limit.
//!
//! WASI writes go into a shared buffer; a write past the limit keeps what fits,
//! records that the limit was hit, and fails the write with a trap so the task
//! ends at once (a guest printing in a loop must not run on with its output
//! thrown away). The engine checks [`Capture::exceeded`] to report a `limit`
//! error instead of a bare trap. This type must not block: wasmtime-wasi calls
//! it from inside guest execution.
//!
//! When the engine slot streams live output ([`LiveOutput`], ipyparallel's
//! iopub), every write is also handed to it, with its offset in the stream
//! and the item of a chunk that made it, as it happens; what is kept and
//! what is streamed are the same bytes, so the captured output in the
//! result is the complete, ordered record of what was streamed.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use grid_proto::Stream;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Largest write permit handed to WASI at once.
const PERMIT: usize = 64 * 1024;

/// Where a running task's output goes as it is written. Called from inside
/// guest execution: it must not block (queue the bytes and return).
pub trait LiveOutput: Send + Sync {
    /// `data` was written to `stream` at byte `offset`, by item `item` of a
    /// chunk (or by the task). `truncated`: the stream reached its limit
    /// with this write; nothing more of it follows.
    fn write(&self, stream: Stream, item: Option<u32>, offset: u64, data: &[u8], truncated: bool);
}

/// Which item of a chunk runs now, shared by a sandbox's two captures
/// (`u32::MAX`: not a chunk).
pub(crate) type CurrentItem = Arc<AtomicU32>;

/// One captured output stream (cheap to clone; clones share the buffer).
#[derive(Clone)]
pub(crate) struct Capture {
    inner: Arc<Shared>,
}

struct Shared {
    limit: usize,
    buffer: Mutex<Vec<u8>>,
    exceeded: AtomicBool,
    live: Option<(Arc<dyn LiveOutput>, Stream, CurrentItem)>,
}

impl Capture {
    #[cfg(test)]
    pub(crate) fn new(limit: u64) -> Capture {
        Self::streaming(limit, None)
    }

    /// A capture that also hands each write to `live`.
    pub(crate) fn streaming(
        limit: u64,
        live: Option<(Arc<dyn LiveOutput>, Stream, CurrentItem)>,
    ) -> Capture {
        Capture {
            inner: Arc::new(Shared {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
                buffer: Mutex::new(Vec::new()),
                exceeded: AtomicBool::new(false),
                live,
            }),
        }
    }

    /// True once a write went past the limit.
    pub(crate) fn exceeded(&self) -> bool {
        self.inner.exceeded.load(Ordering::Relaxed)
    }

    /// What was written (up to the limit).
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *lock(&self.inner.buffer))
    }

    /// Appends `bytes`; returns false (keeping what fits) when the limit is hit.
    fn append(&self, bytes: &[u8]) -> bool {
        let mut buffer = lock(&self.inner.buffer);
        let offset = buffer.len() as u64;
        let room = self.inner.limit.saturating_sub(buffer.len());
        let fits = bytes.len() <= room;
        let kept = if fits { bytes } else { &bytes[..room] };
        buffer.extend_from_slice(kept);
        if !fits {
            self.inner.exceeded.store(true, Ordering::Relaxed);
        }
        if let Some((live, stream, item)) = &self.inner.live {
            let item = Some(item.load(Ordering::Relaxed)).filter(|&i| i != u32::MAX);
            // Under the buffer's lock, so chunks go out in the order written.
            if !kept.is_empty() || !fits {
                live.write(*stream, item, offset, kept, !fits);
            }
        }
        fits
    }
}

/// The buffer holds plain bytes: a poisoned lock cannot leave it inconsistent.
fn lock(m: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if self.append(&bytes) {
            Ok(())
        } else {
            Err(StreamError::trap("output limit exceeded"))
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.append(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(std::io::Error::other("output limit exceeded")))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_fits_and_flags_the_rest() {
        let mut c = Capture::new(5);
        assert!(c.write(Bytes::from_static(b"abc")).is_ok());
        assert!(c.write(Bytes::from_static(b"defg")).is_err());
        assert!(c.exceeded());
        assert_eq!(c.take(), b"abcde");
    }

    #[derive(Default)]
    struct Seen(Mutex<Vec<(u64, Vec<u8>, bool)>>);

    impl LiveOutput for Seen {
        fn write(&self, _: Stream, _: Option<u32>, offset: u64, data: &[u8], truncated: bool) {
            self.0
                .lock()
                .unwrap()
                .push((offset, data.to_vec(), truncated));
        }
    }

    #[test]
    fn live_output_sees_what_is_kept_with_offsets() {
        let seen = Arc::new(Seen::default());
        let item = CurrentItem::new(AtomicU32::new(u32::MAX));
        let mut c = Capture::streaming(5, Some((seen.clone(), Stream::Stdout, item)));
        let _ = c.write(Bytes::from_static(b"abc"));
        let _ = c.write(Bytes::from_static(b"defg"));
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![(0, b"abc".to_vec(), false), (3, b"de".to_vec(), true)]
        );
    }
}
