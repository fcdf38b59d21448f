//! The load-balancing scheduler: decides which engine runs each load-balanced
//! task, as a sans-I/O state machine.
//!
//! Hand it a [`SchedEvent`] and the current time ([`Scheduler::handle`]); it
//! answers with [`SchedAction`]s (send this submission to that engine, fail
//! that task) and tells when it next needs a [`SchedEvent::Tick`]
//! ([`Scheduler::poll_timeout`]). It never reads a clock, touches a bus or
//! sleeps, so every rule below is unit-tested with hand-made `Instant`s.
//!
//! The rules, as ipyparallel's task scheduler has them:
//! - A task goes to an eligible engine (any live engine, or one of
//!   `sched.targets`) with room under the high-water mark, chosen by the
//!   [`Scheme`]. A task that cannot be placed waits; waiting tasks are placed
//!   oldest first as room appears (a task finishes, an engine comes up).
//! - A waiting task with `sched.timeout_ms` fails with
//!   [`TaskError::Unschedulable`] once it has waited that long. The timeout
//!   covers the wait *here*: once dispatched, a task is the engine's.
//! - [`SchedEvent::Abort`] fails waiting tasks with [`TaskError::Aborted`];
//!   dispatched ones are left to the engine (the hub sends it
//!   `Control::Abort`; [`Scheduler::locate`] says which engine holds a task).
//! - When an engine goes down, every task it holds fails with
//!   [`TaskError::EngineDied`], and it gets no more work.
//!
//! Only tasks this scheduler placed count towards an engine's load: direct
//! tasks (`engine.<id>.task` from a client) are invisible here, and a result
//! for one ([`SchedEvent::Finished`] with an unknown id) is ignored.
//!
//! Cost. Every event is O(engines) at worst plus O(log n) in the number of
//! waiting tasks: waiting tasks sit in FIFO queues (one for tasks any engine
//! may run, one per engine for targeted ones), and a freed slot on engine E
//! only looks at the heads of the shared queue and of E's queue. This works
//! because of an invariant the scheduler keeps: a task waits only while every
//! engine eligible for it is full, so the only tasks that can use a slot freed
//! on E are those eligible on E, and the oldest of them is at one of the two
//! heads. Removing a task from the middle of a queue (abort, timeout, placed
//! through another target's queue) leaves a stale entry that is skipped when it
//! reaches the head; queues are compacted when stale entries outnumber live ones.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use grid_proto::{ClientId, EngineId, MsgId, Submission, TaskError, Timestamp};

/// The default high-water mark: outstanding tasks per engine.
///
/// ipyparallel defaults to 1, which keeps every task in the scheduler until an
/// engine is idle: each small task then costs a full round trip (result to the
/// controller, dispatch to the engine) during which the engine sits idle. A
/// depth of 64 keeps engines fed when tasks take microseconds, while still
/// leaving most of a large backlog in the scheduler, where it can go to
/// whichever engine frees up first (and to engines that join later).
pub const DEFAULT_HWM: usize = 64;

/// How the scheduler chooses among engines with room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// The engine with the fewest outstanding tasks; ties go to the lowest id.
    #[default]
    LeastLoad,
    /// The engine that was given a task least recently (never counts as
    /// longest ago); ties go to the lowest id.
    Lru,
}

impl Scheme {
    /// The scheme's name as ipyparallel spells it (`leastload`, `lru`).
    pub fn name(self) -> &'static str {
        match self {
            Scheme::LeastLoad => "leastload",
            Scheme::Lru => "lru",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheme name that this scheduler does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler scheme {0:?}: use leastload or lru")]
pub struct UnknownScheme(pub String);

impl FromStr for Scheme {
    type Err = UnknownScheme;

    fn from_str(s: &str) -> Result<Scheme, UnknownScheme> {
        match s {
            "leastload" => Ok(Scheme::LeastLoad),
            "lru" => Ok(Scheme::Lru),
            other => Err(UnknownScheme(other.to_string())),
        }
    }
}

/// How the scheduler places tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub scheme: Scheme,
    /// At most this many outstanding (dispatched, unfinished) tasks per
    /// engine; 0 means no limit. See [`DEFAULT_HWM`].
    pub hwm: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheme: Scheme::default(),
            hwm: DEFAULT_HWM,
        }
    }
}

