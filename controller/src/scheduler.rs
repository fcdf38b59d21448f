//! The load-balancing scheduler: decides when and where each load-balanced
//! task runs, as a sans-I/O state machine.
//!
//! Hand it a [`SchedEvent`] and the current time ([`Scheduler::handle`]); it
//! answers with [`SchedAction`]s (send this submission to that engine, fail
//! that task, that task runs again) and tells when it next needs a
//! [`SchedEvent::Tick`] ([`Scheduler::poll_timeout`]). It never reads a
//! clock, touches a bus or sleeps, so every rule below is unit-tested with
//! hand-made `Instant`s; the random schemes draw from a generator seeded by
//! [`SchedulerConfig::seed`], so those tests are reproducible too.
//!
//! # Placement (ipyparallel's task scheduler)
//! - A task goes to an eligible engine (any live engine, or one of
//!   `sched.targets`) with room under the high-water mark, chosen by the
//!   [`Scheme`]. A task that cannot be placed waits; waiting tasks are placed
//!   oldest first (by when they became ready) as room appears.
//! - [`SchedEvent::Abort`] fails tasks still held here with
//!   [`TaskError::Aborted`]; dispatched ones are left to the engine (the hub
//!   sends it `Control::Abort`; [`Scheduler::locate`] says where a task is).
//! - When an engine goes down it gets no more work, and every task it holds
//!   fails with [`TaskError::EngineDied`] (or runs again, see retries).
//!
//! # Dependencies (`sched.after`, `sched.follow`: a [`Dependency`] each)
//! - A task is *blocked* until both are met; then it is placed as above.
//!   `after` is met when all (or, with `all = false`, any) of its tasks
//!   finished in an accepted way (`success`: status ok; `failure`: an error
//!   or an abort). `follow` needs the same, and the task then runs only on an
//!   engine where its accepted tasks ran: with `all`, the one engine where
//!   all of them ran; with `any`, one of the engines where those finished
//!   by then ran (engines where more finish later are not added).
//! - Dependencies are resolved from what the hub knows of every task, any
//!   client's, direct or load-balanced, finished long ago or not yet: the
//!   hub passes each dependency's state with the submission ([`DepState`])
//!   and reports every task that finishes ([`SchedEvent::Finished`]).
//! - A dependency that can never be met fails the task at once with
//!   [`TaskError::ImpossibleDependency`], naming why: a task finished the
//!   wrong way (all: any one; any: every one), the tasks to follow ran on
//!   different engines (all) or on none, the engine to follow is down, the
//!   follow engines are not among the task's targets, the task depends on
//!   itself or on a cycle. Failure is itself a finish: it propagates down a
//!   chain of dependents at once, without waiting for any timeout.
//! - A dependency on a task the hub has no record of waits
//!   [`UNKNOWN_GRACE`] for it to show up (a direct task and a load-balanced
//!   one travel on different subjects, so the dependent can arrive first),
//!   then fails as impossible: never submitted, or purged.
//! - `sched.timeout_ms` bounds the whole wait here, from submission: a task
//!   still blocked then fails with [`TaskError::DependencyTimeout`], one
//!   whose dependencies were met but that found no engine with
//!   [`TaskError::Unschedulable`]. Once dispatched, a task is the engine's.
//!
//! # Retries (`sched.retries`)
//! - A task that fails with an error (a trap, a guest error, a limit, ...)
//!   or whose engine dies runs again, at most `retries` more times, each
//!   time on an engine where it has not failed yet when such an engine is
//!   up (ipyparallel's per-task blacklist; when every candidate has failed
//!   it, any of them will do). Aborts are never retried, nor failures the
//!   scheduler decides itself. Each new attempt is a [`SchedAction::Retry`]
//!   (the hub keeps the task pending and counts attempts); only the final
//!   outcome reaches the client, because engines send the results of such
//!   tasks to `sched.result`, never to the client directly.
//! - A task's dependents see only its final outcome.
//!
//! Only tasks this scheduler placed count towards an engine's load: direct
//! tasks (`engine.<id>.task` from a client) are invisible here except as
//! dependencies.
//!
//! # Cost
//! Every event is O(engines) at worst plus O(log n) in the number of
//! waiting tasks: waiting tasks sit in FIFO queues (one for tasks any engine
//! may run, one per engine for targeted ones), and a freed slot on engine E
//! only looks at the heads of the shared queue and of E's queue. This works
//! because of an invariant the scheduler keeps: a task waits only while every
//! engine eligible for it is full, so the only tasks that can use a slot freed
//! on E are those eligible on E, and the oldest of them is at one of the two
//! heads. Removing a task from the middle of a queue (abort, timeout, placed
//! through another target's queue) leaves a stale entry that is skipped when it
//! reaches the head; queues are compacted when stale entries outnumber live ones.
//! A dependency costs O(1) per finished task it names (counts, not scans);
//! an engine going down scans the blocked tasks that follow somewhere.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use grid_proto::{
    ClientId, Dependency, EngineId, MsgId, Status, Submission, TaskError, Timestamp, Verdict,
};
// The hub's tests name it through here.
pub(crate) use grid_proto::Scheme;

/// The default high-water mark: outstanding tasks per engine.
///
/// ipyparallel defaults to 1, which keeps every task in the scheduler until an
/// engine is idle: each small task then costs a full round trip (result to the
/// controller, dispatch to the engine) during which the engine sits idle. A
/// depth of 64 keeps engines fed when tasks take microseconds, while still
/// leaving most of a large backlog in the scheduler, where it can go to
/// whichever engine frees up first (and to engines that join later).
pub const DEFAULT_HWM: usize = 64;

/// How long a dependency on a task the hub has never seen may wait for it.
pub const UNKNOWN_GRACE: Duration = Duration::from_secs(2);

/// How the scheduler places tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub scheme: Scheme,
    /// At most this many outstanding (dispatched, unfinished) tasks per
    /// engine; 0 means no limit. See [`DEFAULT_HWM`].
    pub hwm: usize,
    /// Seeds the random draws of `twobin`, `weighted` and `plainrandom`.
    pub seed: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheme: Scheme::default(),
            hwm: DEFAULT_HWM,
            seed: 0,
        }
    }
}

/// What the hub knows of a task named in a dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepState {
    /// Never seen (or purged).
    Unknown,
    /// Seen, not finished.
    Pending,
    /// Finished: where it ran (if it reached an engine) and whether it succeeded.
    Done { engine: Option<EngineId>, ok: bool },
}

/// What happened, as far as the scheduler cares.
#[derive(Clone, Debug, PartialEq)]
pub enum SchedEvent {
    /// An engine can take work (registered and listening).
    EngineUp(EngineId),
    /// An engine is gone: its tasks fail (or run again), it gets no more work.
    EngineDown(EngineId),
    /// A load-balanced submission arrived, with the state of every task its
    /// dependencies name (missing ones count as unknown).
    Submit {
        submission: Box<Submission>,
        deps: Vec<(MsgId, DepState)>,
    },
    /// The hub saw a task for the first time that did not come through
    /// here (a direct one): a dependency waiting for it may go on waiting.
    Seen(MsgId),
    /// Any task finished, wherever it ran: `engine` is where (`None`: it
    /// never reached one), `status` how. An error from an engine (or its
    /// death) counts as a failure that retries may cover. A task held here
    /// that finished elsewhere (sent directly with this id) is dropped.
    Finished {
        msg_id: MsgId,
        engine: Option<EngineId>,
        status: Status,
    },
    /// Fail these tasks if they are still held here (blocked or waiting).
    Abort(Vec<MsgId>),
    /// The controller stops: every task held here fails.
    Shutdown,
    /// Time passed (see [`Scheduler::poll_timeout`]).
    Tick,
}

/// What the scheduler wants done.
#[derive(Clone, Debug, PartialEq)]
pub enum SchedAction {
    /// Send `submission` to `engine` (`engine.<id>.task`).
    Dispatch {
        engine: EngineId,
        submission: Box<Submission>,
    },
    /// The task will not run (again): tell its client (a `Reply` with this error).
    Fail {
        msg_id: MsgId,
        client: ClientId,
        submitted: Timestamp,
        error: TaskError,
    },
    /// The task failed on `engine` (or died with it) and will run again:
    /// its result so far is not final. `attempt` counts the runs so far.
    Retry {
        msg_id: MsgId,
        engine: EngineId,
        attempt: u32,
    },
}

/// Where the scheduler holds a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Waiting for its dependencies.
    Blocked,
    /// Ready, not yet placed on an engine.
    Waiting,
    /// Sent to this engine, no result seen yet.
    Dispatched(EngineId),
}

/// The load-balancing scheduler. See the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    rng: fastrand::Rng,
    /// Live engines.
    engines: BTreeMap<EngineId, EngineSlot>,
    /// Tasks waiting for their dependencies.
    blocked: HashMap<MsgId, Blocked>,
    /// For each task a dependency names: the blocked tasks that name it.
    dependents: HashMap<MsgId, Vec<MsgId>>,
    /// For each task a dependency names that the hub has not seen: the
    /// blocked tasks waiting for it to show up.
    unseen: HashMap<MsgId, Vec<MsgId>>,
    /// Every task ready to run and not yet placed.
    waiting: HashMap<MsgId, WaitingTask>,
    /// Waiting tasks that any engine may run, oldest first (with stale entries).
    any_engine: VecDeque<QueueEntry>,
    /// Waiting targeted tasks, under each engine they name, oldest first
    /// (with stale entries). Engines need not be live to have a queue here.
    targeted: HashMap<EngineId, VecDeque<QueueEntry>>,
    /// Entries in all queues, live and stale.
    queued_entries: usize,
    /// Entries in all queues that belong to waiting tasks.
    live_entries: usize,
    /// Deadlines of blocked and waiting tasks, earliest first. The kind is
    /// part of the key: a task's timeout and its unknown grace may end at
    /// the same instant, and one must not erase the other.
    deadlines: BTreeSet<(Instant, MsgId, Deadline)>,
    /// Dispatched tasks without a result yet.
    dispatched: HashMap<MsgId, DispatchedTask>,
    /// Orders waiting tasks (and tells a stale queue entry from a live one).
    next_seq: u64,
    /// Counts dispatches: an engine's last one orders engines for [`Scheme::Lru`].
    dispatch_count: u64,
    /// Tasks finished whose dependents have not heard yet: (task, where it
    /// ran, succeeded). A worklist, so that failure runs down a chain of any
    /// length without recursion.
    finished: Vec<(MsgId, Option<EngineId>, bool)>,
}

#[derive(Debug, Default)]
struct EngineSlot {
    /// Tasks dispatched here without a result yet.
    tasks: HashSet<MsgId>,
    /// `dispatch_count` at this engine's latest dispatch; 0 if never.
    last_dispatch: u64,
}

/// A task held here, and what placing it needs.
#[derive(Debug)]
struct Job {
    submission: Box<Submission>,
    /// The end of its wait here: `sched.timeout_ms` after it arrived.
    deadline: Option<Instant>,
    retries_left: u32,
    /// Times dispatched so far.
    attempts: u32,
    /// Engines where it failed (ipyparallel's blacklist).
    blacklist: Vec<EngineId>,
    /// Where it may run, sorted and without duplicates: `sched.targets`,
    /// narrowed to the engines to follow once its dependencies are met.
    targets: Option<Vec<EngineId>>,
    /// `targets` are the engines to follow: when all are down, it can
    /// never run.
    follows: bool,
}

impl Job {
    fn new(submission: Box<Submission>, now: Instant) -> Job {
        let sched = &submission.sched;
        let targets = sched
            .targets
            .as_ref()
            .map(|targets| sorted(targets.clone()));
        // A timeout too large for the clock is no timeout.
        let deadline = sched
            .timeout_ms
            .and_then(|ms| now.checked_add(Duration::from_millis(ms)));
        Job {
            retries_left: sched.retries,
            submission,
            deadline,
            attempts: 0,
            blacklist: Vec::new(),
            targets,
            follows: false,
        }
    }

    fn msg_id(&self) -> MsgId {
        self.submission.msg_id
    }
}

/// A task waiting for its dependencies.
#[derive(Debug)]
struct Blocked {
    job: Job,
    after: Option<Tally>,
    follow: Option<Tally>,
    /// Named tasks the hub has not seen yet.
    unseen: usize,
    /// When an unseen task named here stops being worth waiting for.
    unseen_deadline: Option<Instant>,
}

/// One dependency and how its tasks have finished so far.
#[derive(Debug)]
struct Tally {
    /// Its ids sorted and without duplicates.
    dep: Dependency,
    accepted: usize,
    rejected: usize,
    /// The latest task that finished the wrong way, for the error.
    last_rejected: Option<(MsgId, bool)>,
    /// Where the accepted tasks ran (counted for `follow` only).
    engines: BTreeSet<EngineId>,
    /// Accepted tasks that never reached an engine.
    nowhere: usize,
}

impl Tally {
    fn new(dep: &Dependency) -> Tally {
        let mut dep = dep.clone();
        dep.msg_ids = sorted(dep.msg_ids);
        Tally {
            dep,
            accepted: 0,
            rejected: 0,
            last_rejected: None,
            engines: BTreeSet::new(),
            nowhere: 0,
        }
    }

    fn names(&self, msg_id: &MsgId) -> bool {
        self.dep.msg_ids.binary_search(msg_id).is_ok()
    }

    fn record(&mut self, msg_id: MsgId, engine: Option<EngineId>, ok: bool) {
        if !self.dep.accepts(ok) {
            self.rejected += 1;
            self.last_rejected = Some((msg_id, ok));
            return;
        }
        self.accepted += 1;
        match engine {
            Some(engine) => {
                self.engines.insert(engine);
            }
            None => self.nowhere += 1,
        }
    }

    fn verdict(&self) -> Verdict {
        self.dep.verdict(self.accepted, self.rejected)
    }

    /// Why it can never be met, for a `verdict` of `Unreachable`.
    fn unreachable(&self, which: &str) -> String {
        let needs = self.dep.describe();
        match (self.dep.all, self.last_rejected) {
            (true, Some((msg_id, ok))) => {
                let how = if ok { "succeeded" } else { "failed" };
                format!("{which} needs {needs}, and task {msg_id} {how}")
            }
            _ => format!("{which} needs {needs}, and every one finished otherwise"),
        }
    }
}

/// Why a deadline is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Deadline {
    /// `sched.timeout_ms` of a blocked or waiting task.
    Timeout,
    /// [`UNKNOWN_GRACE`] of a blocked task naming unseen tasks.
    Unseen,
}

#[derive(Debug)]
struct WaitingTask {
    seq: u64,
    job: Job,
    /// Where it may run now: the job's targets, less its blacklist when
    /// another candidate is up (`avoiding`).
    targets: Option<Vec<EngineId>>,
    avoiding: bool,
}

impl WaitingTask {
    /// How many queue entries this task has.
    fn entries(&self) -> usize {
        self.targets.as_ref().map_or(1, Vec::len)
    }
}

#[derive(Debug)]
struct DispatchedTask {
    engine: EngineId,
    client: ClientId,
    submitted: Timestamp,
    /// What running it again needs, while it has retries left.
    retry: Option<Box<Job>>,
}

#[derive(Clone, Copy, Debug)]
struct QueueEntry {
    seq: u64,
    msg_id: MsgId,
}

