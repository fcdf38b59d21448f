//! The hub: the controller's bookkeeping, as a sans-I/O state machine that
//! owns the [`Scheduler`].
//!
//! It keeps the engine registry, the task store (every submission and every
//! result the controller sees) and per-engine counts, answers [`HubRequest`]s,
//! and feeds the scheduler. Like the scheduler it takes an event and the time
//! ([`Hub::handle`]) and returns [`HubAction`]s for the async shell
//! (`service.rs`) to perform; it is the shell's only entry point.
//!
//! Decisions worth knowing:
//! - Engine ids are 0, 1, 2, ... in registration order; a uuid that registers
//!   again gets its old id back. With [`Readiness::FirstHeartbeat`] (the
//!   default) a registered engine is announced and given work only after its
//!   first message on `heartbeat.<id>`: it learns its id from the register
//!   reply and only then subscribes to `engine.<id>.task`, so anything sent
//!   earlier would be lost (ipyparallel also completes a registration on the
//!   engine's first heartbeat).
//! - Every observation is idempotent: the controller sees its own dispatches
//!   again on `engine.*.task`, and a task already known is left alone. The
//!   first result of a task wins; later ones are ignored.
//! - Every task's record goes to the [`TaskStore`] (`store/`): its client,
//!   submission time, dependencies, the engine and attempts each time the
//!   scheduler sends it, and its final [`Reply`]; not its work (arguments
//!   can be large: only the scheduler keeps the work of a task it may run
//!   again). Queries (`result_status`, `get_result`, `db_query`,
//!   `purge_results`) are the store's; so a controller with the SQLite
//!   store answers for tasks done long ago, and the in-memory store
//!   ([`ControllerConfig::max_records`], [`ControllerConfig::max_record_bytes`])
//!   forgets the oldest completed ones. The hub itself holds only the
//!   tasks not done, and the engine and status of the last [`RECENT_DONE`]
//!   done (never more than its store keeps), which is what it needs on the
//!   hot path: to tell a submission or result seen again from a new one,
//!   and a dependency's state, without asking the store (a dependency on a
//!   task done before those is looked up there). So a controller's memory
//!   does not grow with the tasks it has seen, only with those in flight.
//! - `ResultStatus` sorts ids in three: completed, pending (known, not done)
//!   and unknown (never seen, or purged). Unknown is not lost: a query can
//!   overtake its own submission on the bus; a client that keeps getting
//!   "unknown" for a task it sent may conclude it was dropped. `GetResult`
//!   returns only completed results (the others are absent), as many as
//!   fit in [`RESULTS_BYTES`]: a client asks again for the rest.
//! - `Watch` is ipyparallel's `AsyncHubResult`: a client asks for tasks
//!   another client submitted; the hub answers which are done (fetched
//!   with `GetResult`) and sends it a copy of each pending one's result
//!   when it comes ([`HubAction::Forward`]). Unknown ones are watched too
//!   (a watch can overtake a submission), at most [`UNKNOWN_WATCHED`] of
//!   them; the client gives up on one that stays unknown.
//! - A controller that restarts on the same store (SQLite) takes over
//!   ([`Hub::with_store`]): engines keep their ids (they are in the store),
//!   tasks that were on an engine stay its own (they fail if it does not
//!   beat within the heartbeat timeout), and tasks that waited in the
//!   scheduler, whose work the store does not keep, are orphans: reported
//!   `unknown`, so that their clients, which keep each task's message until
//!   its reply, send them again (a client notices the controller's new
//!   incarnation on its beat and asks at once); those not sent again within
//!   [`ORPHAN_GRACE`] (their client is gone) fail as `lost`, saying that
//!   the controller restarted. Re-queued by their clients, not from the
//!   store: the work is the client's, and a client that is gone does not
//!   want its result delivered anywhere.
//! - A heartbeat from an engine the hub does not count as registered, one
//!   declared dead after a network outage or one that registered with a
//!   controller before this one (kept in memory only), takes it back under
//!   its id, as if it had registered again, unless another engine holds the
//!   id; the tasks it was failed for stay failed (their first result won).
//! - An abort can overtake the task it names (it travels on `hub.abort`, the
//!   task on `sched.submit` or `engine.<id>.task`, read by other
//!   subscriptions), so an abort of a task not seen yet is remembered, at
//!   most [`EARLY_ABORTS`](grid_proto::EARLY_ABORTS) of them, the oldest forgotten first. When the
//!   task shows up, a load-balanced one fails at once with
//!   `TaskError::Aborted`, exactly as an abort of a task waiting in the
//!   scheduler does, and is never dispatched; a direct one gets a
//!   `Control::Abort` sent to its engine, which drops or interrupts it
//!   (the engine remembers early aborts too, so the order in which it gets
//!   the task and the abort does not matter). A result for the id spends its
//!   early abort. An id aborted after its record was purged counts as not
//!   seen yet: resubmitting it would abort it.
//! - Each engine's heartbeat carries how many messages its bus dropped
//!   (slow consumer) and `QueueStatus` reports the last count per engine;
//!   the controller's own count, which only the shell can read from its
//!   bus, is fed in as [`HubEvent::BusDrops`] and reported as
//!   `QueueStatus::dropped`.
//! - A dropped message can leave the hub counting a task on an engine that
//!   does not have it: the task never reached the engine, or its result
//!   never reached the controller. Either would hold the client (or the
//!   engine's place in the scheduler) forever. So once any drop is reported
//!   (the engine's count or the controller's grows), an engine that is idle
//!   (nothing running, nothing queued) at two heartbeats in a row while the
//!   hub counts tasks on it has lost those tasks: they fail as `lost`, and
//!   their places are freed. Two beats, so that a task still on its way at
//!   the first is not taken for lost; only after drops, so that normal runs
//!   never pay for the check. (Submissions and replies lost between a client
//!   and the controller are the client's watchdog's business.)
//! - When an engine leaves, every task it holds fails with `EngineDied`,
//!   direct ones included, so no client waits forever (load-balanced ones
//!   with retries left run again instead). A direct task sent to an engine
//!   that left (or never registered) fails at once the same way.
//! - Every task that finishes, however (an engine's result, or a failure
//!   the hub decides: engine died, lost, aborted before it arrived), is
//!   told to the scheduler first ([`SchedEvent::Finished`]): it may run the
//!   task again (retries: the result is then dropped, the task stays
//!   pending, and its record counts the attempt), and tasks waiting on it
//!   must hear. A submission's dependencies are resolved against this
//!   store ([`DepState`]), so they may name any task it knows. Results of
//!   tasks sent with retries come on `sched.result`
//!   ([`HubEvent::HeldResult`]), unseen by their client: the hub delivers
//!   the final one, with its attempts.
//! - The `pure` scheme has no scheduler in the path: clients publish on
//!   `sched.pure`, a queue group the engines share, and the hub records
//!   what it sees there ([`HubEvent::PureSubmitted`]) as unclaimed until an
//!   engine says it took it ([`HubEvent::Claimed`]); then it is the
//!   engine's, and fails if the engine dies. An unclaimed task is lost once
//!   every live engine was idle at a heartbeat [`PURE_GRACE`] after it
//!   arrived (an idle engine has claimed all it received), or after that
//!   grace when no engine is up (NATS drops a message for an empty queue
//!   group): it fails as `lost`. An abort of an unclaimed task goes to every
//!   engine. Work for the scheduler that reaches a pure controller
//!   (`sched.submit`, from a client that has not learnt the scheme yet)
//!   goes on to `sched.pure`, or fails as unschedulable when it asks for
//!   what needs a scheduler.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use grid_proto::{
    BlobHash, Claim, ClientId, ClusterEvent, Control, EarlyAborts, EngineId, EngineInfo,
    EngineQueue, EngineRef, EngineUuid, HubReply, HubRequest, MsgId, Outcome, Purge, QueueStatus,
    Reply, Scheme, Status, Submission, TaskError, TaskFilter, TaskRecord, TaskResult, Timestamp,
};

use crate::scheduler::{DepState, SchedAction, SchedEvent, Scheduler, SchedulerConfig};
use crate::store::{Heavy, MemoryStore, NewTask, StoreError, TaskStore};

/// When a registered engine starts receiving work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Readiness {
    /// At its first heartbeat: it has subscribed to its subjects by then.
    #[default]
    FirstHeartbeat,
    /// At once when it registers. Work placed on the engine before it has
    /// subscribed to `engine.<id>.task` is lost: only safe when nothing waits
    /// to be scheduled while engines register.
    OnRegister,
}

/// How the controller behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    pub scheduler: SchedulerConfig,
    pub readiness: Readiness,
    /// A live engine not heard from (on `heartbeat.<id>`) for this long is
    /// declared dead: its tasks fail with `EngineDied`. Engines beat every
    /// second, so the default, 3 s, tolerates two lost beats. `None` never
    /// declares an engine dead (engines in the controller's own process).
    pub heartbeat_timeout: Option<Duration>,
    /// Completed tasks kept for queries ([`DEFAULT_MAX_RECORDS`]); the
    /// oldest are forgotten first.
    pub max_records: usize,
    /// Bytes of completed tasks' results kept for queries
    /// ([`DEFAULT_MAX_RECORD_BYTES`]); the oldest are forgotten first.
    pub max_record_bytes: usize,
    /// Blobs of the durable store (modules, persisted values) that nothing
    /// has used for this long are collected, except the results of the
    /// records kept (see `gc.rs`); `None`: never.
    pub blob_max_age: Option<Duration>,
}

/// The default [`ControllerConfig::heartbeat_timeout`].
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

/// The default [`ControllerConfig::max_records`].
pub const DEFAULT_MAX_RECORDS: usize = 10_000;

/// The default [`ControllerConfig::max_record_bytes`].
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 << 20;

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            scheduler: SchedulerConfig::default(),
            readiness: Readiness::default(),
            heartbeat_timeout: Some(DEFAULT_HEARTBEAT_TIMEOUT),
            max_records: DEFAULT_MAX_RECORDS,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            blob_max_age: None,
        }
    }
}

/// What the controller saw on the bus (or the clock).
#[derive(Clone, Debug, PartialEq)]
pub enum HubEvent {
    /// A request on `hub.<op>`; answered by exactly one [`HubAction::Respond`].
    Request(HubRequest),
    /// A load-balanced submission on `sched.submit`.
    Submitted(Box<Submission>),
    /// A submission on `sched.pure` (the `pure` scheme: an engine takes it
    /// from the queue group and claims it).
    PureSubmitted(Box<Submission>),
    /// An engine took these `sched.pure` tasks (`sched.claim`).
    Claimed(Claim),
    /// A submission on `engine.<engine>.task` (a client's direct task, or the
    /// controller's own dispatch seen again).
    Observed {
        engine: EngineId,
        submission: Box<Submission>,
    },
    /// A result on `result.<client>`.
    Replied(Box<Reply>),
    /// A result on `sched.result`: of a task sent with retries, which the
    /// scheduler may run again. Only the final one is delivered to its client.
    HeldResult(Box<Reply>),
    /// A heartbeat (`heartbeat.<id>`) from this engine, with the task it
    /// runs, how many wait in its queue, and how many messages its bus
    /// dropped ([`grid_proto::Heartbeat`]).
    Heartbeat {
        engine: EngineRef,
        running: Option<MsgId>,
        queued: u64,
        dropped: u64,
        /// The engine's host ([`grid_proto::Heartbeat::host`]).
        host: String,
    },
    /// The controller's own bus has dropped this many messages in all
    /// ([`grid_bus::Bus::dropped_messages`]), for [`QueueStatus::dropped`].
    /// The shell reads the count, which only it can, and feeds it in when it
    /// changes; the hub only reports it. No actions.
    BusDrops(u64),
    /// Time passed (see [`Hub::poll_timeout`]).
    Tick,
}

/// What the shell should do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum HubAction {
    /// Answer the request being handled.
    Respond(HubReply),
    /// Publish on `sched.pure` (a load-balanced task that reached a
    /// controller of the `pure` scheme on `sched.submit`).
    Pure(Box<Submission>),
    /// Publish on `engine.<engine>.task`.
    Dispatch {
        engine: EngineId,
        submission: Box<Submission>,
    },
    /// Publish on `result.<client>` (the controller failed the task itself).
    Deliver(Box<Reply>),
    /// Publish on `result.<client>` a task's result for a client watching
    /// it (`hub.watch`) that did not submit it.
    Forward { client: ClientId, reply: Box<Reply> },
    /// Copy this blob, a recorded result too large for a message (offered
    /// by its engine, which may go), into the durable blob store, so that
    /// the record's result outlives the engine (a store that keeps every
    /// record only).
    Keep(BlobHash),
    /// Publish on `engine.<engine>.control`.
    Control { engine: EngineId, control: Control },
    /// Publish on `events`.
    Announce(ClusterEvent),
    /// Stop the controller (after performing the actions before this one).
    Stop,
}

