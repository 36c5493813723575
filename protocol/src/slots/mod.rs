//! Slots of a protected dataset: their layout, their Poseidon2 trees, the verifiable manifest, and the cells a
//! storage proof samples. Byte- and number-compatible with the node's `codex/slots` (codex-facts §4.4–4.5).
//!
//! - [`layout`]: which encoded blocks a slot holds, and its padding to a power of two of cells.
//! - [`tree`]: block digests, slot trees and paths, the verify root, slot/verify root CIDs.
//! - [`sampler`]: entropy from a challenge and the sampled cell indices.
//!
//! Everything is pure: the caller reads blocks and hands their bytes or digests in.

pub mod layout;
pub mod sampler;
pub mod tree;

use thiserror::Error;

use crate::manifest::{Manifest, VerificationInfo};
use crate::poseidon2::F;

pub use layout::SlotLayout;
pub use sampler::{cell_index, cell_indices, entropy_from_challenge};
pub use tree::{
    SlotTree, block_cell_tree, root_from_cid, slot_block_digest, slot_cell_cid, slot_root_cid, verify_cell_proof,
    verify_root, verify_root_cid,
};

/// The cell size of the original node and its circuit: 2 KiB, 67 field elements.
pub const DEFAULT_CELL_SIZE: u64 = 2048;
/// `verifiableStrategy` of slots: the linear indexing strategy.
pub const LINEAR_STRATEGY: u64 = 0;

/// Errors laying out or building slots.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SlotError {
    #[error("manifest is not protected")]
    NotProtected,
    #[error("number of blocks ({blocks}) must be divisible by number of slots ({num_slots})")]
    BlocksNotDivisible { blocks: u64, num_slots: u64 },
    #[error("block size ({block_size}) must be divisible by cell size ({cell_size})")]
    CellSizeNotDivisor { block_size: u64, cell_size: u64 },
    #[error("a dataset needs at least one block and one slot, got {num_slots} slots")]
    BadSlotCount { num_slots: u64 },
    #[error("slot geometry overflows")]
    TooLarge,
    #[error("block {index} has {len} bytes, expected {expected}")]
    BlockLength { index: u64, len: usize, expected: u64 },
    #[error("got {count} block digests for a slot of {expected} data blocks")]
    DigestCount { count: usize, expected: u64 },
    #[error("got {count} slot roots, the dataset has {expected} slots")]
    SlotRootCount { count: usize, expected: u64 },
}

/// The verifiable manifest of a protected manifest: the same manifest with its verification info (verify root,
/// one slot root per slot in order, `cell_size`, the linear strategy), as the node's `buildManifest` writes it.
pub fn verifiable_manifest(
    protected: &Manifest,
    cell_size: u64,
    slot_roots: &[F],
    verify_root: F,
) -> Result<Manifest, SlotError> {
    let layout = SlotLayout::from_manifest(protected, cell_size)?;
    if slot_roots.len() as u64 != layout.num_slots() {
        return Err(SlotError::SlotRootCount { count: slot_roots.len(), expected: layout.num_slots() });
    }
    let mut manifest = protected.clone();
    let erasure = manifest.erasure.as_mut().ok_or(SlotError::NotProtected)?;
    erasure.verification = Some(VerificationInfo {
        verify_root: verify_root_cid(&verify_root),
        slot_roots: slot_roots.iter().map(slot_root_cid).collect(),
        cell_size,
        verifiable_strategy: LINEAR_STRATEGY,
    });
    Ok(manifest)
}

#[cfg(test)]
pub(crate) mod tests;
