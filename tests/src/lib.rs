//! Test support: whole clusters on either bus, for the integration tests in
//! `tests/`.
//!
//! [`cluster`] starts a controller and engines and connects a client to
//! them: on the in-process LocalBus (`Client::local`), or on a real
//! `nats-server` started for the test on a free loopback port, with the
//! controller and engines in this process but talking only through NATS.
//! The same test body runs on both (see `on_both_buses!`). Everything stops
//! when the [`Cluster`] drops.

pub mod testbins;

use std::sync::Arc;
use std::time::Duration;

use grid_bus::testing::NatsServer;
use grid_bus::{Bus, NatsBus};
use grid_client::Client;
use grid_controller::ControllerConfig;
use grid_host::EngineConfig;
use grid_local::LocalCluster;
use grid_proto::{DEFAULT_CLUSTER, Subjects};

/// Which bus a test cluster runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Local,
    Nats,
}

/// A running cluster and a client of it.
pub struct Cluster {
    pub client: Client,
    /// Dropped after the client: the engines, the controller, the server.
    /// `None` for a `Client::local` cluster, which the client owns.
    owned: Option<Owned>,
}

impl Cluster {
    /// The nats-server of a NATS cluster (to stop or restart it).
    pub fn nats_server(&mut self) -> Option<&mut NatsServer> {
        self.owned.as_mut().and_then(|o| o.server.as_mut())
    }

    /// A second client of a cluster made by [`cluster_with`] or
    /// [`nats_cluster`], with an id of its own.
    pub fn another_client(&self) -> Client {
        let owned = self
            .owned
            .as_ref()
            .expect("a cluster made by cluster_with or nats_cluster");
        let (Some(runtime), Some(cluster)) = (&owned.runtime, &owned.cluster) else {
            panic!("the cluster is stopped");
        };
        runtime
            .block_on(Client::connect_bus(
                cluster.bus(),
                cluster.subjects().clone(),
            ))
            .expect("another client connects")
    }

    /// Kills engine `id` of a cluster made by [`cluster_with`] (see
    /// `LocalCluster::kill_engine`); false if there is no such engine.
    pub fn kill_engine(&self, id: grid_proto::EngineId) -> bool {
        self.owned
            .as_ref()
            .and_then(|o| o.cluster.as_ref())
            .is_some_and(|c| c.kill_engine(id))
    }
}

impl std::ops::Deref for Cluster {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// A cluster on a runtime of its own, and its nats-server if any.
struct Owned {
    runtime: Option<tokio::runtime::Runtime>,
    cluster: Option<LocalCluster>,
    server: Option<NatsServer>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        // The cluster's slots and controller belong to the runtime: stopped
        // inside it, and the controller waited for, so that no thread of
        // theirs outlives it.
        if let (Some(rt), Some(cluster)) = (self.runtime.as_ref(), self.cluster.take()) {
            rt.block_on(cluster.stop());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A cluster of `engines` engines on `backend` with this controller
/// configuration, whose engines a test can kill ([`Cluster::kill_engine`]).
pub fn cluster_with(backend: Backend, engines: usize, config: ControllerConfig) -> Cluster {
    start(backend, engines, DEFAULT_CLUSTER, config)
}

/// Starts a cluster of `engines` engines on `backend` and connects to it.
pub fn cluster(backend: Backend, engines: usize) -> Cluster {
    match backend {
        Backend::Local => Cluster {
            client: Client::local(engines).expect("local cluster starts"),
            owned: None,
        },
        Backend::Nats => nats_cluster(engines, DEFAULT_CLUSTER),
    }
}

/// A cluster named `name` on a fresh nats-server.
pub fn nats_cluster(engines: usize, name: &str) -> Cluster {
    let config = ControllerConfig {
        // Debug builds under a loaded test machine can stall for seconds.
        heartbeat_timeout: Some(Duration::from_secs(30)),
        ..ControllerConfig::default()
    };
    start(Backend::Nats, engines, name, config)
}

/// A controller and `engines` engines named `name` on a runtime of their
/// own, on a LocalBus or a fresh nats-server, and a client of them (over
/// NATS, on a connection of its own, as a client process would be).
fn start(backend: Backend, engines: usize, name: &str, config: ControllerConfig) -> Cluster {
    let server = match backend {
        Backend::Local => None,
        Backend::Nats => Some(NatsServer::start().unwrap_or_else(|e| panic!("{e}"))),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let subjects = Subjects::new(name).expect("cluster name");
    let cluster = runtime.block_on(async {
        let bus: Arc<dyn Bus> = match &server {
            None => Arc::new(grid_bus::LocalBus::new()),
            Some(server) => Arc::new(
                NatsBus::connect(&server.url())
                    .await
                    .expect("connects to nats"),
            ),
        };
        LocalCluster::start_on(
            bus,
            subjects.clone(),
            engines,
            EngineConfig::default().cache_dir(None),
            config,
        )
        .await
        .expect("controller and engines start")
    });
    let client = match &server {
        Some(server) => Client::connect(&server.url(), name),
        None => runtime.block_on(Client::connect_bus(cluster.bus(), subjects)),
    }
    .expect("client connects");
    Cluster {
        client,
        owned: Some(Owned {
            runtime: Some(runtime),
            cluster: Some(cluster),
            server,
        }),
    }
}

/// Defines each named test twice, `local::NAME` and `nats::NAME`, calling
/// `NAME(Backend::Local)` and `NAME(Backend::Nats)`.
#[macro_export]
macro_rules! on_both_buses {
    ($($name:ident),* $(,)?) => {
        mod local {
            $( #[test] fn $name() { super::$name($crate::Backend::Local) } )*
        }
        mod nats {
            $( #[test] fn $name() { super::$name($crate::Backend::Nats) } )*
        }
    };
}
