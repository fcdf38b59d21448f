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
//! The client never runs wasm itself: every call travels as a message to an
//! engine, on the LocalBus or on NATS alike.

mod client;
mod connect;
mod error;
#[cfg(feature = "local")]
mod local;
mod module;
mod result;
mod view;

pub use client::Client;
pub use error::{CompositeError, Error, RemoteError};
pub use grid_proto::{Arg, EngineId, Limits, MsgId, Status, TaskError, Value};
pub use module::{Function, Module};
pub use result::{AsyncMapResult, AsyncResult, MapIter, Metadata};
pub use view::{DirectView, LoadBalancedView, reference, zip};
