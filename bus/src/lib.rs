//! `grid-bus`: how Grid's processes talk.
//!
//! The [`Bus`] trait is NATS's model, and only what Grid uses of it:
//! subjects of dot-separated tokens with `*` (one token) and `>` (the rest)
//! wildcards, plain and queue-group subscriptions, request-reply with a
//! timeout, a content-addressed blob store for modules, and offered blobs
//! (held by their sender, persisted only under memory pressure) for large
//! transient values. The durable store can be listed and pruned, and keeps a
//! record of when each blob was last used ([`Bus::touch_blob`]), so that
//! blobs nothing uses any more can be collected (the policy is the
//! controller's, `grid_controller::gc`, not this crate's).
//! [`LocalBus`] implements it in process (same semantics, no server), so a
//! whole cluster runs inside one program; [`NatsBus`] implements it on a NATS
//! server, with the blob store in JetStream, so a cluster spans machines.
//! Payloads are bytes; what they mean is `grid-proto`'s business, not this
//! crate's. With the `testing` feature, `grid_bus::testing` starts throwaway
//! NATS servers for tests.

mod blob;
mod body;
mod direct;
mod local;
mod malloc;
mod nats;
mod offer;
mod spin;
mod subject;
#[cfg(feature = "testing")]
pub mod testing;

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use grid_proto::{BlobHash, Timestamp};

pub use blob::MemoryBlobStore;
pub use body::{SPILL_THRESHOLD, load_body, spill_body};
pub use local::LocalBus;
pub use malloc::tune_allocator;
pub use nats::{
    BLOB_BUCKET, BLOB_USES_BUCKET, BusEvent, NatsBus, NatsOptions, SUBSCRIPTION_CAPACITY,
};
pub use offer::OFFER_BUDGET;
pub use spin::{SPIN, now_or_never, spawn_consumer, spin_block_on};
pub use subject::{Pattern, validate_subject};

/// A message as delivered to a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    /// Where to send a reply, for requests.
    pub reply: Option<String>,
    pub payload: Bytes,
}

/// A blob in the durable store, as [`Bus::list_blobs`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub hash: BlobHash,
    /// Its size in bytes.
    pub size: u64,
    /// When it was stored, by the clock of the process that stored it.
    pub stored: Timestamp,
}

/// What can go wrong on a bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
    #[error("no one is listening on {0}")]
    NoResponders(String),
    #[error("no reply on {subject} within {timeout:?}")]
    Timeout { subject: String, timeout: Duration },
    #[error("the bus is closed")]
    Closed,
    /// No server at `url` (or it refused us): connecting fails at once
    /// rather than retrying in the background.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// An operation made no progress for `timeout`: in practice, the
    /// connection to the server is down and did not come back in time.
    #[error("{operation} made no progress within {timeout:?} (is the server reachable?)")]
    Stalled {
        operation: String,
        timeout: Duration,
    },
    /// What the blob store returned for `expected` hashes to `actual`.
    #[error("blob {expected} read back as {actual}: the store returned corrupt data")]
    BlobMismatch {
        expected: BlobHash,
        actual: BlobHash,
    },
    #[error("bus error: {0}")]
    Other(String),
}

/// A stream of messages on a subscription. Dropping it unsubscribes.
pub struct Subscription {
    inner: Pin<Box<dyn Stream<Item = Message> + Send>>,
}

impl Subscription {
    /// Wraps any stream of messages (each bus implementation makes its own).
    pub fn new(stream: impl Stream<Item = Message> + Send + 'static) -> Subscription {
        Subscription {
            inner: Box::pin(stream),
        }
    }

