//! The `codex` node's composition root, as a library so whole-node tests can build the same REST app:
//! command line and configuration ([`config`], [`units`]), startup checks ([`datadir`]), logging
//! ([`telemetry`]), metrics ([`metrics`]), the REST API ([`rest`]) and the REST client ([`client`]).

pub mod client;
pub mod config;
pub mod contracts_cli;
pub mod datadir;
pub mod metrics;
pub mod persistence;
pub mod prover_cli;
pub mod rest;
pub mod telemetry;
pub mod units;