/// The hub. See the module documentation.
#[derive(Debug)]
pub struct Hub {
    readiness: Readiness,
    heartbeat_timeout: Option<Duration>,
    scheduler: Scheduler,
    /// Indexed by engine id: every engine that ever registered.
    engines: Vec<EngineRecord>,
    by_uuid: HashMap<EngineUuid, EngineId>,
    /// Tasks not done: their record is also in the store.
    tasks: HashMap<MsgId, LiveTask>,
    /// Every task's record, for queries.
    store: Box<dyn TaskStore>,
    /// How recently done tasks ended, to tell a task seen again from a new
    /// one without asking the store (see the module docs).
    recent: RecentDone,
    /// Clients watching tasks they did not submit (`hub.watch`), by task.
    watchers: HashMap<MsgId, Vec<ClientId>>,
    /// Tasks watched before the hub knew them, oldest first (see
    /// [`UNKNOWN_WATCHED`]).
    unknown_watched: VecDeque<MsgId>,
    /// Tasks a previous controller on this store left waiting in its
    /// scheduler, whose work is lost: they fail at `orphans_expire` unless
    /// their clients send them again (see the module docs).
    orphans: HashMap<MsgId, (ClientId, Timestamp)>,
    orphans_expire: Option<Instant>,
    /// The last [`HubEvent::BusDrops`].
    bus_dropped: u64,
    /// Aborts of tasks not seen yet, oldest first.
    early_aborts: EarlyAborts,
    /// `sched.pure` tasks in the order they arrived, with when; entries of
    /// tasks claimed or done since are skipped (see [`PURE_GRACE`]).
    unclaimed: VecDeque<(Instant, MsgId)>,
}

/// How long a `sched.pure` task may go unclaimed before the engines' idle
/// heartbeats can show that none has it: a heartbeat period, so that an
/// idle heartbeat later than this was sent after the task reached any
/// engine that took it.
pub const PURE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct EngineRecord {
    info: EngineInfo,
    state: EngineState,
    /// Tasks seen on this engine (direct or dispatched) without a result yet.
    outstanding: HashSet<MsgId>,
    /// Results seen from this engine (any status).
    completed: u64,
    /// The last heartbeat; engines that never beat (fakes in tests) are not watched.
    last_heard: Option<Instant>,
    /// The task it said it was running at its last heartbeat.
    running: Option<MsgId>,
    /// The messages its bus had dropped, at its last heartbeat.
    dropped: u64,
    /// Set when a message to or from it may have been dropped since its
    /// tasks were sent (its bus or the controller's dropped some): its idle
    /// heartbeats are then checked for tasks it no longer holds.
    lossy: bool,
    /// Tasks it did not hold at its last heartbeat, which was idle.
    suspects: HashSet<MsgId>,
    /// When it last said it was idle (nothing running or queued).
    last_idle: Option<Instant>,
}

