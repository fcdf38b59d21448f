//! [`SqliteStore`]: the task store in an SQLite file, so that every task's
//! record outlives the controller and can be read with SQL.
//!
//! The hub never waits for the disk. The recording calls only queue an op
//! on a bounded channel (a full channel blocks the caller: back-pressure,
//! bounded memory); a writer thread of the store's own, the only owner of
//! the connection, takes what is queued and applies it in one transaction
//! per batch. A submission is held in memory for up to a second ([`HOLD`])
//! before it is written: when its result comes within it, as it does for
//! most tasks, the record is written once, whole, rather than inserted and
//! then rewritten with every index. A query writes everything held first.
//! A crash loses what is held and what is queued, as it loses the last
//! batch: the restarted hub then does not know those tasks, and their
//! clients send them again (see the hub's docs). Queries travel the same channel and are answered by the same
//! thread once it has committed the writes queued before them, so each
//! sees every call made before it. The writer, not the hub, decodes
//! results. It must never stop on a bad write: it logs it and goes on.
//! Dropping the store writes what is queued and stops the thread.
//!
//! # Schema
//!
//! Version 1 (`PRAGMA user_version`). The file is in WAL mode, so the
//! `sqlite3` shell can read it while a controller writes; a file of a newer
//! version, or an SQLite file of something else, is refused.
//!
//! ```sql
//! CREATE TABLE tasks (
//!     msg_id      TEXT PRIMARY KEY,
//!     client      TEXT NOT NULL,
//!     submitted   INTEGER NOT NULL,
//!     started     INTEGER,
//!     completed   INTEGER,
//!     received    INTEGER,
//!     engine_id   INTEGER,
//!     engine_uuid TEXT,
//!     status      TEXT,
//!     error_kind  TEXT,
//!     error       TEXT,
//!     stdout,
//!     stderr,
//!     after       TEXT,
//!     follow      TEXT,
//!     fingerprint TEXT,
//!     fuel        INTEGER,
//!     attempts    INTEGER NOT NULL DEFAULT 0,
//!     value       TEXT,
//!     result_blob TEXT,
//!     reply       BLOB
//! );
//! CREATE INDEX tasks_status ON tasks (status);
//! CREATE INDEX tasks_completed ON tasks (completed);
//! CREATE INDEX tasks_received ON tasks (received);
//! CREATE INDEX tasks_engine_id ON tasks (engine_id);
//! CREATE INDEX tasks_client ON tasks (client);
//! CREATE TABLE engines (
//!     id         INTEGER PRIMARY KEY,
//!     uuid       TEXT NOT NULL UNIQUE,
//!     host       TEXT NOT NULL,
//!     registered INTEGER NOT NULL
//! );
//! ```
//!
//! - `msg_id`, `client`, `engine_uuid`, `engines.uuid`: uuids as
//!   hyphenated lowercase text. Msg ids are UUIDv7: sorting by `msg_id`
//!   sorts by submission.
//! - `submitted`, `started`, `completed`, `received`, `registered`:
//!   microseconds since the Unix epoch; NULL until known. `received` is
//!   when the controller recorded the result (what a purge by time
//!   compares).
//! - `status`: NULL while pending, else `ok`, `error` or `aborted`.
//!   `error_kind` is the kind of failure (`trap`, `limit`, `aborted`,
//!   `engine_died`, ...), `error` the error on one line.
//! - `stdout`, `stderr`: the captured output, TEXT when it is valid
//!   UTF-8, else BLOB.
//! - `after`, `follow`: the dependency as JSON,
//!   `{"msg_ids": [...], "all": true, "success": true, "failure": false}`.
//! - `fingerprint`: the fingerprint's digest (one sha256 over its fields,
//!   hex: equal for equal work and run, see `Fingerprint::digest`); its
//!   fields are in `reply` (db_query returns them). `fuel`: the fuel the
//!   task consumed, on metering engines.
//! - `attempts`: how many times the task was sent to an engine (0 when
//!   not counted).
//! - `value`: the value as JSON (bytes as an array of numbers, integers
//!   past 64 bits as strings).
//! - `result_blob`: the sha256 (hex) of a result held in the blob store;
//!   the controller does not fetch it, so `started`, `error`, `stdout`,
//!   `stderr`, `fingerprint`, `fuel` and `value` stay NULL and `completed` is
//!   `received`.
//! - `reply`: the CBOR-encoded reply, what `get_result` answers. Records
//!   are read back from it (the other columns are for people and SQL).
//! - `engines`: each engine id the controller gave, with the uuid and host
//!   of its latest holder and when it registered.
//!
//! For instance `sqlite3 tasks.db "SELECT error_kind, count(*) FROM tasks
//! WHERE status = 'error' GROUP BY 1"`. Times past `i64::MAX` microseconds
//! (the year 294247) are stored as `i64::MAX`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use grid_proto::{
    BlobHash, ClientId, Dependency, EngineId, EngineInfo, EngineRef, EngineUuid, Fingerprint,
    MsgId, Purge, RecordStatus, Reply, TaskFilter, TaskRecord, Timestamp,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

