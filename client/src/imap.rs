//! [`Imap`]: a map over an iterator of any length, in bounded memory.
//!
//! `map` collects its input and keeps every task's result until the map is
//! dropped, which is what ipyparallel does (its client grew to 376 MiB
//! after 10,000 tasks here). `imap` instead pulls items from the caller's
//! iterator only as room frees up: at most `max_outstanding` tasks (chunks
//! of `chunksize` items) are submitted and not yet consumed, each result is
//! dropped once its items have been handed out, and what is kept for the
//! whole run is a few counters (tasks, items, serial time, span). Memory
//! stays flat whatever the input's length.
//!
//! Results come in input order (ordered, the default: a slow early task
//! holds later ones back, up to the bound) or as tasks complete. Each
//! task's items are handed out together, after the task's
//! [`on_task`](Imap::on_task) callback has seen its metadata (the CLI prints
//! task output there). The same state machine serves the blocking
//! [`Iterator`] and the async [`Stream`](Imap::into_stream), which waits on
//! the results only and so runs on any executor.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use futures_core::Stream;
use grid_proto::{Arg, EngineId, MsgId, SchedFlags, TaskError, Timestamp, Value, Work};

use crate::Client;
use crate::error::{Error, RemoteError};
use crate::module::Function;
use crate::result::{AsyncResult, Metadata, ResultSet};
use crate::view::{TaskOptions, chunk_call, info, submission, task};

/// Tasks in flight by default: enough to hide a round trip with one item
/// per task, and no more than about 65,536 items in all with large chunks.
pub fn default_max_outstanding(chunksize: usize) -> usize {
    (65_536 / chunksize.max(1)).clamp(4, 256)
}

/// Which tasks of an imap are done, in completion order (for unordered
/// iteration): each task's result set tells it its tag.
pub(crate) struct Completions {
    done: Mutex<VecDeque<u64>>,
    cond: Condvar,
    notify: tokio::sync::Notify,
}

impl Completions {
    fn new() -> Arc<Completions> {
        Arc::new(Completions {
            done: Mutex::new(VecDeque::new()),
            cond: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        })
    }

    /// Task `tag` is done.
    pub(crate) fn done(&self, tag: u64) {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(tag);
        self.cond.notify_all();
        self.notify.notify_waiters();
    }

    /// Blocks until a task is done; its tag.
    fn next(&self) -> u64 {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(tag) = done.pop_front() {
                return tag;
            }
            done = self.cond.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits (async) until a task is done; its tag.
    async fn next_async(&self) -> u64 {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(tag) = self
                .done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            {
                return tag;
            }
            notified.await;
        }
    }
}

/// Where an imap's tasks go.
#[derive(Clone)]
pub(crate) enum Placement {
    /// To the scheduler, with these flags.
    Balanced(SchedFlags),
    /// To these engines in turn.
    Direct(Vec<EngineId>),
}

/// The callback of [`Imap::on_task`].
type OnTask = Box<dyn FnMut(Range<usize>, &Metadata) + Send>;

/// A task submitted and not yet handed out.
struct Submitted {
    result: AsyncResult,
    items: Range<usize>,
}

/// A lazy, bounded map: see the module docs. Made by
/// [`LoadBalancedView::imap`](crate::LoadBalancedView::imap) or
/// [`DirectView::imap`](crate::DirectView::imap); tune it with its builder
/// methods before the first item is taken.
pub struct Imap<I: Iterator> {
    client: Client,
    function: Function,
    options: TaskOptions,
    placement: Placement,
    input: std::iter::Fuse<I>,
    to_args: fn(I::Item) -> Vec<Arg>,
    chunksize: usize,
    ordered: bool,
    max_outstanding: Option<usize>,
    on_task: Option<OnTask>,
    /// Tag of the next task; tags index `in_flight`.
    next_tag: u64,
    /// Submitted tasks, by tag, and (ordered) their tags in submission order.
    in_flight: HashMap<u64, Submitted>,
    order: VecDeque<u64>,
    completions: Arc<Completions>,
    next_item: usize,
    next_target: usize,
    stopped: bool,
    buffer: VecDeque<Result<Value, RemoteError>>,
    stats: Stats,
}

