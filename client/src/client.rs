//! The client: a connection to one cluster through a bus.
//!
//! It owns the subscription to `result.<client>` and a dispatcher that files
//! each reply into the [`ResultSet`] waiting for it: a task on the runtime
//! when the bus reads replies there (NATS), else a thread of its own that
//! spins briefly before parking (see [`grid_bus::spawn_consumer`]). A
//! second, plain task files live output from `iopub.<client>` with its
//! running task and hands it to the [`OutputHandler`], if one is set.
//! Submitting never blocks and works from sync and async code alike: when
//! the bus can publish at once the calling thread publishes, else an outbox
//! task does, in order. Hub queries are request-reply to the
//! controller; each has an async form and a blocking form. A client made by a
//! blocking constructor owns its tokio runtime (and, for a local cluster, the
//! cluster itself), which stop when the last clone of the client drops.

use std::any::Any;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use grid_bus::{Bus, SPILL_THRESHOLD, load_body, spawn_consumer, spill_body};
use grid_proto::{
    BlobHash, ClientId, EngineId, EngineInfo, HubReply, HubRequest, Iopub, ModuleHash, MsgId,
    Outcome, Purge, QueueStatus, RecordKey, Reply, SchedFlags, Scheme, Subjects, Submission,
    TaskError, TaskFilter, TaskRecord, TaskResult,
};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::inflight::{Finished, InFlight, Outgoing};
use crate::module::{self, Module};
use crate::output::{OutputChunk, OutputHandler};
use crate::result::{AsyncResult, ResultSet, TaskInfo, Wait};
use crate::select::Select;
use crate::view::{DirectView, LoadBalancedView};

/// Offers `sub`'s large work as a blob, notes the blob with its task
/// (released when the reply comes: the engine has read it by then), then
/// publishes the submission.
async fn spill_and_publish(
    bus: &dyn Bus,
    inflight: &InFlight,
    subject: &str,
    mut sub: Submission,
) -> Result<(), grid_bus::BusError> {
    sub.work = spill_body(bus, sub.work, SPILL_THRESHOLD).await?;
    let bytes = grid_proto::encode(&sub).map_err(|e| grid_bus::BusError::Other(e.to_string()))?;
    let bytes = Bytes::from(bytes);
    // Failed meanwhile (aborted, or the connection was lost): nothing to send.
    if !inflight.spilled(sub.msg_id, sub.work.blob(), &bytes) {
        return Ok(());
    }
    bus.publish(subject, bytes).await
}

/// How long hub queries wait for the controller.
const HUB_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the controller, through `bus`.
pub(crate) async fn hub_request(
    bus: &dyn Bus,
    subjects: &Subjects,
    request: HubRequest,
) -> Result<HubReply, Error> {
    let subject = subjects.hub(request.op());
    let bytes = grid_proto::encode(&request).map_err(|e| Error::Usage(e.to_string()))?;
    let msg = bus
        .request(&subject, Bytes::from(bytes), HUB_TIMEOUT)
        .await?;
    match grid_proto::decode::<HubReply>(&msg.payload) {
        Ok(HubReply::Error(message)) => Err(Error::Hub(message)),
        Ok(reply) => Ok(reply),
        Err(e) => Err(Error::Hub(format!("malformed reply: {e}"))),
    }
}

/// The recorded replies of those of `msg_ids` that are done, asking as
/// often as one answer's size bound (`RESULTS_BYTES` in the hub) needs.
pub(crate) async fn fetch_replies(
    bus: &dyn Bus,
    subjects: &Subjects,
    msg_ids: Vec<MsgId>,
) -> Result<Vec<Reply>, Error> {
    let mut left = msg_ids;
    let mut replies = Vec::new();
    while !left.is_empty() {
        let request = HubRequest::GetResult {
            msg_ids: left.clone(),
        };
        let got = results(hub_request(bus, subjects, request).await?)?;
        if got.is_empty() {
            break;
        }
        let done: std::collections::HashSet<MsgId> = got.iter().map(|r| r.msg_id).collect();
        left.retain(|id| !done.contains(id));
        replies.extend(got);
    }
    Ok(replies)
}