/// Queues are compacted when they hold more than twice the live entries plus
/// this many: rarely enough that compaction costs O(1) per event on average.
const COMPACTION_SLACK: usize = 1024;

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Scheduler {
        Scheduler {
            config,
            rng: fastrand::Rng::with_seed(config.seed),
            engines: BTreeMap::new(),
            blocked: HashMap::new(),
            dependents: HashMap::new(),
            unseen: HashMap::new(),
            waiting: HashMap::new(),
            any_engine: VecDeque::new(),
            targeted: HashMap::new(),
            queued_entries: 0,
            live_entries: 0,
            deadlines: BTreeSet::new(),
            dispatched: HashMap::new(),
            next_seq: 0,
            dispatch_count: 0,
            finished: Vec::new(),
        }
    }

    pub fn config(&self) -> SchedulerConfig {
        self.config
    }

    /// Feeds one event at time `now`; returns what to do, in order.
    ///
    /// Tasks whose deadline is at or before `now` fail first, whatever the
    /// event, so a late `Tick` never lets an expired task be placed.
    pub fn handle(&mut self, event: SchedEvent, now: Instant) -> Vec<SchedAction> {
        let mut actions = Vec::new();
        self.expire(now, &mut actions);
        match event {
            SchedEvent::EngineUp(engine) => {
                self.engines.entry(engine).or_default();
                self.fill(engine, &mut actions);
            }
            SchedEvent::EngineDown(engine) => self.engine_down(engine, now, &mut actions),
            SchedEvent::Submit { submission, deps } => {
                self.submit(submission, &deps, now, &mut actions)
            }
            SchedEvent::Seen(msg_id) => {
                self.seen(&msg_id);
            }
            SchedEvent::Finished {
                msg_id,
                engine,
                status,
            } => self.finished(msg_id, engine, status, now, &mut actions),
            SchedEvent::Abort(msg_ids) => {
                for msg_id in msg_ids {
                    if let Some(job) = self.take_held(&msg_id) {
                        self.fail(&job, TaskError::Aborted, &mut actions);
                    }
                }
            }
            SchedEvent::Shutdown => self.shutdown(&mut actions),
            SchedEvent::Tick => {}
        }
        self.tell_dependents(now, &mut actions);
        self.compact_if_stale();
        actions
    }

    /// When the scheduler next needs a [`SchedEvent::Tick`]: the earliest
    /// deadline of a task held here. `None`: only events matter.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(deadline, _, _)| deadline)
    }

    /// Where a task is, if the scheduler holds it.
    pub fn locate(&self, msg_id: &MsgId) -> Option<Placement> {
        if self.blocked.contains_key(msg_id) {
            Some(Placement::Blocked)
        } else if self.waiting.contains_key(msg_id) {
            Some(Placement::Waiting)
        } else {
            self.dispatched
                .get(msg_id)
                .map(|task| Placement::Dispatched(task.engine))
        }
    }

    /// How many tasks are ready and wait for an engine.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// How many tasks wait for their dependencies.
    pub fn blocked(&self) -> usize {
        self.blocked.len()
    }

    /// How many tasks this scheduler dispatched to `engine` without a result yet.
    pub fn outstanding(&self, engine: EngineId) -> usize {
        self.engines.get(&engine).map_or(0, |slot| slot.tasks.len())
    }

    fn submit(
        &mut self,
        submission: Box<Submission>,
        deps: &[(MsgId, DepState)],
        now: Instant,
        actions: &mut Vec<SchedAction>,
    ) {
        let msg_id = submission.msg_id;
        if self.locate(&msg_id).is_some() {
            // Seen already (a resent message): the first copy is in hand.
            return;
        }
        let awaited = self.seen(&msg_id);
        let job = Job::new(submission, now);
        let sched = &job.submission.sched;
        let after = sched
            .after
            .as_ref()
            .filter(|d| !d.is_empty())
            .map(Tally::new);
        let follow = sched
            .follow
            .as_ref()
            .filter(|d| !d.is_empty())
            .map(Tally::new);
        if after.is_none() && follow.is_none() {
            self.enqueue(job, now, actions);
            return;
        }
        if [&after, &follow]
            .into_iter()
            .flatten()
            .any(|tally| tally.names(&msg_id))
        {
            let error = TaskError::ImpossibleDependency("the task depends on itself".into());
            self.fail(&job, error, actions);
            return;
        }
        let states: HashMap<MsgId, DepState> = deps.iter().copied().collect();
        let named: BTreeSet<MsgId> = [&after, &follow]
            .into_iter()
            .flatten()
            .flat_map(|tally| tally.dep.msg_ids.iter().copied())
            .collect();
        let mut blocked = Blocked {
            job,
            after,
            follow,
            unseen: 0,
            unseen_deadline: None,
        };
        for dep in named {
            match states.get(&dep).copied().unwrap_or(DepState::Unknown) {
                DepState::Done { engine, ok } => {
                    for tally in [&mut blocked.after, &mut blocked.follow]
                        .into_iter()
                        .flatten()
                    {
                        if tally.names(&dep) {
                            tally.record(dep, engine, ok);
                        }
                    }
                }
                DepState::Pending => self.dependents.entry(dep).or_default().push(msg_id),
                DepState::Unknown => {
                    self.dependents.entry(dep).or_default().push(msg_id);
                    self.unseen.entry(dep).or_default().push(msg_id);
                    blocked.unseen += 1;
                }
            }
        }
        if blocked.unseen > 0 {
            let deadline = now + UNKNOWN_GRACE;
            blocked.unseen_deadline = Some(deadline);
            self.deadlines.insert((deadline, msg_id, Deadline::Unseen));
        }
        if let Some(deadline) = blocked.job.deadline {
            self.deadlines.insert((deadline, msg_id, Deadline::Timeout));
        }
        self.blocked.insert(msg_id, blocked);
        if self.closes_a_cycle(msg_id, &awaited) {
            let error = TaskError::ImpossibleDependency(
                "its dependencies form a cycle: a task it waits for waits for it".into(),
            );
            if let Some(job) = self.take_held(&msg_id) {
                self.fail(&job, error, actions);
            }
            return;
        }
        self.evaluate(msg_id, now, actions);
    }

    /// The hub has seen `msg_id`: blocked tasks waiting for it to show up
    /// stop counting it as unseen. Returns those tasks.
    fn seen(&mut self, msg_id: &MsgId) -> Vec<MsgId> {
        let Some(waiters) = self.unseen.remove(msg_id) else {
            return Vec::new();
        };
        for waiter in &waiters {
            let Some(blocked) = self.blocked.get_mut(waiter) else {
                continue;
            };
            blocked.unseen = blocked.unseen.saturating_sub(1);
            if blocked.unseen == 0
                && let Some(deadline) = blocked.unseen_deadline.take()
            {
                self.deadlines
                    .remove(&(deadline, *waiter, Deadline::Unseen));
            }
        }
        waiters
    }

    /// Whether the blocked task `msg_id`, which `awaited` tasks were waiting
    /// to see, waits (through blocked tasks) for one of them.
    fn closes_a_cycle(&self, msg_id: MsgId, awaited: &[MsgId]) -> bool {
        if awaited.is_empty() {
            return false;
        }
        let mut seen = HashSet::new();
        let mut stack = vec![msg_id];
        while let Some(id) = stack.pop() {
            let Some(blocked) = self.blocked.get(&id) else {
                continue;
            };
            for tally in [&blocked.after, &blocked.follow].into_iter().flatten() {
                for dep in &tally.dep.msg_ids {
                    if awaited.contains(dep) {
                        return true;
                    }
                    if seen.insert(*dep) {
                        stack.push(*dep);
                    }
                }
            }
        }
        false
    }

    fn finished(
        &mut self,
        msg_id: MsgId,
        engine: Option<EngineId>,
        status: Status,
        now: Instant,
        actions: &mut Vec<SchedAction>,
    ) {
        if let Some(task) = self.dispatched.remove(&msg_id) {
            if let Some(slot) = self.engines.get_mut(&task.engine) {
                slot.tasks.remove(&msg_id);
            }
            self.fill(task.engine, actions);
            if status == Status::Error
                && let Some(job) = task.retry
            {
                self.retry(*job, task.engine, now, actions);
                return;
            }
        } else {
            // Held here but run somewhere already (sent directly with this
            // id): placing it again would run it twice.
            self.take_held(&msg_id);
        }
        self.seen(&msg_id);
        self.finished.push((msg_id, engine, status == Status::Ok));
    }

    /// Runs a task that failed on `engine` again, elsewhere when it can.
    fn retry(
        &mut self,
        mut job: Job,
        engine: EngineId,
        now: Instant,
        actions: &mut Vec<SchedAction>,
    ) {
        let live = |e: &EngineId| self.engines.contains_key(e);
        if job.follows && !job.targets.iter().flatten().any(live) {
            // It may run only where its dependencies ran, and that engine
            // is gone: it died with it, there is no elsewhere to retry.
            self.fail(&job, TaskError::EngineDied(engine), actions);
            return;
        }
        job.retries_left = job.retries_left.saturating_sub(1);
        if !job.blacklist.contains(&engine) {
            job.blacklist.push(engine);
        }
        // The timeout was for the first start; it has started.
        job.deadline = None;
        actions.push(SchedAction::Retry {
            msg_id: job.msg_id(),
            engine,
            attempt: job.attempts,
        });
        self.enqueue(job, now, actions);
    }

    /// Tells blocked tasks about the tasks that finished, until no more finish.
    fn tell_dependents(&mut self, now: Instant, actions: &mut Vec<SchedAction>) {
        while let Some((msg_id, engine, ok)) = self.finished.pop() {
            let Some(waiters) = self.dependents.remove(&msg_id) else {
                continue;
            };
            for waiter in waiters {
                let Some(blocked) = self.blocked.get_mut(&waiter) else {
                    continue;
                };
                for tally in [&mut blocked.after, &mut blocked.follow]
                    .into_iter()
                    .flatten()
                {
                    if tally.names(&msg_id) {
                        tally.record(msg_id, engine, ok);
                    }
                }
                self.evaluate(waiter, now, actions);
            }
        }
    }

    /// Releases a blocked task whose dependencies are met, fails one whose
    /// dependencies can never be, leaves the others.
    fn evaluate(&mut self, msg_id: MsgId, now: Instant, actions: &mut Vec<SchedAction>) {
        let Some(blocked) = self.blocked.get(&msg_id) else {
            return;
        };
        let after = blocked.after.as_ref().map_or(Verdict::Met, Tally::verdict);
        let follow = blocked.follow.as_ref().map_or(Verdict::Met, Tally::verdict);
        let impossible = if after == Verdict::Unreachable {
            blocked.after.as_ref().map(|t| t.unreachable("after"))
        } else if follow == Verdict::Unreachable {
            blocked.follow.as_ref().map(|t| t.unreachable("follow"))
        } else {
            blocked.follow.as_ref().and_then(|t| {
                follow_problem(t, follow == Verdict::Met, |e| self.engines.contains_key(e))
            })
        };
        if let Some(why) = impossible {
            if let Some(job) = self.take_held(&msg_id) {
                self.fail(&job, TaskError::ImpossibleDependency(why), actions);
            }
            return;
        }
        if after != Verdict::Met || follow != Verdict::Met {
            return;
        }
        let Some(Blocked {
            mut job, follow, ..
        }) = self.take_blocked(&msg_id)
        else {
            return;
        };
        if let Some(follow) = follow {
            let engines: Vec<EngineId> = follow.engines.into_iter().collect();
            job.targets = Some(match job.targets.take() {
                None => engines,
                Some(targets) => engines
                    .into_iter()
                    .filter(|e| targets.binary_search(e).is_ok())
                    .collect(),
            });
            job.follows = true;
        }
        self.enqueue(job, now, actions);
    }

    /// Places a ready task on an engine, or queues it, or fails it if it can
    /// never be placed.
    fn enqueue(&mut self, job: Job, now: Instant, actions: &mut Vec<SchedAction>) {
        let (targets, avoiding) = self.candidates(&job);
        if let Some(targets) = &targets {
            let why = if targets.is_empty() && job.follows {
                Some("the engines it must follow are not among its targets".to_string())
            } else if targets.is_empty() {
                Some("the list of target engines is empty".to_string())
            } else if job.follows && !targets.iter().any(|e| self.engines.contains_key(e)) {
                Some(format!(
                    "the engine it must follow ({}) is down",
                    names(targets)
                ))
            } else {
                None
            };
            if let Some(why) = why {
                let error = if job.follows {
                    TaskError::ImpossibleDependency(why)
                } else {
                    TaskError::Unschedulable(why)
                };
                self.fail(&job, error, actions);
                return;
            }
        }
        if let Some(engine) = self.choose(targets.as_deref()) {
            self.dispatch(engine, job, actions);
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let task = WaitingTask {
            seq,
            job,
            targets,
            avoiding,
        };
        if task.job.deadline.is_some_and(|deadline| deadline <= now) {
            let error = TaskError::Unschedulable(self.unplaced_reason(&task));
            self.fail(&task.job, error, actions);
            return;
        }
        let msg_id = task.job.msg_id();
        let entry = QueueEntry { seq, msg_id };
        match &task.targets {
            None => self.any_engine.push_back(entry),
            Some(targets) => {
                for engine in targets {
                    self.targeted.entry(*engine).or_default().push_back(entry);
                }
            }
        }
        self.queued_entries += task.entries();
        self.live_entries += task.entries();
        if let Some(deadline) = task.job.deadline {
            self.deadlines.insert((deadline, msg_id, Deadline::Timeout));
        }
        self.waiting.insert(msg_id, task);
    }

    /// Where a ready job may go now: its targets, less the engines where it
    /// failed when another candidate is up (then `true`).
    fn candidates(&self, job: &Job) -> (Option<Vec<EngineId>>, bool) {
        if job.blacklist.is_empty() {
            return (job.targets.clone(), false);
        }
        let fresh: Vec<EngineId> = match &job.targets {
            Some(targets) => targets
                .iter()
                .copied()
                .filter(|e| self.engines.contains_key(e))
                .filter(|e| !job.blacklist.contains(e))
                .collect(),
            None => self
                .engines
                .keys()
                .copied()
                .filter(|e| !job.blacklist.contains(e))
                .collect(),
        };
        if fresh.is_empty() {
            (job.targets.clone(), false)
        } else {
            (Some(fresh), true)
        }
    }

    /// The engine a new task goes to, among `targets` (all engines if `None`)
    /// that are live and have room, by the scheme; `None` if there is none.
    fn choose(&mut self, targets: Option<&[EngineId]>) -> Option<EngineId> {
        let hwm = self.config.hwm;
        // Targets are sorted (see `Job::targets`).
        let eligible = |id: &EngineId| targets.is_none_or(|t| t.binary_search(id).is_ok());
        let mut open = self
            .engines
            .iter()
            .filter(|&(id, slot)| eligible(id) && has_room(slot, hwm));
        let chosen = match self.config.scheme {
            Scheme::LeastLoad | Scheme::Pure => {
                open.min_by_key(|&(&id, slot)| (slot.tasks.len(), id))
            }
            Scheme::Lru => open.min_by_key(|&(&id, slot)| (slot.last_dispatch, id)),
            Scheme::PlainRandom => {
                let open: Vec<_> = open.collect();
                (!open.is_empty()).then(|| open[self.rng.usize(..open.len())])
            }
            Scheme::TwoBin => {
                let mut open: Vec<_> = open.collect();
                open.sort_by_key(|&(&id, slot)| (slot.last_dispatch, id));
                (!open.is_empty()).then(|| {
                    let a = self.rng.usize(..open.len());
                    let b = self.rng.usize(..open.len());
                    open[a.min(b)]
                })
            }
            Scheme::Weighted => {
                let open: Vec<_> = open.by_ref().collect();
                let weights: Vec<f64> = open
                    .iter()
                    .map(|(_, slot)| 1.0 / (1e-6 + slot.tasks.len() as f64))
                    .collect();
                let rng = &mut self.rng;
                (!open.is_empty()).then(|| {
                    let (a, b) = (weighted_draw(rng, &weights), weighted_draw(rng, &weights));
                    open[if weights[b] > weights[a] { b } else { a }]
                })
            }
        };
        chosen.map(|(&id, _)| id)
    }

    fn dispatch(&mut self, engine: EngineId, mut job: Job, actions: &mut Vec<SchedAction>) {
        let Some(slot) = self.engines.get_mut(&engine) else {
            return;
        };
        self.dispatch_count += 1;
        slot.last_dispatch = self.dispatch_count;
        let msg_id = job.msg_id();
        slot.tasks.insert(msg_id);
        job.attempts += 1;
        let (client, submitted) = (job.submission.client, job.submission.submitted);
        // The submission goes to the engine; a copy stays only if it may
        // have to go again.
        let (submission, retry) = if job.retries_left > 0 {
            (job.submission.clone(), Some(Box::new(job)))
        } else {
            (job.submission, None)
        };
        self.dispatched.insert(
            msg_id,
            DispatchedTask {
                engine,
                client,
                submitted,
                retry,
            },
        );
        actions.push(SchedAction::Dispatch { engine, submission });
    }

    /// Places waiting tasks on `engine`, oldest first, while it has room.
    fn fill(&mut self, engine: EngineId, actions: &mut Vec<SchedAction>) {
        loop {
            match self.engines.get(&engine) {
                Some(slot) if has_room(slot, self.config.hwm) => {}
                _ => return,
            }
            let shared = live_head(
                &mut self.any_engine,
                &self.waiting,
                &mut self.queued_entries,
            );
            let own = self
                .targeted
                .get_mut(&engine)
                .and_then(|queue| live_head(queue, &self.waiting, &mut self.queued_entries));
            let next = match (shared, own) {
                (Some(a), Some(b)) => Some(if a.seq < b.seq { a } else { b }),
                (a, b) => a.or(b),
            };
            let Some(entry) = next else {
                return;
            };
            let Some(task) = self.take_waiting(&entry.msg_id) else {
                return;
            };
            self.dispatch(engine, task.job, actions);
        }
    }

    fn engine_down(&mut self, engine: EngineId, now: Instant, actions: &mut Vec<SchedAction>) {
        let Some(slot) = self.engines.remove(&engine) else {
            return;
        };
        // Oldest first (msg ids sort by creation), so the output does not
        // depend on hash order.
        let mut msg_ids: Vec<MsgId> = slot.tasks.into_iter().collect();
        msg_ids.sort_unstable();
        for msg_id in msg_ids {
            let Some(task) = self.dispatched.remove(&msg_id) else {
                continue;
            };
            match task.retry {
                Some(job) => self.retry(*job, engine, now, actions),
                None => {
                    actions.push(SchedAction::Fail {
                        msg_id,
                        client: task.client,
                        submitted: task.submitted,
                        error: TaskError::EngineDied(engine),
                    });
                    self.finished.push((msg_id, Some(engine), false));
                }
            }
        }
        // Waiting tasks that may run only on engines that are all down now:
        // those following them can never run; those avoiding engines where
        // they failed look again.
        let mut stranded: Vec<(u64, MsgId)> = self
            .targeted
            .get(&engine)
            .into_iter()
            .flatten()
            .filter(|entry| is_live(entry, &self.waiting))
            .filter_map(|entry| {
                let task = self.waiting.get(&entry.msg_id)?;
                let targets = task.targets.as_ref()?;
                let stranded = (task.job.follows || task.avoiding)
                    && !targets.iter().any(|e| self.engines.contains_key(e));
                stranded.then_some((entry.seq, entry.msg_id))
            })
            .collect();
        stranded.sort_unstable();
        for (_, msg_id) in stranded {
            if let Some(task) = self.take_waiting(&msg_id) {
                // `enqueue` fails a follower whose engines are down, and
                // gives an avoider its candidates again.
                self.enqueue(task.job, now, actions);
            }
        }
        // Blocked tasks that must follow tasks which all ran on this engine
        // can never run (see `follow_problem`).
        let mut doomed: Vec<MsgId> = self
            .blocked
            .iter()
            .filter(|(_, b)| {
                b.follow.as_ref().is_some_and(|t| {
                    t.dep.all && t.engines.len() == 1 && t.engines.contains(&engine)
                })
            })
            .map(|(id, _)| *id)
            .collect();
        doomed.sort_unstable();
        for msg_id in doomed {
            self.evaluate(msg_id, now, actions);
        }
    }

    fn shutdown(&mut self, actions: &mut Vec<SchedAction>) {
        let mut blocked: Vec<MsgId> = self.blocked.keys().copied().collect();
        blocked.sort_unstable();
        let mut waiting: Vec<(u64, MsgId)> = self
            .waiting
            .values()
            .map(|t| (t.seq, t.job.msg_id()))
            .collect();
        waiting.sort_unstable();
        let held = waiting.into_iter().map(|(_, id)| id).chain(blocked);
        for msg_id in held.collect::<Vec<_>>() {
            if let Some(job) = self.take_held(&msg_id) {
                let error = TaskError::Unschedulable(
                    "the controller shut down before the task could run".into(),
                );
                self.fail(&job, error, actions);
            }
        }
        self.any_engine.clear();
        self.targeted.clear();
        self.queued_entries = 0;
        self.live_entries = 0;
    }

    /// Fails tasks whose deadline is at or before `now`.
    fn expire(&mut self, now: Instant, actions: &mut Vec<SchedAction>) {
        while let Some(&(deadline, msg_id, kind)) = self.deadlines.first() {
            if deadline > now {
                return;
            }
            self.deadlines.pop_first();
            let error = if let Some(blocked) = self.blocked.get(&msg_id) {
                match kind {
                    Deadline::Unseen => TaskError::ImpossibleDependency(self.unseen_reason(msg_id)),
                    Deadline::Timeout => TaskError::DependencyTimeout(timeout_reason(blocked)),
                }
            } else if let Some(task) = self.waiting.get(&msg_id) {
                TaskError::Unschedulable(self.unplaced_reason(task))
            } else {
                continue;
            };
            if let Some(job) = self.take_held(&msg_id) {
                self.fail(&job, error, actions);
            }
        }
    }

    /// Why a blocked task gave up on the tasks it names that never showed up.
    fn unseen_reason(&self, msg_id: MsgId) -> String {
        let mut unknown: Vec<String> = self
            .unseen
            .iter()
            .filter(|(_, waiters)| waiters.contains(&msg_id))
            .map(|(dep, _)| dep.to_string())
            .collect();
        unknown.sort_unstable();
        format!(
            "unknown task {}: the controller has no record of it (never submitted, or purged)",
            unknown.join(", ")
        )
    }

    /// Why `task` timed out waiting for an engine, in words for its submitter.
    fn unplaced_reason(&self, task: &WaitingTask) -> String {
        let ms = task.job.submission.sched.timeout_ms.unwrap_or(0);
        if self.engines.is_empty() {
            return format!("no engines are registered (waited {ms} ms)");
        }
        if let Some(targets) = &task.targets
            && !targets.iter().any(|id| self.engines.contains_key(id))
        {
            return format!(
                "none of the target engines ({}) is registered (waited {ms} ms)",
                names(targets)
            );
        }
        format!("no engine became available within {ms} ms")
    }

    /// Fails a job held here, and lets its dependents know.
    fn fail(&mut self, job: &Job, error: TaskError, actions: &mut Vec<SchedAction>) {
        let msg_id = job.msg_id();
        actions.push(SchedAction::Fail {
            msg_id,
            client: job.submission.client,
            submitted: job.submission.submitted,
            error,
        });
        self.finished.push((msg_id, None, false));
    }

    /// Removes a blocked or waiting task.
    fn take_held(&mut self, msg_id: &MsgId) -> Option<Job> {
        if let Some(blocked) = self.take_blocked(msg_id) {
            return Some(blocked.job);
        }
        self.take_waiting(msg_id).map(|task| task.job)
    }

    /// Removes a blocked task with its deadlines. Its entries in
    /// `dependents` and `unseen` stay until those tasks show up or finish,
    /// and are then skipped.
    fn take_blocked(&mut self, msg_id: &MsgId) -> Option<Blocked> {
        let blocked = self.blocked.remove(msg_id)?;
        if blocked.unseen > 0 {
            // Tasks that never show up would keep these entries forever.
            let mut named = Vec::new();
            self.unseen.retain(|dep, waiters| {
                let before = waiters.len();
                waiters.retain(|w| w != msg_id);
                if waiters.len() < before {
                    named.push(*dep);
                }
                !waiters.is_empty()
            });
            for dep in named {
                if let Some(waiters) = self.dependents.get_mut(&dep) {
                    waiters.retain(|w| w != msg_id);
                    if waiters.is_empty() {
                        self.dependents.remove(&dep);
                    }
                }
            }
        }
        if let Some(deadline) = blocked.job.deadline {
            self.deadlines
                .remove(&(deadline, *msg_id, Deadline::Timeout));
        }
        if let Some(deadline) = blocked.unseen_deadline {
            self.deadlines
                .remove(&(deadline, *msg_id, Deadline::Unseen));
        }
        Some(blocked)
    }

    /// Removes a task from the waiting set (its queue entries go stale).
    fn take_waiting(&mut self, msg_id: &MsgId) -> Option<WaitingTask> {
        let task = self.waiting.remove(msg_id)?;
        if let Some(deadline) = task.job.deadline {
            self.deadlines
                .remove(&(deadline, *msg_id, Deadline::Timeout));
        }
        self.live_entries -= task.entries();
        Some(task)
    }

    fn compact_if_stale(&mut self) {
        if self.queued_entries <= 2 * self.live_entries + COMPACTION_SLACK {
            return;
        }
        let waiting = &self.waiting;
        let live = |entry: &QueueEntry| is_live(entry, waiting);
        self.any_engine.retain(live);
        for queue in self.targeted.values_mut() {
            queue.retain(live);
        }
        self.targeted.retain(|_, queue| !queue.is_empty());
        self.queued_entries =
            self.any_engine.len() + self.targeted.values().map(VecDeque::len).sum::<usize>();
    }
}

