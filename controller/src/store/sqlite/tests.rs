//! Tests of the SQLite store, on real files: its schema is the one its docs
//! show, it answers every call as the memory store does (a seeded random
//! walk over both), it batches, it survives a reopen, it refuses files it
//! cannot use with a clear error, and other connections can read it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use grid_proto::{
    BlobHash, Body, EngineId, Frame, LimitKind, Outcome, Status, TaskError, TaskResult, TimeRange,
    TrapKind, Value,
};
use tempfile::TempDir;

use super::*;
use crate::store::MemoryStore;
use grid_proto::RecordKey;

fn temp_dir() -> TempDir {
    TempDir::new().expect("a temporary directory")
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("tasks.db")
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).expect("the store opens")
}

fn engine(id: u32) -> EngineRef {
    EngineRef {
        id: EngineId(id),
        uuid: EngineUuid::new(),
    }
}

fn task(msg_id: MsgId, client: ClientId) -> NewTask {
    NewTask {
        msg_id,
        client,
        submitted: Timestamp(100),
        engine: None,
        after: None,
        follow: None,
    }
}

/// A reply with the value 3 (as the hub gets them).
fn ok_reply(msg_id: MsgId, client: ClientId, engine: EngineRef) -> Reply {
    Reply::new(
        client,
        Timestamp(100),
        Some(engine),
        &TaskResult::immediate(msg_id, Outcome::Ok(Value::from(3))),
    )
    .expect("a reply")
}

fn reply_with(msg_id: MsgId, client: ClientId, outcome: Outcome, stdout: &[u8]) -> Reply {
    let mut result = TaskResult::immediate(msg_id, outcome);
    result.stdout = stdout.to_vec();
    result.started = Timestamp(200);
    result.completed = Timestamp(300);
    Reply::new(client, Timestamp(100), Some(engine(1)), &result).expect("a reply")
}

/// Every record `filter` selects, page after page.
fn every_record(store: &mut dyn TaskStore, filter: &TaskFilter) -> Vec<TaskRecord> {
    let mut records = Vec::new();
    let mut filter = filter.clone();
    loop {
        let (page, more) = store.query(&filter, Heavy::ALL).expect("a query");
        records.extend(page);
        if !more {
            return records;
        }
        filter.after = records.last().map(|r| r.msg_id);
    }
}

fn sqlite_error(result: Result<SqliteStore, StoreError>) -> (String, String) {
    match result {
        Err(StoreError::Sqlite { path, message }) => (path, message),
        other => panic!("expected an SQLite error, got {other:?}"),
    }
}

#[test]
fn the_module_docs_show_the_schema() {
    let source = include_str!("../sqlite.rs");
    let docs: Vec<&str> = source
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect();
    let start = docs
        .iter()
        .position(|l| *l == "```sql")
        .expect("a sql block")
        + 1;
    let end = start
        + docs[start..]
            .iter()
            .position(|l| *l == "```")
            .expect("its end");
    let shown: String = docs[start..end].iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(shown, SCHEMA);
}

#[test]
fn the_readme_shows_the_schema() {
    let readme = include_str!("../../../../README.md");
    let (_, after) = readme
        .split_once("```sql\nCREATE TABLE tasks")
        .expect("the README has the schema");
    let (block, _) = after.split_once("```").expect("its end");
    assert_eq!(format!("CREATE TABLE tasks{block}"), SCHEMA);
}

