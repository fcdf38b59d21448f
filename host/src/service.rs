//! The engine slot on the bus: the async shell around an [`Engine`].
//!
//! [`EngineSlot::start`] registers with the controller (`hub.register`, which
//! assigns the slot's id), subscribes to `engine.<id>.task`,
//! `engine.<id>.control` and, in the queue group it shares with every
//! engine, `sched.pure` (the `pure` scheme's tasks: the slot tells the
//! controller which it took on `sched.claim`), then announces itself with a first heartbeat, which
//! is what makes it schedulable (so no work is sent before it listens). The
//! slot's worker thread owns the [`TaskQueue`](crate::queue) state machine and
//! its task subscription: it decodes submissions, runs wasm (CPU-bound and
//! synchronous) task after task without waking anyone, fetches modules from
//! the blob store when this process has not loaded them yet, and publishes
//! each result to `result.<client>` itself (to `sched.result` for a task
//! sent with retries: the scheduler decides whether it is final); a
//! publisher task streams the
//! running task's output meanwhile (`iopub.rs`). The async shell handles control
//! messages (applying aborts directly through the [`Interrupter`], since the
//! worker is busy while a task runs) and heartbeats. Malformed messages are
//! logged and skipped.
//!
//! The controller may die and come back. A slot need not register again:
//! its heartbeats carry its id, uuid and host, and a controller that does
//! not count it takes it back from them (see the hub). It watches the
//! controller's beat (`controller`) for what it must do: publish again the
//! results of the last moments, which no controller recorded while none
//! ran (`replay.rs`).
//!
//! So that the blob collector (`grid_controller::gc`) never takes the module
//! of a task that runs, the slot records in the blob store that it uses a
//! module ([`Bus::touch_blob`]) when a task needs it, loaded or not, and
//! from each heartbeat while the task runs (the worker notes the running
//! task's module in the [`Counters`] for that). The runtime lets one record
//! per module and process through per
//! [`module_use_interval`](crate::EngineConfig::module_use_interval)
//! (`uses.rs`); each goes out in a task of its own, so neither the worker
//! nor the shell waits for the store, and a failed record is only logged.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use grid_bus::{
    Bus, BusError, SPILL_THRESHOLD, SPIN, Subscription, load_body, now_or_never, spill_body,
    spin_block_on,
};
use grid_proto::{
    BeatWatch, BlobHash, Claim, ClientId, Control, ControllerBeat, EngineId, EngineRef, EngineUuid,
    Heartbeat, HubReply, HubRequest, ModuleHash, MsgId, Outcome, PURE_QUEUE, Reply, Subjects,
    Submission, Task, TaskError, TaskResult, Timestamp, Value, Work,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::iopub::Iopub;
use crate::queue::{QueueAction, QueueEvent, TaskQueue};
use crate::replay::{MARGIN, Recent};
use crate::{Engine, Interrupter, Runtime};

/// How often a slot says it is alive.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);

/// Why a slot could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot register with the controller: {0}")]
    Register(String),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot start the engine's worker thread: {0}")]
    Thread(std::io::Error),
}

/// A running engine slot.
pub struct EngineSlot {
    engine: EngineRef,
    task: JoinHandle<()>,
    counters: Arc<Counters>,
    interrupter: Interrupter,
}

impl EngineSlot {
    /// Registers a new slot of `runtime` with the cluster's controller and
    /// starts serving. Waits up to `register_timeout` for a controller.
    pub async fn start(
        bus: Arc<dyn Bus>,
        subjects: Subjects,
        runtime: Arc<Runtime>,
        host: String,
        register_timeout: Duration,
    ) -> Result<EngineSlot, ServiceError> {
        let uuid = EngineUuid::new();
        // Beats first: the controller beats as it registers the slot, so
        // the slot knows its incarnation from the start.
        let beats = bus.subscribe(&subjects.controller()).await?;
        let id = register(&*bus, &subjects, uuid, host.clone(), register_timeout).await?;
        let engine = EngineRef { id, uuid };
        let tasks = bus.subscribe(&subjects.engine_task(id)).await?;
        // Tasks of a cluster whose scheme is pure; nothing comes here otherwise.
        let pure = bus
            .queue_subscribe(&subjects.sched_pure(), PURE_QUEUE)
            .await?;
        let control = bus.subscribe(&subjects.engine_control(id)).await?;
        let recent = Arc::new(Recent::default());
        let mut slot = runtime.engine_with(id, uuid);
        let live = Arc::new(Iopub::default());
        slot.set_live_output(Some(live.clone()));
        let publisher = tokio::spawn(live.clone().publish(bus.clone(), subjects.clone()));
        let interrupter = slot.interrupter();
        let counters = Arc::new(Counters::default());
        let (events, queue) = mpsc::unbounded_channel();
        Worker {
            engine: slot,
            me: engine,
            bus: bus.clone(),
            subjects: subjects.clone(),
            handle: Handle::current(),
            counters: counters.clone(),
            live,
            recent: recent.clone(),
        }
        .spawn(tasks, pure, queue)?;
        let (counters_of_slot, interrupter_of_slot) = (counters.clone(), interrupter.clone());
        let shell = Shell {
            bus,
            subjects,
            engine,
            host,
            worker: events,
            interrupter,
            counters,
            runtime,
            recent,
        };
        shell.heartbeat().await?;
        let task = tokio::spawn(async move {
            shell.serve(control, beats).await;
            publisher.abort();
        });
        Ok(EngineSlot {
            engine,
            task,
            counters: counters_of_slot,
            interrupter: interrupter_of_slot,
        })
    }