use super::{
    Heavy, NewTask, PAGE_BYTES, StoreError, TaskStore, page_limit, record_bytes, record_of_pending,
    record_of_reply, refuse_pending,
};

/// The schema's version, in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// The schema of version 1, as the module docs show it (a test keeps
/// them equal).
const SCHEMA: &str = "\
CREATE TABLE tasks (
    msg_id      TEXT PRIMARY KEY,
    client      TEXT NOT NULL,
    submitted   INTEGER NOT NULL,
    started     INTEGER,
    completed   INTEGER,
    received    INTEGER,
    engine_id   INTEGER,
    engine_uuid TEXT,
    status      TEXT,
    error_kind  TEXT,
    error       TEXT,
    stdout,
    stderr,
    after       TEXT,
    follow      TEXT,
    fingerprint TEXT,
    fuel        INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    value       TEXT,
    result_blob TEXT,
    reply       BLOB
);
CREATE INDEX tasks_status ON tasks (status);
CREATE INDEX tasks_completed ON tasks (completed);
CREATE INDEX tasks_received ON tasks (received);
CREATE INDEX tasks_engine_id ON tasks (engine_id);
CREATE INDEX tasks_client ON tasks (client);
CREATE TABLE engines (
    id         INTEGER PRIMARY KEY,
    uuid       TEXT NOT NULL UNIQUE,
    host       TEXT NOT NULL,
    registered INTEGER NOT NULL
);
";

/// Ops queued for the writer at most; a caller beyond waits.
const QUEUE_OPS: usize = 16_384;
/// Ops applied in one transaction at most.
const BATCH_OPS: usize = 4096;
/// The connection's page cache, in KiB. Twice SQLite's default, which a
/// batch of records spills; 16 MiB was no faster (store-bench, 2026-12-02:
/// a million tasks at 24,800 tasks/s against 28,800 with 4 MiB) and took
/// the controller's RSS from 34 to 46 MiB as it filled.
const CACHE_KIB: i64 = 4 << 10;
/// How long a statement waits for another connection's lock (a `sqlite3`
/// shell writing, a checkpoint) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SUBMITTED: &str = "\
INSERT INTO tasks (msg_id, client, submitted, engine_id, engine_uuid, after, follow)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (msg_id) DO NOTHING";

const ASSIGNED: &str = "\
UPDATE tasks SET engine_id = ?2, engine_uuid = ?3, attempts = ?4
WHERE msg_id = ?1 AND status IS NULL";

/// A result: a new record (with the `after` and `follow` of its submission
/// when it comes in the same batch), or a pending one completed (its
/// `after` and `follow` kept); a done one is left as it is (the first
/// result wins).
const FINISHED: &str = "\
INSERT INTO tasks (msg_id, client, submitted, started, completed, received, engine_id,
    engine_uuid, status, error_kind, error, stdout, stderr, fingerprint, fuel, attempts,
    value, result_blob, reply, after, follow)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
    ?19, ?20, ?21)
ON CONFLICT (msg_id) DO UPDATE SET
    client = excluded.client, submitted = excluded.submitted, started = excluded.started,
    completed = excluded.completed, received = excluded.received,
    engine_id = excluded.engine_id, engine_uuid = excluded.engine_uuid,
    status = excluded.status, error_kind = excluded.error_kind, error = excluded.error,
    stdout = excluded.stdout, stderr = excluded.stderr, fingerprint = excluded.fingerprint,
    fuel = excluded.fuel, attempts = excluded.attempts, value = excluded.value, result_blob = excluded.result_blob,
    reply = excluded.reply
WHERE tasks.status IS NULL";

/// An engine id given again replaces its row, and so does a uuid
/// registering under another id.
const ENGINE: &str = "\
INSERT OR REPLACE INTO engines (id, uuid, host, registered) VALUES (?1, ?2, ?3, ?4)";

/// The columns a record is read back from (see [`Stored`]).
const RECORD_COLUMNS: &str = "\
msg_id, client, submitted, engine_id, engine_uuid, status, after, follow, attempts, received, \
reply";

/// The task store in an SQLite file. See the module docs.
pub struct SqliteStore {
    path: PathBuf,
    /// `None` once dropping: the writer then applies what is queued and stops.
    ops: Option<SyncSender<Op>>,
    writer: Option<JoinHandle<()>>,
    queued: Arc<Queued>,
    /// The writer is gone (it cannot be, short of a bug): said once.
    told_stopped: bool,
}

/// What an [`SqliteStore`] holds in memory, not written yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Writes queued for the writer.
    pub in_memory: usize,
    /// Bytes of the results among them.
    pub bytes_in_memory: usize,
}

