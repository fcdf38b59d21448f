//! The messages of the cluster protocol (see the subject table in
//! ../shared/DESIGN.md and `subjects.rs`).
//!
//! A [`Submission`] carries work to an engine, directly or through the
//! scheduler; a [`Reply`] carries its result back to the submitting client
//! (and, on the same subject, to the controller, which records every one).
//! [`HubRequest`]/[`HubReply`] are the controller's request-reply operations,
//! [`Control`] reaches an engine outside its queue, [`ClusterEvent`] tells
//! everyone about engines coming and going.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    Body, CodecError, Dependency, EngineId, EngineUuid, MsgId, Purge, RecordKey, Scheme, Status,
    Task, TaskFilter, TaskRecord, TaskResult, Timestamp, Value,
};

/// Identifies a client (its results subject is derived from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub uuid::Uuid);

impl ClientId {
    pub fn new() -> Self {
        ClientId(uuid::Uuid::new_v4())
    }
}

impl Default for ClientId {
    fn default() -> Self {
        Self::new()
    }
}

/// One unit of work sent to an engine (`engine.<id>.task`) or to the
/// scheduler (`sched.submit`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub msg_id: MsgId,
    pub client: ClientId,
    pub submitted: Timestamp,
    /// Decoded by the engine only (see [`Body`]).
    pub work: Body<Work>,
    /// Scheduling constraints; only the scheduler reads them.
    #[serde(default)]
    pub sched: SchedFlags,
}

/// What an engine is asked to do. Everything goes through the engine's one
/// queue, so a push before an apply is seen by the apply.
// A task is most of what is ever sent: boxing it would add an allocation
// per task for the sake of the rarer, smaller variants.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Work {
    /// Run wasm.
    Task(Task),
    /// Store values in the namespace. The value is `null`.
    Push(BTreeMap<String, Value>),
    /// Read names from the namespace. The value is an array in the order
    /// asked; a missing name fails the whole pull.
    Pull(Vec<String>),
    /// Remove every namespace entry. The value is `null`.
    Clear,
}

/// Constraints on where and when a load-balanced task runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedFlags {
    /// Only these engines may run it (`None`: any).
    pub targets: Option<Vec<EngineId>>,
    /// Fail the task if it has not started within this many milliseconds
    /// (waiting for its dependencies, then for an engine).
    pub timeout_ms: Option<u64>,
    /// Run only once these tasks are done (ipyparallel's `after`).
    #[serde(default)]
    pub after: Option<Dependency>,
    /// Run where these tasks ran (ipyparallel's `follow`); they must be done too.
    #[serde(default)]
    pub follow: Option<Dependency>,
    /// Run again this many times at most if it fails, each time on an engine
    /// where it has not failed yet when there is one. The engine sends the
    /// result of such a task to the scheduler (`sched.result`), which
    /// forwards only the final one to the client.
    #[serde(default)]
    pub retries: u32,
}

impl SchedFlags {
    /// The flags set here that need a scheduler (the `pure` scheme has
    /// none): `after`, `follow`, `retries`, `targets`, `timeout`.
    pub fn needs_scheduler(&self) -> Vec<&'static str> {
        [
            ("after", self.after.is_some()),
            ("follow", self.follow.is_some()),
            ("retries", self.retries > 0),
            ("targets", self.targets.is_some()),
            ("timeout", self.timeout_ms.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// Why a cluster of the `pure` scheme cannot take a task with these
    /// flags, if it cannot.
    pub fn refused_by_pure(&self) -> Option<String> {
        let asked = self.needs_scheduler();
        (!asked.is_empty()).then(|| {
            format!(
                "the cluster's scheme is pure (no scheduler), which cannot honour {}: \
                 start its controller with another --scheme",
                asked.join(", ")
            )
        })
    }
}

/// The result of a submission, on `result.<client>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub msg_id: MsgId,
    /// How it ended (the result's status, readable without decoding it).
    pub status: Status,
    pub client: ClientId,
    pub submitted: Timestamp,
    /// The engine that ran it, or held it when it died; `None` when it never
    /// reached one (the scheduler failed it, e.g. no engine within the timeout).
    pub engine: Option<EngineRef>,
    /// Decoded by the client only (see [`Body`]).
    pub result: Body<TaskResult>,
    /// How many times the task ran (or was placed) before this result, for
    /// a task sent with retries; 0 when not counted (one attempt).
    #[serde(default)]
    pub attempts: u32,
}

impl Reply {
    /// The reply carrying `result`.
    pub fn new(
        client: ClientId,
        submitted: Timestamp,
        engine: Option<EngineRef>,
        result: &TaskResult,
    ) -> Result<Reply, CodecError> {
        Ok(Reply {
            msg_id: result.msg_id,
            status: result.status(),
            client,
            submitted,
            engine,
            result: Body::new(result)?,
            attempts: 0,
        })
    }
}

/// An engine's two ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineRef {
    pub id: EngineId,
    pub uuid: EngineUuid,
}

