//! `Client::local`: a client with its own in-process cluster (feature `local`).
//!
//! The cluster (`grid-local`: a controller and engines on a LocalBus) runs on
//! a tokio runtime the client owns; both stop when the client's last clone
//! drops. The client still talks to it only through the bus.

use grid_host::EngineConfig;
use grid_local::{LocalCluster, SchedulerConfig};
use grid_proto::Scheme;

use crate::{Client, Error};

/// A local cluster to start, with more than [`Client::local_with`] says:
/// see [`Client::local_builder`].
#[derive(Clone, Debug)]
pub struct LocalBuilder {
    engines: usize,
    config: EngineConfig,
    scheduler: SchedulerConfig,
}

impl LocalBuilder {
    /// The engines' configuration (limits, fuel, cache).
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// The scheduler's scheme (ipyparallel's names; `leastload` by default).
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheduler.scheme = scheme;
        self
    }

    /// Outstanding tasks per engine the scheduler allows (0: no limit).
    pub fn hwm(mut self, hwm: usize) -> Self {
        self.scheduler.hwm = hwm;
        self
    }

    /// Seeds the random draws of the `twobin`, `weighted` and
    /// `plainrandom` schemes.
    pub fn seed(mut self, seed: u64) -> Self {
        self.scheduler.seed = seed;
        self
    }

    /// Starts the cluster and connects to it (blocking).
    pub fn start(self) -> Result<Client, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let (client, cluster) = runtime.block_on(self.launch())?;
        client.own(runtime, Box::new(cluster));
        Ok(client)
    }

    /// Starts the cluster on the current tokio runtime and connects to it.
    pub async fn start_async(self) -> Result<Client, Error> {
        let (client, cluster) = self.launch().await?;
        client.keep(Box::new(cluster));
        Ok(client)
    }

    async fn launch(self) -> Result<(Client, LocalCluster), Error> {
        let cluster = LocalCluster::start_scheduled(self.engines, self.config, self.scheduler)
            .await
            .map_err(|e| Error::Usage(format!("cannot start the local cluster: {e}")))?;
        let client = Client::connect_bus(cluster.bus(), cluster.subjects().clone()).await?;
        Ok((client, cluster))
    }
}

impl Client {
    /// Starts a cluster of `engines` engine slots in this process and connects
    /// to it. Blocking; from async code use [`Client::local_async`].
    pub fn local(engines: usize) -> Result<Client, Error> {
        Self::local_with(engines, EngineConfig::default())
    }

    /// [`Client::local`] with an engine configuration (limits, fuel, cache).
    pub fn local_with(engines: usize, config: EngineConfig) -> Result<Client, Error> {
        Self::local_builder(engines).config(config).start()
    }

    /// A local cluster of `engines` slots to configure further (scheme,
    /// high-water mark) before it starts:
    ///
    /// ```no_run
    /// # fn main() -> Result<(), grid_client::Error> {
    /// use grid_client::{Client, Scheme};
    ///
    /// let client = Client::local_builder(4).scheme(Scheme::TwoBin).start()?;
    /// # Ok(()) }
    /// ```
    pub fn local_builder(engines: usize) -> LocalBuilder {
        LocalBuilder {
            engines,
            config: EngineConfig::default(),
            scheduler: SchedulerConfig::default(),
        }
    }

    /// Starts a local cluster on the current tokio runtime and connects to it.
    /// The cluster lives as long as the client.
    pub async fn local_async(engines: usize, config: EngineConfig) -> Result<Client, Error> {
        Self::local_builder(engines)
            .config(config)
            .start_async()
            .await
    }
}
