//! [`NatsBus`]: the [`Bus`] on a NATS server, with the blob store in JetStream.
//!
//! A distributed cluster talks over NATS exactly as a local one talks over the
//! [`LocalBus`](crate::LocalBus): same subjects, wildcards, queue groups and
//! request-reply. This file maps the [`Bus`] calls onto one async-nats
//! connection and adds what async-nats leaves to the caller:
//!
//! - **Registration is observable.** NATS handles a connection's protocol in
//!   order, but async-nats's `flush` only waits for the socket write, not for
//!   the server: a publish from another connection right after `subscribe`
//!   could find no subscriber. So `subscribe` ends with a round trip through
//!   the server on the same connection (a message to a fresh inbox that we
//!   subscribe to ourselves, see [`NatsBus::round_trip`]); when it comes back,
//!   the server has processed the SUB that went before it.
//! - **Nothing waits forever.** async-nats reconnects by itself and, while
//!   disconnected, keeps commands in a bounded queue (2,048). Requests end
//!   with their timeout; publishes, flushes, subscribes and blob transfers
//!   wait at most [`NatsOptions::stall_timeout`] without progress, then fail
//!   with [`BusError::Stalled`].
//! - **Connection events** ([`BusEvent`]) are broadcast to whoever asks
//!   ([`NatsBus::events`]). After a reconnect, `Connected` is only sent once
//!   the subscriptions that async-nats re-sends have been registered again.
//! - **Blobs** live in the JetStream object store bucket `grid-blobs` (created
//!   when missing), named by the hex sha256 of their content; NATS splits
//!   them into chunks, so a blob may be far larger than a message (1 MiB).
//!   Their uses are recorded in the key-value bucket `grid-blob-uses` (also
//!   created when missing): the key is the hex sha256, the value the time of
//!   the last use in microseconds since the Unix epoch, as decimal text. The
//!   time a blob was stored is its object's modification time, which the
//!   storing client sets. Deleting a blob leaves a small tombstone in the
//!   object store (async-nats's delete; removing it could race a new put of
//!   the same content) and removes its use record outright.
//! - **Offered blobs** (see the `offer` module) are served by the process
//!   that holds them: it answers requests on `grid-blobs.offer.<hex sha256>`
//!   (a queue group, so one holder answers each). A fetcher first asks an
//!   empty range; the answer carries the blob's size in a `Grid-Blob-Size`
//!   header (`gone` once released) and, in `Grid-Blob-Direct`, the address
//!   where the offerer serves it over TCP (the `direct` module), where the
//!   fetcher then reads it. If that fails, it asks 8 MiB ranges over NATS,
//!   each answered as a burst of messages of up to 1000 KiB, so no more
//!   than that is in flight towards it (well under the server's
//!   slow-consumer limit). With no offerer it falls back to the bucket. The
//!   offerer hashed the bytes it serves, so the fetcher does not hash them
//!   again. No acknowledgements and no disk: 10 MB offered and fetched
//!   directly took 10 to 16 ms here, through the object store 125 ms.
//!
//! Where it differs from the `LocalBus`: a subscriber that falls
//! [`NatsOptions::subscription_capacity`] messages behind (1,048,576 by
//! default, [`SUBSCRIPTION_CAPACITY`]) loses messages (NATS's slow consumer)
//! instead of buffering without bound. Each loss is reported as a
//! [`BusEvent::SlowConsumer`] and counted ([`Bus::dropped_messages`]), but
//! async-nats hands its events over through a bounded channel that drops
//! events when full, so the count is a lower bound: zero means no loss was
//! seen, not a proof of none. The server can also cut off a connection that
//! does not read its socket fast enough (its own slow-consumer limit), which
//! shows as a disconnect: a lost connection loses whatever was on its way,
//! unseen, so each disconnect counts as one dropped message. Payloads
//! are limited to the server's `max_payload` (1 MiB by default); dropping a
//! subscription unsubscribes asynchronously, so messages already on their way
//! from other connections are discarded (a queue group can lose such a
//! message); and messages published while the connection is down and not yet
//! queued client side are lost, as NATS core never stores them. With several
//! NATS servers in a cluster, interest travels between servers asynchronously,
//! so the registration guarantee holds for publishers on the same server.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store::ObjectStore};
use async_nats::{Client, ConnectErrorKind, HeaderMap, RequestErrorKind, StatusCode};
use bytes::Bytes;
use futures_core::Stream;
use grid_proto::{BlobHash, Timestamp};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::{OnceCell, broadcast};

use crate::direct::{self, DirectServer};
use crate::offer::{OFFER_BUDGET, Offers};
use crate::subject::validate_queue;
use crate::{BlobInfo, Bus, BusError, Message, Subscription, now_or_never, validate_subject};

/// The JetStream object store bucket that holds Grid's blobs.
pub const BLOB_BUCKET: &str = "grid-blobs";

/// The JetStream key-value bucket that records when each blob was last used
/// (see the module docs).
pub const BLOB_USES_BUCKET: &str = "grid-blob-uses";

/// Use records `blob_uses` fetches at once: one request each, so a store of
/// thousands of blobs is read in a fraction of a second, not a few seconds.
const USES_IN_FLIGHT: usize = 32;

/// Events kept for a slow [`NatsBus::events`] receiver before it lags.
const EVENT_CAPACITY: usize = 64;

