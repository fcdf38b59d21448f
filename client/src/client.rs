//! The client: a connection to one cluster through a bus.
//!
//! It owns the subscription to `result.<client>` and a dispatcher that files
//! each reply into the [`ResultSet`] waiting for it: a task on the runtime
//! when the bus reads replies there (NATS), else a thread of its own that
//! spins briefly before parking (see [`grid_bus::spawn_consumer`]).
//! Submitting never blocks and works from sync and async code alike: when
//! the bus can publish at once the calling thread publishes, else an outbox
//! task does, in order. Hub queries are request-reply to the
//! controller; each has an async form and a blocking form. A client made by a
//! blocking constructor owns its tokio runtime (and, for a local cluster, the
//! cluster itself), which stop when the last clone of the client drops.

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use grid_bus::{Bus, SPILL_THRESHOLD, load_body, spawn_consumer, spill_body};
use grid_proto::{
    BlobHash, ClientId, EngineId, EngineInfo, HubReply, HubRequest, ModuleHash, MsgId, Outcome,
    QueueStatus, Reply, Subjects, Submission, TaskError, TaskResult,
};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::module::{self, Module};
use crate::result::{ResultSet, TaskInfo};
use crate::view::{DirectView, LoadBalancedView};

/// A submission on its way out.
enum Outgoing {
    /// Encoded, ready to publish.
    Ready(String, Bytes),
    /// Its work must be offered as a blob first.
    Spill(String, Box<Submission>),
}

/// Offers `sub`'s large work as a blob, notes the blob in its pending entry
/// (released when the reply comes: the engine has read it by then), then
/// publishes the submission.
async fn spill_and_publish(
    bus: &dyn Bus,
    pending: &Pending,
    subject: &str,
    mut sub: Submission,
) -> Result<(), grid_bus::BusError> {
    sub.work = spill_body(bus, sub.work, SPILL_THRESHOLD).await?;
    if let Some(hash) = sub.work.blob() {
        match lock(pending).get_mut(&sub.msg_id) {
            Some(waiting) => waiting.offered = Some(hash),
            // Failed meanwhile (the connection was lost): nothing will come.
            None => {
                bus.release_blob(&hash);
                return Ok(());
            }
        }
    }
    let bytes = grid_proto::encode(&sub).map_err(|e| grid_bus::BusError::Other(e.to_string()))?;
    bus.publish(subject, Bytes::from(bytes)).await
}

/// How long hub queries wait for the controller.
const HUB_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a cluster. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// A client reference that does not keep it alive (for background tasks).
pub(crate) struct WeakClient(std::sync::Weak<Inner>);

impl WeakClient {
    pub(crate) fn upgrade(&self) -> Option<Client> {
        self.0.upgrade().map(|inner| Client { inner })
    }
}

/// The tasks waiting for their replies, by message id.
type Pending = Mutex<HashMap<MsgId, Waiting>>;

/// A task waiting for its reply.
struct Waiting {
    set: Arc<ResultSet>,
    index: usize,
    /// Its work, offered as a blob by this client until the reply comes.
    offered: Option<grid_proto::BlobHash>,
}

impl Waiting {
    /// Done waiting (answered or failed): its work need not be offered.
    fn finish(self, bus: &dyn Bus) -> (Arc<ResultSet>, usize) {
        if let Some(hash) = self.offered {
            bus.release_blob(&hash);
        }
        (self.set, self.index)
    }
}

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, HashMap<MsgId, Waiting>> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Inner {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) subjects: Subjects,
    pub(crate) id: ClientId,
    pending: Arc<Pending>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Messages in the outbox not yet published.
    queued: Arc<AtomicUsize>,
    /// Dropped with the client, which stops the results dispatcher.
    _stop_dispatch: tokio::sync::oneshot::Sender<()>,
    handle: tokio::runtime::Handle,
    /// Things to keep alive with the client (a local cluster), dropped before the runtime.
    keep: Mutex<Vec<Box<dyn Any + Send>>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.keep
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        if let Some(rt) = self
            .runtime
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            rt.shutdown_background();
        }
    }
}

impl Client {
    /// Connects through `bus` to the cluster whose subjects are `subjects`.
    /// Must be called inside a tokio runtime, which the client then uses.
    pub async fn connect_bus(bus: Arc<dyn Bus>, subjects: Subjects) -> Result<Client, Error> {
        Self::start(bus, subjects).await
    }