/// What an imap keeps of the tasks it has handed out.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    tasks: usize,
    items: usize,
    serial: Duration,
    first_submitted: Option<Timestamp>,
    last_completed: Option<Timestamp>,
}

/// One argument per item.
pub(crate) fn one_arg<T: Into<Value>>(item: T) -> Vec<Arg> {
    vec![Arg::Value(item.into())]
}

/// An argument list per item.
pub(crate) fn arg_list<T: Into<Arg>>(item: Vec<T>) -> Vec<Arg> {
    item.into_iter().map(Into::into).collect()
}

impl<I: Iterator> Imap<I> {
    pub(crate) fn new(
        client: Client,
        function: &Function,
        options: TaskOptions,
        placement: Placement,
        input: I,
        to_args: fn(I::Item) -> Vec<Arg>,
    ) -> Imap<I> {
        Imap {
            client,
            function: function.clone(),
            options,
            placement,
            input: input.fuse(),
            to_args,
            chunksize: 1,
            ordered: true,
            max_outstanding: None,
            on_task: None,
            next_tag: 0,
            in_flight: HashMap::new(),
            order: VecDeque::new(),
            completions: Completions::new(),
            next_item: 0,
            next_target: 0,
            stopped: false,
            buffer: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Items per task (at least 1; default 1).
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = chunksize.max(1);
        self
    }

    /// Input order (default) or completion order.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// At most `n` tasks submitted and not yet handed out (at least 1;
    /// default [`default_max_outstanding`] of the chunk size).
    pub fn max_outstanding(mut self, n: usize) -> Self {
        self.max_outstanding = Some(n.max(1));
        self
    }

    /// Calls `f(items, metadata)` for each task when its items are about to
    /// be handed out: `items` are their positions in the input.
    pub fn on_task(mut self, f: impl FnMut(Range<usize>, &Metadata) + Send + 'static) -> Self {
        self.on_task = Some(Box::new(f));
        self
    }

    /// Tasks handed out so far.
    pub fn tasks_done(&self) -> usize {
        self.stats.tasks
    }

    /// Items handed out so far.
    pub fn items_done(&self) -> usize {
        self.stats.items
    }

    /// Items of tasks handed out, not yet taken from the iterator.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Tasks submitted and not yet handed out.
    pub fn outstanding(&self) -> usize {
        self.in_flight.len()
    }

    /// Sum of the run times of the tasks handed out.
    pub fn serial_time(&self) -> Duration {
        self.stats.serial
    }

    /// From the first submission to the last completion handed out.
    pub fn wall_time(&self) -> Duration {
        match (self.stats.first_submitted, self.stats.last_completed) {
            (Some(first), Some(last)) => last.since(first),
            _ => Duration::ZERO,
        }
    }

    /// Stops: no more input is read, and the tasks in flight are aborted
    /// (their items still come, as `aborted` errors, unless done already).
    pub fn abort(&mut self) -> Result<(), Error> {
        self.stopped = true;
        let ids: Vec<MsgId> = self
            .in_flight
            .values()
            .flat_map(|t| t.result.msg_ids())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.client.abort(ids)
    }

    fn limit(&self) -> usize {
        self.max_outstanding
            .unwrap_or_else(|| default_max_outstanding(self.chunksize))
    }

    /// Submits tasks while there is room and input.
    fn fill(&mut self) {
        while !self.stopped && self.in_flight.len() < self.limit() {
            let chunk: Vec<Vec<Arg>> = self
                .input
                .by_ref()
                .take(self.chunksize)
                .map(self.to_args)
                .collect();
            if chunk.is_empty() {
                return;
            }
            let first = self.next_item;
            self.next_item += chunk.len();
            self.submit(first, chunk);
        }
    }

    fn submit(&mut self, first: usize, chunk: Vec<Vec<Arg>>) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let items = first..first + chunk.len();
        let msg_id = MsgId::new();
        let (call, is_chunk) = chunk_call(&self.function.name, chunk, self.chunksize);
        let work = Work::Task(task(&self.function, msg_id, call, self.options));
        let place = match &self.placement {
            Placement::Balanced(flags) => self
                .client
                .balanced_subject(flags)
                .map(|subject| (subject, flags.clone())),
            Placement::Direct(targets) => {
                let engine = targets.get(self.next_target % targets.len().max(1));
                self.next_target += 1;
                engine
                    .map(|&e| (self.client.subjects().engine_task(e), SchedFlags::default()))
                    .ok_or(Error::NoEngines)
            }
        };
        let info = info(
            msg_id,
            &self.function.name,
            Some(first),
            items.len(),
            is_chunk,
        );
        // Only unordered iteration asks which task completed.
        let listener = (!self.ordered).then(|| (self.completions.clone(), tag));
        let set = ResultSet::with_listener(vec![info], listener);
        let submitted = place.and_then(|(subject, flags)| {
            let sub = submission(&self.client, msg_id, work, flags)?;
            self.client.submit(vec![(subject, sub)], set.clone())
        });
        if let Err(e) = submitted {
            // Its items fail, the map goes on.
            let why = TaskError::Internal(format!("cannot submit the task: {e}"));
            set.fail(0, self.client.id(), why);
        }
        let result = AsyncResult {
            set,
            client: self.client.clone(),
            single: true,
            pull_one: false,
        };
        self.in_flight.insert(tag, Submitted { result, items });
        if self.ordered {
            self.order.push_back(tag);
        }
    }

