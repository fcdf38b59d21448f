//! Views: where work goes.
//!
//! A [`DirectView`] sends each call to every one of its target engines and
//! moves data in and out of their namespaces (push, pull, scatter, gather);
//! a [`LoadBalancedView`] lets the scheduler place each task, splitting maps
//! into chunks of `chunksize` items. Both run WASI [`Command`]s too (`run`,
//! ipyparallel's `execute`/`run`), and both take per-task options: limits
//! and deterministic mode (`deterministic`, `seed`). Both only build
//! submissions: the client publishes them and collects the replies.

use std::collections::BTreeMap;
use std::time::Duration;

use grid_proto::{
    Arg, Body, Call, Dependency, Deterministic, Elem, EngineId, Limits, MsgId, SchedFlags,
    Submission, Task, Timestamp, TypedArray, Value, Work,
};

use crate::Client;
use crate::command::Command;
use crate::error::Error;
use crate::imap::{Imap, Placement, arg_list, one_arg};
use crate::map::AsyncMapResult;
use crate::module::Function;
use crate::module::Module;
use crate::result::{AsyncResult, ResultSet, TaskInfo};

/// An argument that is the value named `name` in the engine's namespace.
pub fn reference(name: &str) -> Arg {
    Arg::Ref(name.to_string())
}

/// Zips sequences into argument lists, as Python's `map(f, xs, ys)` does.
/// All sequences must have the same length.
pub fn zip(sequences: Vec<Vec<Value>>) -> Result<Vec<Vec<Value>>, Error> {
    let Some(len) = sequences.first().map(Vec::len) else {
        return Ok(Vec::new());
    };
    if sequences.iter().any(|s| s.len() != len) {
        return Err(Error::Usage(
            "the sequences to map over have different lengths".into(),
        ));
    }
    let mut iters: Vec<_> = sequences.into_iter().map(Vec::into_iter).collect();
    Ok((0..len)
        .map(|_| iters.iter_mut().filter_map(Iterator::next).collect())
        .collect())
}

fn args(args: impl IntoIterator<Item = impl Into<Arg>>) -> Vec<Arg> {
    args.into_iter().map(Into::into).collect()
}

/// What a view puts in each of its tasks besides the call.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TaskOptions {
    pub limits: Limits,
    pub deterministic: Option<Deterministic>,
}

impl TaskOptions {
    /// Turns deterministic mode on or off (off forgets the seed).
    fn deterministic(&mut self, on: bool) {
        self.deterministic = on.then(|| self.deterministic.unwrap_or_default());
    }

    /// Deterministic mode with this seed.
    fn seed(&mut self, seed: u64) {
        self.deterministic = Some(Deterministic { seed: Some(seed) });
    }
}

pub(crate) fn task(f: &Function, msg_id: MsgId, call: Call, options: TaskOptions) -> Task {
    module_task(f.module, msg_id, call, options)
}

fn module_task(
    module: grid_proto::ModuleHash,
    msg_id: MsgId,
    call: Call,
    options: TaskOptions,
) -> Task {
    Task {
        msg_id,
        module,
        call,
        limits: options.limits,
        deterministic: options.deterministic,
    }
}

/// The name a command's tasks go by in errors and metadata.
const COMMAND: &str = "_start";

/// The call of one task of a map of `chunksize` items per task: a plain call
/// when tasks hold one item each, else a chunk whose values are per item
/// (the `bool`).
pub(crate) fn chunk_call(name: &str, mut chunk: Vec<Vec<Arg>>, chunksize: usize) -> (Call, bool) {
    let name = name.to_string();
    if chunksize == 1 {
        let args = chunk.pop().unwrap_or_default();
        (Call::Function { name, args }, false)
    } else {
        (Call::Map { name, items: chunk }, true)
    }
}