/// The default [`NatsOptions::subscription_capacity`]: messages buffered per
/// subscription before NATS drops them (async-nats's own default is 65,536).
///
/// Larger costs nothing until it is used: async-nats gives each subscription
/// a bounded tokio mpsc channel, and tokio's bounded channel is a semaphore
/// with this many permits in front of a linked list of 32-slot blocks that
/// grows as messages are queued and is reclaimed as they are read (read in
/// tokio 1.54's `sync/mpsc/{bounded,chan,list,block}.rs`: `channel(buffer)`
/// only sets the permit count and allocates the first block). So a
/// subscription that keeps up holds one block whatever its capacity, and the
/// bound only decides when a backlog starts losing messages instead of
/// growing. A backlog of 1,048,576 small messages (a few hundred bytes each)
/// is some hundreds of MiB, reached only by a consumer that is already far
/// behind.
pub const SUBSCRIPTION_CAPACITY: usize = 1 << 20;

/// How often the client pings an idle server. Two unanswered pings end the
/// connection, so a server that vanished without closing the socket (a
/// pulled cable, a frozen VM) is noticed within about three intervals.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// At most this much is reserved up front for a blob being read: the size
/// comes from the server, so a bogus one must not allocate gigabytes.
const BLOB_PREALLOCATE_LIMIT: usize = 64 << 20;

/// Bytes per message of an offered blob on its way to a fetcher (less when
/// the server's `max_payload` is under NATS's default 1 MiB).
const OFFER_CHUNK: usize = 1000 * 1024;

/// Bytes a fetcher asks an offerer for at a time.
const OFFER_WINDOW: usize = 8 << 20;

/// The header that carries an offered blob's size (or `gone`).
const OFFER_SIZE_HEADER: &str = "Grid-Blob-Size";

/// How long a fetcher waits for an offerer's first answer before asking
/// again (see `fetch_offered`).
const HELLO_PATIENCE: Duration = Duration::from_millis(500);

/// The header that carries the offerer's direct-transfer address.
const OFFER_DIRECT_HEADER: &str = "Grid-Blob-Direct";

/// The queue group of a blob's offerers: one of them answers each request.
const OFFER_QUEUE: &str = "offerers";

/// What can happen to a [`NatsBus`]'s connection, from [`NatsBus::events`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusEvent {
    /// Connected to the server. After a reconnect, it is sent once every live
    /// subscription is registered again, so a publish from anywhere reaches
    /// them. One may also be seen for the first connection.
    Connected,
    /// The connection is lost. async-nats reconnects by itself (with backoff,
    /// up to 4 s between attempts); meanwhile requests time out and publishes
    /// are queued (see [`NatsBus`]).
    Disconnected,
    /// The server is shutting down gracefully: expect a disconnect.
    LameDuckMode,
    /// A subscription fell too far behind: a message to it was dropped
    /// (one event per message, but events can be lost themselves: see
    /// [`Bus::dropped_messages`]).
    SlowConsumer,
    /// The server reported an error on this connection.
    ServerError(String),
    /// The client failed in some way (for example, a reconnect attempt).
    ClientError(String),
    /// The connection is closed for good: nothing more will work.
    Closed,
}

impl BusEvent {
    /// The event as Grid sees it; `None` for those it does not care about.
    fn from_nats(event: async_nats::Event) -> Option<BusEvent> {
        Some(match event {
            async_nats::Event::Connected => BusEvent::Connected,
            async_nats::Event::Disconnected => BusEvent::Disconnected,
            async_nats::Event::LameDuckMode => BusEvent::LameDuckMode,
            async_nats::Event::SlowConsumer(_) => BusEvent::SlowConsumer,
            async_nats::Event::ServerError(error) => BusEvent::ServerError(error.to_string()),
            async_nats::Event::ClientError(error) => BusEvent::ClientError(error.to_string()),
            async_nats::Event::Closed => BusEvent::Closed,
            // Only our own `drain` on drop causes it.
            async_nats::Event::Draining => return None,
        })
    }
}

/// How a [`NatsBus`] connects.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// The connection's name, shown in the server's monitoring (`/connz`).
    pub name: Option<String>,
    /// How long a publish, flush, subscribe or blob transfer may go without
    /// progress before it fails with [`BusError::Stalled`]: in practice, how
    /// long to wait for a lost server to come back. Requests have their own
    /// timeout instead.
    pub stall_timeout: Duration,
    /// Bytes of offered blobs held in memory before the oldest are moved to
    /// the bucket ([`OFFER_BUDGET`] by default).
    pub offer_budget: usize,
    /// Messages buffered for each subscription before further ones are
    /// dropped (and counted, see [`Bus::dropped_messages`]):
    /// [`SUBSCRIPTION_CAPACITY`] by default, which costs memory only while a
    /// backlog exists. At least 1.
    pub subscription_capacity: usize,
}

impl Default for NatsOptions {
    fn default() -> NatsOptions {
        NatsOptions {
            name: None,
            stall_timeout: Duration::from_secs(10),
            offer_budget: OFFER_BUDGET,
            subscription_capacity: SUBSCRIPTION_CAPACITY,
        }
    }
}

/// The bus on a NATS server: one connection, shared by all clones (cheap to
/// clone). When the last clone is dropped, the connection is drained: what
/// was published is sent, and every subscription ends.
///
/// Needs a tokio runtime with the time and I/O drivers (`enable_all`).
///
/// While the connection is down, publishes are queued client side (up to
/// 2,048 commands) and sent after the reconnect; when the queue is full, a
/// publish waits up to [`NatsOptions::stall_timeout`] and then fails with
/// [`BusError::Stalled`] (it was not sent). A request fails with
/// [`BusError::Timeout`] after its timeout.
#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

/// What the clones of a bus share.
struct Inner {
    client: Client,
    jetstream: jetstream::Context,
    /// Opened (or created) on first use: a bus that never touches blobs
    /// works on a server without JetStream.
    blobs: OnceCell<ObjectStore>,
    /// The record of blob uses, likewise.
    uses: OnceCell<kv::Store>,
    events: broadcast::Sender<BusEvent>,
    /// Messages dropped to slow consumers, as counted by the event callback.
    dropped: Arc<AtomicU64>,
    url: String,
    stall: Duration,
    /// Blobs this process offers, shared with the tasks that serve them.
    offers: Arc<Mutex<Offers<Serving>>>,
    /// Offers are made one at a time, so that a second offer of the same
    /// blob returns only once the first one is served.
    offering: tokio::sync::Mutex<()>,
    /// The TCP server for direct transfers of offers, started with the first
    /// offer (`None` inside when it could not start: NATS chunks only).
    direct: OnceCell<Option<DirectServer>>,
}

