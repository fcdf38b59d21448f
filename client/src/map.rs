//! AsyncMapResult: the result of a map, item by item.
//!
//! A map is submitted as tasks (chunks of items on a load-balanced view, one
//! part per engine on a direct view), but its user thinks in items: `get`
//! gives every item's value in input order, `iter` and `stream` give them as
//! they arrive (in input order, or in completion order with
//! `ordered(false)`), and a failed item is an error naming its index. What
//! is per task (metadata, progress, timing, abort) says so. Unlike
//! ipyparallel, where the map result inherits the plain result's methods,
//! nothing here changes meaning: an [`AsyncMapResult`] is not an
//! [`AsyncResult`] and does not deref to one, and what has no meaning for
//! items is absent (`get_dict`, values by engine: each task's engine is in
//! its [`metadata`](AsyncMapResult::metadata)).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_core::Stream;
use grid_proto::{MsgId, Value};

use crate::error::{Error, RemoteError};
use crate::result::{AsyncResult, Metadata, ResultSet, Wait, split};

/// A dependency on every task of a map (see [`Dependency`](grid_proto::Dependency)'s flags).
impl From<&AsyncMapResult> for grid_proto::Dependency {
    fn from(result: &AsyncMapResult) -> grid_proto::Dependency {
        grid_proto::Dependency::new(result.msg_ids())
    }
}

/// The result of a map: per-item values, iterable as they arrive.
#[derive(Clone)]
pub struct AsyncMapResult {
    pub(crate) tasks: AsyncResult,
    pub(crate) items: usize,
    pub(crate) ordered: bool,
}

impl AsyncMapResult {
    /// Number of items mapped.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Number of tasks the items were sent as (chunks, or one per engine).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the map had no items.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Whether every task is done.
    pub fn ready(&self) -> bool {
        self.tasks.ready()
    }

    /// `Some(true)` when every item succeeded, `None` while not ready.
    pub fn successful(&self) -> Option<bool> {
        self.tasks.successful()
    }

    /// Tasks done so far (out of [`len`](Self::len)), in any order.
    pub fn progress(&self) -> usize {
        self.tasks.progress()
    }

