//! Prometheus metrics with the original node's names: `codex_api_uploads`, `codex_api_downloads` (counters,
//! bumped by the REST handlers on success) and `codex_repostore_blocks`, `codex_repostore_bytes_used`,
//! `codex_repostore_bytes_reserved` (gauges, read from the store when scraped); with persistence, the host's
//! sales: `codex_sales{state}` (running sales by state), `codex_sales_bytes_reserved`,
//! `codex_sales_collateral_locked` (tokens; saturates at i64::MAX), `codex_sales_proofs_submitted` and
//! `codex_sales_proofs_failed` (since start), read from the SalesActor when scraped; with `--validator`,
//! `codex_validator_slots_watched`, `codex_validator_proofs_marked` and `codex_validator_gas_used` (since
//! start), read from the ValidatorActor when scraped.

use codex_actors::sales::SalesSummary;
use codex_actors::store::Space;
use codex_actors::validator::ValidatorInfo;
use prometheus::core::Collector;
use prometheus::{Encoder, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The node's metrics. Cheap to clone (handles to shared values).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub uploads: IntCounter,
    pub downloads: IntCounter,
    blocks: IntGauge,
    bytes_used: IntGauge,
    bytes_reserved: IntGauge,
    sales: IntGaugeVec,
    sales_reserved: IntGauge,
    sales_collateral: IntGauge,
    proofs_submitted: IntGauge,
    proofs_failed: IntGauge,
    validator_watched: IntGauge,
    validator_marked: IntGauge,
    validator_gas: IntGauge,
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
            sales: register(
                &registry,
                IntGaugeVec::new(Opts::new("codex_sales", "Running sales by state"), &["state"]),
            ),
            sales_reserved: gauge("codex_sales_bytes_reserved", "Bytes of quota reserved for sales"),
            sales_collateral: gauge("codex_sales_collateral_locked", "Collateral locked by reservations (tokens)"),
            proofs_submitted: gauge("codex_sales_proofs_submitted", "Storage proofs submitted since start"),
            proofs_failed: gauge("codex_sales_proofs_failed", "Storage proofs missed (failed) since start"),
            validator_watched: gauge("codex_validator_slots_watched", "Filled slots the validator watches"),
            validator_marked: gauge("codex_validator_proofs_marked", "Proofs the validator marked missing since start"),
            validator_gas: gauge("codex_validator_gas_used", "Gas the validator's marks used since start"),
            registry,
        }
    }

    /// Sets the validator's gauges (scraped with `--validator` only).
    pub fn set_validator(&self, info: &ValidatorInfo) {
        self.validator_watched.set(info.watched as i64);
        self.validator_marked.set(i64::try_from(info.marked_total).unwrap_or(i64::MAX));
        self.validator_gas.set(i64::try_from(info.gas_total).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition, with the repository gauges set from `space`.
    pub fn render(&self, space: &Space, sales: Option<&SalesSummary>) -> String {
        if let Some(sales) = sales {
            self.sales.reset();
            for (state, count) in &sales.by_state {
                self.sales.with_label_values(&[*state]).set(*count as i64);
            }
            self.sales_reserved.set(sales.reserved_bytes as i64);
            self.sales_collateral.set(i64::try_from(sales.locked_collateral).unwrap_or(i64::MAX));
            self.proofs_submitted.set(sales.proofs_submitted as i64);
            self.proofs_failed.set(sales.proofs_failed as i64);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sales_figures_are_rendered_with_persistence_only() {
        let metrics = Metrics::new();
        let space = Space {
            total_blocks: 1,
            quota_max_bytes: 10,
            quota_used_bytes: 2,
            quota_reserved_bytes: 3,
            pending_bytes: 0,
        };
        let without = metrics.render(&space, None);
        assert!(without.contains("codex_repostore_bytes_used 2"), "{without}");
        assert!(!without.contains("codex_sales{"), "{without}");
        let summary = SalesSummary {
            by_state: vec![("SaleDownloading", 2), ("SaleProving", 1)],
            reserved_bytes: 1000,
            locked_collateral: alloy::primitives::U256::from(77u8),
            proofs_submitted: 5,
            proofs_failed: 1,
            ..SalesSummary::default()
        };
        let with = metrics.render(&space, Some(&summary));
        for line in [
            "codex_sales{state=\"SaleDownloading\"} 2",
            "codex_sales{state=\"SaleProving\"} 1",
            "codex_sales_bytes_reserved 1000",
            "codex_sales_collateral_locked 77",
            "codex_sales_proofs_submitted 5",
            "codex_sales_proofs_failed 1",
        ] {
            assert!(with.contains(line), "{line} in {with}");
        }
    }
}
