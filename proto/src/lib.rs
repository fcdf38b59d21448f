//! `grid-proto`: the vocabulary every Grid crate shares.
//!
//! Identifiers ([`MsgId`], [`EngineId`], [`ModuleHash`]), the data model on the
//! wire ([`Value`]), tasks ([`Task`]) and their results ([`TaskResult`],
//! [`TaskError`]), the cluster's messages ([`Submission`], [`Reply`],
//! [`HubRequest`], ...) and [`Subjects`], and the CBOR codec that turns them
//! into bytes. This crate
//! performs no I/O and knows nothing of wasm or of any bus: it is what crosses
//! the wire, so that the engine, the controller and the client agree on it.

mod aborts;
mod body;
pub mod cbor;
mod codec;
mod dependency;
mod ids;
mod record;
mod result;
mod scheme;
mod subjects;
mod task;
mod typed;
mod value;
mod wire;

pub use aborts::{EARLY_ABORTS, EarlyAborts};
pub use body::Body;
pub use codec::{CodecError, decode, decode_shared, encode};
pub use dependency::{Dependency, Verdict};
pub use ids::{
    ArgsHash, BlobHash, ConfigHash, EngineId, EngineUuid, ModuleHash, MsgId, OutputHash,
    ParseHashError, Timestamp,
};
pub use record::{
    Purge, RecordKey, RecordStatus, TaskFilter, TaskRecord, TimeRange, UnknownStatus,
};
pub use result::{Fingerprint, Frame, LimitKind, Outcome, Status, TaskError, TaskResult, TrapKind};
pub use scheme::{Scheme, UnknownScheme};
pub use subjects::{DEFAULT_CLUSTER, InvalidCluster, PURE_QUEUE, Subjects};
pub use task::{Arg, Call, Deterministic, DirGrant, Limits, Task};
pub use typed::{Elem, Element, TypedArray, TypedError};
pub use value::{FromJsonError, Value};
pub use wire::{
    BeatWatch, CONTROLLER_BEAT, Claim, ClientId, ClusterEvent, Control, ControllerBeat, EngineInfo,
    EngineQueue, EngineRef, Heartbeat, HubReply, HubRequest, Iopub, QueueStatus, Reply, SchedFlags,
    Stream, Submission, Work,
};
