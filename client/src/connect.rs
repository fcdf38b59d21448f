//! `Client::connect`: a client of a cluster on a NATS server.
//!
//! The cluster (controller and engines, in other processes, perhaps other
//! machines) is reached through a [`NatsBus`]; its subjects are prefixed
//! `grid.<cluster>.`, so one server can carry several clusters. The blocking
//! form owns a small tokio runtime, like `Client::local`.

use std::sync::Arc;

use grid_bus::{Bus, NatsBus};
use grid_proto::Subjects;

use crate::{Client, Error};

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
        let bus: Arc<dyn Bus> = Arc::new(NatsBus::connect(url).await?);
        Client::connect_bus(bus, subjects).await
    }
}
