//! The controller's async shell: bus in, [`Hub`] in the middle, bus out.
//!
//! One loop subscribes to the controller's subjects (`hub.>`,
//! `sched.submit`, `engine.*.task`, `result.*`, `sched.result`,
//! `sched.pure`, `sched.claim`, `heartbeat.*`), decodes each
//! message, feeds it to the hub with `Instant::now()`, and publishes what the
//! hub asks for; a timer wakes it at [`Hub::poll_timeout`]. The loop is a
//! task on the runtime when the bus reads messages there (NATS; `grid
//! controller` gives it a runtime of one thread, so the thread that reads the
//! socket also runs the hub and writes its messages), else a thread of its
//! own that spins briefly before parking (the in-process bus): see
//! [`spawn_consumer`]. Every decision is
//! the hub's: this file only moves bytes. A malformed message is logged and
//! skipped (a malformed request is answered with `HubReply::Error`), never a
//! panic, because anything on the bus may come from anyone.
//!
//! Messages the bus drops (NATS's slow consumer: see
//! [`Bus::dropped_messages`]) cannot be seen here, only counted: before each
//! input the shell reads the bus's count, feeds it to the hub when it changed
//! ([`HubEvent::BusDrops`], reported in `queue_status`). Warning about
//! them is the business of whoever watches the bus's connection events
//! (`grid controller` logs them, rate-limited). The count is read when an input arrives, and engines beat every second,
//! so a drop shows within about a second.
//!
//! [`start`] returns once every subscription is registered, so engines that
//! register after it returns are heard. The controller stops on a `Shutdown`
//! request, on [`ControllerHandle::stop`], or when its handle is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use grid_bus::{Bus, BusError, Message, Subscription, spawn_consumer};
use grid_proto::{
    CONTROLLER_BEAT, ControllerBeat, EngineId, Heartbeat, HubReply, HubRequest, Subjects,
    Timestamp, decode, encode,
};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::hub::{ControllerConfig, Hub, HubAction, HubEvent};
use crate::store::{MemoryStore, StoreError, TaskStore};

/// Why the controller could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("controller cannot subscribe to {subject}: {source}")]
    Subscribe {
        subject: String,
        #[source]
        source: BusError,
    },
    #[error("the bus closed under the controller")]
    BusClosed,
    #[error("the controller task failed: {0}")]
    Crashed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running controller. Dropping it stops the controller.
#[derive(Debug)]
pub struct ControllerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ControllerError>>,
}

impl ControllerHandle {
    /// Stops the controller and waits until it has.
    pub async fn stop(mut self) -> Result<(), ControllerError> {
        if let Some(stop) = self.stop.take() {
            // Already stopped on its own if no one receives: fine either way.
            let _ = stop.send(());
        }
        join(self.task).await
    }

    /// Waits until the controller stops on its own (a `Shutdown` request, or
    /// the bus closing).
    pub async fn stopped(self) -> Result<(), ControllerError> {
        let ControllerHandle { stop, task } = self;
        let result = join(task).await;
        drop(stop);
        result
    }