/// Which output stream a chunk of live output comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Live output of a running task, on `iopub.<client>` (ipyparallel's iopub
/// channel): what the guest wrote since the last message, as it wrote it.
/// Chunks of one stream carry their byte offset in it, so a receiver sees
/// gaps (a message lost on the way). Live output is best effort; the
/// result's captured output is the complete record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Iopub {
    pub msg_id: MsgId,
    pub stream: Stream,
    /// For a chunk of a map: the item (from 0 within the task) that wrote it.
    pub item: Option<u32>,
    /// Where `data` starts in the stream's output.
    pub offset: u64,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// The output limit was reached: nothing more of this stream follows
    /// (the task fails with a `limit` error).
    #[serde(default)]
    pub truncated: bool,
}

/// Messages on `engine.<id>.control`, handled outside the task queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Control {
    /// Drop these tasks if queued (replying `aborted`), interrupt them if running.
    Abort(Vec<MsgId>),
    /// Finish nothing more; stop.
    Shutdown,
}

/// Sent by an engine slot on `sched.claim` when it takes tasks from
/// `sched.pure` (the `pure` scheme): the controller then knows where they
/// are, to fail them if that engine dies. Each task with what the
/// controller needs to record it if the claim overtakes the submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub engine: EngineRef,
    pub tasks: Vec<(MsgId, ClientId, Timestamp)>,
}

/// Sent by an engine slot on `heartbeat.<id>` once it is subscribed to its
/// subjects (its first heartbeat makes it schedulable: work sent before would
/// be lost) and then periodically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub engine: EngineRef,
    /// The task running now.
    pub running: Option<MsgId>,
    /// Tasks waiting in the engine's queue.
    pub queued: u64,
    /// Tasks finished since the engine started.
    pub done: u64,
    /// Messages the engine's bus connection dropped since it connected
    /// (NATS slow consumer); a lower bound, see `grid_bus::Bus::dropped_messages`.
    /// Shared by the slots of one engine process. Absent from older engines: 0.
    #[serde(default)]
    pub dropped: u64,
    /// The engine's host, so that a controller that restarted (or declared
    /// the engine dead) can take it back from its heartbeats alone. Absent
    /// from older engines: empty.
    #[serde(default)]
    pub host: String,
}

/// Published by the controller on `controller` every
/// [`CONTROLLER_BEAT`]: clients and engines watch it to notice a
/// controller that died (no beat) or restarted (another incarnation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControllerBeat {
    /// New at every start of the controller.
    pub incarnation: uuid::Uuid,
    /// When this incarnation started.
    pub started: Timestamp,
}

/// How often the controller beats on `controller`.
pub const CONTROLLER_BEAT: std::time::Duration = std::time::Duration::from_secs(1);

/// What a watcher of the controller's beat (a client, an engine) knows of
/// it: the incarnation last heard, and when. Time is passed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeatWatch {
    incarnation: Option<uuid::Uuid>,
    /// The last beat, or when the watch began: a controller never heard
    /// is silent from then.
    last: std::time::Instant,
}

impl BeatWatch {
    /// Watching from `now`.
    pub fn new(now: std::time::Instant) -> BeatWatch {
        BeatWatch {
            incarnation: None,
            last: now,
        }
    }

    /// A beat heard at `now`. When it comes from another incarnation than
    /// the last one heard (the controller restarted), when that one was
    /// last heard.
    pub fn heard(
        &mut self,
        beat: &ControllerBeat,
        now: std::time::Instant,
    ) -> Option<std::time::Instant> {
        let before = self.incarnation.replace(beat.incarnation);
        let last = std::mem::replace(&mut self.last, now);
        before.filter(|b| *b != beat.incarnation).map(|_| last)
    }

