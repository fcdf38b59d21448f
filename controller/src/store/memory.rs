//! [`MemoryStore`]: the task store in memory, bounded.
//!
//! Every record lives in one map; completed records also in the order they
//! completed, with what their results cost. Past
//! [`max_records`](MemoryStore::new) completed records or `max_bytes` of
//! their results, the oldest completed are forgotten (queries then call
//! them unknown). Pending records are never forgotten, so memory grows
//! with the tasks in flight, not with the tasks seen. Nothing here touches
//! a disk: a controller's restart forgets everything.

use std::collections::{HashMap, HashSet, VecDeque};

use grid_proto::{
    BlobHash, EngineInfo, EngineRef, MsgId, Purge, Reply, TaskFilter, TaskRecord, Timestamp,
};

use super::{
    Heavy, NewTask, StoreError, TaskStore, page_limit, record_bytes, record_of_pending,
    record_of_reply, refuse_pending,
};

/// Completed records the table makes room for up front, at most.
const MAX_ROOM: usize = 32_768;

/// What a completed record costs beyond its result's bytes, roughly.
const RECORD_OVERHEAD: usize = 256;

#[derive(Debug)]
struct Entry {
    task: NewTask,
    attempts: u32,
    done: Option<(Box<Reply>, Timestamp)>,
}

/// The task store in memory. See the module docs.
#[derive(Debug)]
pub struct MemoryStore {
    /// Boxed, so that the table is small and sized once (see `new`).
    entries: HashMap<MsgId, Box<Entry>>,
    /// Completed tasks, oldest first; ids no longer completed (purged) are
    /// skipped when they come up.
    done_order: VecDeque<MsgId>,
    done_bytes: usize,
    max_records: usize,
    max_bytes: usize,
}

impl MemoryStore {
    /// Keeps at most `max_records` completed records and `max_bytes` of
    /// their results.
    pub fn new(max_records: usize, max_bytes: usize) -> MemoryStore {
        // Room for the bound and as many pending tasks up front: the table
        // then does not grow (doubling its memory at once) as the store
        // fills, so a controller's memory is the same after 10,000 tasks
        // as after a million.
        let room = max_records.min(MAX_ROOM) * 2;
        MemoryStore {
            entries: HashMap::with_capacity(room),
            done_order: VecDeque::with_capacity(max_records.min(MAX_ROOM) + 1),
            done_bytes: 0,
            max_records,
            max_bytes,
        }
    }

    fn record(entry: &Entry, heavy: Heavy) -> TaskRecord {
        match &entry.done {
            Some((reply, received)) => {
                record_of_reply(reply, Some(&entry.task), Some(*received), heavy)
            }
            None => record_of_pending(&entry.task, entry.attempts),
        }
    }

    /// Forgets a completed record (a pending one stays).
    fn forget(&mut self, msg_id: &MsgId) -> bool {
        let Some(Entry {
            done: Some((reply, _)),
            ..
        }) = self.entries.get(msg_id).map(|e| &**e)
        else {
            return false;
        };
        self.done_bytes = self.done_bytes.saturating_sub(cost(reply));
        self.entries.remove(msg_id);
        true
    }

    /// Forgets the oldest completed records while over the bound.
    fn bound(&mut self) {
        while self.done_order.len() > self.max_records || self.done_bytes > self.max_bytes {
            let Some(msg_id) = self.done_order.pop_front() else {
                self.done_bytes = 0;
                return;
            };
            self.forget(&msg_id);
        }
    }
}

fn cost(reply: &Reply) -> usize {
    reply.result.len() + RECORD_OVERHEAD
}

impl TaskStore for MemoryStore {
    fn submitted(&mut self, task: NewTask) {
        self.entries.entry(task.msg_id).or_insert_with(|| {
            Box::new(Entry {
                task,
                attempts: 0,
                done: None,
            })
        });
    }

    fn assigned(&mut self, msg_id: MsgId, engine: EngineRef, attempts: u32) {
        if let Some(entry) = self.entries.get_mut(&msg_id)
            && entry.done.is_none()
        {
            entry.task.engine = Some(engine);
            entry.attempts = attempts;
        }
    }

    fn finished(&mut self, reply: &Reply, received: Timestamp) {
        let entry = self.entries.entry(reply.msg_id).or_insert_with(|| {
            Box::new(Entry {
                task: NewTask::of_reply(reply),
                attempts: reply.attempts,
                done: None,
            })
        });
        if entry.done.is_some() {
            return;
        }
        entry.done = Some((Box::new(reply.clone()), received));
        self.done_bytes += cost(reply);
        self.done_order.push_back(reply.msg_id);
        self.bound();
    }

    fn engine_registered(&mut self, _info: &EngineInfo) {}

    fn results(&mut self, msg_ids: &[MsgId]) -> Result<Vec<Reply>, StoreError> {
        Ok(msg_ids
            .iter()
            .filter_map(|id| self.entries.get(id)?.done.as_ref())
            .map(|(reply, _)| Reply::clone(reply))
            .collect())
    }

    fn query(
        &mut self,
        filter: &TaskFilter,
        heavy: Heavy,
    ) -> Result<(Vec<TaskRecord>, bool), StoreError> {
        let limit = page_limit(filter);
        // Light records first (no heavy fields) to select and sort; the
        // page's records are then made with the heavy fields asked for.
        let mut selected: Vec<&Entry> = match &filter.msg_ids {
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.entries.get(id).map(|e| &**e))
                .collect(),
            None => self.entries.values().map(|e| &**e).collect(),
        };
        selected.retain(|e| filter.matches(&Self::record(e, Heavy::NONE)));
        selected.sort_unstable_by_key(|e| e.task.msg_id);
        selected.dedup_by_key(|e| e.task.msg_id);
        let mut page = Vec::new();
        let mut bytes = 0;
        for entry in &selected {
            if page.len() == limit || bytes >= super::PAGE_BYTES {
                break;
            }
            let record = Self::record(entry, heavy);
            bytes += record_bytes(&record);
            page.push(record);
        }
        let more = page.len() < selected.len();
        Ok((page, more))
    }

    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError> {
        let ids: Vec<MsgId> = match purge {
            Purge::All => self
                .entries
                .iter()
                .filter(|(_, e)| e.done.is_some())
                .map(|(id, _)| *id)
                .collect(),
            Purge::Ids(ids) => {
                let pending: Vec<MsgId> = ids
                    .iter()
                    .filter(|id| self.entries.get(id).is_some_and(|e| e.done.is_none()))
                    .copied()
                    .collect();
                refuse_pending(&pending)?;
                ids.clone()
            }
            Purge::Before(before) => self
                .entries
                .iter()
                .filter(|(_, e)| {
                    e.done
                        .as_ref()
                        .is_some_and(|(_, received)| received < before)
                })
                .map(|(id, _)| *id)
                .collect(),
        };
        let mut count = 0;
        for id in &ids {
            if self.forget(id) {
                count += 1;
            }
        }
        if matches!(purge, Purge::All) {
            self.done_order.clear();
            self.done_bytes = 0;
        }
        Ok(count)
    }

    fn engines(&mut self) -> Result<Vec<EngineInfo>, StoreError> {
        Ok(Vec::new())
    }

    fn unfinished(&mut self) -> Result<Vec<TaskRecord>, StoreError> {
        Ok(Vec::new())
    }

    fn result_blobs(&mut self) -> Result<HashSet<BlobHash>, StoreError> {
        Ok(self
            .entries
            .values()
            .filter_map(|e| e.done.as_ref()?.0.result.blob())
            .collect())
    }

    fn keeps(&self) -> usize {
        self.max_records
    }
}