    /// The next message, or `None` once the subscription or the bus is closed.
    pub async fn next(&mut self) -> Option<Message> {
        std::future::poll_fn(|cx| self.inner.as_mut().poll_next(cx)).await
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// A message bus with NATS semantics.
///
/// Delivery is in order per publisher and subscriber. A subscription is
/// registered when `subscribe` returns: a message published after that on a
/// matching subject reaches it.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes `payload` on `subject` (no wildcards).
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;

    /// Publishes with a reply subject, for hand-made request-reply.
    async fn publish_with_reply(
        &self,
        subject: &str,
        reply: &str,
        payload: Bytes,
    ) -> Result<(), BusError>;

    /// Publishes at once, without awaiting, when this bus can (an in-process
    /// bus can); `None` means "not supported here, use `publish`". It lets a
    /// caller on a plain thread skip a hop through an async task.
    fn publish_now(&self, subject: &str, payload: &Bytes) -> Option<Result<(), BusError>> {
        let _ = (subject, payload);
        None
    }

    /// Whether subscriptions' messages are produced on the tokio runtime's
    /// threads (a network bus reading its sockets there) rather than on the
    /// publisher's thread (in process). A consumer that never blocks should
    /// then be a task on that runtime, which gets each message without a
    /// hand-over between threads; otherwise a thread of its own that spins
    /// briefly before parking gets each one without a wake-up. See
    /// [`spawn_consumer`], which makes that choice.
    fn delivers_on_runtime(&self) -> bool {
        false
    }

    /// How many messages to this process's subscriptions the bus dropped
    /// since it connected, because a subscriber fell too far behind (NATS's
    /// slow consumer) or the connection was lost (one per disconnect). A
    /// lower bound: see [`NatsBus`] for why. Never
    /// decreases; the in-process bus never drops a message, so 0 by default.
    fn dropped_messages(&self) -> u64 {
        0
    }

    /// Subscribes to `subject` (wildcards allowed): every matching message.
    async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError>;

    /// Subscribes as a member of queue group `queue`: each matching message
    /// goes to one member of the group (plain subscribers all get it too).
    async fn queue_subscribe(&self, subject: &str, queue: &str) -> Result<Subscription, BusError>;

    /// Sends a request and waits for the first reply. Fails at once with
    /// `NoResponders` when no one subscribes to `subject`.
    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message, BusError>;

    /// A fresh subject for replies (`_INBOX.<unique>`).
    fn new_inbox(&self) -> String;

    /// Waits until everything published so far has left this process.
    async fn flush(&self) -> Result<(), BusError>;

    /// Stores `bytes` in the cluster's blob store; returns their sha256.
    /// Storing counts as a use: a new blob's stored time is now, and
    /// storing content that is already there records a use of it (see
    /// [`Bus::touch_blob`]).
    async fn put_blob(&self, bytes: Bytes) -> Result<BlobHash, BusError>;

    /// Fetches a blob by hash, verified against it: from this process's
    /// offers, from another process that offers it, or from the store;
    /// `None` if it is in none of them.
    async fn get_blob(&self, hash: &BlobHash) -> Result<Option<Bytes>, BusError>;

    /// Offers `bytes` to the cluster from this process: held in memory and
    /// served by hash to any `get_blob` until released as many times as it
    /// was offered (or, when the offers outgrow their budget, moved to the
    /// store). For large transient values; see the `offer` module docs.
    async fn offer_blob(&self, bytes: Bytes) -> Result<BlobHash, BusError>;

    /// Drops one holder of an offered blob (see [`Bus::offer_blob`]).
    fn release_blob(&self, hash: &BlobHash);

    /// Every blob in the durable store, with its size and when it was
    /// stored. Offered blobs are not in it until persisted.
    async fn list_blobs(&self) -> Result<Vec<BlobInfo>, BusError>;

    /// Deletes `hash` from the durable store, with its record of uses; true
    /// if it was stored. An offer of the same content is not affected.
    async fn delete_blob(&self, hash: &BlobHash) -> Result<bool, BusError>;

    /// Records that `hash` is used now (by this process's clock), so that
    /// the blob collector keeps it. Callers on hot paths rate-limit it
    /// themselves: on NATS each call is a JetStream write.
    async fn touch_blob(&self, hash: &BlobHash) -> Result<(), BusError>;

    /// The last recorded use of each blob that has one (by
    /// [`Bus::touch_blob`], or by storing content already stored). A record
    /// may outlive its blob, or name one never stored.
    async fn blob_uses(&self) -> Result<HashMap<BlobHash, Timestamp>, BusError>;
}