    pub fn id(&self) -> EngineId {
        self.engine.id
    }

    pub fn uuid(&self) -> EngineUuid {
        self.engine.uuid
    }

    /// Waits until the slot stops (after `Control::Shutdown`).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }

    /// Stops the slot at once, as if its process died: the running task is
    /// interrupted, queued work abandoned, and nothing more is published
    /// (no result, no heartbeat).
    pub fn kill(&self) {
        self.counters.killed.store(true, Ordering::SeqCst);
        self.interrupter.abort_current();
        self.task.abort();
    }
}

async fn register(
    bus: &dyn Bus,
    subjects: &Subjects,
    uuid: EngineUuid,
    host: String,
    timeout: Duration,
) -> Result<EngineId, ServiceError> {
    let request = grid_proto::encode(&HubRequest::Register { uuid, host })
        .map_err(|e| ServiceError::Register(e.to_string()))?;
    let give_up = tokio::time::Instant::now() + timeout;
    let mut backoff = Duration::from_millis(5);
    loop {
        let left = give_up.saturating_duration_since(tokio::time::Instant::now());
        match bus
            .request(
                &subjects.hub("register"),
                Bytes::from(request.clone()),
                left,
            )
            .await
        {
            Ok(msg) => {
                return match grid_proto::decode::<HubReply>(&msg.payload) {
                    Ok(HubReply::Registered { id }) => Ok(id),
                    Ok(other) => Err(ServiceError::Register(format!(
                        "unexpected reply {other:?}"
                    ))),
                    Err(e) => Err(ServiceError::Register(e.to_string())),
                };
            }
            // No controller yet: it may be starting.
            Err(BusError::NoResponders(_)) if tokio::time::Instant::now() + backoff < give_up => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(e) => {
                return Err(ServiceError::Register(format!(
                    "no controller answered: {e}"
                )));
            }
        }
    }
}

/// What the worker keeps for the shell: counters for heartbeats, and the
/// running task's module.
#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    done: AtomicU64,
    /// Set by [`EngineSlot::kill`]: the worker publishes nothing more.
    killed: AtomicBool,
    /// The module of the task running now, whose use the shell records.
    running_module: Mutex<Option<ModuleHash>>,
}

impl Counters {
    fn set_running_module(&self, module: Option<ModuleHash>) {
        // A panic while holding the lock cannot leave an `Option` half-set.
        *self
            .running_module
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = module;
    }

