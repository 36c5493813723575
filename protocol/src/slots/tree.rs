//! Slot trees, the verify (dataset) tree and their CIDs (codex-facts §4.4, marketplace-facts §8.6).
//!
//! - A block's cell tree: the Poseidon2 Merkle tree over the sponge hashes of its cells; its root is the block
//!   digest.
//! - A slot tree: the Merkle tree over the block digests of the slot's data blocks in order, followed by the
//!   zero-block digest for every pad position. Empty erasure-coding padding blocks also take the zero-block
//!   digest ([`slot_block_digest`]).
//! - The verify root: the Merkle root over all slot roots. As 32 LE bytes it is the on-chain `merkleRoot`.
//! - A cell's path in its slot: its path in the block's cell tree, then the block's path in the slot tree.

use ::cid::Cid;

use super::SlotError;
use super::layout::SlotLayout;
use crate::cid::{
    IDENTITY, POSEIDON2_MERKLE_2KB, PROVING_ROOT_CODEC, SLOT_CELL_CODEC, SLOT_ROOT_CODEC, cid_from_digest32, digest32,
};
use crate::poseidon2::merkle;
use crate::poseidon2::{F, MerkleTree, block_digest, cell_hashes, from_le_bytes, to_le_bytes, zero_block_digest};

/// The digest of the all-zero block of `layout`'s geometry.
fn zero_digest(layout: &SlotLayout) -> Result<F, SlotError> {
    let (block_size, cell_size) = sizes(layout)?;
    zero_block_digest(block_size, cell_size)
        .ok_or(SlotError::CellSizeNotDivisor { block_size: layout.block_size(), cell_size: layout.cell_size() })
}

fn sizes(layout: &SlotLayout) -> Result<(usize, usize), SlotError> {
    let block_size = usize::try_from(layout.block_size()).map_err(|_| SlotError::TooLarge)?;
    let cell_size = usize::try_from(layout.cell_size()).map_err(|_| SlotError::TooLarge)?;
    Ok((block_size, cell_size))
}

/// The digest the slot tree uses for encoded block `index` with contents `block`: the zero-block digest for an
/// erasure-coding padding index or an empty block, else the Merkle root over its cell hashes.
pub fn slot_block_digest(layout: &SlotLayout, index: u64, block: &[u8]) -> Result<F, SlotError> {
    if layout.is_empty_block(index) || block.is_empty() {
        return zero_digest(layout);
    }
    let (block_size, cell_size) = sizes(layout)?;
    if block.len() != block_size {
        return Err(SlotError::BlockLength { index, len: block.len(), expected: layout.block_size() });
    }
    block_digest(block, cell_size).ok_or(SlotError::BlockLength { index, len: block.len(), expected: 0 })
}

/// The cell tree of a block (leaves: cell hashes; root: the block digest), or `None` unless `cell_size`
/// divides the block's non-zero length.
pub fn block_cell_tree(block: &[u8], cell_size: usize) -> Option<MerkleTree> {
    MerkleTree::new(&cell_hashes(block, cell_size)?)
}

/// The tree of one slot over its padded block digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotTree {
    tree: MerkleTree,
    cells_per_block: u64,
}

impl SlotTree {
    /// Builds the tree of a slot of `layout` from the digests of its data blocks in slot order (use
    /// [`slot_block_digest`]); pad positions get the zero-block digest.
    pub fn new(layout: &SlotLayout, data_block_digests: &[F]) -> Result<Self, SlotError> {
        let expected = layout.data_blocks_per_slot();
        if data_block_digests.len() as u64 != expected {
            return Err(SlotError::DigestCount { count: data_block_digests.len(), expected });
        }
        let zero = zero_digest(layout)?;
        let pads = usize::try_from(layout.pad_blocks_per_slot()).map_err(|_| SlotError::TooLarge)?;
        let mut leaves = Vec::with_capacity(data_block_digests.len() + pads);
        leaves.extend_from_slice(data_block_digests);
        leaves.resize(data_block_digests.len() + pads, zero);
        let tree = MerkleTree::new(&leaves).ok_or(SlotError::DigestCount { count: 0, expected })?;
        Ok(Self { tree, cells_per_block: layout.cells_per_block() })
    }

    /// The slot root.
    pub fn root(&self) -> F {
        self.tree.root()
    }

    /// The tree over the block digests.
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// The path of block `block_in_slot` in the slot tree.
    pub fn block_proof(&self, block_in_slot: u64) -> Option<Vec<F>> {
        self.tree.proof(usize::try_from(block_in_slot).ok()?)
    }

    /// The path of slot cell `cell_index` to the slot root: its path in `block_cells` (the cell tree of the block
    /// that holds it, see [`block_cell_tree`]) followed by that block's path in the slot tree. `None` if the
    /// cell is out of range or `block_cells` is not that block's tree.
    pub fn cell_proof(&self, cell_index: u64, block_cells: &MerkleTree) -> Option<Vec<F>> {
        let block = cell_index.checked_div(self.cells_per_block)?;
        let cell = cell_index % self.cells_per_block;
        let digest = *self.tree.leaves().get(usize::try_from(block).ok()?)?;
        if block_cells.root() != digest || block_cells.leaves_count() as u64 != self.cells_per_block {
            return None;
        }
        let mut path = block_cells.proof(usize::try_from(cell).ok()?)?;
        path.extend(self.block_proof(block)?);
        Some(path)
    }
}

/// The verify (dataset) root: the Merkle root over the slot roots, or `None` when there are none.
pub fn verify_root(slot_roots: &[F]) -> Option<F> {
    crate::poseidon2::merkle_root(slot_roots)
}

/// The CID of a slot root: codex-slot-root over the identity multihash of its 32 LE bytes.
pub fn slot_root_cid(root: &F) -> Cid {
    cid_from_digest32(SLOT_ROOT_CODEC, IDENTITY, &to_le_bytes(root))
}

/// The CID of a verify root: codex-proving-root over the identity multihash of its 32 LE bytes.
pub fn verify_root_cid(root: &F) -> Cid {
    cid_from_digest32(PROVING_ROOT_CODEC, IDENTITY, &to_le_bytes(root))
}

/// The CID of a slot-tree leaf (a block digest): codex-slot-cell over a poseidon2-merkle-2kb multihash.
pub fn slot_cell_cid(digest: &F) -> Cid {
    cid_from_digest32(SLOT_CELL_CODEC, POSEIDON2_MERKLE_2KB, &to_le_bytes(digest))
}

/// The field element inside a slot-root or verify-root CID (identity multihash of a canonical 32-byte LE value).
pub fn root_from_cid(cid: &Cid) -> Option<F> {
    from_le_bytes(&digest32(cid, IDENTITY)?)
}

/// Checks a cell's path to its slot root (what the circuit checks per sample): the first
/// log2(cells per block) nodes lead from `cell_hash` to its block digest in a tree of cells-per-block leaves,
/// the rest from that digest to `slot_root` in a tree of blocks-per-slot leaves.
pub fn verify_cell_proof(layout: &SlotLayout, cell_hash: F, cell_index: u64, path: &[F], slot_root: F) -> bool {
    let Some((block, cell)) = layout.cell_position(cell_index) else { return false };
    let cells_per_block = layout.cells_per_block();
    let (cell_path, block_path) = path.split_at(merkle::depth(cells_per_block).min(path.len()));
    merkle::reconstruct_root(cell_hash, cell, cells_per_block, cell_path)
        .is_some_and(|digest| merkle::verify_proof(digest, block, layout.blocks_per_slot(), block_path, slot_root))
}