/// Asks the controller its scheme until it answers or the client stops. A
/// controller that does not know the request (older than the `pure`
/// scheme) schedules: it counts as `leastload`.
async fn learn_scheme(
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    scheme: Arc<OnceLock<Scheme>>,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    loop {
        let answer = tokio::select! {
            answer = hub_request(&*bus, &subjects, HubRequest::Info) => answer,
            _ = stop.changed() => return,
        };
        match answer {
            Ok(HubReply::Info { scheme: s }) => {
                let _ = scheme.set(s);
                return;
            }
            Ok(_) | Err(Error::Hub(_)) => {
                let _ = scheme.set(Scheme::LeastLoad);
                return;
            }
            // No controller yet: ask again.
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Gives a reply to the task waiting for it (if any still is): a large
/// result is read from its offerer (or the blob store) first.
pub(crate) async fn deliver(bus: &dyn Bus, inflight: &InFlight, reply: Reply) {
    let Some(Finished { set, index, also }) = inflight.finish(reply.msg_id) else {
        return;
    };
    let result = load_body(bus, &reply.result).await.unwrap_or_else(|e| {
        let why = TaskError::Internal(format!("cannot read the result: {e}"));
        TaskResult::immediate(reply.msg_id, Outcome::Err(why))
    });
    for (other, i) in also {
        other.arrive(i, reply.clone(), result.clone());
    }
    set.arrive(index, reply, result);
}

/// The next message of `subscription`, or `None` once it ends or the
/// client is dropped (`stop`).
async fn next_until(
    subscription: &mut grid_bus::Subscription,
    stop: &mut tokio::sync::watch::Receiver<()>,
) -> Option<grid_bus::Message> {
    tokio::select! {
        msg = subscription.next() => msg,
        _ = stop.changed() => None,
    }
}

/// Files a chunk of live output with its task and tells the handler what
/// is now in order.
fn file_output(
    inflight: &InFlight,
    handler: &std::sync::RwLock<Option<OutputHandler>>,
    chunk: Iopub,
) {
    let Some(Finished { set, index, .. }) = inflight.lookup(chunk.msg_id) else {
        return; // done already: its result has the whole output
    };
    let ready: Vec<OutputChunk> = set.live_output(index, chunk);
    let handler = handler.read().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(handler) = handler {
        for piece in &ready {
            handler(piece);
        }
    }
}

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

pub(crate) struct Inner {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) subjects: Subjects,
    pub(crate) id: ClientId,
    pub(crate) inflight: Arc<InFlight>,
    output: Arc<std::sync::RwLock<Option<OutputHandler>>>,
    /// Dropped with the client, which stops the reply dispatcher and the watchdog.
    _stop: tokio::sync::watch::Sender<()>,
    handle: tokio::runtime::Handle,
    /// Things to keep alive with the client (a local cluster), dropped before the runtime.
    keep: Mutex<Vec<Box<dyn Any + Send>>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    /// The controller's scheme, once it said (see [`Client::scheme`]).
    scheme: Arc<OnceLock<Scheme>>,
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
        let (stop, stopped) = tokio::sync::watch::channel(());
        let (outbox, mut queue) = mpsc::unbounded_channel::<Outgoing>();
        let inflight = Arc::new(InFlight::new(bus.clone(), id, outbox));
        let dispatch = inflight.clone();
        let fetcher = bus.clone();
        let mut dispatch_stop = stopped.clone();
        let dispatcher = async move {
            while let Some(msg) = next_until(&mut results, &mut dispatch_stop).await {
                match grid_proto::decode::<Reply>(&msg.payload) {
                    Ok(reply) => deliver(&*fetcher, &dispatch, reply).await,
                    Err(e) => tracing::warn!(error = %e, "skipping a malformed reply"),
                }
            }
        };
        spawn_consumer(&*bus, "grid-client-results", dispatcher).map_err(Error::Runtime)?;
        let output: Arc<std::sync::RwLock<Option<OutputHandler>>> = Arc::default();
        let mut iopub = bus.subscribe(&subjects.iopub(id)).await?;
        let (live, handler, mut iopub_stop) = (inflight.clone(), output.clone(), stopped.clone());
        tokio::spawn(async move {
            while let Some(msg) = next_until(&mut iopub, &mut iopub_stop).await {
                match grid_proto::decode::<Iopub>(&msg.payload) {
                    Ok(chunk) => file_output(&live, &handler, chunk),
                    Err(e) => tracing::warn!(error = %e, "skipping malformed live output"),
                }
            }
        });
        let publisher = bus.clone();
        let spilling = inflight.clone();
        tokio::spawn(async move {
            while let Some(outgoing) = queue.recv().await {
                let (subject, sent) = match outgoing {
                    Outgoing::Ready(subject, payload) => {
                        let sent = publisher.publish(&subject, payload).await;
                        (subject, sent)
                    }
                    Outgoing::Spill(subject, sub) => {
                        let msg_id = sub.msg_id;
                        let sent = spill_and_publish(&*publisher, &spilling, &subject, *sub).await;
                        if let Err(e) = &sent {
                            let why = format!("cannot send the task's work: {e}");
                            spilling.fail(msg_id, TaskError::Disconnected(why));
                        }
                        (subject, sent)
                    }
                };
                if let Err(e) = sent {
                    // The watchdog publishes it again if the controller never saw it.
                    tracing::warn!(%subject, error = %e, "cannot publish a submission");
                }
                spilling.dequeued();
            }
        });
        let scheme = Arc::new(OnceLock::new());
        tokio::spawn(learn_scheme(
            bus.clone(),
            subjects.clone(),
            scheme.clone(),
            stopped.clone(),
        ));
        tokio::spawn(crate::watchdog::watch(
            bus.clone(),
            subjects.clone(),
            inflight.clone(),
            stopped,
        ));
        Ok(Client {
            inner: Arc::new(Inner {
                bus,
                subjects,
                id,
                inflight,
                output,
                _stop: stop,
                handle: tokio::runtime::Handle::current(),
                keep: Mutex::new(Vec::new()),
                runtime: Mutex::new(None),
                scheme,
            }),
        })
    }

    /// Calls `handler` with every piece of live output of this client's
    /// running tasks, in order per task and stream, as it arrives
    /// (ipyparallel's iopub); `None` stops. Engines send what a task wrote
    /// every few milliseconds while it runs: a task that ends sooner sends
    /// nothing live, its result's metadata has the whole output (take from
    /// there what the handler did not see). It runs on the client's
    /// dispatcher, so it must return quickly (print, or send it on).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), grid_client::Error> {
    /// # let client = grid_client::Client::local(2)?;
    /// use std::io::Write;
    /// client.on_output(Some(std::sync::Arc::new(|chunk: &grid_client::OutputChunk| {
    ///     let _ = std::io::stderr().write_all(&chunk.data);
    /// })));
    /// # Ok(()) }
    /// ```
    pub fn on_output(&self, handler: Option<OutputHandler>) {
        *self.inner.output.write().unwrap_or_else(|p| p.into_inner()) = handler;
    }

    /// The scheme of the cluster's controller (`grid controller
    /// --scheme`), once it has answered; asked in the background when the
    /// client connects. Until then load-balanced work goes to the
    /// scheduler's subject, which a controller of the `pure` scheme
    /// forwards.
    pub fn scheme(&self) -> Option<Scheme> {
        self.inner.scheme.get().copied()
    }

    /// Where load-balanced work with `flags` goes: `sched.pure` in a
    /// cluster of the `pure` scheme (which refuses what needs a
    /// scheduler), else `sched.submit`.
    pub(crate) fn balanced_subject(&self, flags: &SchedFlags) -> Result<String, Error> {
        if self.scheme() != Some(Scheme::Pure) {
            return Ok(self.inner.subjects.sched_submit());
        }
        match flags.refused_by_pure() {
            Some(why) => Err(Error::Usage(why)),
            None => Ok(self.inner.subjects.sched_pure()),
        }
    }

    pub(crate) fn weak(&self) -> WeakClient {
        WeakClient(Arc::downgrade(&self.inner))
    }

    /// Fails every task still waiting for its result with `error`.
    pub(crate) fn fail_pending(&self, error: TaskError) {
        self.inner.inflight.fail_all(error);
    }

    /// At most `n` of this client's tasks are published and unanswered at
    /// once (at least 1; [`DEFAULT_MAX_IN_FLIGHT`](crate::DEFAULT_MAX_IN_FLIGHT)
    /// unless set). More can be submitted: they wait in the client, in
    /// order, and go out as replies come. This is the back-pressure that
    /// keeps many clients from burying the controller.
    pub fn set_max_in_flight(&self, n: usize) {
        self.inner.inflight.set_max_in_flight(n);
    }

    /// See [`set_max_in_flight`](Self::set_max_in_flight).
    pub fn max_in_flight(&self) -> usize {
        self.inner.inflight.max_in_flight()
    }

    /// How long the controller's beat may stay away before the tasks only
    /// it can finish (load-balanced ones in its scheduler, and those waited
    /// for through [`get_result`](Self::get_result)) fail as `lost`, naming
    /// the controller ([`DEFAULT_CONTROLLER_TIMEOUT`](crate::DEFAULT_CONTROLLER_TIMEOUT)
    /// unless set). A controller that restarts within it costs nothing: the
    /// client sends again what the new one does not know.
    pub fn set_controller_timeout(&self, timeout: Duration) {
        self.inner.inflight.set_controller_timeout(timeout);
    }

    /// See [`set_controller_timeout`](Self::set_controller_timeout).
    pub fn controller_timeout(&self) -> Duration {
        self.inner.inflight.controller_timeout()
    }

    /// The msg_ids of this client's tasks that have no result yet, sorted
    /// (ipyparallel's `rc.outstanding`).
    pub fn outstanding(&self) -> Vec<MsgId> {
        self.inner.inflight.outstanding()
    }

    /// Waits until every one of `results` is done, or, when `results` is
    /// empty, every task of this client submitted so far (ipyparallel's
    /// `rc.wait(jobs, timeout)`); `false` if `timeout` passed first.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), grid_client::Error> {
    /// # let client = grid_client::Client::local(2)?;
    /// # let f = client.load_module("examples/guests/wat/square.wat")?.func("square");
    /// let lb = client.load_balanced_view();
    /// let a = lb.apply_async(&f, [grid_client::Value::from(3)])?;
    /// let b = lb.map_async(&f, vec![vec![1.into(), 2.into()]])?;
    /// assert!(client.wait(&[&a, &b], None));
    /// assert!(client.wait(&[], None)); // everything this client submitted
    /// # Ok(()) }
    /// ```
    pub fn wait(&self, results: &[&dyn Wait], timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        if results.is_empty() {
            return self
                .inner
                .inflight
                .waiting_sets()
                .iter()
                .all(|set| set.wait_all(deadline));
        }
        results.iter().all(|r| r.wait_until(deadline))
    }

    /// [`wait`](Self::wait), async, without a timeout (wrap it in one).
    pub async fn wait_async(&self, results: &[&dyn Wait]) {
        if results.is_empty() {
            for set in self.inner.inflight.waiting_sets() {
                set.wait_all_async().await;
            }
            return;
        }
        for r in results {
            r.wait_async_dyn().await;
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

    /// Runs `fut` on the client's runtime and awaits it from any executor:
    /// the bus's futures need tokio's timers and sockets, which the
    /// caller's executor may not have.
    pub(crate) async fn on_runtime<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        self.inner
            .handle
            .spawn(fut)
            .await
            .map_err(|_| Error::Bus(grid_bus::BusError::Closed))?
    }

    /// Registers the tasks of `set`, one submission each in task order, and
    /// publishes them as the in-flight window allows.
    pub(crate) fn submit(
        &self,
        subs: Vec<(String, Submission)>,
        set: Arc<ResultSet>,
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
        self.inner.inflight.submit(&set, outgoing);
        Ok(set)
    }

    /// Asks the controller (any [`HubRequest`]; the typed methods below are
    /// easier). Works from any async executor.
    pub async fn hub(&self, request: HubRequest) -> Result<HubReply, Error> {
        let client = self.clone();
        self.on_runtime(async move {
            hub_request(&*client.inner.bus, &client.inner.subjects, request).await
        })
        .await
    }

    fn hub_blocking(&self, request: HubRequest) -> Result<HubReply, Error> {
        let client = self.clone();
        self.block(async move {
            hub_request(&*client.inner.bus, &client.inner.subjects, request).await
        })?
    }

    /// The registered engines, by id.
    pub async fn engines_async(&self) -> Result<Vec<EngineInfo>, Error> {
        engines(self.hub(HubRequest::Engines).await?)
    }

    /// [`engines_async`](Self::engines_async), blocking.
    pub fn engines(&self) -> Result<Vec<EngineInfo>, Error> {
        engines(self.hub_blocking(HubRequest::Engines)?)
    }

    /// The ids of the registered engines, ascending (ipyparallel's `rc.ids`).
    pub fn ids(&self) -> Result<Vec<EngineId>, Error> {
        Ok(self.engines()?.into_iter().map(|e| e.id).collect())
    }

    /// [`ids`](Self::ids), async.
    pub async fn ids_async(&self) -> Result<Vec<EngineId>, Error> {
        Ok(self
            .engines_async()
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect())
    }

    /// A view on some engines, by id (see also [`Client::select`] to pick
    /// them by position, as ipyparallel's `rc[...]`).
    pub fn view(&self, targets: impl Into<Vec<EngineId>>) -> DirectView {
        DirectView::new(self.clone(), targets.into(), false)
    }

    /// A view on one engine: `get` returns its value rather than a list.
    pub fn view_one(&self, target: EngineId) -> DirectView {
        DirectView::new(self.clone(), vec![target], true)
    }

    /// A view on every engine registered now (ipyparallel's `rc[:]`).
    pub fn view_all(&self) -> Result<DirectView, Error> {
        Ok(self.view(self.ids()?))
    }

    /// A view on the engines at these positions of [`ids`](Self::ids),
    /// evaluated now, as ipyparallel's `rc[...]`: an index (negative from
    /// the end) gives a one-engine view, a range a list; see [`Select`].
    ///
    /// | ipyparallel | Grid |
    /// |---|---|
    /// | `rc[0]`, `rc[-1]` | `client.select(0)?`, `client.select(-1)?` |
    /// | `rc[1:3]`, `rc[2:]`, `rc[:2]` | `client.select(1..3)?`, `client.select(2..)?`, `client.select(..2)?` |
    /// | `rc[:]` | `client.select(..)?` |
    /// | `rc[::2]`, `rc[1::2]`, `rc[::-1]` | `client.select((.., 2))?`, `client.select((1.., 2))?`, `client.select((.., -1))?` |
    ///
    /// ```no_run
    /// # fn main() -> Result<(), grid_client::Error> {
    /// let client = grid_client::Client::local(4)?;
    /// assert_eq!(client.select(-1)?.targets(), &[grid_client::EngineId(3)]);
    /// assert_eq!(client.select((.., 2))?.targets().len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn select(&self, which: impl Into<Select>) -> Result<DirectView, Error> {
        self.view_of(which.into(), &self.ids()?)
    }

    /// [`select`](Self::select), async.
    pub async fn select_async(&self, which: impl Into<Select>) -> Result<DirectView, Error> {
        self.view_of(which.into(), &self.ids_async().await?)
    }

    /// The view on the engines of `ids` that `which` picks.
    fn view_of(&self, which: Select, ids: &[EngineId]) -> Result<DirectView, Error> {
        let targets = which.pick(ids)?;
        Ok(DirectView::new(self.clone(), targets, which.is_index()))
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
        let client = self.clone();
        let name = path.display().to_string();
        self.on_runtime(async move { client.upload(bytes, name).await })
            .await
    }

    /// Uploads a module given as bytes (wasm or WAT).
    pub fn module_from_bytes(&self, bytes: &[u8]) -> Result<Module, Error> {
        let binary = module_binary(bytes)?;
        let client = self.clone();
        self.block(async move { client.upload(binary, "<bytes>".into()).await })?
    }

    /// [`module_from_bytes`](Self::module_from_bytes), async.
    pub async fn module_from_bytes_async(&self, bytes: &[u8]) -> Result<Module, Error> {
        let binary = module_binary(bytes)?;
        let client = self.clone();
        self.on_runtime(async move { client.upload(binary, "<bytes>".into()).await })
            .await
    }

    async fn upload(&self, binary: Vec<u8>, name: String) -> Result<Module, Error> {
        let hash = self.inner.bus.put_blob(Bytes::from(binary)).await?;
        Ok(Module::new(ModuleHash(hash.0), name))
    }

    /// Whether the cluster's blob store has this module.
    pub async fn has_module(&self, module: &Module) -> Result<bool, Error> {
        let client = self.clone();
        let hash = BlobHash(module.hash().0);
        self.on_runtime(async move { Ok(client.inner.bus.get_blob(&hash).await?.is_some()) })
            .await
    }

    /// Tasks queued and done per engine, and waiting in the scheduler.
    pub fn queue_status(&self) -> Result<QueueStatus, Error> {
        queue_status(self.hub_blocking(HubRequest::QueueStatus)?)
    }

    /// [`queue_status`](Self::queue_status), async.
    pub async fn queue_status_async(&self) -> Result<QueueStatus, Error> {
        queue_status(self.hub(HubRequest::QueueStatus).await?)
    }

    /// Which of `msg_ids` the controller has a result for, and which not
    /// (pending, or never seen), as `(completed, pending)` (ipyparallel's
    /// `result_status`; [`task_status`](Self::task_status) tells the
    /// pending from the unknown).
    pub fn result_status(&self, msg_ids: Vec<MsgId>) -> Result<(Vec<MsgId>, Vec<MsgId>), Error> {
        Ok(self.task_status(msg_ids)?.merged())
    }

    /// [`result_status`](Self::result_status), async.
    pub async fn result_status_async(
        &self,
        msg_ids: Vec<MsgId>,
    ) -> Result<(Vec<MsgId>, Vec<MsgId>), Error> {
        Ok(self.task_status_async(msg_ids).await?.merged())
    }

    /// Where each of `msg_ids` stands at the controller: completed,
    /// pending, or unknown (never seen: on its way, lost, or purged).
    pub fn task_status(&self, msg_ids: Vec<MsgId>) -> Result<TaskStatus, Error> {
        task_status(self.hub_blocking(HubRequest::ResultStatus { msg_ids })?)
    }

    /// [`task_status`](Self::task_status), async.
    pub async fn task_status_async(&self, msg_ids: Vec<MsgId>) -> Result<TaskStatus, Error> {
        task_status(self.hub(HubRequest::ResultStatus { msg_ids }).await?)
    }

    /// The results of tasks submitted by any client, this one or another,
    /// one still running or one whose client has exited (ipyparallel's
    /// `get_result` and its `AsyncHubResult`): an [`AsyncResult`] with one
    /// task per id, in order, done at once for those the controller has
    /// recorded, later for those still running. An id the controller does
    /// not know (never submitted, or purged) fails as `lost`, naming why,
    /// once the watchdog has asked again ([`QUIET`](crate::QUIET) later: a
    /// task submitted a moment ago may not have reached the controller yet).
    /// A chunk of a map (one id, several items) has its items as one array.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), grid_client::Error> {
    /// # let client = grid_client::Client::local(2)?;
    /// # let f = client.load_module("examples/guests/wat/square.wat")?.func("square");
    /// let ids = client.load_balanced_view().apply_async(&f, [3])?.msg_ids();
    /// // Later, from any client of the cluster:
    /// let again = client.get_result(ids)?;
    /// assert_eq!(again.get(None)?, grid_client::Value::Array(vec![grid_client::Value::from(9)]));
    /// # Ok(()) }
    /// ```
    pub fn get_result(&self, msg_ids: Vec<MsgId>) -> Result<AsyncResult, Error> {
        let client = self.clone();
        self.block(async move { client.watch(msg_ids).await })?
    }

    /// [`get_result`](Self::get_result), async.
    pub async fn get_result_async(&self, msg_ids: Vec<MsgId>) -> Result<AsyncResult, Error> {
        let client = self.clone();
        self.on_runtime(async move { client.watch(msg_ids).await })
            .await
    }

    /// Waits for tasks by id, through the controller (see `get_result`).
    async fn watch(self, msg_ids: Vec<MsgId>) -> Result<AsyncResult, Error> {
        let tasks = msg_ids
            .iter()
            .map(|&msg_id| TaskInfo {
                msg_id,
                function: String::new(),
                first_item: None,
                items: 1,
                chunk: false,
                whole: true,
                submitted: grid_proto::Timestamp::now(),
            })
            .collect();
        let set = ResultSet::new(tasks);
        // Waiting first: a result the controller forwards is not missed.
        let new = self.inner.inflight.watch(&set, &msg_ids);
        let request = HubRequest::Watch {
            client: self.inner.id,
            msg_ids: new.clone(),
        };
        let watched = match hub_request(&*self.inner.bus, &self.inner.subjects, request).await {
            Ok(HubReply::ResultStatus { completed, .. }) => Ok(completed),
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(e),
        };
        let completed = match watched {
            Ok(answer) => answer,
            Err(e) => {
                for msg_id in new {
                    self.inner
                        .inflight
                        .fail(msg_id, TaskError::Disconnected(e.to_string()));
                }
                return Err(e);
            }
        };
        // The unknown ones stay watched: their submission may still be on
        // its way (the hub watches them for a while; the watchdog gives up
        // on them if they stay unknown).
        for reply in self.fetch_all(completed).await? {
            deliver(&*self.inner.bus, &self.inner.inflight, reply).await;
        }
        Ok(AsyncResult {
            set,
            client: self,
            single: false,
            pull_one: false,
        })
    }

    /// The recorded replies of those of `msg_ids` that are done, asking as
    /// often as one answer's size bound needs.
    async fn fetch_all(&self, msg_ids: Vec<MsgId>) -> Result<Vec<Reply>, Error> {
        fetch_replies(&*self.inner.bus, &self.inner.subjects, msg_ids).await
    }

    /// The replies the controller recorded for those of `msg_ids` that are
    /// done, as they came over the wire (see [`Reply`]); the others are
    /// left out. [`get_result`](Self::get_result) is the friendlier form.
    pub fn fetch_results(&self, msg_ids: Vec<MsgId>) -> Result<Vec<Reply>, Error> {
        let client = self.clone();
        self.block(async move { client.fetch_all(msg_ids).await })?
    }

    /// [`fetch_results`](Self::fetch_results), async.
    pub async fn fetch_results_async(&self, msg_ids: Vec<MsgId>) -> Result<Vec<Reply>, Error> {
        let client = self.clone();
        self.on_runtime(async move { client.fetch_all(msg_ids).await })
            .await
    }

    /// The task records `filter` selects, from every client, sorted by msg
    /// id, with the heavy fields `keys` names (every one when empty):
    /// ipyparallel's `db_query`, its `$in`/`$lt`/`$gt` operators as
    /// [`TaskFilter`]'s methods.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), grid_client::Error> {
    /// # let client = grid_client::Client::local(2)?;
    /// use grid_client::{RecordKey, RecordStatus, TaskFilter, Timestamp};
    /// let hour_ago = Timestamp(Timestamp::now().0 - 3_600_000_000);
    /// let failed = client.db_query(
    ///     TaskFilter::new()
    ///         .status_in([RecordStatus::Error])
    ///         .submitted_gt(hour_ago),
    ///     &[RecordKey::Stderr],
    /// )?;
    /// for record in failed {
    ///     println!("{} on {:?}: {:?}", record.msg_id, record.engine, record.error);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn db_query(
        &self,
        filter: TaskFilter,
        keys: &[RecordKey],
    ) -> Result<Vec<TaskRecord>, Error> {
        let (client, keys) = (self.clone(), keys.to_vec());
        self.block(async move { client.query_all(filter, keys).await })?
    }

    /// [`db_query`](Self::db_query), async.
    pub async fn db_query_async(
        &self,
        filter: TaskFilter,
        keys: &[RecordKey],
    ) -> Result<Vec<TaskRecord>, Error> {
        let (client, keys) = (self.clone(), keys.to_vec());
        self.on_runtime(async move { client.query_all(filter, keys).await })
            .await
    }

    /// Every page of a query, up to the filter's limit if it sets one.
    async fn query_all(
        &self,
        mut filter: TaskFilter,
        keys: Vec<RecordKey>,
    ) -> Result<Vec<TaskRecord>, Error> {
        let wanted = filter.limit;
        let mut records: Vec<TaskRecord> = Vec::new();
        loop {
            if let Some(wanted) = wanted {
                filter.limit = Some(wanted - records.len());
            }
            let request = HubRequest::DbQuery {
                filter: filter.clone(),
                keys: keys.clone(),
            };
            match hub_request(&*self.inner.bus, &self.inner.subjects, request).await? {
                HubReply::Records {
                    records: page,
                    more,
                } => {
                    let last = page.last().map(|r| r.msg_id);
                    records.extend(page);
                    let full = wanted.is_some_and(|w| records.len() >= w);
                    match last {
                        Some(last) if more && !full => filter.after = Some(last),
                        _ => return Ok(records),
                    }
                }
                other => return Err(unexpected(other)),
            }
        }
    }

    /// Forgets completed records (ipyparallel's `purge_results`): these
    /// ids (`Vec<MsgId>` converts), those recorded before a time, or all
    /// ([`purge_everything`](Self::purge_everything)). Returns how many.
    /// Naming a task still pending is an error, and nothing is purged.
    pub fn purge_results(&self, which: impl Into<Purge>) -> Result<u64, Error> {
        purged(self.hub_blocking(HubRequest::PurgeResults(which.into()))?)
    }

    /// [`purge_results`](Self::purge_results), async.
    pub async fn purge_results_async(&self, which: impl Into<Purge>) -> Result<u64, Error> {
        purged(self.hub(HubRequest::PurgeResults(which.into())).await?)
    }

    /// Forgets every completed record.
    pub fn purge_everything(&self) -> Result<u64, Error> {
        self.purge_results(Purge::All)
    }

    /// Aborts tasks wherever they are: those still waiting in this client
    /// for room on the wire end `aborted` here; the controller aborts the
    /// others (queued ones dropped, running ones interrupted).
    pub fn abort(&self, msg_ids: Vec<MsgId>) -> Result<(), Error> {
        match self.abort_request(&msg_ids) {
            Some(request) => self.hub_blocking(request).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Aborts here the tasks still waiting in this client; the request that
    /// asks the controller to abort the others, if any.
    fn abort_request(&self, msg_ids: &[MsgId]) -> Option<HubRequest> {
        let sent = self.inner.inflight.abort_unsent(msg_ids);
        (!sent.is_empty()).then_some(HubRequest::Abort { msg_ids: sent })
    }

    /// Aborts every task of these results at once (ipyparallel's
    /// `rc.abort(jobs)`), so none of them starts on an engine freed by
    /// aborting another.
    pub fn abort_results(&self, results: &[&dyn Wait]) -> Result<(), Error> {
        let msg_ids = results.iter().flat_map(|r| r.msg_ids()).collect();
        self.abort(msg_ids)
    }

    /// [`abort`](Self::abort), async.
    pub async fn abort_async(&self, msg_ids: Vec<MsgId>) -> Result<(), Error> {
        match self.abort_request(&msg_ids) {
            Some(request) => self.hub(request).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// Stops the engines and the controller.
    pub fn shutdown(&self) -> Result<(), Error> {
        self.hub_blocking(HubRequest::Shutdown).map(|_| ())
    }

    /// [`shutdown`](Self::shutdown), async.
    pub async fn shutdown_async(&self) -> Result<(), Error> {
        self.hub(HubRequest::Shutdown).await.map(|_| ())
    }
}

fn module_binary(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    module::binary(bytes).map_err(|reason| Error::Module {
        path: "<bytes>".into(),
        reason,
    })
}

fn engines(reply: HubReply) -> Result<Vec<EngineInfo>, Error> {
    match reply {
        HubReply::Engines(mut engines) => {
            engines.sort_by_key(|e| e.id);
            Ok(engines)
        }
        other => Err(unexpected(other)),
    }
}

fn queue_status(reply: HubReply) -> Result<QueueStatus, Error> {
    match reply {
        HubReply::QueueStatus(q) => Ok(q),
        other => Err(unexpected(other)),
    }
}

/// Where tasks stand at the controller ([`Client::task_status`]), each id
/// in one list, in the order asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskStatus {
    pub completed: Vec<MsgId>,
    pub pending: Vec<MsgId>,
    /// Never seen by the controller: on their way, lost, or purged.
    pub unknown: Vec<MsgId>,
}

impl TaskStatus {
    /// `(completed, pending or unknown)`, as `result_status` says it.
    fn merged(self) -> (Vec<MsgId>, Vec<MsgId>) {
        let mut pending = self.pending;
        pending.extend(self.unknown);
        (self.completed, pending)
    }
}

fn task_status(reply: HubReply) -> Result<TaskStatus, Error> {
    match reply {
        HubReply::ResultStatus {
            completed,
            pending,
            unknown,
        } => Ok(TaskStatus {
            completed,
            pending,
            unknown,
        }),
        other => Err(unexpected(other)),
    }
}

fn purged(reply: HubReply) -> Result<u64, Error> {
    match reply {
        HubReply::Purged { count } => Ok(count),
        other => Err(unexpected(other)),
    }
}

fn results(reply: HubReply) -> Result<Vec<Reply>, Error> {
    match reply {
        HubReply::Results(r) => Ok(r),
        other => Err(unexpected(other)),
    }
}

fn unexpected(reply: HubReply) -> Error {
    Error::Hub(format!("unexpected reply {reply:?}"))
}
