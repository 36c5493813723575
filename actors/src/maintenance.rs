//! MaintenanceActor: the periodic expiry sweep (reference §8.2 `BlockMaintainer`).
//!
//! Every `interval` it sends one [`SweepExpired`] to the StoreActor, which visits at most its configured batch
//! of records from where the previous sweep stopped, so a sweep never holds the store for long. Handles no
//! messages of its own besides its timer; runs on the system arbiter (it only waits on the store).

use crate::store::{StoreActor, SweepExpired, unix_now};
use actix::prelude::*;
use std::time::Duration;

/// Maintenance configuration.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// Time between sweeps (`--block-mi`, default 10 min).
    pub interval: Duration,
}

/// The maintenance actor.
pub struct MaintenanceActor {
    store: Addr<StoreActor>,
    config: MaintenanceConfig,
    sweeping: bool,
}

impl MaintenanceActor {
    pub fn new(store: Addr<StoreActor>, config: MaintenanceConfig) -> Self {
        Self { store, config, sweeping: false }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let store = self.store.clone();
        let sweep = async move { store.send(SweepExpired { now: unix_now() }).await };
        ctx.spawn(sweep.into_actor(self).map(|result, actor, _| {
            actor.sweeping = false;
            match result {
                Ok(Ok(outcome)) if outcome.removed_blocks > 0 => {
                    tracing::info!(blocks = outcome.removed_blocks, bytes = outcome.freed_bytes, "expired data removed")
                }
                Ok(Ok(_)) => tracing::debug!("expiry sweep found nothing to remove"),
                Ok(Err(err)) => tracing::warn!(%err, "expiry sweep failed"),
                Err(err) => tracing::warn!(%err, "store unavailable for the expiry sweep"),
            }
        }));
    }
}

impl Actor for MaintenanceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.config.interval, |actor, ctx| actor.sweep(ctx));
    }
}