/// The task answering fetches of one offered blob; dropping it stops it
/// (and its subscription goes).
struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl NatsBus {
    /// Connects to the NATS server at `url` (`nats://host:port` or
    /// `host:port`) with default options. Fails at once, with
    /// [`BusError::Connect`], when no server answers there.
    pub async fn connect(url: &str) -> Result<NatsBus, BusError> {
        NatsBus::connect_with(url, NatsOptions::default()).await
    }

    /// Connects with `options`; see [`NatsBus::connect`].
    pub async fn connect_with(url: &str, options: NatsOptions) -> Result<NatsBus, BusError> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        // The event callback needs the bus (to confirm re-subscriptions), and
        // the bus needs the client that the callback is given to: the slot is
        // filled once both exist. Weak, or the connection would keep itself
        // alive.
        let slot: Arc<OnceLock<Weak<Inner>>> = Arc::default();
        // Not in the slot: drops can be counted before it is filled.
        let dropped = Arc::new(AtomicU64::new(0));
        let callback = {
            let events = events.clone();
            let slot = Arc::clone(&slot);
            let dropped = Arc::clone(&dropped);
            move |event| {
                let events = events.clone();
                let bus = slot.get().and_then(Weak::upgrade);
                let dropped = Arc::clone(&dropped);
                async move { forward_event(event, bus, events, &dropped).await }
            }
        };
        let mut connect = async_nats::ConnectOptions::new()
            .event_callback(callback)
            .ping_interval(PING_INTERVAL)
            // async-nats panics (in tokio) on a capacity of 0.
            .subscription_capacity(options.subscription_capacity.max(1));
        if let Some(name) = options.name {
            connect = connect.name(name);
        }
        let client = connect.connect(url).await.map_err(|error| {
            let reason = match (error.kind(), std::error::Error::source(&error)) {
                // "IO error: Connection refused": the I/O error says it all.
                (ConnectErrorKind::Io, Some(source)) => source.to_string(),
                _ => error.to_string(),
            };
            BusError::Connect {
                url: url.to_string(),
                reason,
            }
        })?;
        let inner = Arc::new(Inner {
            jetstream: jetstream::new(client.clone()),
            client,
            blobs: OnceCell::new(),
            uses: OnceCell::new(),
            events,
            dropped,
            url: url.to_string(),
            stall: options.stall_timeout,
            offers: Arc::new(Mutex::new(Offers::new(options.offer_budget))),
            offering: tokio::sync::Mutex::new(()),
            direct: OnceCell::new(),
        });
        // Only this function sets the slot, once.
        let _ = slot.set(Arc::downgrade(&inner));
        Ok(NatsBus { inner })
    }

    /// The connection's events from now on. A receiver that falls more than
    /// 64 events behind gets `Lagged` and then the newest events.
    pub fn events(&self) -> broadcast::Receiver<BusEvent> {
        self.inner.events.subscribe()
    }

    /// The URL this bus was connected to.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }
}

impl Inner {
    /// Proves that the server has processed everything this connection sent
    /// before: subscribes to a fresh inbox, publishes to it and waits for the
    /// message to come back. NATS handles a connection's protocol in order,
    /// so the echo comes after the server has handled every earlier SUB.
    /// (async-nats's `flush` only waits for the socket write.) A fresh inbox
    /// rather than a request to nobody: a `>` subscriber elsewhere, such as
    /// `nats sub '>'` while debugging, would swallow a "no responders" reply.
    async fn round_trip(&self, operation: impl FnOnce() -> String) -> Result<(), BusError> {
        let probe = self.client.new_inbox();
        let echo = async {
            let mut echo = self
                .client
                .subscribe(probe.clone())
                .await
                .map_err(|error| BusError::Other(format!("subscribing to {probe}: {error}")))?;
            self.client
                .publish(probe.clone(), Bytes::new())
                .await
                .map_err(|error| publish_error(&probe, error))?;
            match next_item(&mut echo).await {
                Some(_) => Ok(()),
                None => Err(BusError::Closed),
            }
            // `echo` drops here and unsubscribes.
        };
        self.within(echo, operation).await?
    }

    /// Runs `work`, giving up after the stall timeout.
    async fn within<T>(
        &self,
        work: impl Future<Output = T>,
        operation: impl FnOnce() -> String,
    ) -> Result<T, BusError> {
        tokio::time::timeout(self.stall, work)
            .await
            .map_err(|_elapsed| BusError::Stalled {
                operation: operation(),
                timeout: self.stall,
            })
    }

    /// Runs `work`, giving up when `progress` has not moved for a whole stall
    /// timeout: a 10 MB transfer may take long, but not stand still.
    async fn watched<T>(
        &self,
        work: impl Future<Output = T>,
        progress: &AtomicU64,
        operation: impl FnOnce() -> String,
    ) -> Result<T, BusError> {
        let mut work = std::pin::pin!(work);
        let mut seen = progress.load(Ordering::Relaxed);
        loop {
            match tokio::time::timeout(self.stall, work.as_mut()).await {
                Ok(done) => return Ok(done),
                Err(_elapsed) => {
                    let now = progress.load(Ordering::Relaxed);
                    if now == seen {
                        return Err(BusError::Stalled {
                            operation: operation(),
                            timeout: self.stall,
                        });
                    }
                    seen = now;
                }
            }
        }
    }

