//! Dependencies between tasks, as ipyparallel's `Dependency` has them.
//!
//! A [`Dependency`] names tasks by msg id and says when they count as met:
//! `all` of them or `any`, finished with success (`success`), with failure
//! (`failure`), or either. A load-balanced task waits for its `after`
//! dependency (time) and runs where its `follow` dependency ran (place);
//! the scheduler (`grid-controller`'s `scheduler.rs`) has the rules. This
//! file only holds the value and the two questions every rule asks of it:
//! is it met, can it still be met. It performs no bookkeeping of tasks.

use serde::{Deserialize, Serialize};

use crate::MsgId;

/// Tasks a task depends on, and what counts as meeting them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dependency {
    pub msg_ids: Vec<MsgId>,
    /// Met when all of them are met (`true`, the default) or any one.
    pub all: bool,
    /// A task that finished successfully meets it (default `true`).
    pub success: bool,
    /// A task that failed (an error or an abort) meets it (default `false`).
    pub failure: bool,
}

impl Dependency {
    /// All of `msg_ids`, each finished successfully: ipyparallel's
    /// `Dependency(ids)`.
    pub fn new(msg_ids: impl IntoIterator<Item = MsgId>) -> Dependency {
        Dependency {
            msg_ids: msg_ids.into_iter().collect(),
            all: true,
            success: true,
            failure: false,
        }
    }

    /// Met by any one of the tasks rather than all.
    pub fn any(mut self) -> Dependency {
        self.all = false;
        self
    }

    /// Met by all the tasks (the default).
    pub fn all(mut self) -> Dependency {
        self.all = true;
        self
    }

    /// Whether a task that succeeded meets it.
    pub fn success(mut self, success: bool) -> Dependency {
        self.success = success;
        self
    }

    /// Whether a task that failed meets it.
    pub fn failure(mut self, failure: bool) -> Dependency {
        self.failure = failure;
        self
    }

    /// Whether a task that finished with `ok` meets this dependency.
    pub fn accepts(&self, ok: bool) -> bool {
        if ok { self.success } else { self.failure }
    }

    /// Whether it is empty (met at once, as in ipyparallel).
    pub fn is_empty(&self) -> bool {
        self.msg_ids.is_empty()
    }

    /// What `accepted` met and `rejected` finished otherwise out of the
    /// dependency's tasks say: met, still possible, or never.
    pub fn verdict(&self, accepted: usize, rejected: usize) -> Verdict {
        let total = self.msg_ids.len();
        if total == 0 {
            return Verdict::Met;
        }
        if self.all {
            if rejected > 0 {
                Verdict::Unreachable
            } else if accepted >= total {
                Verdict::Met
            } else {
                Verdict::Waiting
            }
        } else if accepted > 0 {
            Verdict::Met
        } else if rejected >= total {
            Verdict::Unreachable
        } else {
            Verdict::Waiting
        }
    }

    /// The dependency in words: `all of 3 tasks succeeding`.
    pub fn describe(&self) -> String {
        let how = match (self.success, self.failure) {
            (true, false) => "succeeding",
            (false, true) => "failing",
            (true, true) => "finishing",
            (false, false) => "finishing in no accepted way",
        };
        let n = self.msg_ids.len();
        let which = match (self.all, n) {
            (_, 1) => "1 task".to_string(),
            (true, n) => format!("all of {n} tasks"),
            (false, n) => format!("any of {n} tasks"),
        };
        format!("{which} {how}")
    }
}

impl From<Vec<MsgId>> for Dependency {
    fn from(msg_ids: Vec<MsgId>) -> Dependency {
        Dependency::new(msg_ids)
    }
}

impl From<MsgId> for Dependency {
    fn from(msg_id: MsgId) -> Dependency {
        Dependency::new([msg_id])
    }
}

impl From<&[MsgId]> for Dependency {
    fn from(msg_ids: &[MsgId]) -> Dependency {
        Dependency::new(msg_ids.iter().copied())
    }
}

/// Where a dependency stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Waiting,
    /// It can never be met (ipyparallel's `ImpossibleDependency`).
    Unreachable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_ipyparallel() {
        let ids: Vec<MsgId> = (0..3).map(|_| MsgId::new()).collect();
        let all = Dependency::new(ids.clone());
        assert_eq!(all.verdict(2, 0), Verdict::Waiting);
        assert_eq!(all.verdict(3, 0), Verdict::Met);
        assert_eq!(all.verdict(2, 1), Verdict::Unreachable);
        let any = Dependency::new(ids).any();
        assert_eq!(any.verdict(0, 2), Verdict::Waiting);
        assert_eq!(any.verdict(1, 2), Verdict::Met);
        assert_eq!(any.verdict(0, 3), Verdict::Unreachable);
        assert_eq!(Dependency::new([]).verdict(0, 0), Verdict::Met);
        let on_failure = Dependency::from(MsgId::new()).success(false).failure(true);
        assert!(on_failure.accepts(false) && !on_failure.accepts(true));
        assert_eq!(on_failure.describe(), "1 task failing");
        assert_eq!(all_of(4).describe(), "all of 4 tasks succeeding");
    }

    fn all_of(n: usize) -> Dependency {
        Dependency::new((0..n).map(|_| MsgId::new()))
    }
}