    /// The tag of the task to hand out next, if it is done.
    fn ready_tag(&self) -> Option<u64> {
        if self.ordered {
            let tag = *self.order.front()?;
            self.in_flight.get(&tag)?.result.ready().then_some(tag)
        } else {
            None
        }
    }

    /// Hands out task `tag`'s items into the buffer.
    fn hand_out(&mut self, tag: u64) {
        let Some(task) = self.in_flight.remove(&tag) else {
            return;
        };
        if self.ordered {
            self.order.pop_front();
        }
        let metadata = task.result.metadata();
        if let Some(m) = metadata.first() {
            self.stats.tasks += 1;
            self.stats.items += task.items.len();
            if let (Some(started), Some(completed)) = (m.started, m.completed) {
                self.stats.serial += completed.since(started);
                self.stats.last_completed = self.stats.last_completed.max(Some(completed));
            }
            let first = self.stats.first_submitted.get_or_insert(m.submitted);
            *first = (*first).min(m.submitted);
            if let Some(f) = &mut self.on_task {
                f(task.items.clone(), m);
            }
        }
        self.buffer.extend(task.result.set.task_items(0));
    }

    /// The next item, or what must be waited for.
    fn poll_item(&mut self) -> Step {
        if let Some(item) = self.buffer.pop_front() {
            return Step::Item(item);
        }
        self.fill();
        if self.in_flight.is_empty() {
            return Step::End;
        }
        if let Some(tag) = self.ready_tag() {
            self.hand_out(tag);
            return Step::Again;
        }
        Step::Wait
    }

    /// Converts the blocking imap into an async `Stream` (any executor).
    pub fn into_stream(self) -> impl Stream<Item = Result<Value, RemoteError>> + Send
    where
        I: Send,
    {
        futures_util::stream::unfold(self, |mut imap| async move {
            loop {
                match imap.poll_item() {
                    Step::Item(item) => return Some((item, imap)),
                    Step::End => return None,
                    Step::Again => {}
                    Step::Wait => {
                        if imap.ordered {
                            let front = imap.order.front().and_then(|t| imap.in_flight.get(t));
                            if let Some(task) = front {
                                let set = task.result.set.clone();
                                set.wait_all_async().await;
                            }
                        } else {
                            let tag = imap.completions.next_async().await;
                            imap.hand_out(tag);
                        }
                    }
                }
            }
        })
    }
}

/// What [`Imap::poll_item`] found.
enum Step {
    Item(Result<Value, RemoteError>),
    /// Something changed: look again.
    Again,
    /// A task must complete first.
    Wait,
    End,
}

impl<I: Iterator> Iterator for Imap<I> {
    type Item = Result<Value, RemoteError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.poll_item() {
                Step::Item(item) => return Some(item),
                Step::End => return None,
                Step::Again => {}
                Step::Wait => {
                    if self.ordered {
                        let front = self.order.front().and_then(|t| self.in_flight.get(t));
                        if let Some(task) = front {
                            task.result.set.wait_all(None);
                        }
                    } else {
                        let tag = self.completions.next();
                        self.hand_out(tag);
                    }
                }
            }
        }
    }
}