    /// Whether the controller has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

async fn join(task: JoinHandle<Result<(), ControllerError>>) -> Result<(), ControllerError> {
    task.await
        .map_err(|e| ControllerError::Crashed(e.to_string()))?
}

/// Starts a controller on `bus` in a new tokio task, with the in-memory
/// task store. When this returns, the controller is subscribed: requests,
/// submissions and results published from now on reach it.
pub async fn start(
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    config: ControllerConfig,
) -> Result<ControllerHandle, ControllerError> {
    let store = MemoryStore::new(config.max_records, config.max_record_bytes);
    start_with_store(bus, subjects, config, Box::new(store)).await
}

/// [`start`], with `store` as the task store: what an earlier controller
/// left in it is taken over (see [`Hub::with_store`]).
pub async fn start_with_store(
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    config: ControllerConfig,
    store: Box<dyn TaskStore>,
) -> Result<ControllerHandle, ControllerError> {
    let hub = Hub::with_store(config, store, Instant::now())?;
    let subscriptions = Subscriptions::open(bus.as_ref(), &subjects).await?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let shell = Shell {
        bus,
        subjects,
        hub,
        drops_fed: 0,
        beat: ControllerBeat {
            incarnation: uuid::Uuid::new_v4(),
            started: Timestamp::now(),
        },
        blob_max_age: config.blob_max_age,
    };
    // Every load-balanced task goes through here twice: see the module docs.
    let bus = Arc::clone(&shell.bus);
    let task = spawn_consumer(&*bus, "grid-controller", shell.run(subscriptions, stop_rx))
        .map_err(|e| {
            ControllerError::Crashed(format!("cannot start the controller thread: {e}"))
        })?;
    Ok(ControllerHandle {
        stop: Some(stop_tx),
        task,
    })
}

/// Runs a controller on `bus` until it is shut down (`hub.shutdown`).
pub async fn run(
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    config: ControllerConfig,
) -> Result<(), ControllerError> {
    start(bus, subjects, config).await?.stopped().await
}

/// The controller's subscriptions.
struct Subscriptions {
    requests: Subscription,
    submissions: Subscription,
    engine_tasks: Subscription,
    results: Subscription,
    held_results: Subscription,
    pure: Subscription,
    claims: Subscription,
    heartbeats: Subscription,
}

impl Subscriptions {
    async fn open(bus: &dyn Bus, subjects: &Subjects) -> Result<Subscriptions, ControllerError> {
        let subscribe = |subject: String| async move {
            bus.subscribe(&subject)
                .await
                .map_err(|source| ControllerError::Subscribe { subject, source })
        };
        Ok(Subscriptions {
            requests: subscribe(subjects.hub(">")).await?,
            submissions: subscribe(subjects.sched_submit()).await?,
            engine_tasks: subscribe(subjects.all_engine_tasks()).await?,
            results: subscribe(subjects.all_results()).await?,
            held_results: subscribe(subjects.sched_result()).await?,
            // Not in the engines' queue group: the controller sees every one.
            pure: subscribe(subjects.sched_pure()).await?,
            claims: subscribe(subjects.sched_claim()).await?,
            heartbeats: subscribe(subjects.all_heartbeats()).await?,
        })
    }
}

/// What woke the controller.
enum Input {
    Request(Message),
    Submission(Message),
    EngineTask(Message),
    Result(Message),
    HeldResult(Message),
    Pure(Message),
    Claim(Message),
    Heartbeat(Message),
    Tick,
}

/// Whether to go on after performing actions.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct Shell {
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    hub: Hub,
    /// The bus's drop count last fed to the hub.
    drops_fed: u64,
    /// What the controller says every [`CONTROLLER_BEAT`] on `controller`.
    beat: ControllerBeat,
    /// [`ControllerConfig::blob_max_age`].
    blob_max_age: Option<Duration>,
}

/// What the controller does on its own schedule.
enum Periodic {
    /// Say it is alive, on `controller`.
    Beat,
    /// Collect blobs nothing uses.
    Collect,
}

