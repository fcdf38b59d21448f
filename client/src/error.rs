//! The client's errors: what failed on an engine ([`RemoteError`]), several
//! such failures at once ([`CompositeError`]), a wait that timed out, and
//! problems reaching the cluster.

use std::fmt;
use std::time::Duration;

use grid_bus::BusError;
use grid_proto::{EngineId, MsgId, TaskError};

/// A task that failed on an engine (or could not reach one).
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteError {
    pub msg_id: MsgId,
    /// The engine it ran on; `None` if it never reached one.
    pub engine_id: Option<EngineId>,
    /// The function called (`push`, `pull`, ... for namespace work).
    pub function: String,
    /// For maps: the index of the failing item in the whole input.
    pub item: Option<usize>,
    /// What happened, with all its facts.
    pub error: TaskError,
}

impl RemoteError {
    /// The kind of failure: `trap`, `limit`, `bad_arguments`, ...
    pub fn kind(&self) -> &'static str {
        self.error.kind()
    }
}

impl RemoteError {
    /// One line: `item N: [engine E] function: cause` (see [`TaskError::summary`]).
    pub fn summary(&self) -> String {
        let item = self.item.map(|i| format!("item {i}: ")).unwrap_or_default();
        let engine = match self.engine_id {
            Some(id) => format!("engine {id}"),
            None => "no engine".to_string(),
        };
        format!(
            "{item}[{engine}] {}: {}",
            self.function,
            self.error.summary()
        )
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(item) = self.item {
            write!(f, "item {item}: ")?;
        }
        match self.engine_id {
            Some(id) => write!(f, "[engine {id}] ")?,
            None => write!(f, "[no engine] ")?,
        }
        // A task asked for by id (`get_result`) has no function name here:
        // its msg id says which it is.
        match self.function.as_str() {
            "" => write!(f, "task {}: {}", self.msg_id, self.error),
            function => write!(f, "{function}: {}", self.error),
        }
    }
}

impl std::error::Error for RemoteError {}

/// Several tasks of one result failed.
#[derive(Clone, Debug, PartialEq)]
pub struct CompositeError {
    pub errors: Vec<RemoteError>,
}

impl fmt::Display for CompositeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tasks failed", self.errors.len())?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CompositeError {}

/// Everything the client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Boxed: it is large, and most results are not errors.
    #[error(transparent)]
    Remote(Box<RemoteError>),
    #[error(transparent)]
    Composite(#[from] CompositeError),
    #[error("timed out after {0:?} waiting for results")]
    Timeout(Duration),
    #[error("cluster: {0}")]
    Bus(#[from] BusError),
    #[error("the controller answered: {0}")]
    Hub(String),
    #[error("invalid module {path}: {reason}")]
    Module { path: String, reason: String },
    #[error("no engines to run on")]
    NoEngines,
    /// [`Client::wait_for_engines`](crate::Client::wait_for_engines) gave up:
    /// fewer than `wanted` engines registered within its timeout.
    #[error(
        "timed out after {:.1} s waiting for {wanted} engine{s}: {found} registered",
        waited.as_secs_f64(),
        s = if *wanted == 1 { "" } else { "s" }
    )]
    EnginesTimeout {
        wanted: usize,
        found: usize,
        waited: Duration,
    },
    #[error("{0}")]
    Usage(String),
    #[error("cannot start the client's runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Error {
        Error::Remote(Box::new(e))
    }
}

impl Error {
    /// Builds the error of a set of failures: one as itself, several composite.
    pub(crate) fn from_failures(mut errors: Vec<RemoteError>) -> Option<Error> {
        match errors.len() {
            0 => None,
            1 => errors.pop().map(Error::from),
            _ => Some(Error::Composite(CompositeError { errors })),
        }
    }
}