#[test]
fn the_schema_is_the_documented_one() {
    let dir = temp_dir();
    let path = db_path(&dir);
    drop(open(&path));
    let conn = Connection::open(&path).unwrap();
    let columns = |table: &str| -> Vec<(String, String, bool, Option<String>, bool)> {
        let mut info = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap();
        info.query_map([], |r| {
            Ok((
                r.get(1)?,
                r.get(2)?,
                r.get::<_, i64>(3)? != 0,
                r.get(4)?,
                r.get::<_, i64>(5)? != 0,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let column = |name: &str, ty: &str, not_null: bool, default: Option<&str>, pk: bool| {
        (
            name.to_string(),
            ty.to_string(),
            not_null,
            default.map(String::from),
            pk,
        )
    };
    assert_eq!(
        columns("tasks"),
        vec![
            column("msg_id", "TEXT", false, None, true),
            column("client", "TEXT", true, None, false),
            column("submitted", "INTEGER", true, None, false),
            column("started", "INTEGER", false, None, false),
            column("completed", "INTEGER", false, None, false),
            column("received", "INTEGER", false, None, false),
            column("engine_id", "INTEGER", false, None, false),
            column("engine_uuid", "TEXT", false, None, false),
            column("status", "TEXT", false, None, false),
            column("error_kind", "TEXT", false, None, false),
            column("error", "TEXT", false, None, false),
            column("stdout", "", false, None, false),
            column("stderr", "", false, None, false),
            column("after", "TEXT", false, None, false),
            column("follow", "TEXT", false, None, false),
            column("fingerprint", "TEXT", false, None, false),
            column("fuel", "INTEGER", false, None, false),
            column("attempts", "INTEGER", true, Some("0"), false),
            column("value", "TEXT", false, None, false),
            column("result_blob", "TEXT", false, None, false),
            column("reply", "BLOB", false, None, false),
        ]
    );
    assert_eq!(
        columns("engines"),
        vec![
            column("id", "INTEGER", false, None, true),
            column("uuid", "TEXT", true, None, false),
            column("host", "TEXT", true, None, false),
            column("registered", "INTEGER", true, None, false),
        ]
    );
    let mut indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            "tasks_client",
            "tasks_completed",
            "tasks_engine_id",
            "tasks_received",
            "tasks_status"
        ]
    );
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Random calls, the same to both stores, and their answers compared.
struct Walk {
    rng: fastrand::Rng,
    ids: Vec<MsgId>,
    clients: Vec<ClientId>,
    engines: Vec<EngineRef>,
}

impl Walk {
    fn new(seed: u64) -> Walk {
        Walk {
            rng: fastrand::Rng::with_seed(seed),
            // Made in order, so they sort as made; a few are never used
            // (unknown ids in queries).
            ids: (0..40).map(|_| MsgId::new()).collect(),
            clients: (0..3).map(|_| ClientId::new()).collect(),
            engines: (0..3).map(engine).collect(),
        }
    }

    fn time(&mut self) -> Timestamp {
        Timestamp(self.rng.u64(0..1000))
    }

    fn id(&mut self) -> MsgId {
        self.ids[self.rng.usize(..self.ids.len() - 4)]
    }

    fn some_ids(&mut self) -> Vec<MsgId> {
        let n = self.rng.usize(0..6);
        (0..n)
            .map(|_| self.ids[self.rng.usize(..self.ids.len())])
            .collect()
    }

    fn client(&mut self) -> ClientId {
        self.clients[self.rng.usize(..self.clients.len())]
    }

    fn engine(&mut self) -> EngineRef {
        self.engines[self.rng.usize(..self.engines.len())]
    }

    fn maybe<T>(&mut self, make: impl FnOnce(&mut Walk) -> T) -> Option<T> {
        self.rng.bool().then(|| make(self))
    }

    fn dependency(&mut self) -> Dependency {
        Dependency {
            msg_ids: self.some_ids(),
            all: self.rng.bool(),
            success: self.rng.bool(),
            failure: self.rng.bool(),
        }
    }

    fn new_task(&mut self) -> NewTask {
        NewTask {
            msg_id: self.id(),
            client: self.client(),
            submitted: self.time(),
            engine: self.maybe(Walk::engine),
            after: self.maybe(Walk::dependency),
            follow: self.maybe(Walk::dependency),
        }
    }

    fn value(&mut self) -> Value {
        match self.rng.u8(0..7) {
            0 => Value::Null,
            1 => Value::from(self.rng.i64(..)),
            2 => Value::Int(u64::MAX as i128),
            3 => Value::from(self.rng.f64()),
            4 => Value::from("text"),
            5 => Value::Bytes(vec![0, 255, 7]),
            _ => Value::Map(vec![(Value::from("a"), Value::from(vec![1, 2]))]),
        }
    }

    fn outcome(&mut self) -> Outcome {
        let error = match self.rng.u8(0..8) {
            0..3 => return Outcome::Ok(self.value()),
            3 => TaskError::Aborted,
            4 => TaskError::Trap {
                kind: TrapKind::Unreachable,
                message: "wasm trap:\n unreachable".into(),
                backtrace: vec![Frame {
                    func_index: 2,
                    func_name: Some("boom".into()),
                    offset: Some(42),
                }],
            },
            5 => TaskError::Limit {
                limit: LimitKind::Fuel,
                value: 1000,
            },
            6 => TaskError::Guest(self.value()),
            _ => TaskError::EngineDied(EngineId(2)),
        };
        Outcome::Err(error)
    }

    fn output(&mut self) -> Vec<u8> {
        match self.rng.u8(0..20) {
            0..8 => Vec::new(),
            8..14 => b"hello\nworld\n".to_vec(),
            14..19 => vec![b'a', 0xff, 0xfe, b'\n'],
            // Large enough that a few of them fill a page.
            _ => vec![b'x'; 150 << 10],
        }
    }

    fn reply(&mut self) -> Reply {
        let msg_id = self.id();
        let mut result = TaskResult::immediate(msg_id, self.outcome());
        result.stdout = self.output();
        result.stderr = self.output();
        result.started = self.time();
        result.completed = self.time();
        result.fingerprint.fuel_used = self.maybe(|w| w.rng.u64(..1000));
        result.fingerprint.seed = self.maybe(|w| w.rng.u64(..));
        result.fingerprint.module = grid_proto::ModuleHash::of(b"module");
        let engine = self.maybe(Walk::engine);
        let mut reply = Reply::new(self.client(), self.time(), engine, &result).unwrap();
        reply.attempts = self.rng.u32(0..3);
        if self.rng.u8(0..10) == 0 {
            reply.result = Body::from_blob(BlobHash::of(&self.rng.u64(..).to_le_bytes()));
        }
        reply
    }

    /// True once in three.
    fn sometimes(&mut self) -> bool {
        self.rng.u8(0..3) == 0
    }

    fn range(&mut self) -> TimeRange {
        TimeRange {
            gt: self.maybe(Walk::time),
            lt: self.maybe(Walk::time),
        }
    }

    fn filter(&mut self) -> TaskFilter {
        let mut filter = TaskFilter::new();
        if self.sometimes() {
            filter.msg_ids = Some(self.some_ids());
        }
        if self.sometimes() {
            let statuses = RecordStatus::ALL
                .into_iter()
                .filter(|_| self.rng.bool())
                .collect();
            filter.status = Some(statuses);
        }
        if self.sometimes() {
            let engines = (0..self.rng.usize(0..3))
                .map(|_| EngineId(self.rng.u32(0..4)))
                .collect();
            filter.engines = Some(engines);
        }
        if self.sometimes() {
            filter.clients = Some(vec![self.client()]);
        }
        if self.sometimes() {
            filter.submitted = self.range();
        }
        if self.sometimes() {
            filter.completed = self.range();
        }
        if self.sometimes() {
            filter.after = Some(self.ids[self.rng.usize(..self.ids.len())]);
        }
        if self.sometimes() {
            filter.limit = Some(self.rng.usize(0..8));
        }
        filter
    }

    fn keys(&mut self) -> Vec<RecordKey> {
        [RecordKey::Stdout, RecordKey::Stderr, RecordKey::Value]
            .into_iter()
            .filter(|_| self.rng.bool())
            .collect()
    }

    fn purge(&mut self) -> Purge {
        match self.rng.u8(0..6) {
            0 => Purge::All,
            1..4 => Purge::Ids(self.some_ids()),
            _ => Purge::Before(self.time()),
        }
    }
}

/// Runs `steps` random calls on both stores and compares every answer;
/// then reopens the file and compares again.
fn walk(seed: u64, steps: usize) {
    let dir = temp_dir();
    let path = db_path(&dir);
    let mut sqlite = open(&path);
    let mut memory = MemoryStore::new(usize::MAX, usize::MAX);
    let mut w = Walk::new(seed);
    for step in 0..steps {
        let at = format!("seed {seed}, step {step}");
        match w.rng.u8(0..100) {
            0..30 => {
                let task = w.new_task();
                memory.submitted(task.clone());
                sqlite.submitted(task);
            }
            30..42 => {
                let (msg_id, engine, attempts) = (w.id(), w.engine(), w.rng.u32(1..4));
                memory.assigned(msg_id, engine, attempts);
                sqlite.assigned(msg_id, engine, attempts);
            }
            42..70 => {
                let (reply, received) = (w.reply(), w.time());
                memory.finished(&reply, received);
                sqlite.finished(&reply, received);
            }
            70..75 => {
                let purge = w.purge();
                let answer =
                    |store: &mut dyn TaskStore| store.purge(&purge).map_err(|e| e.to_string());
                assert_eq!(answer(&mut sqlite), answer(&mut memory), "{at}: {purge:?}");
            }
            75..93 => {
                let (filter, keys) = (w.filter(), w.keys());
                assert_eq!(
                    sqlite.query(&filter, Heavy::of(&keys)).unwrap(),
                    memory.query(&filter, Heavy::of(&keys)).unwrap(),
                    "{at}: {filter:?} {keys:?}"
                );
            }
            93..97 => {
                let ids = w.some_ids();
                assert_eq!(
                    sqlite.results(&ids).unwrap(),
                    memory.results(&ids).unwrap(),
                    "{at}"
                );
            }
            _ => {
                let pending = TaskFilter::new().status_in([RecordStatus::Pending]);
                assert_eq!(
                    sqlite.unfinished().unwrap(),
                    every_record(&mut memory, &pending),
                    "{at}"
                );
            }
        }
    }
    let everything = every_record(&mut memory, &TaskFilter::new());
    assert_eq!(every_record(&mut sqlite, &TaskFilter::new()), everything);
    drop(sqlite);
    let mut reopened = open(&path);
    assert_eq!(every_record(&mut reopened, &TaskFilter::new()), everything);
}

#[test]
fn it_answers_every_call_as_the_memory_store_does() {
    for seed in 0..6 {
        walk(seed, 500);
    }
}

/// A batch's writes, applied at once (with the submissions held back and
/// merged into their results), leave what the memory store's calls one by
/// one leave.
#[test]
fn a_batch_written_at_once_leaves_what_its_calls_one_by_one_do() {
    for seed in 0..20 {
        let dir = temp_dir();
        let path = db_path(&dir);
        let db = Db::open(&path).unwrap();
        let mut memory = MemoryStore::new(usize::MAX, usize::MAX);
        let mut w = Walk::new(seed);
        // Few tasks, so that each sees several calls in the batch, and
        // fewer results than other calls, so that some stay pending.
        w.ids.truncate(24);
        let mut batch = Vec::new();
        let queued = Queued::default();
        let mut held = Held::default();
        for _ in 0..200 {
            let op = match w.rng.u8(0..5) {
                0..2 => Op::Submitted(w.new_task()),
                2..4 => Op::Assigned {
                    msg_id: w.id(),
                    engine: w.engine(),
                    attempts: w.rng.u32(1..4),
                },
                _ => Op::Finished {
                    reply: Box::new(w.reply()),
                    received: w.time(),
                },
            };
            match &op {
                Op::Submitted(task) => memory.submitted(task.clone()),
                Op::Assigned {
                    msg_id,
                    engine,
                    attempts,
                } => memory.assigned(*msg_id, *engine, *attempts),
                Op::Finished { reply, received } => memory.finished(reply, *received),
                _ => {}
            }
            queued.ops.fetch_add(1, Ordering::Relaxed);
            queued.bytes.fetch_add(op.bytes(), Ordering::Relaxed);
            batch.push(op);
            // Some batches end halfway, as a query ends one.
            if w.rng.u8(0..50) == 0 {
                db.apply(batch.drain(..), &mut held, &queued);
            }
        }
        db.apply(batch.into_iter(), &mut held.everything(), &queued);
        assert_eq!(queued.ops.load(Ordering::Relaxed), 0);
        assert_eq!(queued.bytes.load(Ordering::Relaxed), 0);
        drop(db);
        let mut store = open(&path);
        assert_eq!(
            every_record(&mut store, &TaskFilter::new()),
            every_record(&mut memory, &TaskFilter::new()),
            "seed {seed}"
        );
    }
}

#[test]
fn a_page_is_cut_by_its_bytes_as_in_memory() {
    let dir = temp_dir();
    let mut sqlite = open(&db_path(&dir));
    let mut memory = MemoryStore::new(usize::MAX, usize::MAX);
    let client = ClientId::new();
    for _ in 0..10 {
        let reply = reply_with(
            MsgId::new(),
            client,
            Outcome::Ok(Value::Null),
            &vec![b'x'; 100 << 10],
        );
        sqlite.finished(&reply, Timestamp(400));
        memory.finished(&reply, Timestamp(400));
    }
    let (page, more) = sqlite.query(&TaskFilter::new(), Heavy::ALL).unwrap();
    assert!(more && page.len() < 10, "{} records", page.len());
    assert_eq!(
        (page, more),
        memory.query(&TaskFilter::new(), Heavy::ALL).unwrap()
    );
    // Without the heavy fields, everything fits.
    let (page, more) = sqlite
        .query(&TaskFilter::new(), Heavy::of(&[RecordKey::Value]))
        .unwrap();
    assert_eq!((page.len(), more), (10, false));
}

#[test]
fn ten_thousand_records_then_one_query_sees_them_all() {
    let dir = temp_dir();
    let path = db_path(&dir);
    let mut store = open(&path);
    let client = ClientId::new();
    let engine = engine(0);
    let ids: Vec<MsgId> = (0..10_000).map(|_| MsgId::new()).collect();
    for &msg_id in &ids {
        store.submitted(task(msg_id, client));
        store.finished(&ok_reply(msg_id, client, engine), Timestamp(500));
    }
    let replies = store.results(&ids).unwrap();
    assert_eq!(replies.len(), ids.len());
    assert!(replies.iter().map(|r| r.msg_id).eq(ids.iter().copied()));
    let (page, more) = store.query(&TaskFilter::new(), Heavy::ALL).unwrap();
    assert_eq!((page.len(), more), (crate::store::PAGE_RECORDS, true));
    assert_eq!(store.stats(), StoreStats::default());

    let reader = Connection::open(&path).unwrap();
    let ok: i64 = reader
        .query_row("SELECT count(*) FROM tasks WHERE status = 'ok'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(ok, 10_000);
}

#[test]
fn a_reopened_store_has_every_record_the_engines_and_the_unfinished() {
    let dir = temp_dir();
    let path = db_path(&dir);
    let client = ClientId::new();
    let (done, sent, waiting) = (MsgId::new(), MsgId::new(), MsgId::new());
    let (e0, e1) = (engine(0), engine(1));
    let mut store = open(&path);
    store.engine_registered(&EngineInfo {
        id: e0.id,
        uuid: e0.uuid,
        host: "alpha".into(),
    });
    store.engine_registered(&EngineInfo {
        id: e1.id,
        uuid: e1.uuid,
        host: "beta".into(),
    });
    let mut waiting_task = task(waiting, client);
    waiting_task.after = Some(Dependency::new([done]).any());
    for t in [task(done, client), task(sent, client), waiting_task.clone()] {
        store.submitted(t);
    }
    store.assigned(sent, e1, 2);
    let reply = reply_with(done, client, Outcome::Ok(Value::from("six")), b"out");
    store.finished(&reply, Timestamp(400));
    let before = every_record(&mut store, &TaskFilter::new());
    drop(store);

    let mut store = open(&path);
    assert_eq!(every_record(&mut store, &TaskFilter::new()), before);
    assert_eq!(store.results(&[done, sent]).unwrap(), vec![reply]);
    let engines = store.engines().unwrap();
    assert_eq!(
        engines,
        vec![
            EngineInfo {
                id: e0.id,
                uuid: e0.uuid,
                host: "alpha".into()
            },
            EngineInfo {
                id: e1.id,
                uuid: e1.uuid,
                host: "beta".into()
            },
        ]
    );
    let mut sent_task = task(sent, client);
    sent_task.engine = Some(e1);
    assert_eq!(
        store.unfinished().unwrap(),
        vec![
            record_of_pending(&sent_task, 2),
            record_of_pending(&waiting_task, 0)
        ]
    );
}

#[test]
fn an_engine_id_given_again_replaces_its_row() {
    let dir = temp_dir();
    let mut store = open(&db_path(&dir));
    let first = EngineInfo {
        id: EngineId(0),
        uuid: EngineUuid::new(),
        host: "alpha".into(),
    };
    let again = EngineInfo {
        uuid: EngineUuid::new(),
        ..first.clone()
    };
    store.engine_registered(&first);
    store.engine_registered(&again);
    // The first engine's uuid comes back under another id.
    let moved = EngineInfo {
        id: EngineId(1),
        ..first.clone()
    };
    store.engine_registered(&moved);
    assert_eq!(store.engines().unwrap(), vec![again, moved]);
}

#[test]
fn the_first_result_wins() {
    let dir = temp_dir();
    let mut store = open(&db_path(&dir));
    let client = ClientId::new();
    let (known, unknown) = (MsgId::new(), MsgId::new());
    store.submitted(task(known, client));
    let first = reply_with(known, client, Outcome::Ok(Value::from(1)), b"");
    let second = reply_with(known, client, Outcome::Err(TaskError::Aborted), b"");
    store.finished(&first, Timestamp(400));
    store.finished(&second, Timestamp(500));
    store.assigned(known, engine(7), 9);
    // A result for a task never submitted is recorded; a second one is not.
    let lone = reply_with(unknown, client, Outcome::Ok(Value::from(2)), b"");
    store.finished(&lone, Timestamp(600));
    store.finished(&second, Timestamp(700));
    store.submitted(task(unknown, client));
    assert_eq!(
        store.results(&[unknown, known, unknown]).unwrap(),
        vec![lone.clone(), first.clone(), lone.clone()]
    );
    let (records, _) = store.query(&TaskFilter::new(), Heavy::ALL).unwrap();
    assert_eq!(
        records,
        vec![
            record_of_reply(&first, None, Some(Timestamp(400)), Heavy::ALL),
            record_of_reply(&lone, None, Some(Timestamp(600)), Heavy::ALL),
        ]
    );
}

#[test]
fn purges_forget_completed_records_only() {
    let dir = temp_dir();
    let mut store = open(&db_path(&dir));
    let client = ClientId::new();
    let ids: Vec<MsgId> = (0..4).map(|_| MsgId::new()).collect();
    for &id in &ids {
        store.submitted(task(id, client));
    }
    // ids[0] at 100, ids[1] at 200, ids[2] at 300; ids[3] pending.
    for (i, &id) in ids[..3].iter().enumerate() {
        let reply = reply_with(id, client, Outcome::Ok(Value::Null), b"");
        store.finished(&reply, Timestamp(100 * (i as u64 + 1)));
    }
    let refused = store.purge(&Purge::Ids(vec![ids[0], ids[3]])).unwrap_err();
    assert!(matches!(refused, StoreError::Refused(_)), "{refused}");
    assert!(refused.to_string().contains(&ids[3].to_string()));
    assert_eq!(every_record(&mut store, &TaskFilter::new()).len(), 4);

    assert_eq!(store.purge(&Purge::Before(Timestamp(200))).unwrap(), 1);
    assert_eq!(
        store
            .purge(&Purge::Ids(vec![ids[1], ids[1], MsgId::new()]))
            .unwrap(),
        1
    );
    assert_eq!(store.purge(&Purge::All).unwrap(), 1);
    assert_eq!(store.purge(&Purge::All).unwrap(), 0);
    let left = every_record(&mut store, &TaskFilter::new());
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].msg_id, left[0].status), (ids[3], None));
    assert!(store.results(&ids).unwrap().is_empty());
}

#[test]
fn files_it_cannot_use_are_clear_errors() {
    let dir = temp_dir();

    let (path, message) = sqlite_error(SqliteStore::open(dir.path()));
    assert_eq!(path, dir.path().display().to_string());
    assert!(!message.is_empty());

    let missing = dir.path().join("no-such-dir").join("tasks.db");
    let (path, _) = sqlite_error(SqliteStore::open(&missing));
    assert!(path.ends_with("tasks.db"), "{path}");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'?'; 4096]).unwrap();
    let (_, message) = sqlite_error(SqliteStore::open(&garbage));
    assert!(message.contains("not a database"), "{message}");

    let newer = dir.path().join("newer.db");
    drop(open(&newer));
    Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 2)
        .unwrap();
    let error = SqliteStore::open(&newer).unwrap_err().to_string();
    assert!(
        error.contains("newer.db") && error.contains("version 2"),
        "{error}"
    );

    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE tasks (id INTEGER)")
        .unwrap();
    let error = SqliteStore::open(&other).unwrap_err().to_string();
    assert!(error.contains("not a Grid task store"), "{error}");
}

