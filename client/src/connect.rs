//! `Client::connect`: a client of a cluster on a NATS server.
//!
//! The cluster (controller and engines, in other processes, perhaps other
//! machines) is reached through a [`NatsBus`]; its subjects are prefixed
//! `grid.<cluster>.`, so one server can carry several clusters. The blocking
//! form owns a small tokio runtime, like `Client::local`.
//!
//! When the connection to the server is lost, the NATS client reconnects by
//! itself; if it has not within [`RECONNECT_GRACE`], every task still waiting
//! for its result fails with a `disconnected` error naming the server, so no
//! caller waits forever on a cluster it cannot reach.

use std::sync::Arc;
use std::time::Duration;

use grid_bus::{Bus, BusEvent, NatsBus};
use grid_proto::{Subjects, TaskError};
use tokio::sync::broadcast::error::RecvError;

use crate::{Client, Error};

/// How long a lost connection may take to come back before waiting tasks fail.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(5);

impl Client {
    /// Connects to cluster `cluster` (`"default"` unless it was named) on
    /// the NATS server at `url`. Blocking; from async code use
    /// [`Client::connect_async`].
    pub fn connect(url: &str, cluster: &str) -> Result<Client, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let client = runtime.block_on(Self::connect_async(url, cluster))?;
        client.own(runtime, Box::new(()));
        Ok(client)
    }

    /// [`Client::connect`] on the current tokio runtime.
    pub async fn connect_async(url: &str, cluster: &str) -> Result<Client, Error> {
        let subjects = Subjects::new(cluster).map_err(|e| Error::Usage(e.to_string()))?;
        let nats = NatsBus::connect(url).await?;
        let events = nats.events();
        let bus: Arc<dyn Bus> = Arc::new(nats);
        let client = Client::connect_bus(bus, subjects).await?;
        tokio::spawn(watch_connection(client.weak(), events, url.to_string()));
        Ok(client)
    }
}

/// Fails the waiting tasks of the client when its connection stays down.
async fn watch_connection(
    client: crate::client::WeakClient,
    mut events: tokio::sync::broadcast::Receiver<BusEvent>,
    url: String,
) {
    loop {
        match events.recv().await {
            Ok(BusEvent::Disconnected) => {}
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
        let back = tokio::time::timeout(RECONNECT_GRACE, async {
            loop {
                match events.recv().await {
                    Ok(BusEvent::Connected) => return true,
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return false,
                }
            }
        })
        .await;
        if back == Ok(true) {
            continue;
        }
        let Some(client) = client.upgrade() else {
            return;
        };
        let why = format!("the NATS server at {url} has been unreachable for {RECONNECT_GRACE:?}");
        tracing::warn!("{why}: failing the tasks still waiting for results");
        client.fail_pending(TaskError::Disconnected(why));
    }
}
