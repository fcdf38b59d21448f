//! The client's watchdog: notices tasks lost on the way and recovers them,
//! so a dropped message never means a caller waiting forever.
//!
//! Core NATS is at-most-once: a submission or a reply can be dropped (a slow
//! consumer anywhere, a connection that broke at the wrong moment). The
//! controller records every submission it sees and every result, so it is
//! the witness to ask. Once a second, when the client has tasks in flight
//! and either no reply has come for [`QUIET`] or its bus reports dropped
//! messages, the watchdog asks the controller (`hub.result_status`) about the
//! tasks published more than [`QUIET`] ago (the oldest [`MAX_ASKED`]):
//!
//! - **done** there: the reply was lost on its way here; it is fetched
//!   (`hub.get_result`) and delivered as if it had come.
//! - **unknown** there: the submission was lost; it is published again,
//!   with the same msg_id (the controller and the client keep only the
//!   first result of a task, so a task that did arrive somewhere after all
//!   is answered once), at most [`RESEND_BATCH`] a round, so that a burst
//!   of resubmissions does not overrun what overran before. After
//!   [`MAX_RESENT`] attempts it fails as `lost`.
//! - **pending** there: queued or running; nothing to do.
//!
//! If no controller answers for [`CONTROLLER_GRACE`], every waiting task
//! fails as `lost`, naming why. Asking about a task waiting [`QUIET`] costs
//! one small request a second, only while the client waits.
//!
//! The watchdog also watches the controller's beat (`controller`, every
//! second). When none has come for the client's controller timeout (since
//! the last one, or since the client connected if none came yet)
//! ([`DEFAULT_CONTROLLER_TIMEOUT`] unless set), the tasks only the
//! controller can finish, those sent to its scheduler and those watched
//! (`get_result`), fail as `lost`, naming the controller; direct and `pure`
//! tasks go on (their engines answer them), under the grace above. When a
//! beat comes from another incarnation (the controller restarted), the
//! watchdog asks about every task at once rather than waiting for quiet, so
//! that the tasks the new controller does not know are sent again before
//! it gives up on them (see the hub's docs), and it watches again what it
//! watched (the new controller does not know who watches what).

use std::sync::Arc;
use std::time::{Duration, Instant};

use grid_bus::Bus;
use grid_proto::{BeatWatch, ControllerBeat, HubReply, HubRequest, Subjects, TaskError};

use crate::client::{deliver, fetch_replies, hub_request};
use crate::inflight::InFlight;

/// How long a client waits without any reply before asking about its tasks.
pub const QUIET: Duration = Duration::from_secs(2);

/// How often the watchdog looks.
const PERIOD: Duration = Duration::from_secs(1);

/// Tasks asked about at once.
const MAX_ASKED: usize = 4096;

/// How many times a task the controller never saw is published again.
pub const MAX_RESENT: u32 = 10;

/// Tasks published again per round, at most.
pub const RESEND_BATCH: usize = 256;

/// How long the controller may fail to answer before waiting tasks fail.
pub const CONTROLLER_GRACE: Duration = Duration::from_secs(30);

/// How long a client waits for the controller's beat before the tasks only
/// it can finish fail (see the module docs;
/// [`Client::set_controller_timeout`](crate::Client::set_controller_timeout)).
pub const DEFAULT_CONTROLLER_TIMEOUT: Duration = Duration::from_secs(5);

/// Watches until `stop` says the client is gone.
pub(crate) async fn watch(
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    inflight: Arc<InFlight>,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drops = bus.dropped_messages();
    let mut unanswered_since: Option<Instant> = None;
    let mut beats = match bus.subscribe(&subjects.controller()).await {
        Ok(beats) => Some(beats),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the controller's beat");
            None
        }
    };
    let mut controller = BeatWatch::new(Instant::now());
    loop {
        let restarted = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => return,
            msg = next_beat(&mut beats) => match msg {
                Some(msg) => match grid_proto::decode::<ControllerBeat>(&msg.payload) {
                    Ok(beat) => controller.heard(&beat, Instant::now()).is_some(),
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping a malformed controller beat");
                        false
                    }
                },
                None => {
                    beats = None;
                    false
                }
            },
        };
        let now = Instant::now();
        if restarted {
            tracing::warn!("the controller restarted: asking about every task");
            watch_again(&*bus, &subjects, &inflight).await;
        }
        if let Some(silent) = controller.silent(now, inflight.controller_timeout()) {
            let why = format!(
                "the controller has not been heard from for {:.1} s (its beat stopped: \
                 it died or cannot be reached), and the task needs it",
                silent.as_secs_f64()
            );
            inflight.fail_through(&subjects.sched_submit(), TaskError::Lost(why));
        }
        let dropped = bus.dropped_messages();
        let quiet = inflight
            .quiet_since()
            .is_some_and(|since| now.saturating_duration_since(since) >= QUIET);
        if !quiet && dropped == drops && !restarted {
            unanswered_since = None;
            continue;
        }
        drops = dropped;
        // After a restart, every task published so far: the new controller
        // may not know any of them.
        let cutoff = if restarted {
            Some(now)
        } else {
            now.checked_sub(QUIET)
        };
        let Some(cutoff) = cutoff else {
            continue;
        };
        let asked = inflight.published_before(cutoff, MAX_ASKED);
        if asked.is_empty() {
            continue;
        }
        let request = HubRequest::ResultStatus { msg_ids: asked };
        match hub_request(&*bus, &subjects, request).await {
            Ok(HubReply::ResultStatus {
                completed, unknown, ..
            }) => {
                unanswered_since = None;
                recover(&*bus, &subjects, &inflight, completed).await;
                let batch = &unknown[..unknown.len().min(RESEND_BATCH)];
                inflight.resend(batch, MAX_RESENT);
            }
            Ok(other) => tracing::warn!("unexpected answer to result_status: {other:?}"),
            Err(e) => {
                let since = *unanswered_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= CONTROLLER_GRACE {
                    let why = format!(
                        "no controller has answered for {CONTROLLER_GRACE:?} ({e}); \
                         the task's fate is unknown"
                    );
                    tracing::warn!("{why}: failing the tasks still waiting");
                    inflight.fail_all(TaskError::Lost(why));
                    unanswered_since = None;
                }
            }
        }
    }
}

/// The next beat, or never without a subscription.
async fn next_beat(beats: &mut Option<grid_bus::Subscription>) -> Option<grid_bus::Message> {
    match beats {
        Some(beats) => beats.next().await,
        None => std::future::pending().await,
    }
}

/// Tells a restarted controller again which tasks this client watches.
async fn watch_again(bus: &dyn Bus, subjects: &Subjects, inflight: &InFlight) {
    let msg_ids = inflight.watched();
    if msg_ids.is_empty() {
        return;
    }
    let request = HubRequest::Watch {
        client: inflight.client(),
        msg_ids,
    };
    if let Err(e) = hub_request(bus, subjects, request).await {
        tracing::warn!(error = %e, "cannot watch tasks again on the restarted controller");
    }
}

/// Fetches results the controller has and this client never received.
async fn recover(
    bus: &dyn Bus,
    subjects: &Subjects,
    inflight: &InFlight,
    msg_ids: Vec<grid_proto::MsgId>,
) {
    if msg_ids.is_empty() {
        return;
    }
    tracing::warn!(
        tasks = msg_ids.len(),
        "results lost on the way: fetching them from the controller"
    );
    match fetch_replies(bus, subjects, msg_ids).await {
        Ok(replies) => {
            for reply in replies {
                deliver(bus, inflight, reply).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot fetch lost results"),
    }
}