/// What happened, as far as the scheduler cares.
#[derive(Clone, Debug, PartialEq)]
pub enum SchedEvent {
    /// An engine can take work (registered and listening).
    EngineUp(EngineId),
    /// An engine is gone: its tasks fail, it gets no more work.
    EngineDown(EngineId),
    /// A load-balanced submission arrived.
    Submit(Box<Submission>),
    /// A result for this task was seen: its engine has room again (and a
    /// task still waiting with this id is dropped).
    Finished { msg_id: MsgId },
    /// Fail these tasks if they are still waiting here.
    Abort(Vec<MsgId>),
    /// The controller stops: every waiting task fails.
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
    /// The task will not run: tell its client (a `Reply` with this error).
    Fail {
        msg_id: MsgId,
        client: ClientId,
        submitted: Timestamp,
        error: TaskError,
    },
}

/// Where the scheduler holds a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Not yet placed on an engine.
    Waiting,
    /// Sent to this engine, no result seen yet.
    Dispatched(EngineId),
}

/// The load-balancing scheduler. See the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    /// Live engines.
    engines: BTreeMap<EngineId, EngineSlot>,
    /// Every waiting task.
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
    /// Waiting tasks with a timeout, by deadline.
    deadlines: BTreeMap<(Instant, u64), MsgId>,
    /// Dispatched tasks without a result yet.
    dispatched: HashMap<MsgId, DispatchedTask>,
    /// Orders waiting tasks (and tells a stale queue entry from a live one).
    next_seq: u64,
    /// Counts dispatches: an engine's last one orders engines for [`Scheme::Lru`].
    dispatch_count: u64,
}

#[derive(Debug, Default)]
struct EngineSlot {
    /// Tasks dispatched here without a result yet.
    tasks: HashSet<MsgId>,
    /// `dispatch_count` at this engine's latest dispatch; 0 if never.
    last_dispatch: u64,
}