impl EngineRecord {
    fn new(id: EngineId, uuid: EngineUuid, host: String) -> EngineRecord {
        EngineRecord {
            info: EngineInfo { id, uuid, host },
            state: EngineState::Gone,
            outstanding: HashSet::new(),
            lossy: false,
            suspects: HashSet::new(),
            completed: 0,
            last_heard: None,
            running: None,
            dropped: 0,
            last_idle: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EngineState {
    /// Registered, not yet heard from on `heartbeat.<id>`.
    Joining,
    /// Announced, receiving work.
    Live,
    /// Unregistered; its id is kept for its uuid.
    Gone,
}

#[derive(Debug)]
struct LiveTask {
    client: ClientId,
    submitted: Timestamp,
    state: TaskState,
    /// Times the scheduler sent it to an engine.
    attempts: u32,
}

impl LiveTask {
    fn new(client: ClientId, submitted: Timestamp, state: TaskState) -> LiveTask {
        LiveTask {
            client,
            submitted,
            state,
            attempts: 0,
        }
    }
}

#[derive(Debug)]
enum TaskState {
    /// Waiting in the scheduler.
    Unassigned,
    /// Published to `sched.pure`, not claimed by an engine yet.
    Unclaimed,
    /// Sent to this engine.
    Assigned(EngineId),
}

/// Tasks watched while unknown (a watch can overtake the submission it
/// names) that the hub remembers at most; past it, the oldest are forgotten
/// (their watchers ask again).
pub const UNKNOWN_WATCHED: usize = 65_536;

/// Bytes of results in one `get_result` answer at most (NATS's default
/// message limit is 1 MiB); a client asks again for the rest.
pub const RESULTS_BYTES: usize = 768 << 10;

/// How many recently done tasks the hub remembers without its store (at
/// most the store's own bound, so that a task remembered here is in the
/// store too).
pub const RECENT_DONE: usize = 65_536;

/// How long tasks that a previous controller left in its scheduler wait
/// for their clients to send them again (see the module docs).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(10);

/// The engine and status of the last [`RECENT_DONE`] tasks done, oldest
/// forgotten first.
#[derive(Debug)]
struct RecentDone {
    ended: HashMap<MsgId, (Option<EngineId>, Status)>,
    order: VecDeque<MsgId>,
    capacity: usize,
}

impl RecentDone {
    fn new(capacity: usize) -> RecentDone {
        // Sized once (as the store's table): memory does not step up as
        // the hub fills it. Twice the entries it holds: a full table that
        // removes one entry for each it adds fills with tombstones, and
        // hashbrown clears those in place only while at most half full;
        // past that it moves to a table twice as large (seen as a 1 MiB step
        // in the controller's RSS between 10,000 and 40,000 tasks).
        RecentDone {
            ended: HashMap::with_capacity(2 * (capacity + 1)),
            order: VecDeque::with_capacity(capacity + 1),
            capacity,
        }
    }

    fn get(&self, msg_id: &MsgId) -> Option<(Option<EngineId>, Status)> {
        self.ended.get(msg_id).copied()
    }

    fn contains(&self, msg_id: &MsgId) -> bool {
        self.ended.contains_key(msg_id)
    }

    fn insert(&mut self, msg_id: MsgId, engine: Option<EngineId>, status: Status) {
        if self.ended.insert(msg_id, (engine, status)).is_none() {
            self.order.push_back(msg_id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ended.remove(&old);
            }
        }
    }

    fn remove(&mut self, msg_id: &MsgId) {
        // Its place in `order` goes when it comes up.
        self.ended.remove(msg_id);
    }

    fn clear(&mut self) {
        self.ended.clear();
        self.order.clear();
    }
}

impl Hub {
    /// A hub with the in-memory store, bounded by `config`.
    pub fn new(config: ControllerConfig) -> Hub {
        let store = MemoryStore::new(config.max_records, config.max_record_bytes);
        Hub::empty(config, Box::new(store))
    }

    /// A hub on `store`, taking over what an earlier controller on it left
    /// (see the module docs): its engines, which get their ids back, the
    /// tasks they held, which fail if the engine does not beat within the
    /// heartbeat timeout, and the tasks that waited in its scheduler, which
    /// fail after [`ORPHAN_GRACE`] unless their clients send them again.
    pub fn with_store(
        config: ControllerConfig,
        mut store: Box<dyn TaskStore>,
        now: Instant,
    ) -> Result<Hub, StoreError> {
        let engines = store.engines()?;
        let unfinished = store.unfinished()?;
        let mut hub = Hub::empty(config, store);
        for info in engines {
            hub.by_uuid.insert(info.uuid, info.id);
            if let Some(record) = hub.slot(info.id) {
                record.info = info;
            }
        }
        for task in unfinished {
            let engine = task
                .engine
                .filter(|e| hub.record(e.id).is_some_and(|r| r.info.uuid == e.uuid));
            match engine {
                Some(engine) => {
                    let mut live =
                        LiveTask::new(task.client, task.submitted, TaskState::Assigned(engine.id));
                    live.attempts = task.attempts;
                    hub.tasks.insert(task.msg_id, live);
                    if let Some(record) = hub.record_mut(engine.id) {
                        record.outstanding.insert(task.msg_id);
                        // Watched from now: it fails its tasks if it does not beat.
                        record.state = EngineState::Joining;
                        record.last_heard = Some(now);
                    }
                }
                None => {
                    hub.orphans
                        .insert(task.msg_id, (task.client, task.submitted));
                }
            }
        }
        if !hub.orphans.is_empty() {
            hub.orphans_expire = Some(now + ORPHAN_GRACE);
        }
        Ok(hub)
    }

    fn empty(config: ControllerConfig, store: Box<dyn TaskStore>) -> Hub {
        Hub {
            readiness: config.readiness,
            heartbeat_timeout: config.heartbeat_timeout,
            scheduler: Scheduler::new(config.scheduler),
            engines: Vec::new(),
            by_uuid: HashMap::new(),
            tasks: HashMap::new(),
            recent: RecentDone::new(RECENT_DONE.min(store.keeps()).max(1)),
            store,
            watchers: HashMap::new(),
            unknown_watched: VecDeque::new(),
            orphans: HashMap::new(),
            orphans_expire: None,
            bus_dropped: 0,
            early_aborts: EarlyAborts::default(),
            unclaimed: VecDeque::new(),
        }
    }

    /// The blobs holding results of the records kept, which the blob
    /// collector must not collect; `None` if the store cannot say (then
    /// nothing is collected).
    pub fn result_blobs(&mut self) -> Option<std::collections::HashSet<BlobHash>> {
        self.store
            .result_blobs()
            .map_err(|e| tracing::warn!(error = %e, "the task store cannot list its result blobs"))
            .ok()
    }

    /// The scheduler, for inspection.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// How many early aborts (of tasks not seen yet) are remembered.
    pub fn early_aborts(&self) -> usize {
        self.early_aborts.len()
    }

    /// When the hub next needs a [`HubEvent::Tick`]: a scheduling deadline,
    /// or the moment the quietest live engine would be declared dead.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let silence = self.heartbeat_timeout.and_then(|timeout| {
            self.watched_engines()
                .filter_map(|r| r.last_heard)
                .min()
                .and_then(|heard| heard.checked_add(timeout))
        });
        // With no engine up, no heartbeat wakes the hub to find a `pure`
        // task that nobody took.
        let unclaimed = self
            .unclaimed
            .front()
            .filter(|_| self.live_engines().next().is_none())
            .map(|&(since, _)| since + PURE_GRACE);
        [
            self.scheduler.poll_timeout(),
            silence,
            unclaimed,
            self.orphans_expire,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Feeds one event at time `now`; returns what to do, in order.
    pub fn handle(&mut self, event: HubEvent, now: Instant) -> Vec<HubAction> {
        let mut out = Vec::new();
        match event {
            HubEvent::Request(request) => self.request(request, now, &mut out),
            HubEvent::Submitted(submission) if self.scheduler.config().scheme == Scheme::Pure => {
                self.forward_to_pure(submission, now, &mut out)
            }
            HubEvent::PureSubmitted(submission) => {
                self.pure_submitted(&submission, now, &mut out);
            }
            HubEvent::Claimed(claim) => self.claimed(claim, now, &mut out),
            HubEvent::Submitted(submission) => {
                let msg_id = submission.msg_id;
                if self.learn(&submission, TaskState::Unassigned) {
                    if self.early_aborts.take(&msg_id) {
                        // As an abort of a task waiting in the scheduler
                        // would: the same reply, and the scheduler never
                        // holds it.
                        self.fail_and_tell(msg_id, None, TaskError::Aborted, now, &mut out);
                    } else {
                        let deps = self.dep_states(&submission);
                        let event = SchedEvent::Submit { submission, deps };
                        self.schedule(event, now, &mut out);
                    }
                }
            }
            HubEvent::Observed { engine, submission } => {
                self.observe(engine, &submission, now, &mut out)
            }
            HubEvent::Replied(reply) => self.replied(reply, false, now, &mut out),
            HubEvent::HeldResult(reply) => self.replied(reply, true, now, &mut out),
            HubEvent::Heartbeat {
                engine,
                running,
                queued,
                dropped,
                host,
            } => {
                // Only from the uuid that holds the id (or an engine taken
                // back under it): a stranger does not make the id live.
                let known = self
                    .record(engine.id)
                    .is_some_and(|r| r.info.uuid == engine.uuid && r.state != EngineState::Gone);
                if !known && !self.take_back(engine, host) {
                    return out;
                }
                let Some(record) = self.record_mut(engine.id) else {
                    return out;
                };
                record.last_heard = Some(now);
                record.running = running;
                if dropped > record.dropped {
                    record.lossy = true;
                }
                record.dropped = dropped;
                if record.state == EngineState::Joining {
                    self.bring_up(engine.id, now, &mut out);
                }
                let idle = running.is_none() && queued == 0;
                if idle && let Some(record) = self.record_mut(engine.id) {
                    record.last_idle = Some(now);
                }
                self.find_lost(engine.id, idle, now, &mut out);
                self.find_unclaimed(now, &mut out);
            }
            HubEvent::BusDrops(dropped) => {
                if dropped > self.bus_dropped {
                    for record in &mut self.engines {
                        record.lossy = true;
                    }
                }
                self.bus_dropped = dropped;
            }
            HubEvent::Tick => {
                self.bury_the_silent(now, &mut out);
                self.fail_orphans(now, &mut out);
                self.schedule(SchedEvent::Tick, now, &mut out);
                self.find_unclaimed(now, &mut out);
            }
        }
        out
    }

    /// A task's result arrived; `held`: on `sched.result`, so its client
    /// has not seen it. The scheduler decides first whether the task runs
    /// again (then the result is not final, and dropped).
    fn replied(
        &mut self,
        mut reply: Box<Reply>,
        held: bool,
        now: Instant,
        out: &mut Vec<HubAction>,
    ) {
        let msg_id = reply.msg_id;
        // Done, wherever it ran: nothing left to abort.
        self.early_aborts.take(&msg_id);
        if self.recent.contains(&msg_id) {
            // The first result wins.
            return;
        }
        let event = SchedEvent::Finished {
            msg_id,
            engine: reply.engine.map(|e| e.id),
            status: reply.status,
        };
        let actions = self.scheduler.handle(event, now);
        if !retried(&actions, msg_id) {
            if let Some(task) = self.tasks.get(&msg_id) {
                reply.attempts = task.attempts;
            }
            if self.record_reply(&reply, out) && held {
                out.push(HubAction::Deliver(reply));
            }
        }
        self.apply(actions, out);
    }

    /// A load-balanced task reached a controller of the `pure` scheme on
    /// `sched.submit` (its client had not learnt the scheme yet): it goes on
    /// to `sched.pure`, unless it asks for what only a scheduler does.
    fn forward_to_pure(
        &mut self,
        submission: Box<Submission>,
        now: Instant,
        out: &mut Vec<HubAction>,
    ) {
        if let Some(why) = submission.sched.refused_by_pure() {
            if self.learn(&submission, TaskState::Unassigned) {
                let error = TaskError::Unschedulable(why);
                self.fail_and_tell(submission.msg_id, None, error, now, out);
            }
            return;
        }
        if self.pure_submitted(&submission, now, out) {
            out.push(HubAction::Pure(submission));
        }
    }

    /// A task on `sched.pure`: recorded until an engine claims it. Returns
    /// whether it is new and still to run (not aborted before it came).
    fn pure_submitted(
        &mut self,
        submission: &Submission,
        now: Instant,
        out: &mut Vec<HubAction>,
    ) -> bool {
        let msg_id = submission.msg_id;
        if !self.learn(submission, TaskState::Unclaimed) {
            return false;
        }
        self.unclaimed.push_back((now, msg_id));
        self.schedule(SchedEvent::Seen(msg_id), now, out);
        if self.early_aborts.take(&msg_id) {
            // Whichever engine takes it drops it (engines remember early aborts).
            self.abort_everywhere(msg_id, out);
            self.fail_and_tell(msg_id, None, TaskError::Aborted, now, out);
            return false;
        }
        true
    }

    /// An engine took `sched.pure` tasks: they are its now (and fail if it dies).
    fn claimed(&mut self, claim: Claim, now: Instant, out: &mut Vec<HubAction>) {
        let engine = claim.engine.id;
        let live = self
            .record(engine)
            .is_some_and(|r| r.info.uuid == claim.engine.uuid && r.state != EngineState::Gone);
        for (msg_id, client, submitted) in claim.tasks {
            if !self.tasks.contains_key(&msg_id) {
                // The claim overtook the submission.
                let task = NewTask {
                    msg_id,
                    client,
                    submitted,
                    engine: None,
                    after: None,
                    follow: None,
                };
                if !self.learn_task(task, TaskState::Unclaimed) {
                    continue;
                }
            }
            let Some(record) = self.tasks.get_mut(&msg_id) else {
                continue;
            };
            if !matches!(record.state, TaskState::Unclaimed) {
                continue;
            }
            record.state = TaskState::Assigned(engine);
            record.attempts = 1;
            self.store.assigned(msg_id, claim.engine, 1);
            if live {
                if let Some(r) = self.record_mut(engine) {
                    r.outstanding.insert(msg_id);
                }
            } else {
                self.fail_and_tell(
                    msg_id,
                    Some(engine),
                    TaskError::EngineDied(engine),
                    now,
                    out,
                );
            }
        }
    }

    /// Fails `sched.pure` tasks that no engine took: once every live
    /// engine has been idle since [`PURE_GRACE`] after a task arrived, none
    /// holds it (an idle engine has claimed all it received), so it was
    /// lost on the way (to an engine that died, or to a queue group with
    /// no engine in it, which NATS drops).
    fn find_unclaimed(&mut self, now: Instant, out: &mut Vec<HubAction>) {
        while let Some(&(since, msg_id)) = self.unclaimed.front() {
            let unclaimed = self
                .tasks
                .get(&msg_id)
                .is_some_and(|t| matches!(t.state, TaskState::Unclaimed));
            if !unclaimed {
                self.unclaimed.pop_front();
                continue;
            }
            let settled = since + PURE_GRACE;
            let nobody_has_it = {
                let mut live = self.live_engines().peekable();
                if live.peek().is_none() {
                    now >= settled
                } else {
                    live.all(|r| r.last_idle.is_some_and(|idle| idle >= settled))
                }
            };
            if !nobody_has_it {
                return;
            }
            self.unclaimed.pop_front();
            let why = "no engine took it from the pure scheme's queue: it was published \
                       while no engine listened, or to an engine that died"
                .to_string();
            tracing::warn!(%msg_id, "{why}");
            self.fail_and_tell(msg_id, None, TaskError::Lost(why), now, out);
        }
    }

    /// Tells every live engine to drop or interrupt `msg_id`.
    fn abort_everywhere(&self, msg_id: MsgId, out: &mut Vec<HubAction>) {
        for record in self.live_engines() {
            out.push(HubAction::Control {
                engine: record.info.id,
                control: Control::Abort(vec![msg_id]),
            });
        }
    }

    /// Records a task seen for the first time (submitted, observed on an
    /// engine's subject, claimed); `false`, and nothing done, if it is
    /// known already: pending, or done recently (a submission seen again,
    /// or after its result).
    fn learn(&mut self, submission: &Submission, state: TaskState) -> bool {
        let task = NewTask {
            msg_id: submission.msg_id,
            client: submission.client,
            submitted: submission.submitted,
            engine: None,
            after: submission.sched.after.clone(),
            follow: submission.sched.follow.clone(),
        };
        self.learn_task(task, state)
    }

    fn learn_task(&mut self, mut task: NewTask, state: TaskState) -> bool {
        let msg_id = task.msg_id;
        if self.tasks.contains_key(&msg_id) || self.recent.contains(&msg_id) {
            return false;
        }
        // A task a previous controller left in its scheduler, sent again.
        self.orphans.remove(&msg_id);
        if let TaskState::Assigned(engine) = state {
            task.engine = self.engine_ref(engine);
        }
        self.tasks
            .insert(msg_id, LiveTask::new(task.client, task.submitted, state));
        self.store.submitted(task);
        true
    }

    /// Sorts `msg_ids` in completed, pending and unknown: pending when the
    /// hub holds them, else as the store says. A task a previous controller
    /// left in its scheduler is unknown, so that its client sends it again,
    /// unless `orphans_pending`.
    fn result_status(&mut self, msg_ids: Vec<MsgId>, orphans_pending: bool) -> HubReply {
        // Those the hub does not hold, from the store: done or not.
        let ask: Vec<MsgId> = msg_ids
            .iter()
            .filter(|id| !self.tasks.contains_key(id) && !self.orphans.contains_key(id))
            .copied()
            .collect();
        let stored = self.stored_by_id(ask, |r| r.status.is_some());
        let (mut completed, mut pending, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
        for msg_id in msg_ids {
            let list = if self.tasks.contains_key(&msg_id) {
                &mut pending
            } else if self.orphans.contains_key(&msg_id) {
                if orphans_pending {
                    &mut pending
                } else {
                    &mut unknown
                }
            } else if stored.get(&msg_id) == Some(&true) {
                &mut completed
            } else {
                // Never seen, or pending in the store but not held here: a
                // task this controller never took over. Its fate is unknown.
                &mut unknown
            };
            list.push(msg_id);
        }
        HubReply::ResultStatus {
            completed,
            pending,
            unknown,
        }
    }

    /// What the hub knows of the tasks `submission`'s dependencies name.
    /// Tasks done long ago are looked up in the store.
    fn dep_states(&mut self, submission: &Submission) -> Vec<(MsgId, DepState)> {
        let sched = &submission.sched;
        let ids: Vec<MsgId> = [&sched.after, &sched.follow]
            .into_iter()
            .flatten()
            .flat_map(|dep| dep.msg_ids.iter().copied())
            .collect();
        let known = |hub: &Hub, id: &MsgId| {
            if hub.tasks.contains_key(id) || hub.orphans.contains_key(id) {
                return Some(DepState::Pending);
            }
            let (engine, status) = hub.recent.get(id)?;
            Some(DepState::Done {
                engine,
                ok: status == Status::Ok,
            })
        };
        let unknown: Vec<MsgId> = ids
            .iter()
            .filter(|id| known(self, id).is_none())
            .copied()
            .collect();
        let stored = self.stored_by_id(unknown, |r| match r.status {
            None => DepState::Pending,
            Some(status) => DepState::Done {
                engine: r.engine.map(|e| e.id),
                ok: status == Status::Ok,
            },
        });
        ids.into_iter()
            .map(|id| {
                let state = known(self, &id)
                    .or_else(|| stored.get(&id).copied())
                    .unwrap_or(DepState::Unknown);
                (id, state)
            })
            .collect()
    }

    /// Every record `filter` selects, page after page, with the `heavy`
    /// fields; a store that cannot answer is logged and counts as having
    /// nothing.
    /// What `of` makes of the store's records of `ids`, by id (no query
    /// when there are none).
    fn stored_by_id<T>(
        &mut self,
        ids: Vec<MsgId>,
        of: impl Fn(&TaskRecord) -> T,
    ) -> HashMap<MsgId, T> {
        if ids.is_empty() {
            return HashMap::new();
        }
        self.stored(TaskFilter::new().msg_id_in(ids), Heavy::NONE)
            .iter()
            .map(|r| (r.msg_id, of(r)))
            .collect()
    }

    fn stored(&mut self, filter: TaskFilter, heavy: Heavy) -> Vec<TaskRecord> {
        let mut records = Vec::new();
        let mut filter = filter;
        loop {
            match self.store.query(&filter, heavy) {
                Ok((page, more)) => {
                    let last = page.last().map(|r| r.msg_id);
                    records.extend(page);
                    match last {
                        Some(last) if more => filter.after = Some(last),
                        _ => return records,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the task store cannot answer");
                    return records;
                }
            }
        }
    }

    fn request(&mut self, request: HubRequest, now: Instant, out: &mut Vec<HubAction>) {
        match request {
            HubRequest::Register { uuid, host } => self.register(uuid, host, now, out),
            HubRequest::Unregister { id } => {
                let reply = match self.record(id).map(|r| r.state) {
                    None => HubReply::Error(format!("engine {id} is not registered")),
                    Some(EngineState::Gone) => HubReply::Ok,
                    Some(EngineState::Joining | EngineState::Live) => {
                        out.push(HubAction::Respond(HubReply::Ok));
                        self.take_down(id, ClusterEvent::EngineUnregistered(id), now, out);
                        return;
                    }
                };
                out.push(HubAction::Respond(reply));
            }
            HubRequest::Engines => {
                let engines = self.live_engines().map(|r| r.info.clone()).collect();
                out.push(HubAction::Respond(HubReply::Engines(engines)));
            }
            HubRequest::QueueStatus => out.push(HubAction::Respond(HubReply::QueueStatus(
                self.queue_status(),
            ))),
            HubRequest::ResultStatus { msg_ids } => {
                let reply = self.result_status(msg_ids, false);
                out.push(HubAction::Respond(reply));
            }
            HubRequest::Watch { client, msg_ids } => {
                let reply = self.result_status(msg_ids, true);
                if let HubReply::ResultStatus {
                    pending, unknown, ..
                } = &reply
                {
                    for msg_id in pending.iter().chain(unknown) {
                        let watchers = self.watchers.entry(*msg_id).or_default();
                        if !watchers.contains(&client) {
                            watchers.push(client);
                        }
                    }
                    // An unknown task may be on its way: watched too, the
                    // oldest of them forgotten past a bound.
                    self.unknown_watched.extend(unknown.iter().copied());
                    while self.unknown_watched.len() > UNKNOWN_WATCHED {
                        if let Some(old) = self.unknown_watched.pop_front()
                            && !self.tasks.contains_key(&old)
                        {
                            self.watchers.remove(&old);
                        }
                    }
                }
                out.push(HubAction::Respond(reply));
            }
            HubRequest::GetResult { msg_ids } => {
                let reply = match self.store.results(&msg_ids) {
                    Ok(mut results) => {
                        // One answer must fit in one message: the rest are
                        // asked for again.
                        let mut bytes = 0;
                        let fit = results
                            .iter()
                            .take_while(|r| {
                                bytes += r.result.len() + 256;
                                bytes <= RESULTS_BYTES
                            })
                            .count();
                        results.truncate(fit.max(1));
                        HubReply::Results(results)
                    }
                    Err(e) => HubReply::Error(e.to_string()),
                };
                out.push(HubAction::Respond(reply));
            }
            HubRequest::DbQuery { filter, keys } => {
                let reply = match self.store.query(&filter, Heavy::of(&keys)) {
                    Ok((records, more)) => HubReply::Records { records, more },
                    Err(e) => HubReply::Error(e.to_string()),
                };
                out.push(HubAction::Respond(reply));
            }
            HubRequest::Abort { msg_ids } => {
                out.push(HubAction::Respond(HubReply::Ok));
                self.abort(msg_ids, now, out);
            }
            HubRequest::PurgeResults(purge) => {
                let reply = match self.store.purge(&purge) {
                    Ok(count) => {
                        match &purge {
                            Purge::Ids(ids) => ids.iter().for_each(|id| self.recent.remove(id)),
                            Purge::All | Purge::Before(_) => self.recent.clear(),
                        }
                        HubReply::Purged { count }
                    }
                    Err(e) => HubReply::Error(e.to_string()),
                };
                out.push(HubAction::Respond(reply));
            }
            HubRequest::Info => out.push(HubAction::Respond(HubReply::Info {
                scheme: self.scheduler.config().scheme,
            })),
            HubRequest::Shutdown => {
                out.push(HubAction::Respond(HubReply::Ok));
                self.schedule(SchedEvent::Shutdown, now, out);
                for record in &self.engines {
                    if record.state != EngineState::Gone {
                        out.push(HubAction::Control {
                            engine: record.info.id,
                            control: Control::Shutdown,
                        });
                    }
                }
                out.push(HubAction::Stop);
            }
        }
    }

    fn register(&mut self, uuid: EngineUuid, host: String, now: Instant, out: &mut Vec<HubAction>) {
        let id = match self.by_uuid.get(&uuid) {
            Some(&id) => id,
            None => {
                let Ok(n) = u32::try_from(self.engines.len()) else {
                    out.push(HubAction::Respond(HubReply::Error(
                        "no engine id left to assign".into(),
                    )));
                    return;
                };
                let id = EngineId(n);
                self.engines
                    .push(EngineRecord::new(id, uuid, String::new()));
                self.by_uuid.insert(uuid, id);
                id
            }
        };
        out.push(HubAction::Respond(HubReply::Registered { id }));
        let Some(record) = self.record_mut(id) else {
            return;
        };
        // A registration repeated while the engine is known changes nothing:
        // it is a resent request, and its tasks are still its own.
        if record.state == EngineState::Gone {
            record.info.host = host;
            record.state = EngineState::Joining;
            let info = record.info.clone();
            self.store.engine_registered(&info);
            if self.readiness == Readiness::OnRegister {
                self.bring_up(id, now, out);
            }
        }
    }

    /// A heartbeat from an engine the hub does not count as registered:
    /// one declared dead (a long network outage) or registered with a
    /// controller before this one. It is taken back under its id, as if it
    /// had registered again, unless the id belongs to another engine.
    /// Returns whether it was.
    fn take_back(&mut self, engine: EngineRef, host: String) -> bool {
        if let Some(&id) = self.by_uuid.get(&engine.uuid)
            && id != engine.id
        {
            return false;
        }
        let Some(record) = self.slot(engine.id) else {
            return false;
        };
        let placeholder = record.info.uuid.is_nil();
        if record.info.uuid != engine.uuid && !placeholder {
            return false;
        }
        if record.state != EngineState::Gone {
            return true;
        }
        tracing::info!(engine = %engine.id, "an engine the controller did not count is beating: taking it back");
        record.info.uuid = engine.uuid;
        if !host.is_empty() {
            record.info.host = host;
        }
        record.state = EngineState::Joining;
        let info = record.info.clone();
        self.by_uuid.insert(engine.uuid, engine.id);
        self.store.engine_registered(&info);
        true
    }

    /// A joining engine becomes live: announced, and given work.
    fn bring_up(&mut self, id: EngineId, now: Instant, out: &mut Vec<HubAction>) {
        let Some(record) = self.record_mut(id) else {
            return;
        };
        record.state = EngineState::Live;
        let info = record.info.clone();
        out.push(HubAction::Announce(ClusterEvent::EngineRegistered(info)));
        self.schedule(SchedEvent::EngineUp(id), now, out);
    }

    /// Declares dead every live engine silent for longer than the heartbeat timeout.
    fn bury_the_silent(&mut self, now: Instant, out: &mut Vec<HubAction>) {
        let Some(timeout) = self.heartbeat_timeout else {
            return;
        };
        let silent: Vec<EngineId> = self
            .watched_engines()
            .filter(|r| {
                r.last_heard
                    .is_some_and(|t| now.saturating_duration_since(t) >= timeout)
            })
            .map(|r| r.info.id)
            .collect();
        for id in silent {
            self.take_down(id, ClusterEvent::EngineDied(id), now, out);
        }
    }

    /// An engine leaves: announced (if it was), and every task it holds fails.
    fn take_down(
        &mut self,
        id: EngineId,
        event: ClusterEvent,
        now: Instant,
        out: &mut Vec<HubAction>,
    ) {
        let Some(record) = self.record_mut(id) else {
            return;
        };
        let was_live = record.state == EngineState::Live;
        record.state = EngineState::Gone;
        if was_live {
            out.push(HubAction::Announce(event));
        }
        // Load-balanced tasks first (the scheduler fails them), then the
        // direct ones that are left.
        self.schedule(SchedEvent::EngineDown(id), now, out);
        let mut left: Vec<MsgId> = self
            .record(id)
            .map(|r| r.outstanding.iter().copied().collect())
            .unwrap_or_default();
        left.sort_unstable();
        for msg_id in left {
            self.fail_and_tell(msg_id, Some(id), TaskError::EngineDied(id), now, out);
        }
    }

    fn observe(
        &mut self,
        engine: EngineId,
        submission: &Submission,
        now: Instant,
        out: &mut Vec<HubAction>,
    ) {
        let msg_id = submission.msg_id;
        if !self.learn(submission, TaskState::Assigned(engine)) {
            return;
        }
        // A load-balanced task may be waiting for it.
        self.schedule(SchedEvent::Seen(msg_id), now, out);
        let aborted_early = self.early_aborts.take(&msg_id);
        let error = match self.record_mut(engine) {
            Some(record) if record.state != EngineState::Gone => {
                record.outstanding.insert(msg_id);
                if aborted_early {
                    // The engine may hold the task already or get it later
                    // (it remembers early aborts too): telling it is enough.
                    out.push(HubAction::Control {
                        engine,
                        control: Control::Abort(vec![msg_id]),
                    });
                }
                return;
            }
            Some(_) => TaskError::EngineDied(engine),
            None => TaskError::Unschedulable(format!("engine {engine} is not registered")),
        };
        let engine = matches!(error, TaskError::EngineDied(_)).then_some(engine);
        self.fail_and_tell(msg_id, engine, error, now, out);
    }

    fn abort(&mut self, msg_ids: Vec<MsgId>, now: Instant, out: &mut Vec<HubAction>) {
        let mut waiting = Vec::new();
        let mut on_engines: BTreeMap<EngineId, Vec<MsgId>> = BTreeMap::new();
        for msg_id in msg_ids {
            match self.tasks.get(&msg_id).map(|t| &t.state) {
                Some(TaskState::Unassigned) => waiting.push(msg_id),
                Some(TaskState::Unclaimed) => self.abort_everywhere(msg_id, out),
                Some(TaskState::Assigned(engine)) => {
                    on_engines.entry(*engine).or_default().push(msg_id)
                }
                None if self.recent.contains(&msg_id) => {}
                None => match self.orphans.remove(&msg_id) {
                    // Left by a previous controller: nowhere to abort it.
                    Some((client, submitted)) => {
                        self.fail(msg_id, client, submitted, TaskError::Aborted, out)
                    }
                    // Not seen yet: the abort overtook its task on the bus.
                    None => self.early_aborts.remember(msg_id),
                },
            }
        }
        if !waiting.is_empty() {
            self.schedule(SchedEvent::Abort(waiting), now, out);
        }
        for (engine, msg_ids) in on_engines {
            out.push(HubAction::Control {
                engine,
                control: Control::Abort(msg_ids),
            });
        }
    }

    fn queue_status(&self) -> QueueStatus {
        let engines = self
            .live_engines()
            .map(|r| {
                let outstanding = r.outstanding.len() as u64;
                let running = outstanding.min(1);
                let queue = EngineQueue {
                    queue: outstanding - running,
                    running,
                    completed: r.completed,
                    current: r.running,
                    dropped: r.dropped,
                };
                (r.info.id, queue)
            })
            .collect();
        QueueStatus {
            engines,
            unassigned: (self.scheduler.waiting() + self.scheduler.blocked()) as u64,
            dropped: self.bus_dropped,
        }
    }

    /// Feeds the scheduler and turns its actions into the hub's.
    fn schedule(&mut self, event: SchedEvent, now: Instant, out: &mut Vec<HubAction>) {
        let actions = self.scheduler.handle(event, now);
        self.apply(actions, out);
    }

    /// Turns the scheduler's actions into the hub's.
    fn apply(&mut self, actions: Vec<SchedAction>, out: &mut Vec<HubAction>) {
        for action in actions {
            match action {
                SchedAction::Dispatch { engine, submission } => {
                    let msg_id = submission.msg_id;
                    if let Some(task) = self.tasks.get_mut(&msg_id) {
                        task.state = TaskState::Assigned(engine);
                        task.attempts += 1;
                        let attempts = task.attempts;
                        if let Some(engine) = self.engine_ref(engine) {
                            self.store.assigned(msg_id, engine, attempts);
                        }
                    }
                    if let Some(record) = self.record_mut(engine) {
                        record.outstanding.insert(msg_id);
                    }
                    out.push(HubAction::Dispatch { engine, submission });
                }
                SchedAction::Fail {
                    msg_id,
                    client,
                    submitted,
                    error,
                } => self.fail(msg_id, client, submitted, error, out),
                SchedAction::Retry {
                    msg_id,
                    engine,
                    attempt,
                } => {
                    tracing::debug!(%msg_id, %engine, attempt, "the task failed; running it again");
                    if let Some(task) = self.tasks.get_mut(&msg_id) {
                        task.state = TaskState::Unassigned;
                    }
                    if let Some(record) = self.record_mut(engine) {
                        record.outstanding.remove(&msg_id);
                        record.completed += 1;
                    }
                }
            }
        }
    }

    /// After messages were dropped, an engine idle at two heartbeats in a
    /// row while the hub counts tasks on it has lost them: their message
    /// never reached it, or their result never reached the controller. They
    /// fail as `lost` (a client that has the result keeps it; the first
    /// result wins), which also frees their places in the scheduler. Two
    /// heartbeats, a second apart, so that a task on its way at the first is
    /// not taken for lost.
    fn find_lost(&mut self, id: EngineId, idle: bool, now: Instant, out: &mut Vec<HubAction>) {
        let Some(record) = self.record_mut(id) else {
            return;
        };
        if !record.lossy {
            return;
        }
        if !idle {
            record.suspects.clear();
            return;
        }
        let mut lost: Vec<MsgId> = record
            .suspects
            .iter()
            .filter(|m| record.outstanding.contains(m))
            .copied()
            .collect();
        lost.sort_unstable();
        record.suspects = record
            .outstanding
            .iter()
            .filter(|m| !lost.contains(m))
            .copied()
            .collect();
        record.lossy = !record.outstanding.is_empty();
        for msg_id in lost {
            let why = format!(
                "engine {id} no longer has the task: a message was dropped on the \
                 way (slow consumer), so it never ran there or its result never \
                 reached the controller"
            );
            tracing::warn!(%msg_id, "{why}");
            self.fail_and_tell(msg_id, Some(id), TaskError::Lost(why), now, out);
        }
    }

    /// Fails a task on the hub's own authority (it died with `engine`, was
    /// lost, was aborted before it arrived): the scheduler hears of it
    /// first, because it may run the task again (retries) and its
    /// dependents must know; else the failure is recorded and delivered.
    fn fail_and_tell(
        &mut self,
        msg_id: MsgId,
        engine: Option<EngineId>,
        error: TaskError,
        now: Instant,
        out: &mut Vec<HubAction>,
    ) {
        let Some(task) = self.tasks.get(&msg_id) else {
            return;
        };
        let (client, submitted) = (task.client, task.submitted);
        let event = SchedEvent::Finished {
            msg_id,
            engine,
            status: error.status(),
        };
        let actions = self.scheduler.handle(event, now);
        if !retried(&actions, msg_id) {
            self.fail(msg_id, client, submitted, error, out);
        }
        self.apply(actions, out);
    }

    /// Fails a task on the controller's own authority: records the reply and
    /// has it delivered.
    fn fail(
        &mut self,
        msg_id: MsgId,
        client: ClientId,
        submitted: Timestamp,
        error: TaskError,
        out: &mut Vec<HubAction>,
    ) {
        // The task reached the engine that died; every other failure is
        // before any engine.
        let engine = match &error {
            TaskError::EngineDied(id) => self.record(*id).map(|r| EngineRef {
                id: *id,
                uuid: r.info.uuid,
            }),
            _ => None,
        };
        let result = TaskResult::immediate(msg_id, Outcome::Err(error));
        let reply = match Reply::new(client, submitted, engine, &result) {
            Ok(mut reply) => {
                reply.attempts = self.tasks.get(&msg_id).map_or(0, |t| t.attempts);
                Box::new(reply)
            }
            Err(e) => {
                tracing::error!(%msg_id, error = %e, "cannot encode a failure reply");
                return;
            }
        };
        if self.record_reply(&reply, out) {
            out.push(HubAction::Deliver(reply));
        }
    }

    /// Records a task's result; `false` if it already had one (which
    /// wins). Clients watching the task get a copy.
    fn record_reply(&mut self, reply: &Reply, out: &mut Vec<HubAction>) -> bool {
        let msg_id = reply.msg_id;
        if self.recent.contains(&msg_id) {
            return false;
        }
        self.orphans.remove(&msg_id);
        let engine = match self.tasks.remove(&msg_id).map(|t| t.state) {
            Some(TaskState::Assigned(engine)) => Some(engine),
            Some(TaskState::Unassigned | TaskState::Unclaimed) | None => reply.engine.map(|e| e.id),
        };
        if let Some(record) = engine.and_then(|id| self.record_mut(id)) {
            record.outstanding.remove(&msg_id);
            record.completed += 1;
        }
        self.recent
            .insert(msg_id, reply.engine.map(|e| e.id), reply.status);
        self.store.finished(reply, Timestamp::now());
        if let Some(hash) = reply.result.blob()
            && self.store.keeps() == usize::MAX
        {
            out.push(HubAction::Keep(hash));
        }
        for client in self.watchers.remove(&msg_id).unwrap_or_default() {
            if client != reply.client {
                out.push(HubAction::Forward {
                    client,
                    reply: Box::new(reply.clone()),
                });
            }
        }
        true
    }

    /// The engines that are registered and receiving work.
    fn live_engines(&self) -> impl Iterator<Item = &EngineRecord> {
        self.engines.iter().filter(|r| r.state == EngineState::Live)
    }

    /// The engines declared dead when silent for the heartbeat timeout:
    /// live ones, and those a previous controller had, from when this one
    /// started (engines that registered and never beat are not watched).
    fn watched_engines(&self) -> impl Iterator<Item = &EngineRecord> {
        self.engines.iter().filter(|r| r.state != EngineState::Gone)
    }

    /// Fails the tasks a previous controller left in its scheduler that no
    /// client sent again within [`ORPHAN_GRACE`].
    fn fail_orphans(&mut self, now: Instant, out: &mut Vec<HubAction>) {
        if self.orphans_expire.is_none_or(|at| now < at) {
            return;
        }
        self.orphans_expire = None;
        let mut orphans: Vec<(MsgId, (ClientId, Timestamp))> = self.orphans.drain().collect();
        orphans.sort_unstable_by_key(|(id, _)| *id);
        for (msg_id, (client, submitted)) in orphans {
            let why = format!(
                "the controller restarted while the task waited in its scheduler, which \
                 does not keep a task's work, and its client did not send it again within \
                 {ORPHAN_GRACE:?}"
            );
            tracing::warn!(%msg_id, "{why}");
            self.fail(msg_id, client, submitted, TaskError::Lost(why), out);
        }
    }

    /// The record of engine `id`, made (with placeholders below it, never
    /// live, so that ids stay indexes) if there is none yet: for an engine
    /// registered with an earlier controller.
    fn slot(&mut self, id: EngineId) -> Option<&mut EngineRecord> {
        let index = usize::try_from(id.0).ok()?;
        while self.engines.len() <= index {
            let id = EngineId(u32::try_from(self.engines.len()).ok()?);
            self.engines
                .push(EngineRecord::new(id, EngineUuid::nil(), String::new()));
        }
        self.engines.get_mut(index)
    }

    fn engine_ref(&self, id: EngineId) -> Option<EngineRef> {
        self.record(id).map(|r| EngineRef {
            id,
            uuid: r.info.uuid,
        })
    }

    fn record(&self, id: EngineId) -> Option<&EngineRecord> {
        self.engines.get(usize::try_from(id.0).ok()?)
    }

    fn record_mut(&mut self, id: EngineId) -> Option<&mut EngineRecord> {
        self.engines.get_mut(usize::try_from(id.0).ok()?)
    }
}

/// Whether the scheduler's `actions` run `msg_id` again.
fn retried(actions: &[SchedAction], msg_id: MsgId) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, SchedAction::Retry { msg_id: id, .. } if *id == msg_id))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use grid_proto::{EARLY_ABORTS, SchedFlags, Status, Value, Work};

    use super::*;
    use crate::scheduler::Scheme;

    fn e(id: u32) -> EngineId {
        EngineId(id)
    }

    fn task() -> Submission {
        Submission {
            msg_id: MsgId::new(),
            client: ClientId::new(),
            submitted: Timestamp(1),
            work: grid_proto::Body::new(&Work::Clear).unwrap(),
            sched: SchedFlags::default(),
        }
    }

    /// A reply from `engine` for `s`.
    fn reply(s: &Submission, engine: EngineRef) -> Reply {
        let result = TaskResult::immediate(s.msg_id, Outcome::Ok(Value::Null));
        Reply::new(s.client, s.submitted, Some(engine), &result).unwrap()
    }

    /// A hub, a hand-driven clock, and the engines registered through it.
    struct Bench {
        hub: Hub,
        now: Instant,
        engines: Vec<EngineRef>,
    }

    impl Bench {
        fn new(readiness: Readiness, hwm: usize) -> Bench {
            let config = ControllerConfig {
                scheduler: SchedulerConfig {
                    scheme: Scheme::LeastLoad,
                    hwm,
                    seed: 0,
                },
                readiness,
                ..ControllerConfig::default()
            };
            Bench {
                hub: Hub::new(config),
                now: Instant::now(),
                engines: Vec::new(),
            }
        }

        /// With `n` live engines, ready at once.
        fn with_engines(n: usize, hwm: usize) -> Bench {
            let mut b = Bench::new(Readiness::OnRegister, hwm);
            for _ in 0..n {
                b.register(EngineUuid::new());
            }
            b
        }

        /// On `store`, with `n` live engines, ready at once.
        fn on_store(store: Box<dyn TaskStore>, n: usize, hwm: usize) -> Bench {
            let config = ControllerConfig {
                scheduler: SchedulerConfig {
                    hwm,
                    ..SchedulerConfig::default()
                },
                readiness: Readiness::OnRegister,
                ..ControllerConfig::default()
            };
            let now = Instant::now();
            let mut b = Bench {
                hub: Hub::with_store(config, store, now).unwrap(),
                now,
                engines: Vec::new(),
            };
            for _ in 0..n {
                b.register(EngineUuid::new());
            }
            b
        }

        fn on(&mut self, event: HubEvent) -> Vec<HubAction> {
            self.hub.handle(event, self.now)
        }

        /// Sends a request; returns its one answer and the other actions.
        fn ask(&mut self, request: HubRequest) -> (HubReply, Vec<HubAction>) {
            let actions = self.on(HubEvent::Request(request));
            let (answers, rest): (Vec<_>, Vec<_>) = actions
                .into_iter()
                .partition(|a| matches!(a, HubAction::Respond(_)));
            match &answers[..] {
                [HubAction::Respond(answer)] => (answer.clone(), rest),
                _ => panic!("one answer per request, got {answers:?}"),
            }
        }

        fn register(&mut self, uuid: EngineUuid) -> (EngineId, Vec<HubAction>) {
            let (answer, actions) = self.ask(HubRequest::Register {
                uuid,
                host: "lab-1".into(),
            });
            let HubReply::Registered { id } = answer else {
                panic!("not registered: {answer:?}");
            };
            if !self.engines.iter().any(|r| r.id == id) {
                self.engines.push(EngineRef { id, uuid });
            }
            (id, actions)
        }

        fn engine(&self, id: u32) -> EngineRef {
            self.engines[id as usize]
        }

        fn queue_status(&mut self) -> QueueStatus {
            match self.ask(HubRequest::QueueStatus).0 {
                HubReply::QueueStatus(status) => status,
                other => panic!("{other:?}"),
            }
        }

        fn engine_queue(&mut self, id: u32) -> EngineQueue {
            self.queue_status().engines[&e(id)]
        }

        /// Completed, pending and unknown.
        fn result_status(&mut self, msg_ids: Vec<MsgId>) -> (Vec<MsgId>, Vec<MsgId>, Vec<MsgId>) {
            match self.ask(HubRequest::ResultStatus { msg_ids }).0 {
                HubReply::ResultStatus {
                    completed,
                    pending,
                    unknown,
                } => (completed, pending, unknown),
                other => panic!("{other:?}"),
            }
        }

        fn get_result(&mut self, msg_ids: Vec<MsgId>) -> Vec<Reply> {
            match self.ask(HubRequest::GetResult { msg_ids }).0 {
                HubReply::Results(results) => results,
                other => panic!("{other:?}"),
            }
        }
    }

    fn dispatches(actions: &[HubAction]) -> Vec<(EngineId, MsgId)> {
        actions
            .iter()
            .filter_map(|a| match a {
                HubAction::Dispatch { engine, submission } => Some((*engine, submission.msg_id)),
                _ => None,
            })
            .collect()
    }

    fn delivered(actions: &[HubAction]) -> Vec<Reply> {
        actions
            .iter()
            .filter_map(|a| match a {
                HubAction::Deliver(reply) => Some(Reply::clone(reply)),
                _ => None,
            })
            .collect()
    }

    fn error_of(reply: &Reply) -> TaskError {
        match reply.result.decode().unwrap().outcome {
            Outcome::Err(error) => error,
            Outcome::Ok(v) => panic!("not an error: {v:?}"),
        }
    }

    #[test]
    fn engines_get_ids_in_registration_order_and_keep_them() {
        let mut b = Bench::new(Readiness::OnRegister, 64);
        let (a, b_) = (EngineUuid::new(), EngineUuid::new());
        let (id, actions) = b.register(a);
        assert_eq!(id, e(0));
        let HubAction::Announce(ClusterEvent::EngineRegistered(info)) = &actions[0] else {
            panic!("{actions:?}");
        };
        assert_eq!((info.id, info.uuid, info.host.as_str()), (e(0), a, "lab-1"));
        assert_eq!(b.register(b_).0, e(1));

        // A repeated registration is the same engine, announced once.
        assert_eq!(b.register(a), (e(0), vec![]));

        let (answer, actions) = b.ask(HubRequest::Unregister { id: e(0) });
        assert_eq!(answer, HubReply::Ok);
        assert_eq!(
            actions,
            vec![HubAction::Announce(ClusterEvent::EngineUnregistered(e(0)))]
        );
        let (answer, actions) = b.ask(HubRequest::Unregister { id: e(0) });
        assert_eq!((answer, actions), (HubReply::Ok, vec![]));
        let (answer, _) = b.ask(HubRequest::Unregister { id: e(9) });
        assert!(matches!(answer, HubReply::Error(_)));

        // Back with the same uuid: the same id, announced again.
        let (id, actions) = b.register(a);
        assert_eq!(id, e(0));
        assert!(matches!(
            actions[..],
            [HubAction::Announce(ClusterEvent::EngineRegistered(_))]
        ));
        assert_eq!(b.register(EngineUuid::new()).0, e(2));
        let HubReply::Engines(engines) = b.ask(HubRequest::Engines).0 else {
            panic!()
        };
        let ids: Vec<EngineId> = engines.iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![e(0), e(1), e(2)]);
    }