    /// How long the controller has been silent (since its last beat, or
    /// the watch began), once that is `timeout` or more.
    pub fn silent(
        &self,
        now: std::time::Instant,
        timeout: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let silent = now.saturating_duration_since(self.last);
        (silent >= timeout).then_some(silent)
    }
}

/// What engines report about themselves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub id: EngineId,
    pub uuid: EngineUuid,
    pub host: String,
}

/// Requests to the controller, on `hub.<op>` where op is [`HubRequest::op`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HubRequest {
    /// An engine slot joins; the reply is [`HubReply::Registered`].
    Register {
        uuid: EngineUuid,
        host: String,
    },
    Unregister {
        id: EngineId,
    },
    /// The registered engines: [`HubReply::Engines`].
    Engines,
    /// Per-engine queue lengths: [`HubReply::QueueStatus`].
    QueueStatus,
    /// Which of these are done, pending or unknown: [`HubReply::ResultStatus`].
    ResultStatus {
        msg_ids: Vec<MsgId>,
    },
    /// The recorded results of these tasks, from any client: [`HubReply::Results`].
    GetResult {
        msg_ids: Vec<MsgId>,
    },
    /// Abort these tasks wherever they are: queued in the scheduler or an engine, or running.
    Abort {
        msg_ids: Vec<MsgId>,
    },
    /// Forget completed records: [`HubReply::Purged`].
    PurgeResults(Purge),
    /// Records selected by a filter: [`HubReply::Records`], one page.
    DbQuery {
        filter: TaskFilter,
        /// The heavy fields to include (all of them when empty).
        #[serde(default)]
        keys: Vec<RecordKey>,
    },
    /// Deliver these tasks' results to `client` (on `result.<client>`) as
    /// they complete, whoever submitted them (ipyparallel's
    /// `AsyncHubResult`). Answered with [`HubReply::ResultStatus`]: the
    /// completed ones are not sent (fetch them with `GetResult`), the
    /// pending ones will be, the unknown ones never.
    Watch {
        client: ClientId,
        msg_ids: Vec<MsgId>,
    },
    /// How the controller schedules: [`HubReply::Info`].
    Info,
    /// Stop engines and the controller.
    Shutdown,
}

impl HubRequest {
    /// The subject token of this request.
    pub fn op(&self) -> &'static str {
        match self {
            HubRequest::Register { .. } => "register",
            HubRequest::Unregister { .. } => "unregister",
            HubRequest::Engines => "engines",
            HubRequest::QueueStatus => "queue_status",
            HubRequest::ResultStatus { .. } => "result_status",
            HubRequest::GetResult { .. } => "get_result",
            HubRequest::Abort { .. } => "abort",
            HubRequest::PurgeResults(_) => "purge_results",
            HubRequest::DbQuery { .. } => "db_query",
            HubRequest::Watch { .. } => "watch",
            HubRequest::Info => "info",
            HubRequest::Shutdown => "shutdown",
        }
    }
}

/// The controller's answers. An error is `HubReply::Error` with a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HubReply {
    Registered {
        id: EngineId,
    },
    Engines(Vec<EngineInfo>),
    QueueStatus(QueueStatus),
    /// Every asked id in exactly one list, in the order asked.
    ResultStatus {
        /// Done (in any state): [`HubRequest::GetResult`] returns them.
        completed: Vec<MsgId>,
        /// Known to the controller (submitted, or seen on an engine's task
        /// subject) and not done.
        pending: Vec<MsgId>,
        /// Never seen by the controller, or purged: a submission may still
        /// be on its way, or it was lost (a slow consumer dropped it).
        /// Absent from older controllers, which counted these as pending.
        #[serde(default)]
        unknown: Vec<MsgId>,
    },
    Results(Vec<Reply>),
    /// A page of records; `more`: the query has more after the last one
    /// (ask again with [`TaskFilter::after`] set to it).
    Records {
        records: Vec<TaskRecord>,
        more: bool,
    },
    /// How many records were purged.
    Purged {
        count: u64,
    },
    /// The controller's scheme: with [`Scheme::Pure`], load-balanced work
    /// goes to `sched.pure`, not `sched.submit`.
    Info {
        scheme: Scheme,
    },
    Ok,
    Error(String),
}

