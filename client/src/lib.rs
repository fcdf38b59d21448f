//! `grid-client`: use a Grid cluster from Rust, the way ipyparallel users use
//! theirs.
//!
//! A [`Client`] connects to a cluster on a NATS server ([`Client::connect`])
//! or, with the `local` feature, starts one in this process
//! ([`Client::local`]); [`Client::view`] gives a
//! [`DirectView`] on chosen engines and [`Client::load_balanced_view`] a
//! [`LoadBalancedView`]. Applying or mapping a [`Function`] of a [`Module`]
//! returns an [`AsyncResult`] or [`AsyncMapResult`]: wait, get, iterate,
//! read metadata, abort.
//!
//! ```no_run
//! # fn main() -> Result<(), grid_client::Error> {
//! use grid_client::{Client, Value};
//!
//! let client = Client::local(2)?;
//! let square = client.load_module("examples/guests/wat/square.wat")?.func("square");
//! let lb = client.load_balanced_view();
//! assert_eq!(lb.apply_sync(&square, [Value::from(4)])?, Value::from(16));
//! let squares = lb.map_sync(&square, vec![(0..10).map(Value::from).collect()])?;
//! assert_eq!(squares[9], Value::from(81));
//! # Ok(()) }
//! ```
//!
//! Beyond that, as ipyparallel's client has it:
//! - engines by position, evaluated now: [`Client::select`] (`rc[-1]`,
//!   `rc[1:3]`, `rc[::2]` are `select(-1)`, `select(1..3)`,
//!   `select((.., 2))`; see [`Select`]);
//! - a map over any iterator in bounded memory: `imap` on both views, an
//!   [`Imap`] that is an `Iterator` and, with [`Imap::into_stream`], a
//!   `Stream`;
//! - task graphs on the load-balanced view: [`LoadBalancedView::after`]
//!   and [`LoadBalancedView::follow`] take a [`Dependency`] (from msg ids
//!   or results), [`LoadBalancedView::retries`] runs failed tasks again
//!   elsewhere;
//! - waiting: [`Client::wait`] for several results (or everything
//!   [`outstanding`](Client::outstanding)), [`Client::wait_for_engines`];
//! - every hub query in a blocking and an async form; the async forms, and
//!   those of the results, work on any executor, not only tokio's.
//!
//! The client never runs wasm itself: every call travels as a message to an
//! engine, on the LocalBus or on NATS alike. Nothing it sends is lost
//! unnoticed: at most [`DEFAULT_MAX_IN_FLIGHT`] tasks are on the wire at
//! once (the rest wait in the client: see [`Client::set_max_in_flight`]),
//! and a watchdog asks the controller about tasks that get no reply, to
//! recover a lost result or publish a lost task again ([`QUIET`],
//! [`MAX_RESENT`]).

mod client;
mod command;
mod connect;
mod error;
mod imap;
mod inflight;
#[cfg(feature = "local")]
mod local;
mod map;
mod module;
mod output;
mod result;
mod select;
mod view;
mod wait;
mod watchdog;

pub use client::{Client, TaskStatus};
pub use command::Command;
pub use connect::RECONNECT_GRACE;
pub use error::{CompositeError, Error, RemoteError};
pub use imap::{Imap, default_max_outstanding};
pub use inflight::DEFAULT_MAX_IN_FLIGHT;
#[cfg(feature = "local")]
pub use local::LocalBuilder;
pub use map::{AsyncMapResult, MapIter};
pub use module::{Function, Module};
pub use output::{OutputChunk, OutputHandler};
pub use result::{AsyncResult, Metadata, Wait};
pub use select::Select;
pub use view::{DirectView, LoadBalancedView, reference, zip};
pub use watchdog::{CONTROLLER_GRACE, DEFAULT_CONTROLLER_TIMEOUT, MAX_RESENT, QUIET, RESEND_BATCH};

/// The cluster's data model and messages, as they appear in this crate's
/// signatures (re-exported from `grid-proto`, so users need not depend on it).
pub use grid_proto::{
    Arg, ArgsHash, BlobHash, Body, ClientId, ClusterEvent, ConfigHash, DEFAULT_CLUSTER, Dependency,
    Deterministic, DirGrant, Elem, Element, EngineId, EngineInfo, EngineQueue, EngineRef,
    EngineUuid, Fingerprint, Frame, HubReply, HubRequest, Iopub, LimitKind, Limits, ModuleHash,
    MsgId, Outcome, OutputHash, Purge, QueueStatus, RecordKey, RecordStatus, Reply, Scheme, Status,
    Stream, Subjects, TaskError, TaskFilter, TaskRecord, TaskResult, TimeRange, Timestamp,
    TrapKind, TypedArray, TypedError, Value,
};

/// The engines' configuration, for [`Client::local_with`] (re-exported
/// from `grid-host`).
#[cfg(feature = "local")]
pub use grid_host::EngineConfig;

/// The bus a client talks through, for [`Client::connect_bus`] (re-exported
/// from `grid-bus`).
pub use grid_bus::{Bus, BusError, BusEvent, LocalBus, NatsBus};