    fn offers(&self) -> MutexGuard<'_, Offers<Serving>> {
        lock_offers(&self.offers)
    }

    /// Removes the use record of `hash` outright, by purging its subject
    /// from the bucket's stream: a key-value delete or purge would leave a
    /// marker behind, one per collected blob, forever.
    async fn forget_use(&self, hash: &BlobHash) -> Result<(), BusError> {
        let store = self.use_store().await?;
        let subject = format!("{}{}", store.prefix, hash.to_hex());
        let describe = || format!("forgetting the uses of blob {}", hash.short());
        self.within(store.stream.purge().filter(subject).into_future(), describe)
            .await?
            .map(|_purged| ())
            .map_err(|error| BusError::Other(format!("{}: {error}", describe())))
    }

    /// Fetches `hash` from a process that offers it; `None` when no one does.
    /// Not hashed here. Asks the offerer first where it serves directly, and
    /// reads from there; falls back to chunks over NATS if that fails.
    async fn fetch_offered(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, BusError> {
        let subject = offer_subject(hash);
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|error| subscribe_error(&inbox, error))?;
        let ask = |offset: usize, len: usize| {
            let mut range = Vec::with_capacity(16);
            range.extend_from_slice(&(offset as u64).to_be_bytes());
            range.extend_from_slice(&(len as u64).to_be_bytes());
            self.client
                .publish_with_reply(subject.clone(), inbox.clone(), range.into())
        };
        // An empty range: the size and the direct address only. Asked again
        // when no answer comes soon: a request that reaches an offer's
        // subscription as it is being dropped (released) is lost, and asking
        // again then gets "no responders".
        let first = self
            .within(
                async {
                    loop {
                        ask(0, 0)
                            .await
                            .map_err(|error| publish_error(&subject, error))?;
                        let answer = self.next_answer(&mut replies, hash, None);
                        if let Ok(answer) = tokio::time::timeout(HELLO_PATIENCE, answer).await {
                            return answer;
                        }
                    }
                },
                || format!("fetching blob {}", hash.short()),
            )
            .await??;
        let Some(first) = first else {
            return Ok(None);
        };
        if let Some(addr) = first.direct {
            match direct::fetch(addr, hash, self.stall, BLOB_PREALLOCATE_LIMIT).await {
                Ok(Some(bytes)) if bytes.len() == first.size => return Ok(Some(bytes)),
                // Released meanwhile: perhaps persisted, the caller looks.
                Ok(None) => return Ok(None),
                Ok(Some(_)) | Err(_) => {}
            }
        }
        let size = first.size;
        let mut bytes = Vec::with_capacity(size.min(BLOB_PREALLOCATE_LIMIT));
        while bytes.len() < size {
            let window_end = (bytes.len() + OFFER_WINDOW).min(size);
            ask(bytes.len(), OFFER_WINDOW)
                .await
                .map_err(|error| publish_error(&subject, error))?;
            while bytes.len() < window_end {
                let Some(chunk) = self.next_answer(&mut replies, hash, Some(size)).await? else {
                    return Ok(None);
                };
                bytes.extend_from_slice(&chunk.payload);
            }
        }
        Ok(Some(bytes))
    }

    /// The next answer of an offerer of `hash` (whose size, once known, is
    /// `size`); `None` when no one offers it (any more).
    async fn next_answer(
        &self,
        replies: &mut async_nats::Subscriber,
        hash: &BlobHash,
        size: Option<usize>,
    ) -> Result<Option<Answer>, BusError> {
        let describe = || format!("fetching blob {}", hash.short());
        let Some(message) = self.within(next_item(replies), describe).await? else {
            return Err(BusError::Closed);
        };
        if message.status == Some(StatusCode::NO_RESPONDERS) {
            return Ok(None);
        }
        let header = |name| {
            message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_str())
        };
        let total = match header(OFFER_SIZE_HEADER) {
            Some("gone") => return Ok(None),
            Some(total) => total.parse::<usize>().ok(),
            None => None,
        };
        let Some(total) = total.filter(|&total| size.is_none_or(|size| size == total)) else {
            return Err(BusError::Other(format!(
                "fetching blob {}: a malformed answer from its offerer",
                hash.short()
            )));
        };
        let direct = header(OFFER_DIRECT_HEADER).and_then(|addr| addr.parse().ok());
        Ok(Some(Answer {
            size: total,
            direct,
            payload: message.payload,
        }))
    }

    /// Where this process serves its offers directly, starting the server on
    /// first use.
    async fn direct_addr(&self) -> Option<SocketAddr> {
        let server = self
            .direct
            .get_or_init(|| async {
                let ip = direct::local_ip_towards(&self.url).await?;
                let offers = Arc::clone(&self.offers);
                let lookup: direct::Lookup = Arc::new(move |hash| lock_offers(&offers).get(hash));
                DirectServer::start(ip, lookup).await.ok()
            })
            .await;
        server.as_ref().map(DirectServer::addr)
    }

    /// The blob bucket, opened or created on first use.
    async fn blob_store(&self) -> Result<&ObjectStore, BusError> {
        self.blobs
            .get_or_try_init(|| {
                let config = jetstream::object_store::Config {
                    bucket: BLOB_BUCKET.to_string(),
                    description: Some("Grid's blobs, named by the sha256 of their content".into()),
                    ..Default::default()
                };
                self.open_or_create(
                    BLOB_BUCKET,
                    || self.jetstream.get_object_store(BLOB_BUCKET),
                    || self.jetstream.create_object_store(config),
                )
            })
            .await
    }

    /// The bucket of blob uses, opened or created on first use.
    ///
    /// Created as the stream that async-nats's `create_key_value` would make
    /// (the key-value conventions, keeping one value per key), because that
    /// call first reads the account's JetStream info, which async-nats 0.51
    /// cannot parse from a 2.9 server ("data did not match any variant of
    /// untagged enum Response").
    async fn use_store(&self) -> Result<&kv::Store, BusError> {
        self.uses
            .get_or_try_init(|| {
                let config = jetstream::stream::Config {
                    name: format!("KV_{BLOB_USES_BUCKET}"),
                    description: Some("When each of Grid's blobs was last used, by sha256".into()),
                    subjects: vec![format!("$KV.{BLOB_USES_BUCKET}.>")],
                    // Only the last use matters.
                    max_messages_per_subject: 1,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: jetstream::stream::DiscardPolicy::New,
                    num_replicas: 1,
                    ..Default::default()
                };
                self.open_or_create(
                    BLOB_USES_BUCKET,
                    || self.jetstream.get_key_value(BLOB_USES_BUCKET),
                    || async {
                        let created = self.jetstream.create_stream(config).await;
                        created.map_err(|error| error.to_string())?;
                        let opened = self.jetstream.get_key_value(BLOB_USES_BUCKET).await;
                        opened.map_err(|error| error.to_string())
                    },
                )
            })
            .await
    }

    /// Opens the JetStream bucket `bucket` with `open`, or creates it with
    /// `create` when it is missing.
    async fn open_or_create<S, Opening, Creating, OpenError, CreateError>(
        &self,
        bucket: &str,
        open: impl Fn() -> Opening,
        create: impl FnOnce() -> Creating,
    ) -> Result<S, BusError>
    where
        Opening: Future<Output = Result<S, OpenError>>,
        Creating: Future<Output = Result<S, CreateError>>,
        CreateError: fmt::Display,
    {
        let opened = async {
            if let Ok(store) = open().await {
                return Ok(store);
            }
            match create().await {
                Ok(store) => Ok(store),
                // Another process may have created it meanwhile.
                Err(create) => open().await.map_err(|_| {
                    BusError::Other(format!(
                        "cannot open the bucket {bucket} (does the server at {} run JetStream, `-js`?): {create}",
                        self.url
                    ))
                }),
            }
        };
        self.within(opened, || format!("opening the bucket {bucket}"))
            .await?
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close the connection now rather than when the last subscription
        // goes, so that subscriptions end as they do on a LocalBus. Draining
        // sends what was published first. Without a runtime (dropped during
        // teardown) the connection closes once nothing uses it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            runtime.spawn(async move {
                let _ = client.drain().await;
            });
        }
    }
}