/// The writes waiting in the channel, for [`SqliteStore::stats`].
#[derive(Debug, Default)]
struct Queued {
    ops: AtomicUsize,
    /// Bytes of the results queued.
    bytes: AtomicUsize,
}

/// What the writer is asked to do, in the order the hub asks it.
enum Op {
    Submitted(NewTask),
    Assigned {
        msg_id: MsgId,
        engine: EngineRef,
        attempts: u32,
    },
    Finished {
        reply: Box<Reply>,
        received: Timestamp,
    },
    Engine {
        info: EngineInfo,
        registered: Timestamp,
    },
    /// A query: it answers on its own channel, after the writes before it
    /// are committed.
    Ask(Box<dyn FnOnce(&Db) + Send>),
}

impl Op {
    /// The result bytes it holds in memory.
    fn bytes(&self) -> usize {
        match self {
            Op::Finished { reply, .. } => reply.result.len(),
            _ => 0,
        }
    }
}

impl SqliteStore {
    /// Writes what is not written yet, and waits until it is.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.ask(|_| Ok(()))
    }

    /// What it holds in memory, not written yet.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            in_memory: self.queued.ops.load(Ordering::Relaxed),
            bytes_in_memory: self.queued.bytes.load(Ordering::Relaxed),
        }
    }

    /// Opens the store in `path`, creating the file and its schema if
    /// absent, and starts its writer thread.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let db = Db::open(path)?;
        let queued = Arc::new(Queued::default());
        let (ops, receiver) = mpsc::sync_channel(QUEUE_OPS);
        let writer_queued = Arc::clone(&queued);
        let writer = std::thread::Builder::new()
            .name("grid-task-store".into())
            .spawn(move || write_until_closed(db, receiver, &writer_queued))
            .map_err(|e| StoreError::Sqlite {
                path: path.display().to_string(),
                message: format!("cannot start its writer thread: {e}"),
            })?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            ops: Some(ops),
            writer: Some(writer),
            queued,
            told_stopped: false,
        })
    }

    /// Queues a write; never fails (a store that cannot write says so in
    /// the log).
    fn record(&mut self, op: Op) {
        let bytes = op.bytes();
        self.queued.ops.fetch_add(1, Ordering::Relaxed);
        self.queued.bytes.fetch_add(bytes, Ordering::Relaxed);
        let sent = self.ops.as_ref().is_some_and(|ops| ops.send(op).is_ok());
        if !sent {
            self.queued.ops.fetch_sub(1, Ordering::Relaxed);
            self.queued.bytes.fetch_sub(bytes, Ordering::Relaxed);
            if !self.told_stopped {
                self.told_stopped = true;
                tracing::warn!(
                    path = %self.path.display(),
                    "the task store's writer stopped: records are no longer written"
                );
            }
        }
    }

    /// Asks the writer `question` and waits for its answer.
    fn ask<T: Send + 'static>(
        &self,
        question: impl FnOnce(&Db) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = mpsc::sync_channel(1);
        let op = Op::Ask(Box::new(move |db: &Db| {
            // The asker waits on `answered`; it cannot have gone.
            let _ = answer.send(question(db));
        }));
        let ops = self.ops.as_ref().ok_or(StoreError::Stopped)?;
        ops.send(op).map_err(|_| StoreError::Stopped)?;
        answered.recv().map_err(|_| StoreError::Stopped)?
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("queued", &self.queued.ops.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel: the writer applies everything queued, then
        // finds it closed and stops.
        self.ops = None;
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::warn!(
                path = %self.path.display(),
                "the task store's writer panicked: the last records may not be written"
            );
        }
    }
}

impl TaskStore for SqliteStore {
    fn submitted(&mut self, task: NewTask) {
        self.record(Op::Submitted(task));
    }

    fn assigned(&mut self, msg_id: MsgId, engine: EngineRef, attempts: u32) {
        self.record(Op::Assigned {
            msg_id,
            engine,
            attempts,
        });
    }

    fn finished(&mut self, reply: &Reply, received: Timestamp) {
        self.record(Op::Finished {
            reply: Box::new(reply.clone()),
            received,
        });
    }

    fn engine_registered(&mut self, info: &EngineInfo) {
        self.record(Op::Engine {
            info: info.clone(),
            registered: Timestamp::now(),
        });
    }

    fn results(&mut self, msg_ids: &[MsgId]) -> Result<Vec<Reply>, StoreError> {
        let msg_ids = msg_ids.to_vec();
        self.ask(move |db| db.results(&msg_ids))
    }

    fn query(
        &mut self,
        filter: &TaskFilter,
        heavy: Heavy,
    ) -> Result<(Vec<TaskRecord>, bool), StoreError> {
        let filter = filter.clone();
        self.ask(move |db| db.query(&filter, heavy))
    }

    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError> {
        let purge = purge.clone();
        self.ask(move |db| db.purge(&purge))
    }

