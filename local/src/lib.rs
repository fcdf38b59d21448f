//! `grid-local`: a whole cluster inside this process.
//!
//! [`LocalCluster::start`] creates a [`LocalBus`], starts a controller on it
//! and `n` engine slots sharing one wasmtime runtime, and returns once every
//! slot is registered and listening, so work sent from then on is served.
//! [`LocalCluster::start_on`] does the same on any bus (tests use it to run
//! the same pieces over a real nats-server).
//! Everything talks through the bus with the same messages as over NATS:
//! this crate only wires the pieces together. Dropping the cluster stops it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use grid_bus::{Bus, LocalBus};
use grid_controller::{ControllerConfig, ControllerHandle};
pub use grid_controller::{SchedulerConfig, Scheme};
use grid_host::{EngineConfig, EngineSlot, Runtime};
use grid_proto::{EngineId, HubReply, HubRequest, Subjects};

/// Waits until the controller lists `n` live engines: a slot is live once
/// the controller has handled its first heartbeat, which `EngineSlot::start`
/// sends but cannot wait for.
async fn wait_until_live(bus: &dyn Bus, subjects: &Subjects, n: usize) -> Result<(), LocalError> {
    let request =
        grid_proto::encode(&HubRequest::Engines).map_err(|e| LocalError::NotLive(e.to_string()))?;
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = bus
            .request(
                &subjects.hub("engines"),
                Bytes::from(request.clone()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|e| LocalError::NotLive(e.to_string()))?;
        if let Ok(HubReply::Engines(live)) = grid_proto::decode(&reply.payload)
            && live.len() >= n
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(LocalError::NotLive(format!(
                "fewer than {n} engines after 30 s"
            )));
        }
        tokio::task::yield_now().await;
    }
}

/// Completed tasks the local cluster's controller keeps for queries.
pub const LOCAL_MAX_RECORDS: usize = 100_000;

/// Bytes of completed tasks' results the local cluster's controller keeps.
pub const LOCAL_MAX_RECORD_BYTES: usize = 16 << 20;

/// Why a local cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Runtime(#[from] grid_host::RuntimeError),
    #[error(transparent)]
    Controller(#[from] grid_controller::ControllerError),
    #[error(transparent)]
    Engine(#[from] grid_host::ServiceError),
    #[error("the engines did not come up: {0}")]
    NotLive(String),
}

/// A controller and engines on an in-process bus.
pub struct LocalCluster {
    bus: Arc<dyn Bus>,
    subjects: Subjects,
    controller: Option<ControllerHandle>,
    engines: Vec<EngineSlot>,
}

impl LocalCluster {
    /// Starts a cluster of `engines` slots. Must run inside a tokio runtime.
    pub async fn start(engines: usize, config: EngineConfig) -> Result<LocalCluster, LocalError> {
        Self::start_scheduled(engines, config, SchedulerConfig::default()).await
    }

    /// [`start`](Self::start) with this scheduler (scheme, high-water mark).
    pub async fn start_scheduled(
        engines: usize,
        mut config: EngineConfig,
        scheduler: SchedulerConfig,
    ) -> Result<LocalCluster, LocalError> {
        // Its client is in this process, so it is the operator: it may grant
        // its commands any directory, unless the config names some.
        if config.allowed_dirs.is_empty() {
            config = config.allow_dir("/");
        }
        // Engines in this process cannot die on their own: no liveness checks.
        // Its only client is in this process too, so it keeps few results
        // for queries, and a long map's memory stays flat.
        let controller_config = ControllerConfig {
            scheduler,
            heartbeat_timeout: None,
            max_records: LOCAL_MAX_RECORDS,
            max_record_bytes: LOCAL_MAX_RECORD_BYTES,
            ..ControllerConfig::default()
        };
        let bus: Arc<dyn Bus> = Arc::new(LocalBus::new());
        Self::start_on(bus, Subjects::default(), engines, config, controller_config).await
    }

    /// Starts a controller and `engines` slots on `bus`, as cluster `subjects`.
    pub async fn start_on(
        shared: Arc<dyn Bus>,
        subjects: Subjects,
        engines: usize,
        config: EngineConfig,
        controller_config: ControllerConfig,
    ) -> Result<LocalCluster, LocalError> {
        let controller =
            grid_controller::start(shared.clone(), subjects.clone(), controller_config).await?;
        let runtime = Runtime::new(config.room_for_slots(engines))?;
        let mut slots = Vec::with_capacity(engines);
        for _ in 0..engines {
            slots.push(
                EngineSlot::start(
                    shared.clone(),
                    subjects.clone(),
                    runtime.clone(),
                    "localhost".into(),
                    Duration::from_secs(10),
                )
                .await?,
            );
        }
        wait_until_live(&*shared, &subjects, engines).await?;
        Ok(LocalCluster {
            bus: shared,
            subjects,
            controller: Some(controller),
            engines: slots,
        })
    }

    /// The bus, for clients.
    pub fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The engines' ids.
    pub fn ids(&self) -> Vec<EngineId> {
        self.engines.iter().map(EngineSlot::id).collect()
    }

    /// Stops engine `id` at once, as if its process died: no more
    /// heartbeats, nothing more taken from its queue (the task running now
    /// still finishes). The controller declares it dead once its heartbeat
    /// timeout passes. Returns whether there was such an engine.
    pub fn kill_engine(&self, id: EngineId) -> bool {
        let slot = self.engines.iter().find(|slot| slot.id() == id);
        slot.inspect(|slot| slot.kill()).is_some()
    }

    /// Stops the engines and the controller.
    pub async fn stop(mut self) {
        for slot in &self.engines {
            slot.kill();
        }
        if let Some(c) = self.controller.take() {
            let _ = c.stop().await;
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for slot in &self.engines {
            slot.kill();
        }
    }
}
