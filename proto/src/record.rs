//! Task records: what the hub's task store keeps of each task, and the
//! typed filter that queries it (ipyparallel's `db_query`).
//!
//! A [`TaskRecord`] has ipyparallel's record fields: who submitted the task
//! and when, where and when it ran, how it ended, its output, its
//! dependencies and fingerprint, and (when asked) its value. A
//! [`TaskFilter`] selects records by msg id, status, engine, client and
//! time range; its methods are named after ipyparallel's MongoDB-style
//! operators (`$in`, `$lt`, `$gt`), so `{'status': {'$in': ['error']},
//! 'submitted': {'$gt': t}}` is `TaskFilter::new().status_in([Pending...])`
//! and so on. The filter is evaluated by the store (SQL in the SQLite store,
//! [`TaskFilter::matches`] in memory); this file only describes it. Results
//! come in pages (`after` and `limit`), so that one answer fits in one bus
//! message.

use serde::{Deserialize, Serialize};

use crate::{
    BlobHash, ClientId, Dependency, EngineId, EngineRef, Fingerprint, MsgId, Status, TaskError,
    Timestamp, Value,
};

/// Where a task stands in the store: still pending, or done with a [`Status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordStatus {
    /// Submitted, not done (waiting in the scheduler or on an engine).
    Pending,
    Ok,
    Error,
    Aborted,
}

impl RecordStatus {
    pub const ALL: [RecordStatus; 4] = [
        RecordStatus::Pending,
        RecordStatus::Ok,
        RecordStatus::Error,
        RecordStatus::Aborted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RecordStatus::Pending => "pending",
            RecordStatus::Ok => "ok",
            RecordStatus::Error => "error",
            RecordStatus::Aborted => "aborted",
        }
    }
}

impl From<Option<Status>> for RecordStatus {
    fn from(status: Option<Status>) -> RecordStatus {
        match status {
            None => RecordStatus::Pending,
            Some(Status::Ok) => RecordStatus::Ok,
            Some(Status::Error) => RecordStatus::Error,
            Some(Status::Aborted) => RecordStatus::Aborted,
        }
    }
}

