//! The hub's task store: every task's record, from submission to result,
//! for queries (`get_result`, `db_query`, `result_status`, `purge_results`)
//! and, with SQLite, for the next controller after a restart.
//!
//! The hub tells its store what happens to each task, in order
//! ([`TaskStore::submitted`], [`assigned`](TaskStore::assigned),
//! [`finished`](TaskStore::finished)) and asks it when a query comes. Two
//! stores implement it:
//! - [`MemoryStore`], the default: records in memory, completed ones
//!   bounded by count and bytes (the oldest completed forgotten first;
//!   pending ones never).
//! - [`SqliteStore`]: records in an SQLite file (WAL; writes batched on a
//!   thread of their own, one transaction per batch), memory only for what is
//!   not written yet. Its schema is in `sqlite.rs`'s docs and the README.
//!
//! Rules every store keeps, which the hub relies on:
//! - the first result of a task wins: `finished` for a task already done
//!   changes nothing (a retried task's earlier results never reach the
//!   store: the hub gives it only the final one);
//! - `finished` for a task never `submitted` records it anyway (its
//!   submission was missed, or recorded by a controller that died);
//! - pending records are never forgotten or purged;
//! - a query sees every call made before it.
//!
//! Recording must never slow the hub's hot path: the calls that record are
//! cheap (a map insert, or a message to the writer thread) and never fail;
//! a store that cannot write logs it and goes on. Queries may block the
//! hub briefly (the SQLite store reads on its writer thread, after the
//! writes before them).

mod memory;
mod sqlite;

use std::collections::HashSet;

use grid_proto::{
    BlobHash, ClientId, Dependency, EngineInfo, EngineRef, MsgId, Purge, RecordKey, Reply,
    TaskFilter, TaskRecord, Timestamp,
};

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// How many records a query answers at most when its filter sets no
/// smaller limit, and how many bytes of records: an answer must fit in
/// one bus message (NATS's default limit is 1 MiB).
pub const PAGE_RECORDS: usize = 1000;
pub const PAGE_BYTES: usize = 512 << 10;

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("task store {path}: {message}")]
    Sqlite { path: String, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("the task store's writer stopped")]
    Stopped,
}

/// A task the hub has just learnt of.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    pub msg_id: MsgId,
    pub client: ClientId,
    pub submitted: Timestamp,
    /// The engine it was sent to, for a direct task or a claimed `pure` one.
    pub engine: Option<EngineRef>,
    pub after: Option<Dependency>,
    pub follow: Option<Dependency>,
}

impl NewTask {
    /// A task known from its result alone (its submission was missed, or
    /// recorded by a controller that died): no dependencies.
    pub(crate) fn of_reply(reply: &Reply) -> NewTask {
        NewTask {
            msg_id: reply.msg_id,
            client: reply.client,
            submitted: reply.submitted,
            engine: reply.engine,
            after: None,
            follow: None,
        }
    }
}

/// A task store. See the module docs for the rules.
pub trait TaskStore: Send + Sync + std::fmt::Debug {
    /// A task became known (submitted, seen on an engine's subject, claimed).
    fn submitted(&mut self, task: NewTask);
    /// It was sent to `engine`, for the `attempts`-th time.
    fn assigned(&mut self, msg_id: MsgId, engine: EngineRef, attempts: u32);
    /// Its final result, recorded by the controller at `received`.
    fn finished(&mut self, reply: &Reply, received: Timestamp);
    /// An engine registered (ids are kept across restarts).
    fn engine_registered(&mut self, info: &EngineInfo);

    /// The results of those of `msg_ids` that are done, in the order asked.
    fn results(&mut self, msg_ids: &[MsgId]) -> Result<Vec<Reply>, StoreError>;
    /// One page of the records `filter` selects, sorted by msg id, with
    /// the `heavy` fields; `true` when the
    /// query has more after this page.
    fn query(
        &mut self,
        filter: &TaskFilter,
        heavy: Heavy,
    ) -> Result<(Vec<TaskRecord>, bool), StoreError>;
    /// Forgets completed records; returns how many. Naming a pending task
    /// is refused (nothing is purged). [`Purge::Before`] is by the time the
    /// controller recorded the result (`received`).
    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError>;

