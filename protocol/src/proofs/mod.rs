//! Storage proofs (feature `proofs`): the Codex sampling circuit as R1CS over BN254, its witness, and Groth16.
//!
//! The circuit has the semantics of the original `SampleAndProve` (codex-storage-proofs-circuits,
//! marketplace-facts §8): public inputs `[entropy, dataSetRoot, slotIndex]`; it checks that the slot root rebuilds
//! the dataset root along the slot index, that sample k = 1..=n is the cell at the low log2(nCells) bits of
//! `sponge([entropy, slotRoot, k])`, and that each cell's sponge hash and path rebuild the slot root.
//!
//! - [`params`]: the circuit's shape ([`ProofParams`], the original prover's flags).
//! - [`gadgets`]: Poseidon2, compression, sponge and the keyed Merkle path check in R1CS.
//! - [`circuit`]: [`SampleCircuit`], the constraint synthesizer.
//! - [`witness`]: [`ProofInput`], built from a slot's data and checked natively before proving.
//! - [`groth16`]: setup, prove, verify, and the proof in the marketplace's ABI form.

pub mod circuit;
pub mod gadgets;
pub mod groth16;
pub mod params;
pub mod witness;

#[cfg(test)]
mod tests;

pub use circuit::SampleCircuit;
pub use params::ProofParams;
pub use witness::{ProofInput, SampleInput};

use ark_relations::r1cs::SynthesisError;

/// Why a proof input could not be built, checked or proven.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The input does not have the shape of the parameters.
    #[error("proof input shape: {what} is {len}, the circuit wants {expected}")]
    Shape { what: &'static str, len: usize, expected: usize },
    /// A geometry the circuit cannot express.
    #[error("unsupported geometry: {0}")]
    Geometry(&'static str),
    /// A block read for a sample does not hash to its digest in the slot tree: the stored slot is damaged.
    #[error("block {block} of the slot does not match the slot tree (damaged or missing)")]
    DamagedBlock { block: u64 },
    /// The native check failed: proving would give a proof that does not verify.
    #[error("the proof input does not satisfy the circuit: {0}")]
    Unsatisfied(&'static str),
    /// Constraint synthesis or proving failed.
    #[error("constraint synthesis: {0}")]
    Synthesis(#[from] SynthesisError),
}