/// Hands one async-nats event to the bus's listeners, counting dropped
/// messages in `dropped`. A `Connected` after a reconnect waits for a round
/// trip first: async-nats queues the re-sent subscriptions before anything
/// else on the new connection, so once the round trip is back, they are
/// registered. (Events that arrive meanwhile queue in async-nats's event
/// channel, and are lost if it fills: one reason the drop count is a lower
/// bound.)
async fn forward_event(
    event: async_nats::Event,
    bus: Option<Arc<Inner>>,
    events: broadcast::Sender<BusEvent>,
    dropped: &AtomicU64,
) {
    // A lost connection loses whatever was on its way: it counts as one.
    if let async_nats::Event::SlowConsumer(_) | async_nats::Event::Disconnected = event {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
    let Some(event) = BusEvent::from_nats(event) else {
        return;
    };
    if let (BusEvent::Connected, Some(bus)) = (&event, bus) {
        // In a task of its own: async-nats wants the callback's future to be
        // `Sync`, which the client's futures are not; a join handle is.
        let confirm = tokio::spawn(async move {
            // On failure the connection went down again, and a
            // `Disconnected` follows this `Connected`.
            let _ = bus
                .round_trip(|| "confirming subscriptions after a reconnect".into())
                .await;
        });
        let _ = confirm.await;
    }
    // An error only means that no one is listening.
    let _ = events.send(event);
}

/// The next item of a stream: a subscription's next message, a listing's
/// next entry.
async fn next_item<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

fn lock_offers(offers: &Mutex<Offers<Serving>>) -> MutexGuard<'_, Offers<Serving>> {
    // A panic while holding the lock cannot leave the table half-updated.
    offers.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the offerers of `hash` listen.
fn offer_subject(hash: &BlobHash) -> String {
    format!("{BLOB_BUCKET}.offer.{}", hash.to_hex())
}

/// One message from an offerer.
struct Answer {
    size: usize,
    /// Where it serves directly (in its first answer).
    direct: Option<SocketAddr>,
    payload: Bytes,
}

/// Answers fetches of the offered blob `hash` until the offer goes: each
/// request names a range (offset and length, big-endian u64s) and gets it
/// as a burst of messages; an empty range gets one empty message, which
/// also names the `direct` address, if any.
async fn serve_offer(
    client: Client,
    offers: Arc<Mutex<Offers<Serving>>>,
    hash: BlobHash,
    direct: Option<SocketAddr>,
    mut requests: async_nats::Subscriber,
) {
    while let Some(request) = next_item(&mut requests).await {
        let (Some(reply), Ok(range)) = (request.reply, <[u8; 16]>::try_from(&request.payload[..]))
        else {
            continue;
        };
        let [offset, len] = [&range[..8], &range[8..]]
            .map(|half| u64::from_be_bytes(half.try_into().expect("8 bytes")) as usize);
        let offered = lock_offers(&offers).get(&hash);
        let mut headers = HeaderMap::new();
        let Some(bytes) = offered else {
            headers.insert(OFFER_SIZE_HEADER, "gone");
            let _ = client
                .publish_with_headers(reply, headers, Bytes::new())
                .await;
            continue;
        };
        headers.insert(OFFER_SIZE_HEADER, bytes.len().to_string());
        if let Some(direct) = direct.filter(|_| len == 0) {
            headers.insert(OFFER_DIRECT_HEADER, direct.to_string());
        }
        // Room for the headers under a server's smaller message limit.
        let chunk = OFFER_CHUNK.min(
            client
                .server_info()
                .max_payload
                .saturating_sub(1024)
                .max(1024),
        );
        let end = offset.saturating_add(len).min(bytes.len());
        let mut at = offset.min(end);
        // At least one message, so that an empty range is answered too.
        loop {
            let stop = (at + chunk).min(end);
            let sent = client
                .publish_with_headers(reply.clone(), headers.clone(), bytes.slice(at..stop))
                .await;
            at = stop;
            if sent.is_err() || at >= end {
                break;
            }
        }
    }
}

fn publish_error(subject: &str, error: async_nats::PublishError) -> BusError {
    match error.kind() {
        async_nats::client::PublishErrorKind::InvalidSubject => {
            BusError::InvalidSubject(subject.to_string())
        }
        async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
            BusError::Other(format!("publishing on {subject}: {error}"))
        }
        // The connection task is gone: drained or given up for good.
        async_nats::client::PublishErrorKind::Send => BusError::Closed,
    }
}