/// Why a blocked task's `follow` can never be met, if it cannot: with
/// `all`, its accepted tasks ran on different engines, or one never ran on
/// any, or the one engine they ran on is down (even while others have yet
/// to finish); with `any`, once met, none of its accepted tasks ran on an
/// engine. (Ready tasks whose engines go down are the business of
/// [`Scheduler::enqueue`].)
fn follow_problem(tally: &Tally, met: bool, is_live: impl Fn(&EngineId) -> bool) -> Option<String> {
    if tally.dep.all
        && let Some(engine) = tally.engines.first()
        && tally.engines.len() == 1
        && !is_live(engine)
    {
        return Some(format!("the engine it must follow ({engine}) is down"));
    }
    if tally.dep.all && tally.engines.len() > 1 {
        return Some(format!(
            "follow needs {} on one engine, and they ran on engines {}",
            tally.dep.describe(),
            names(&tally.engines.iter().copied().collect::<Vec<_>>())
        ));
    }
    if tally.dep.all && tally.nowhere > 0 {
        return Some("follow names a task that never ran on an engine".into());
    }
    if met && tally.engines.is_empty() {
        return Some("none of the tasks follow names ran on an engine".into());
    }
    None
}

fn timeout_reason(blocked: &Blocked) -> String {
    let ms = blocked.job.submission.sched.timeout_ms.unwrap_or(0);
    let parts: Vec<String> = [("after", &blocked.after), ("follow", &blocked.follow)]
        .into_iter()
        .filter_map(|(which, tally)| {
            let tally = tally.as_ref()?;
            (tally.verdict() != Verdict::Met).then(|| {
                format!(
                    "{which} needs {} ({} of {} met so far)",
                    tally.dep.describe(),
                    tally.accepted,
                    tally.dep.msg_ids.len()
                )
            })
        })
        .collect();
    format!("not met within {ms} ms: {}", parts.join("; "))
}

/// Engine ids, comma-separated.
fn names(engines: &[EngineId]) -> String {
    let names: Vec<String> = engines.iter().map(ToString::to_string).collect();
    names.join(", ")
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort_unstable();
    items.dedup();
    items
}