    fn engines(&mut self) -> Result<Vec<EngineInfo>, StoreError> {
        self.ask(Db::engines)
    }

    fn unfinished(&mut self) -> Result<Vec<TaskRecord>, StoreError> {
        self.ask(Db::unfinished)
    }

    fn result_blobs(&mut self) -> Result<HashSet<BlobHash>, StoreError> {
        self.ask(Db::result_blobs)
    }

    fn keeps(&self) -> usize {
        // Everything, until purged.
        usize::MAX
    }
}

/// The writer thread: a batch at a time until the store is dropped.
fn write_until_closed(db: Db, ops: Receiver<Op>, queued: &Queued) {
    let mut batch = Vec::with_capacity(BATCH_OPS);
    let mut held = Held::default();
    loop {
        // Wake up for held submissions coming of age, else only for ops;
        // either fails once the store dropped its sender and every op
        // queued before was taken.
        let op = match held.order.front() {
            None => match ops.recv() {
                Ok(op) => Some(op),
                Err(_) => break,
            },
            Some((since, _)) => {
                let wait = (*since + HOLD).saturating_duration_since(Instant::now());
                match ops.recv_timeout(wait) {
                    Ok(op) => Some(op),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        if let Some(op) = op {
            batch.push(op);
            batch.extend(ops.try_iter().take(BATCH_OPS - 1));
        }
        db.apply(batch.drain(..), &mut held, queued);
    }
    // Closing: what is held goes to disk.
    db.apply(std::iter::empty(), &mut held.everything(), queued);
}

/// How long a submission is held back in memory, waiting for its result
/// to be written with it (see [`Db::write`]).
const HOLD: Duration = Duration::from_secs(1);

/// Submissions held back, by task, with their task's latest assignment,
/// and in the order they came (see [`Db::write`]).
#[derive(Default)]
struct Held {
    tasks: HashMap<MsgId, (NewTask, Option<(EngineRef, u32)>)>,
    /// Oldest first; ids written since are skipped when they come up.
    order: VecDeque<(Instant, MsgId)>,
    /// Write every one at the end of the batch, not only those held for
    /// [`HOLD`] (a query comes, or the store closes).
    all: bool,
}

impl Held {
    /// Everything held, for a store that closes.
    fn everything(&mut self) -> Held {
        Held {
            tasks: std::mem::take(&mut self.tasks),
            order: std::mem::take(&mut self.order),
            all: true,
        }
    }
}

/// Writes that failed in one batch, logged once for the batch.
#[derive(Default)]
struct Failures {
    count: usize,
    first: Option<String>,
}

impl Failures {
    fn note(&mut self, error: impl fmt::Display) {
        self.count += 1;
        self.first.get_or_insert_with(|| error.to_string());
    }

    fn log(self, path: &str) {
        if let Some(first) = self.first {
            tracing::warn!(
                path,
                failures = self.count,
                "the task store could not write some records: {first}"
            );
        }
    }
}

/// The connection, and every statement the store runs. Only the writer
/// thread holds it (and `open`, before the thread starts).
struct Db {
    conn: Connection,
    /// The file, for error messages.
    path: String,
}

impl Db {
    /// Opens (or creates) the file and its schema.
    fn open(path: &Path) -> Result<Db, StoreError> {
        let shown = path.display().to_string();
        let fail = |e: rusqlite::Error| StoreError::Sqlite {
            path: shown.clone(),
            message: e.to_string(),
        };
        let mut conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        // The first statement that reads the file: a file that is not a
        // database fails here.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %shown, %mode, "the task store could not use WAL mode");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail)?;
        // A batch's pages fit in the cache (see CACHE_KIB).
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(fail)?;
        conn.set_prepared_statement_cache_capacity(64);

        let schema = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let version: i64 = schema
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(fail)?;
        match version {
            0 => {
                let tables: i64 = schema
                    .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
                    .map_err(fail)?;
                if tables > 0 {
                    return Err(StoreError::Sqlite {
                        path: shown,
                        message: "an SQLite database of something else, not a Grid task store \
                                  (it has tables but no schema version)"
                            .into(),
                    });
                }
                schema.execute_batch(SCHEMA).map_err(fail)?;
                schema
                    .pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(fail)?;
            }
            SCHEMA_VERSION => {}
            newer => {
                return Err(StoreError::Sqlite {
                    path: shown,
                    message: format!(
                        "its schema is version {newer}, newer than this controller's \
                         ({SCHEMA_VERSION}): it was written by a newer Grid"
                    ),
                });
            }
        }
        schema.commit().map_err(fail)?;
        Ok(Db { conn, path: shown })
    }

    fn fail(&self, error: impl fmt::Display) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            message: error.to_string(),
        }
    }

    /// Applies a batch: its writes in one transaction, committed before
    /// each query (with every submission held), which is then answered;
    /// at the end, the submissions held for [`HOLD`] are written.
    fn apply(&self, batch: impl Iterator<Item = Op>, held: &mut Held, queued: &Queued) {
        let mut failures = Failures::default();
        let mut open = false;
        for op in batch {
            if let Op::Ask(answer) = op {
                if !held.tasks.is_empty() && !open {
                    open = self.begin(&mut failures);
                }
                self.release(held, None, &mut failures);
                if open {
                    self.commit(&mut failures);
                    open = false;
                }
                answer(self);
                continue;
            }
            queued.ops.fetch_sub(1, Ordering::Relaxed);
            queued.bytes.fetch_sub(op.bytes(), Ordering::Relaxed);
            if !open {
                open = self.begin(&mut failures);
            }
            if let Err(e) = self.write(op, held) {
                failures.note(e);
            }
        }
        let due = (!held.all)
            .then(|| Instant::now().checked_sub(HOLD))
            .flatten();
        let ripe = held.all
            || held
                .order
                .front()
                .is_some_and(|(t, _)| due.is_none_or(|d| *t <= d));
        if ripe {
            if !open {
                open = self.begin(&mut failures);
            }
            self.release(held, if held.all { None } else { due }, &mut failures);
        }
        if open {
            self.commit(&mut failures);
        }
        failures.log(&self.path);
    }

    /// Begins a transaction; without one the writes still go, one by one.
    fn begin(&self, failures: &mut Failures) -> bool {
        match self.conn.execute_batch("BEGIN") {
            Ok(()) => true,
            Err(e) => {
                failures.note(e);
                false
            }
        }
    }

    /// Writes the submissions held back (and their assignments): those
    /// held since `due` or before, or all of them.
    fn release(&self, held: &mut Held, due: Option<Instant>, failures: &mut Failures) {
        while let Some(&(since, msg_id)) = held.order.front() {
            if due.is_some_and(|due| since > due) {
                break;
            }
            held.order.pop_front();
            let Some((task, assigned)) = held.tasks.remove(&msg_id) else {
                continue;
            };
            let written = self.submitted(&task).and_then(|()| match assigned {
                Some((engine, attempts)) => self.assigned(task.msg_id, engine, attempts),
                None => Ok(()),
            });
            if let Err(e) = written {
                failures.note(e);
            }
        }
    }

    fn commit(&self, failures: &mut Failures) {
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            failures.note(format!("a batch of records was lost: {e}"));
            // A failed COMMIT may leave the transaction open: end it, so
            // that the next batch can begin.
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }

    /// Applies a write, or holds a submission back: when its result comes
    /// in the same batch, as it mostly does under load, the record is
    /// written once, whole, rather than inserted and then rewritten larger.
    /// Holding back changes nothing that can be seen: the submission (the
    /// first one of a task, later ones change nothing) is written before
    /// anything else about its task, or with its result, which overwrites
    /// all an assignment sets.
    fn write(&self, op: Op, held: &mut Held) -> Result<(), StoreError> {
        match op {
            Op::Submitted(task) => {
                if let std::collections::hash_map::Entry::Vacant(entry) =
                    held.tasks.entry(task.msg_id)
                {
                    held.order.push_back((Instant::now(), task.msg_id));
                    entry.insert((task, None));
                }
                Ok(())
            }
            Op::Assigned {
                msg_id,
                engine,
                attempts,
            } => match held.tasks.get_mut(&msg_id) {
                Some((_, assigned)) => {
                    *assigned = Some((engine, attempts));
                    Ok(())
                }
                None => self.assigned(msg_id, engine, attempts),
            },
            Op::Finished { reply, received } => {
                let submitted = held.tasks.remove(&reply.msg_id).map(|(task, _)| task);
                self.finished(&reply, received, submitted.as_ref())
            }
            Op::Engine { info, registered } => self.engine(&info, registered),
            Op::Ask(_) => Ok(()),
        }
    }

    /// The `after` and `follow` columns of a task.
    fn dependencies(&self, task: &NewTask) -> Result<[Option<String>; 2], StoreError> {
        let json = |dep: &Option<Dependency>| {
            dep.as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| self.fail(format!("task {}: {e}", task.msg_id)))
        };
        Ok([json(&task.after)?, json(&task.follow)?])
    }

    fn submitted(&self, task: &NewTask) -> Result<(), StoreError> {
        let [after, follow] = self.dependencies(task)?;
        let mut insert = self
            .conn
            .prepare_cached(SUBMITTED)
            .map_err(|e| self.fail(e))?;
        insert
            .execute(params![
                task.msg_id.to_string(),
                task.client.0.to_string(),
                micros(task.submitted),
                task.engine.map(|e| e.id.0),
                task.engine.map(|e| e.uuid.to_string()),
                after,
                follow,
            ])
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn assigned(&self, msg_id: MsgId, engine: EngineRef, attempts: u32) -> Result<(), StoreError> {
        let mut update = self
            .conn
            .prepare_cached(ASSIGNED)
            .map_err(|e| self.fail(e))?;
        update
            .execute(params![
                msg_id.to_string(),
                engine.id.0,
                engine.uuid.to_string(),
                attempts
            ])
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// A result, with its task's submission when it was held back.
    fn finished(
        &self,
        reply: &Reply,
        received: Timestamp,
        submitted: Option<&NewTask>,
    ) -> Result<(), StoreError> {
        let [after, follow] = match submitted {
            Some(task) => self.dependencies(task)?,
            None => [None, None],
        };
        // The columns come from the record a query would build, so that
        // SQL filters and records agree.
        let record = record_of_reply(reply, None, Some(received), Heavy::ALL);
        let encoded = grid_proto::encode(reply)
            .map_err(|e| self.fail(format!("task {}: {e}", reply.msg_id)))?;
        let mut upsert = self
            .conn
            .prepare_cached(FINISHED)
            .map_err(|e| self.fail(e))?;
        upsert
            .execute(params![
                reply.msg_id.to_string(),
                reply.client.0.to_string(),
                micros(record.submitted),
                record.started.map(micros),
                record.completed.map(micros),
                micros(received),
                record.engine.map(|e| e.id.0),
                record.engine.map(|e| e.uuid.to_string()),
                reply.status.to_string(),
                record.error.as_ref().map(|e| e.kind()),
                record.error.as_ref().map(|e| e.summary()),
                record.stdout.map(output),
                record.stderr.map(output),
                record.fingerprint.as_ref().map(Fingerprint::digest),
                record
                    .fingerprint
                    .as_ref()
                    .and_then(|f| f.fuel_used)
                    .map(saturating_i64),
                record.attempts,
                record.value.map(|v| v.to_json().to_string()),
                record.result_blob.map(|b| b.to_hex()),
                encoded,
                after,
                follow,
            ])
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn engine(&self, info: &EngineInfo, registered: Timestamp) -> Result<(), StoreError> {
        let mut upsert = self.conn.prepare_cached(ENGINE).map_err(|e| self.fail(e))?;
        upsert
            .execute(params![
                info.id.0,
                info.uuid.to_string(),
                info.host,
                micros(registered)
            ])
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn results(&self, msg_ids: &[MsgId]) -> Result<Vec<Reply>, StoreError> {
        let mut select = self
            .conn
            .prepare_cached("SELECT reply FROM tasks WHERE msg_id = ?1 AND status IS NOT NULL")
            .map_err(|e| self.fail(e))?;
        let mut replies = Vec::new();
        for msg_id in msg_ids {
            let stored: Option<Option<Vec<u8>>> = select
                .query_row([msg_id.to_string()], |row| row.get(0))
                .optional()
                .map_err(|e| self.fail(e))?;
            let Some(stored) = stored else { continue };
            let reply = stored
                .ok_or_else(|| "a done task without its reply".to_string())
                .and_then(|bytes| grid_proto::decode(&bytes).map_err(|e| format!("its reply: {e}")))
                .map_err(|e| self.fail(format!("task {msg_id}: {e}")))?;
            replies.push(reply);
        }
        Ok(replies)
    }

    fn query(
        &self,
        filter: &TaskFilter,
        heavy: Heavy,
    ) -> Result<(Vec<TaskRecord>, bool), StoreError> {
        let limit = page_limit(filter);
        let select = Select::of(filter, limit);
        let mut statement = self
            .conn
            .prepare_cached(&select.sql)
            .map_err(|e| self.fail(e))?;
        let mut rows = statement
            .query(params_from_iter(select.args))
            .map_err(|e| self.fail(e))?;
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            if page.len() == limit || bytes >= PAGE_BYTES {
                more = true;
                break;
            }
            let record = self.record(row, heavy)?;
            bytes += record_bytes(&record);
            page.push(record);
        }
        Ok((page, more))
    }

    fn purge(&self, purge: &Purge) -> Result<u64, StoreError> {
        let sql = |e| self.fail(e);
        let count = match purge {
            Purge::All => self
                .conn
                .execute("DELETE FROM tasks WHERE status IS NOT NULL", [])
                .map_err(sql)?,
            Purge::Before(before) => self
                .conn
                .execute(
                    "DELETE FROM tasks WHERE status IS NOT NULL AND received < ?1",
                    [micros(*before)],
                )
                .map_err(sql)?,
            Purge::Ids(msg_ids) => {
                let purge = self.conn.unchecked_transaction().map_err(sql)?;
                let mut pending = Vec::new();
                {
                    let mut is_pending = purge
                        .prepare_cached("SELECT 1 FROM tasks WHERE msg_id = ?1 AND status IS NULL")
                        .map_err(sql)?;
                    for msg_id in msg_ids {
                        if is_pending.exists([msg_id.to_string()]).map_err(sql)? {
                            pending.push(*msg_id);
                        }
                    }
                }
                refuse_pending(&pending)?;
                let mut count = 0;
                {
                    let mut delete = purge
                        .prepare_cached(
                            "DELETE FROM tasks WHERE msg_id = ?1 AND status IS NOT NULL",
                        )
                        .map_err(sql)?;
                    for msg_id in msg_ids {
                        count += delete.execute([msg_id.to_string()]).map_err(sql)?;
                    }
                }
                purge.commit().map_err(sql)?;
                count
            }
        };
        Ok(count as u64)
    }

    fn engines(&self) -> Result<Vec<EngineInfo>, StoreError> {
        let mut select = self
            .conn
            .prepare_cached("SELECT id, uuid, host FROM engines ORDER BY id")
            .map_err(|e| self.fail(e))?;
        let mut rows = select.query([]).map_err(|e| self.fail(e))?;
        let mut engines = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let read = || -> rusqlite::Result<(i64, String, String)> {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            };
            let (id, uuid, host) = read().map_err(|e| self.fail(e))?;
            let info = engine_ref(Some(id), Some(&uuid))
                .and_then(|e| e.ok_or_else(|| "no engine".to_string()))
                .map(|e| EngineInfo {
                    id: e.id,
                    uuid: e.uuid,
                    host,
                })
                .map_err(|e| self.fail(format!("engine {id}: {e}")))?;
            engines.push(info);
        }
        Ok(engines)
    }

    fn result_blobs(&self) -> Result<HashSet<BlobHash>, StoreError> {
        let mut select = self
            .conn
            .prepare_cached("SELECT result_blob FROM tasks WHERE result_blob IS NOT NULL")
            .map_err(|e| self.fail(e))?;
        let mut rows = select.query([]).map_err(|e| self.fail(e))?;
        let mut blobs = HashSet::new();
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let hex: String = row.get(0).map_err(|e| self.fail(e))?;
            match hex.parse::<BlobHash>() {
                Ok(hash) => {
                    blobs.insert(hash);
                }
                Err(e) => tracing::warn!(blob = %hex, error = %e, "a malformed result_blob"),
            }
        }
        Ok(blobs)
    }

    fn unfinished(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let mut select = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM tasks WHERE status IS NULL ORDER BY msg_id"
            ))
            .map_err(|e| self.fail(e))?;
        let mut rows = select.query([]).map_err(|e| self.fail(e))?;
        let mut records = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            records.push(self.record(row, Heavy::NONE)?);
        }
        Ok(records)
    }

    /// A record from a row of [`RECORD_COLUMNS`].
    fn record(&self, row: &rusqlite::Row<'_>, heavy: Heavy) -> Result<TaskRecord, StoreError> {
        let stored = Stored::read(row).map_err(|e| self.fail(e))?;
        let msg_id = stored.msg_id.clone();
        stored
            .record(heavy)
            .map_err(|e| self.fail(format!("task {msg_id}: {e}")))
    }
}

