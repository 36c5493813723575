//! Prometheus metrics with the original node's names: `codex_api_uploads`, `codex_api_downloads` (counters,
//! bumped by the REST handlers on success) and `codex_repostore_blocks`, `codex_repostore_bytes_used`,
//! `codex_repostore_bytes_reserved` (gauges, read from the store when scraped).

use codex_actors::store::Space;
use prometheus::core::Collector;
use prometheus::{Encoder, IntCounter, IntGauge, Registry, TextEncoder};

/// The node's metrics. Cheap to clone (handles to shared values).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub uploads: IntCounter,
    pub downloads: IntCounter,
    blocks: IntGauge,
    bytes_used: IntGauge,
    bytes_reserved: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| register(&registry, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| register(&registry, IntGauge::new(name, help));
        Self {
            uploads: counter("codex_api_uploads", "Datasets uploaded through the REST API"),
            downloads: counter("codex_api_downloads", "Datasets downloaded through the REST API"),
            blocks: gauge("codex_repostore_blocks", "Blocks in the repository"),
            bytes_used: gauge("codex_repostore_bytes_used", "Bytes of quota used by stored blocks"),
            bytes_reserved: gauge("codex_repostore_bytes_reserved", "Bytes of quota reserved"),
            registry,
        }
    }

    /// The Prometheus text exposition, with the repository gauges set from `space`.
    pub fn render(&self, space: &Space) -> String {
        self.blocks.set(space.total_blocks as i64);
        self.bytes_used.set(space.quota_used_bytes as i64);
        self.bytes_reserved.set(space.quota_reserved_bytes as i64);
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%err, "could not encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Registers a new metric; names and help texts are constants, so failures are programming errors.
#[allow(clippy::expect_used, reason = "names and help texts are constants and each metric is registered once")]
fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("invariant: valid metric name");
    registry.register(Box::new(metric.clone())).expect("invariant: each metric registered once");
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
