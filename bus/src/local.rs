//! [`LocalBus`]: the [`Bus`] inside one process, with NATS's semantics.
//!
//! A local cluster (controller, engines and client in one program) talks over
//! this bus exactly as a distributed one talks over NATS: same subjects, same
//! wildcards, same queue groups, same request-reply, so the rest of Grid
//! cannot tell the difference. It exists so that `grid` works with no server
//! at all, and fast: a publish is one hash lookup under a read lock and a
//! channel send per recipient. It must never block a thread for longer than a
//! short table lock, and never hold a lock across an `.await`.
//!
//! How it works. Subscriptions live in a table behind an `RwLock`: literal
//! subjects in a hash map, wildcard patterns in a list. For each concrete
//! subject published, the table caches a [`Route`] (the matching plain
//! subscribers, and the members of each matching queue group), so a publish
//! usually takes the read lock for one lookup, clones an `Arc` and sends
//! outside the lock. Adding or removing a subscription drops only the cached
//! routes its pattern matches (one map removal for a literal pattern).
//!
//! Each subscription is an unbounded tokio channel: a publisher never waits
//! and a message is never lost. The price is memory: a subscriber that falls
//! behind holds its whole backlog, without bound (NATS would instead cut off
//! such a slow consumer). Grid's subscribers are its own components, so a
//! growing backlog is a bug to fix there, not a load to shed here.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use grid_proto::{BlobHash, Timestamp};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender, error::SendError};

use crate::offer::{OFFER_BUDGET, Offers};
use crate::subject::validate_queue;
use crate::{
    BlobInfo, Bus, BusError, MemoryBlobStore, Message, Pattern, Subscription, validate_subject,
};

/// Hash maps on the publish path: subjects are short strings that our own
/// components choose, so a fast non-cryptographic hasher is enough.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// At most this many cached routes. Routes are dropped when their subscribers
/// go, so this bound only matters for publishes on ever-new subjects that no one
/// listens to; beyond it, about half of the cache is forgotten at once.
const ROUTE_CACHE_LIMIT: usize = 4096;

/// The in-process bus. Clones share one bus; when the last clone is dropped,
/// every subscription ends (its `next` returns `None`).
#[derive(Clone)]
pub struct LocalBus {
    shared: Arc<Shared>,
}

/// What all clones of a bus share.
struct Shared {
    table: RwLock<Table>,
    blobs: MemoryBlobStore,
    /// Offered blobs: in process, an offer is a blob that goes away when
    /// released (or into `blobs` past the budget).
    offers: Mutex<Offers<()>>,
}

impl Shared {
    fn offers(&self) -> MutexGuard<'_, Offers<()>> {
        self.offers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // A poisoned lock only means that a thread panicked while holding it. No
    // code path leaves the table half-updated across a panic point that
    // matters (each update is a map/vec operation), so we carry on.
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Identifies one subscription in the table, for removal.
type SubscriberId = u64;

/// One subscription, as the table knows it.
struct Subscriber {
    id: SubscriberId,
    pattern: Pattern,
    queue: Option<Arc<str>>,
    sender: UnboundedSender<Message>,
}

/// The subscription table and its route cache.
#[derive(Default)]
struct Table {
    next_id: SubscriberId,
    /// Subscriptions without wildcards, by subject.
    literal: FastMap<Box<str>, Vec<Subscriber>>,
    /// Subscriptions with `*` or `>`; few in Grid (the controller's `result.>`
    /// and the like), so a scan on a cache miss is cheap.
    wildcard: Vec<Subscriber>,
    /// Concrete subject -> who receives it. Only valid subjects are inserted.
    routes: FastMap<Box<str>, Arc<Route>>,
}

/// Who receives a message published on one concrete subject.
#[derive(Default)]
struct Route {
    plain: Box<[UnboundedSender<Message>]>,
    groups: Box<[QueueGroup]>,
}

/// The members of one queue group that match a subject; each message goes to
/// one of them, in turn.
struct QueueGroup {
    members: Box<[UnboundedSender<Message>]>,
    /// Round-robin position. NATS picks at random; turns spread the load as
    /// evenly and cost one atomic increment. It restarts at 0 when the route
    /// is rebuilt (a matching subscription came or went).
    next: AtomicUsize,
}

impl Table {
    fn add(
        &mut self,
        pattern: Pattern,
        queue: Option<Arc<str>>,
        sender: UnboundedSender<Message>,
    ) -> SubscriberId {
        self.forget_routes(&pattern);
        let id = self.next_id;
        self.next_id += 1;
        let literal = pattern
            .is_literal()
            .then(|| Box::<str>::from(pattern.as_str()));
        let subscriber = Subscriber {
            id,
            pattern,
            queue,
            sender,
        };
        match literal {
            Some(subject) => self.literal.entry(subject).or_default().push(subscriber),
            None => self.wildcard.push(subscriber),
        }
        id
    }

