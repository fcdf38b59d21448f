//! What a client has on the wire: the tasks waiting for their replies, the
//! window that bounds how many of them are published and unanswered at once
//! (back-pressure), and the backlog of submissions waiting for room.
//!
//! Core NATS drops messages that a subscriber cannot buffer (a slow
//! consumer), so a client that published without bound could bury the
//! controller under more submissions than it can hold, and lose some. Here a
//! submission is published only while fewer than the window's tasks are in
//! flight (published, no reply yet); the others wait in the backlog, in
//! order, and each reply (or failure) lets the next one out. Submitting never
//! blocks the caller: the backlog is the caller's own work, held in its
//! memory (`imap` bounds that too). Every task keeps what was published for
//! it (subject and bytes) until its reply comes, so the watchdog
//! (`watchdog.rs`) can publish it again when the controller says it never
//! saw it.
//!
//! Publishing happens on the caller's thread when the bus can publish at
//! once and nothing queued would be overtaken; else through the outbox task,
//! in order (which also offers large work as a blob first). This file never
//! blocks and never awaits: it is called from user threads, the reply
//! dispatcher and the watchdog alike.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use grid_bus::Bus;
use grid_proto::{BlobHash, ClientId, MsgId, Submission, TaskError};
use tokio::sync::mpsc;

use crate::result::ResultSet;

/// How many of a client's tasks may be in flight at once, by default (see
/// [`Client::set_max_in_flight`](crate::Client::set_max_in_flight)). Large
/// enough to keep a cluster's engines busy over a network round trip; small
/// enough that fifty clients together stay far below what the controller's
/// subscriptions buffer.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Why a task asked for by id (`get_result`) cannot be waited for.
pub(crate) fn unknown_task(msg_id: MsgId) -> String {
    format!(
        "the controller does not know task {msg_id}: never submitted, purged, or \
         forgotten (a controller without a task store restarted, or its in-memory \
         store dropped the oldest results)"
    )
}

/// A submission on its way out.
pub(crate) enum Outgoing {
    /// Encoded, ready to publish.
    Ready(String, Bytes),
    /// Its work must be offered as a blob first (by the outbox task).
    Spill(String, Box<Submission>),
}

/// A task waiting for its reply.
struct Waiting {
    set: Arc<ResultSet>,
    index: usize,
    /// Other results waiting for the same task (`get_result` of a task
    /// this client submitted).
    also: Vec<(Arc<ResultSet>, usize)>,
    /// Set for a task of another client this one watches (`get_result`):
    /// since when. It is never published by this client.
    watched: Option<Instant>,
    /// Its work, offered as a blob by this client until the reply comes.
    offered: Option<BlobHash>,
    /// Set once it leaves the backlog.
    sent: Option<Sent>,
}

/// What was published for a task, kept to publish it again.
struct Sent {
    subject: String,
    /// `None` while the outbox task is still offering its work.
    payload: Option<Bytes>,
    at: Instant,
    /// How many times it was published again.
    resent: u32,
}

struct State {
    waiting: HashMap<MsgId, Waiting>,
    /// How many of `waiting` are watched, not this client's.
    watched: usize,
    /// Not yet published, in submission order. Entries whose task is no
    /// longer waiting (aborted, failed) are skipped when they come up.
    backlog: VecDeque<(MsgId, Outgoing)>,
    in_flight: usize,
    /// When the last reply came (or the first task was published).
    last_reply: Instant,
}

/// A task done waiting, to be given its result outside the lock.
pub(crate) struct Finished {
    pub set: Arc<ResultSet>,
    pub index: usize,
    /// Other results waiting for it.
    pub also: Vec<(Arc<ResultSet>, usize)>,
}

/// The client's tasks on the wire. See the module docs.
pub(crate) struct InFlight {
    bus: Arc<dyn Bus>,
    client: ClientId,
    state: Mutex<State>,
    max_in_flight: AtomicUsize,
    /// See [`Client::set_controller_timeout`](crate::Client::set_controller_timeout), in ms.
    controller_timeout: AtomicU64,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Messages in the outbox not yet published.
    queued: AtomicUsize,
}