impl std::fmt::Display for RecordStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Not a record status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}` (pending, ok, error or aborted)")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for RecordStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<RecordStatus, UnknownStatus> {
        RecordStatus::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// One task as the hub's store records it (ipyparallel's task record).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub msg_id: MsgId,
    pub client: ClientId,
    pub submitted: Timestamp,
    /// When an engine started it (for a chunk: its first item).
    pub started: Option<Timestamp>,
    pub completed: Option<Timestamp>,
    /// When the controller recorded its result.
    pub received: Option<Timestamp>,
    /// The engine it ran on (or was sent to, while pending).
    pub engine: Option<EngineRef>,
    /// `None` while pending.
    pub status: Option<Status>,
    pub error: Option<TaskError>,
    /// Captured output; `None` unless asked for ([`RecordKey::Stdout`]) or
    /// not known (a result held as a blob).
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<Vec<u8>>,
    pub after: Option<Dependency>,
    pub follow: Option<Dependency>,
    pub fingerprint: Option<Fingerprint>,
    /// How many times it was sent to an engine (0 when not counted).
    pub attempts: u32,
    /// The value; `None` unless asked for ([`RecordKey::Value`]), pending,
    /// failed, or held as a blob ([`TaskRecord::result_blob`]).
    pub value: Option<Value>,
    /// A result too large for a message is kept in the blob store under this hash.
    pub result_blob: Option<BlobHash>,
}

impl TaskRecord {
    pub fn record_status(&self) -> RecordStatus {
        self.status.into()
    }
}

/// The heavy fields of a [`TaskRecord`], returned only when asked for
/// (ipyparallel's `keys`); the others always are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKey {
    Stdout,
    Stderr,
    Value,
}

/// A time range, open at both ends (`$gt`, `$lt`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// Strictly after.
    pub gt: Option<Timestamp>,
    /// Strictly before.
    pub lt: Option<Timestamp>,
}

impl TimeRange {
    pub fn contains(&self, t: Option<Timestamp>) -> bool {
        if self.gt.is_none() && self.lt.is_none() {
            return true;
        }
        let Some(t) = t else { return false };
        self.gt.is_none_or(|gt| t > gt) && self.lt.is_none_or(|lt| t < lt)
    }

    pub fn is_open(&self) -> bool {
        self.gt.is_none() && self.lt.is_none()
    }
}

/// Which records a query selects: every condition set must hold; a list
/// matches any of its items (`$in`). Records come sorted by msg id (which
/// sorts by submission time), at most [`limit`](Self::limit) of them,
/// starting after [`after`](Self::after) (a page's last id).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    pub msg_ids: Option<Vec<MsgId>>,
    pub status: Option<Vec<RecordStatus>>,
    pub engines: Option<Vec<EngineId>>,
    pub clients: Option<Vec<ClientId>>,
    pub submitted: TimeRange,
    pub completed: TimeRange,
    /// Only records whose msg id sorts after this (paging).
    pub after: Option<MsgId>,
    /// At most this many records (the store may return fewer, to keep an
    /// answer within one message; `more` says so).
    pub limit: Option<usize>,
}

impl TaskFilter {
    /// Every record.
    pub fn new() -> TaskFilter {
        TaskFilter::default()
    }

    /// `msg_id: {$in: ids}`.
    pub fn msg_id_in(mut self, ids: impl IntoIterator<Item = MsgId>) -> TaskFilter {
        self.msg_ids = Some(ids.into_iter().collect());
        self
    }

    /// `status: {$in: statuses}`.
    pub fn status_in(mut self, statuses: impl IntoIterator<Item = RecordStatus>) -> TaskFilter {
        self.status = Some(statuses.into_iter().collect());
        self
    }

    /// `engine_id: {$in: engines}`.
    pub fn engine_in(mut self, engines: impl IntoIterator<Item = EngineId>) -> TaskFilter {
        self.engines = Some(engines.into_iter().collect());
        self
    }

    /// `client_uuid: {$in: clients}`.
    pub fn client_in(mut self, clients: impl IntoIterator<Item = ClientId>) -> TaskFilter {
        self.clients = Some(clients.into_iter().collect());
        self
    }

    /// `submitted: {$gt: t}`.
    pub fn submitted_gt(mut self, t: Timestamp) -> TaskFilter {
        self.submitted.gt = Some(t);
        self
    }

    /// `submitted: {$lt: t}`.
    pub fn submitted_lt(mut self, t: Timestamp) -> TaskFilter {
        self.submitted.lt = Some(t);
        self
    }

    /// `completed: {$gt: t}` (pending records never match).
    pub fn completed_gt(mut self, t: Timestamp) -> TaskFilter {
        self.completed.gt = Some(t);
        self
    }

    /// `completed: {$lt: t}` (pending records never match).
    pub fn completed_lt(mut self, t: Timestamp) -> TaskFilter {
        self.completed.lt = Some(t);
        self
    }

    /// Only records after this msg id (the last of the previous page).
    pub fn after(mut self, msg_id: MsgId) -> TaskFilter {
        self.after = Some(msg_id);
        self
    }

    pub fn limit(mut self, n: usize) -> TaskFilter {
        self.limit = Some(n);
        self
    }

    /// Whether `record` is selected (paging aside: `after` is checked,
    /// `limit` is the caller's).
    pub fn matches(&self, record: &TaskRecord) -> bool {
        fn listed<T: PartialEq>(list: &Option<Vec<T>>, item: T) -> bool {
            list.as_ref().is_none_or(|l| l.contains(&item))
        }
        listed(&self.msg_ids, record.msg_id)
            && listed(&self.status, record.record_status())
            && self
                .engines
                .as_ref()
                .is_none_or(|l| record.engine.is_some_and(|e| l.contains(&e.id)))
            && listed(&self.clients, record.client)
            && self.submitted.contains(Some(record.submitted))
            && self.completed.contains(record.completed)
            && self.after.is_none_or(|after| record.msg_id > after)
    }
}

impl From<Vec<MsgId>> for Purge {
    fn from(ids: Vec<MsgId>) -> Purge {
        Purge::Ids(ids)
    }
}

/// Which completed records to forget (`purge_results`): pending tasks are
/// never purged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purge {
    /// Every completed record.
    All,
    /// These (each must be done: purging a pending task is an error).
    Ids(Vec<MsgId>),
    /// Those completed before this time.
    Before(Timestamp),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Option<Status>, engine: u32, submitted: u64) -> TaskRecord {
        TaskRecord {
            msg_id: MsgId::new(),
            client: ClientId::new(),
            submitted: Timestamp(submitted),
            started: None,
            completed: status.map(|_| Timestamp(submitted + 10)),
            received: None,
            engine: Some(EngineRef {
                id: EngineId(engine),
                uuid: crate::EngineUuid::new(),
            }),
            status,
            error: None,
            stdout: None,
            stderr: None,
            after: None,
            follow: None,
            fingerprint: None,
            attempts: 1,
            value: None,
            result_blob: None,
        }
    }

    #[test]
    fn a_filter_selects_by_every_field_it_sets() {
        let ok = record(Some(Status::Ok), 1, 100);
        let failed = record(Some(Status::Error), 2, 200);
        let pending = record(None, 1, 300);
        let all = [&ok, &failed, &pending];
        let pick = |f: TaskFilter| -> Vec<MsgId> {
            all.iter()
                .filter(|r| f.matches(r))
                .map(|r| r.msg_id)
                .collect()
        };
        assert_eq!(pick(TaskFilter::new()).len(), 3);
        assert_eq!(
            pick(TaskFilter::new().status_in([RecordStatus::Error])),
            [failed.msg_id]
        );
        assert_eq!(
            pick(TaskFilter::new().status_in([RecordStatus::Pending])),
            [pending.msg_id]
        );
        assert_eq!(
            pick(TaskFilter::new().engine_in([EngineId(1)])),
            [ok.msg_id, pending.msg_id]
        );
        assert_eq!(
            pick(
                TaskFilter::new()
                    .submitted_gt(Timestamp(100))
                    .submitted_lt(Timestamp(300))
            ),
            [failed.msg_id]
        );
        // Pending records have no completion time: a completed range excludes them.
        assert_eq!(
            pick(TaskFilter::new().completed_lt(Timestamp(1000))),
            [ok.msg_id, failed.msg_id]
        );
        assert_eq!(
            pick(
                TaskFilter::new()
                    .client_in([ok.client])
                    .msg_id_in([ok.msg_id, failed.msg_id])
            ),
            [ok.msg_id]
        );
    }

    #[test]
    fn statuses_parse_from_their_names() {
        for s in RecordStatus::ALL {
            assert_eq!(s.name().parse::<RecordStatus>(), Ok(s));
        }
        assert!("done".parse::<RecordStatus>().is_err());
    }
}