    #[test]
    fn an_engine_gets_work_from_its_first_heartbeat() {
        let mut b = Bench::new(Readiness::FirstHeartbeat, 64);
        let (id, actions) = b.register(EngineUuid::new());
        assert_eq!(actions, vec![], "not announced before it listens");
        assert_eq!(b.ask(HubRequest::Engines).0, HubReply::Engines(vec![]));
        let t = task();
        assert_eq!(b.on(HubEvent::Submitted(Box::new(t.clone()))), vec![]);
        assert_eq!(b.queue_status().unassigned, 1);

        let stranger = EngineRef {
            id,
            uuid: EngineUuid::new(),
        };
        assert_eq!(beat(&mut b, stranger, None, 0, 0), vec![], "not its uuid");
        let me = b.engine(id.0);
        let actions = beat(&mut b, me, None, 0, 0);
        assert!(matches!(
            actions[0],
            HubAction::Announce(ClusterEvent::EngineRegistered(_))
        ));
        assert_eq!(dispatches(&actions), vec![(id, t.msg_id)]);
        assert_eq!(
            beat(&mut b, me, None, 0, 0),
            vec![],
            "only the first counts"
        );
        let stranger = EngineRef {
            id,
            uuid: EngineUuid::new(),
        };
        assert_eq!(
            beat(&mut b, stranger, None, 0, 0),
            vec![],
            "a stranger under a taken id is ignored"
        );
    }