pub(crate) fn submission(
    client: &Client,
    msg_id: MsgId,
    work: Work,
    sched: SchedFlags,
) -> Result<Submission, Error> {
    Ok(Submission {
        msg_id,
        client: client.id(),
        submitted: Timestamp::now(),
        work: Body::new(&work).map_err(|e| Error::Usage(e.to_string()))?,
        sched,
    })
}

pub(crate) fn info(
    msg_id: MsgId,
    function: &str,
    first_item: Option<usize>,
    items: usize,
    chunk: bool,
) -> TaskInfo {
    TaskInfo {
        msg_id,
        function: function.to_string(),
        first_item,
        items,
        chunk,
        whole: false,
        submitted: Timestamp::now(),
    }
}

/// Splits `len` items into `parts` contiguous ranges whose sizes differ by at
/// most one, the larger first (as ipyparallel's scatter does).
pub(crate) fn partition(len: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.max(1);
    let (base, extra) = (len / parts, len % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let size = base + usize::from(i < extra);
            let r = start..start + size;
            start += size;
            r
        })
        .collect()
}

/// Work sent to chosen engines.
#[derive(Clone)]
pub struct DirectView {
    client: Client,
    targets: Vec<EngineId>,
    single: bool,
    block: bool,
    options: TaskOptions,
}

impl DirectView {
    pub(crate) fn new(client: Client, targets: Vec<EngineId>, single: bool) -> DirectView {
        DirectView {
            client,
            targets,
            single,
            block: false,
            options: TaskOptions::default(),
        }
    }

    pub fn targets(&self) -> &[EngineId] {
        &self.targets
    }

    /// With `block`, `apply`, `map` and the data methods wait for their results.
    pub fn block(mut self, block: bool) -> Self {
        self.block = block;
        self
    }