    fn running_module(&self) -> Option<ModuleHash> {
        *self
            .running_module
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records in the blob store that this process uses `module`, unless the
/// runtime says one was recorded within its interval (`uses.rs`). In a task
/// of its own on `handle`'s runtime: the caller never waits for the store,
/// and a failure costs a debug line (the next record is an interval later).
fn record_use(bus: &Arc<dyn Bus>, runtime: &Runtime, handle: &Handle, module: ModuleHash) {
    if !runtime.module_uses.due(module, Instant::now()) {
        return;
    }
    let bus = bus.clone();
    handle.spawn(async move {
        if let Err(error) = bus.touch_blob(&BlobHash(module.0)).await {
            tracing::debug!(module = %module.short(), %error, "cannot record a use of a module");
        }
    });
}

/// The async side: control messages and heartbeats.
struct Shell {
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    engine: EngineRef,
    /// Said in every heartbeat, so that a controller that does not count
    /// this engine (restarted, or declared it dead) takes it back whole.
    host: String,
    worker: mpsc::UnboundedSender<QueueEvent>,
    interrupter: Interrupter,
    counters: Arc<Counters>,
    runtime: Arc<Runtime>,
    /// What the worker published lately, for a controller that restarts.
    recent: Arc<Recent>,
}

impl Shell {
    async fn serve(self, mut control: Subscription, mut beats: Subscription) {
        let mut heartbeat = tokio::time::interval(HEARTBEAT_PERIOD);
        heartbeat.tick().await;
        let mut controller = BeatWatch::new(Instant::now());
        loop {
            tokio::select! {
                msg = beats.next() => {
                    let Some(msg) = msg else { return };
                    match grid_proto::decode::<ControllerBeat>(&msg.payload) {
                        Ok(beat) => self.controller_beat(&mut controller, &beat).await,
                        Err(e) => tracing::warn!(error = %e, "skipping a malformed controller beat"),
                    }
                }
                msg = control.next() => {
                    let Some(msg) = msg else { return };
                    match grid_proto::decode::<Control>(&msg.payload) {
                        Ok(Control::Abort(ids)) => {
                            // The worker may be busy running the task: interrupt it from here.
                            for id in &ids {
                                self.interrupter.abort(*id);
                            }
                            if self.worker.send(QueueEvent::Abort(ids)).is_err() {
                                return;
                            }
                        }
                        Ok(Control::Shutdown) => {
                            // Dropping the sender stops the worker after its task.
                            self.interrupter.abort_current();
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(engine = %self.engine.id, error = %e, "skipping malformed control message");
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    let _ = self.heartbeat().await;
                    if let Some(module) = self.counters.running_module() {
                        record_use(&self.bus, &self.runtime, &Handle::current(), module);
                    }
                }
            }
        }
    }

    /// A beat of the controller: results published lately are dropped
    /// while the same one beats, and published again for a new one (see
    /// `replay.rs`).
    async fn controller_beat(&self, watch: &mut BeatWatch, beat: &ControllerBeat) {
        let now = Instant::now();
        match watch.heard(beat, now) {
            Some(heard) => {
                let again = self
                    .recent
                    .since(heard.checked_sub(MARGIN).unwrap_or(heard));
                tracing::info!(
                    engine = %self.engine.id,
                    results = again.len(),
                    "the controller restarted: publishing the latest results again"
                );
                for (subject, payload) in again {
                    if let Err(e) = self.bus.publish(&subject, payload).await {
                        tracing::warn!(error = %e, "cannot publish a result again");
                    }
                }
            }
            None => {
                if let Some(t) = now.checked_sub(MARGIN) {
                    self.recent.forget_before(t);
                }
            }
        }
    }

    async fn heartbeat(&self) -> Result<(), BusError> {
        let beat = Heartbeat {
            engine: self.engine,
            running: self.interrupter.current(),
            queued: self.counters.queued.load(Ordering::Relaxed),
            done: self.counters.done.load(Ordering::Relaxed),
            dropped: self.bus.dropped_messages(),
            host: self.host.clone(),
        };
        let bytes = grid_proto::encode(&beat).map_err(|e| BusError::Other(e.to_string()))?;
        self.bus
            .publish(&self.subjects.heartbeat(self.engine.id), Bytes::from(bytes))
            .await
    }
}

/// The thread that owns the slot's queue and runs its wasm. It reads its
/// task subscription itself (one wake-up per message, none between queued
/// tasks), takes control events from the shell, and publishes each result.
struct Worker {
    engine: Engine,
    me: EngineRef,
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    handle: Handle,
    counters: Arc<Counters>,
    live: Arc<Iopub>,
    /// What it published lately, for a controller that restarts.
    recent: Arc<Recent>,
}

/// What woke an idle worker.
enum Wake {
    Task(Option<grid_bus::Message>),
    Pure(Option<grid_bus::Message>),
    Control(Option<QueueEvent>),
}

impl Worker {
    fn spawn(
        mut self,
        tasks: Subscription,
        pure: Subscription,
        control: mpsc::UnboundedReceiver<QueueEvent>,
    ) -> Result<(), ServiceError> {
        std::thread::Builder::new()
            .name(format!("grid-engine-{}", self.me.id))
            .spawn(move || self.serve(tasks, pure, control))
            .map(|_| ())
            .map_err(ServiceError::Thread)
    }

    fn serve(
        &mut self,
        mut tasks: Subscription,
        mut pure: Subscription,
        mut control: mpsc::UnboundedReceiver<QueueEvent>,
    ) {
        let mut queue = TaskQueue::default();
        let mut actions = Vec::new();
        let mut claims = Vec::new();
        loop {
            if self.killed() {
                return;
            }
            // Take in everything that arrived, then act; block only when idle.
            loop {
                match control.try_recv() {
                    Ok(event) => actions.extend(queue.handle(event)),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            while let Some(msg) = now_or_never(tasks.next()) {
                match msg {
                    Some(msg) => actions.extend(self.arrived(&mut queue, &msg, None)),
                    None => return,
                }
            }
            while let Some(msg) = now_or_never(pure.next()) {
                match msg {
                    Some(msg) => actions.extend(self.arrived(&mut queue, &msg, Some(&mut claims))),
                    None => return,
                }
            }
            self.claim(&mut claims);
            let mut start = None;
            for action in actions.drain(..) {
                match action {
                    QueueAction::Start(sub) => start = Some(sub),
                    QueueAction::Aborted(sub) => {
                        let result =
                            TaskResult::immediate(sub.msg_id, Outcome::Err(TaskError::Aborted));
                        self.reply(&sub, result);
                    }
                    QueueAction::Interrupt(id) => {
                        self.engine.interrupter().abort(id);
                    }
                }
            }
            self.counters
                .queued
                .store(queue.queued(), Ordering::Relaxed);
            if let Some(sub) = start {
                let result = self.run(&sub);
                self.reply(&sub, result);
                actions.extend(queue.handle(QueueEvent::Finished(sub.msg_id)));
                self.counters.done.store(queue.done(), Ordering::Relaxed);
                continue;
            }
            // Wait for work, polling briefly before sleeping: the next task
            // often follows within microseconds, and a cold wake-up costs more.
            let wake = {
                let _runtime = self.handle.enter();
                spin_block_on(
                    async {
                        tokio::select! {
                            msg = tasks.next() => Wake::Task(msg),
                            msg = pure.next() => Wake::Pure(msg),
                            event = control.recv() => Wake::Control(event),
                        }
                    },
                    SPIN,
                )
            };
            match wake {
                Wake::Task(Some(msg)) => actions.extend(self.arrived(&mut queue, &msg, None)),
                Wake::Pure(Some(msg)) => {
                    actions.extend(self.arrived(&mut queue, &msg, Some(&mut claims)));
                }
                Wake::Control(Some(event)) => actions.extend(queue.handle(event)),
                Wake::Task(None) | Wake::Pure(None) | Wake::Control(None) => return,
            }
        }
    }

    /// Queues a submission; one from `sched.pure` is noted in `claims`.
    fn arrived(
        &self,
        queue: &mut TaskQueue,
        msg: &grid_bus::Message,
        claims: Option<&mut Vec<(MsgId, ClientId, Timestamp)>>,
    ) -> Vec<QueueAction> {
        match grid_proto::decode::<Submission>(&msg.payload) {
            Ok(sub) => {
                if let Some(claims) = claims {
                    claims.push((sub.msg_id, sub.client, sub.submitted));
                }
                queue.handle(QueueEvent::Arrived(sub))
            }
            Err(e) => {
                tracing::warn!(engine = %self.me.id, error = %e, "skipping malformed submission");
                Vec::new()
            }
        }
    }

    /// Tells the controller which `sched.pure` tasks this slot took, so
    /// that they fail if it dies (see `Claim`).
    fn claim(&self, claims: &mut Vec<(MsgId, ClientId, Timestamp)>) {
        if claims.is_empty() || self.killed() {
            return;
        }
        let claim = Claim {
            engine: self.me,
            tasks: std::mem::take(claims),
        };
        let published = grid_proto::encode(&claim)
            .map_err(|e| BusError::Other(e.to_string()))
            .and_then(|bytes| self.publish(&self.subjects.sched_claim(), Bytes::from(bytes)));
        if let Err(e) = published {
            tracing::warn!(engine = %self.me.id, error = %e, "cannot claim tasks");
        }
    }

    /// Publishes from the worker thread: at once when the bus can, else
    /// through the runtime.
    fn publish(&self, subject: &str, bytes: Bytes) -> Result<(), BusError> {
        match self.bus.publish_now(subject, &bytes) {
            Some(done) => done,
            None => self.handle.block_on(self.bus.publish(subject, bytes)),
        }
    }

    fn killed(&self) -> bool {
        self.counters.killed.load(Ordering::SeqCst)
    }

    fn reply(&self, sub: &Submission, result: TaskResult) {
        if self.killed() {
            return;
        }
        // A task the scheduler may run again reports to it, and it tells
        // the client the final outcome (see `SchedFlags::retries`).
        let subject = if sub.sched.retries > 0 {
            self.subjects.sched_result()
        } else {
            self.subjects.result(sub.client)
        };
        let published = Reply::new(sub.client, sub.submitted, Some(self.me), &result)
            .map_err(|e| BusError::Other(e.to_string()))
            .and_then(|mut reply| {
                if reply.result.len() > SPILL_THRESHOLD {
                    // A large result is offered as a blob (kept until the offers outgrow
                    // their budget, then persisted); the message carries its hash.
                    reply.result = self.handle.block_on(spill_body(
                        &*self.bus,
                        reply.result,
                        SPILL_THRESHOLD,
                    ))?;
                }
                let bytes =
                    grid_proto::encode(&reply).map_err(|e| BusError::Other(e.to_string()))?;
                let bytes = Bytes::from(bytes);
                self.publish(&subject, bytes.clone())?;
                self.recent.note(&subject, &bytes);
                Ok(())
            });
        if let Err(e) = published {
            tracing::warn!(engine = %self.me.id, error = %e, "cannot publish a result");
        }
    }

    fn run(&mut self, sub: &Submission) -> TaskResult {
        let namespace = |outcome| TaskResult::immediate(sub.msg_id, outcome);
        // Inline work (nearly all of it) needs no trip through the runtime.
        let loaded = match sub.work.inline() {
            Some(_) => sub
                .work
                .decode()
                .map_err(|e| BusError::Other(e.to_string())),
            None => self.handle.block_on(load_body(&*self.bus, &sub.work)),
        };
        let work = match loaded {
            Ok(work) => work,
            Err(e) => {
                return namespace(Outcome::Err(TaskError::BadArguments {
                    function: "?".into(),
                    message: format!("cannot read the submission's work: {e}"),
                }));
            }
        };
        match work {
            Work::Task(mut task) => {
                if let Err(e) = self.ensure_module(&task) {
                    return namespace(Outcome::Err(e));
                }
                task.msg_id = sub.msg_id;
                self.counters.set_running_module(Some(task.module));
                self.live.begin(sub.msg_id, sub.client);
                let result = self.engine.run(&task);
                self.live.end();
                self.counters.set_running_module(None);
                result
            }
            Work::Push(values) => {
                let ns = self.engine.namespace_mut();
                for (name, value) in values {
                    ns.set(name, value);
                }
                namespace(Outcome::Ok(Value::Null))
            }
            Work::Pull(names) => namespace(pull(self.engine.namespace(), &names)),
            Work::Clear => {
                self.engine.namespace_mut().clear();
                namespace(Outcome::Ok(Value::Null))
            }
        }
    }

    /// Loads the task's module and records that this process uses it.
    fn ensure_module(&self, task: &Task) -> Result<(), TaskError> {
        self.load_module(task)?;
        record_use(&self.bus, self.engine.runtime(), &self.handle, task.module);
        Ok(())
    }

    /// Loads the task's module: from memory, the disk cache, or the blob store.
    fn load_module(&self, task: &Task) -> Result<(), TaskError> {
        let runtime = self.engine.runtime();
        let deterministic = task.deterministic.is_some();
        if runtime.prepare(&task.module, deterministic) {
            return Ok(());
        }
        let blob = self
            .handle
            .block_on(self.bus.get_blob(&BlobHash(task.module.0)))
            .map_err(|e| {
                TaskError::Internal(format!("cannot fetch module {}: {e}", task.module.short()))
            })?
            .ok_or(TaskError::ModuleNotFound(task.module))?;
        let loaded = runtime.load_for(&blob, deterministic)?;
        if loaded != task.module {
            return Err(TaskError::ModuleInvalid {
                reason: format!(
                    "the blob stored as {} hashes to {}",
                    task.module.short(),
                    loaded.short()
                ),
            });
        }
        Ok(())
    }
}

fn pull(ns: &crate::Namespace, names: &[String]) -> Outcome {
    let mut values = Vec::with_capacity(names.len());
    for name in names {
        match ns.get(name) {
            Some(v) => values.push(v.clone()),
            None => {
                return Outcome::Err(TaskError::BadArguments {
                    function: "pull".into(),
                    message: format!("`{name}` is not in this engine's namespace"),
                });
            }
        }
    }
    Outcome::Ok(Value::Array(values))
}