    #[test]
    fn an_engine_the_hub_does_not_count_is_taken_back_from_its_heartbeats() {
        // Registered with a controller before this one: its id is kept.
        let mut b = Bench::new(Readiness::FirstHeartbeat, 64);
        let old = EngineRef {
            id: e(3),
            uuid: EngineUuid::new(),
        };
        let actions = beat(&mut b, old, None, 0, 0);
        assert!(matches!(
            &actions[..],
            [HubAction::Announce(ClusterEvent::EngineRegistered(info))]
                if info.id == e(3) && info.uuid == old.uuid && info.host == "lab-1"
        ));
        // Ids below it stay free for new engines, which take the next one.
        let (id, _) = b.register(EngineUuid::new());
        assert_eq!(id, e(4));
        // The same uuid under another id is not taken back.
        let moved = EngineRef { id: e(7), ..old };
        assert_eq!(beat(&mut b, moved, None, 0, 0), vec![]);
        let t = task();
        let actions = b.on(HubEvent::Submitted(Box::new(t.clone())));
        assert_eq!(dispatches(&actions), vec![(e(3), t.msg_id)]);
    }

    #[test]
    fn queue_status_counts_outstanding_and_completed_tasks() {
        let mut b = Bench::with_engines(2, 64);
        let tasks: Vec<Submission> = (0..4).map(|_| task()).collect();
        for t in &tasks[..3] {
            b.on(HubEvent::Submitted(Box::new(t.clone())));
        }
        // Least load: 0, 1, 0. A direct task on 0 too.
        b.on(HubEvent::Observed {
            engine: e(0),
            submission: Box::new(tasks[3].clone()),
        });
        let status = b.queue_status();
        assert_eq!(
            status.engines[&e(0)],
            EngineQueue {
                queue: 2,
                running: 1,
                completed: 0,
                current: None,
                dropped: 0
            }
        );
        assert_eq!(status.unassigned, 0);
        let engine0 = b.engine(0);
        b.on(HubEvent::Replied(Box::new(reply(&tasks[0], engine0))));
        b.on(HubEvent::Replied(Box::new(reply(&tasks[3], engine0))));
        let engine1 = b.engine(1);
        b.on(HubEvent::Replied(Box::new(reply(&tasks[1], engine1))));
        let status = b.queue_status();
        assert_eq!(
            status.engines[&e(0)],
            EngineQueue {
                queue: 0,
                running: 1,
                completed: 2,
                current: None,
                dropped: 0
            }
        );
        assert_eq!(
            status.engines[&e(1)],
            EngineQueue {
                queue: 0,
                running: 0,
                completed: 1,
                current: None,
                dropped: 0
            }
        );
    }