    /// Keeps `runtime` (and then `keep`, e.g. a local cluster) alive as long
    /// as the client; they stop when its last clone drops.
    pub(crate) fn own(&self, runtime: tokio::runtime::Runtime, keep: Box<dyn Any + Send>) {
        self.keep(keep);
        *self.inner.runtime.lock().unwrap_or_else(|p| p.into_inner()) = Some(runtime);
    }

    /// Keeps `keep` alive as long as the client.
    #[allow(dead_code)] // used by the `local` feature
    pub(crate) fn keep(&self, keep: Box<dyn Any + Send>) {
        self.inner
            .keep
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(keep);
    }

    async fn start(bus: Arc<dyn Bus>, subjects: Subjects) -> Result<Client, Error> {
        let id = ClientId::new();
        let mut results = bus.subscribe(&subjects.result(id)).await?;
        let pending: Arc<Pending> = Arc::default();
        let dispatch = pending.clone();
        let fetcher = bus.clone();
        let (stop_dispatch, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let dispatcher = async move {
            loop {
                let msg = tokio::select! {
                    msg = results.next() => match msg {
                        Some(msg) => msg,
                        None => return,
                    },
                    _ = &mut stopped => return,
                };
                match grid_proto::decode::<Reply>(&msg.payload) {
                    Ok(reply) => {
                        let slot = lock(&dispatch).remove(&reply.msg_id);
                        if let Some(waiting) = slot {
                            let (set, index) = waiting.finish(&*fetcher);
                            // A large result comes from its offerer (or the blob store).
                            let result =
                                load_body(&*fetcher, &reply.result)
                                    .await
                                    .unwrap_or_else(|e| {
                                        let why = TaskError::Internal(format!(
                                            "cannot read the result: {e}"
                                        ));
                                        TaskResult::immediate(reply.msg_id, Outcome::Err(why))
                                    });
                            set.arrive(index, reply, result);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "skipping a malformed reply"),
                }
            }
        };
        spawn_consumer(&*bus, "grid-client-results", dispatcher).map_err(Error::Runtime)?;
        let (outbox, mut queue) = mpsc::unbounded_channel::<Outgoing>();
        let publisher = bus.clone();
        let spilling = pending.clone();
        let queued = Arc::new(AtomicUsize::new(0));
        let in_outbox = queued.clone();
        tokio::spawn(async move {
            while let Some(outgoing) = queue.recv().await {
                let (subject, sent) = match outgoing {
                    Outgoing::Ready(subject, payload) => {
                        let sent = publisher.publish(&subject, payload).await;
                        (subject, sent)
                    }
                    Outgoing::Spill(subject, sub) => {
                        let sent = spill_and_publish(&*publisher, &spilling, &subject, *sub).await;
                        (subject, sent)
                    }
                };
                if let Err(e) = sent {
                    tracing::warn!(%subject, error = %e, "cannot publish a submission");
                }
                in_outbox.fetch_sub(1, Ordering::AcqRel);
            }
        });
        Ok(Client {
            inner: Arc::new(Inner {
                bus,
                subjects,
                id,
                pending,
                outbox,
                queued,
                _stop_dispatch: stop_dispatch,
                handle: tokio::runtime::Handle::current(),
                keep: Mutex::new(Vec::new()),
                runtime: Mutex::new(None),
            }),
        })
    }

    pub(crate) fn weak(&self) -> WeakClient {
        WeakClient(Arc::downgrade(&self.inner))
    }

    /// Fails every task still waiting for its result with `error`.
    pub(crate) fn fail_pending(&self, error: TaskError) {
        let pending: Vec<(MsgId, Waiting)> = lock(&self.inner.pending).drain().collect();
        for (msg_id, waiting) in pending {
            let (set, index) = waiting.finish(&*self.inner.bus);
            let result = TaskResult::immediate(msg_id, Outcome::Err(error.clone()));
            let submitted = set.tasks[index].submitted;
            if let Ok(reply) = Reply::new(self.inner.id, submitted, None, &result) {
                set.arrive(index, reply, result);
            }
        }
    }

    /// This client's id.
    pub fn id(&self) -> ClientId {
        self.inner.id
    }

    pub fn subjects(&self) -> &Subjects {
        &self.inner.subjects
    }

    /// Runs `fut` on the client's runtime and waits for it (blocking forms).
    pub(crate) fn block<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.inner.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        // No answer means the runtime is shutting down.
        rx.recv()
            .map_err(|_| Error::Bus(grid_bus::BusError::Closed))
    }

    /// Registers the tasks, then publishes each submission on its subject.
    pub(crate) fn submit(
        &self,
        subs: Vec<(String, Submission)>,
        tasks: Vec<TaskInfo>,
    ) -> Result<Arc<ResultSet>, Error> {
        // Large work is offered as a blob first, which takes the outbox task.
        let outgoing = subs
            .into_iter()
            .map(|(subject, sub)| {
                let msg_id = sub.msg_id;
                if sub.work.len() > SPILL_THRESHOLD {
                    return Ok((msg_id, Outgoing::Spill(subject, Box::new(sub))));
                }
                grid_proto::encode(&sub)
                    .map(|bytes| (msg_id, Outgoing::Ready(subject, Bytes::from(bytes))))
                    .map_err(|e| Error::Usage(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let set = ResultSet::new(tasks);
        {
            let mut pending = lock(&self.inner.pending);
            for (index, (msg_id, _)) in outgoing.iter().enumerate() {
                let waiting = Waiting {
                    set: set.clone(),
                    index,
                    offered: None,
                };
                pending.insert(*msg_id, waiting);
            }
        }
        for (_, message) in outgoing {
            // Publish from this thread when the bus can and nothing queued
            // would be overtaken; else through the outbox task, in order.
            if let Outgoing::Ready(subject, payload) = &message
                && self.inner.queued.load(Ordering::Acquire) == 0
                && let Some(done) = self.inner.bus.publish_now(subject, payload)
            {
                done?;
                continue;
            }
            self.inner.queued.fetch_add(1, Ordering::AcqRel);
            self.inner
                .outbox
                .send(message)
                .map_err(|_| Error::Bus(grid_bus::BusError::Closed))?;
        }
        Ok(set)
    }

    /// Asks the controller.
    pub async fn hub(&self, request: HubRequest) -> Result<HubReply, Error> {
        let subject = self.inner.subjects.hub(request.op());
        let bytes = grid_proto::encode(&request).map_err(|e| Error::Usage(e.to_string()))?;
        let msg = self
            .inner
            .bus
            .request(&subject, Bytes::from(bytes), HUB_TIMEOUT)
            .await?;
        match grid_proto::decode::<HubReply>(&msg.payload) {
            Ok(HubReply::Error(message)) => Err(Error::Hub(message)),
            Ok(reply) => Ok(reply),
            Err(e) => Err(Error::Hub(format!("malformed reply: {e}"))),
        }
    }

    fn hub_blocking(&self, request: HubRequest) -> Result<HubReply, Error> {
        let client = self.clone();
        self.block(async move { client.hub(request).await })?
    }

    /// The registered engines.
    pub async fn engines_async(&self) -> Result<Vec<EngineInfo>, Error> {
        match self.hub(HubRequest::Engines).await? {
            HubReply::Engines(mut engines) => {
                engines.sort_by_key(|e| e.id);
                Ok(engines)
            }
            other => Err(unexpected(other)),
        }
    }

    pub fn engines(&self) -> Result<Vec<EngineInfo>, Error> {
        let client = self.clone();
        self.block(async move { client.engines_async().await })?
    }

    /// The ids of the registered engines, ascending.
    pub fn ids(&self) -> Result<Vec<EngineId>, Error> {
        Ok(self.engines()?.into_iter().map(|e| e.id).collect())
    }

    pub async fn ids_async(&self) -> Result<Vec<EngineId>, Error> {
        Ok(self
            .engines_async()
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect())
    }

    /// A view on some engines (`[id]` for one; see also [`Client::view_all`]).
    pub fn view(&self, targets: impl Into<Vec<EngineId>>) -> DirectView {
        DirectView::new(self.clone(), targets.into(), false)
    }

    /// A view on one engine: `get` returns its value rather than a list.
    pub fn view_one(&self, target: EngineId) -> DirectView {
        DirectView::new(self.clone(), vec![target], true)
    }

    /// A view on every engine registered now.
    pub fn view_all(&self) -> Result<DirectView, Error> {
        Ok(self.view(self.ids()?))
    }

    /// A load-balanced view: the scheduler picks the engine of each task.
    pub fn load_balanced_view(&self) -> LoadBalancedView {
        LoadBalancedView::new(self.clone())
    }

    /// Uploads a module (a `.wasm` binary or `.wat` text file) once, by hash.
    pub fn load_module(&self, path: impl AsRef<Path>) -> Result<Module, Error> {
        let path = path.as_ref();
        let bytes = module::read_module(path)?;
        let client = self.clone();
        let name = path.display().to_string();
        self.block(async move { client.upload(bytes, name).await })?
    }

    /// [`load_module`](Self::load_module), async.
    pub async fn load_module_async(&self, path: impl AsRef<Path>) -> Result<Module, Error> {
        let path = path.as_ref();
        let bytes = module::read_module(path)?;
        self.upload(bytes, path.display().to_string()).await
    }

    /// Uploads a module given as bytes (wasm or WAT).
    pub fn module_from_bytes(&self, bytes: &[u8]) -> Result<Module, Error> {
        let client = self.clone();
        let bytes = bytes.to_vec();
        self.block(async move { client.module_from_bytes_async(&bytes).await })?
    }

    /// [`module_from_bytes`](Self::module_from_bytes), async.
    pub async fn module_from_bytes_async(&self, bytes: &[u8]) -> Result<Module, Error> {
        let binary = module::binary(bytes).map_err(|reason| Error::Module {
            path: "<bytes>".into(),
            reason,
        })?;
        self.upload(binary, "<bytes>".into()).await
    }

    async fn upload(&self, binary: Vec<u8>, name: String) -> Result<Module, Error> {
        let hash = self.inner.bus.put_blob(Bytes::from(binary)).await?;
        Ok(Module::new(ModuleHash(hash.0), name))
    }

    /// Whether the cluster's blob store has this module.
    pub async fn has_module(&self, module: &Module) -> Result<bool, Error> {
        Ok(self
            .inner
            .bus
            .get_blob(&BlobHash(module.hash().0))
            .await?
            .is_some())
    }

    /// Tasks queued and done per engine.
    pub fn queue_status(&self) -> Result<QueueStatus, Error> {
        match self.hub_blocking(HubRequest::QueueStatus)? {
            HubReply::QueueStatus(q) => Ok(q),
            other => Err(unexpected(other)),
        }
    }

    /// Which of `msg_ids` are done, and which pending.
    pub fn result_status(&self, msg_ids: Vec<MsgId>) -> Result<(Vec<MsgId>, Vec<MsgId>), Error> {
        match self.hub_blocking(HubRequest::ResultStatus { msg_ids })? {
            HubReply::ResultStatus { completed, pending } => Ok((completed, pending)),
            other => Err(unexpected(other)),
        }
    }

    /// Results recorded by the controller, submitted by any client.
    pub fn get_result(&self, msg_ids: Vec<MsgId>) -> Result<Vec<Reply>, Error> {
        match self.hub_blocking(HubRequest::GetResult { msg_ids })? {
            HubReply::Results(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Forgets recorded results (all of them when `msg_ids` is empty).
    pub fn purge_results(&self, msg_ids: Vec<MsgId>) -> Result<(), Error> {
        self.hub_blocking(HubRequest::PurgeResults { msg_ids })
            .map(|_| ())
    }

    /// Aborts tasks wherever they are.
    pub fn abort(&self, msg_ids: Vec<MsgId>) -> Result<(), Error> {
        self.hub_blocking(HubRequest::Abort { msg_ids }).map(|_| ())
    }

    pub async fn abort_async(&self, msg_ids: Vec<MsgId>) -> Result<(), Error> {
        self.hub(HubRequest::Abort { msg_ids }).await.map(|_| ())
    }

    /// Stops the engines and the controller.
    pub fn shutdown(&self) -> Result<(), Error> {
        self.hub_blocking(HubRequest::Shutdown).map(|_| ())
    }
}

fn unexpected(reply: HubReply) -> Error {
    Error::Hub(format!("unexpected reply {reply:?}"))
}