fn subscribe_error(subject: &str, error: async_nats::SubscribeError) -> BusError {
    match error.kind() {
        async_nats::client::SubscribeErrorKind::InvalidSubject => {
            BusError::InvalidSubject(subject.to_string())
        }
        _ => BusError::Other(format!("subscribing to {subject}: {error}")),
    }
}

/// A message as the [`Bus`] hands it out.
fn to_message(message: async_nats::Message) -> Message {
    Message {
        subject: message.subject.as_str().to_owned(),
        reply: message.reply.map(|reply| reply.as_str().to_owned()),
        payload: message.payload,
    }
}

/// The stream behind a [`Subscription`] on a [`NatsBus`]. Dropping it
/// unsubscribes (async-nats sends the UNSUB).
struct NatsSubscription {
    subscriber: async_nats::Subscriber,
}

impl Stream for NatsSubscription {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let subscriber = &mut self.get_mut().subscriber;
        loop {
            match Pin::new(&mut *subscriber).poll_next(cx) {
                // Status messages are protocol, not Bus messages: the server
                // answers "no responders" to a hand-made request (a publish
                // with a reply subject) that no one listens to, and the
                // LocalBus delivers nothing then.
                Poll::Ready(Some(message)) if message.status.is_some() => continue,
                Poll::Ready(message) => return Poll::Ready(message.map(to_message)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Reads a blob for the object store's `put`, counting reads: the store
/// reads the next chunk once the previous one is acknowledged, so the count
/// tells a slow upload from a stalled one.
struct CountingReader<'a> {
    rest: &'a [u8],
    reads: &'a AtomicU64,
}

impl AsyncRead for CountingReader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let len = this.rest.len().min(buf.remaining());
        let (now, later) = this.rest.split_at(len);
        buf.put_slice(now);
        this.rest = later;
        this.reads.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

#[async_trait::async_trait]
impl Bus for NatsBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        validate_subject(subject, false)?;
        let inner = &self.inner;
        inner
            .within(inner.client.publish(subject.to_string(), payload), || {
                format!("publishing on {subject}")
            })
            .await?
            .map_err(|error| publish_error(subject, error))
    }

    /// async-nats's connection task, on the runtime, feeds the subscriptions.
    fn delivers_on_runtime(&self) -> bool {
        true
    }

    /// Counted from [`BusEvent::SlowConsumer`] events (see the module docs
    /// for why it is a lower bound).
    fn dropped_messages(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Hands the message to the connection task at once when its command
    /// queue has room (nearly always): the caller's thread skips a wake-up
    /// of a runtime task. `None` when the queue is full (nothing was sent).
    fn publish_now(&self, subject: &str, payload: &Bytes) -> Option<Result<(), BusError>> {
        if let Err(error) = validate_subject(subject, false) {
            return Some(Err(error));
        }
        let publish = self
            .inner
            .client
            .publish(subject.to_string(), payload.clone());
        // The send into async-nats's queue is cancel-safe: when it is not
        // ready, dropping it sends nothing.
        now_or_never(publish).map(|done| done.map_err(|error| publish_error(subject, error)))
    }

    async fn publish_with_reply(
        &self,
        subject: &str,
        reply: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        validate_subject(subject, false)?;
        validate_subject(reply, false)?;
        let inner = &self.inner;
        let publish =
            inner
                .client
                .publish_with_reply(subject.to_string(), reply.to_string(), payload);
        inner
            .within(publish, || format!("publishing on {subject}"))
            .await?
            .map_err(|error| publish_error(subject, error))
    }

    async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        validate_subject(subject, true)?;
        let inner = &self.inner;
        let subscriber = inner
            .within(inner.client.subscribe(subject.to_string()), || {
                format!("subscribing to {subject}")
            })
            .await?
            .map_err(|error| subscribe_error(subject, error))?;
        // On failure `subscriber` drops and unsubscribes.
        inner
            .round_trip(|| format!("registering the subscription to {subject}"))
            .await?;
        Ok(Subscription::new(NatsSubscription { subscriber }))
    }

    async fn queue_subscribe(&self, subject: &str, queue: &str) -> Result<Subscription, BusError> {
        validate_subject(subject, true)?;
        validate_queue(queue)?;
        let inner = &self.inner;
        let subscribe = inner
            .client
            .queue_subscribe(subject.to_string(), queue.to_string());
        let subscriber = inner
            .within(subscribe, || format!("subscribing to {subject} in {queue}"))
            .await?
            .map_err(|error| subscribe_error(subject, error))?;
        inner
            .round_trip(|| format!("registering the subscription to {subject} in {queue}"))
            .await?;
        Ok(Subscription::new(NatsSubscription { subscriber }))
    }

    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message, BusError> {
        validate_subject(subject, false)?;
        let timed_out = || BusError::Timeout {
            subject: subject.to_string(),
            timeout,
        };
        let request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(timeout));
        // The outer timeout also covers queueing the request, which waits
        // while the connection is down and the command queue is full.
        let sent = self.inner.client.send_request(subject.to_string(), request);
        match tokio::time::timeout(timeout, sent).await {
            Err(_elapsed) => Err(timed_out()),
            Ok(Ok(reply)) => Ok(to_message(reply)),
            Ok(Err(error)) => Err(match error.kind() {
                RequestErrorKind::TimedOut => timed_out(),
                RequestErrorKind::NoResponders => BusError::NoResponders(subject.to_string()),
                RequestErrorKind::InvalidSubject => BusError::InvalidSubject(subject.to_string()),
                RequestErrorKind::MaxPayloadExceeded | RequestErrorKind::Other => {
                    BusError::Other(format!("request on {subject}: {error}"))
                }
            }),
        }
    }