    #[test]
    fn result_status_and_get_result_report_what_is_done() {
        let mut b = Bench::with_engines(1, 64);
        let done = task();
        let running = task();
        let never_seen = MsgId::new();
        b.on(HubEvent::Submitted(Box::new(done.clone())));
        b.on(HubEvent::Submitted(Box::new(running.clone())));
        let mut answer = reply(&done, b.engine(0));
        b.on(HubEvent::Replied(Box::new(answer.clone())));
        // The hub counts the times it sent a task to an engine.
        answer.attempts = 1;

        let ids = vec![running.msg_id, done.msg_id, never_seen];
        assert_eq!(
            b.result_status(ids.clone()),
            (vec![done.msg_id], vec![running.msg_id], vec![never_seen])
        );
        assert_eq!(b.get_result(ids), vec![answer]);
    }

    #[test]
    fn a_watching_client_gets_the_results_of_tasks_it_did_not_submit() {
        let mut b = Bench::with_engines(1, 64);
        let (done, running) = (task(), task());
        b.on(HubEvent::Submitted(Box::new(done.clone())));
        b.on(HubEvent::Submitted(Box::new(running.clone())));
        b.on(HubEvent::Replied(Box::new(reply(&done, b.engine(0)))));
        let watcher = ClientId::new();
        let never_seen = MsgId::new();
        let (answer, _) = b.ask(HubRequest::Watch {
            client: watcher,
            msg_ids: vec![done.msg_id, running.msg_id, never_seen],
        });
        assert_eq!(
            answer,
            HubReply::ResultStatus {
                completed: vec![done.msg_id],
                pending: vec![running.msg_id],
                unknown: vec![never_seen],
            }
        );
        // Watching twice still means one copy.
        b.ask(HubRequest::Watch {
            client: watcher,
            msg_ids: vec![running.msg_id],
        });
        let actions = b.on(HubEvent::Replied(Box::new(reply(&running, b.engine(0)))));
        let forwarded: Vec<(ClientId, MsgId)> = actions
            .iter()
            .filter_map(|a| match a {
                HubAction::Forward { client, reply } => Some((*client, reply.msg_id)),
                _ => None,
            })
            .collect();
        assert_eq!(forwarded, vec![(watcher, running.msg_id)]);
        // A second result changes nothing and is not forwarded.
        let actions = b.on(HubEvent::Replied(Box::new(reply(&running, b.engine(0)))));
        assert!(actions.is_empty(), "{actions:?}");
    }

    #[test]
    fn db_query_selects_records_by_status_engine_and_client() {
        let mut b = Bench::with_engines(2, 64);
        let (ok, failed, waiting) = (task(), task(), task());
        for t in [&ok, &failed, &waiting] {
            b.on(HubEvent::Submitted(Box::new(t.clone())));
        }
        b.on(HubEvent::Replied(Box::new(reply(&ok, b.engine(0)))));
        let result = TaskResult::immediate(failed.msg_id, Outcome::Err(TaskError::Aborted));
        let r = Reply::new(failed.client, failed.submitted, Some(b.engine(1)), &result).unwrap();
        b.on(HubEvent::Replied(Box::new(r)));
        let query = |b: &mut Bench, filter: TaskFilter| -> Vec<MsgId> {
            match b
                .ask(HubRequest::DbQuery {
                    filter,
                    keys: vec![],
                })
                .0
            {
                HubReply::Records { records, .. } => {
                    records.into_iter().map(|r| r.msg_id).collect()
                }
                other => panic!("{other:?}"),
            }
        };
        use grid_proto::RecordStatus;
        assert_eq!(
            query(&mut b, TaskFilter::new().status_in([RecordStatus::Aborted])),
            vec![failed.msg_id]
        );
        assert_eq!(
            query(&mut b, TaskFilter::new().status_in([RecordStatus::Pending])),
            vec![waiting.msg_id]
        );
        assert_eq!(
            query(&mut b, TaskFilter::new().client_in([ok.client])),
            vec![ok.msg_id]
        );
        assert_eq!(query(&mut b, TaskFilter::new()).len(), 3);
        // A page at a time.
        let first = query(&mut b, TaskFilter::new().limit(2));
        let HubReply::Records { more, .. } = b
            .ask(HubRequest::DbQuery {
                filter: TaskFilter::new().limit(2),
                keys: vec![],
            })
            .0
        else {
            panic!()
        };
        assert!(more);
        let rest = query(&mut b, TaskFilter::new().after(first[1]));
        assert_eq!(first.len() + rest.len(), 3);
    }

    #[test]
    fn a_hub_restarted_on_its_store_takes_over_engines_and_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.db");
        let open = || Box::new(crate::store::SqliteStore::open(&path).unwrap());
        let mut b = Bench::on_store(open(), 2, 1);
        let (done, on_engine, waiting, gone) = (task(), task(), task(), task());
        // Engine 0 gets `done`, engine 1 `on_engine`; the others wait (hwm 1).
        for t in [&done, &on_engine, &waiting, &gone] {
            b.on(HubEvent::Submitted(Box::new(t.clone())));
        }
        let (e0, e1) = (b.engine(0), b.engine(1));
        b.on(HubEvent::Replied(Box::new(reply(&done, e0))));
        let placed: Vec<MsgId> = b
            .hub
            .tasks
            .iter()
            .filter(|(_, t)| matches!(t.state, TaskState::Assigned(_)))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(placed.len(), 2, "engine 0 took the next one");
        let orphans: Vec<MsgId> = [waiting.msg_id, gone.msg_id]
            .into_iter()
            .filter(|id| !placed.contains(id))
            .collect();
        assert_eq!(orphans.len(), 1);
        drop(b); // a clean stop writes everything; a crash loses the last batch