/// A query's SQL and its arguments.
struct Select {
    sql: String,
    args: Vec<SqlValue>,
}

impl Select {
    /// The rows `filter` selects, sorted by msg id, one more than `limit`
    /// (to know whether there are more).
    fn of(filter: &TaskFilter, limit: usize) -> Select {
        let mut select = Select {
            sql: format!("SELECT {RECORD_COLUMNS} FROM tasks WHERE 1"),
            args: Vec::new(),
        };
        // Lists travel as one JSON array each: no limit on their length,
        // and one statement (cached) per shape of filter.
        if let Some(msg_ids) = &filter.msg_ids {
            select.list("msg_id", msg_ids.iter().map(ToString::to_string));
        }
        if let Some(statuses) = &filter.status {
            select.sql.push_str(" AND ");
            select.sql.push_str(&status_condition(statuses));
        }
        if let Some(engines) = &filter.engines {
            select.list("engine_id", engines.iter().map(|e| e.0));
        }
        if let Some(clients) = &filter.clients {
            select.list("client", clients.iter().map(|c| c.0.to_string()));
        }
        select.range("submitted", filter.submitted.gt, filter.submitted.lt);
        select.range("completed", filter.completed.gt, filter.completed.lt);
        if let Some(after) = filter.after {
            select.condition("msg_id > ?", after.to_string().into());
        }
        select.sql.push_str(" ORDER BY msg_id LIMIT ?");
        select.args.push(SqlValue::Integer(
            i64::try_from(limit + 1).unwrap_or(i64::MAX),
        ));
        select
    }