    /// Waits for every task, up to `timeout`; returns whether they are done.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.tasks.wait(timeout)
    }

    /// Waits (async, from any executor) for every task.
    pub async fn wait_async(&self) {
        self.tasks.wait_async().await
    }

    /// Every item's value in input order; the failures as one
    /// [`RemoteError`] or a `CompositeError`; `Timeout` if not done in time.
    pub fn get(&self, timeout: Option<Duration>) -> Result<Vec<Value>, Error> {
        if !self.tasks.wait(timeout) {
            return Err(Error::Timeout(timeout.unwrap_or_default()));
        }
        self.values()
    }

    /// [`get`](Self::get), async (from any executor).
    pub async fn get_async(&self, timeout: Option<Duration>) -> Result<Vec<Value>, Error> {
        if !self.tasks.wait_async_timeout(timeout).await {
            return Err(Error::Timeout(timeout.unwrap_or_default()));
        }
        self.values()
    }

    fn values(&self) -> Result<Vec<Value>, Error> {
        let (values, errors) = split(self.tasks.set.all_items());
        match Error::from_failures(errors) {
            Some(e) => Err(e),
            None => Ok(values),
        }
    }

    /// Every item's own result, in input order, without failing as a whole.
    pub fn results(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Vec<Result<Value, RemoteError>>, Error> {
        if !self.tasks.wait(timeout) {
            return Err(Error::Timeout(timeout.unwrap_or_default()));
        }
        Ok(self.tasks.set.all_items())
    }

    /// [`results`](Self::results), async (from any executor).
    pub async fn results_async(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Vec<Result<Value, RemoteError>>, Error> {
        if !self.tasks.wait_async_timeout(timeout).await {
            return Err(Error::Timeout(timeout.unwrap_or_default()));
        }
        Ok(self.tasks.set.all_items())
    }

    /// Metadata of every task (not item), in submission order.
    pub fn metadata(&self) -> Vec<Metadata> {
        self.tasks.metadata()
    }

    /// The msg_ids of the tasks.
    pub fn msg_ids(&self) -> Vec<MsgId> {
        self.tasks.msg_ids()
    }

    /// Time since submission, until the last result arrived (or now).
    pub fn elapsed(&self) -> Duration {
        self.tasks.elapsed()
    }

    /// Sum of the tasks' run times on their engines.
    pub fn serial_time(&self) -> Duration {
        self.tasks.serial_time()
    }

    /// From the first submission to the last completion.
    pub fn wall_time(&self) -> Duration {
        self.tasks.wall_time()
    }

    /// Aborts the tasks not done yet; their items fail with `aborted`.
    pub fn abort(&self) -> Result<(), Error> {
        self.tasks.abort()
    }

    /// [`abort`](Self::abort), async.
    pub async fn abort_async(&self) -> Result<(), Error> {
        self.tasks.abort_async().await
    }

    /// Shows a progress bar on stderr (tasks done/total) until every task is done.
    pub fn wait_interactive(&self) {
        self.tasks.wait_interactive()
    }

    /// Iterates over items as their tasks complete: in input order, or in
    /// completion order when the map was made with `ordered(false)`. Blocks.
    pub fn iter(&self) -> MapIter {
        MapIter::new(self.tasks.set.clone(), self.ordered)
    }

    /// The same as [`iter`](Self::iter), as an async `Stream` that works on
    /// any executor (it only waits on the results, never spawns).
    pub fn stream(&self) -> impl Stream<Item = Result<Value, RemoteError>> + Send + 'static {
        let it = MapIter::new(self.tasks.set.clone(), self.ordered);
        futures_util::stream::unfold(it, |mut it| async move {
            loop {
                if let Some(item) = it.buffer.pop_front() {
                    return Some((item, it));
                }
                if it.next_task >= it.set.tasks.len() {
                    return None;
                }
                let set = it.set.clone();
                if it.ordered {
                    set.wait_index_async(it.next_task).await;
                } else {
                    set.wait_for_async(it.next_task + 1).await;
                }
                it.take_next_task();
            }
        })
    }
}

impl Wait for AsyncMapResult {
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        self.tasks.wait_until(deadline)
    }

    fn wait_async_dyn(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.tasks.wait_async_dyn()
    }

    fn msg_ids(&self) -> Vec<MsgId> {
        self.tasks.msg_ids()
    }
}

impl IntoIterator for &AsyncMapResult {
    type Item = Result<Value, RemoteError>;
    type IntoIter = MapIter;

    fn into_iter(self) -> MapIter {
        self.iter()
    }
}

/// Blocking iterator over a map's items (see [`AsyncMapResult::iter`]).
pub struct MapIter {
    set: Arc<ResultSet>,
    ordered: bool,
    /// Tasks consumed so far (by position in submission or completion order).
    next_task: usize,
    buffer: VecDeque<Result<Value, RemoteError>>,
}

impl MapIter {
    fn new(set: Arc<ResultSet>, ordered: bool) -> MapIter {
        MapIter {
            set,
            ordered,
            next_task: 0,
            buffer: VecDeque::new(),
        }
    }

    /// Moves the next task's items into the buffer; it must be done.
    fn take_next_task(&mut self) {
        let index = if self.ordered {
            self.next_task
        } else {
            match self.set.completed(self.next_task) {
                Some(index) => index,
                None => return,
            }
        };
        self.next_task += 1;
        self.buffer.extend(self.set.task_items(index));
    }
}

impl Iterator for MapIter {
    type Item = Result<Value, RemoteError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                return Some(item);
            }
            if self.next_task >= self.set.tasks.len() {
                return None;
            }
            if self.ordered {
                self.set.wait_index(self.next_task);
            } else {
                self.set.wait_for(self.next_task + 1, None);
            }
            self.take_next_task();
        }
    }
}