    fn remove(&mut self, id: SubscriberId, pattern: &Pattern) {
        self.forget_routes(pattern);
        if pattern.is_literal() {
            if let Some(subscribers) = self.literal.get_mut(pattern.as_str()) {
                subscribers.retain(|s| s.id != id);
                if subscribers.is_empty() {
                    self.literal.remove(pattern.as_str());
                }
            }
        } else {
            self.wildcard.retain(|s| s.id != id);
        }
    }

    /// Drops the cached routes that a subscription on `pattern` is part of.
    fn forget_routes(&mut self, pattern: &Pattern) {
        if pattern.is_literal() {
            self.routes.remove(pattern.as_str());
        } else {
            self.routes.retain(|subject, _| !pattern.matches(subject));
        }
    }

    /// Works out who receives `subject` (concrete, valid).
    fn build_route(&self, subject: &str) -> Route {
        let exact = self.literal.get(subject).into_iter().flatten();
        let matching = self.wildcard.iter().filter(|s| s.pattern.matches(subject));
        let mut plain = Vec::new();
        // Few groups per subject: a list beats a map here.
        let mut groups: Vec<(&str, Vec<UnboundedSender<Message>>)> = Vec::new();
        for subscriber in exact.chain(matching) {
            let sender = subscriber.sender.clone();
            match subscriber.queue.as_deref() {
                None => plain.push(sender),
                Some(queue) => match groups.iter_mut().find(|(name, _)| *name == queue) {
                    Some((_, members)) => members.push(sender),
                    None => groups.push((queue, vec![sender])),
                },
            }
        }
        Route {
            plain: plain.into_boxed_slice(),
            groups: groups
                .into_iter()
                .map(|(_, members)| QueueGroup {
                    members: members.into_boxed_slice(),
                    next: AtomicUsize::new(0),
                })
                .collect(),
        }
    }

    fn cache_route(&mut self, subject: &str, route: Arc<Route>) {
        if self.routes.len() >= ROUTE_CACHE_LIMIT {
            let mut keep = false;
            self.routes.retain(|_, _| {
                keep = !keep;
                keep
            });
        }
        self.routes.insert(subject.into(), route);
    }

    fn subscription_count(&self) -> usize {
        self.literal.values().map(Vec::len).sum::<usize>() + self.wildcard.len()
    }
}

impl Route {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }

    /// Hands `message` to every plain subscriber and to one member of each
    /// group; returns how many subscriptions took it. The last recipient gets
    /// the message itself, the others a copy.
    fn deliver(&self, message: Message) -> usize {
        let mut remaining = self.plain.len() + self.groups.len();
        let mut message = Some(message);
        let mut delivered = 0;
        for sender in self.plain.iter() {
            remaining -= 1;
            let Some(copy) = copy_for_recipient(&mut message, remaining == 0) else {
                break;
            };
            // Failure: the subscription is being dropped and will be removed.
            if sender.send(copy).is_ok() {
                delivered += 1;
            }
        }
        for group in self.groups.iter() {
            remaining -= 1;
            let Some(copy) = copy_for_recipient(&mut message, remaining == 0) else {
                break;
            };
            if group.deliver(copy) {
                delivered += 1;
            }
        }
        delivered
    }
}

