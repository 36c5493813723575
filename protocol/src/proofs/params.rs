//! The circuit's shape: the original prover's flags (`--proof-samples`, `--max-slot-depth`,
//! `--max-dataset-depth`, `--max-block-depth`, `--max-cell-elements`; marketplace-facts §8.1).

/// The parameters a circuit (and its keys) is built for. Proving and verifying keys belong to one set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProofParams {
    /// Cells sampled per proof (the deployed circuit: 5).
    pub samples: usize,
    /// Merkle path length from a cell to its slot root: at most 2^max_slot_depth cells per slot.
    pub max_slot_depth: usize,
    /// Path length from a slot root to the dataset root: at most 2^max_dataset_depth slots.
    pub max_dataset_depth: usize,
    /// Depth of the cell tree of one block (64 KiB / 2 KiB = 32 cells = depth 5).
    pub block_depth: usize,
    /// Field elements per cell (2048 bytes in 31-byte chunks plus the closing element = 67).
    pub cell_elements: usize,
}

impl Default for ProofParams {
    fn default() -> Self {
        Self { samples: 5, max_slot_depth: 32, max_dataset_depth: 8, block_depth: 5, cell_elements: 67 }
    }
}

impl ProofParams {
    /// The default parameters with `samples` samples.
    pub fn with_samples(samples: usize) -> Self {
        Self { samples, ..Self::default() }
    }
}
