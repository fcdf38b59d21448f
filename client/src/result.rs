//! AsyncResult: results that arrive later.
//!
//! A [`ResultSet`] is the shared state of one submission's tasks: the client's
//! dispatcher fills it as replies arrive on `result.<client>`, and results
//! wait on it, blocking (a condition variable) or async (a `Notify`, which
//! needs no particular executor). Results are kept in submission order and,
//! for unordered iteration, in the order they completed. Per-item values of
//! a map are recovered from chunk results. While a task runs, its live
//! output (`output.rs`) is kept with it, until its result replaces it.
//! [`AsyncResult`] is the view of a set that `apply` and the data methods
//! return; `map.rs` has the map's.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use grid_proto::{
    ClientId, EngineId, EngineUuid, Fingerprint, Iopub, MsgId, Outcome, Reply, SchedFlags, Status,
    Stream, TaskError, TaskResult, Timestamp, Value,
};

use crate::Client;
use crate::error::{Error, RemoteError};
use crate::output::{Live, OutputChunk};

/// What one task of a submission is.
#[derive(Clone, Debug)]
pub(crate) struct TaskInfo {
    pub msg_id: MsgId,
    pub function: String,
    /// For maps: index of the task's first item in the whole input.
    pub first_item: Option<usize>,
    /// Items in the task (1 unless it is a chunk).
    pub items: usize,
    /// Whether the task is a chunk (`Call::Map`), whose values are per item.
    pub chunk: bool,
    /// A task asked for by id (`get_result`), which may be a chunk: its
    /// items, if it has any, are its one value (an array), as
    /// ipyparallel's `AsyncHubResult` returns a chunk's list.
    pub whole: bool,
    pub submitted: Timestamp,
}

struct Arrived {
    reply: Reply,
    result: TaskResult,
    received: Timestamp,
}

struct State {
    replies: Vec<Option<Arrived>>,
    done: usize,
    completion: Vec<usize>,
    /// Live output of tasks that are running (by index).
    live: BTreeMap<usize, Live>,
}

/// Replies of one submission, filled by the client's dispatcher.
pub(crate) struct ResultSet {
    pub tasks: Vec<TaskInfo>,
    /// The tasks named by the submission's `after` and `follow`, for the metadata.
    pub after: Vec<MsgId>,
    pub follow: Vec<MsgId>,
    state: Mutex<State>,
    cond: Condvar,
    notify: tokio::sync::Notify,
    /// Told of each task done, with this set's tag (an imap's completions).
    listener: Option<(Arc<crate::imap::Completions>, u64)>,
}

impl ResultSet {
    pub(crate) fn new(tasks: Vec<TaskInfo>) -> Arc<ResultSet> {
        Self::with_listener(tasks, None)
    }

    pub(crate) fn with_listener(
        tasks: Vec<TaskInfo>,
        listener: Option<(Arc<crate::imap::Completions>, u64)>,
    ) -> Arc<ResultSet> {
        Arc::new(Self::unshared(tasks, listener))
    }

    /// A set of tasks that wait for `after` and run where `follow` ran.
    pub(crate) fn with_dependencies(tasks: Vec<TaskInfo>, sched: &SchedFlags) -> Arc<ResultSet> {
        let ids = |dep: &Option<grid_proto::Dependency>| {
            dep.as_ref().map(|d| d.msg_ids.clone()).unwrap_or_default()
        };
        Arc::new(ResultSet {
            after: ids(&sched.after),
            follow: ids(&sched.follow),
            ..Self::unshared(tasks, None)
        })
    }