fn copy_for_recipient(message: &mut Option<Message>, last: bool) -> Option<Message> {
    if last {
        message.take()
    } else {
        message.clone()
    }
}

impl QueueGroup {
    /// Gives `message` to the member whose turn it is, or, if that one is
    /// being dropped, to the next live one.
    fn deliver(&self, mut message: Message) -> bool {
        let len = self.members.len();
        if len == 0 {
            return false;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
        for offset in 0..len {
            match self.members[(start + offset) % len].send(message) {
                Ok(()) => return true,
                Err(SendError(back)) => message = back,
            }
        }
        false
    }
}

impl LocalBus {
    /// A new, empty bus.
    pub fn new() -> LocalBus {
        LocalBus {
            shared: Arc::new(Shared {
                table: RwLock::new(Table::default()),
                blobs: MemoryBlobStore::new(),
                offers: Mutex::new(Offers::new(OFFER_BUDGET)),
            }),
        }
    }

    /// The bus's blob store (the one behind every blob call of the [`Bus`]).
    pub fn blob_store(&self) -> &MemoryBlobStore {
        &self.shared.blobs
    }

    /// Who receives `subject`: from the cache, or worked out and cached.
    /// Validates `subject` (no wildcards) when it is not cached yet.
    fn route(&self, subject: &str) -> Result<Arc<Route>, BusError> {
        {
            let table = self.shared.read();
            if let Some(route) = table.routes.get(subject) {
                return Ok(Arc::clone(route));
            }
        }
        validate_subject(subject, false)?;
        let mut table = self.shared.write();
        // Another publisher may have built it while we waited for the lock.
        if let Some(route) = table.routes.get(subject) {
            return Ok(Arc::clone(route));
        }
        let route = Arc::new(table.build_route(subject));
        table.cache_route(subject, Arc::clone(&route));
        Ok(route)
    }

    fn publish_message(
        &self,
        subject: &str,
        reply: Option<&str>,
        payload: Bytes,
    ) -> Result<(), BusError> {
        if let Some(reply) = reply {
            validate_subject(reply, false)?;
        }
        let route = self.route(subject)?;
        if !route.is_empty() {
            route.deliver(Message {
                subject: subject.to_string(),
                reply: reply.map(str::to_string),
                payload,
            });
        }
        Ok(())
    }

    fn register(&self, subject: &str, queue: Option<&str>) -> Result<LocalSubscription, BusError> {
        let pattern = Pattern::parse(subject)?;
        let queue = match queue {
            Some(queue) => {
                validate_queue(queue)?;
                Some(Arc::from(queue))
            }
            None => None,
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let id = self.shared.write().add(pattern.clone(), queue, sender);
        Ok(LocalSubscription {
            _registration: Registration {
                bus: Arc::downgrade(&self.shared),
                id,
                pattern,
            },
            receiver,
        })
    }

    /// (subscriptions, cached routes): for tests that check nothing leaks.
    #[cfg(test)]
    fn registry_size(&self) -> (usize, usize) {
        let table = self.shared.read();
        (table.subscription_count(), table.routes.len())
    }
}

impl Default for LocalBus {
    fn default() -> LocalBus {
        LocalBus::new()
    }
}

impl fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.shared.read();
        f.debug_struct("LocalBus")
            .field("subscriptions", &table.subscription_count())
            .field("cached_routes", &table.routes.len())
            .field("offered_blobs", &self.shared.offers().len())
            .field("blobs", &self.shared.blobs.len())
            .finish()
    }
}

/// The stream behind a [`Subscription`] on a [`LocalBus`].
struct LocalSubscription {
    // Declared first so it is dropped first: the subscription leaves the table
    // before its channel closes, so publishers rarely meet a closed channel.
    _registration: Registration,
    receiver: UnboundedReceiver<Message>,
}

/// Removes a subscription from the table when dropped.
struct Registration {
    /// Weak, so that dropping every `LocalBus` closes the subscriptions.
    bus: Weak<Shared>,
    id: SubscriberId,
    pattern: Pattern,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(shared) = self.bus.upgrade() {
            shared.write().remove(self.id, &self.pattern);
        }
    }
}

