//! Which blocks of a protected dataset form each slot, and how a slot is padded to a power of two of cells
//! (codex-facts §4.4, proof-vectors §4; the node's `SlotsBuilder.new` and `LinearStrategy`).
//!
//! - There are `ecK + ecM` slots. The encoded dataset has `steps × (ecK + ecM)` blocks; with the linear strategy
//!   slot `s` holds the encoded blocks `[s·steps, (s+1)·steps)` (one position of every erasure-coding group).
//! - A block has `blockSize / cellSize` cells. A slot's `steps × cellsPerBlock` cells are padded to the next power
//!   of two with virtual all-zero blocks appended after its data blocks.
//! - Blocks `[originalBlocks, steps·ecK)` of the encoded dataset are the erasure-coding padding: empty blocks that
//!   are not stored. They hash like an all-zero block, as do the slot pad blocks.
//!
//! Names against the node's: `data_blocks_per_slot` = `manifest.numSlotBlocks`, `blocks_per_slot` = the builder's
//! `numSlotBlocks` (padded), `pad_blocks_per_slot` = `numPadSlotBlocks`, `cells_per_slot` = `numSlotCells`
//! padded, `padded_blocks_count` = the builder's `numBlocks`.

use std::ops::Range;

use super::SlotError;
use crate::manifest::Manifest;

/// The geometry of a protected dataset's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLayout {
    block_size: u64,
    cell_size: u64,
    num_slots: u64,
    blocks_count: u64,
    data_blocks_per_slot: u64,
    pad_blocks_per_slot: u64,
    /// Encoded block indices that are erasure-coding padding (empty, not stored).
    empty_blocks: (u64, u64),
}

impl SlotLayout {
    /// The layout of a protected manifest with cells of `cell_size` bytes.
    pub fn from_manifest(manifest: &Manifest, cell_size: u64) -> Result<Self, SlotError> {
        let erasure = manifest.erasure.as_ref().ok_or(SlotError::NotProtected)?;
        let num_slots = erasure.ec_k.checked_add(erasure.ec_m).ok_or(SlotError::TooLarge)?;
        let mut layout = Self::new(manifest.block_size, cell_size, manifest.blocks_count(), num_slots)?;
        let original_blocks = erasure.original_dataset_size.div_ceil(manifest.block_size);
        let rounded = layout.data_blocks_per_slot.saturating_mul(erasure.ec_k);
        layout.empty_blocks = (original_blocks.min(rounded), rounded);
        Ok(layout)
    }

    /// The layout of `blocks_count` blocks in `num_slots` slots, without erasure-coding padding blocks.
    pub fn new(block_size: u64, cell_size: u64, blocks_count: u64, num_slots: u64) -> Result<Self, SlotError> {
        if num_slots == 0 || blocks_count == 0 {
            return Err(SlotError::BadSlotCount { num_slots });
        }
        if !blocks_count.is_multiple_of(num_slots) {
            return Err(SlotError::BlocksNotDivisible { blocks: blocks_count, num_slots });
        }
        if cell_size == 0 || block_size == 0 || !block_size.is_multiple_of(cell_size) {
            return Err(SlotError::CellSizeNotDivisor { block_size, cell_size });
        }
        let data_blocks_per_slot = blocks_count / num_slots;
        let cells_per_block = block_size / cell_size;
        let cells = data_blocks_per_slot.checked_mul(cells_per_block).and_then(u64::checked_next_power_of_two);
        let cells = cells.ok_or(SlotError::TooLarge)?;
        // As the node: whole pad blocks up to the power of two (exact when cells per block is a power of two).
        let pad_blocks_per_slot = (cells / cells_per_block).saturating_sub(data_blocks_per_slot);
        Ok(Self {
            block_size,
            cell_size,
            num_slots,
            blocks_count,
            data_blocks_per_slot,
            pad_blocks_per_slot,
            empty_blocks: (0, 0),
        })
    }

    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    pub fn cell_size(&self) -> u64 {
        self.cell_size
    }

    pub fn num_slots(&self) -> u64 {
        self.num_slots
    }

    /// Blocks of the encoded dataset (`steps × (ecK + ecM)`).
    pub fn blocks_count(&self) -> u64 {
        self.blocks_count
    }

    /// Dataset blocks in each slot (`steps`).
    pub fn data_blocks_per_slot(&self) -> u64 {
        self.data_blocks_per_slot
    }

    /// Virtual all-zero blocks appended to each slot.
    pub fn pad_blocks_per_slot(&self) -> u64 {
        self.pad_blocks_per_slot
    }

    /// Leaves of a slot tree: data blocks plus pad blocks.
    pub fn blocks_per_slot(&self) -> u64 {
        self.data_blocks_per_slot + self.pad_blocks_per_slot
    }

    /// Blocks of all slots together, pads included.
    pub fn padded_blocks_count(&self) -> u64 {
        self.blocks_per_slot() * self.num_slots
    }

    pub fn cells_per_block(&self) -> u64 {
        self.block_size / self.cell_size
    }

    /// Cells of a padded slot (what the sampler draws from).
    pub fn cells_per_slot(&self) -> u64 {
        self.blocks_per_slot() * self.cells_per_block()
    }

    /// The bytes a host stores for one slot, pads included (the storage request's `slotSize`).
    pub fn slot_size(&self) -> u64 {
        self.blocks_per_slot() * self.block_size
    }

    /// The encoded block indices of `slot`'s data blocks, or `None` for a slot out of range.
    pub fn slot_blocks(&self, slot: u64) -> Option<Range<u64>> {
        (slot < self.num_slots).then(|| slot * self.data_blocks_per_slot..(slot + 1) * self.data_blocks_per_slot)
    }

    /// The encoded block index at position `block_in_slot` of `slot`, or `None` for a pad position.
    pub fn dataset_index(&self, slot: u64, block_in_slot: u64) -> Option<u64> {
        let blocks = self.slot_blocks(slot)?;
        (block_in_slot < self.data_blocks_per_slot).then_some(blocks.start + block_in_slot)
    }

    /// True when encoded block `index` is erasure-coding padding: an empty block, hashed as all zeros.
    pub fn is_empty_block(&self, index: u64) -> bool {
        (self.empty_blocks.0..self.empty_blocks.1).contains(&index)
    }

    /// The (block in slot, cell in block) of a slot cell index, or `None` past the padded slot.
    pub fn cell_position(&self, cell_index: u64) -> Option<(u64, u64)> {
        (cell_index < self.cells_per_slot())
            .then(|| (cell_index / self.cells_per_block(), cell_index % self.cells_per_block()))
    }

    /// The slot cell index of cell `cell_in_block` of block `block_in_slot`.
    pub fn cell_index(&self, block_in_slot: u64, cell_in_block: u64) -> Option<u64> {
        (block_in_slot < self.blocks_per_slot() && cell_in_block < self.cells_per_block())
            .then(|| block_in_slot * self.cells_per_block() + cell_in_block)
    }
}