    /// Limits for the tasks of this view (lowering the engines' limits).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.options.limits = limits;
        self
    }

    /// Runs this view's tasks in deterministic mode: virtual clocks, seeded
    /// random bytes, fuel metering, a fresh instance per item; the same
    /// value, output and fuel on every engine (see `guest-sdk/ABI.md`).
    pub fn deterministic(mut self, on: bool) -> Self {
        self.options.deterministic(on);
        self
    }

    /// Deterministic mode with this seed for random bytes (else each task's
    /// seed is derived from its module and input).
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed(seed);
        self
    }

    fn send(
        &self,
        works: Vec<(EngineId, Work, TaskInfo)>,
        single: bool,
    ) -> Result<AsyncResult, Error> {
        if works.is_empty() {
            return Err(Error::NoEngines);
        }
        let mut infos = Vec::with_capacity(works.len());
        let mut subs = Vec::with_capacity(works.len());
        for (engine, work, info) in works {
            let subject = self.client.subjects().engine_task(engine);
            subs.push((
                subject,
                submission(&self.client, info.msg_id, work, SchedFlags::default())?,
            ));
            infos.push(info);
        }
        let set = self.client.submit(subs, ResultSet::new(infos))?;
        let result = AsyncResult {
            set,
            client: self.client.clone(),
            single,
            pull_one: false,
        };
        if self.block {
            result.wait(None);
        }
        Ok(result)
    }

    fn each(&self, f: &str, mut work: impl FnMut(MsgId) -> Work) -> Result<AsyncResult, Error> {
        let works = self
            .targets
            .iter()
            .map(|&engine| {
                let id = MsgId::new();
                (engine, work(id), info(id, f, None, 1, false))
            })
            .collect();
        self.send(works, self.single)
    }

    /// Calls `f(args)` on every target engine.
    pub fn apply(
        &self,
        f: &Function,
        a: impl IntoIterator<Item = impl Into<Arg>>,
    ) -> Result<AsyncResult, Error> {
        let a = args(a);
        let options = self.options;
        self.each(&f.name, |id| {
            Work::Task(task(
                f,
                id,
                Call::Function {
                    name: f.name.clone(),
                    args: a.clone(),
                },
                options,
            ))
        })
    }

    /// Runs `command` (the module's `_start`) on every target engine, for
    /// set-up as ipyparallel's `execute`/`run`. Each task's value is its
    /// exit code; its output streams live and is in the metadata.
    pub fn run(&self, module: &Module, command: &Command) -> Result<AsyncResult, Error> {
        let call = command.call();
        let options = self.options;
        self.each(COMMAND, |id| {
            Work::Task(module_task(module.hash(), id, call.clone(), options))
        })
    }

    /// ipyparallel's name for [`run`](Self::run).
    pub fn execute(&self, module: &Module, command: &Command) -> Result<AsyncResult, Error> {
        self.run(module, command)
    }

    /// [`apply`](Self::apply) without blocking, whatever the view's `block` flag.
    pub fn apply_async(
        &self,
        f: &Function,
        a: impl IntoIterator<Item = impl Into<Arg>>,
    ) -> Result<AsyncResult, Error> {
        self.clone().block(false).apply(f, a)
    }

    /// [`apply`](Self::apply) and wait for the value(s).
    pub fn apply_sync(
        &self,
        f: &Function,
        a: impl IntoIterator<Item = impl Into<Arg>>,
    ) -> Result<Value, Error> {
        self.apply_async(f, a)?.get(None)
    }

    /// Maps `f` over zipped `sequences`, one contiguous part per engine.
    pub fn map(&self, f: &Function, sequences: Vec<Vec<Value>>) -> Result<AsyncMapResult, Error> {
        let items = zip(sequences)?;
        let n = items.len();
        let parts = partition(n, self.targets.len());
        let mut works = Vec::new();
        let mut items = items.into_iter();
        for (&engine, range) in self.targets.iter().zip(parts) {
            if range.is_empty() {
                continue;
            }
            let id = MsgId::new();
            let chunk: Vec<Vec<Arg>> = items.by_ref().take(range.len()).map(args).collect();
            let call = Call::Map {
                name: f.name.clone(),
                items: chunk,
            };
            works.push((
                engine,
                Work::Task(task(f, id, call, self.options)),
                info(id, &f.name, Some(range.start), range.len(), true),
            ));
        }
        if works.is_empty() && n == 0 {
            return Ok(AsyncMapResult {
                tasks: AsyncResult {
                    set: crate::result::ResultSet::new(Vec::new()),
                    client: self.client.clone(),
                    single: false,
                    pull_one: false,
                },
                items: 0,
                ordered: true,
            });
        }
        Ok(AsyncMapResult {
            tasks: self.send(works, false)?,
            items: n,
            ordered: true,
        })
    }

    /// [`map`](Self::map) without blocking, whatever the view's `block` flag.
    pub fn map_async(
        &self,
        f: &Function,
        sequences: Vec<Vec<Value>>,
    ) -> Result<AsyncMapResult, Error> {
        self.clone().block(false).map(f, sequences)
    }

    /// [`map`](Self::map) and wait for the values.
    pub fn map_sync(&self, f: &Function, sequences: Vec<Vec<Value>>) -> Result<Vec<Value>, Error> {
        self.map_async(f, sequences)?.get(None)
    }

    /// A lazy map of `f` over `items`, one argument each, in bounded
    /// memory: tasks go to the targets in turn, at most `max_outstanding`
    /// at a time (see [`Imap`]). Nothing is read or sent until the first
    /// item is taken.
    pub fn imap<I>(&self, f: &Function, items: I) -> Imap<I::IntoIter>
    where
        I: IntoIterator,
        I::Item: Into<Value>,
    {
        self.imap_with(f, items.into_iter(), one_arg)
    }

    /// [`imap`](Self::imap) over argument lists (`vec![3, 4]` calls `f(3, 4)`).
    pub fn imap_items<I, A>(&self, f: &Function, items: I) -> Imap<I::IntoIter>
    where
        I: IntoIterator<Item = Vec<A>>,
        A: Into<Arg>,
    {
        self.imap_with(f, items.into_iter(), arg_list)
    }

    fn imap_with<I: Iterator>(
        &self,
        f: &Function,
        items: I,
        to_args: fn(I::Item) -> Vec<Arg>,
    ) -> Imap<I> {
        let placement = Placement::Direct(self.targets.clone());
        Imap::new(
            self.client.clone(),
            f,
            self.options,
            placement,
            items,
            to_args,
        )
    }

    /// Stores `values` in every target's namespace.
    pub fn push(&self, values: BTreeMap<String, Value>) -> Result<AsyncResult, Error> {
        // The last target takes the values, the others get copies: pushing
        // 10 MB to one engine copies nothing here.
        let mut left = self.targets.len();
        let mut values = Some(values);
        self.each("push", |_| {
            left -= 1;
            let values = if left == 0 {
                values.take()
            } else {
                values.clone()
            };
            Work::Push(values.unwrap_or_default())
        })
    }

    /// Reads `name` from every target (the value, or a list for several targets).
    pub fn pull(&self, name: &str) -> Result<AsyncResult, Error> {
        let result = self.each("pull", |_| Work::Pull(vec![name.to_string()]))?;
        Ok(AsyncResult {
            pull_one: true,
            ..result
        })
    }

    /// Reads several names from every target: per engine, an array in the order asked.
    pub fn pull_many(&self, names: &[&str]) -> Result<AsyncResult, Error> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        self.each("pull", |_| Work::Pull(names.clone()))
    }

    /// Dict-style set: pushes one value and waits.
    pub fn set(&self, name: &str, value: Value) -> Result<(), Error> {
        let mut values = BTreeMap::new();
        values.insert(name.to_string(), value);
        self.push(values)?.get(None).map(|_| ())
    }

    /// Dict-style get: pulls one name and waits.
    pub fn get(&self, name: &str) -> Result<Value, Error> {
        self.pull(name)?.get(None)
    }

    /// Removes every entry from the targets' namespaces.
    pub fn clear(&self) -> Result<AsyncResult, Error> {
        self.each("clear", |_| Work::Clear)
    }

    /// Partitions `seq` over the targets (contiguous, sizes differing by at
    /// most one) and stores each part under `name`. With `flatten`, a part of
    /// one element is stored as that element.
    pub fn scatter(
        &self,
        name: &str,
        seq: Vec<Value>,
        flatten: bool,
    ) -> Result<AsyncResult, Error> {
        let parts = partition(seq.len(), self.targets.len());
        let mut seq = seq.into_iter();
        let values = parts.into_iter().map(|range| {
            let part: Vec<Value> = seq.by_ref().take(range.len()).collect();
            if flatten && part.len() == 1 {
                part.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(part)
            }
        });
        self.scatter_parts(name, values.collect())
    }

    /// [`scatter`](Self::scatter) for a typed array: the parts are slices
    /// of `array` (they share its buffer, nothing is copied on the way to
    /// the bus), each stored as a typed array, or with `flatten` a part of
    /// one element as that number.
    pub fn scatter_array(
        &self,
        name: &str,
        array: &TypedArray,
        flatten: bool,
    ) -> Result<AsyncResult, Error> {
        let values =
            partition(array.len(), self.targets.len())
                .into_iter()
                .map(|range| match array.get(range.start) {
                    Some(one) if flatten && range.len() == 1 => one,
                    _ => Value::Typed(array.slice(range)),
                });
        self.scatter_parts(name, values.collect())
    }

    /// Stores `values[i]` under `name` on target `i`.
    fn scatter_parts(&self, name: &str, values: Vec<Value>) -> Result<AsyncResult, Error> {
        let works = self
            .targets
            .iter()
            .zip(values)
            .map(|(&engine, value)| {
                let mut values = BTreeMap::new();
                values.insert(name.to_string(), value);
                let id = MsgId::new();
                (
                    engine,
                    Work::Push(values),
                    info(id, "scatter", None, 1, false),
                )
            })
            .collect();
        self.send(works, false)
    }

    /// [`gather`](Self::gather) for parts that are typed arrays of one
    /// element type (or single numbers, as `flatten` left them): joined
    /// with one copy of each part.
    pub fn gather_array(
        &self,
        name: &str,
        elem: Elem,
        timeout: Option<Duration>,
    ) -> Result<TypedArray, Error> {
        let parts = self.pull_parts(name, timeout)?;
        let typed = parts
            .iter()
            .map(|part| match part {
                // A part of one element, as `flatten` left it.
                Value::Int(_) | Value::Float(_) => {
                    TypedArray::from_values(elem, std::slice::from_ref(part))
                }
                part => part.to_typed(elem),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Usage(format!("gather_array of `{name}`: {e}")))?;
        match TypedArray::concat(&typed) {
            Some(joined) => Ok(joined),
            // No parts (a view without targets): an empty array of `elem`.
            None => TypedArray::new(elem, Vec::new()).map_err(|e| Error::Usage(e.to_string())),
        }
    }

    /// Each target's value of `name`, in target order.
    fn pull_parts(&self, name: &str, timeout: Option<Duration>) -> Result<Vec<Value>, Error> {
        let parts = self
            .clone()
            .block(false)
            .each("gather", |_| Work::Pull(vec![name.to_string()]))?;
        let Value::Array(parts) = parts.get(timeout)? else {
            return Err(Error::Usage("gather: unexpected reply".into()));
        };
        Ok(parts
            .into_iter()
            .filter_map(|part| match part {
                Value::Array(mut one) => one.pop(),
                other => Some(other),
            })
            .collect())
    }

    /// Pulls `name` from every target and concatenates the parts in target
    /// order (a part that is not an array counts as one element).
    pub fn gather(&self, name: &str, timeout: Option<Duration>) -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        for part in self.pull_parts(name, timeout)? {
            match part {
                Value::Array(items) => out.extend(items),
                Value::Typed(a) => out.extend(a.values()),
                v => out.push(v),
            }
        }
        Ok(out)
    }
}

