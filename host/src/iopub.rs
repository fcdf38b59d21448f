//! Live output of an engine slot's running task, published on
//! `iopub.<client>` (ipyparallel's iopub channel).
//!
//! The task's captures hand every write to [`Iopub`] from inside guest
//! execution, where nothing may block: the bytes are queued (a write that
//! continues the previous one of the same stream joins it) and a publisher
//! task on the slot's runtime is woken to send what is queued, so a guest
//! that prints line by line costs about one message per line while the bus
//! keeps up, and fewer, larger messages when it does not. When the task
//! ends, the worker takes what is left and publishes it before the result,
//! so a client sees all live output of a task before its result (the
//! result's captured output stays the complete record either way).
//!
//! Bounded: what is queued never exceeds what the task may write (its
//! output limits); a chunk that reached the limit says so (`truncated`).
//! This type sends nothing itself but through the bus handed to it, and
//! must never block the guest.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use grid_bus::Bus;
use grid_proto::{ClientId, MsgId, Stream, Subjects};
use tokio::sync::Notify;

use crate::output::LiveOutput;

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

    /// The task ended: what it wrote that is not published yet.
    pub(crate) fn end(&self) -> Option<(ClientId, Vec<grid_proto::Iopub>)> {
        let mut s = self.lock();
        let (_, client) = s.current.take()?;
        Some((client, std::mem::take(&mut s.queued))).filter(|(_, q)| !q.is_empty())
    }

    /// Publishes what is queued, whenever there is some, until the slot stops.
    pub(crate) async fn publish(self: Arc<Self>, bus: Arc<dyn Bus>, subjects: Subjects) {
        loop {
            self.wake.notified().await;
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
pub(crate) async fn send(
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
        self.wake.notify_one();
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
        let (to, queued) = iopub.end().unwrap();
        assert_eq!(to, client);
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
        assert!(iopub.end().is_none());
    }
}
