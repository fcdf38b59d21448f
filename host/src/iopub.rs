//! Live output of an engine slot's running task, published on
//! `iopub.<client>` (ipyparallel's iopub channel).
//!
//! The task's captures hand every write to [`Iopub`] from inside guest
//! execution, where nothing may block: the bytes are queued (a write that
//! continues the previous one of the same stream joins it) and a publisher
//! task on the slot's runtime is woken; it waits [`LIVE_DELAY`] for more to
//! gather, then sends what is queued. When the task ends, what is still
//! queued is dropped: the result carries the complete output, and a client
//! shows from it whatever did not come live. So a task shorter than the
//! delay (nearly every task of a big map, or a test of a test suite) costs
//! no message at all, and a long one streams its output within the delay
//! of its writing, in a message per delay at most.
//!
//! Bounded: what is queued never exceeds what the task may write (its
//! output limits); a chunk that reached the limit says so (`truncated`).
//! This type sends nothing itself but through the bus handed to it, and
//! must never block the guest.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use grid_bus::Bus;
use grid_proto::{ClientId, MsgId, Stream, Subjects};
use tokio::sync::Notify;

use crate::output::LiveOutput;

/// How long output gathers before it is sent (and how late it may come).
pub const LIVE_DELAY: Duration = Duration::from_millis(10);

/// The live output of one slot's current task.
#[derive(Default)]
pub(crate) struct Iopub {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    /// The running task, and whose it is.
    current: Option<(MsgId, ClientId)>,
    queued: Vec<grid_proto::Iopub>,
}

impl Iopub {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A task of `client` starts.
    pub(crate) fn begin(&self, msg_id: MsgId, client: ClientId) {
        let mut s = self.lock();
        s.current = Some((msg_id, client));
        s.queued.clear();
    }

    /// The task ended: its result has what was not published yet.
    pub(crate) fn end(&self) {
        let mut s = self.lock();
        s.current = None;
        s.queued.clear();
    }

    /// Publishes what is queued, whenever there is some, until the slot stops.
    pub(crate) async fn publish(self: Arc<Self>, bus: Arc<dyn Bus>, subjects: Subjects) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(LIVE_DELAY).await;
            let (client, queued) = {
                let mut s = self.lock();
                match s.current {
                    Some((_, client)) => (client, std::mem::take(&mut s.queued)),
                    None => continue,
                }
            };
            send(&*bus, &subjects, client, queued).await;
        }
    }
}

/// Publishes `chunks` on `client`'s iopub subject; loss is tolerated (the
/// result carries the whole output).
async fn send(
    bus: &dyn Bus,
    subjects: &Subjects,
    client: ClientId,
    chunks: Vec<grid_proto::Iopub>,
) {
    let subject = subjects.iopub(client);
    for chunk in chunks {
        let Ok(bytes) = grid_proto::encode(&chunk) else {
            continue;
        };
        if let Err(e) = bus.publish(&subject, Bytes::from(bytes)).await {
            tracing::debug!(error = %e, "cannot publish live output");
        }
    }
}

impl LiveOutput for Iopub {
    fn write(&self, stream: Stream, item: Option<u32>, offset: u64, data: &[u8], truncated: bool) {
        let mut s = self.lock();
        let Some((msg_id, _)) = s.current else {
            return;
        };
        let first = s.queued.is_empty();
        if let Some(last) = s.queued.last_mut()
            && last.stream == stream
            && last.item == item
            && !last.truncated
            && last.offset + last.data.len() as u64 == offset
        {
            last.data.extend_from_slice(data);
            last.truncated = truncated;
        } else {
            s.queued.push(grid_proto::Iopub {
                msg_id,
                stream,
                item,
                offset,
                data: data.to_vec(),
                truncated,
            });
        }
        drop(s);
        if first {
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_that_continue_each_other_join() {
        let iopub = Iopub::default();
        iopub.write(Stream::Stdout, None, 0, b"ignored: no task", false);
        let (msg, client) = (MsgId::new(), ClientId::new());
        iopub.begin(msg, client);
        iopub.write(Stream::Stdout, None, 0, b"a\n", false);
        iopub.write(Stream::Stdout, None, 2, b"b\n", false);
        iopub.write(Stream::Stderr, None, 0, b"e\n", false);
        iopub.write(Stream::Stdout, Some(1), 4, b"c\n", true);
        let queued = std::mem::take(&mut iopub.lock().queued);
        assert_eq!(iopub.lock().current, Some((msg, client)));
        let got: Vec<_> = queued
            .iter()
            .map(|c| (c.stream, c.item, c.offset, c.data.as_slice(), c.truncated))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, None, 0, &b"a\nb\n"[..], false),
                (Stream::Stderr, None, 0, &b"e\n"[..], false),
                (Stream::Stdout, Some(1), 4, &b"c\n"[..], true),
            ]
        );
        iopub.write(Stream::Stdout, None, 6, b"d\n", false);
        iopub.end();
        assert!(iopub.lock().queued.is_empty() && iopub.lock().current.is_none());
    }
}
