//! Waiting for engines: [`Client::wait_for_engines`], ipyparallel 7's
//! `rc.wait_for_engines(n, timeout=...)`.
//!
//! A client often starts before its engines do (a script run right after
//! `grid cluster start`, engines restarting), so it asks the controller for
//! the live engines until at least `n` are there. It listens on the
//! cluster's `events` subject, so a registration wakes it at once, and asks
//! again on a backoff from 10 ms to 250 ms besides, since an event can be
//! missed (a NATS subscription is not registered at the server the moment it
//! is made, and core NATS drops messages to slow consumers). A controller
//! that does not answer yet (no responders) is waited for too: it may be
//! starting. Only the timeout ends the wait, with
//! [`Error::EnginesTimeout`](crate::Error::EnginesTimeout).

use std::time::Duration;

use grid_bus::{BusError, Subscription};
use grid_proto::EngineInfo;
use tokio::time::Instant;

use crate::{Client, Error};

/// The first pause between two questions to the controller.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// The longest pause between two questions to the controller.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

impl Client {
    /// Waits until at least `n` engines are registered and live, and returns
    /// them all (ascending by id), as [`Client::engines`] would then. A
    /// controller that does not answer yet is waited for as well. `timeout`
    /// `None` waits as long as it takes; past the timeout it fails with
    /// [`Error::EnginesTimeout`] saying how many engines there were.
    ///
    /// ipyparallel: `rc.wait_for_engines(4, timeout=30)`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), grid_client::Error> {
    /// use std::time::Duration;
    ///
    /// use grid_client::Client;
    ///
    /// let client = Client::connect("nats://127.0.0.1:4222", "default")?;
    /// let engines = client.wait_for_engines(4, Some(Duration::from_secs(30)))?;
    /// println!("{} engines, the first on {}", engines.len(), engines[0].host);
    /// # Ok(()) }
    /// ```
    pub fn wait_for_engines(
        &self,
        n: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<EngineInfo>, Error> {
        let client = self.clone();
        self.block(async move { client.engines_at_least(n, timeout).await })?
    }

    /// [`wait_for_engines`](Self::wait_for_engines), async (from any
    /// executor: the waiting runs on the client's runtime).
    pub async fn wait_for_engines_async(
        &self,
        n: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<EngineInfo>, Error> {
        let client = self.clone();
        self.on_runtime(async move { client.engines_at_least(n, timeout).await })
            .await
    }

    /// Asks the controller until it lists `n` engines, or the deadline.
    async fn engines_at_least(
        &self,
        n: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<EngineInfo>, Error> {
        let started = Instant::now();
        let deadline = timeout.map(|t| started + t);
        // Before the first question: an engine that registers between its
        // answer and the pause still wakes us.
        let mut events = Some(
            self.inner
                .bus
                .subscribe(&self.inner.subjects.events())
                .await?,
        );
        let mut backoff = FIRST_BACKOFF;
        let mut found = 0;
        loop {
            let asked = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.engines_async()).await,
                None => Ok(self.engines_async().await),
            };
            match asked {
                Ok(Ok(engines)) if engines.len() >= n => return Ok(engines),
                Ok(Ok(engines)) => found = engines.len(),
                // No controller yet: it may be starting.
                Ok(Err(Error::Bus(BusError::NoResponders(_)))) => found = 0,
                Ok(Err(e)) => return Err(e),
                // The deadline passed while the controller thought.
                Err(_) => {}
            }
            let now = Instant::now();
            let pause = match deadline {
                Some(deadline) if now >= deadline => {
                    return Err(Error::EnginesTimeout {
                        wanted: n,
                        found,
                        waited: now - started,
                    });
                }
                Some(deadline) => backoff.min(deadline - now),
                None => backoff,
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                event = next_event(&mut events) => {
                    if event.is_none() {
                        // The subscription ended: the backoff alone goes on.
                        events = None;
                    }
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// The next cluster event (any: each is worth asking again), or `None`
/// when the subscription has ended; never ready without a subscription.
async fn next_event(events: &mut Option<Subscription>) -> Option<grid_bus::Message> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(all(test, feature = "local"))]
mod tests {
    use super::*;

    #[test]
    fn returns_the_engines_once_there_are_enough_and_times_out_otherwise() {
        let client = Client::local(2).unwrap();
        let engines = client
            .wait_for_engines(2, Some(Duration::from_secs(30)))
            .unwrap();
        assert_eq!(engines.len(), 2);
        let asked = std::time::Instant::now();
        let e = client
            .wait_for_engines(3, Some(Duration::from_millis(100)))
            .unwrap_err();
        assert!(
            matches!(e, Error::EnginesTimeout { wanted: 3, found: 2, waited } if waited >= Duration::from_millis(100)),
            "{e:?}"
        );
        assert!(asked.elapsed() < Duration::from_secs(10));
        assert_eq!(
            e.to_string().split_once(" s ").map(|(_, rest)| rest),
            Some("waiting for 3 engines: 2 registered")
        );
    }

    #[test]
    fn the_async_form_works_from_another_executor() {
        let client = Client::local(1).unwrap();
        let engines = block_on_without_tokio(client.wait_for_engines_async(1, None)).unwrap();
        assert_eq!(engines.len(), 1);
    }

    /// Polls `fut` on this thread, with no tokio runtime around it.
    fn block_on_without_tokio<F: std::future::Future>(fut: F) -> F::Output {
        use std::sync::Arc;
        use std::task::{Context, Poll, Wake, Waker};

        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(out) => return out,
                Poll::Pending => std::thread::park(),
            }
        }
    }
}