    fn condition(&mut self, sql: &str, arg: SqlValue) {
        self.sql.push_str(" AND ");
        self.sql.push_str(sql);
        self.args.push(arg);
    }

    fn list<T: Into<serde_json::Value>>(&mut self, column: &str, items: impl Iterator<Item = T>) {
        let items = serde_json::Value::Array(items.map(Into::into).collect());
        self.condition(
            &format!("{column} IN (SELECT value FROM json_each(?))"),
            SqlValue::Text(items.to_string()),
        );
    }

    fn range(&mut self, column: &str, gt: Option<Timestamp>, lt: Option<Timestamp>) {
        if let Some(gt) = gt {
            self.condition(&format!("{column} > ?"), micros(gt).into());
        }
        if let Some(lt) = lt {
            self.condition(&format!("{column} < ?"), micros(lt).into());
        }
    }
}

/// The SQL that selects these statuses (a fixed set of names, written
/// into the statement).
fn status_condition(statuses: &[RecordStatus]) -> String {
    let mut any = Vec::new();
    if statuses.contains(&RecordStatus::Pending) {
        any.push("status IS NULL".to_string());
    }
    let done: Vec<String> = [RecordStatus::Ok, RecordStatus::Error, RecordStatus::Aborted]
        .into_iter()
        .filter(|s| statuses.contains(s))
        .map(|s| format!("'{}'", s.name()))
        .collect();
    if !done.is_empty() {
        any.push(format!("status IN ({})", done.join(", ")));
    }
    if any.is_empty() {
        return "0".into();
    }
    format!("({})", any.join(" OR "))
}