#[test]
fn other_connections_read_the_columns_as_documented() {
    let dir = temp_dir();
    let path = db_path(&dir);
    let mut store = open(&path);
    let client = ClientId::new();
    let (ok, failed, blob, pending) = (MsgId::new(), MsgId::new(), MsgId::new(), MsgId::new());
    let mut pending_task = task(pending, client);
    pending_task.follow = Some(Dependency::new([ok]).failure(true));
    store.submitted(pending_task);
    store.assigned(pending, engine(4), 1);
    store.finished(
        &reply_with(ok, client, Outcome::Ok(Value::from(vec![1, 2])), b"hi\n"),
        Timestamp(400),
    );
    let trap = TaskError::Trap {
        kind: TrapKind::Unreachable,
        message: "unreachable".into(),
        backtrace: vec![],
    };
    store.finished(
        &reply_with(failed, client, Outcome::Err(trap.clone()), &[0xff, 0]),
        Timestamp(400),
    );
    let mut held = ok_reply(blob, client, engine(2));
    let hash = BlobHash::of(b"big");
    held.result = Body::from_blob(hash);
    store.finished(&held, Timestamp(450));
    store.flush().unwrap();

    let reader =
        Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let row = |msg_id: MsgId, columns: &str| -> Vec<rusqlite::types::Value> {
        reader
            .query_row(
                &format!("SELECT {columns} FROM tasks WHERE msg_id = ?1"),
                [msg_id.to_string()],
                |r| (0..r.as_ref().column_count()).map(|i| r.get(i)).collect(),
            )
            .unwrap()
    };
    use rusqlite::types::Value as V;
    let text = |s: &str| V::Text(s.into());
    assert_eq!(
        row(
            ok,
            "status, value, typeof(stdout), stdout, started, completed, received, engine_id"
        ),
        vec![
            text("ok"),
            text("[1,2]"),
            text("text"),
            text("hi\n"),
            V::Integer(200),
            V::Integer(300),
            V::Integer(400),
            V::Integer(1)
        ]
    );
    assert_eq!(
        row(ok, "fingerprint, fuel"),
        vec![text(&Fingerprint::default().digest()), V::Null]
    );
    assert_eq!(
        row(
            failed,
            "status, error_kind, error, value, typeof(stdout), stdout"
        ),
        vec![
            text("error"),
            text("trap"),
            text(&trap.summary()),
            V::Null,
            text("blob"),
            V::Blob(vec![0xff, 0])
        ]
    );
    assert_eq!(
        row(
            blob,
            "result_blob, started, completed, received, stdout, fingerprint"
        ),
        vec![
            text(&hash.to_hex()),
            V::Null,
            V::Integer(450),
            V::Integer(450),
            V::Null,
            V::Null
        ]
    );
    let follow = match &row(pending, "status, engine_id, attempts, follow")[..] {
        [V::Null, V::Integer(4), V::Integer(1), V::Text(follow)] => follow.clone(),
        other => panic!("{other:?}"),
    };
    let follow: serde_json::Value = serde_json::from_str(&follow).unwrap();
    assert_eq!(
        follow,
        serde_json::json!({"msg_ids": [ok.to_string()], "all": true, "success": true, "failure": true})
    );
    let statuses: Vec<(Option<String>, i64)> = reader
        .prepare("SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        statuses,
        vec![(None, 1), (Some("error".into()), 1), (Some("ok".into()), 2)]
    );
    // A query by status in SQL agrees.
    let (records, _) = store
        .query(
            &TaskFilter::new().status_in([RecordStatus::Error]),
            Heavy::ALL,
        )
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, Some(Status::Error));
    assert_eq!(records[0].error, Some(trap));
}