/// An index drawn with probability proportional to its weight.
fn weighted_draw(rng: &mut fastrand::Rng, weights: &[f64]) -> usize {
    let mut x = rng.f64() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

fn has_room(slot: &EngineSlot, hwm: usize) -> bool {
    hwm == 0 || slot.tasks.len() < hwm
}

fn is_live(entry: &QueueEntry, waiting: &HashMap<MsgId, WaitingTask>) -> bool {
    waiting
        .get(&entry.msg_id)
        .is_some_and(|task| task.seq == entry.seq)
}

/// The oldest entry of `queue` that belongs to a waiting task; drops stale
/// entries in front of it.
fn live_head(
    queue: &mut VecDeque<QueueEntry>,
    waiting: &HashMap<MsgId, WaitingTask>,
    queued_entries: &mut usize,
) -> Option<QueueEntry> {
    while let Some(entry) = queue.front() {
        if is_live(entry, waiting) {
            return Some(*entry);
        }
        queue.pop_front();
        *queued_entries -= 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::btree_map::Entry;

    use grid_proto::{SchedFlags, Work};

    use super::*;

    fn task() -> Submission {
        Submission {
            msg_id: MsgId::new(),
            client: ClientId::new(),
            submitted: Timestamp(1),
            work: grid_proto::Body::new(&Work::Clear).unwrap(),
            sched: SchedFlags::default(),
        }
    }

    fn targeted(ids: &[u32]) -> Submission {
        let mut s = task();
        s.sched.targets = Some(ids.iter().map(|&id| EngineId(id)).collect());
        s
    }

    fn with_timeout(mut s: Submission, ms: u64) -> Submission {
        s.sched.timeout_ms = Some(ms);
        s
    }

    fn submit(s: Submission) -> SchedEvent {
        SchedEvent::Submit {
            submission: Box::new(s),
            deps: Vec::new(),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A scheduler and a hand-driven clock.
    struct Bench {
        sched: Scheduler,
        now: Instant,
    }

    impl Bench {
        fn new(scheme: Scheme, hwm: usize, engines: &[u32]) -> Bench {
            Bench::seeded(scheme, hwm, 7, engines)
        }

        fn seeded(scheme: Scheme, hwm: usize, seed: u64, engines: &[u32]) -> Bench {
            let mut bench = Bench {
                sched: Scheduler::new(SchedulerConfig { scheme, hwm, seed }),
                now: Instant::now(),
            };
            for &id in engines {
                assert_eq!(bench.on(SchedEvent::EngineUp(EngineId(id))), vec![]);
            }
            bench
        }

        fn on(&mut self, event: SchedEvent) -> Vec<SchedAction> {
            self.sched.handle(event, self.now)
        }

        /// Submits; returns the engine it went to, if placed at once.
        fn submit(&mut self, s: Submission) -> Option<EngineId> {
            let actions = self.on(submit(s.clone()));
            match dispatches(&actions)[..] {
                [] => {
                    assert_eq!(actions, vec![]);
                    None
                }
                [(engine, msg_id)] => {
                    assert_eq!(msg_id, s.msg_id);
                    Some(engine)
                }
                _ => panic!("one submission, many dispatches: {actions:?}"),
            }
        }

        fn finish(&mut self, msg_id: MsgId) -> Vec<(EngineId, MsgId)> {
            let actions = self.on(SchedEvent::Finished {
                msg_id,
                engine: None,
                status: Status::Ok,
            });
            assert_eq!(failures(&actions), vec![]);
            dispatches(&actions)
        }

        /// `msg_id` finished on `engine` (if it reached one) with `status`.
        fn end(&mut self, msg_id: MsgId, engine: Option<u32>, status: Status) -> Vec<SchedAction> {
            self.on(SchedEvent::Finished {
                msg_id,
                engine: engine.map(EngineId),
                status,
            })
        }

        fn advance(&mut self, by: Duration) -> Vec<SchedAction> {
            self.now += by;
            self.on(SchedEvent::Tick)
        }
    }

    fn with_after(mut s: Submission, dep: impl Into<Dependency>) -> Submission {
        s.sched.after = Some(dep.into());
        s
    }

    fn with_follow(mut s: Submission, dep: impl Into<Dependency>) -> Submission {
        s.sched.follow = Some(dep.into());
        s
    }

    fn with_retries(mut s: Submission, retries: u32) -> Submission {
        s.sched.retries = retries;
        s
    }

    /// A submission with what the hub knows of the tasks it names.
    fn submit_with(s: &Submission, deps: &[(MsgId, DepState)]) -> SchedEvent {
        SchedEvent::Submit {
            submission: Box::new(s.clone()),
            deps: deps.to_vec(),
        }
    }

    /// Finished on engine `id` (`ok`: successfully), as the hub reports it.
    fn ran(id: u32, ok: bool) -> DepState {
        DepState::Done {
            engine: Some(EngineId(id)),
            ok,
        }
    }

    /// The one task failed with an impossible dependency, and why.
    fn impossible(actions: &[SchedAction]) -> (MsgId, String) {
        match &failures(actions)[..] {
            [(msg_id, TaskError::ImpossibleDependency(why))] => (*msg_id, why.clone()),
            other => panic!("expected one impossible dependency, got {other:?}"),
        }
    }

    fn retries(actions: &[SchedAction]) -> Vec<(MsgId, EngineId, u32)> {
        actions
            .iter()
            .filter_map(|a| match a {
                SchedAction::Retry {
                    msg_id,
                    engine,
                    attempt,
                } => Some((*msg_id, *engine, *attempt)),
                _ => None,
            })
            .collect()
    }

    fn dispatches(actions: &[SchedAction]) -> Vec<(EngineId, MsgId)> {
        actions
            .iter()
            .filter_map(|a| match a {
                SchedAction::Dispatch { engine, submission } => Some((*engine, submission.msg_id)),
                _ => None,
            })
            .collect()
    }

    fn failures(actions: &[SchedAction]) -> Vec<(MsgId, TaskError)> {
        actions
            .iter()
            .filter_map(|a| match a {
                SchedAction::Fail { msg_id, error, .. } => Some((*msg_id, error.clone())),
                _ => None,
            })
            .collect()
    }

    fn unschedulable(actions: &[SchedAction]) -> String {
        match &failures(actions)[..] {
            [(_, TaskError::Unschedulable(why))] => why.clone(),
            other => panic!("expected one unschedulable task, got {other:?}"),
        }
    }

    fn e(id: u32) -> EngineId {
        EngineId(id)
    }

    #[test]
    fn leastload_picks_the_fewest_outstanding_then_the_lowest_id() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[2, 0, 1]);
        let tasks: Vec<Submission> = (0..3).map(|_| task()).collect();
        let placed: Vec<_> = tasks.iter().map(|t| b.submit(t.clone())).collect();
        assert_eq!(placed, vec![Some(e(0)), Some(e(1)), Some(e(2))]);
        b.finish(tasks[1].msg_id);
        assert_eq!(b.submit(task()), Some(e(1)));
        assert_eq!(b.submit(task()), Some(e(0)));
        assert_eq!(b.sched.outstanding(e(0)), 2);
    }

    #[test]
    fn lru_picks_the_engine_given_work_least_recently() {
        let mut b = Bench::new(Scheme::Lru, 0, &[0, 1, 2]);
        let tasks: Vec<Submission> = (0..3).map(|_| task()).collect();
        let placed: Vec<_> = tasks.iter().map(|t| b.submit(t.clone())).collect();
        assert_eq!(placed, vec![Some(e(0)), Some(e(1)), Some(e(2))]);
        // Engine 2 is idle now, so least-load would pick it; LRU does not.
        b.finish(tasks[2].msg_id);
        assert_eq!(b.submit(task()), Some(e(0)));
        assert_eq!(b.submit(task()), Some(e(1)));
        // An engine that never had work is the least recently used.
        b.on(SchedEvent::EngineUp(e(7)));
        assert_eq!(b.submit(task()), Some(e(7)));
        assert_eq!(b.submit(task()), Some(e(2)));
    }

    #[test]
    fn tasks_wait_at_the_high_water_mark_and_flow_as_engines_finish() {
        let mut b = Bench::new(Scheme::LeastLoad, 2, &[0, 1]);
        let tasks: Vec<Submission> = (0..7).map(|_| task()).collect();
        let placed: Vec<_> = tasks.iter().map(|t| b.submit(t.clone())).collect();
        let (a, w) = (Some(e(0)), Some(e(1)));
        assert_eq!(placed, vec![a, w, a, w, None, None, None]);
        assert_eq!(b.sched.waiting(), 3);
        assert_eq!(b.sched.locate(&tasks[4].msg_id), Some(Placement::Waiting));

        // Freed slots take the oldest waiting task.
        assert_eq!(b.finish(tasks[1].msg_id), vec![(e(1), tasks[4].msg_id)]);
        assert_eq!(b.finish(tasks[0].msg_id), vec![(e(0), tasks[5].msg_id)]);
        assert_eq!(b.finish(tasks[2].msg_id), vec![(e(0), tasks[6].msg_id)]);
        assert_eq!(b.sched.waiting(), 0);
        assert_eq!(b.finish(tasks[3].msg_id), vec![]);
        assert_eq!(b.sched.outstanding(e(0)), 2);
        assert_eq!(b.sched.outstanding(e(1)), 1);
        assert_eq!(
            b.sched.locate(&tasks[6].msg_id),
            Some(Placement::Dispatched(e(0)))
        );
    }

    #[test]
    fn a_high_water_mark_of_zero_means_no_limit() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        for _ in 0..1000 {
            assert_eq!(b.submit(task()), Some(e(0)));
        }
        assert_eq!(b.sched.outstanding(e(0)), 1000);
    }

    #[test]
    fn an_engine_coming_up_takes_waiting_tasks_oldest_first() {
        let mut b = Bench::new(Scheme::LeastLoad, 2, &[]);
        let tasks: Vec<Submission> = (0..3).map(|_| task()).collect();
        for t in &tasks {
            assert_eq!(b.submit(t.clone()), None);
        }
        let actions = b.on(SchedEvent::EngineUp(e(0)));
        assert_eq!(
            dispatches(&actions),
            vec![(e(0), tasks[0].msg_id), (e(0), tasks[1].msg_id)]
        );
        let actions = b.on(SchedEvent::EngineUp(e(1)));
        assert_eq!(dispatches(&actions), vec![(e(1), tasks[2].msg_id)]);
        // Up twice is up once.
        assert_eq!(b.on(SchedEvent::EngineUp(e(1))), vec![]);
        assert_eq!(b.sched.outstanding(e(1)), 1);
    }

    #[test]
    fn targets_limit_the_eligible_engines() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0, 1, 2]);
        let first = targeted(&[2]);
        let second = targeted(&[2, 2]);
        assert_eq!(b.submit(first.clone()), Some(e(2)));
        assert_eq!(b.submit(second.clone()), None, "engine 2 is full");
        assert_eq!(
            b.submit(task()),
            Some(e(0)),
            "untargeted work is not blocked"
        );
        assert_eq!(b.finish(first.msg_id), vec![(e(2), second.msg_id)]);

        // A target that is not registered yet: the task waits for it.
        let later = targeted(&[5]);
        assert_eq!(b.submit(later.clone()), None);
        let actions = b.on(SchedEvent::EngineUp(e(5)));
        assert_eq!(dispatches(&actions), vec![(e(5), later.msg_id)]);
    }

    #[test]
    fn an_empty_target_list_fails_at_once() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0]);
        let actions = b.on(submit(targeted(&[])));
        assert!(unschedulable(&actions).contains("empty"));
        assert_eq!(b.sched.waiting(), 0);
    }

    #[test]
    fn a_freed_slot_goes_to_the_oldest_task_eligible_there() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0, 1]);
        let busy0 = task();
        let busy1 = task();
        b.submit(busy0.clone());
        b.submit(busy1.clone());
        let any_a = task();
        let only1 = targeted(&[1]);
        let only0 = targeted(&[0]);
        let any_b = task();
        for t in [&any_a, &only1, &only0, &any_b] {
            assert_eq!(b.submit(t.clone()), None);
        }
        assert_eq!(b.finish(busy1.msg_id), vec![(e(1), any_a.msg_id)]);
        assert_eq!(b.finish(any_a.msg_id), vec![(e(1), only1.msg_id)]);
        assert_eq!(b.finish(only1.msg_id), vec![(e(1), any_b.msg_id)]);
        assert_eq!(b.finish(busy0.msg_id), vec![(e(0), only0.msg_id)]);
    }

    #[test]
    fn a_task_times_out_when_no_engine_is_registered() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[]);
        let t = with_timeout(task(), 100);
        assert_eq!(b.submit(t.clone()), None);
        assert_eq!(b.sched.poll_timeout(), Some(b.now + ms(100)));
        assert_eq!(b.advance(ms(99)), vec![]);
        let actions = b.advance(ms(1));
        assert_eq!(
            unschedulable(&actions),
            "no engines are registered (waited 100 ms)"
        );
        assert_eq!(failures(&actions)[0].0, t.msg_id);
        assert_eq!(b.sched.poll_timeout(), None);
        assert_eq!(b.sched.waiting(), 0);
    }

    #[test]
    fn a_task_times_out_when_every_engine_stays_busy() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0]);
        b.submit(task());
        let patient = task();
        assert_eq!(b.submit(patient.clone()), None);
        assert_eq!(b.submit(with_timeout(task(), 50)), None);
        let actions = b.advance(ms(50));
        assert_eq!(
            unschedulable(&actions),
            "no engine became available within 50 ms"
        );
        // Without a timeout a task waits as long as it takes.
        assert_eq!(b.sched.poll_timeout(), None);
        assert_eq!(b.advance(Duration::from_secs(3600)), vec![]);
        assert_eq!(b.sched.locate(&patient.msg_id), Some(Placement::Waiting));
    }

    #[test]
    fn a_timeout_names_targets_that_are_not_registered() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0]);
        b.submit(with_timeout(targeted(&[7, 3]), 10));
        let actions = b.advance(ms(10));
        assert_eq!(
            unschedulable(&actions),
            "none of the target engines (3, 7) is registered (waited 10 ms)"
        );
    }

    #[test]
    fn a_task_placed_in_time_does_not_time_out() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0]);
        let busy = task();
        b.submit(busy.clone());
        let t = with_timeout(task(), 100);
        b.submit(t.clone());
        b.now += ms(60);
        assert_eq!(b.finish(busy.msg_id), vec![(e(0), t.msg_id)]);
        assert_eq!(b.sched.poll_timeout(), None);
        assert_eq!(b.advance(ms(100)), vec![]);
    }

    #[test]
    fn an_expired_task_is_not_placed_by_a_late_event() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[]);
        let t = with_timeout(task(), 10);
        b.submit(t.clone());
        // No Tick came in time; the engine arrives after the deadline.
        b.now += ms(20);
        let actions = b.on(SchedEvent::EngineUp(e(0)));
        assert_eq!(dispatches(&actions), vec![]);
        assert_eq!(failures(&actions).len(), 1);
    }

    #[test]
    fn a_zero_timeout_fails_at_once_unless_placed() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0]);
        assert_eq!(b.submit(with_timeout(task(), 0)), Some(e(0)));
        let actions = b.on(submit(with_timeout(task(), 0)));
        unschedulable(&actions);
    }

    #[test]
    fn a_huge_timeout_is_no_timeout() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[]);
        b.submit(with_timeout(task(), u64::MAX));
        assert_eq!(b.sched.waiting(), 1);
    }

    #[test]
    fn abort_fails_waiting_tasks_and_leaves_dispatched_ones_to_the_engine() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0]);
        let running = task();
        let waiting = with_timeout(task(), 100);
        let other = task();
        b.submit(running.clone());
        b.submit(waiting.clone());
        b.submit(other.clone());
        let actions = b.on(SchedEvent::Abort(vec![
            waiting.msg_id,
            running.msg_id,
            MsgId::new(),
        ]));
        assert_eq!(
            failures(&actions),
            vec![(waiting.msg_id, TaskError::Aborted)]
        );
        assert_eq!(dispatches(&actions), vec![]);
        assert_eq!(
            b.sched.locate(&running.msg_id),
            Some(Placement::Dispatched(e(0)))
        );
        assert_eq!(b.sched.poll_timeout(), None, "its deadline went with it");
        // The aborted task never runs; the next waiting one does.
        assert_eq!(b.finish(running.msg_id), vec![(e(0), other.msg_id)]);
        assert_eq!(b.sched.locate(&waiting.msg_id), None);
    }

    #[test]
    fn an_engine_going_down_fails_its_tasks_and_gets_no_more() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0, 1]);
        let on0 = task();
        let on1 = task();
        let waiting = task();
        b.submit(on0.clone());
        b.submit(on1.clone());
        b.submit(waiting.clone());
        let actions = b.on(SchedEvent::EngineDown(e(0)));
        assert_eq!(
            failures(&actions),
            vec![(on0.msg_id, TaskError::EngineDied(e(0)))]
        );
        assert_eq!(dispatches(&actions), vec![]);
        assert_eq!(b.sched.locate(&on0.msg_id), None);
        // Its late result changes nothing.
        assert_eq!(b.finish(on0.msg_id), vec![]);
        assert_eq!(b.finish(on1.msg_id), vec![(e(1), waiting.msg_id)]);
        assert_eq!(b.submit(task()), None, "engine 0 gets no more work");
        assert_eq!(b.on(SchedEvent::EngineDown(e(0))), vec![]);
    }

    #[test]
    fn results_of_unknown_tasks_are_ignored() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0]);
        let t = task();
        b.submit(t.clone());
        assert_eq!(b.finish(MsgId::new()), vec![]);
        assert_eq!(b.sched.outstanding(e(0)), 1);
        b.finish(t.msg_id);
        assert_eq!(
            b.finish(t.msg_id),
            vec![],
            "a second result changes nothing"
        );
        assert_eq!(b.sched.outstanding(e(0)), 0);
    }

    #[test]
    fn a_result_for_a_waiting_task_drops_it() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[]);
        let t = task();
        b.submit(t.clone());
        assert_eq!(b.finish(t.msg_id), vec![]);
        assert_eq!(b.on(SchedEvent::EngineUp(e(0))), vec![]);
    }

    #[test]
    fn a_submission_seen_twice_is_placed_once() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0]);
        let first = task();
        let second = task();
        assert_eq!(b.submit(first.clone()), Some(e(0)));
        assert_eq!(b.submit(first.clone()), None);
        assert_eq!(b.submit(second.clone()), None);
        assert_eq!(b.submit(second.clone()), None);
        assert_eq!(b.sched.waiting(), 1);
        assert_eq!(b.finish(first.msg_id), vec![(e(0), second.msg_id)]);
    }

    #[test]
    fn shutdown_fails_every_waiting_task_in_order() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0]);
        b.submit(task());
        let waiting: Vec<Submission> = (0..3).map(|_| task()).collect();
        for t in &waiting {
            b.submit(t.clone());
        }
        let actions = b.on(SchedEvent::Shutdown);
        let failed: Vec<MsgId> = failures(&actions).into_iter().map(|(id, _)| id).collect();
        assert_eq!(failed, waiting.iter().map(|t| t.msg_id).collect::<Vec<_>>());
        assert_eq!(b.sched.waiting(), 0);
    }

    #[test]
    fn stale_queue_entries_are_compacted() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[]);
        let tasks: Vec<Submission> = (0..5000).map(|_| targeted(&[0, 1, 2])).collect();
        for t in &tasks {
            b.submit(t.clone());
        }
        assert_eq!(b.sched.queued_entries, 15_000);
        b.on(SchedEvent::Abort(tasks.iter().map(|t| t.msg_id).collect()));
        assert_eq!(b.sched.queued_entries, 0);
        assert!(b.sched.targeted.is_empty());
        assert_eq!(b.sched.live_entries, 0);
    }

    #[test]
    fn schemes_parse_by_their_ipyparallel_names() {
        assert_eq!("lru".parse::<Scheme>(), Ok(Scheme::Lru));
        assert_eq!("leastload".parse::<Scheme>(), Ok(Scheme::LeastLoad));
        for scheme in Scheme::ALL {
            assert_eq!(scheme.name().parse::<Scheme>(), Ok(scheme));
        }
        assert!("fastest".parse::<Scheme>().is_err());
        assert_eq!(SchedulerConfig::default().hwm, DEFAULT_HWM);
    }

    // Dependencies: `after`.

    #[test]
    fn after_waits_until_all_its_tasks_succeeded() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1]);
        let (x, y) = (task(), task());
        assert_eq!(b.submit(x.clone()), Some(e(0)));
        assert_eq!(b.submit(y.clone()), Some(e(1)));
        let t = with_after(task(), vec![x.msg_id, y.msg_id]);
        let pending = [(x.msg_id, DepState::Pending), (y.msg_id, DepState::Pending)];
        assert_eq!(b.on(submit_with(&t, &pending)), vec![]);
        assert_eq!(b.sched.locate(&t.msg_id), Some(Placement::Blocked));
        assert_eq!(b.sched.blocked(), 1);
        assert_eq!(b.end(x.msg_id, Some(0), Status::Ok), vec![]);
        assert_eq!(b.sched.locate(&t.msg_id), Some(Placement::Blocked));
        let actions = b.end(y.msg_id, Some(1), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);
        assert_eq!(b.sched.blocked(), 0);
    }

    #[test]
    fn after_any_is_met_by_the_first_task_that_succeeds() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let (x, y) = (task(), task());
        b.submit(x.clone());
        b.submit(y.clone());
        let t = with_after(task(), Dependency::new([x.msg_id, y.msg_id]).any());
        let pending = [(x.msg_id, DepState::Pending), (y.msg_id, DepState::Pending)];
        assert_eq!(b.on(submit_with(&t, &pending)), vec![]);
        // A failure does not meet it, nor make it impossible while y may succeed.
        assert_eq!(b.end(x.msg_id, Some(0), Status::Error), vec![]);
        assert_eq!(b.sched.locate(&t.msg_id), Some(Placement::Blocked));
        let actions = b.end(y.msg_id, Some(0), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);

        // When every one failed, it never will be.
        let (p, q) = (MsgId::new(), MsgId::new());
        let u = with_after(task(), Dependency::new([p, q]).any());
        let actions = b.on(submit_with(&u, &[(p, ran(0, false)), (q, ran(0, false))]));
        assert_eq!(
            impossible(&actions),
            (
                u.msg_id,
                "after needs any of 2 tasks succeeding, and every one finished otherwise".into()
            )
        );
    }

    #[test]
    fn after_on_failure_runs_only_if_its_task_failed() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let (x, y, z) = (task(), task(), task());
        for t in [&x, &y, &z] {
            b.submit(t.clone());
        }
        let on_failure = |id: MsgId| Dependency::from(id).success(false).failure(true);
        let if_x_fails = with_after(task(), on_failure(x.msg_id));
        let if_y_fails = with_after(task(), on_failure(y.msg_id));
        let if_z_fails = with_after(task(), on_failure(z.msg_id));
        let after_y_either_way = with_after(task(), Dependency::from(y.msg_id).failure(true));
        for (t, dep) in [
            (&if_x_fails, x.msg_id),
            (&if_y_fails, y.msg_id),
            (&if_z_fails, z.msg_id),
            (&after_y_either_way, y.msg_id),
        ] {
            assert_eq!(b.on(submit_with(t, &[(dep, DepState::Pending)])), vec![]);
        }

        let actions = b.end(x.msg_id, Some(0), Status::Error);
        assert_eq!(dispatches(&actions), vec![(e(0), if_x_fails.msg_id)]);

        let actions = b.end(y.msg_id, Some(0), Status::Ok);
        assert_eq!(
            impossible(&actions),
            (
                if_y_fails.msg_id,
                format!(
                    "after needs 1 task failing, and task {} succeeded",
                    y.msg_id
                )
            )
        );
        assert_eq!(
            dispatches(&actions),
            vec![(e(0), after_y_either_way.msg_id)]
        );

        // An abort is a failure too.
        let actions = b.end(z.msg_id, Some(0), Status::Aborted);
        assert_eq!(dispatches(&actions), vec![(e(0), if_z_fails.msg_id)]);
    }

    #[test]
    fn after_counts_tasks_finished_before_the_submission_at_once() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let (good, bad, running) = (MsgId::new(), MsgId::new(), task());
        b.submit(running.clone());

        let t = with_after(task(), good);
        let actions = b.on(submit_with(&t, &[(good, ran(0, true))]));
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);

        let u = with_after(task(), bad);
        let actions = b.on(submit_with(&u, &[(bad, ran(0, false))]));
        assert_eq!(
            impossible(&actions),
            (
                u.msg_id,
                format!("after needs 1 task succeeding, and task {bad} failed")
            )
        );
        assert_eq!(dispatches(&actions), vec![]);

        // One done, one not: it waits for the other only.
        let v = with_after(task(), vec![good, running.msg_id]);
        let deps = [(good, ran(0, true)), (running.msg_id, DepState::Pending)];
        assert_eq!(b.on(submit_with(&v, &deps)), vec![]);
        let actions = b.end(running.msg_id, Some(0), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(0), v.msg_id)]);
    }

    #[test]
    fn after_a_direct_task_waits_for_it_to_finish() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1]);
        // Sent straight to engine 1: the scheduler never placed it.
        let direct = MsgId::new();
        assert_eq!(b.on(SchedEvent::Seen(direct)), vec![]);
        let t = with_after(task(), direct);
        assert_eq!(
            b.on(submit_with(&t, &[(direct, DepState::Pending)])),
            vec![]
        );
        let actions = b.end(direct, Some(1), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);
        assert_eq!(
            b.sched.outstanding(e(1)),
            0,
            "direct tasks are no load here"
        );

        // One the hub had not seen yet when the dependent came: finishing
        // is showing up.
        let unseen = MsgId::new();
        let u = with_after(task(), unseen);
        assert_eq!(b.on(submit_with(&u, &[])), vec![]);
        let actions = b.end(unseen, Some(1), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(1), u.msg_id)]);
        assert_eq!(b.sched.poll_timeout(), None);
    }

    #[test]
    fn an_empty_dependency_is_met_at_once() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let t = with_follow(with_after(task(), Vec::<MsgId>::new()), Vec::<MsgId>::new());
        assert_eq!(b.submit(t), Some(e(0)));
    }

    // Impossible dependencies.

    #[test]
    fn follow_all_of_tasks_that_ran_on_different_engines_is_impossible() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1]);
        let (x, y) = (MsgId::new(), MsgId::new());
        let t = with_follow(task(), vec![x, y]);
        let actions = b.on(submit_with(&t, &[(x, ran(0, true)), (y, ran(1, true))]));
        assert_eq!(
            impossible(&actions),
            (
                t.msg_id,
                "follow needs all of 2 tasks succeeding on one engine, and they ran on engines 0, 1"
                    .into()
            )
        );

        // Found out as soon as the second one finishes elsewhere.
        let z = MsgId::new();
        let u = with_follow(task(), vec![x, z]);
        assert_eq!(
            b.on(submit_with(
                &u,
                &[(x, ran(0, true)), (z, DepState::Pending)]
            )),
            vec![]
        );
        let actions = b.end(z, Some(1), Status::Ok);
        assert_eq!(impossible(&actions).0, u.msg_id);
        assert_eq!(b.sched.blocked(), 0);
    }

    #[test]
    fn a_follower_fails_when_its_engine_dies_while_it_is_blocked() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1]);
        let (x, y) = (MsgId::new(), MsgId::new());
        let t = with_follow(task(), vec![x, y]);
        assert_eq!(
            b.on(submit_with(
                &t,
                &[(x, ran(0, true)), (y, DepState::Pending)]
            )),
            vec![]
        );
        let actions = b.on(SchedEvent::EngineDown(e(0)));
        assert_eq!(
            impossible(&actions),
            (t.msg_id, "the engine it must follow (0) is down".into())
        );
        assert_eq!(b.sched.blocked(), 0);
    }

    #[test]
    fn a_follower_fails_when_its_engine_dies_while_it_waits_for_room() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0, 1]);
        let busy = task();
        assert_eq!(b.submit(busy.clone()), Some(e(0)));
        let x = MsgId::new();
        let t = with_follow(task(), x);
        assert_eq!(b.on(submit_with(&t, &[(x, ran(0, true))])), vec![]);
        assert_eq!(b.sched.locate(&t.msg_id), Some(Placement::Waiting));
        let actions = b.on(SchedEvent::EngineDown(e(0)));
        assert_eq!(
            failures(&actions),
            vec![
                (busy.msg_id, TaskError::EngineDied(e(0))),
                (
                    t.msg_id,
                    TaskError::ImpossibleDependency("the engine it must follow (0) is down".into())
                ),
            ]
        );
        assert_eq!(dispatches(&actions), vec![], "engine 1 is no substitute");
        assert_eq!(b.sched.waiting(), 0);
    }

    #[test]
    fn a_follower_of_an_engine_already_down_fails_at_once() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[1]);
        let x = MsgId::new();
        let t = with_follow(task(), x);
        let actions = b.on(submit_with(&t, &[(x, ran(0, true))]));
        assert_eq!(
            impossible(&actions),
            (t.msg_id, "the engine it must follow (0) is down".into())
        );
    }

    #[test]
    fn a_follower_of_an_engine_already_down_fails_before_its_other_tasks_finish() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1]);
        b.on(SchedEvent::EngineDown(e(0)));
        let (x, y) = (MsgId::new(), MsgId::new());
        let t = with_follow(task(), vec![x, y]);
        let actions = b.on(submit_with(
            &t,
            &[(x, ran(0, true)), (y, DepState::Pending)],
        ));
        assert_eq!(
            impossible(&actions),
            (t.msg_id, "the engine it must follow (0) is down".into())
        );

        // Or when the first of its tasks is reported on a dead engine.
        let u = with_follow(task(), Dependency::new([x, y]).failure(true));
        assert_eq!(
            b.on(submit_with(
                &u,
                &[(x, DepState::Pending), (y, DepState::Pending)]
            )),
            vec![]
        );
        let actions = b.end(x, Some(0), Status::Error);
        assert_eq!(impossible(&actions).0, u.msg_id);
        assert_eq!(b.sched.blocked(), 0);
    }

    #[test]
    fn follow_engines_outside_the_targets_are_impossible() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1]);
        let x = MsgId::new();
        let mut t = with_follow(task(), x);
        t.sched.targets = Some(vec![e(1)]);
        let actions = b.on(submit_with(&t, &[(x, ran(0, true))]));
        assert_eq!(
            impossible(&actions),
            (
                t.msg_id,
                "the engines it must follow are not among its targets".into()
            )
        );
        // Where they overlap, the overlap is where it runs.
        let mut u = with_follow(task(), Dependency::new([x, MsgId::new()]).any());
        u.sched.targets = Some(vec![e(1), e(0)]);
        let actions = b.on(submit_with(&u, &[(x, ran(0, true))]));
        assert_eq!(dispatches(&actions), vec![(e(0), u.msg_id)]);
    }

    #[test]
    fn a_task_that_depends_on_itself_fails_at_once() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let mut t = task();
        t.sched.after = Some(Dependency::from(t.msg_id));
        assert_eq!(
            impossible(&b.on(submit(t.clone()))),
            (t.msg_id, "the task depends on itself".into())
        );
        let mut u = task();
        u.sched.follow = Some(Dependency::new([MsgId::new(), u.msg_id]).any());
        assert_eq!(impossible(&b.on(submit(u.clone()))).0, u.msg_id);
        assert_eq!(b.sched.blocked(), 0);
        assert_eq!(b.sched.poll_timeout(), None);
    }

    #[test]
    fn an_unknown_dependency_fails_after_the_grace_period() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let ghost = MsgId::new();
        let t = with_after(task(), ghost);
        assert_eq!(b.on(submit_with(&t, &[(ghost, DepState::Unknown)])), vec![]);
        assert_eq!(b.sched.poll_timeout(), Some(b.now + UNKNOWN_GRACE));
        assert_eq!(b.advance(UNKNOWN_GRACE - ms(1)), vec![]);
        let actions = b.advance(ms(1));
        assert_eq!(
            impossible(&actions),
            (
                t.msg_id,
                format!(
                    "unknown task {ghost}: the controller has no record of it (never submitted, or purged)"
                )
            )
        );
        assert_eq!(b.sched.blocked(), 0);
        assert_eq!(b.sched.poll_timeout(), None);
        // Showing up late changes nothing.
        assert_eq!(b.end(ghost, Some(0), Status::Ok), vec![]);
    }

    #[test]
    fn an_unknown_dependency_seen_within_the_grace_period_is_waited_for() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let direct = MsgId::new();
        let t = with_after(task(), direct);
        assert_eq!(b.on(submit_with(&t, &[])), vec![]);
        b.now += UNKNOWN_GRACE - ms(1);
        assert_eq!(b.on(SchedEvent::Seen(direct)), vec![]);
        assert_eq!(b.sched.poll_timeout(), None);
        assert_eq!(b.advance(Duration::from_secs(60)), vec![]);
        assert_eq!(b.sched.locate(&t.msg_id), Some(Placement::Blocked));
        let actions = b.end(direct, Some(0), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);
    }

    #[test]
    fn an_unknown_dependency_submitted_within_the_grace_period_is_waited_for() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let late = task();
        let t = with_after(task(), late.msg_id);
        assert_eq!(
            b.on(submit_with(&t, &[(late.msg_id, DepState::Unknown)])),
            vec![]
        );
        b.now += ms(500);
        assert_eq!(b.submit(late.clone()), Some(e(0)));
        assert_eq!(b.sched.poll_timeout(), None);
        assert_eq!(b.advance(UNKNOWN_GRACE * 10), vec![]);
        let actions = b.end(late.msg_id, Some(0), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);
    }

    #[test]
    fn a_cycle_through_an_unknown_task_fails_at_once() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        // a waits for c (not seen yet), b for a, and then c comes waiting for b.
        let (mut a, mut bb, mut c) = (task(), task(), task());
        a.sched.after = Some(Dependency::from(c.msg_id));
        bb.sched.after = Some(Dependency::from(a.msg_id));
        c.sched.after = Some(Dependency::from(bb.msg_id));
        assert_eq!(b.on(submit_with(&a, &[])), vec![]);
        assert_eq!(
            b.on(submit_with(&bb, &[(a.msg_id, DepState::Pending)])),
            vec![]
        );
        let actions = b.on(submit_with(&c, &[(bb.msg_id, DepState::Pending)]));
        let failed = failures(&actions);
        assert_eq!(
            failed[0],
            (
                c.msg_id,
                TaskError::ImpossibleDependency(
                    "its dependencies form a cycle: a task it waits for waits for it".into()
                )
            )
        );
        let rest: Vec<MsgId> = failed[1..].iter().map(|(id, _)| *id).collect();
        assert_eq!(rest, vec![a.msg_id, bb.msg_id], "and the cycle unwinds");
        assert_eq!(b.sched.blocked(), 0);
        assert_eq!(b.sched.poll_timeout(), None);
    }

    #[test]
    fn failure_runs_down_a_chain_of_a_thousand_tasks_in_one_event() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let head = task();
        assert_eq!(b.submit(head.clone()), Some(e(0)));
        let mut chain = vec![head.msg_id];
        for _ in 0..1000 {
            let prev = chain[chain.len() - 1];
            let t = with_after(task(), prev);
            assert_eq!(b.on(submit_with(&t, &[(prev, DepState::Pending)])), vec![]);
            chain.push(t.msg_id);
        }
        assert_eq!(b.sched.blocked(), 1000);
        assert_eq!(b.sched.poll_timeout(), None, "no timeout involved");

        let actions = b.end(head.msg_id, Some(0), Status::Error);
        let failed = failures(&actions);
        assert_eq!(failed.len(), 1000);
        for (link, (msg_id, error)) in chain.windows(2).zip(&failed) {
            assert_eq!(*msg_id, link[1]);
            let why = format!("after needs 1 task succeeding, and task {} failed", link[0]);
            assert_eq!(*error, TaskError::ImpossibleDependency(why));
        }
        assert_eq!(b.sched.blocked(), 0);
    }

    #[test]
    fn aborting_a_blocked_task_fails_it_and_its_dependents_see_a_failure() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let running = task();
        b.submit(running.clone());
        let t = with_after(task(), running.msg_id);
        let needs_t = with_after(task(), t.msg_id);
        let if_t_fails = with_after(
            task(),
            Dependency::from(t.msg_id).success(false).failure(true),
        );
        assert_eq!(
            b.on(submit_with(&t, &[(running.msg_id, DepState::Pending)])),
            vec![]
        );
        for d in [&needs_t, &if_t_fails] {
            assert_eq!(
                b.on(submit_with(d, &[(t.msg_id, DepState::Pending)])),
                vec![]
            );
        }
        let actions = b.on(SchedEvent::Abort(vec![t.msg_id]));
        assert_eq!(
            failures(&actions),
            vec![
                (t.msg_id, TaskError::Aborted),
                (
                    needs_t.msg_id,
                    TaskError::ImpossibleDependency(format!(
                        "after needs 1 task succeeding, and task {} failed",
                        t.msg_id
                    ))
                ),
            ]
        );
        assert_eq!(dispatches(&actions), vec![(e(0), if_t_fails.msg_id)]);
        // Its own dependency finishing later finds nobody.
        assert_eq!(b.end(running.msg_id, Some(0), Status::Ok), vec![]);
    }

    // Timeouts.

    #[test]
    fn a_blocked_task_fails_with_a_dependency_timeout_at_its_deadline() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let (x, y) = (task(), task());
        b.submit(x.clone());
        b.submit(y.clone());
        let t = with_timeout(with_after(task(), vec![x.msg_id, y.msg_id]), 100);
        let pending = [(x.msg_id, DepState::Pending), (y.msg_id, DepState::Pending)];
        assert_eq!(b.on(submit_with(&t, &pending)), vec![]);
        assert_eq!(b.sched.poll_timeout(), Some(b.now + ms(100)));
        b.now += ms(30);
        assert_eq!(b.end(x.msg_id, Some(0), Status::Ok), vec![]);
        assert_eq!(b.advance(ms(69)), vec![]);
        let actions = b.advance(ms(1));
        assert_eq!(
            failures(&actions),
            vec![(
                t.msg_id,
                TaskError::DependencyTimeout(
                    "not met within 100 ms: after needs all of 2 tasks succeeding (1 of 2 met so far)"
                        .into()
                )
            )]
        );
        assert_eq!(b.sched.blocked(), 0);
        assert_eq!(b.sched.poll_timeout(), None);
        assert_eq!(b.end(y.msg_id, Some(0), Status::Ok), vec![]);
    }

    #[test]
    fn a_ready_task_that_finds_no_room_fails_unschedulable_at_its_deadline() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0]);
        let busy = task();
        b.submit(busy.clone());
        let direct = MsgId::new();
        let t = with_timeout(with_after(task(), direct), 100);
        assert_eq!(
            b.on(submit_with(&t, &[(direct, DepState::Pending)])),
            vec![]
        );
        b.now += ms(40);
        assert_eq!(b.end(direct, Some(0), Status::Ok), vec![]);
        assert_eq!(b.sched.locate(&t.msg_id), Some(Placement::Waiting));
        // The timeout counts from the submission, not from the release.
        assert_eq!(b.advance(ms(59)), vec![]);
        let actions = b.advance(ms(1));
        assert_eq!(
            unschedulable(&actions),
            "no engine became available within 100 ms"
        );
        assert_eq!(b.sched.waiting(), 0);
    }

    #[test]
    fn a_timeout_as_long_as_the_unknown_grace_survives_the_task_showing_up() {
        // Both deadlines end at the same instant; the unknown task showing
        // up ends the grace, not the timeout (it once erased both).
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let (ghost, pending) = (MsgId::new(), MsgId::new());
        let grace_ms = u64::try_from(UNKNOWN_GRACE.as_millis()).unwrap();
        let t = with_timeout(with_after(task(), vec![ghost, pending]), grace_ms);
        let deps = [(ghost, DepState::Unknown), (pending, DepState::Pending)];
        let submitted = b.now;
        assert_eq!(b.on(submit_with(&t, &deps)), vec![]);
        b.now += ms(10);
        assert_eq!(b.on(SchedEvent::Seen(ghost)), vec![]);
        assert_eq!(b.sched.poll_timeout(), Some(submitted + UNKNOWN_GRACE));
        b.now = submitted + UNKNOWN_GRACE;
        let failed = failures(&b.on(SchedEvent::Tick));
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, t.msg_id);
        assert!(
            matches!(failed[0].1, TaskError::DependencyTimeout(_)),
            "{failed:?}"
        );
    }

    // Follow.

    #[test]
    fn follow_all_runs_on_the_engine_where_its_tasks_ran() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1, 2]);
        let (x, y) = (MsgId::new(), MsgId::new());
        let t = with_follow(task(), vec![x, y]);
        let actions = b.on(submit_with(&t, &[(x, ran(1, true)), (y, ran(1, true))]));
        assert_eq!(dispatches(&actions), vec![(e(1), t.msg_id)], "not idle 0");

        let running = targeted(&[2]);
        assert_eq!(b.submit(running.clone()), Some(e(2)));
        let u = with_follow(task(), running.msg_id);
        assert_eq!(
            b.on(submit_with(&u, &[(running.msg_id, DepState::Pending)])),
            vec![]
        );
        let actions = b.end(running.msg_id, Some(2), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(2), u.msg_id)]);
    }

    #[test]
    fn follow_any_runs_on_one_of_the_engines_where_its_tasks_ran() {
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0, 1, 2, 3]);
        let busy = targeted(&[1]);
        assert_eq!(b.submit(busy.clone()), Some(e(1)));
        let (x, y, failed) = (MsgId::new(), MsgId::new(), MsgId::new());
        let deps = [
            (x, ran(1, true)),
            (y, ran(2, true)),
            (failed, ran(3, false)),
        ];
        let t = with_follow(task(), Dependency::new([x, y, failed]).any());
        let actions = b.on(submit_with(&t, &deps));
        assert_eq!(dispatches(&actions), vec![(e(2), t.msg_id)], "1 is full");

        // Only engines where accepted tasks ran count: 3's task failed.
        let u = with_follow(task(), Dependency::new([x, failed]).any());
        assert_eq!(b.on(submit_with(&u, &deps)), vec![]);
        assert_eq!(b.sched.locate(&u.msg_id), Some(Placement::Waiting));
        // Once met, engines where more finish later are not added.
        let z = MsgId::new();
        let v = with_follow(task(), Dependency::new([x, z]).any());
        assert_eq!(
            b.on(submit_with(
                &v,
                &[(x, ran(1, true)), (z, DepState::Pending)]
            )),
            vec![]
        );
        assert_eq!(b.end(z, Some(0), Status::Ok), vec![]);
        let actions = b.end(busy.msg_id, Some(1), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(1), u.msg_id)]);
        let actions = b.end(u.msg_id, Some(1), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(1), v.msg_id)]);
    }

    // Retries.

    #[test]
    fn a_failed_task_runs_again_where_it_has_not_failed_until_out_of_retries() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1, 2]);
        let t = with_retries(task(), 2);
        let dependent = with_after(task(), t.msg_id);
        assert_eq!(b.submit(t.clone()), Some(e(0)));
        assert_eq!(
            b.on(submit_with(&dependent, &[(t.msg_id, DepState::Pending)])),
            vec![]
        );

        let actions = b.end(t.msg_id, Some(0), Status::Error);
        assert_eq!(retries(&actions), vec![(t.msg_id, e(0), 1)]);
        assert_eq!(dispatches(&actions), vec![(e(1), t.msg_id)]);
        assert_eq!(failures(&actions), vec![]);
        assert!(matches!(actions[0], SchedAction::Retry { .. }), "first");

        let actions = b.end(t.msg_id, Some(1), Status::Error);
        assert_eq!(retries(&actions), vec![(t.msg_id, e(1), 2)]);
        assert_eq!(dispatches(&actions), vec![(e(2), t.msg_id)]);
        assert_eq!(b.sched.locate(&dependent.msg_id), Some(Placement::Blocked));

        // The last failure is the engine's result for the hub to deliver;
        // the dependent hears of it.
        let actions = b.end(t.msg_id, Some(2), Status::Error);
        assert_eq!(retries(&actions), vec![]);
        assert_eq!(dispatches(&actions), vec![]);
        assert_eq!(
            impossible(&actions),
            (
                dependent.msg_id,
                format!(
                    "after needs 1 task succeeding, and task {} failed",
                    t.msg_id
                )
            )
        );
        assert_eq!(b.sched.locate(&t.msg_id), None);
    }

    #[test]
    fn a_retry_falls_back_to_an_engine_where_it_failed_when_no_other_is_up() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let t = with_retries(task(), 3);
        assert_eq!(b.submit(t.clone()), Some(e(0)));
        let actions = b.end(t.msg_id, Some(0), Status::Error);
        assert_eq!(retries(&actions), vec![(t.msg_id, e(0), 1)]);
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);

        // With a fresh engine up but full, it waits for that one; when the
        // fresh one dies, the engine where it failed will do.
        let mut b = Bench::new(Scheme::LeastLoad, 1, &[0, 1]);
        let busy = targeted(&[1]);
        assert_eq!(b.submit(busy.clone()), Some(e(1)));
        assert_eq!(b.submit(t.clone()), Some(e(0)));
        let actions = b.end(t.msg_id, Some(0), Status::Error);
        assert_eq!(retries(&actions), vec![(t.msg_id, e(0), 1)]);
        assert_eq!(dispatches(&actions), vec![]);
        assert_eq!(b.sched.locate(&t.msg_id), Some(Placement::Waiting));
        let actions = b.on(SchedEvent::EngineDown(e(1)));
        assert_eq!(
            failures(&actions),
            vec![(busy.msg_id, TaskError::EngineDied(e(1)))]
        );
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);
    }

    #[test]
    fn a_task_that_succeeds_on_a_retry_meets_its_dependents() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1]);
        let t = with_retries(task(), 1);
        assert_eq!(b.submit(t.clone()), Some(e(0)));
        let needs_t = with_after(task(), t.msg_id);
        let if_t_fails = with_after(
            task(),
            Dependency::from(t.msg_id).success(false).failure(true),
        );
        for d in [&needs_t, &if_t_fails] {
            assert_eq!(
                b.on(submit_with(d, &[(t.msg_id, DepState::Pending)])),
                vec![]
            );
        }
        // The first failure is not the outcome: nobody hears of it.
        let actions = b.end(t.msg_id, Some(0), Status::Error);
        assert_eq!(dispatches(&actions), vec![(e(1), t.msg_id)]);
        assert_eq!(failures(&actions), vec![]);
        assert_eq!(b.sched.blocked(), 2);

        let actions = b.end(t.msg_id, Some(1), Status::Ok);
        assert_eq!(dispatches(&actions), vec![(e(0), needs_t.msg_id)]);
        assert_eq!(impossible(&actions).0, if_t_fails.msg_id);
    }

    #[test]
    fn aborted_tasks_are_never_retried() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1]);
        let t = with_retries(task(), 5);
        let dependent = with_after(task(), t.msg_id);
        b.submit(t.clone());
        assert_eq!(
            b.on(submit_with(&dependent, &[(t.msg_id, DepState::Pending)])),
            vec![]
        );
        let actions = b.end(t.msg_id, Some(0), Status::Aborted);
        assert_eq!(retries(&actions), vec![]);
        assert_eq!(dispatches(&actions), vec![]);
        assert_eq!(impossible(&actions).0, dependent.msg_id);
        assert_eq!(b.sched.locate(&t.msg_id), None);
    }

    #[test]
    fn an_engine_death_retries_tasks_with_retries_left_and_fails_the_others() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0]);
        let (again, once) = (with_retries(task(), 1), task());
        b.submit(again.clone());
        b.submit(once.clone());
        let (after_again, after_once) = (
            with_after(task(), again.msg_id),
            with_after(task(), once.msg_id),
        );
        assert_eq!(
            b.on(submit_with(
                &after_again,
                &[(again.msg_id, DepState::Pending)]
            )),
            vec![]
        );
        assert_eq!(
            b.on(submit_with(
                &after_once,
                &[(once.msg_id, DepState::Pending)]
            )),
            vec![]
        );
        b.on(SchedEvent::EngineUp(e(1)));

        let actions = b.on(SchedEvent::EngineDown(e(0)));
        assert_eq!(retries(&actions), vec![(again.msg_id, e(0), 1)]);
        assert_eq!(dispatches(&actions), vec![(e(1), again.msg_id)]);
        assert_eq!(
            failures(&actions),
            vec![
                (once.msg_id, TaskError::EngineDied(e(0))),
                (
                    after_once.msg_id,
                    TaskError::ImpossibleDependency(format!(
                        "after needs 1 task succeeding, and task {} failed",
                        once.msg_id
                    ))
                ),
            ]
        );
        assert_eq!(
            b.sched.locate(&after_again.msg_id),
            Some(Placement::Blocked)
        );

        // Its second death is final.
        let actions = b.on(SchedEvent::EngineDown(e(1)));
        assert_eq!(retries(&actions), vec![]);
        assert_eq!(
            failures(&actions)[0],
            (again.msg_id, TaskError::EngineDied(e(1)))
        );
        assert_eq!(impossible(&actions[1..]).0, after_again.msg_id);
    }

    // Schemes.

    #[test]
    fn random_schemes_pick_only_eligible_engines_with_room() {
        for scheme in [Scheme::TwoBin, Scheme::Weighted, Scheme::PlainRandom] {
            let hwm = 2;
            let mut b = Bench::seeded(scheme, hwm, 11, &[0, 1, 2, 3, 4, 5]);
            let mut rng = fastrand::Rng::with_seed(3);
            let mut running: Vec<MsgId> = Vec::new();
            let mut live: BTreeSet<u32> = (0..6).collect();
            for step in 0..3000 {
                if step == 1500 {
                    b.on(SchedEvent::EngineDown(e(4)));
                    live.remove(&4);
                    running.retain(|id| b.sched.locate(id).is_some());
                }
                if running.is_empty() || rng.bool() {
                    let targets: Vec<u32> = (0..6).filter(|_| rng.u8(..4) == 0).collect();
                    let t = if targets.is_empty() {
                        task()
                    } else {
                        targeted(&targets)
                    };
                    let eligible: Vec<u32> = live
                        .iter()
                        .copied()
                        .filter(|id| targets.is_empty() || targets.contains(id))
                        .collect();
                    let had_room = eligible.iter().any(|&id| b.sched.outstanding(e(id)) < hwm);
                    let actions = b.on(submit(t.clone()));
                    match dispatches(&actions)[..] {
                        [(engine, _)] => {
                            assert!(
                                eligible.contains(&engine.0),
                                "{scheme:?}: {engine} of {eligible:?}"
                            );
                            assert!(b.sched.outstanding(engine) <= hwm, "{scheme:?}");
                            running.push(t.msg_id);
                        }
                        [] => {
                            assert!(!had_room, "{scheme:?} left a task waiting beside room");
                            b.on(SchedEvent::Abort(vec![t.msg_id]));
                        }
                        _ => panic!("{actions:?}"),
                    }
                } else {
                    let msg_id = running.swap_remove(rng.usize(..running.len()));
                    let actions = b.end(msg_id, None, Status::Ok);
                    assert_eq!(actions, vec![]);
                }
            }
        }
    }

    /// Where `count` untargeted tasks go when each finishes before the next
    /// comes, on a scheduler with `engines` and the tasks in `load` running.
    fn draws(
        scheme: Scheme,
        seed: u64,
        engines: &[u32],
        load: &[u32],
        count: usize,
    ) -> Vec<EngineId> {
        let mut b = Bench::seeded(scheme, 0, seed, engines);
        for &id in load {
            assert_eq!(b.submit(targeted(&[id])), Some(e(id)));
        }
        (0..count)
            .map(|_| {
                let t = task();
                let engine = b.submit(t.clone()).expect("room everywhere");
                b.finish(t.msg_id);
                engine
            })
            .collect()
    }

    fn tally(draws: &[EngineId]) -> BTreeMap<EngineId, usize> {
        let mut counts = BTreeMap::new();
        for engine in draws {
            *counts.entry(*engine).or_default() += 1;
        }
        counts
    }

    #[test]
    fn random_schemes_are_reproducible_for_a_seed() {
        let engines = [0, 1, 2, 3, 4];
        for scheme in [Scheme::TwoBin, Scheme::Weighted, Scheme::PlainRandom] {
            let load = [1, 3, 3];
            let first = draws(scheme, 42, &engines, &load, 500);
            assert_eq!(first, draws(scheme, 42, &engines, &load, 500), "{scheme:?}");
            assert_ne!(first, draws(scheme, 43, &engines, &load, 500), "{scheme:?}");
        }
    }

    #[test]
    fn weighted_prefers_idle_engines() {
        // Three engines with a task each, one idle: the idle one is a
        // million times likelier in each of the two draws.
        let counts = tally(&draws(
            Scheme::Weighted,
            1,
            &[0, 1, 2, 3],
            &[0, 1, 2],
            10_000,
        ));
        assert!(counts[&e(3)] >= 9_990, "{counts:?}");

        // Loads 1 and 3: weights 1 and 1/3, so a draw takes the busier one
        // a quarter of the time, and both draws do 1/16 of the time.
        let counts = tally(&draws(Scheme::Weighted, 1, &[0, 1], &[0, 1, 1, 1], 10_000));
        let lighter = counts[&e(0)];
        assert!((9_150..=9_600).contains(&lighter), "{counts:?}");
    }

    #[test]
    fn plainrandom_spreads_evenly() {
        let counts = tally(&draws(
            Scheme::PlainRandom,
            1,
            &[0, 1, 2, 3],
            &[0, 0, 0],
            10_000,
        ));
        assert_eq!(counts.len(), 4);
        for (engine, n) in &counts {
            // Load does not matter to it: 2,500 each, give or take 4.6 sigma.
            assert!((2_300..=2_700).contains(n), "engine {engine}: {counts:?}");
        }
    }

    #[test]
    fn twobin_prefers_the_least_recently_used_of_two_draws() {
        let engines = [0, 1, 2, 3];
        let picks = draws(Scheme::TwoBin, 1, &engines, &[], 10_000);
        // Rank each pick in least-recently-used order (never used first,
        // then by id); the lesser of two uniform ranks out of 4 is 0 with
        // probability 7/16 and 3 with probability 1/16.
        let mut last_used: BTreeMap<EngineId, usize> = BTreeMap::new();
        let mut ranks = [0usize; 4];
        for (i, pick) in picks.iter().enumerate() {
            let mut order: Vec<EngineId> = engines.iter().map(|&id| e(id)).collect();
            order.sort_by_key(|id| (last_used.get(id).map_or(0, |t| t + 1), *id));
            let rank = order.iter().position(|id| id == pick).unwrap();
            ranks[rank] += 1;
            last_used.insert(*pick, i);
        }
        assert!((4_100..=4_650).contains(&ranks[0]), "{ranks:?}");
        assert!((480..=780).contains(&ranks[3]), "{ranks:?}");
    }

    #[test]
    fn pure_places_by_least_load() {
        let mut b = Bench::new(Scheme::Pure, 0, &[2, 0, 1]);
        let tasks: Vec<Submission> = (0..3).map(|_| task()).collect();
        let placed: Vec<_> = tasks.iter().map(|t| b.submit(t.clone())).collect();
        assert_eq!(placed, vec![Some(e(0)), Some(e(1)), Some(e(2))]);
        b.finish(tasks[1].msg_id);
        assert_eq!(b.submit(task()), Some(e(1)));
        assert_eq!(b.submit(task()), Some(e(0)));
        let counts = tally(&draws(Scheme::Pure, 1, &[0, 1, 2], &[0, 1], 100));
        assert_eq!(counts, BTreeMap::from([(e(2), 100)]));
    }

    #[test]
    fn a_follower_with_retries_dies_with_the_engine_it_follows() {
        let mut b = Bench::new(Scheme::LeastLoad, 0, &[0, 1]);
        let x = MsgId::new();
        let t = with_retries(with_follow(task(), x), 2);
        let actions = b.on(submit_with(&t, &[(x, ran(0, true))]));
        assert_eq!(dispatches(&actions), vec![(e(0), t.msg_id)]);
        let actions = b.on(SchedEvent::EngineDown(e(0)));
        assert_eq!(
            failures(&actions),
            vec![(t.msg_id, TaskError::EngineDied(e(0)))]
        );
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, SchedAction::Retry { .. })),
            "no retry promised where it cannot run: {actions:?}"
        );
    }

    // The property test: random sequences of events against a model of
    // what the hub knows, with the scheduler's promises checked after each.

    macro_rules! ensure {
        ($cond:expr, $($why:tt)+) => {
            if !$cond {
                return Err(format!($($why)+));
            }
        };
    }

    const ENGINES: u32 = 6;

    /// A load-balanced task as the model knows it.
    struct ModelTask {
        submission: Submission,
        submitted_at: Instant,
        /// Where it runs now (dispatched, no result fed yet).
        running: Option<EngineId>,
        /// Times dispatched.
        runs: u32,
        /// It may be dispatched: never was, or a Retry came since.
        may_dispatch: bool,
        /// Engines where it failed and was retried.
        failed_on: Vec<EngineId>,
    }

    impl ModelTask {
        fn deadline(&self) -> Option<Instant> {
            let ms = self.submission.sched.timeout_ms?;
            Some(self.submitted_at + Duration::from_millis(ms))
        }

        /// Its non-empty dependencies.
        fn deps(&self) -> impl Iterator<Item = &Dependency> {
            let sched = &self.submission.sched;
            [&sched.after, &sched.follow]
                .into_iter()
                .flatten()
                .filter(|d| !d.is_empty())
        }
    }

    /// A dependency judged by the outcomes so far: its verdict, the engines
    /// where its accepted tasks ran, and how many accepted ones ran nowhere.
    fn judge(
        dep: Option<&Dependency>,
        outcomes: &HashMap<MsgId, (Option<EngineId>, bool)>,
    ) -> (Verdict, BTreeSet<EngineId>, usize) {
        let Some(dep) = dep.filter(|d| !d.is_empty()) else {
            return (Verdict::Met, BTreeSet::new(), 0);
        };
        let dep = Dependency {
            msg_ids: sorted(dep.msg_ids.clone()),
            ..dep.clone()
        };
        let (mut accepted, mut rejected, mut engines, mut nowhere) = (0, 0, BTreeSet::new(), 0);
        for id in &dep.msg_ids {
            if let Some(&(engine, ok)) = outcomes.get(id) {
                if !dep.accepts(ok) {
                    rejected += 1;
                    continue;
                }
                accepted += 1;
                match engine {
                    Some(engine) => {
                        engines.insert(engine);
                    }
                    None => nowhere += 1,
                }
            }
        }
        (dep.verdict(accepted, rejected), engines, nowhere)
    }

    /// A scheduler driven by random events, beside what the hub would know.
    struct Model {
        sched: Scheduler,
        rng: fastrand::Rng,
        hwm: usize,
        now: Instant,
        live: BTreeSet<EngineId>,
        /// Every load-balanced task submitted.
        tasks: BTreeMap<MsgId, ModelTask>,
        /// Final outcomes, of any task: where it ran, whether it succeeded.
        outcomes: HashMap<MsgId, (Option<EngineId>, bool)>,
        /// Tasks the hub has seen (submitted, sent directly, finished).
        known: HashSet<MsgId>,
        /// Direct tasks (never placed here) not finished yet.
        direct: Vec<MsgId>,
        /// Ids named as dependencies before any task had them.
        unused: Vec<MsgId>,
        /// Every id a dependency may name.
        names: Vec<MsgId>,
    }

    impl Model {
        fn new(seed: u64) -> Model {
            let mut rng = fastrand::Rng::with_seed(seed);
            let scheme = Scheme::ALL[(seed % Scheme::ALL.len() as u64) as usize];
            let hwm = rng.usize(..4);
            Model {
                sched: Scheduler::new(SchedulerConfig { scheme, hwm, seed }),
                rng,
                hwm,
                now: Instant::now(),
                live: BTreeSet::new(),
                tasks: BTreeMap::new(),
                outcomes: HashMap::new(),
                known: HashSet::new(),
                direct: Vec::new(),
                unused: Vec::new(),
                names: Vec::new(),
            }
        }

        fn status(&mut self) -> Status {
            match self.rng.u8(..10) {
                0..6 => Status::Ok,
                6..9 => Status::Error,
                _ => Status::Aborted,
            }
        }

        fn dependency(&mut self, own: MsgId) -> Dependency {
            let n = if self.rng.u8(..20) == 0 {
                0
            } else {
                self.rng.usize(1..4)
            };
            let msg_ids = (0..n)
                .map(|_| match self.rng.u8(..100) {
                    0..2 => own,
                    2..12 => {
                        let id = MsgId::new();
                        self.unused.push(id);
                        self.names.push(id);
                        id
                    }
                    _ if self.names.is_empty() => MsgId::new(),
                    _ => self.names[self.rng.usize(..self.names.len())],
                })
                .collect();
            let success = self.rng.u8(..10) < 8;
            Dependency {
                msg_ids,
                all: self.rng.bool(),
                success,
                failure: !success || self.rng.u8(..10) < 3,
            }
        }

        fn submission(&mut self) -> SchedEvent {
            let mut s = task();
            if !self.unused.is_empty() && self.rng.u8(..5) == 0 {
                s.msg_id = self.unused.swap_remove(self.rng.usize(..self.unused.len()));
            }
            if self.rng.bool() {
                s.sched.after = Some(self.dependency(s.msg_id));
            }
            if self.rng.u8(..4) == 0 {
                s.sched.follow = Some(self.dependency(s.msg_id));
            }
            if self.rng.u8(..5) == 0 {
                s.sched.targets = Some(
                    (0..ENGINES)
                        .map(e)
                        .filter(|_| self.rng.u8(..3) == 0)
                        .collect(),
                );
            }
            if self.rng.u8(..3) == 0 {
                let ms = [0, 50, 500, 2000, self.rng.u64(..3000)];
                s.sched.timeout_ms = Some(ms[self.rng.usize(..ms.len())]);
            }
            if self.rng.u8(..3) == 0 {
                s.sched.retries = self.rng.u32(1..4);
            }
            self.names.push(s.msg_id);
            self.with_deps(s)
        }

        /// The submission with what the hub knows of the tasks it names.
        fn with_deps(&mut self, s: Submission) -> SchedEvent {
            let named: BTreeSet<MsgId> = [&s.sched.after, &s.sched.follow]
                .into_iter()
                .flatten()
                .flat_map(|d| d.msg_ids.iter().copied())
                .collect();
            let mut deps = Vec::new();
            for id in named {
                let state = match self.outcomes.get(&id) {
                    Some(&(engine, ok)) => DepState::Done { engine, ok },
                    None if self.known.contains(&id) => DepState::Pending,
                    // Missing means unknown.
                    None if self.rng.bool() => continue,
                    None => DepState::Unknown,
                };
                deps.push((id, state));
            }
            SchedEvent::Submit {
                submission: Box::new(s),
                deps,
            }
        }

        fn event(&mut self) -> SchedEvent {
            if self.rng.bool() {
                self.now += ms(self.rng.u64(..20));
            }
            let running: Vec<MsgId> = self
                .tasks
                .iter()
                .filter(|(_, t)| t.running.is_some())
                .map(|(id, _)| *id)
                .collect();
            match self.rng.u8(..100) {
                0..8 => SchedEvent::EngineUp(e(self.rng.u32(..ENGINES))),
                8..12 => SchedEvent::EngineDown(e(self.rng.u32(..ENGINES))),
                12..42 => self.submission(),
                // A resent submission of a task not finished yet (not when
                // a deadline passes first: a copy of a task that just
                // expired is new to the scheduler; the hub never sends it).
                42..45 if self.sched.poll_timeout().is_none_or(|t| t > self.now) => {
                    let unfinished: Vec<MsgId> = self
                        .tasks
                        .keys()
                        .filter(|id| !self.outcomes.contains_key(id))
                        .copied()
                        .collect();
                    if unfinished.is_empty() {
                        return SchedEvent::Tick;
                    }
                    let id = unfinished[self.rng.usize(..unfinished.len())];
                    let s = self.tasks[&id].submission.clone();
                    self.with_deps(s)
                }
                45..53 => {
                    let id = if !self.unused.is_empty() && self.rng.bool() {
                        self.unused.swap_remove(self.rng.usize(..self.unused.len()))
                    } else {
                        let id = MsgId::new();
                        self.names.push(id);
                        id
                    };
                    self.direct.push(id);
                    // Some are named before the hub sees them.
                    if self.rng.u8(..10) < 7 {
                        SchedEvent::Seen(id)
                    } else {
                        SchedEvent::Tick
                    }
                }
                53..57 if !self.direct.is_empty() => {
                    SchedEvent::Seen(self.direct[self.rng.usize(..self.direct.len())])
                }
                57..77 if !running.is_empty() => {
                    let msg_id = running[self.rng.usize(..running.len())];
                    SchedEvent::Finished {
                        msg_id,
                        engine: self.tasks[&msg_id].running,
                        status: self.status(),
                    }
                }
                77..84 if !self.direct.is_empty() => {
                    let msg_id = self.direct.swap_remove(self.rng.usize(..self.direct.len()));
                    let live: Vec<EngineId> = self.live.iter().copied().collect();
                    let engine = (!live.is_empty() && self.rng.u8(..10) > 0)
                        .then(|| live[self.rng.usize(..live.len())]);
                    SchedEvent::Finished {
                        msg_id,
                        engine,
                        status: self.status(),
                    }
                }
                84..88 if !self.tasks.is_empty() => {
                    let ids: Vec<MsgId> = self.tasks.keys().copied().collect();
                    let n = self.rng.usize(1..4);
                    SchedEvent::Abort((0..n).map(|_| ids[self.rng.usize(..ids.len())]).collect())
                }
                _ => {
                    self.now += ms(self.rng.u64(..1500));
                    SchedEvent::Tick
                }
            }
        }

        /// Feeds `event` to the scheduler and checks what it answers.
        fn step(&mut self, event: SchedEvent) -> Result<(), String> {
            let now = self.now;
            // What the event means to the hub, before the scheduler answers.
            let mut died = Vec::new();
            let mut new_submission = None;
            let mut finishing = None;
            match &event {
                SchedEvent::EngineUp(engine) => {
                    self.live.insert(*engine);
                }
                SchedEvent::EngineDown(engine) => {
                    self.live.remove(engine);
                    for (id, t) in &mut self.tasks {
                        if t.running == Some(*engine) {
                            t.running = None;
                            died.push(*id);
                        }
                    }
                }
                SchedEvent::Submit { submission, .. } => {
                    let id = submission.msg_id;
                    if let Entry::Vacant(entry) = self.tasks.entry(id) {
                        new_submission = Some(id);
                        entry.insert(ModelTask {
                            submission: (**submission).clone(),
                            submitted_at: now,
                            running: None,
                            runs: 0,
                            may_dispatch: true,
                            failed_on: Vec::new(),
                        });
                    }
                }
                SchedEvent::Finished {
                    msg_id,
                    engine,
                    status,
                } => match self.tasks.get_mut(msg_id) {
                    Some(t) => {
                        let ran_on = t.running.take();
                        ensure!(ran_on.is_some(), "fed a result of a task not running");
                        finishing = Some((*msg_id, ran_on, *status));
                    }
                    None => {
                        self.outcomes
                            .insert(*msg_id, (*engine, *status == Status::Ok));
                    }
                },
                _ => {}
            }
            let held_before: Vec<MsgId> = match &event {
                SchedEvent::Abort(ids) => ids
                    .iter()
                    .filter(|id| {
                        self.tasks.get(id).is_some_and(|t| t.running.is_none())
                            && !self.outcomes.contains_key(id)
                    })
                    .copied()
                    .collect(),
                _ => Vec::new(),
            };

            let actions = self.sched.handle(event.clone(), now);

            if let Some((id, engine, status)) = finishing {
                let t = &self.tasks[&id];
                let retried = retries(&actions).iter().any(|r| r.0 == id);
                let expected = status == Status::Error && t.runs <= t.submission.sched.retries;
                ensure!(
                    retried == expected,
                    "{id} finished {status} after {} runs of {}: retried {retried}",
                    t.runs,
                    1 + t.submission.sched.retries
                );
                if !retried {
                    // The engine's result is final: the hub delivers it.
                    self.outcomes.insert(id, (engine, status == Status::Ok));
                }
            }
            let mut retried = HashSet::new();
            let mut died_failed = HashSet::new();
            for action in &actions {
                match action {
                    SchedAction::Dispatch { engine, submission } => {
                        let id = submission.msg_id;
                        ensure!(
                            self.live.contains(engine),
                            "{id} dispatched to down engine {engine}"
                        );
                        let Some(t) = self.tasks.get(&id) else {
                            return Err(format!("dispatched {id}, never submitted"));
                        };
                        ensure!(**submission == t.submission, "{id} dispatched altered");
                        ensure!(
                            !self.outcomes.contains_key(&id),
                            "{id} dispatched after its outcome"
                        );
                        ensure!(
                            t.may_dispatch && t.running.is_none(),
                            "{id} dispatched twice without a retry"
                        );
                        let load = self
                            .tasks
                            .values()
                            .filter(|t| t.running == Some(*engine))
                            .count();
                        ensure!(
                            self.hwm == 0 || load < self.hwm,
                            "{id} dispatched to full engine {engine}"
                        );
                        let sched = &t.submission.sched;
                        if let Some(targets) = &sched.targets {
                            ensure!(
                                targets.contains(engine),
                                "{id} dispatched to {engine}, not a target"
                            );
                        }
                        let (after, _, _) = judge(sched.after.as_ref(), &self.outcomes);
                        ensure!(
                            after == Verdict::Met,
                            "{id} dispatched with after {after:?}"
                        );
                        let (follow, engines, _) = judge(sched.follow.as_ref(), &self.outcomes);
                        ensure!(
                            follow == Verdict::Met,
                            "{id} dispatched with follow {follow:?}"
                        );
                        if sched.follow.as_ref().is_some_and(|d| !d.is_empty()) {
                            ensure!(
                                engines.contains(engine),
                                "{id} follows to {engine}, its tasks ran on {engines:?}"
                            );
                            let all = sched.follow.as_ref().is_some_and(|d| d.all);
                            ensure!(
                                !all || engines.len() == 1,
                                "{id} follows all on {engines:?}"
                            );
                        }
                        if let Some(deadline) = t.deadline()
                            && t.runs == 0
                        {
                            ensure!(
                                now < deadline || new_submission == Some(id),
                                "{id} first dispatched after its timeout"
                            );
                        }
                        // Run again at once where it failed: only when no
                        // engine where it did not fail may take it.
                        // (Following any, it may use fewer than `engines`.)
                        let to_follow = sched.follow.as_ref().filter(|d| !d.is_empty());
                        if retried.contains(&id)
                            && t.failed_on.contains(engine)
                            && to_follow.is_none_or(|d| d.all)
                        {
                            let fresh = self.live.iter().find(|e| {
                                !t.failed_on.contains(e)
                                    && sched.targets.as_ref().is_none_or(|t| t.contains(e))
                                    && (to_follow.is_none() || engines.contains(e))
                            });
                            ensure!(
                                fresh.is_none(),
                                "{id} retried on {engine} where it failed, with {fresh:?} up"
                            );
                        }
                        let t = self.tasks.get_mut(&id).expect("checked above");
                        t.runs += 1;
                        t.running = Some(*engine);
                        t.may_dispatch = false;
                    }
                    SchedAction::Fail {
                        msg_id,
                        client,
                        submitted,
                        error,
                    } => {
                        let id = *msg_id;
                        let Some(t) = self.tasks.get(&id) else {
                            return Err(format!("failed {id}, never submitted"));
                        };
                        ensure!(
                            (*client, *submitted) == (t.submission.client, t.submission.submitted),
                            "{id} failed with another's client"
                        );
                        ensure!(
                            !self.outcomes.contains_key(&id),
                            "{id} has a second outcome: {error:?}"
                        );
                        ensure!(t.running.is_none(), "{id} failed while running: {error:?}");
                        let sched = &t.submission.sched;
                        let timed_out =
                            t.runs == 0 && t.deadline().is_some_and(|deadline| now >= deadline);
                        let mut engine = None;
                        match error {
                            TaskError::EngineDied(dead) => {
                                ensure!(
                                    event == SchedEvent::EngineDown(*dead) && died.contains(&id),
                                    "{id} died with {dead} on {event:?}"
                                );
                                // A follower may run only where its
                                // dependencies ran: with those engines
                                // down, it dies with them, retries or not.
                                let (_, followed, _) = judge(sched.follow.as_ref(), &self.outcomes);
                                let stranded = sched.follow.is_some()
                                    && !followed.iter().any(|e| {
                                        self.live.contains(e)
                                            && sched.targets.as_ref().is_none_or(|t| t.contains(e))
                                    });
                                ensure!(
                                    t.runs > sched.retries || stranded,
                                    "{id} died with retries left"
                                );
                                died_failed.insert(id);
                                engine = Some(*dead);
                            }
                            TaskError::Aborted => ensure!(
                                matches!(&event, SchedEvent::Abort(ids) if ids.contains(&id)),
                                "{id} aborted on {event:?}"
                            ),
                            TaskError::DependencyTimeout(_) => {
                                ensure!(timed_out, "{id} timed out early: {error:?}")
                            }
                            TaskError::Unschedulable(_) => ensure!(
                                timed_out
                                    || event == SchedEvent::Shutdown
                                    || sched.targets.as_ref().is_some_and(Vec::is_empty),
                                "{id} unschedulable: {error:?}"
                            ),
                            TaskError::ImpossibleDependency(why) => {
                                ensure!(t.deps().next().is_some(), "{id} has no dependency: {why}");
                                if why.starts_with("unknown task") {
                                    ensure!(
                                        now >= t.submitted_at + UNKNOWN_GRACE,
                                        "{id} gave up on unknown tasks early: {why}"
                                    );
                                    let unknown = t
                                        .deps()
                                        .flat_map(|d| &d.msg_ids)
                                        .any(|d| !self.known.contains(d));
                                    ensure!(unknown, "{id} gave up on known tasks: {why}");
                                }
                            }
                            other => return Err(format!("{id} failed with {other:?}")),
                        }
                        self.outcomes.insert(id, (engine, false));
                    }
                    SchedAction::Retry {
                        msg_id,
                        engine,
                        attempt,
                    } => {
                        let id = *msg_id;
                        let Some(t) = self.tasks.get_mut(&id) else {
                            return Err(format!("retried {id}, never submitted"));
                        };
                        let failed_here = finishing
                            .is_some_and(|(f, on, _)| f == id && on == Some(*engine))
                            || (event == SchedEvent::EngineDown(*engine) && died.contains(&id));
                        ensure!(
                            failed_here,
                            "{id} retried after failing on {engine}? {event:?}"
                        );
                        ensure!(!t.may_dispatch && retried.insert(id), "{id} retried twice");
                        ensure!(
                            *attempt == t.runs,
                            "{id} attempt {attempt} after {} runs",
                            t.runs
                        );
                        ensure!(
                            t.runs <= t.submission.sched.retries,
                            "{id} retried too often"
                        );
                        t.may_dispatch = true;
                        t.failed_on.push(*engine);
                    }
                }
            }
            for id in &died {
                ensure!(
                    retried.contains(id) != died_failed.contains(id),
                    "{id} died with its engine: retried {}, failed {}",
                    retried.contains(id),
                    died_failed.contains(id)
                );
            }
            for id in &held_before {
                ensure!(self.outcomes.contains_key(id), "aborted {id} is still held");
            }
            match &event {
                SchedEvent::Submit { submission, .. } => {
                    self.known.insert(submission.msg_id);
                }
                SchedEvent::Seen(id) | SchedEvent::Finished { msg_id: id, .. } => {
                    self.known.insert(*id);
                }
                _ => {}
            }
            self.check(new_submission)
        }

        /// What must hold between events.
        fn check(&self, new_submission: Option<MsgId>) -> Result<(), String> {
            let now = self.now;
            let mut load: BTreeMap<EngineId, usize> = BTreeMap::new();
            let mut held = 0;
            let wake = self.sched.poll_timeout();
            for (&id, t) in &self.tasks {
                let at = self.sched.locate(&id);
                if self.outcomes.contains_key(&id) {
                    ensure!(at.is_none(), "{id} finished but held: {at:?}");
                    continue;
                }
                if let Some(engine) = t.running {
                    ensure!(
                        at == Some(Placement::Dispatched(engine)),
                        "{id} runs on {engine}, at {at:?}"
                    );
                    *load.entry(engine).or_default() += 1;
                    continue;
                }
                held += 1;
                ensure!(
                    matches!(at, Some(Placement::Blocked | Placement::Waiting)),
                    "{id} lost: at {at:?}"
                );
                let sched = &t.submission.sched;
                let (after, _, _) = judge(sched.after.as_ref(), &self.outcomes);
                let (follow, engines, nowhere) = judge(sched.follow.as_ref(), &self.outcomes);
                let follows = sched.follow.as_ref().is_some_and(|d| !d.is_empty());
                if follows && at == Some(Placement::Waiting) {
                    // `engines` holds every engine it may follow to, and more.
                    let up = engines.iter().any(|engine| {
                        self.live.contains(engine)
                            && sched.targets.as_ref().is_none_or(|t| t.contains(engine))
                    });
                    ensure!(up, "{id} waits to follow to engines all down: {engines:?}");
                }
                if t.runs > 0 {
                    ensure!(
                        at == Some(Placement::Waiting),
                        "{id} blocked again for a retry"
                    );
                    continue;
                }
                if let Some(deadline) = t.deadline() {
                    ensure!(
                        now < deadline || new_submission == Some(id),
                        "{id} held past its timeout: {at:?}"
                    );
                    ensure!(
                        wake.is_some_and(|wake| wake <= deadline),
                        "{id} times out at {deadline:?}, and no tick is asked for by then ({wake:?})"
                    );
                }
                let follow_all = follows && sched.follow.as_ref().is_some_and(|d| d.all);
                if at == Some(Placement::Blocked) {
                    ensure!(
                        after != Verdict::Met || follow != Verdict::Met,
                        "{id} blocked with its dependencies met"
                    );
                    ensure!(
                        after != Verdict::Unreachable && follow != Verdict::Unreachable,
                        "{id} blocked by an impossible dependency (after {after:?}, follow {follow:?})"
                    );
                    if follow_all && let Some(engine) = engines.first() {
                        ensure!(
                            self.live.contains(engine),
                            "{id} blocked following to down engine {engine}"
                        );
                    }
                    ensure!(
                        !follow_all || (engines.len() <= 1 && nowhere == 0),
                        "{id} blocked following all of tasks on {engines:?} and {nowhere} nowhere"
                    );
                    let unknown = t
                        .deps()
                        .flat_map(|d| &d.msg_ids)
                        .any(|d| !self.known.contains(d));
                    if unknown {
                        let grace = t.submitted_at + UNKNOWN_GRACE;
                        ensure!(now < grace, "{id} blocked on unknown tasks past the grace");
                        ensure!(
                            wake.is_some_and(|wake| wake <= grace),
                            "{id} waits for unknown tasks, and no tick is asked for ({wake:?})"
                        );
                    }
                } else {
                    ensure!(
                        after == Verdict::Met && follow == Verdict::Met,
                        "{id} waits for an engine with after {after:?}, follow {follow:?}"
                    );
                    // A task waits only while every engine it may use is full.
                    // (Following any, it may use fewer than `engines`.)
                    if !follows || follow_all {
                        let open = self.live.iter().find(|engine| {
                            sched.targets.as_ref().is_none_or(|t| t.contains(engine))
                                && (!follow_all || engines.contains(engine))
                                && (self.hwm == 0 || self.sched.outstanding(**engine) < self.hwm)
                        });
                        ensure!(open.is_none(), "{id} waits while engine {open:?} has room");
                    }
                }
            }
            for id in 0..ENGINES {
                let n = load.get(&e(id)).copied().unwrap_or(0);
                ensure!(
                    self.sched.outstanding(e(id)) == n,
                    "engine {id}: {} outstanding, {n} running",
                    self.sched.outstanding(e(id))
                );
            }
            self.check_no_cycle()?;
            ensure!(
                self.sched.blocked() + self.sched.waiting() == held,
                "{} blocked and {} waiting, {held} held",
                self.sched.blocked(),
                self.sched.waiting()
            );
            Ok(())
        }

        /// No blocked task waits, through blocked tasks, for itself: a
        /// cycle fails as it closes.
        fn check_no_cycle(&self) -> Result<(), String> {
            let blocked = |id: &MsgId| self.sched.locate(id) == Some(Placement::Blocked);
            // Depth-first, colouring tasks on the current path.
            let mut done: HashSet<MsgId> = HashSet::new();
            for &root in self.tasks.keys().filter(|id| blocked(id)) {
                let mut path: Vec<MsgId> = Vec::new();
                let mut stack = vec![(root, false)];
                while let Some((id, leaving)) = stack.pop() {
                    if leaving {
                        path.pop();
                        done.insert(id);
                        continue;
                    }
                    if path.contains(&id) {
                        return Err(format!("blocked tasks wait for each other: {path:?}"));
                    }
                    if !done.insert(id) {
                        continue;
                    }
                    done.remove(&id);
                    path.push(id);
                    stack.push((id, true));
                    for dep in self.tasks[&id].deps().flat_map(|d| &d.msg_ids) {
                        if blocked(dep) && !done.contains(dep) {
                            stack.push((*dep, false));
                        }
                    }
                }
            }
            Ok(())
        }

        /// Shuts down and lets every running task finish: then every task
        /// has exactly one outcome.
        fn finish(&mut self) -> Result<(), String> {
            self.step(SchedEvent::Shutdown)?;
            while let Some((&msg_id, t)) = self.tasks.iter().find(|(_, t)| t.running.is_some()) {
                let event = SchedEvent::Finished {
                    msg_id,
                    engine: t.running,
                    status: Status::Ok,
                };
                self.step(event)?;
            }
            for id in self.tasks.keys() {
                ensure!(
                    self.outcomes.contains_key(id),
                    "{id} ended without an outcome"
                );
            }
            ensure!(
                self.sched.poll_timeout().is_none(),
                "deadlines left after the end"
            );
            Ok(())
        }
    }

    fn run(seed: u64, steps: usize) -> Result<(), String> {
        let mut model = Model::new(seed);
        for step in 0..steps {
            let event = model.event();
            let shown = format!("{event:?}");
            model
                .step(event)
                .map_err(|why| format!("step {step} ({shown}): {why}"))?;
        }
        model.finish().map_err(|why| format!("at the end: {why}"))
    }

    #[test]
    fn random_events_keep_every_promise() {
        for seed in 0..300 {
            if let Err(why) = run(seed, 300) {
                panic!("seed {seed}: {why}");
            }
        }
    }
}