    fn unshared(
        tasks: Vec<TaskInfo>,
        listener: Option<(Arc<crate::imap::Completions>, u64)>,
    ) -> ResultSet {
        let n = tasks.len();
        ResultSet {
            tasks,
            after: Vec::new(),
            follow: Vec::new(),
            state: Mutex::new(State {
                replies: (0..n).map(|_| None).collect(),
                done: 0,
                completion: Vec::with_capacity(n),
                live: BTreeMap::new(),
            }),
            cond: Condvar::new(),
            notify: tokio::sync::Notify::new(),
            listener,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the reply of task `index` (the first one wins).
    pub(crate) fn arrive(&self, index: usize, reply: Reply, result: TaskResult) {
        let mut s = self.lock();
        let Some(slot) = s.replies.get_mut(index) else {
            return;
        };
        let first = slot.is_none();
        if first {
            *slot = Some(Arrived {
                reply,
                result,
                received: Timestamp::now(),
            });
            s.done += 1;
            s.completion.push(index);
            s.live.remove(&index);
        }
        drop(s);
        self.cond.notify_all();
        self.notify.notify_waiters();
        if let (true, Some((listener, tag))) = (first, &self.listener) {
            listener.done(*tag);
        }
    }

    fn done(&self) -> usize {
        self.lock().done
    }

    /// Files a chunk of task `index`'s live output; returns the pieces now
    /// in order, for the client's output handler.
    pub(crate) fn live_output(&self, index: usize, chunk: Iopub) -> Vec<OutputChunk> {
        let mut s = self.lock();
        if s.replies.get(index).is_none_or(Option::is_some) {
            return Vec::new(); // done: its result has the whole output
        }
        let first = self.tasks[index].first_item;
        let stream = chunk.stream;
        let truncated = chunk.truncated;
        let ready = s.live.entry(index).or_default().stream(stream).take(
            chunk.offset,
            chunk.item,
            chunk.data,
        );
        ready
            .into_iter()
            .map(|(item, data)| OutputChunk {
                msg_id: chunk.msg_id,
                stream,
                item: match (first, item) {
                    (Some(first), Some(i)) => Some(first + i as usize),
                    (Some(first), None) => Some(first),
                    (None, _) => None,
                },
                data,
                truncated,
            })
            .collect()
    }

    /// Each task's output of `stream` so far: the result's when it is
    /// done, the live output while it runs.
    pub(crate) fn output(&self, stream: Stream) -> Vec<Vec<u8>> {
        let mut s = self.lock();
        (0..self.tasks.len())
            .map(|i| match &s.replies[i] {
                Some(a) => match stream {
                    Stream::Stdout => a.result.stdout.clone(),
                    Stream::Stderr => a.result.stderr.clone(),
                },
                None => s
                    .live
                    .get_mut(&i)
                    .map(|l| l.stream(stream).bytes.clone())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The index of the `k`-th task to complete, once it has.
    pub(crate) fn completed(&self, k: usize) -> Option<usize> {
        self.lock().completion.get(k).copied()
    }

    /// Task `index`'s items, values or errors (it must be done).
    pub(crate) fn task_items(&self, index: usize) -> Vec<Result<Value, RemoteError>> {
        let s = self.lock();
        let mut out = Vec::with_capacity(self.tasks[index].items);
        self.push_items(&s, index, &mut out);
        out
    }

    /// Task `index` failed before any engine answered, on `client`'s own
    /// authority (never sent, or given up on).
    pub(crate) fn fail(&self, index: usize, client: ClientId, error: TaskError) {
        let info = &self.tasks[index];
        let result = TaskResult::immediate(info.msg_id, Outcome::Err(error));
        match Reply::new(client, info.submitted, None, &result) {
            Ok(reply) => self.arrive(index, reply, result),
            Err(e) => tracing::error!(msg_id = %info.msg_id, error = %e, "cannot encode a failure"),
        }
    }

    /// Blocks until task `index` is done.
    pub(crate) fn wait_index(&self, index: usize) {
        let mut s = self.lock();
        while s.replies.get(index).is_some_and(Option::is_none) {
            s = self.cond.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits (async) until task `index` is done.
    pub(crate) async fn wait_index_async(&self, index: usize) {
        self.wait_until_async(|s| s.replies.get(index).is_none_or(Option::is_some))
            .await
    }

    /// Blocks until every task is done or the deadline passes.
    pub(crate) fn wait_all(&self, deadline: Option<Instant>) -> bool {
        self.wait_for(self.tasks.len(), deadline)
    }

    /// Waits (async, on any executor) until every task is done.
    pub(crate) async fn wait_all_async(&self) {
        self.wait_for_async(self.tasks.len()).await
    }

    /// Blocks until `count` tasks are done or the deadline passes.
    pub(crate) fn wait_for(&self, count: usize, deadline: Option<Instant>) -> bool {
        // A reply often comes within microseconds: look again for a short
        // while before sleeping, as waking a sleeping thread (an idle vCPU,
        // in a VM) can cost more than the whole round trip.
        let spin_until = Instant::now() + grid_bus::SPIN;
        while Instant::now() < spin_until {
            if self.done() >= count {
                return true;
            }
            std::thread::yield_now();
        }
        let mut s = self.lock();
        while s.done < count {
            match deadline {
                None => s = self.cond.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    s = self
                        .cond
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        true
    }

    /// Waits (async) until `count` tasks are done.
    pub(crate) async fn wait_for_async(&self, count: usize) {
        self.wait_until_async(|s| s.done >= count).await
    }

    async fn wait_until_async(&self, ready: impl Fn(&State) -> bool) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready(&self.lock()) {
                return;
            }
            notified.await;
        }
    }

    /// The outcomes of every item of task `index` (which must be done).
    fn item_outcomes(&self, s: &State, index: usize) -> Vec<Outcome> {
        let info = &self.tasks[index];
        let Some(arrived) = &s.replies[index] else {
            return Vec::new();
        };
        let result = &arrived.result;
        if info.whole && !result.items.is_empty() {
            let failed = result.items.iter().find(|o| matches!(o, Outcome::Err(_)));
            let whole = match failed {
                Some(error) => error.clone(),
                None => Outcome::Ok(Value::Array(
                    result
                        .items
                        .iter()
                        .filter_map(|o| match o {
                            Outcome::Ok(v) => Some(v.clone()),
                            Outcome::Err(_) => None,
                        })
                        .collect(),
                )),
            };
            vec![whole]
        } else if info.chunk && result.items.len() == info.items {
            result.items.clone()
        } else if info.chunk {
            // The chunk failed as a whole (e.g. missing module): every item fails.
            vec![result.outcome.clone(); info.items]
        } else {
            vec![result.outcome.clone()]
        }
    }

    fn remote_error(
        &self,
        s: &State,
        index: usize,
        item: Option<usize>,
        error: TaskError,
    ) -> RemoteError {
        let info = &self.tasks[index];
        RemoteError {
            msg_id: info.msg_id,
            engine_id: s.replies[index]
                .as_ref()
                .and_then(|a| a.reply.engine.map(|e| e.id)),
            function: info.function.clone(),
            item,
            error,
        }
    }

    /// Every item's value or error, in input order (all tasks must be done).
    pub(crate) fn all_items(&self) -> Vec<Result<Value, RemoteError>> {
        let s = self.lock();
        let mut out = Vec::new();
        for index in 0..self.tasks.len() {
            self.push_items(&s, index, &mut out);
        }
        out
    }

    /// Appends task `index`'s items (values or errors) to `out`.
    fn push_items(&self, s: &State, index: usize, out: &mut Vec<Result<Value, RemoteError>>) {
        let first = self.tasks[index].first_item;
        for (k, outcome) in self.item_outcomes(s, index).into_iter().enumerate() {
            out.push(match outcome {
                Outcome::Ok(v) => Ok(v),
                Outcome::Err(e) => {
                    let item = first.map(|first| first + k);
                    Err(self.remote_error(s, index, item, e))
                }
            });
        }
    }
}

/// Metadata of one task, as ipyparallel reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub msg_id: MsgId,
    pub submitted: Timestamp,
    pub started: Option<Timestamp>,
    pub completed: Option<Timestamp>,
    pub received: Option<Timestamp>,
    pub engine_id: Option<EngineId>,
    pub engine_uuid: Option<EngineUuid>,
    /// `None` while pending.
    pub status: Option<Status>,
    pub error: Option<TaskError>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Fuel the task consumed, on metering engines.
    pub fuel_used: Option<u64>,
    /// What identifies the work and the run (module, input, configuration,
    /// fuel, output hashes), once done. `None` for work that never ran
    /// wasm (namespace operations, tasks failed before reaching an engine).
    pub fingerprint: Option<Fingerprint>,
    /// The tasks it waited for (`after`) and ran where they ran (`follow`).
    pub after: Vec<MsgId>,
    pub follow: Vec<MsgId>,
    /// How many times it was sent to an engine: more than 1 when it failed
    /// and was retried, 0 when it never reached one. 0 while pending.
    pub attempts: u32,
}

/// A dependency on every task of `result` (see [`Dependency`]'s flags).
impl From<&AsyncResult> for grid_proto::Dependency {
    fn from(result: &AsyncResult) -> grid_proto::Dependency {
        grid_proto::Dependency::new(result.msg_ids())
    }
}

/// The result of `apply`: one task per target engine.
#[derive(Clone)]
pub struct AsyncResult {
    pub(crate) set: Arc<ResultSet>,
    pub(crate) client: Client,
    /// Set when the submission targeted one engine: `get` returns its value, not a list.
    pub(crate) single: bool,
    /// Set for `pull(name)`: each engine's `[value]` becomes `value`.
    pub(crate) pull_one: bool,
}

impl AsyncResult {
    /// Whether every task is done.
    pub fn ready(&self) -> bool {
        self.set.done() == self.set.tasks.len()
    }

    /// `Some(true)` when every task succeeded, `None` while not ready.
    pub fn successful(&self) -> Option<bool> {
        if !self.ready() {
            return None;
        }
        Some(self.set.all_items().iter().all(|r| r.is_ok()))
    }

    /// Waits for every task, up to `timeout`; returns whether they are done.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.set
            .wait_for(self.set.tasks.len(), timeout.map(|t| Instant::now() + t))
    }

    /// Waits (async, from any executor) for every task.
    pub async fn wait_async(&self) {
        self.set.wait_all_async().await
    }

    /// Waits (async, from any executor) for every task, up to `timeout`;
    /// returns whether they are done. The timer runs on the client's runtime.
    pub async fn wait_async_timeout(&self, timeout: Option<Duration>) -> bool {
        let Some(t) = timeout else {
            self.wait_async().await;
            return true;
        };
        let set = self.set.clone();
        self.client
            .on_runtime(
                async move { Ok(tokio::time::timeout(t, set.wait_all_async()).await.is_ok()) },
            )
            .await
            .unwrap_or(false)
    }

    /// The value (one target) or the values in target order; the first
    /// failure as a [`RemoteError`], several as a `CompositeError`.
    pub fn get(&self, timeout: Option<Duration>) -> Result<Value, Error> {
        if !self.wait(timeout) {
            return Err(Error::Timeout(timeout.unwrap_or_default()));
        }
        self.collect()
    }

    /// [`get`](Self::get), async (from any executor), with an optional timeout.
    pub async fn get_async(&self, timeout: Option<Duration>) -> Result<Value, Error> {
        if !self.wait_async_timeout(timeout).await {
            return Err(Error::Timeout(timeout.unwrap_or_default()));
        }
        self.collect()
    }

    /// Every task's value, or the failures.
    fn values(&self) -> Result<Vec<Value>, Error> {
        let (values, errors) = split(self.set.all_items());
        if let Some(e) = Error::from_failures(errors) {
            return Err(e);
        }
        if !self.pull_one {
            return Ok(values);
        }
        Ok(values
            .into_iter()
            .map(|v| match v {
                Value::Array(mut one) if one.len() == 1 => one.pop().unwrap_or(Value::Null),
                other => other,
            })
            .collect())
    }

    fn collect(&self) -> Result<Value, Error> {
        let values = self.values()?;
        if self.single {
            Ok(values.into_iter().next().unwrap_or(Value::Null))
        } else {
            Ok(Value::Array(values))
        }
    }

    /// Every task's own result, in order, without failing as a whole (as
    /// a map's `results`): the values as the tasks returned them.
    pub fn results(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Vec<Result<Value, RemoteError>>, Error> {
        if !self.wait(timeout) {
            return Err(Error::Timeout(timeout.unwrap_or_default()));
        }
        Ok(self.set.all_items())
    }

    /// The values by engine id (ipyparallel's `get_dict`), for results of a
    /// direct view, one task per engine.
    pub fn get_dict(&self, timeout: Option<Duration>) -> Result<BTreeMap<EngineId, Value>, Error> {
        if !self.wait(timeout) {
            return Err(Error::Timeout(timeout.unwrap_or_default()));
        }
        let values = self.values()?;
        let engines = self.metadata().into_iter().map(|m| m.engine_id);
        Ok(engines
            .zip(values)
            .filter_map(|(e, v)| e.map(|e| (e, v)))
            .collect())
    }

    /// Metadata of every task, in submission order.
    pub fn metadata(&self) -> Vec<Metadata> {
        let s = self.set.lock();
        self.set
            .tasks
            .iter()
            .zip(&s.replies)
            .map(|(info, arrived)| {
                let mut m = Metadata {
                    msg_id: info.msg_id,
                    submitted: info.submitted,
                    started: None,
                    completed: None,
                    received: None,
                    engine_id: None,
                    engine_uuid: None,
                    status: None,
                    error: None,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    fuel_used: None,
                    fingerprint: None,
                    after: self.set.after.clone(),
                    follow: self.set.follow.clone(),
                    attempts: 0,
                };
                if let Some(a) = arrived {
                    let r = &a.result;
                    m.started = Some(r.started);
                    m.completed = Some(r.completed);
                    m.received = Some(a.received);
                    m.engine_id = a.reply.engine.map(|e| e.id);
                    m.engine_uuid = a.reply.engine.map(|e| e.uuid);
                    m.status = Some(r.status());
                    m.error = r.value().err().cloned();
                    m.stdout = r.stdout.clone();
                    m.stderr = r.stderr.clone();
                    m.fuel_used = r.fingerprint.fuel_used;
                    m.fingerprint = Some(r.fingerprint.clone())
                        .filter(|f| f.module != grid_proto::ModuleHash::default());
                    // Counted by the scheduler for tasks with retries; any
                    // other task that reached an engine ran there once.
                    m.attempts = match a.reply.attempts {
                        0 => u32::from(a.reply.engine.is_some()),
                        n => n,
                    };
                }
                m
            })
            .collect()
    }

    /// Each task's stdout so far, in submission order: live while it runs
    /// (as ipyparallel's `ar.stdout`), complete once done.
    pub fn stdout(&self) -> Vec<Vec<u8>> {
        self.set.output(Stream::Stdout)
    }

    /// Each task's stderr so far (see [`stdout`](Self::stdout)).
    pub fn stderr(&self) -> Vec<Vec<u8>> {
        self.set.output(Stream::Stderr)
    }

    /// Time since submission, until the last result arrived (or now).
    pub fn elapsed(&self) -> Duration {
        let first = self
            .set
            .tasks
            .iter()
            .map(|t| t.submitted)
            .min()
            .unwrap_or_default();
        let end = if self.ready() {
            self.metadata()
                .iter()
                .filter_map(|m| m.received)
                .max()
                .unwrap_or_else(Timestamp::now)
        } else {
            Timestamp::now()
        };
        end.since(first)
    }

    /// Tasks done so far.
    pub fn progress(&self) -> usize {
        self.set.done()
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.set.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.tasks.is_empty()
    }

    /// Sum of the tasks' run times on their engines.
    pub fn serial_time(&self) -> Duration {
        self.metadata()
            .iter()
            .filter_map(|m| Some(m.completed?.since(m.started?)))
            .sum()
    }

    /// From the first submission to the last completion.
    pub fn wall_time(&self) -> Duration {
        let md = self.metadata();
        let first = md.iter().map(|m| m.submitted).min().unwrap_or_default();
        let last = md.iter().filter_map(|m| m.completed).max().unwrap_or(first);
        last.since(first)
    }

    pub fn msg_ids(&self) -> Vec<MsgId> {
        self.set.tasks.iter().map(|t| t.msg_id).collect()
    }

    /// Aborts the tasks not done yet: queued ones are dropped, running ones
    /// interrupted. Each reports status `aborted`.
    pub fn abort(&self) -> Result<(), Error> {
        let pending = self.pending();
        if pending.is_empty() {
            return Ok(());
        }
        self.client.abort(pending)
    }

    /// [`abort`](Self::abort), async.
    pub async fn abort_async(&self) -> Result<(), Error> {
        let pending = self.pending();
        if pending.is_empty() {
            return Ok(());
        }
        self.client.abort_async(pending).await
    }

    fn pending(&self) -> Vec<MsgId> {
        let s = self.set.lock();
        self.set
            .tasks
            .iter()
            .zip(&s.replies)
            .filter(|(_, r)| r.is_none())
            .map(|(t, _)| t.msg_id)
            .collect()
    }

    /// Shows a progress bar on stderr (done/total, elapsed) until every task is done.
    pub fn wait_interactive(&self) {
        let total = self.len() as u64;
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} tasks, {elapsed_precise}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        while !self.set.wait_for(
            self.len(),
            Some(Instant::now() + Duration::from_millis(100)),
        ) {
            bar.set_position(self.progress() as u64);
        }
        bar.set_position(total);
        bar.finish();
    }
}

pub(crate) fn split(items: Vec<Result<Value, RemoteError>>) -> (Vec<Value>, Vec<RemoteError>) {
    let mut values = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for item in items {
        match item {
            Ok(v) => values.push(v),
            Err(e) => errors.push(e),
        }
    }
    (values, errors)
}

/// Something that can be waited for: an [`AsyncResult`] or an
/// [`AsyncMapResult`](crate::AsyncMapResult), as
/// [`Client::wait`](crate::Client::wait) takes them.
pub trait Wait: Send + Sync {
    /// Blocks until done or `deadline`; whether it is done.
    fn wait_until(&self, deadline: Option<Instant>) -> bool;

    /// Waits (async, from any executor) until done.
    fn wait_async_dyn(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;

    /// The msg_ids of its tasks.
    fn msg_ids(&self) -> Vec<MsgId>;
}

impl Wait for AsyncResult {
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        self.set.wait_all(deadline)
    }

    fn wait_async_dyn(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.wait_async())
    }

    fn msg_ids(&self) -> Vec<MsgId> {
        AsyncResult::msg_ids(self)
    }
}