impl InFlight {
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        client: ClientId,
        outbox: mpsc::UnboundedSender<Outgoing>,
    ) -> InFlight {
        InFlight {
            bus,
            client,
            state: Mutex::new(State {
                waiting: HashMap::new(),
                watched: 0,
                backlog: VecDeque::new(),
                in_flight: 0,
                last_reply: Instant::now(),
            }),
            max_in_flight: AtomicUsize::new(DEFAULT_MAX_IN_FLIGHT),
            controller_timeout: AtomicU64::new(
                crate::watchdog::DEFAULT_CONTROLLER_TIMEOUT.as_millis() as u64,
            ),
            outbox,
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_max_in_flight(&self, n: usize) {
        self.max_in_flight.store(n.max(1), Ordering::Release);
        // A larger window lets more out now.
        let failed = self.refill(&mut self.lock());
        self.fail_unsent(failed);
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::Acquire)
    }

    pub(crate) fn set_controller_timeout(&self, timeout: std::time::Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.controller_timeout.store(ms, Ordering::Release);
    }

    pub(crate) fn controller_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.controller_timeout.load(Ordering::Acquire))
    }

    pub(crate) fn client(&self) -> ClientId {
        self.client
    }

    /// Registers `set`'s tasks (one message each, in task order) and
    /// publishes as many as the window allows; the rest wait their turn.
    pub(crate) fn submit(&self, set: &Arc<ResultSet>, messages: Vec<(MsgId, Outgoing)>) {
        let mut failed = Vec::new();
        {
            let mut s = self.lock();
            for (index, (msg_id, _)) in messages.iter().enumerate() {
                let waiting = Waiting {
                    set: set.clone(),
                    index,
                    also: Vec::new(),
                    watched: None,
                    offered: None,
                    sent: None,
                };
                s.waiting.insert(*msg_id, waiting);
            }
            let window = self.max_in_flight();
            for (msg_id, message) in messages {
                if s.backlog.is_empty() && s.in_flight < window {
                    if let Err(e) = self.send(&mut s, msg_id, message) {
                        failed.push((msg_id, e));
                    }
                } else {
                    s.backlog.push_back((msg_id, message));
                }
            }
        }
        self.fail_unsent(failed);
    }

    /// Publishes one task's message and counts it in flight.
    fn send(
        &self,
        s: &mut State,
        msg_id: MsgId,
        message: Outgoing,
    ) -> Result<(), grid_bus::BusError> {
        let Some(waiting) = s.waiting.get_mut(&msg_id) else {
            return Ok(());
        };
        let (subject, payload) = match &message {
            Outgoing::Ready(subject, payload) => (subject.clone(), Some(payload.clone())),
            Outgoing::Spill(subject, _) => (subject.clone(), None),
        };
        waiting.sent = Some(Sent {
            subject,
            payload,
            at: Instant::now(),
            resent: 0,
        });
        if s.in_flight == 0 {
            // Quiet is measured from the first task of a busy spell.
            s.last_reply = Instant::now();
        }
        s.in_flight += 1;
        self.publish(message)
    }

    /// Publishes from this thread when the bus can and nothing queued would
    /// be overtaken; else through the outbox task, in order.
    fn publish(&self, message: Outgoing) -> Result<(), grid_bus::BusError> {
        if let Outgoing::Ready(subject, payload) = &message
            && self.queued.load(Ordering::Acquire) == 0
            && let Some(done) = self.bus.publish_now(subject, payload)
        {
            return done;
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.outbox.send(message).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            grid_bus::BusError::Closed
        })
    }

    /// Lets backlog out while the window has room; returns the tasks that
    /// could not be published.
    fn refill(&self, s: &mut State) -> Vec<(MsgId, grid_bus::BusError)> {
        let window = self.max_in_flight();
        let mut failed = Vec::new();
        while s.in_flight < window {
            let Some((msg_id, message)) = s.backlog.pop_front() else {
                break;
            };
            if !s.waiting.contains_key(&msg_id) {
                continue;
            }
            if let Err(e) = self.send(s, msg_id, message) {
                failed.push((msg_id, e));
            }
        }
        failed
    }

    /// Fails tasks whose message could not be published.
    fn fail_unsent(&self, failed: Vec<(MsgId, grid_bus::BusError)>) {
        for (msg_id, error) in failed {
            let why = TaskError::Disconnected(format!("cannot publish the task: {error}"));
            self.fail(msg_id, why);
        }
    }

    /// The task's reply came (or it failed): it is no longer waited for.
    /// Its offered work is released, and the window lets the next one out.
    pub(crate) fn finish(&self, msg_id: MsgId) -> Option<Finished> {
        let (finished, failed) = {
            let mut s = self.lock();
            let waiting = s.waiting.remove(&msg_id)?;
            if waiting.watched.is_some() {
                s.watched -= 1;
            }
            if waiting.sent.is_some() {
                s.in_flight = s.in_flight.saturating_sub(1);
                s.last_reply = Instant::now();
            }
            if let Some(hash) = waiting.offered {
                self.bus.release_blob(&hash);
            }
            let failed = self.refill(&mut s);
            (
                Finished {
                    set: waiting.set,
                    index: waiting.index,
                    also: waiting.also,
                },
                failed,
            )
        };
        self.fail_unsent(failed);
        Some(finished)
    }

    /// The result set and index of a task still waiting (for its live output).
    pub(crate) fn lookup(&self, msg_id: MsgId) -> Option<Finished> {
        let s = self.lock();
        let waiting = s.waiting.get(&msg_id)?;
        Some(Finished {
            set: waiting.set.clone(),
            index: waiting.index,
            also: Vec::new(),
        })
    }

    /// Fails a waiting task on the client's own authority.
    pub(crate) fn fail(&self, msg_id: MsgId, error: TaskError) {
        if let Some(Finished { set, index, also }) = self.finish(msg_id) {
            for (set, index) in also {
                set.fail(index, self.client, error.clone());
            }
            set.fail(index, self.client, error);
        }
    }

    /// Fails every waiting task with `error` (the connection is gone).
    pub(crate) fn fail_all(&self, error: TaskError) {
        let ids: Vec<MsgId> = {
            let mut s = self.lock();
            // Nothing more goes out: failing one must not let another leave.
            s.backlog.clear();
            s.waiting.keys().copied().collect()
        };
        for msg_id in ids {
            self.fail(msg_id, error.clone());
        }
    }

    /// Of `msg_ids`, answers those still in the backlog `aborted` (they were
    /// never published, so no one else can); returns the others, for the
    /// controller to abort (tasks of other clients among them).
    pub(crate) fn abort_unsent(&self, msg_ids: &[MsgId]) -> Vec<MsgId> {
        let mut unsent = Vec::new();
        let mut sent = Vec::new();
        {
            let mut s = self.lock();
            for id in msg_ids {
                match s.waiting.get(id) {
                    Some(w) if w.sent.is_none() => unsent.push(*id),
                    _ => sent.push(*id),
                }
            }
            if !unsent.is_empty() {
                let gone: HashSet<MsgId> = unsent.iter().copied().collect();
                s.backlog.retain(|(id, _)| !gone.contains(id));
            }
        }
        for msg_id in unsent {
            self.fail(msg_id, TaskError::Aborted);
        }
        sent
    }

    /// The outbox task offered `msg_id`'s work as `hash` and is about to
    /// publish `payload`; `false` when the task is no longer waited for (the
    /// blob is released and nothing need be published).
    pub(crate) fn spilled(&self, msg_id: MsgId, hash: Option<BlobHash>, payload: &Bytes) -> bool {
        let mut s = self.lock();
        let Some(waiting) = s.waiting.get_mut(&msg_id) else {
            if let Some(hash) = hash {
                self.bus.release_blob(&hash);
            }
            return false;
        };
        waiting.offered = hash;
        if let Some(sent) = &mut waiting.sent {
            sent.payload = Some(payload.clone());
        }
        true
    }

    /// The outbox published one message.
    pub(crate) fn dequeued(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// Every task still waiting, sorted.
    pub(crate) fn outstanding(&self) -> Vec<MsgId> {
        let mut ids: Vec<MsgId> = self.lock().waiting.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The distinct result sets with a task still waiting.
    pub(crate) fn waiting_sets(&self) -> Vec<Arc<ResultSet>> {
        let s = self.lock();
        let mut seen = HashSet::new();
        s.waiting
            .values()
            .filter(|w| seen.insert(Arc::as_ptr(&w.set)))
            .map(|w| w.set.clone())
            .collect()
    }

    /// Whether no reply has come for `quiet` while tasks were in flight
    /// (or watched).
    pub(crate) fn quiet_since(&self) -> Option<Instant> {
        let s = self.lock();
        (s.in_flight + s.watched > 0).then_some(s.last_reply)
    }

    /// Waits for the results of `msg_ids`, tasks of any client, as task
    /// `index` of `set` each (`get_result`); returns the ids newly watched
    /// (those this client already waits for, its own, are not).
    pub(crate) fn watch(&self, set: &Arc<ResultSet>, msg_ids: &[MsgId]) -> Vec<MsgId> {
        let mut s = self.lock();
        let mut new = Vec::new();
        if s.in_flight + s.watched == 0 {
            s.last_reply = Instant::now();
        }
        for (index, msg_id) in msg_ids.iter().enumerate() {
            match s.waiting.get_mut(msg_id) {
                Some(waiting) => waiting.also.push((set.clone(), index)),
                None => {
                    s.waiting.insert(
                        *msg_id,
                        Waiting {
                            set: set.clone(),
                            index,
                            also: Vec::new(),
                            watched: Some(Instant::now()),
                            offered: None,
                            sent: None,
                        },
                    );
                    s.watched += 1;
                    new.push(*msg_id);
                }
            }
        }
        new
    }

    /// The tasks this client watches (not its own), for a controller that
    /// restarted and forgot who watches what.
    pub(crate) fn watched(&self) -> Vec<MsgId> {
        let s = self.lock();
        let mut ids: Vec<MsgId> = s
            .waiting
            .iter()
            .filter(|(_, w)| w.watched.is_some())
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Fails with `error` every waiting task that only the controller can
    /// finish: those sent to `subject` (the scheduler), published or not,
    /// and those watched.
    pub(crate) fn fail_through(&self, subject: &str, error: TaskError) {
        let ids: Vec<MsgId> = {
            let mut s = self.lock();
            let ids: Vec<MsgId> = s
                .waiting
                .iter()
                .filter(|(_, w)| {
                    w.watched.is_some()
                        || w.sent.as_ref().is_some_and(|sent| sent.subject == subject)
                })
                .map(|(id, _)| *id)
                .collect();
            let mut unsent = Vec::new();
            s.backlog.retain(|(id, outgoing)| {
                let (Outgoing::Ready(to, _) | Outgoing::Spill(to, _)) = outgoing;
                let through = to == subject;
                if through {
                    unsent.push(*id);
                }
                !through
            });
            ids.into_iter().chain(unsent).collect()
        };
        for msg_id in ids {
            self.fail(msg_id, error.clone());
        }
    }

    /// Up to `limit` published tasks, oldest first, published before `cutoff`.
    pub(crate) fn published_before(&self, cutoff: Instant, limit: usize) -> Vec<MsgId> {
        let s = self.lock();
        let mut old: Vec<(Instant, MsgId)> = s
            .waiting
            .iter()
            .filter_map(|(id, w)| {
                let at = match (&w.sent, w.watched) {
                    (Some(sent), _) if sent.payload.is_some() => sent.at,
                    (None, Some(since)) => since,
                    _ => return None,
                };
                (at <= cutoff).then_some((at, *id))
            })
            .collect();
        old.sort_unstable();
        old.truncate(limit);
        old.into_iter().map(|(_, id)| id).collect()
    }

    /// Publishes these tasks again (the controller never saw them); those
    /// already published `max_resent` more times fail as lost instead, and
    /// so do watched ones (another client's: the controller forgot them).
    pub(crate) fn resend(&self, msg_ids: &[MsgId], max_resent: u32) {
        let mut lost = Vec::new();
        let mut forgotten = Vec::new();
        let mut failed = Vec::new();
        {
            let mut s = self.lock();
            for id in msg_ids {
                let Some(waiting) = s.waiting.get_mut(id) else {
                    continue;
                };
                if waiting.watched.is_some() {
                    forgotten.push(*id);
                    continue;
                }
                let Some(sent) = waiting.sent.as_mut() else {
                    continue;
                };
                let Some(payload) = sent.payload.clone() else {
                    continue;
                };
                if sent.resent >= max_resent {
                    lost.push(*id);
                    continue;
                }
                sent.resent += 1;
                sent.at = Instant::now();
                let message = Outgoing::Ready(sent.subject.clone(), payload);
                tracing::warn!(msg_id = %id, "the controller never saw this task: publishing it again");
                if let Err(e) = self.publish(message) {
                    failed.push((*id, e));
                }
            }
        }
        self.fail_unsent(failed);
        for msg_id in lost {
            let why = format!(
                "the controller never received the task, published {} times",
                max_resent + 1
            );
            self.fail(msg_id, TaskError::Lost(why));
        }
        for msg_id in forgotten {
            self.fail(msg_id, TaskError::Lost(unknown_task(msg_id)));
        }
    }
}
