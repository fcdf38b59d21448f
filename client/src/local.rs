//! `Client::local`: a client with its own in-process cluster (feature `local`).
//!
//! The cluster (`grid-local`: a controller and engines on a LocalBus) runs on
//! a tokio runtime the client owns; both stop when the client's last clone
//! drops. The client still talks to it only through the bus.

use grid_host::EngineConfig;
use grid_local::LocalCluster;

use crate::{Client, Error};

impl Client {
    /// Starts a cluster of `engines` engine slots in this process and connects
    /// to it. Blocking; from async code use [`Client::local_async`].
    pub fn local(engines: usize) -> Result<Client, Error> {
        Self::local_with(engines, EngineConfig::default())
    }

    /// [`Client::local`] with an engine configuration (limits, fuel, cache).
    pub fn local_with(engines: usize, config: EngineConfig) -> Result<Client, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let (client, cluster) = runtime.block_on(start(engines, config))?;
        client.own(runtime, Box::new(cluster));
        Ok(client)
    }

    /// Starts a local cluster on the current tokio runtime and connects to it.
    /// The cluster lives as long as the client.
    pub async fn local_async(engines: usize, config: EngineConfig) -> Result<Client, Error> {
        let (client, cluster) = start(engines, config).await?;
        client.keep(Box::new(cluster));
        Ok(client)
    }
}

async fn start(engines: usize, config: EngineConfig) -> Result<(Client, LocalCluster), Error> {
    let cluster = LocalCluster::start(engines, config)
        .await
        .map_err(|e| Error::Usage(format!("cannot start the local cluster: {e}")))?;
    let client = Client::connect_bus(cluster.bus(), cluster.subjects().clone()).await?;
    Ok((client, cluster))
}