/// Tasks per engine, as ipyparallel's `queue_status` reports them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    pub engines: BTreeMap<EngineId, EngineQueue>,
    /// Load-balanced tasks not yet placed on an engine.
    pub unassigned: u64,
    /// Messages the controller's own bus connection dropped (NATS slow
    /// consumer) since it connected; a lower bound. Absent from older
    /// controllers: 0.
    #[serde(default)]
    pub dropped: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineQueue {
    /// Waiting on the engine.
    pub queue: u64,
    /// Running now (0 or 1).
    pub running: u64,
    /// Finished, in any state.
    pub completed: u64,
    /// The task the engine said it was running at its last heartbeat.
    #[serde(default)]
    pub current: Option<MsgId>,
    /// Messages the engine's bus connection dropped, as of its last
    /// heartbeat ([`Heartbeat::dropped`]).
    #[serde(default)]
    pub dropped: u64,
}

/// Broadcast on `events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClusterEvent {
    EngineRegistered(EngineInfo),
    EngineUnregistered(EngineId),
    EngineDied(EngineId),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    /// The messages as a peer from before the drop counts and `unknown`
    /// encodes them: the same fields, less the new ones.
    #[derive(Serialize)]
    enum OldHubReply {
        ResultStatus {
            completed: Vec<MsgId>,
            pending: Vec<MsgId>,
        },
    }

    #[derive(Serialize)]
    struct OldHeartbeat {
        engine: EngineRef,
        running: Option<MsgId>,
        queued: u64,
        done: u64,
    }

    #[derive(Serialize)]
    struct OldQueueStatus {
        engines: BTreeMap<EngineId, OldEngineQueue>,
        unassigned: u64,
    }

    #[derive(Serialize)]
    struct OldEngineQueue {
        queue: u64,
        running: u64,
        completed: u64,
        current: Option<MsgId>,
    }

    #[test]
    fn a_beat_watch_tells_a_restart_and_a_silence() {
        let start = std::time::Instant::now();
        let at = |s: u64| start + std::time::Duration::from_secs(s);
        let beat = |incarnation| ControllerBeat {
            incarnation,
            started: Timestamp(0),
        };
        let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let timeout = std::time::Duration::from_secs(5);
        let never = BeatWatch::new(at(0));
        assert_eq!(never.silent(at(5), timeout), Some(timeout), "never heard");
        let mut watch = BeatWatch::new(at(0));
        assert_eq!(watch.heard(&beat(first), at(0)), None);
        assert_eq!(watch.heard(&beat(first), at(1)), None);
        assert_eq!(watch.silent(at(5), timeout), None);
        assert_eq!(watch.silent(at(7), timeout), Some(timeout + timeout / 5));
        assert_eq!(watch.heard(&beat(second), at(9)), Some(at(1)), "restarted");
        assert_eq!(watch.heard(&beat(second), at(10)), None);
    }

    #[test]
    fn messages_of_older_peers_still_decode() {
        let (a, b) = (MsgId::new(), MsgId::new());
        let old = OldHubReply::ResultStatus {
            completed: vec![a],
            pending: vec![b],
        };
        let new: HubReply = decode(&encode(&old).unwrap()).unwrap();
        assert_eq!(
            new,
            HubReply::ResultStatus {
                completed: vec![a],
                pending: vec![b],
                unknown: vec![],
            }
        );

        let engine = EngineRef {
            id: EngineId(3),
            uuid: EngineUuid::new(),
        };
        let old = OldHeartbeat {
            engine,
            running: Some(a),
            queued: 2,
            done: 7,
        };
        let new: Heartbeat = decode(&encode(&old).unwrap()).unwrap();
        assert_eq!((new.engine, new.done, new.dropped), (engine, 7, 0));

        let old = OldQueueStatus {
            engines: BTreeMap::from([(
                EngineId(3),
                OldEngineQueue {
                    queue: 1,
                    running: 1,
                    completed: 9,
                    current: None,
                },
            )]),
            unassigned: 4,
        };
        let new: QueueStatus = decode(&encode(&old).unwrap()).unwrap();
        assert_eq!((new.unassigned, new.dropped), (4, 0));
        assert_eq!(new.engines[&EngineId(3)].completed, 9);
        assert_eq!(new.engines[&EngineId(3)].dropped, 0);
    }
}