impl Stream for LocalSubscription {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.get_mut().receiver.poll_recv(cx)
    }
}

#[async_trait::async_trait]
impl Bus for LocalBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        self.publish_message(subject, None, payload)
    }

    fn publish_now(&self, subject: &str, payload: &Bytes) -> Option<Result<(), BusError>> {
        Some(self.publish_message(subject, None, payload.clone()))
    }

    async fn publish_with_reply(
        &self,
        subject: &str,
        reply: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        self.publish_message(subject, Some(reply), payload)
    }

    async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        Ok(Subscription::new(self.register(subject, None)?))
    }

    async fn queue_subscribe(&self, subject: &str, queue: &str) -> Result<Subscription, BusError> {
        Ok(Subscription::new(self.register(subject, Some(queue))?))
    }

    /// Needs a tokio runtime with the time driver enabled (for the timeout).
    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message, BusError> {
        // Listen before asking, so that no reply can come too early.
        let inbox = self.new_inbox();
        let mut replies = self.register(&inbox, None)?;
        let route = self.route(subject)?;
        let delivered = route.deliver(Message {
            subject: subject.to_string(),
            reply: Some(inbox),
            payload,
        });
        if delivered == 0 {
            return Err(BusError::NoResponders(subject.to_string()));
        }
        match tokio::time::timeout(timeout, replies.receiver.recv()).await {
            Ok(Some(reply)) => Ok(reply),
            // The table, which holds the sender, outlives `self`: unreachable
            // in practice, but a closed channel means a closed bus.
            Ok(None) => Err(BusError::Closed),
            Err(_elapsed) => Err(BusError::Timeout {
                subject: subject.to_string(),
                timeout,
            }),
        }
        // `replies` drops here and unsubscribes the inbox.
    }

    fn new_inbox(&self) -> String {
        format!("_INBOX.{}", uuid::Uuid::new_v4().simple())
    }

    async fn flush(&self) -> Result<(), BusError> {
        // Publishing hands messages to subscribers' channels before returning:
        // nothing is ever pending in this process.
        Ok(())
    }

    async fn put_blob(&self, bytes: Bytes) -> Result<BlobHash, BusError> {
        Ok(self.shared.blobs.put(bytes))
    }

    async fn get_blob(&self, hash: &BlobHash) -> Result<Option<Bytes>, BusError> {
        // Content was hashed on the way in and cannot change in memory.
        let offered = self.shared.offers().get(hash);
        Ok(offered.or_else(|| self.shared.blobs.get(hash)))
    }

    async fn offer_blob(&self, bytes: Bytes) -> Result<BlobHash, BusError> {
        let hash = BlobHash::of(&bytes);
        let mut offers = self.shared.offers();
        offers.add(hash, bytes);
        for (old, bytes) in offers.over_budget() {
            self.shared.blobs.put(bytes);
            offers.remove(&old);
        }
        Ok(hash)
    }

    fn release_blob(&self, hash: &BlobHash) {
        self.shared.offers().release(hash);
    }

    async fn list_blobs(&self) -> Result<Vec<BlobInfo>, BusError> {
        Ok(self.shared.blobs.list())
    }

    async fn delete_blob(&self, hash: &BlobHash) -> Result<bool, BusError> {
        Ok(self.shared.blobs.delete(hash))
    }

    async fn touch_blob(&self, hash: &BlobHash) -> Result<(), BusError> {
        self.shared.blobs.touch(hash);
        Ok(())
    }

    async fn blob_uses(&self) -> Result<HashMap<BlobHash, Timestamp>, BusError> {
        Ok(self.shared.blobs.uses())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::future::Future;

    use super::*;

    /// Generous: only reached when a test is failing.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// The next message, failing the test if none comes within `PATIENCE`.
    async fn next(subscription: &mut Subscription) -> Message {
        match tokio::time::timeout(PATIENCE, subscription.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => panic!("subscription closed"),
            Err(_) => panic!("no message within {PATIENCE:?}"),
        }
    }

    /// A message already delivered, without waiting: publishing hands messages
    /// over synchronously, so after `publish` returns they are there or not.
    /// Unconstrained, or tokio's cooperative budget would answer "not yet"
    /// after 128 polls in one task.
    async fn delivered(subscription: &mut Subscription) -> Option<Message> {
        let poll_once =
            std::future::poll_fn(|cx| match Pin::new(&mut *subscription).poll_next(cx) {
                Poll::Ready(message) => Poll::Ready(message),
                Poll::Pending => Poll::Ready(None),
            });
        tokio::task::unconstrained(poll_once).await
    }

    fn payload(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    fn index_of(message: &Message) -> usize {
        let text = std::str::from_utf8(&message.payload).unwrap();
        text.parse().unwrap()
    }

    async fn with_patience<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(PATIENCE, future)
            .await
            .expect("not done within the patience timeout")
    }

    #[tokio::test]
    async fn every_matching_plain_subscriber_gets_each_message() {
        let bus = LocalBus::new();
        let mut exact = bus.subscribe("grid.default.events").await.unwrap();
        let mut one = bus.subscribe("grid.default.*").await.unwrap();
        let mut rest = bus.subscribe("grid.>").await.unwrap();
        let mut other = bus.subscribe("grid.other.>").await.unwrap();

        bus.publish("grid.default.events", payload("up"))
            .await
            .unwrap();
        bus.publish("grid.other.events", payload("elsewhere"))
            .await
            .unwrap();

        for subscription in [&mut exact, &mut one, &mut rest] {
            let message = next(subscription).await;
            assert_eq!(message.subject, "grid.default.events");
            assert_eq!(message.payload, payload("up"));
            assert_eq!(message.reply, None);
        }
        // The first thing `other` sees is the message meant for it.
        assert_eq!(next(&mut other).await.payload, payload("elsewhere"));
        assert_eq!(next(&mut rest).await.payload, payload("elsewhere"));
        assert!(delivered(&mut exact).await.is_none());
        assert!(delivered(&mut one).await.is_none());
    }

    #[tokio::test]
    async fn publishing_to_no_one_is_not_an_error() {
        let bus = LocalBus::new();
        bus.publish("nobody.listens", payload("x")).await.unwrap();
        bus.flush().await.unwrap();
    }

    #[tokio::test]
    async fn invalid_subjects_are_refused() {
        let bus = LocalBus::new();
        for subject in ["", "a..b", "a b", "a.>.b"] {
            let invalid = Err(BusError::InvalidSubject(subject.to_string()));
            assert_eq!(bus.publish(subject, Bytes::new()).await, invalid);
            assert_eq!(bus.subscribe(subject).await.err(), invalid.clone().err());
        }
        // Wildcards: fine to subscribe, not to publish.
        assert!(bus.subscribe("a.*").await.is_ok());
        assert_eq!(
            bus.publish("a.*", Bytes::new()).await,
            Err(BusError::InvalidSubject("a.*".into()))
        );
        assert_eq!(
            bus.publish_with_reply("a.b", "reply.>", Bytes::new()).await,
            Err(BusError::InvalidSubject("reply.>".into()))
        );
        assert!(bus.queue_subscribe("a.b", "").await.is_err());
        assert!(bus.queue_subscribe("a.b", "two words").await.is_err());
        assert_eq!(
            bus.request("a.>", Bytes::new(), PATIENCE).await,
            Err(BusError::InvalidSubject("a.>".into()))
        );
    }

    #[tokio::test]
    async fn queue_group_members_share_messages_and_plain_subscribers_get_all() {
        let bus = LocalBus::new();
        let mut workers = Vec::new();
        for _ in 0..3 {
            workers.push(bus.queue_subscribe("jobs.>", "workers").await.unwrap());
        }
        // A member with another pattern is in the same group (groups are
        // keyed by name).
        workers.push(bus.queue_subscribe("jobs.*", "workers").await.unwrap());
        let mut auditor = bus.queue_subscribe("jobs.run", "auditors").await.unwrap();
        let mut watcher = bus.subscribe("jobs.run").await.unwrap();

        const COUNT: usize = 1000;
        for i in 0..COUNT {
            bus.publish("jobs.run", payload(&i.to_string()))
                .await
                .unwrap();
        }

        let mut seen = HashSet::new();
        for worker in &mut workers {
            let mut got = 0;
            while let Some(message) = delivered(worker).await {
                assert!(seen.insert(index_of(&message)), "delivered twice");
                got += 1;
            }
            assert!(got > 0, "a worker got nothing");
        }
        assert_eq!(seen.len(), COUNT, "each message to exactly one worker");

        for i in 0..COUNT {
            assert_eq!(delivered(&mut auditor).await.map(|m| index_of(&m)), Some(i));
            assert_eq!(delivered(&mut watcher).await.map(|m| index_of(&m)), Some(i));
        }
        assert!(delivered(&mut auditor).await.is_none());
        assert!(delivered(&mut watcher).await.is_none());
    }

    #[tokio::test]
    async fn queue_group_survives_losing_members() {
        let bus = LocalBus::new();
        let gone = bus.queue_subscribe("jobs.run", "workers").await.unwrap();
        let mut stays = bus.queue_subscribe("jobs.run", "workers").await.unwrap();
        drop(gone);
        for i in 0..10 {
            bus.publish("jobs.run", payload(&i.to_string()))
                .await
                .unwrap();
        }
        for i in 0..10 {
            assert_eq!(index_of(&next(&mut stays).await), i);
        }
    }

    #[tokio::test]
    async fn request_gets_the_first_reply() {
        let bus = LocalBus::new();
        let mut service = bus.subscribe("svc.echo").await.unwrap();
        let responder = {
            let bus = bus.clone();
            tokio::spawn(async move {
                let request = next(&mut service).await;
                let reply = request.reply.expect("a request has a reply subject");
                bus.publish(&reply, request.payload).await.unwrap();
                // A second reply is ignored (and must not fail).
                bus.publish(&reply, payload("late")).await.unwrap();
            })
        };
        let reply = bus
            .request("svc.echo", payload("ping"), PATIENCE)
            .await
            .unwrap();
        assert_eq!(reply.payload, payload("ping"));
        assert!(reply.subject.starts_with("_INBOX."));
        with_patience(responder).await.unwrap();
        // The inbox is gone; only the service subscription was left, and it
        // went with the responder task.
        assert_eq!(bus.registry_size().0, 0);
    }

    #[tokio::test]
    async fn request_without_subscribers_fails_at_once() {
        let bus = LocalBus::new();
        // A subscriber elsewhere does not count.
        let _elsewhere = bus.subscribe("svc.other").await.unwrap();
        assert_eq!(
            bus.request("svc.none", payload("ping"), PATIENCE).await,
            Err(BusError::NoResponders("svc.none".into()))
        );
        assert_eq!(bus.registry_size().0, 1, "the inbox was removed");
    }

    #[tokio::test]
    async fn request_times_out_without_reply() {
        let bus = LocalBus::new();
        let mut silent = bus.subscribe("svc.silent").await.unwrap();
        let timeout = Duration::from_millis(20);
        assert_eq!(
            bus.request("svc.silent", payload("ping"), timeout).await,
            Err(BusError::Timeout {
                subject: "svc.silent".into(),
                timeout
            })
        );
        // The request did arrive; its inbox is gone.
        let request = next(&mut silent).await;
        assert!(request.reply.is_some());
        assert_eq!(bus.registry_size().0, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_arrive_in_publish_order() {
        const COUNT: usize = 10_000;
        let bus = LocalBus::new();
        let mut subscription = bus.subscribe("ordered.>").await.unwrap();
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move {
                for i in 0..COUNT {
                    bus.publish("ordered.x", payload(&i.to_string()))
                        .await
                        .unwrap();
                }
            })
        };
        for i in 0..COUNT {
            assert_eq!(index_of(&next(&mut subscription).await), i);
        }
        with_patience(publisher).await.unwrap();
    }

    #[tokio::test]
    async fn dropped_subscriptions_stop_receiving_and_leave_no_trace() {
        let bus = LocalBus::new();
        let mut stays = bus.subscribe("churn.>").await.unwrap();
        for i in 0..10_000 {
            let subscription = match i % 3 {
                0 => bus.subscribe("churn.a").await.unwrap(),
                1 => bus.subscribe("churn.*").await.unwrap(),
                _ => bus.queue_subscribe("churn.a", "q").await.unwrap(),
            };
            bus.publish("churn.a", Bytes::new()).await.unwrap();
            drop(subscription);
        }
        assert_eq!(bus.registry_size().0, 1, "only `stays` is left");
        let mut received = 0;
        while delivered(&mut stays).await.is_some() {
            received += 1;
        }
        assert_eq!(received, 10_000);
        drop(stays);
        assert_eq!(bus.registry_size(), (0, 0));

        // Publishing after the drop reaches no one and is fine.
        bus.publish("churn.a", Bytes::new()).await.unwrap();
        let (subscriptions, routes) = bus.registry_size();
        assert_eq!(subscriptions, 0);
        assert!(routes <= 1);
    }

    #[tokio::test]
    async fn a_dropped_subscription_gets_nothing_more() {
        let bus = LocalBus::new();
        let mut first = bus.subscribe("a.b").await.unwrap();
        let mut second = bus.subscribe("a.b").await.unwrap();
        bus.publish("a.b", payload("0")).await.unwrap();
        assert_eq!(index_of(&next(&mut first).await), 0);
        drop(first);
        bus.publish("a.b", payload("1")).await.unwrap();
        assert_eq!(index_of(&next(&mut second).await), 0);
        assert_eq!(index_of(&next(&mut second).await), 1);
        assert_eq!(bus.registry_size().0, 1);
    }

    #[tokio::test]
    async fn route_cache_stays_bounded() {
        let bus = LocalBus::new();
        for i in 0..(3 * ROUTE_CACHE_LIMIT) {
            bus.publish(&format!("nobody.{i}"), Bytes::new())
                .await
                .unwrap();
        }
        assert!(bus.registry_size().1 <= ROUTE_CACHE_LIMIT);
    }

    #[tokio::test]
    async fn subscriptions_end_when_the_bus_is_dropped() {
        let bus = LocalBus::new();
        let mut subscription = bus.subscribe("a.>").await.unwrap();
        bus.publish("a.b", payload("0")).await.unwrap();
        drop(bus);
        // What was delivered is still there; then the stream ends.
        assert!(subscription.next().await.is_some());
        assert!(with_patience(subscription.next()).await.is_none());
    }

    #[tokio::test]
    async fn blobs_go_through_the_bus_store() {
        let bus = LocalBus::new();
        let module = Bytes::from_static(b"\0asm\x01\0\0\0");
        let hash = bus.put_blob(module.clone()).await.unwrap();
        assert_eq!(hash, BlobHash::of(&module));
        assert_eq!(bus.put_blob(module.clone()).await.unwrap(), hash);
        assert_eq!(bus.blob_store().len(), 1);
        // Clones share the store.
        assert_eq!(bus.clone().get_blob(&hash).await.unwrap(), Some(module));
        assert_eq!(bus.get_blob(&BlobHash::of(b"none")).await.unwrap(), None);
    }

    #[test]
    fn works_on_a_current_thread_runtime_with_a_spawned_responder() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let bus = LocalBus::new();
            let mut service = bus.queue_subscribe("svc.add", "adders").await.unwrap();
            let responder_bus = bus.clone();
            tokio::spawn(async move {
                while let Some(request) = service.next().await {
                    if let Some(reply) = request.reply {
                        responder_bus
                            .publish(&reply, request.payload)
                            .await
                            .unwrap();
                    }
                }
            });
            for i in 0..100 {
                let reply = bus
                    .request("svc.add", payload(&i.to_string()), PATIENCE)
                    .await
                    .unwrap();
                assert_eq!(index_of(&reply), i);
            }
        });
    }

    #[test]
    fn inboxes_are_unique() {
        let bus = LocalBus::new();
        let a = bus.new_inbox();
        let b = bus.new_inbox();
        assert_ne!(a, b);
        assert!(a.starts_with("_INBOX."));
        assert!(validate_subject(&a, false).is_ok());
    }
}
