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
    ClientId, Dependency, EngineId, MsgId, Scheme, Status, Submission, TaskError, Timestamp,
    Verdict,
};

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
    /// Deadlines of blocked and waiting tasks, earliest first.
    deadlines: BTreeMap<(Instant, MsgId), Deadline>,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
            deadlines: BTreeMap::new(),
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
        self.deadlines
            .first_key_value()
            .map(|(&(deadline, _), _)| deadline)
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
            self.deadlines.insert((deadline, msg_id), Deadline::Unseen);
        }
        if let Some(deadline) = blocked.job.deadline {
            self.deadlines.insert((deadline, msg_id), Deadline::Timeout);
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
                self.deadlines.remove(&(deadline, *waiter));
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
            blocked
                .follow
                .as_ref()
                .and_then(|t| follow_problem(t, follow == Verdict::Met))
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
            self.deadlines.insert((deadline, msg_id), Deadline::Timeout);
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
        // Blocked tasks that must follow tasks which all ran on this engine.
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
            if let Some(job) = self.take_held(&msg_id) {
                let why = format!("the engine it must follow ({engine}) is down");
                self.fail(&job, TaskError::ImpossibleDependency(why), actions);
            }
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
        while let Some((&(deadline, msg_id), &kind)) = self.deadlines.first_key_value() {
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
            self.deadlines.remove(&(deadline, *msg_id));
        }
        if let Some(deadline) = blocked.unseen_deadline {
            self.deadlines.remove(&(deadline, *msg_id));
        }
        Some(blocked)
    }

    /// Removes a task from the waiting set (its queue entries go stale).
    fn take_waiting(&mut self, msg_id: &MsgId) -> Option<WaitingTask> {
        let task = self.waiting.remove(msg_id)?;
        if let Some(deadline) = task.job.deadline {
            self.deadlines.remove(&(deadline, *msg_id));
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
/// any; with `any`, once met, none of its accepted tasks ran on an engine.
/// (Engines that are down are the business of [`Scheduler::enqueue`].)
fn follow_problem(tally: &Tally, met: bool) -> Option<String> {
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
            let mut bench = Bench {
                sched: Scheduler::new(SchedulerConfig {
                    scheme,
                    hwm,
                    seed: 7,
                }),
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

        fn advance(&mut self, by: Duration) -> Vec<SchedAction> {
            self.now += by;
            self.on(SchedEvent::Tick)
        }
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
}