/// A task on the runtime that says when to beat and collect. Its timers
/// live there, not in the controller's loop, which may run on a thread of
/// its own (the in-process bus) and outlive the runtime's timers at
/// shutdown: polling a timer then would panic, a closed channel does not.
fn periodic(max_age: Option<Duration>) -> tokio::sync::mpsc::Receiver<Periodic> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut beat = tokio::time::interval(CONTROLLER_BEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut collect =
            tokio::time::interval(max_age.map_or(Duration::from_secs(86_400), gc_period));
        collect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: the first collection after one period.
        collect.tick().await;
        loop {
            let due = tokio::select! {
                _ = beat.tick() => Periodic::Beat,
                _ = collect.tick(), if max_age.is_some() => Periodic::Collect,
            };
            if tx.send(due).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// The next periodic duty; `None` once its task is gone; never without one.
async fn next_due(
    periodic: &mut Option<tokio::sync::mpsc::Receiver<Periodic>>,
) -> Option<Periodic> {
    match periodic {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// How often the blob collector runs for blobs of `max_age`: a tenth of it,
/// between a second and ten minutes.
fn gc_period(max_age: Duration) -> Duration {
    (max_age / 10).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

impl Shell {
    async fn run(
        mut self,
        mut subs: Subscriptions,
        mut stop: oneshot::Receiver<()>,
    ) -> Result<(), ControllerError> {
        tracing::debug!("controller running");
        let max_age = self.blob_max_age;
        let mut periodic = Some(periodic(max_age));
        let mut collecting: Option<JoinHandle<()>> = None;
        loop {
            let deadline = self.hub.poll_timeout();
            let timer = async move {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                    None => std::future::pending().await,
                }
            };
            let input = tokio::select! {
                // A send or a dropped handle both mean stop.
                _ = &mut stop => return Ok(()),
                m = subs.requests.next() => Input::Request(m.ok_or(ControllerError::BusClosed)?),
                m = subs.submissions.next() => Input::Submission(m.ok_or(ControllerError::BusClosed)?),
                m = subs.engine_tasks.next() => Input::EngineTask(m.ok_or(ControllerError::BusClosed)?),
                m = subs.results.next() => Input::Result(m.ok_or(ControllerError::BusClosed)?),
                m = subs.held_results.next() => Input::HeldResult(m.ok_or(ControllerError::BusClosed)?),
                m = subs.pure.next() => Input::Pure(m.ok_or(ControllerError::BusClosed)?),
                m = subs.claims.next() => Input::Claim(m.ok_or(ControllerError::BusClosed)?),
                m = subs.heartbeats.next() => Input::Heartbeat(m.ok_or(ControllerError::BusClosed)?),
                () = timer => Input::Tick,
                due = next_due(&mut periodic) => {
                    match due {
                        Some(Periodic::Beat) => {
                            let subject = self.subjects.controller();
                            self.publish(&subject, &self.beat).await?;
                        }
                        Some(Periodic::Collect) => {
                            let busy = collecting.as_ref().is_some_and(|c| !c.is_finished());
                            if let (Some(max_age), false) = (max_age, busy) {
                                collecting = self.collect_blobs(max_age);
                            }
                        }
                        // The runtime is shutting down: no more beats.
                        None => periodic = None,
                    }
                    continue;
                }
            };
            let (actions, reply_to) = self.digest(input);
            if self.perform(actions, reply_to.as_deref()).await? == Flow::Stop {
                tracing::debug!("controller shut down");
                return Ok(());
            }
        }
    }

    /// Decodes an input and hands it to the hub; returns the hub's actions
    /// and, for a request, where to send the answer.
    fn digest(&mut self, input: Input) -> (Vec<HubAction>, Option<String>) {
        let now = Instant::now();
        let mut actions = self.watch_drops(now);
        let (more, reply_to) = self.digest_at(input, now);
        actions.extend(more);
        (actions, reply_to)
    }

    /// Feeds the hub the bus's drop count if it changed.
    fn watch_drops(&mut self, now: Instant) -> Vec<HubAction> {
        let dropped = self.bus.dropped_messages();
        if dropped == self.drops_fed {
            return Vec::new();
        }
        self.drops_fed = dropped;
        self.hub.handle(HubEvent::BusDrops(dropped), now)
    }

    fn digest_at(&mut self, input: Input, now: Instant) -> (Vec<HubAction>, Option<String>) {
        match input {
            Input::Request(msg) => {
                let op = msg.subject.rsplit('.').next().unwrap_or_default();
                let actions = match decode::<HubRequest>(&msg.payload) {
                    Ok(request) if request.op() == op => {
                        self.hub.handle(HubEvent::Request(request), now)
                    }
                    Ok(request) => {
                        let error = format!("a {} request sent on {}", request.op(), msg.subject);
                        tracing::warn!("{error}");
                        vec![HubAction::Respond(HubReply::Error(error))]
                    }
                    Err(e) => {
                        tracing::warn!(subject = %msg.subject, error = %e, "malformed request");
                        vec![HubAction::Respond(HubReply::Error(e.to_string()))]
                    }
                };
                (actions, msg.reply)
            }
            Input::Submission(msg) => self.feed(&msg, now, |s| HubEvent::Submitted(Box::new(s))),
            Input::EngineTask(msg) => {
                let Some(engine) = engine_in(&msg.subject, 1) else {
                    return skip(&msg, &"no engine id in the subject");
                };
                self.feed(&msg, now, |s| HubEvent::Observed {
                    engine,
                    submission: Box::new(s),
                })
            }
            Input::Result(msg) => self.feed(&msg, now, |r| HubEvent::Replied(Box::new(r))),
            Input::Pure(msg) => self.feed(&msg, now, |s| HubEvent::PureSubmitted(Box::new(s))),
            Input::Claim(msg) => self.feed(&msg, now, HubEvent::Claimed),
            Input::HeldResult(msg) => self.feed(&msg, now, |r| HubEvent::HeldResult(Box::new(r))),
            Input::Heartbeat(msg) => match decode::<Heartbeat>(&msg.payload) {
                Ok(beat) if engine_in(&msg.subject, 0) == Some(beat.engine.id) => (
                    self.hub.handle(
                        HubEvent::Heartbeat {
                            engine: beat.engine,
                            running: beat.running,
                            queued: beat.queued,
                            dropped: beat.dropped,
                            host: beat.host,
                        },
                        now,
                    ),
                    None,
                ),
                Ok(_) => skip(&msg, &"the heartbeat names another engine than its subject"),
                Err(e) => skip(&msg, &e),
            },
            Input::Tick => (self.hub.handle(HubEvent::Tick, now), None),
        }
    }

    /// Decodes `msg` as a `T` and hands the hub the event made of it; a
    /// malformed message is skipped.
    fn feed<T: serde::de::DeserializeOwned>(
        &mut self,
        msg: &Message,
        now: Instant,
        event: impl FnOnce(T) -> HubEvent,
    ) -> (Vec<HubAction>, Option<String>) {
        match decode::<T>(&msg.payload) {
            Ok(value) => (self.hub.handle(event(value), now), None),
            Err(e) => skip(msg, &e),
        }
    }

    async fn perform(
        &self,
        actions: Vec<HubAction>,
        reply_to: Option<&str>,
    ) -> Result<Flow, ControllerError> {
        for action in actions {
            match action {
                HubAction::Respond(reply) => {
                    match reply_to {
                        Some(to) => self.publish(to, &reply).await?,
                        None => {
                            tracing::debug!("a request without a reply subject: answer dropped")
                        }
                    }
                    // A new engine hears this incarnation at once, not at
                    // the next beat: killed within that second, the
                    // controller would leave it unable to tell a successor
                    // for a restart (and to publish its latest results
                    // again, see the engine's replay).
                    if matches!(reply, HubReply::Registered { .. }) {
                        self.publish(&self.subjects.controller(), &self.beat)
                            .await?;
                    }
                }
                HubAction::Pure(submission) => {
                    self.publish(&self.subjects.sched_pure(), &submission)
                        .await?
                }
                HubAction::Dispatch { engine, submission } => {
                    self.publish(&self.subjects.engine_task(engine), &submission)
                        .await?
                }
                HubAction::Deliver(reply) => {
                    self.publish(&self.subjects.result(reply.client), &reply)
                        .await?
                }
                HubAction::Forward { client, reply } => {
                    self.publish(&self.subjects.result(client), &reply).await?
                }
                HubAction::Keep(hash) => {
                    // Off the loop: a large blob takes a while to copy.
                    let bus = Arc::clone(&self.bus);
                    tokio::spawn(async move {
                        let kept = match bus.get_blob(&hash).await {
                            Ok(Some(bytes)) => bus.put_blob(bytes).await.map(|_| ()),
                            Ok(None) => Err(BusError::Other("gone already".into())),
                            Err(e) => Err(e),
                        };
                        if let Err(e) = kept {
                            tracing::warn!(blob = %hash.short(), error = %e, "cannot keep a recorded result");
                        }
                    });
                }
                HubAction::Control { engine, control } => {
                    self.publish(&self.subjects.engine_control(engine), &control)
                        .await?
                }
                HubAction::Announce(event) => self.publish(&self.subjects.events(), &event).await?,
                HubAction::Stop => {
                    if let Err(e) = self.bus.flush().await {
                        tracing::warn!(error = %e, "cannot flush the bus while stopping");
                    }
                    return Ok(Flow::Stop);
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Collects the blobs nothing used for `max_age` (see `gc.rs`), in a
    /// task of its own: listing a large store takes a while.
    fn collect_blobs(&mut self, max_age: Duration) -> Option<JoinHandle<()>> {
        let protected = self.hub.result_blobs()?;
        let bus = Arc::clone(&self.bus);
        Some(tokio::spawn(async move {
            match crate::gc::collect_blobs(&*bus, &protected, max_age).await {
                Ok(report) if report.collected + report.forgotten > 0 => {
                    tracing::info!(
                        collected = report.collected,
                        bytes = report.bytes_freed,
                        forgotten = report.forgotten,
                        "collected blobs nothing used for {max_age:?}"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot collect blobs"),
            }
        }))
    }

    /// Publishes one message. Only a closed bus stops the controller; any
    /// other failure loses this one message, which is logged.
    async fn publish<T: Serialize>(&self, subject: &str, value: &T) -> Result<(), ControllerError> {
        let payload = match encode(value) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                tracing::error!(subject, error = %e, "cannot encode a message");
                return Ok(());
            }
        };
        match self.bus.publish(subject, payload).await {
            Ok(()) => Ok(()),
            Err(BusError::Closed) => Err(ControllerError::BusClosed),
            Err(e) => {
                tracing::warn!(subject, error = %e, "cannot publish");
                Ok(())
            }
        }
    }
}

/// Logs a message that cannot be used; nothing to do.
fn skip(msg: &Message, error: &dyn std::fmt::Display) -> (Vec<HubAction>, Option<String>) {
    tracing::warn!(subject = %msg.subject, error = %error, "skipping malformed message");
    (Vec::new(), None)
}

/// The engine id that is the `from_end`-th token of `subject` counting from
/// the last (0): `engine.<id>.task` has it at 1, `heartbeat.<id>` at 0.
fn engine_in(subject: &str, from_end: usize) -> Option<EngineId> {
    subject
        .rsplit('.')
        .nth(from_end)?
        .parse()
        .ok()
        .map(EngineId)
}
