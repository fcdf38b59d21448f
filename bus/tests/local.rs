//! The [`Bus`](grid_bus::Bus) contract (`semantics/`) on a [`LocalBus`]:
//! `bus` and `peer` are clones of one bus.

use std::sync::Arc;

use grid_bus::{Bus, LocalBus};

#[macro_use]
mod semantics;

async fn buses() -> Option<(Arc<dyn Bus>, Arc<dyn Bus>, ())> {
    let bus = LocalBus::new();
    Some((Arc::new(bus.clone()), Arc::new(bus), ()))
}

bus_semantics!(buses);
