//! The Codex node's actors.
//!
//! - [`node::NodeActor`]: the root, the seed-000 "Codex component"; REST handlers talk to it.
//! - [`store::StoreActor`]: redb metadata and dataset segment files, quota, expiry.
//! - [`erasure::ErasureActor`]: Reed–Solomon encoding and decoding of segment files, on a SyncArbiter.
//! - [`error::ErrorKind`]: what kind of failure an error is (the REST layer maps it to a status).
//! - [`fetch`]: the network fetch flow (manifest fetching and validation, starting downloads).
//! - [`maintenance::MaintenanceActor`]: the periodic expiry sweep.
//! - [`prover::ProverActor`]: Groth16 storage proofs of held slots, keys from the circuit directory.
//! - [`protect`]: the protect flow (erasure coding, slot building, the verifiable manifest).
//! - [`slot_host`]: slot hosting (fetch one slot of a verifiable dataset, check its slot root, keep it).
//! - [`slots::SlotBuilderActor`]: Poseidon2 block digests, slot roots and the verify root.
//! - [`upload::UploadSession`]: the streaming upload pipeline (hasher and writer threads), not an actor.

pub mod blockexc;
pub mod chain;
pub mod discovery;
pub mod erasure;
pub mod error;
pub mod fetch;
pub mod maintenance;
pub mod network;
pub mod node;
pub mod protect;
pub mod prover;
pub mod purchasing;
pub mod sales;
pub mod slot_host;
pub mod slots;
pub mod store;
pub mod upload;
pub mod validator;