#[test]
fn a_write_that_fails_is_skipped_and_the_store_goes_on() {
    let dir = temp_dir();
    let path = db_path(&dir);
    let mut store = open(&path);
    let client = ClientId::new();
    let (refused, kept) = (MsgId::new(), MsgId::new());
    // Another connection makes one insert fail (a full disk or a broken
    // file would fail every one of a batch alike).
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON tasks WHEN NEW.msg_id = '{refused}'
             BEGIN SELECT RAISE(ABORT, 'refused by a test'); END;"
        ))
        .unwrap();
    store.submitted(task(refused, client));
    store.submitted(task(kept, client));
    store.finished(&ok_reply(refused, client, engine(0)), Timestamp(5));
    let ids: Vec<MsgId> = every_record(&mut store, &TaskFilter::new())
        .iter()
        .map(|r| r.msg_id)
        .collect();
    assert_eq!(ids, [kept]);
    store.finished(&ok_reply(kept, client, engine(0)), Timestamp(6));
    assert_eq!(store.results(&[refused, kept]).unwrap().len(), 1);
}

#[test]
fn stats_count_what_is_queued() {
    let dir = temp_dir();
    let mut store = open(&db_path(&dir));
    let client = ClientId::new();
    for _ in 0..100 {
        let msg_id = MsgId::new();
        store.finished(&ok_reply(msg_id, client, engine(0)), Timestamp(1));
    }
    let queued = store.stats();
    assert!(queued.in_memory <= 100);
    store.flush().unwrap();
    assert_eq!(store.stats(), StoreStats::default());
}

/// The writer's throughput: `cargo test -p grid-controller --release --
/// --ignored --nocapture writer_throughput`.
#[test]
#[ignore]
fn writer_throughput() {
    const TASKS: usize = 100_000;
    let dir = temp_dir();
    let mut store = open(&db_path(&dir));
    let client = ClientId::new();
    let engine = engine(0);
    let tasks: Vec<(NewTask, Reply)> = (0..TASKS)
        .map(|_| {
            let msg_id = MsgId::new();
            (task(msg_id, client), ok_reply(msg_id, client, engine))
        })
        .collect();
    let start = Instant::now();
    for (task, reply) in tasks {
        store.submitted(task);
        store.finished(&reply, Timestamp::now());
    }
    let queued = start.elapsed();
    store.flush().unwrap();
    let written = start.elapsed();
    println!(
        "{TASKS} tasks (submitted + finished) recorded: queued in {queued:.2?}, written in {written:.2?}: {:.0} tasks/s, {:.0} ops/s",
        TASKS as f64 / written.as_secs_f64(),
        2.0 * TASKS as f64 / written.as_secs_f64(),
    );
}
