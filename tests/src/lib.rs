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
use grid_proto::Subjects;

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
    _nats: Option<NatsCluster>,
}

impl Cluster {
    /// The nats-server of a NATS cluster (to stop or restart it).
    pub fn nats_server(&mut self) -> Option<&mut NatsServer> {
        self._nats.as_mut().map(|n| &mut n._server)
    }
}

impl std::ops::Deref for Cluster {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

struct NatsCluster {
    runtime: Option<tokio::runtime::Runtime>,
    cluster: Option<LocalCluster>,
    _server: NatsServer,
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        // The cluster's slots and controller belong to the runtime: drop them inside it.
        if let (Some(rt), Some(cluster)) = (self.runtime.as_ref(), self.cluster.take()) {
            let _guard = rt.enter();
            drop(cluster);
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Starts a cluster of `engines` engines on `backend` and connects to it.
pub fn cluster(backend: Backend, engines: usize) -> Cluster {
    match backend {
        Backend::Local => Cluster {
            client: Client::local(engines).expect("local cluster starts"),
            _nats: None,
        },
        Backend::Nats => nats_cluster(engines, "default"),
    }
}

/// A cluster named `name` on a fresh nats-server.
pub fn nats_cluster(engines: usize, name: &str) -> Cluster {
    let server = NatsServer::start().unwrap_or_else(|e| panic!("{e}"));
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let subjects = Subjects::new(name).expect("cluster name");
    let cluster = runtime.block_on(async {
        let bus: Arc<dyn Bus> = Arc::new(NatsBus::connect(&url).await.expect("connects to nats"));
        let config = ControllerConfig {
            // Debug builds under a loaded test machine can stall for seconds.
            heartbeat_timeout: Some(Duration::from_secs(30)),
            ..ControllerConfig::default()
        };
        LocalCluster::start_on(
            bus,
            subjects,
            engines,
            EngineConfig::default().cache_dir(None),
            config,
        )
        .await
        .expect("controller and engines start")
    });
    let client = Client::connect(&url, name).expect("client connects");
    Cluster {
        client,
        _nats: Some(NatsCluster {
            runtime: Some(runtime),
            cluster: Some(cluster),
            _server: server,
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