    fn new_inbox(&self) -> String {
        self.inner.client.new_inbox()
    }

    async fn flush(&self) -> Result<(), BusError> {
        let inner = &self.inner;
        inner
            .within(inner.client.flush(), || "flushing".to_string())
            .await?
            .map_err(|error| BusError::Other(format!("flushing: {error}")))
    }

    async fn put_blob(&self, bytes: Bytes) -> Result<BlobHash, BusError> {
        let hash = BlobHash::of(&bytes);
        let name = hash.to_hex();
        let inner = &self.inner;
        let store = inner.blob_store().await?;
        let describe = || format!("storing blob {}", hash.short());
        // Content addressing: if it is there, it is these bytes. Storing
        // it again is a use of it; a new blob's use is its stored time.
        if let Ok(Ok(info)) = inner.within(store.info(&name), describe).await
            && !info.deleted
            && info.size == bytes.len()
        {
            self.touch_blob(&hash).await?;
            return Ok(hash);
        }
        let reads = AtomicU64::new(0);
        let mut reader = CountingReader {
            rest: &bytes,
            reads: &reads,
        };
        inner
            .watched(store.put(blob_meta(&name), &mut reader), &reads, describe)
            .await?
            .map_err(|error| BusError::Other(format!("storing blob {}: {error}", hash.short())))?;
        Ok(hash)
    }

    async fn get_blob(&self, hash: &BlobHash) -> Result<Option<Bytes>, BusError> {
        let inner = &self.inner;
        if let Some(bytes) = inner.offers().get(hash) {
            return Ok(Some(bytes));
        }
        // Not hashed again: the offerer hashed these bytes in its memory
        // and TCP carried them (the store's copy is checked below, as bytes
        // at rest can rot). Hashing costs a third of the fetch.
        if let Some(bytes) = inner.fetch_offered(hash).await? {
            return Ok(Some(Bytes::from(bytes)));
        }
        let name = hash.to_hex();
        let store = inner.blob_store().await?;
        let failed = |error: &dyn fmt::Display| {
            BusError::Other(format!("fetching blob {}: {error}", hash.short()))
        };
        let reads = AtomicU64::new(0);
        let fetch = async {
            let mut object = match store.get(&name).await {
                Ok(object) => object,
                Err(error) if error.kind() == jetstream::object_store::GetErrorKind::NotFound => {
                    return Ok(None);
                }
                Err(error) => return Err(failed(&error)),
            };
            let mut bytes = Vec::with_capacity(object.info().size.min(BLOB_PREALLOCATE_LIMIT));
            while object
                .read_buf(&mut bytes)
                .await
                .map_err(|error| failed(&error))?
                > 0
            {
                reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(bytes))
        };
        let Some(bytes) = inner
            .watched(fetch, &reads, || format!("fetching blob {}", hash.short()))
            .await??
        else {
            return Ok(None);
        };
        verified(hash, bytes).map(Some)
    }

    async fn offer_blob(&self, bytes: Bytes) -> Result<BlobHash, BusError> {
        let hash = BlobHash::of(&bytes);
        let inner = &self.inner;
        let _one_at_a_time = inner.offering.lock().await;
        if !inner.offers().add(hash, bytes) {
            return Ok(hash);
        }
        let subject = offer_subject(&hash);
        let listen = async {
            let requests = inner
                .client
                .queue_subscribe(subject.clone(), OFFER_QUEUE.to_string())
                .await
                .map_err(|error| subscribe_error(&subject, error))?;
            inner
                .round_trip(|| format!("offering blob {}", hash.short()))
                .await?;
            Ok(requests)
        };
        let requests = match inner
            .within(listen, || format!("offering blob {}", hash.short()))
            .await
            .and_then(|listening| listening)
        {
            Ok(requests) => requests,
            Err(error) => {
                inner.offers().remove(&hash);
                return Err(error);
            }
        };
        let direct = inner.direct_addr().await;
        let task = tokio::spawn(serve_offer(
            inner.client.clone(),
            Arc::clone(&inner.offers),
            hash,
            direct,
            requests,
        ));
        let mut offers = inner.offers();
        offers.set_serving(&hash, Serving(task));
        // Past the budget, the oldest offers go to the bucket, and are
        // dropped from memory only once they are there.
        for (old, bytes) in offers.over_budget() {
            let bus = self.clone();
            tokio::spawn(async move {
                if bus.put_blob(bytes).await.is_ok() {
                    bus.inner.offers().remove(&old);
                }
            });
        }
        Ok(hash)
    }

    fn release_blob(&self, hash: &BlobHash) {
        // The serving task, if this was the last holder, stops when dropped.
        let serving = self.inner.offers().release(hash);
        drop(serving);
    }