/// Work placed by the scheduler.
#[derive(Clone)]
pub struct LoadBalancedView {
    client: Client,
    block: bool,
    chunksize: usize,
    ordered: bool,
    targets: Option<Vec<EngineId>>,
    timeout: Option<Duration>,
    after: Option<Dependency>,
    follow: Option<Dependency>,
    retries: u32,
    options: TaskOptions,
}

impl LoadBalancedView {
    pub(crate) fn new(client: Client) -> LoadBalancedView {
        LoadBalancedView {
            client,
            block: false,
            chunksize: 1,
            ordered: true,
            targets: None,
            timeout: None,
            after: None,
            follow: None,
            retries: 0,
            options: TaskOptions::default(),
        }
    }

    /// With `block`, `apply` and `map` wait for their results.
    pub fn block(mut self, block: bool) -> Self {
        self.block = block;
        self
    }

    /// Items per task in maps (at least 1).
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = chunksize.max(1);
        self
    }

    /// Whether map iteration follows input order (default) or completion order.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// Restricts placement to these engines.
    pub fn targets(mut self, targets: Vec<EngineId>) -> Self {
        self.targets = Some(targets);
        self
    }

    /// Fails tasks that have not started within `timeout`: whose
    /// dependencies are not met by then (a dependency timeout) or that no
    /// engine took (unschedulable).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs this view's tasks only once `dependency` is met (ipyparallel's
    /// `after`): by default, once all its tasks succeeded. A dependency that
    /// can never be met fails the task at once with an impossible-dependency
    /// error naming why.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), grid_client::Error> {
    /// # let client = grid_client::Client::local(2)?;
    /// # let square = client.load_module("examples/guests/wat/square.wat")?.func("square");
    /// use grid_client::Dependency;
    ///
    /// let lb = client.load_balanced_view();
    /// let first = lb.apply(&square, [3])?;
    /// let second = lb.clone().after(&first).apply(&square, [4])?;
    /// // Runs whether `first` succeeded or failed.
    /// let cleanup = lb.clone().after(Dependency::from(&first).failure(true)).apply(&square, [0])?;
    /// # Ok(()) }
    /// ```
    pub fn after(mut self, dependency: impl Into<Dependency>) -> Self {
        self.after = Some(dependency.into());
        self
    }

    /// Runs this view's tasks where `dependency`'s tasks ran (ipyparallel's
    /// `follow`), once they are done: with `all` (the default), on the one
    /// engine where all of them ran; with `any`, on one where any did.
    pub fn follow(mut self, dependency: impl Into<Dependency>) -> Self {
        self.follow = Some(dependency.into());
        self
    }

    /// Runs a failed task again, at most `retries` more times, each time on
    /// an engine where it has not failed yet when there is one. The client
    /// sees only the final result; its metadata counts the `attempts`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Limits for the tasks of this view (lowering the engines' limits).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.options.limits = limits;
        self
    }

    /// Runs this view's tasks in deterministic mode (see
    /// [`DirectView::deterministic`]): a map's values then do not depend on
    /// its chunksize either.
    pub fn deterministic(mut self, on: bool) -> Self {
        self.options.deterministic(on);
        self
    }

    /// Deterministic mode with this seed for random bytes.
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed(seed);
        self
    }

    fn flags(&self) -> SchedFlags {
        SchedFlags {
            targets: self.targets.clone(),
            timeout_ms: self.timeout.map(|t| t.as_millis() as u64),
            after: self.after.clone(),
            follow: self.follow.clone(),
            retries: self.retries,
        }
    }

    fn send(&self, works: Vec<(Work, TaskInfo)>) -> Result<AsyncResult, Error> {
        let flags = self.flags();
        let mut infos = Vec::with_capacity(works.len());
        let mut subs = Vec::with_capacity(works.len());
        let subject = self.client.balanced_subject(&flags)?;
        for (work, info) in works {
            subs.push((
                subject.clone(),
                submission(&self.client, info.msg_id, work, flags.clone())?,
            ));
            infos.push(info);
        }
        let set = self
            .client
            .submit(subs, ResultSet::with_dependencies(infos, &flags))?;
        let result = AsyncResult {
            set,
            client: self.client.clone(),
            single: true,
            pull_one: false,
        };
        if self.block {
            result.wait(None);
        }
        Ok(result)
    }

    /// Calls `f(args)` on whichever engine the scheduler picks.
    pub fn apply(
        &self,
        f: &Function,
        a: impl IntoIterator<Item = impl Into<Arg>>,
    ) -> Result<AsyncResult, Error> {
        let id = MsgId::new();
        let call = Call::Function {
            name: f.name.clone(),
            args: args(a),
        };
        self.send(vec![(
            Work::Task(task(f, id, call, self.options)),
            info(id, &f.name, None, 1, false),
        )])
    }

    /// Runs `command` (the module's `_start`) on whichever engine the
    /// scheduler picks. The value is the exit code; the output streams live
    /// and is in the metadata.
    pub fn run(&self, module: &Module, command: &Command) -> Result<AsyncResult, Error> {
        let id = MsgId::new();
        self.send(vec![(
            Work::Task(module_task(module.hash(), id, command.call(), self.options)),
            info(id, COMMAND, None, 1, false),
        )])
    }

    pub fn apply_async(
        &self,
        f: &Function,
        a: impl IntoIterator<Item = impl Into<Arg>>,
    ) -> Result<AsyncResult, Error> {
        self.clone().block(false).apply(f, a)
    }

    pub fn apply_sync(
        &self,
        f: &Function,
        a: impl IntoIterator<Item = impl Into<Arg>>,
    ) -> Result<Value, Error> {
        self.apply_async(f, a)?.get(None)
    }

    /// Maps `f` over zipped `sequences` in tasks of `chunksize` items.
    pub fn map(&self, f: &Function, sequences: Vec<Vec<Value>>) -> Result<AsyncMapResult, Error> {
        self.map_items(f, zip(sequences)?)
    }

    /// Maps `f` over argument lists (already zipped).
    pub fn map_items(&self, f: &Function, items: Vec<Vec<Value>>) -> Result<AsyncMapResult, Error> {
        let n = items.len();
        let mut works = Vec::with_capacity(n.div_ceil(self.chunksize));
        let mut items = items.into_iter();
        let mut start = 0;
        while start < n {
            let size = self.chunksize.min(n - start);
            let id = MsgId::new();
            let part: Vec<Vec<Arg>> = items.by_ref().take(size).map(args).collect();
            let (call, is_chunk) = chunk_call(&f.name, part, self.chunksize);
            works.push((
                Work::Task(task(f, id, call, self.options)),
                info(id, &f.name, Some(start), size, is_chunk),
            ));
            start += size;
        }
        Ok(AsyncMapResult {
            tasks: self.send(works)?,
            items: n,
            ordered: self.ordered,
        })
    }

    pub fn map_async(
        &self,
        f: &Function,
        sequences: Vec<Vec<Value>>,
    ) -> Result<AsyncMapResult, Error> {
        self.clone().block(false).map(f, sequences)
    }

    pub fn map_sync(&self, f: &Function, sequences: Vec<Vec<Value>>) -> Result<Vec<Value>, Error> {
        self.map_async(f, sequences)?.get(None)
    }

    /// A lazy map of `f` over `items`, one argument each, in bounded
    /// memory, with this view's chunksize, order and flags: at most
    /// `max_outstanding` tasks in flight (see [`Imap`]). Nothing is read or
    /// sent until the first item is taken.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), grid_client::Error> {
    /// # let client = grid_client::Client::local(2)?;
    /// # let square = client.load_module("examples/guests/wat/square.wat")?.func("square");
    /// let lb = client.load_balanced_view().chunksize(1000);
    /// let mut total = 0i64;
    /// for value in lb.imap(&square, 0..100_000_000i64) {
    ///     total = total.wrapping_add(value?.as_i64().unwrap_or(0));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn imap<I>(&self, f: &Function, items: I) -> Imap<I::IntoIter>
    where
        I: IntoIterator,
        I::Item: Into<Value>,
    {
        self.imap_with(f, items.into_iter(), one_arg)
    }

    /// [`imap`](Self::imap) over argument lists (`vec![3, 4]` calls `f(3, 4)`).
    pub fn imap_items<I, A>(&self, f: &Function, items: I) -> Imap<I::IntoIter>
    where
        I: IntoIterator<Item = Vec<A>>,
        A: Into<Arg>,
    {
        self.imap_with(f, items.into_iter(), arg_list)
    }

    fn imap_with<I: Iterator>(
        &self,
        f: &Function,
        items: I,
        to_args: fn(I::Item) -> Vec<Arg>,
    ) -> Imap<I> {
        let placement = Placement::Balanced(self.flags());
        Imap::new(
            self.client.clone(),
            f,
            self.options,
            placement,
            items,
            to_args,
        )
        .chunksize(self.chunksize)
        .ordered(self.ordered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_like_ipyparallel() {
        assert_eq!(partition(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(partition(2, 3), vec![0..1, 1..2, 2..2]);
        assert_eq!(partition(0, 2), vec![0..0, 0..0]);
    }

    #[test]
    fn zip_needs_equal_lengths() {
        let z = zip(vec![
            vec![Value::from(1), Value::from(2)],
            vec![Value::from("a"), Value::from("b")],
        ])
        .unwrap();
        assert_eq!(
            z,
            vec![
                vec![Value::from(1), Value::from("a")],
                vec![Value::from(2), Value::from("b")]
            ]
        );
        assert!(zip(vec![vec![Value::from(1)], vec![]]).is_err());
    }
}
