//! Subjects: where each message goes on the bus.
//!
//! Every subject starts with `grid.<cluster>.`, so one NATS server can carry
//! several clusters that never see each other's traffic. Subjects are
//! dot-separated tokens; `*` matches one token and `>` the rest, as in NATS.
//! Build subjects here and nowhere else.

use crate::{ClientId, EngineId};

/// The subjects of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

/// The queue group in which engines share `sched.pure`.
pub const PURE_QUEUE: &str = "engines";

/// The cluster name used when none is given.
pub const DEFAULT_CLUSTER: &str = "default";

impl Subjects {
    /// Subjects of cluster `cluster` (one token: no dots, spaces or wildcards).
    pub fn new(cluster: &str) -> Result<Subjects, InvalidCluster> {
        let ok = !cluster.is_empty()
            && cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(InvalidCluster(cluster.to_string()));
        }
        Ok(Subjects {
            prefix: format!("grid.{cluster}."),
        })
    }

    /// `hub.<op>`: requests to the controller.
    pub fn hub(&self, op: &str) -> String {
        format!("{}hub.{op}", self.prefix)
    }

    /// `sched.submit`: load-balanced submissions.
    pub fn sched_submit(&self) -> String {
        format!("{}sched.submit", self.prefix)
    }

    /// `sched.result`: results of tasks sent with retries, which the
    /// scheduler may run again; it forwards the final one to the client.
    pub fn sched_result(&self) -> String {
        format!("{}sched.result", self.prefix)
    }

    /// `sched.pure`: load-balanced submissions of a cluster whose scheme is
    /// `pure`: engines share them as the queue group [`PURE_QUEUE`], and
    /// the controller records them.
    pub fn sched_pure(&self) -> String {
        format!("{}sched.pure", self.prefix)
    }

    /// `sched.claim`: engines say which `sched.pure` tasks they took.
    pub fn sched_claim(&self) -> String {
        format!("{}sched.claim", self.prefix)
    }

    /// `engine.<id>.task`: work for one engine.
    pub fn engine_task(&self, id: EngineId) -> String {
        format!("{}engine.{id}.task", self.prefix)
    }

    /// `engine.*.task`: every engine's work (the controller records it).
    pub fn all_engine_tasks(&self) -> String {
        format!("{}engine.*.task", self.prefix)
    }

    /// `engine.<id>.control`: abort and shutdown, outside the task queue.
    pub fn engine_control(&self, id: EngineId) -> String {
        format!("{}engine.{id}.control", self.prefix)
    }

    /// `heartbeat.<id>`: engine liveness.
    pub fn heartbeat(&self, id: EngineId) -> String {
        format!("{}heartbeat.{id}", self.prefix)
    }

    /// `heartbeat.*`.
    pub fn all_heartbeats(&self) -> String {
        format!("{}heartbeat.*", self.prefix)
    }

    /// `result.<client>`: results for one client.
    pub fn result(&self, client: ClientId) -> String {
        format!("{}result.{}", self.prefix, client.0.simple())
    }

    /// `result.*`: every result (the controller records them).
    pub fn all_results(&self) -> String {
        format!("{}result.*", self.prefix)
    }

    /// `iopub.<client>`: live output of running tasks.
    pub fn iopub(&self, client: ClientId) -> String {
        format!("{}iopub.{}", self.prefix, client.0.simple())
    }

    /// `events`: engines registered, unregistered, died.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// `controller`: the controller's beat ([`ControllerBeat`](crate::ControllerBeat)).
    pub fn controller(&self) -> String {
        format!("{}controller", self.prefix)
    }
}

impl Default for Subjects {
    fn default() -> Self {
        Subjects {
            prefix: format!("grid.{DEFAULT_CLUSTER}."),
        }
    }
}

/// A cluster name that cannot be one subject token.
#[derive(Debug, thiserror::Error)]
#[error("invalid cluster name {0:?}: use letters, digits, '-' and '_'")]
pub struct InvalidCluster(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_prefixed_by_cluster() {
        let s = Subjects::new("lab").unwrap();
        assert_eq!(s.engine_task(EngineId(3)), "grid.lab.engine.3.task");
        assert_eq!(s.hub("register"), "grid.lab.hub.register");
        assert!(Subjects::new("a.b").is_err());
        assert!(Subjects::new("*").is_err());
    }
}
