//! `grid-controller`: the controller of a Grid cluster, the hub and the
//! scheduler.
//!
//! The hub ([`Hub`], `hub.rs`) registers engines, records every submission
//! and result it sees in an in-memory task store, and answers the `hub.<op>`
//! requests; the scheduler ([`Scheduler`], `scheduler.rs`) places
//! load-balanced tasks on engines by the cluster's [`Scheme`], holds tasks
//! until their dependencies are met and runs failed ones again (retries). Both are sans-I/O state machines (an event
//! and the time in, actions out), tested without a bus or a clock; the async
//! shell (`service.rs`: [`start`], [`run`]) connects them to a [`grid_bus::Bus`].

pub mod gc;
mod hub;
mod scheduler;
mod service;
pub mod store;

pub use gc::{GcReport, collect_blobs, collectable};
pub use grid_proto::{Scheme, UnknownScheme};
pub use hub::{
    ControllerConfig, DEFAULT_HEARTBEAT_TIMEOUT, DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_RECORDS,
    Hub, HubAction, HubEvent, ORPHAN_GRACE, PURE_GRACE, RECENT_DONE, RESULTS_BYTES, Readiness,
};
pub use scheduler::{
    DEFAULT_HWM, DepState, Placement, SchedAction, SchedEvent, Scheduler, SchedulerConfig,
    UNKNOWN_GRACE,
};
pub use service::{ControllerError, ControllerHandle, run, start, start_with_store};
pub use store::{MemoryStore, SqliteStore, StoreError, TaskStore};