    /// Engines registered with an earlier controller on this store.
    fn engines(&mut self) -> Result<Vec<EngineInfo>, StoreError>;
    /// Tasks an earlier controller on this store left pending.
    fn unfinished(&mut self) -> Result<Vec<TaskRecord>, StoreError>;
    /// The blobs that hold results of the records kept (never collected
    /// while their record is).
    fn result_blobs(&mut self) -> Result<HashSet<BlobHash>, StoreError>;

    /// How many completed records it keeps at least (`usize::MAX`: all of
    /// them); the hub remembers no more than that on its own.
    fn keeps(&self) -> usize;
}

/// Which heavy fields to put in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heavy {
    pub stdout: bool,
    pub stderr: bool,
    pub value: bool,
}

impl Heavy {
    /// None of them (to select records, or to list them).
    pub const NONE: Heavy = Heavy {
        stdout: false,
        stderr: false,
        value: false,
    };

    /// All of them (to record a result in full).
    pub const ALL: Heavy = Heavy {
        stdout: true,
        stderr: true,
        value: true,
    };

    /// Those a query's `keys` ask for: every one when `keys` is empty.
    pub fn of(keys: &[RecordKey]) -> Heavy {
        let wants = |key| keys.is_empty() || keys.contains(&key);
        Heavy {
            stdout: wants(RecordKey::Stdout),
            stderr: wants(RecordKey::Stderr),
            value: wants(RecordKey::Value),
        }
    }
}

/// The page size a filter asks for, within the store's bounds.
pub(crate) fn page_limit(filter: &TaskFilter) -> usize {
    filter.limit.unwrap_or(PAGE_RECORDS).clamp(1, PAGE_RECORDS)
}

/// What a record costs in a page, roughly: its heavy fields and the rest.
pub(crate) fn record_bytes(record: &TaskRecord) -> usize {
    256 + record.stdout.as_ref().map_or(0, Vec::len)
        + record.stderr.as_ref().map_or(0, Vec::len)
        + record
            .value
            .as_ref()
            .and_then(|v| grid_proto::encode(v).ok())
            .map_or(0, |b| b.len())
}

/// The pending ids of `purge`, which refuse it: purging pending tasks is an
/// error (ipyparallel's hub refuses too).
pub(crate) fn refuse_pending(pending: &[MsgId]) -> Result<(), StoreError> {
    if pending.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = pending.iter().map(ToString::to_string).collect();
    Err(StoreError::Refused(format!(
        "cannot purge tasks that are not done: {}",
        ids.join(", ")
    )))
}

/// A record of a finished task, from its reply and its submission's
/// dependencies (`meta`): the fields the reply's result carries are decoded
/// from it (when it is inline; a result held as a blob leaves them empty
/// and names the blob).
pub(crate) fn record_of_reply(
    reply: &Reply,
    meta: Option<&NewTask>,
    received: Option<Timestamp>,
    heavy: Heavy,
) -> TaskRecord {
    let task = NewTask {
        after: meta.and_then(|m| m.after.clone()),
        follow: meta.and_then(|m| m.follow.clone()),
        ..NewTask::of_reply(reply)
    };
    let mut record = TaskRecord {
        received,
        // A result held as a blob is not fetched: when the controller got
        // it stands for when it completed.
        completed: received,
        status: Some(reply.status),
        result_blob: reply.result.blob(),
        ..record_of_pending(&task, reply.attempts)
    };
    if let Ok(result) = reply.result.decode() {
        record.started = Some(result.started);
        record.completed = Some(result.completed);
        record.fingerprint = Some(result.fingerprint);
        if heavy.stdout {
            record.stdout = Some(result.stdout);
        }
        if heavy.stderr {
            record.stderr = Some(result.stderr);
        }
        match result.outcome {
            grid_proto::Outcome::Ok(value) => {
                if heavy.value {
                    record.value = Some(value);
                }
            }
            grid_proto::Outcome::Err(error) => record.error = Some(error),
        }
    }
    record
}

/// A pending task's record.
pub(crate) fn record_of_pending(task: &NewTask, attempts: u32) -> TaskRecord {
    TaskRecord {
        msg_id: task.msg_id,
        client: task.client,
        submitted: task.submitted,
        started: None,
        completed: None,
        received: None,
        engine: task.engine,
        status: None,
        error: None,
        stdout: None,
        stderr: None,
        after: task.after.clone(),
        follow: task.follow.clone(),
        fingerprint: None,
        attempts,
        value: None,
        result_blob: None,
    }
}