        let mut b = Bench::on_store(open(), 0, 1);
        let ids = vec![done.msg_id, on_engine.msg_id, orphans[0]];
        let (completed, pending, unknown) = b.result_status(ids);
        assert_eq!(completed, vec![done.msg_id]);
        assert!(pending.contains(&on_engine.msg_id));
        assert_eq!(unknown, orphans, "its client sends it again");
        // Engines keep their ids: a new one gets the next.
        let (id, _) = b.register(EngineUuid::new());
        assert_eq!(id, e(2));
        // Engine 1 beats again: its task is still its own, and its result recorded.
        let actions = beat(&mut b, e1, None, 1, 0);
        assert!(matches!(
            &actions[..],
            [HubAction::Announce(ClusterEvent::EngineRegistered(info))] if info.id == e(1)
        ));
        b.on(HubEvent::Replied(Box::new(reply(&on_engine, e1))));
        assert_eq!(b.get_result(vec![on_engine.msg_id]).len(), 1);
        // Engine 0 never comes back: declared dead at the heartbeat
        // timeout, and the task it held fails.
        b.now += DEFAULT_HEARTBEAT_TIMEOUT;
        beat(&mut b, e1, None, 0, 0);
        let died = delivered(&b.on(HubEvent::Tick));
        let held: Vec<MsgId> = placed
            .into_iter()
            .filter(|id| *id != on_engine.msg_id)
            .collect();
        assert_eq!(died.iter().map(|r| r.msg_id).collect::<Vec<_>>(), held);
        assert_eq!(error_of(&died[0]), TaskError::EngineDied(e(0)));
        // An orphan not sent again fails, saying why.
        assert!(b.hub.poll_timeout().is_some());
        b.now += ORPHAN_GRACE;
        beat(&mut b, e1, None, 0, 0);
        let actions = b.on(HubEvent::Tick);
        let failed = delivered(&actions);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].msg_id, orphans[0]);
        assert!(
            matches!(error_of(&failed[0]), TaskError::Lost(m) if m.contains("restarted")),
            "{failed:?}"
        );
    }

    #[test]
    fn an_orphan_sent_again_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.db");
        let open = || Box::new(crate::store::SqliteStore::open(&path).unwrap());
        let waiting = task();
        {
            // No engine: the task waits in the scheduler.
            let mut b = Bench::on_store(open(), 0, 1);
            b.on(HubEvent::Submitted(Box::new(waiting.clone())));
        }
        let mut b = Bench::on_store(open(), 1, 1);
        let actions = b.on(HubEvent::Submitted(Box::new(waiting.clone())));
        assert_eq!(dispatches(&actions), vec![(e(0), waiting.msg_id)]);
        b.now += ORPHAN_GRACE;
        assert!(delivered(&b.on(HubEvent::Tick)).is_empty());
    }

    #[test]
    fn results_finish_load_balanced_tasks_and_free_the_engine() {
        let mut b = Bench::with_engines(1, 1);
        let first = task();
        let second = task();
        b.on(HubEvent::Submitted(Box::new(first.clone())));
        assert_eq!(b.on(HubEvent::Submitted(Box::new(second.clone()))), vec![]);
        let actions = b.on(HubEvent::Replied(Box::new(reply(&first, b.engine(0)))));
        assert_eq!(dispatches(&actions), vec![(e(0), second.msg_id)]);
    }

    #[test]
    fn observations_are_idempotent() {
        let mut b = Bench::with_engines(1, 64);
        let t = task();
        let actions = b.on(HubEvent::Submitted(Box::new(t.clone())));
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);
        // Its own dispatch, seen again on engine.0.task; the submission resent.
        let seen_again = HubEvent::Observed {
            engine: e(0),
            submission: Box::new(t.clone()),
        };
        assert_eq!(b.on(seen_again), vec![]);
        assert_eq!(b.on(HubEvent::Submitted(Box::new(t.clone()))), vec![]);
        assert_eq!(b.engine_queue(0).running + b.engine_queue(0).queue, 1);
        // Two results: the first wins and counts once.
        let first = reply(&t, b.engine(0));
        let aborted = TaskResult::immediate(t.msg_id, Outcome::Err(TaskError::Aborted));
        let second = Reply::new(t.client, t.submitted, Some(b.engine(0)), &aborted).unwrap();
        assert_eq!(b.on(HubEvent::Replied(Box::new(first.clone()))), vec![]);
        assert_eq!(b.on(HubEvent::Replied(Box::new(second))), vec![]);
        assert_eq!(
            b.get_result(vec![t.msg_id]),
            vec![Reply {
                attempts: 1,
                ..first
            }]
        );
        assert_eq!(b.engine_queue(0).completed, 1);

        // A direct task whose result overtakes its submission.
        let direct = task();
        b.on(HubEvent::Replied(Box::new(reply(&direct, b.engine(0)))));
        b.on(HubEvent::Observed {
            engine: e(0),
            submission: Box::new(direct),
        });
        let queue = b.engine_queue(0);
        assert_eq!((queue.running, queue.queue, queue.completed), (0, 0, 2));
    }

    #[test]
    fn abort_fails_waiting_tasks_and_tells_engines_about_theirs() {
        let mut b = Bench::with_engines(2, 1);
        let on0 = task();
        let on1 = task();
        let waiting = task();
        let direct = task();
        let done = task();
        for t in [&on0, &on1, &waiting] {
            b.on(HubEvent::Submitted(Box::new(t.clone())));
        }
        b.on(HubEvent::Observed {
            engine: e(1),
            submission: Box::new(direct.clone()),
        });
        b.on(HubEvent::Observed {
            engine: e(1),
            submission: Box::new(done.clone()),
        });
        b.on(HubEvent::Replied(Box::new(reply(&done, b.engine(1)))));

        let ids = vec![
            on1.msg_id,
            waiting.msg_id,
            on0.msg_id,
            direct.msg_id,
            done.msg_id,
        ];
        let (answer, actions) = b.ask(HubRequest::Abort { msg_ids: ids });
        assert_eq!(answer, HubReply::Ok);
        let replies = delivered(&actions);
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].msg_id, waiting.msg_id);
        assert_eq!(replies[0].status, Status::Aborted);
        assert_eq!(replies[0].engine, None);
        let controls: Vec<&HubAction> = actions
            .iter()
            .filter(|a| matches!(a, HubAction::Control { .. }))
            .collect();
        assert_eq!(
            controls,
            vec![
                &HubAction::Control {
                    engine: e(0),
                    control: Control::Abort(vec![on0.msg_id])
                },
                &HubAction::Control {
                    engine: e(1),
                    control: Control::Abort(vec![on1.msg_id, direct.msg_id])
                },
            ]
        );
        assert_eq!(
            b.result_status(vec![waiting.msg_id]).0,
            vec![waiting.msg_id]
        );
    }

    #[test]
    fn an_engine_leaving_fails_every_task_it_holds() {
        let mut b = Bench::with_engines(2, 1);
        let balanced = task();
        let direct = task();
        let waiting = task();
        b.on(HubEvent::Submitted(Box::new(balanced.clone())));
        b.on(HubEvent::Observed {
            engine: e(0),
            submission: Box::new(direct.clone()),
        });
        b.on(HubEvent::Submitted(Box::new(task()))); // to engine 1
        b.on(HubEvent::Submitted(Box::new(waiting.clone())));

        let (_, actions) = b.ask(HubRequest::Unregister { id: e(0) });
        let replies = delivered(&actions);
        let failed: Vec<MsgId> = replies.iter().map(|r| r.msg_id).collect();
        assert_eq!(failed, vec![balanced.msg_id, direct.msg_id]);
        for r in &replies {
            assert_eq!(error_of(r), TaskError::EngineDied(e(0)));
            assert_eq!(r.engine, Some(b.engine(0)));
        }
        assert_eq!(dispatches(&actions), vec![], "engine 1 is still full");
        assert_eq!(b.queue_status().unassigned, 1);
        assert!(!b.queue_status().engines.contains_key(&e(0)));

        // A direct task for an engine that left, or never was, fails at once.
        let late = task();
        let actions = b.on(HubEvent::Observed {
            engine: e(0),
            submission: Box::new(late.clone()),
        });
        assert_eq!(
            error_of(&delivered(&actions)[0]),
            TaskError::EngineDied(e(0))
        );
        let actions = b.on(HubEvent::Observed {
            engine: e(42),
            submission: Box::new(task()),
        });
        assert!(matches!(
            error_of(&delivered(&actions)[0]),
            TaskError::Unschedulable(_)
        ));
    }

    #[test]
    fn the_store_forgets_the_oldest_completed_tasks_past_its_bounds() {
        let mut b = Bench::on_store(Box::new(MemoryStore::new(3, usize::MAX)), 1, 0);
        let tasks: Vec<Submission> = (0..5).map(|_| task()).collect();
        for t in &tasks {
            b.on(HubEvent::Submitted(Box::new(t.clone())));
        }
        let ids: Vec<MsgId> = tasks.iter().map(|t| t.msg_id).collect();
        for t in &tasks[..4] {
            let r = reply(t, b.engine(0));
            b.on(HubEvent::Replied(Box::new(r)));
        }
        let (done, pending, unknown) = b.result_status(ids.clone());
        assert_eq!(done, ids[1..4].to_vec(), "the first is forgotten");
        assert_eq!(pending, vec![ids[4]], "a task not done is never forgotten");
        assert_eq!(unknown, vec![ids[0]]);
        // The hub's memory of tasks done is no larger than its store's.
        assert!(b.hub.recent.ended.len() <= 3);
    }

    #[test]
    fn purge_forgets_done_results_only() {
        let mut b = Bench::with_engines(1, 64);
        let (a, c, pending) = (task(), task(), task());
        for t in [&a, &c, &pending] {
            b.on(HubEvent::Submitted(Box::new(t.clone())));
        }
        b.on(HubEvent::Replied(Box::new(reply(&a, b.engine(0)))));
        b.on(HubEvent::Replied(Box::new(reply(&c, b.engine(0)))));

        let (answer, _) = b.ask(HubRequest::PurgeResults(grid_proto::Purge::Ids(vec![
            a.msg_id,
            pending.msg_id,
        ])));
        assert!(matches!(answer, HubReply::Error(m) if m.contains(&pending.msg_id.to_string())));
        assert_eq!(b.get_result(vec![a.msg_id]).len(), 1, "nothing purged");

        let (answer, _) = b.ask(HubRequest::PurgeResults(grid_proto::Purge::Ids(vec![
            a.msg_id,
        ])));
        assert_eq!(answer, HubReply::Purged { count: 1 });
        assert_eq!(b.get_result(vec![a.msg_id, c.msg_id]).len(), 1);

        let (answer, _) = b.ask(HubRequest::PurgeResults(grid_proto::Purge::All));
        assert_eq!(answer, HubReply::Purged { count: 1 });
        assert_eq!(b.get_result(vec![c.msg_id]), vec![]);
        assert_eq!(
            b.result_status(vec![pending.msg_id, c.msg_id]),
            (vec![], vec![pending.msg_id], vec![c.msg_id]),
            "a purged task is unknown"
        );
        // Counts outlive purged results.
        assert_eq!(b.engine_queue(0).completed, 2);
    }

    #[test]
    fn an_unplaced_task_times_out_into_a_result() {
        let mut b = Bench::new(Readiness::OnRegister, 64);
        let mut t = task();
        t.sched.timeout_ms = Some(250);
        b.on(HubEvent::Submitted(Box::new(t.clone())));
        assert_eq!(
            b.hub.poll_timeout(),
            Some(b.now + Duration::from_millis(250))
        );
        b.now += Duration::from_millis(250);
        let replies = delivered(&b.on(HubEvent::Tick));
        assert_eq!(replies.len(), 1);
        assert_eq!((replies[0].client, replies[0].engine), (t.client, None));
        assert!(matches!(
            error_of(&replies[0]),
            TaskError::Unschedulable(m) if m.contains("no engines are registered")
        ));
        assert_eq!(b.result_status(vec![t.msg_id]).0, vec![t.msg_id]);
    }

    #[test]
    fn a_silent_engine_is_declared_dead_and_its_tasks_fail() {
        let mut b = Bench::new(Readiness::FirstHeartbeat, 64);
        let (id, _) = b.register(EngineUuid::new());
        let me = b.engine(id.0);
        beat(&mut b, me, None, 0, 0);
        let t = task();
        let actions = b.on(HubEvent::Submitted(Box::new(t.clone())));
        assert_eq!(dispatches(&actions), vec![(id, t.msg_id)]);
        // Beats keep it alive...
        b.now += Duration::from_secs(2);
        beat(&mut b, me, None, 0, 0);
        b.now += Duration::from_secs(2);
        assert!(b.on(HubEvent::Tick).is_empty());
        // ...silence kills it, and its task fails naming it.
        assert_eq!(b.hub.poll_timeout(), Some(b.now + Duration::from_secs(1)));
        b.now += Duration::from_secs(1);
        let actions = b.on(HubEvent::Tick);
        assert!(actions.contains(&HubAction::Announce(ClusterEvent::EngineDied(id))));
        let failed = delivered(&actions);
        assert_eq!(failed.len(), 1);
        assert_eq!(error_of(&failed[0]), TaskError::EngineDied(id));
        // A late heartbeat (after a network outage) brings it back, with
        // nothing of what it had.
        let actions = beat(&mut b, me, None, 0, 0);
        assert!(matches!(
            &actions[..],
            [HubAction::Announce(ClusterEvent::EngineRegistered(info))] if info.id == id
        ));
        assert_eq!(b.engine_queue(id.0).queue + b.engine_queue(id.0).running, 0);
    }

    #[test]
    fn queue_status_shows_the_task_of_the_last_heartbeat() {
        let mut b = Bench::new(Readiness::FirstHeartbeat, 64);
        let (id, _) = b.register(EngineUuid::new());
        let me = b.engine(id.0);
        let running = MsgId::new();
        beat(&mut b, me, Some(running), 0, 0);
        assert_eq!(b.engine_queue(id.0).current, Some(running));
        beat(&mut b, me, None, 0, 0);
        assert_eq!(b.engine_queue(id.0).current, None);
    }

    #[test]
    fn queue_status_reports_what_engines_and_the_controller_dropped() {
        let mut b = Bench::new(Readiness::FirstHeartbeat, 64);
        let (id, _) = b.register(EngineUuid::new());
        let me = b.engine(id.0);
        beat(&mut b, me, None, 0, 5);
        assert_eq!(b.engine_queue(id.0).dropped, 5);
        assert_eq!(b.queue_status().dropped, 0);
        assert_eq!(b.on(HubEvent::BusDrops(7)), vec![]);
        assert_eq!(b.queue_status().dropped, 7);
        // The last heartbeat's count, not a sum: it is a running total.
        beat(&mut b, me, None, 0, 6);
        assert_eq!(b.engine_queue(id.0).dropped, 6);
    }

    /// The race of trap 2, made deterministic: the abort (on `hub.abort`) is
    /// handled before the submission (on `sched.submit`) it names.
    #[test]
    fn an_abort_that_overtakes_a_load_balanced_submission_fails_it_on_arrival() {
        let mut b = Bench::with_engines(1, 64);
        let early = task();
        let (answer, actions) = b.ask(HubRequest::Abort {
            msg_ids: vec![early.msg_id],
        });
        assert_eq!((answer, actions), (HubReply::Ok, vec![]));
        assert_eq!(
            b.result_status(vec![early.msg_id]),
            (vec![], vec![], vec![early.msg_id]),
            "remembered, but no task is known yet"
        );

        let actions = b.on(HubEvent::Submitted(Box::new(early.clone())));
        assert_eq!(dispatches(&actions), vec![], "never dispatched");
        let replies = delivered(&actions);
        assert_eq!(replies.len(), 1, "{actions:?}");
        assert_eq!(b.hub.scheduler().locate(&early.msg_id), None);
        assert_eq!(b.queue_status().unassigned, 0);
        assert_eq!(b.engine_queue(0).queue + b.engine_queue(0).running, 0);
        assert_eq!(b.result_status(vec![early.msg_id]).0, vec![early.msg_id]);
        assert_eq!(b.get_result(vec![early.msg_id]), replies);

        // The same reply as an abort of a task waiting in the scheduler
        // (but for the times inside the result).
        let mut b2 = Bench::with_engines(0, 64);
        b2.on(HubEvent::Submitted(Box::new(early.clone())));
        let (_, actions) = b2.ask(HubRequest::Abort {
            msg_ids: vec![early.msg_id],
        });
        let usual = delivered(&actions);
        let summary = |r: &Reply| {
            (
                r.msg_id,
                r.status,
                r.client,
                r.submitted,
                r.engine,
                error_of(r),
            )
        };
        assert_eq!(summary(&replies[0]), summary(&usual[0]));
        assert_eq!(
            summary(&replies[0]),
            (
                early.msg_id,
                Status::Aborted,
                early.client,
                early.submitted,
                None,
                TaskError::Aborted
            )
        );

        // Seen again (resent): done already, nothing happens.
        assert_eq!(b.on(HubEvent::Submitted(Box::new(early.clone()))), vec![]);
        // Other tasks are untouched.
        let later = task();
        let actions = b.on(HubEvent::Submitted(Box::new(later.clone())));
        assert_eq!(dispatches(&actions), vec![(e(0), later.msg_id)]);
    }

    /// The same race for a direct task, observed on `engine.<id>.task`: the
    /// engine is told (it may have the task already, or get it later, and
    /// remembers early aborts itself).
    #[test]
    fn an_abort_that_overtakes_a_direct_task_reaches_its_engine() {
        let mut b = Bench::with_engines(2, 64);
        let early = task();
        b.ask(HubRequest::Abort {
            msg_ids: vec![early.msg_id],
        });
        let seen = HubEvent::Observed {
            engine: e(1),
            submission: Box::new(early.clone()),
        };
        assert_eq!(
            b.on(seen.clone()),
            vec![HubAction::Control {
                engine: e(1),
                control: Control::Abort(vec![early.msg_id])
            }]
        );
        assert_eq!(b.result_status(vec![early.msg_id]).1, vec![early.msg_id]);
        assert_eq!(b.on(seen), vec![], "told once");

        // The engine answers `aborted`; the task is done.
        let aborted = TaskResult::immediate(early.msg_id, Outcome::Err(TaskError::Aborted));
        let answer =
            Reply::new(early.client, early.submitted, Some(b.engine(1)), &aborted).unwrap();
        assert_eq!(b.on(HubEvent::Replied(Box::new(answer))), vec![]);
        assert_eq!(b.result_status(vec![early.msg_id]).0, vec![early.msg_id]);
        assert_eq!(b.engine_queue(1).completed, 1);
    }

    /// A task whose result the controller saw first (the engine aborted it
    /// on its own early-abort memory) is done: its early abort is spent.
    #[test]
    fn an_early_abort_is_spent_by_the_result_of_its_task() {
        let mut b = Bench::with_engines(1, 64);
        let early = task();
        b.ask(HubRequest::Abort {
            msg_ids: vec![early.msg_id],
        });
        let aborted = TaskResult::immediate(early.msg_id, Outcome::Err(TaskError::Aborted));
        let answer =
            Reply::new(early.client, early.submitted, Some(b.engine(0)), &aborted).unwrap();
        b.on(HubEvent::Replied(Box::new(answer)));
        assert_eq!(b.hub.early_aborts(), 0);
        let seen = HubEvent::Observed {
            engine: e(0),
            submission: Box::new(early),
        };
        assert_eq!(b.on(seen), vec![], "done: nothing to abort");
    }

    #[test]
    fn early_aborts_are_bounded_and_the_oldest_are_forgotten_first() {
        let mut b = Bench::with_engines(1, 64);
        let tasks: Vec<Submission> = (0..EARLY_ABORTS + 2).map(|_| task()).collect();
        // In two requests, the first one's ids repeated in the second: a
        // repeated id is remembered once, with its first place in line.
        let (first, second) = tasks.split_at(10);
        b.ask(HubRequest::Abort {
            msg_ids: first.iter().map(|t| t.msg_id).collect(),
        });
        b.ask(HubRequest::Abort {
            msg_ids: tasks.iter().map(|t| t.msg_id).collect(),
        });
        assert_eq!(b.hub.early_aborts(), EARLY_ABORTS);
        assert!(second.len() > 2);

        // The two oldest are forgotten: they run.
        for t in &tasks[..2] {
            let actions = b.on(HubEvent::Submitted(Box::new(t.clone())));
            assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);
        }
        // The rest are still aborted on arrival.
        for t in [&tasks[2], &tasks[EARLY_ABORTS + 1]] {
            let actions = b.on(HubEvent::Submitted(Box::new(t.clone())));
            assert_eq!(dispatches(&actions), vec![]);
            assert_eq!(delivered(&actions)[0].status, Status::Aborted);
        }
        assert_eq!(b.hub.early_aborts(), EARLY_ABORTS - 2);
    }

    #[test]
    fn shutdown_stops_engines_then_the_controller() {
        let mut b = Bench::with_engines(2, 1);
        b.on(HubEvent::Submitted(Box::new(task())));
        b.on(HubEvent::Submitted(Box::new(task())));
        let waiting = task();
        b.on(HubEvent::Submitted(Box::new(waiting.clone())));
        let actions = b.on(HubEvent::Request(HubRequest::Shutdown));
        assert_eq!(actions[0], HubAction::Respond(HubReply::Ok));
        assert_eq!(delivered(&actions)[0].msg_id, waiting.msg_id);
        let n = actions.len();
        assert_eq!(
            actions[n - 3..],
            [
                HubAction::Control {
                    engine: e(0),
                    control: Control::Shutdown
                },
                HubAction::Control {
                    engine: e(1),
                    control: Control::Shutdown
                },
                HubAction::Stop,
            ]
        );
    }

    /// A heartbeat from `engine`: running `running`, `queued` waiting,
    /// its bus having dropped `dropped` messages.
    fn beat(
        b: &mut Bench,
        engine: EngineRef,
        running: Option<MsgId>,
        queued: u64,
        dropped: u64,
    ) -> Vec<HubAction> {
        b.on(HubEvent::Heartbeat {
            engine,
            running,
            queued,
            dropped,
            host: "lab-1".into(),
        })
    }

    #[test]
    fn after_drops_tasks_an_idle_engine_lacks_twice_in_a_row_fail_as_lost() {
        let mut b = Bench::with_engines(1, 64);
        let me = b.engine(0);
        let lost = task();
        let kept = task();
        b.on(HubEvent::Submitted(Box::new(lost.clone())));
        // Without drops, an idle engine holding tasks is only a message behind.
        for _ in 0..3 {
            assert_eq!(beat(&mut b, me, None, 0, 0), vec![]);
        }
        // Its bus dropped a message: the first idle beat makes a suspect,
        // a running task clears the suspicion, two idle beats confirm it.
        assert_eq!(beat(&mut b, me, None, 0, 1), vec![]);
        assert_eq!(beat(&mut b, me, Some(lost.msg_id), 0, 1), vec![]);
        assert_eq!(beat(&mut b, me, None, 0, 1), vec![]);
        b.on(HubEvent::Submitted(Box::new(kept.clone())));
        let actions = beat(&mut b, me, None, 0, 1);
        let replies = delivered(&actions);
        assert_eq!(replies.len(), 1, "{actions:?}");
        assert_eq!(replies[0].msg_id, lost.msg_id);
        assert_eq!(error_of(&replies[0]).kind(), "lost");
        assert_eq!(b.result_status(vec![lost.msg_id]).0, vec![lost.msg_id]);
        // The task sent after the first idle beat is only a suspect now;
        // its result, arriving, clears it for good.
        let r = reply(&kept, b.engine(0));
        b.on(HubEvent::Replied(Box::new(r)));
        assert_eq!(beat(&mut b, me, None, 0, 1), vec![]);
        assert_eq!(beat(&mut b, me, None, 0, 1), vec![]);
        assert_eq!(b.engine_queue(0).queue + b.engine_queue(0).running, 0);
    }

    #[test]
    fn after_the_controller_drops_a_result_its_task_frees_the_engine() {
        // hwm 1: a task whose result the controller never saw would block
        // the engine for every load-balanced task after it.
        let mut b = Bench::with_engines(1, 1);
        let me = b.engine(0);
        let first = task();
        let second = task();
        b.on(HubEvent::Submitted(Box::new(first.clone())));
        let waiting = b.on(HubEvent::Submitted(Box::new(second.clone())));
        assert_eq!(dispatches(&waiting), vec![], "the engine is full");
        // The result of `first` was dropped on its way to the controller.
        b.on(HubEvent::BusDrops(1));
        assert_eq!(beat(&mut b, me, None, 0, 0), vec![]);
        let actions = beat(&mut b, me, None, 0, 0);
        assert_eq!(delivered(&actions)[0].msg_id, first.msg_id);
        assert_eq!(dispatches(&actions), vec![(e(0), second.msg_id)]);
    }
    /// A reply from `engine` for `s` that failed with a trap.
    fn failed_reply(s: &Submission, engine: EngineRef) -> Reply {
        let error = TaskError::Trap {
            kind: grid_proto::TrapKind::Unreachable,
            message: "boom".into(),
            backtrace: Vec::new(),
        };
        let result = TaskResult::immediate(s.msg_id, Outcome::Err(error));
        Reply::new(s.client, s.submitted, Some(engine), &result).unwrap()
    }

    #[test]
    fn a_task_with_retries_runs_elsewhere_and_only_its_last_result_is_delivered() {
        let mut b = Bench::with_engines(2, 64);
        let mut t = task();
        t.sched.retries = 2;
        let actions = b.on(HubEvent::Submitted(Box::new(t.clone())));
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);
        // Its first result fails: not delivered, run again on the other engine.
        let actions = b.on(HubEvent::HeldResult(Box::new(failed_reply(
            &t,
            b.engine(0),
        ))));
        assert_eq!(delivered(&actions), vec![]);
        assert_eq!(dispatches(&actions), vec![(e(1), t.msg_id)]);
        assert_eq!(b.result_status(vec![t.msg_id]).1, vec![t.msg_id], "pending");
        // It succeeds there: delivered, counting two attempts.
        let actions = b.on(HubEvent::HeldResult(Box::new(reply(&t, b.engine(1)))));
        let replies = delivered(&actions);
        assert_eq!(replies.len(), 1);
        assert_eq!((replies[0].status, replies[0].attempts), (Status::Ok, 2));
        assert_eq!(b.get_result(vec![t.msg_id]), replies);
        // A late copy changes nothing.
        let again = b.on(HubEvent::HeldResult(Box::new(reply(&t, b.engine(1)))));
        assert_eq!(again, vec![]);
    }

    #[test]
    fn a_task_out_of_retries_delivers_its_last_failure() {
        let mut b = Bench::with_engines(1, 64);
        let mut t = task();
        t.sched.retries = 1;
        b.on(HubEvent::Submitted(Box::new(t.clone())));
        let actions = b.on(HubEvent::HeldResult(Box::new(failed_reply(
            &t,
            b.engine(0),
        ))));
        // No other engine: it runs again where it failed.
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);
        let actions = b.on(HubEvent::HeldResult(Box::new(failed_reply(
            &t,
            b.engine(0),
        ))));
        let replies = delivered(&actions);
        assert_eq!((replies[0].status, replies[0].attempts), (Status::Error, 2));
        assert!(matches!(error_of(&replies[0]), TaskError::Trap { .. }));
    }

    #[test]
    fn an_engine_dying_runs_its_tasks_with_retries_elsewhere() {
        let mut b = Bench::with_engines(2, 1);
        let mut t = task();
        t.sched.retries = 1;
        let plain = task();
        b.on(HubEvent::Submitted(Box::new(t.clone())));
        b.on(HubEvent::Submitted(Box::new(plain.clone())));
        let (_, actions) = b.ask(HubRequest::Unregister { id: e(0) });
        let failed: Vec<MsgId> = delivered(&actions).iter().map(|r| r.msg_id).collect();
        assert_eq!(failed, vec![], "{actions:?}");
        // Engine 1 is busy with `plain`; when it finishes, `t` runs there.
        let actions = b.on(HubEvent::Replied(Box::new(reply(&plain, b.engine(1)))));
        assert_eq!(dispatches(&actions), vec![(e(1), t.msg_id)]);
        let actions = b.on(HubEvent::HeldResult(Box::new(reply(&t, b.engine(1)))));
        assert_eq!(delivered(&actions)[0].attempts, 2);
    }

    #[test]
    fn dependencies_see_what_the_hub_knows_of_any_task() {
        let mut b = Bench::with_engines(1, 64);
        // A direct task of another client, done long ago, that failed.
        let direct = task();
        b.on(HubEvent::Observed {
            engine: e(0),
            submission: Box::new(direct.clone()),
        });
        b.on(HubEvent::Replied(Box::new(failed_reply(
            &direct,
            b.engine(0),
        ))));
        let mut on_failure = task();
        on_failure.sched.after = Some(
            grid_proto::Dependency::from(direct.msg_id)
                .success(false)
                .failure(true),
        );
        let actions = b.on(HubEvent::Submitted(Box::new(on_failure.clone())));
        assert_eq!(dispatches(&actions), vec![(e(0), on_failure.msg_id)]);
        let mut on_success = task();
        on_success.sched.after = Some(grid_proto::Dependency::from(direct.msg_id));
        let actions = b.on(HubEvent::Submitted(Box::new(on_success.clone())));
        let replies = delivered(&actions);
        assert!(matches!(
            error_of(&replies[0]),
            TaskError::ImpossibleDependency(_)
        ));
        // A chain below a failure fails at once, link by link.
        let mut child = task();
        child.sched.after = Some(grid_proto::Dependency::from(on_success.msg_id));
        let actions = b.on(HubEvent::Submitted(Box::new(child.clone())));
        assert!(matches!(
            error_of(&delivered(&actions)[0]),
            TaskError::ImpossibleDependency(_)
        ));
    }

    /// A hub of the pure scheme with `n` engines.
    fn pure_bench(n: usize) -> Bench {
        let mut b = Bench::with_engines(n, 64);
        b.hub = Hub::new(ControllerConfig {
            scheduler: SchedulerConfig {
                scheme: Scheme::Pure,
                ..SchedulerConfig::default()
            },
            readiness: Readiness::OnRegister,
            ..ControllerConfig::default()
        });
        b.engines.clear();
        for _ in 0..n {
            b.register(EngineUuid::new());
        }
        b
    }

    #[test]
    fn pure_tasks_are_recorded_claimed_and_fail_with_their_engine() {
        let mut b = pure_bench(2);
        let t = task();
        assert_eq!(b.on(HubEvent::PureSubmitted(Box::new(t.clone()))), vec![]);
        assert_eq!(b.result_status(vec![t.msg_id]).1, vec![t.msg_id]);
        let claim = Claim {
            engine: b.engine(1),
            tasks: vec![(t.msg_id, t.client, t.submitted)],
        };
        assert_eq!(b.on(HubEvent::Claimed(claim)), vec![]);
        assert_eq!(b.engine_queue(1).running, 1);
        let (_, actions) = b.ask(HubRequest::Unregister { id: e(1) });
        assert_eq!(
            error_of(&delivered(&actions)[0]),
            TaskError::EngineDied(e(1))
        );
    }

    #[test]
    fn a_pure_task_no_engine_took_fails_as_lost_once_every_engine_was_idle() {
        let mut b = pure_bench(2);
        let t = task();
        b.on(HubEvent::PureSubmitted(Box::new(t.clone())));
        let (e0, e1) = (b.engine(0), b.engine(1));
        b.now += PURE_GRACE;
        assert_eq!(delivered(&beat(&mut b, e0, None, 0, 0)), vec![]);
        // Engine 1 is busy: it may hold the task unread.
        assert_eq!(
            delivered(&beat(&mut b, e1, Some(MsgId::new()), 0, 0)),
            vec![]
        );
        let actions = beat(&mut b, e1, None, 0, 0);
        assert!(matches!(
            error_of(&delivered(&actions)[0]),
            TaskError::Lost(_)
        ));
    }

    #[test]
    fn a_pure_controller_forwards_balanced_work_and_refuses_what_needs_a_scheduler() {
        let mut b = pure_bench(1);
        let t = task();
        let actions = b.on(HubEvent::Submitted(Box::new(t.clone())));
        assert!(matches!(&actions[..], [HubAction::Pure(s)] if s.msg_id == t.msg_id));
        let mut needs = task();
        needs.sched.retries = 1;
        let actions = b.on(HubEvent::Submitted(Box::new(needs)));
        let TaskError::Unschedulable(why) = error_of(&delivered(&actions)[0]) else {
            panic!("{actions:?}");
        };
        assert!(why.contains("pure") && why.contains("retries"), "{why}");
        let (answer, _) = b.ask(HubRequest::Info);
        assert_eq!(
            answer,
            HubReply::Info {
                scheme: Scheme::Pure
            }
        );
    }
}