    async fn list_blobs(&self) -> Result<Vec<BlobInfo>, BusError> {
        let inner = &self.inner;
        let store = inner.blob_store().await?;
        let failed = |error: &dyn fmt::Display| BusError::Other(format!("listing blobs: {error}"));
        let listed = AtomicU64::new(0);
        let list = async {
            // Deleted objects (tombstones) are left out by async-nats.
            let mut objects = store.list().await.map_err(|error| failed(&error))?;
            let mut blobs = Vec::new();
            while let Some(object) = next_item(&mut objects).await {
                let object = object.map_err(|error| failed(&error))?;
                listed.fetch_add(1, Ordering::Relaxed);
                // An object not named as `put_blob` names it is not a blob.
                let Some(hash) = blob_named(&object.name) else {
                    continue;
                };
                // async-nats always sets the time; an object stored without
                // one is taken to be as old as can be.
                let stored = object.modified.map_or(Timestamp(0), |time| {
                    Timestamp(u64::try_from(time.unix_timestamp_nanos() / 1000).unwrap_or(0))
                });
                blobs.push(BlobInfo {
                    hash,
                    size: object.size as u64,
                    stored,
                });
            }
            Ok(blobs)
        };
        inner
            .watched(list, &listed, || "listing blobs".to_string())
            .await?
    }

    async fn delete_blob(&self, hash: &BlobHash) -> Result<bool, BusError> {
        use jetstream::object_store::{DeleteErrorKind, InfoErrorKind};
        let inner = &self.inner;
        let name = hash.to_hex();
        let store = inner.blob_store().await?;
        let describe = || format!("deleting blob {}", hash.short());
        let failed = |error: &dyn fmt::Display| BusError::Other(format!("{}: {error}", describe()));
        let stored = match inner.within(store.info(&name), describe).await? {
            Ok(info) => !info.deleted,
            Err(error) if error.kind() == InfoErrorKind::NotFound => false,
            Err(error) => return Err(failed(&error)),
        };
        if stored {
            match inner.within(store.delete(&name), describe).await? {
                Ok(()) => {}
                // Deleted meanwhile, by another collector.
                Err(error) if error.kind() == DeleteErrorKind::NotFound => {}
                Err(error) => return Err(failed(&error)),
            }
        }
        inner.forget_use(hash).await?;
        Ok(stored)
    }

    async fn touch_blob(&self, hash: &BlobHash) -> Result<(), BusError> {
        let inner = &self.inner;
        let store = inner.use_store().await?;
        let now = Timestamp::now().as_micros().to_string();
        let describe = || format!("recording a use of blob {}", hash.short());
        inner
            .within(store.put(hash.to_hex(), Bytes::from(now)), describe)
            .await?
            .map(|_revision| ())
            .map_err(|error| BusError::Other(format!("{}: {error}", describe())))
    }

    async fn blob_uses(&self) -> Result<HashMap<BlobHash, Timestamp>, BusError> {
        let inner = &self.inner;
        let store = inner.use_store().await?;
        let failed =
            |error: &dyn fmt::Display| BusError::Other(format!("reading blob uses: {error}"));
        let progress = AtomicU64::new(0);
        let read = async {
            let mut keys = store.keys().await.map_err(|error| failed(&error))?;
            let mut hashes = Vec::new();
            while let Some(key) = next_item(&mut keys).await {
                let key = key.map_err(|error| failed(&error))?;
                progress.fetch_add(1, Ordering::Relaxed);
                hashes.extend(blob_named(&key));
            }
            // A request per record, several at a time.
            let mut uses = HashMap::with_capacity(hashes.len());
            let mut reads = tokio::task::JoinSet::new();
            let mut hashes = hashes.into_iter();
            loop {
                while reads.len() < USES_IN_FLIGHT
                    && let Some(hash) = hashes.next()
                {
                    let store = store.clone();
                    reads.spawn(async move { (hash, store.get(hash.to_hex()).await) });
                }
                let Some(read) = reads.join_next().await else {
                    break;
                };
                progress.fetch_add(1, Ordering::Relaxed);
                let (hash, value) = read.map_err(|error| failed(&error))?;
                // `None`: forgotten since the keys were listed. A value
                // that is not a time is no use record.
                let used = value
                    .map_err(|error| failed(&error))?
                    .and_then(|value: Bytes| std::str::from_utf8(&value).ok()?.parse::<u64>().ok());
                if let Some(micros) = used {
                    uses.insert(hash, Timestamp(micros));
                }
            }
            Ok(uses)
        };
        inner
            .watched(read, &progress, || "reading blob uses".to_string())
            .await?
    }
}

/// The blob that `put_blob` names `name` (its lowercase hex sha256).
fn blob_named(name: &str) -> Option<BlobHash> {
    name.parse::<BlobHash>()
        .ok()
        .filter(|hash| hash.to_hex() == name)
}

/// `bytes`, if they hash to `hash`.
fn verified(hash: &BlobHash, bytes: Vec<u8>) -> Result<Bytes, BusError> {
    let actual = BlobHash::of(&bytes);
    if actual != *hash {
        return Err(BusError::BlobMismatch {
            expected: *hash,
            actual,
        });
    }
    Ok(Bytes::from(bytes))
}

impl fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBus")
            .field("url", &self.inner.url)
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// Chunks as large as a message allows: the object store waits for each
/// chunk's acknowledgement before sending the next, so fewer, larger chunks
/// move a big blob several times faster than the default 128 KiB.
const BLOB_CHUNK: usize = 960 * 1024;

/// The object metadata of a blob named `name`.
fn blob_meta(name: &str) -> jetstream::object_store::ObjectMetadata {
    jetstream::object_store::ObjectMetadata {
        name: name.to_string(),
        chunk_size: Some(BLOB_CHUNK),
        ..Default::default()
    }
}