/// A row of [`RECORD_COLUMNS`], as stored.
struct Stored {
    msg_id: String,
    client: String,
    submitted: i64,
    engine_id: Option<i64>,
    engine_uuid: Option<String>,
    status: Option<String>,
    after: Option<String>,
    follow: Option<String>,
    attempts: i64,
    received: Option<i64>,
    reply: Option<Vec<u8>>,
}

impl Stored {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
        Ok(Stored {
            msg_id: row.get(0)?,
            client: row.get(1)?,
            submitted: row.get(2)?,
            engine_id: row.get(3)?,
            engine_uuid: row.get(4)?,
            status: row.get(5)?,
            after: row.get(6)?,
            follow: row.get(7)?,
            attempts: row.get(8)?,
            received: row.get(9)?,
            reply: row.get(10)?,
        })
    }

    /// The record, as `record_of_reply` or `record_of_pending` made it when
    /// the task was recorded: a done task's from its reply.
    fn record(self, heavy: Heavy) -> Result<TaskRecord, String> {
        let after = self.after.as_deref().map(dependency).transpose()?;
        let follow = self.follow.as_deref().map(dependency).transpose()?;
        if self.status.is_some() {
            let bytes = self.reply.ok_or("a done task without its reply")?;
            let reply: Reply = grid_proto::decode(&bytes).map_err(|e| format!("its reply: {e}"))?;
            let received = self.received.map(timestamp).transpose()?;
            let meta = NewTask {
                after,
                follow,
                ..NewTask::of_reply(&reply)
            };
            return Ok(record_of_reply(&reply, Some(&meta), received, heavy));
        }
        let task = NewTask {
            msg_id: MsgId(uuid(&self.msg_id)?),
            client: ClientId(uuid(&self.client)?),
            submitted: timestamp(self.submitted)?,
            engine: engine_ref(self.engine_id, self.engine_uuid.as_deref())?,
            after,
            follow,
        };
        let attempts =
            u32::try_from(self.attempts).map_err(|_| format!("attempts {}", self.attempts))?;
        Ok(record_of_pending(&task, attempts))
    }
}

