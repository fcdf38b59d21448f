//! The engine slot's task queue, as a sans-I/O state machine.
//!
//! Work arrives in order and runs one at a time; an abort drops queued work
//! (which is answered `aborted` without running) or interrupts the running
//! task. An abort can overtake the work it names (they travel on different
//! subjects), so ids aborted before their work arrived are remembered, a
//! bounded number of them, and that work is aborted on arrival. The async
//! shell in `service.rs` feeds events in and carries actions out.

use std::collections::VecDeque;

use grid_proto::{EarlyAborts, MsgId, Submission};

#[derive(Debug)]
pub(crate) enum QueueEvent {
    Arrived(Submission),
    Abort(Vec<MsgId>),
    Finished(MsgId),
}

#[derive(Debug, PartialEq)]
pub(crate) enum QueueAction {
    /// Hand this work to the worker.
    Start(Submission),
    /// Answer this work `aborted` without running it.
    Aborted(Submission),
    /// Interrupt the running task.
    Interrupt(MsgId),
}

#[derive(Default)]
pub(crate) struct TaskQueue {
    waiting: VecDeque<Submission>,
    running: Option<MsgId>,
    early_aborts: EarlyAborts,
    done: u64,
}

impl TaskQueue {
    pub(crate) fn handle(&mut self, event: QueueEvent) -> Vec<QueueAction> {
        let mut actions = Vec::new();
        match event {
            QueueEvent::Arrived(sub) => {
                if self.early_aborts.take(&sub.msg_id) {
                    actions.push(QueueAction::Aborted(sub));
                } else {
                    self.waiting.push_back(sub);
                }
            }
            QueueEvent::Abort(ids) => {
                for id in ids {
                    if self.running == Some(id) {
                        actions.push(QueueAction::Interrupt(id));
                    } else if let Some(pos) = self.waiting.iter().position(|s| s.msg_id == id) {
                        if let Some(sub) = self.waiting.remove(pos) {
                            actions.push(QueueAction::Aborted(sub));
                        }
                    } else {
                        self.early_aborts.remember(id);
                    }
                }
            }
            QueueEvent::Finished(id) => {
                if self.running == Some(id) {
                    self.running = None;
                    self.done += 1;
                }
            }
        }
        if self.running.is_none()
            && let Some(next) = self.waiting.pop_front()
        {
            self.running = Some(next.msg_id);
            actions.push(QueueAction::Start(next));
        }
        actions
    }

    #[cfg(test)]
    pub(crate) fn running(&self) -> Option<MsgId> {
        self.running
    }

    pub(crate) fn queued(&self) -> u64 {
        self.waiting.len() as u64
    }

    pub(crate) fn done(&self) -> u64 {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_proto::{ClientId, Timestamp, Work};

    fn sub() -> Submission {
        Submission {
            msg_id: MsgId::new(),
            client: ClientId::new(),
            submitted: Timestamp::now(),
            work: grid_proto::Body::new(&Work::Clear).unwrap(),
            sched: Default::default(),
        }
    }

    #[test]
    fn runs_one_at_a_time_in_order() {
        let mut q = TaskQueue::default();
        let (a, b) = (sub(), sub());
        assert_eq!(
            q.handle(QueueEvent::Arrived(a.clone())),
            vec![QueueAction::Start(a.clone())]
        );
        assert_eq!(q.handle(QueueEvent::Arrived(b.clone())), vec![]);
        assert_eq!(q.queued(), 1);
        assert_eq!(
            q.handle(QueueEvent::Finished(a.msg_id)),
            vec![QueueAction::Start(b.clone())]
        );
        assert_eq!(q.handle(QueueEvent::Finished(b.msg_id)), vec![]);
        assert_eq!(q.done(), 2);
    }

    #[test]
    fn abort_drops_queued_and_interrupts_running() {
        let mut q = TaskQueue::default();
        let (a, b) = (sub(), sub());
        q.handle(QueueEvent::Arrived(a.clone()));
        q.handle(QueueEvent::Arrived(b.clone()));
        let actions = q.handle(QueueEvent::Abort(vec![b.msg_id, a.msg_id]));
        assert_eq!(
            actions,
            vec![QueueAction::Aborted(b), QueueAction::Interrupt(a.msg_id)]
        );
        assert_eq!(
            q.running(),
            Some(a.msg_id),
            "running until the worker says it stopped"
        );
    }

    #[test]
    fn an_abort_that_overtakes_its_task_still_aborts_it() {
        let mut q = TaskQueue::default();
        let a = sub();
        assert_eq!(q.handle(QueueEvent::Abort(vec![a.msg_id])), vec![]);
        assert_eq!(
            q.handle(QueueEvent::Arrived(a.clone())),
            vec![QueueAction::Aborted(a)]
        );
    }
}