#[derive(Debug)]
struct WaitingTask {
    seq: u64,
    submission: Box<Submission>,
    /// `sched.targets`, sorted and without duplicates.
    targets: Option<Vec<EngineId>>,
    deadline: Option<Instant>,
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
            engines: BTreeMap::new(),
            waiting: HashMap::new(),
            any_engine: VecDeque::new(),
            targeted: HashMap::new(),
            queued_entries: 0,
            live_entries: 0,
            deadlines: BTreeMap::new(),
            dispatched: HashMap::new(),
            next_seq: 0,
            dispatch_count: 0,
        }
    }

    pub fn config(&self) -> SchedulerConfig {
        self.config
    }

    /// Feeds one event at time `now`; returns what to do, in order.
    ///
    /// Waiting tasks whose deadline is at or before `now` fail first, whatever
    /// the event, so a late `Tick` never lets an expired task be placed.
    pub fn handle(&mut self, event: SchedEvent, now: Instant) -> Vec<SchedAction> {
        let mut actions = Vec::new();
        self.expire(now, &mut actions);
        match event {
            SchedEvent::EngineUp(engine) => {
                self.engines.entry(engine).or_default();
                self.fill(engine, &mut actions);
            }
            SchedEvent::EngineDown(engine) => self.engine_down(engine, &mut actions),
            SchedEvent::Submit(submission) => self.submit(submission, now, &mut actions),
            SchedEvent::Finished { msg_id } => {
                if let Some(task) = self.dispatched.remove(&msg_id) {
                    if let Some(slot) = self.engines.get_mut(&task.engine) {
                        slot.tasks.remove(&msg_id);
                    }
                    self.fill(task.engine, &mut actions);
                } else {
                    // It ran somewhere already (sent directly with this id):
                    // placing it again would run it twice.
                    self.take_waiting(&msg_id);
                }
            }
            SchedEvent::Abort(msg_ids) => {
                for msg_id in msg_ids {
                    if let Some(task) = self.take_waiting(&msg_id) {
                        actions.push(fail(&task.submission, TaskError::Aborted));
                    }
                }
            }
            SchedEvent::Shutdown => self.shutdown(&mut actions),
            SchedEvent::Tick => {}
        }
        self.compact_if_stale();
        actions
    }

    /// When the scheduler next needs a [`SchedEvent::Tick`]: the earliest
    /// deadline of a waiting task. `None`: no deadline, only events matter.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines
            .first_key_value()
            .map(|(&(deadline, _), _)| deadline)
    }

    /// Where a task is, if the scheduler holds it.
    pub fn locate(&self, msg_id: &MsgId) -> Option<Placement> {
        if self.waiting.contains_key(msg_id) {
            Some(Placement::Waiting)
        } else {
            self.dispatched
                .get(msg_id)
                .map(|task| Placement::Dispatched(task.engine))
        }
    }

    /// How many tasks wait for an engine.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// How many tasks this scheduler dispatched to `engine` without a result yet.
    pub fn outstanding(&self, engine: EngineId) -> usize {
        self.engines.get(&engine).map_or(0, |slot| slot.tasks.len())
    }

    fn submit(
        &mut self,
        submission: Box<Submission>,
        now: Instant,
        actions: &mut Vec<SchedAction>,
    ) {
        let msg_id = submission.msg_id;
        if self.waiting.contains_key(&msg_id) || self.dispatched.contains_key(&msg_id) {
            // Seen already (a resent message): the first copy is in hand.
            return;
        }
        let targets = submission.sched.targets.as_ref().map(|targets| {
            let mut targets = targets.clone();
            targets.sort_unstable();
            targets.dedup();
            targets
        });
        if targets.as_ref().is_some_and(Vec::is_empty) {
            let error = TaskError::Unschedulable("the list of target engines is empty".into());
            actions.push(fail(&submission, error));
            return;
        }
        if let Some(engine) = self.choose(targets.as_deref()) {
            self.dispatch(engine, submission, actions);
            return;
        }
        // A timeout too large for the clock is no timeout.
        let deadline = submission
            .sched
            .timeout_ms
            .and_then(|ms| now.checked_add(Duration::from_millis(ms)));
        let seq = self.next_seq;
        self.next_seq += 1;
        let task = WaitingTask {
            seq,
            submission,
            targets,
            deadline,
        };
        if deadline.is_some_and(|deadline| deadline <= now) {
            let error = TaskError::Unschedulable(self.unplaced_reason(&task));
            actions.push(fail(&task.submission, error));
            return;
        }
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
        if let Some(deadline) = deadline {
            self.deadlines.insert((deadline, seq), msg_id);
        }
        self.waiting.insert(msg_id, task);
    }

    /// The engine a new task goes to, among `targets` (all engines if `None`)
    /// that are live and have room; `None` if there is none.
    fn choose(&self, targets: Option<&[EngineId]>) -> Option<EngineId> {
        let hwm = self.config.hwm;
        let scheme = self.config.scheme;
        let room = |(_, slot): &(&EngineId, &EngineSlot)| has_room(slot, hwm);
        let preference = |&(&id, slot): &(&EngineId, &EngineSlot)| match scheme {
            Scheme::LeastLoad => (slot.tasks.len() as u64, id),
            Scheme::Lru => (slot.last_dispatch, id),
        };
        let chosen = match targets {
            None => self.engines.iter().filter(room).min_by_key(preference),
            Some(targets) => targets
                .iter()
                .filter_map(|id| self.engines.get_key_value(id))
                .filter(room)
                .min_by_key(preference),
        };
        chosen.map(|(&id, _)| id)
    }

    fn dispatch(
        &mut self,
        engine: EngineId,
        submission: Box<Submission>,
        actions: &mut Vec<SchedAction>,
    ) {
        let Some(slot) = self.engines.get_mut(&engine) else {
            return;
        };
        self.dispatch_count += 1;
        slot.last_dispatch = self.dispatch_count;
        slot.tasks.insert(submission.msg_id);
        self.dispatched.insert(
            submission.msg_id,
            DispatchedTask {
                engine,
                client: submission.client,
                submitted: submission.submitted,
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
            self.dispatch(engine, task.submission, actions);
        }
    }

    fn engine_down(&mut self, engine: EngineId, actions: &mut Vec<SchedAction>) {
        let Some(slot) = self.engines.remove(&engine) else {
            return;
        };
        // Oldest first (msg ids sort by creation), so the output does not
        // depend on hash order.
        let mut msg_ids: Vec<MsgId> = slot.tasks.into_iter().collect();
        msg_ids.sort_unstable();
        for msg_id in msg_ids {
            if let Some(task) = self.dispatched.remove(&msg_id) {
                actions.push(SchedAction::Fail {
                    msg_id,
                    client: task.client,
                    submitted: task.submitted,
                    error: TaskError::EngineDied(engine),
                });
            }
        }
    }

    fn shutdown(&mut self, actions: &mut Vec<SchedAction>) {
        let mut tasks: Vec<WaitingTask> = self.waiting.drain().map(|(_, task)| task).collect();
        tasks.sort_unstable_by_key(|task| task.seq);
        for task in tasks {
            let error = TaskError::Unschedulable(
                "the controller shut down before an engine was available".into(),
            );
            actions.push(fail(&task.submission, error));
        }
        self.any_engine.clear();
        self.targeted.clear();
        self.deadlines.clear();
        self.queued_entries = 0;
        self.live_entries = 0;
    }

    /// Fails waiting tasks whose deadline is at or before `now`.
    fn expire(&mut self, now: Instant, actions: &mut Vec<SchedAction>) {
        while let Some((&(deadline, _), &msg_id)) = self.deadlines.first_key_value() {
            if deadline > now {
                return;
            }
            match self.take_waiting(&msg_id) {
                Some(task) => {
                    let error = TaskError::Unschedulable(self.unplaced_reason(&task));
                    actions.push(fail(&task.submission, error));
                }
                // Cannot happen (a task leaves `deadlines` with `waiting`),
                // but never loop on it.
                None => {
                    self.deadlines.pop_first();
                }
            }
        }
    }

    /// Why `task` timed out, in words for its submitter.
    fn unplaced_reason(&self, task: &WaitingTask) -> String {
        let ms = task.submission.sched.timeout_ms.unwrap_or(0);
        if self.engines.is_empty() {
            return format!("no engines are registered (waited {ms} ms)");
        }
        if let Some(targets) = &task.targets
            && !targets.iter().any(|id| self.engines.contains_key(id))
        {
            let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
            return format!(
                "none of the target engines ({}) is registered (waited {ms} ms)",
                names.join(", ")
            );
        }
        format!("no engine became available within {ms} ms")
    }

    /// Removes a task from the waiting set (its queue entries go stale).
    fn take_waiting(&mut self, msg_id: &MsgId) -> Option<WaitingTask> {
        let task = self.waiting.remove(msg_id)?;
        if let Some(deadline) = task.deadline {
            self.deadlines.remove(&(deadline, task.seq));
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

fn fail(submission: &Submission, error: TaskError) -> SchedAction {
    SchedAction::Fail {
        msg_id: submission.msg_id,
        client: submission.client,
        submitted: submission.submitted,
        error,
    }
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
                sched: Scheduler::new(SchedulerConfig { scheme, hwm }),
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
            let actions = self.on(SchedEvent::Submit(Box::new(s.clone())));
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
            let actions = self.on(SchedEvent::Finished { msg_id });
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
                SchedAction::Fail { .. } => None,
            })
            .collect()
    }

    fn failures(actions: &[SchedAction]) -> Vec<(MsgId, TaskError)> {
        actions
            .iter()
            .filter_map(|a| match a {
                SchedAction::Fail { msg_id, error, .. } => Some((*msg_id, error.clone())),
                SchedAction::Dispatch { .. } => None,
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
        let actions = b.on(SchedEvent::Submit(Box::new(targeted(&[]))));
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
        let actions = b.on(SchedEvent::Submit(Box::new(with_timeout(task(), 0))));
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
        assert!("twobin".parse::<Scheme>().is_err());
        assert_eq!(SchedulerConfig::default().hwm, DEFAULT_HWM);
    }
}