/// A time as stored: microseconds, within SQLite's integers.
fn micros(t: Timestamp) -> i64 {
    saturating_i64(t.as_micros())
}

fn timestamp(micros: i64) -> Result<Timestamp, String> {
    u64::try_from(micros)
        .map(Timestamp)
        .map_err(|_| format!("a time before 1970: {micros}"))
}

fn uuid(text: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(text).map_err(|e| format!("{text:?} is not a uuid: {e}"))
}

fn dependency(json: &str) -> Result<Dependency, String> {
    serde_json::from_str(json).map_err(|e| format!("dependency {json:?}: {e}"))
}

fn engine_ref(id: Option<i64>, uuid_text: Option<&str>) -> Result<Option<EngineRef>, String> {
    let (Some(id), Some(uuid_text)) = (id, uuid_text) else {
        return Ok(None);
    };
    Ok(Some(EngineRef {
        id: EngineId(u32::try_from(id).map_err(|_| format!("engine id {id}"))?),
        uuid: EngineUuid(uuid(uuid_text)?),
    }))
}

/// Captured output as stored: text when it is UTF-8.
fn output(bytes: Vec<u8>) -> SqlValue {
    match String::from_utf8(bytes) {
        Ok(text) => SqlValue::Text(text),
        Err(e) => SqlValue::Blob(e.into_bytes()),
    }
}

/// An SQLite integer: past `i64::MAX`, `i64::MAX`.
fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
