//! The circuit's input: built from what a host stores for its slot, and checked natively exactly as the
//! circuit checks it, so a damaged slot is found before a doomed proof is computed.

use super::{ProofError, ProofParams};
use crate::poseidon2::{F, MerkleTree, compress, elements, sponge, to_le_bytes};
use crate::slots::{SlotLayout, SlotTree, block_cell_tree, cell_index};

/// One sampled cell: its field elements and its path to the slot root (cell → block, then block → slot,
/// zero-padded to `max_slot_depth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleInput {
    pub cell_data: Vec<F>,
    pub merkle_path: Vec<F>,
}

/// Everything the circuit takes (marketplace-facts §8.2): three public values and the private witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofInput {
    /// Public: the challenge's entropy ([`crate::slots::entropy_from_challenge`]).
    pub entropy: F,
    /// Public: the dataset (verify) root.
    pub dataset_root: F,
    /// Public: the slot's index in the dataset.
    pub slot_index: u64,
    pub slot_root: F,
    /// Cells per slot (a power of two).
    pub n_cells: u64,
    /// Slots in the dataset.
    pub n_slots: u64,
    /// The slot root's path to the dataset root, zero-padded to `max_dataset_depth`.
    pub slot_proof: Vec<F>,
    /// Samples k = 1..=n in order.
    pub samples: Vec<SampleInput>,
}

/// The low `n` bits of `value`, least significant first (bits past 63 are 0).
fn bits(value: u64, n: usize) -> Vec<bool> {
    (0..n).map(|i| i < 64 && (value >> i) & 1 == 1).collect()
}

/// The native twin of [`super::gadgets::root_from_path`] (merkle.circom's `RootFromMerklePath`).
fn root_from_path(leaf: F, path_bits: &[bool], last_bits: &[bool], mask_bits: &[bool], path: &[F]) -> F {
    let depth = path.len();
    let mut is_last = vec![true; depth + 1];
    for i in (0..depth).rev() {
        let agree = path_bits.get(i) == last_bits.get(i);
        let above = is_last.get(i + 1).copied().unwrap_or(true);
        if let Some(slot) = is_last.get_mut(i) {
            *slot = above && agree;
        }
    }
    let mut node = leaf;
    let mut root = F::from(0u64);
    let mut mask_here = true;
    for (level, (((sibling, bit), last), mask_above)) in
        path.iter().zip(path_bits).zip(&is_last).zip(mask_bits.iter().skip(1)).enumerate()
    {
        let odd = *last && !bit;
        let key = u64::from(level == 0) + 2 * u64::from(odd);
        let (left, right) = if *bit { (*sibling, node) } else { (node, *sibling) };
        node = compress(left, right, key);
        if mask_here && !mask_above {
            root = node;
        }
        mask_here = *mask_above;
    }
    root
}

/// `bits[i]` = 2^i < `n`, for i = 0..=len.
fn below_mask(n: u64, len: usize) -> Vec<bool> {
    (0..=len).map(|i| i >= 64 || (1u64 << i) < n).collect()
}

impl ProofInput {
    /// The public inputs in circuit order: [entropy, dataSetRoot, slotIndex].
    pub fn public_inputs(&self) -> [F; 3] {
        [self.entropy, self.dataset_root, F::from(self.slot_index)]
    }

    /// Builds the input for slot `slot_index` of a dataset whose slot roots are `slot_roots`, from the slot's
    /// tree and its blocks (`block(i)` returns block `i` of the slot, in slot order), then [`Self::check`]s it.
    pub fn build(
        params: &ProofParams,
        layout: &SlotLayout,
        entropy: F,
        slot_roots: &[F],
        slot_index: u64,
        slot_tree: &SlotTree,
        mut block: impl FnMut(u64) -> Option<Vec<u8>>,
    ) -> Result<Self, ProofError> {
        let slot_root = slot_tree.root();
        let index = usize::try_from(slot_index).map_err(|_| ProofError::Geometry("slot index"))?;
        if slot_roots.get(index) != Some(&slot_root) {
            return Err(ProofError::Unsatisfied("the slot root is not the dataset's root at the slot index"));
        }
        let dataset = MerkleTree::new(slot_roots).ok_or(ProofError::Geometry("no slots"))?;
        let mut slot_proof = dataset.proof(index).ok_or(ProofError::Geometry("slot index"))?;
        pad(&mut slot_proof, params.max_dataset_depth, "slot proof")?;
        if layout.cells_per_block() != 1 << params.block_depth {
            return Err(ProofError::Geometry("cells per block is not 2^block_depth"));
        }
        let n_cells = layout.cells_per_slot();
        let cell_size = usize::try_from(layout.cell_size()).map_err(|_| ProofError::Geometry("cell size"))?;
        let mut samples = Vec::with_capacity(params.samples);
        for k in 1..=params.samples as u64 {
            let cell = cell_index(entropy, slot_root, k, n_cells).ok_or(ProofError::Geometry("cells per slot"))?;
            let (block_in_slot, cell_in_block) =
                layout.cell_position(cell).ok_or(ProofError::Geometry("cell position"))?;
            let bytes = block(block_in_slot).ok_or(ProofError::DamagedBlock { block: block_in_slot })?;
            let cells = block_cell_tree(&bytes, cell_size).ok_or(ProofError::DamagedBlock { block: block_in_slot })?;
            let mut merkle_path =
                slot_tree.cell_proof(cell, &cells).ok_or(ProofError::DamagedBlock { block: block_in_slot })?;
            pad(&mut merkle_path, params.max_slot_depth, "cell path")?;
            let start = usize::try_from(cell_in_block).ok().and_then(|c| c.checked_mul(cell_size));
            let cell_bytes = start
                .and_then(|s| bytes.get(s..s.checked_add(cell_size)?))
                .ok_or(ProofError::DamagedBlock { block: block_in_slot })?;
            samples.push(SampleInput { cell_data: elements(cell_bytes), merkle_path });
        }
        let input = Self {
            entropy,
            dataset_root: dataset.root(),
            slot_index,
            slot_root,
            n_cells,
            n_slots: slot_roots.len() as u64,
            slot_proof,
            samples,
        };
        input.check(params)?;
        Ok(input)
    }

    /// Checks natively everything the circuit checks: `Ok` exactly when the circuit would be satisfied.
    pub fn check(&self, params: &ProofParams) -> Result<(), ProofError> {
        let p = params;
        shape("slot proof", self.slot_proof.len(), p.max_dataset_depth)?;
        shape("samples", self.samples.len(), p.samples)?;
        for s in &self.samples {
            shape("cell data", s.cell_data.len(), p.cell_elements)?;
            shape("cell path", s.merkle_path.len(), p.max_slot_depth)?;
        }
        if p.block_depth > p.max_slot_depth || p.max_slot_depth >= 64 || p.max_dataset_depth >= 64 {
            return Err(ProofError::Geometry("parameters"));
        }
        // 1. The slot in the dataset tree.
        if self.slot_index >> p.max_dataset_depth != 0 {
            return Err(ProofError::Unsatisfied("slot index too large"));
        }
        let last_slot = self.n_slots.wrapping_sub(1);
        if self.n_slots == 0 || last_slot >> p.max_dataset_depth != 0 {
            return Err(ProofError::Unsatisfied("slot count out of range"));
        }
        let slot_mask: Vec<bool> = (0..=p.max_dataset_depth).map(|i| i < 64 && last_slot >> i != 0).collect();
        let top = root_from_path(
            self.slot_root,
            &bits(self.slot_index, p.max_dataset_depth),
            &bits(last_slot, p.max_dataset_depth),
            &slot_mask,
            &self.slot_proof,
        );
        if top != self.dataset_root {
            return Err(ProofError::Unsatisfied("the slot root does not rebuild the dataset root"));
        }
        // 2. Cells per slot: 2^L with 1 ≤ L ≤ max_slot_depth.
        if !self.n_cells.is_power_of_two() || self.n_cells < 2 || self.n_cells > 1 << p.max_slot_depth {
            return Err(ProofError::Unsatisfied("cells per slot is not a power of two in range"));
        }
        let mask = below_mask(self.n_cells, p.max_slot_depth);
        let (low_mask, _) = mask.split_at(p.max_slot_depth);
        let (bot_mask, mid_mask) = low_mask.split_at(p.block_depth);
        let (bot_mask, mid_mask) = ([bot_mask, &[false]].concat(), [mid_mask, &[false]].concat());
        let last_bits = low_mask.to_vec();
        let (bot_last, mid_last) = last_bits.split_at(p.block_depth);
        // 3–4. The samples.
        for (k, sample) in (1u64..).zip(&self.samples) {
            let hash = sponge(&[self.entropy, self.slot_root, F::from(k)]);
            let hash_bytes = to_le_bytes(&hash);
            let index_bits: Vec<bool> = (0..p.max_slot_depth)
                .zip(low_mask)
                .map(|(i, m)| *m && hash_bytes.get(i / 8).is_some_and(|b| (b >> (i % 8)) & 1 == 1))
                .collect();
            let (bot_bits, mid_bits) = index_bits.split_at(p.block_depth);
            let (bot_path, mid_path) = sample.merkle_path.split_at(p.block_depth);
            let leaf = sponge(&sample.cell_data);
            let block = root_from_path(leaf, bot_bits, bot_last, &bot_mask, bot_path);
            if root_from_path(block, mid_bits, mid_last, &mid_mask, mid_path) != self.slot_root {
                return Err(ProofError::Unsatisfied("a sampled cell does not rebuild the slot root"));
            }
        }
        Ok(())
    }
}

fn shape(what: &'static str, len: usize, expected: usize) -> Result<(), ProofError> {
    if len == expected { Ok(()) } else { Err(ProofError::Shape { what, len, expected }) }
}

fn pad(path: &mut Vec<F>, len: usize, what: &'static str) -> Result<(), ProofError> {
    if path.len() > len {
        return Err(ProofError::Shape { what, len: path.len(), expected: len });
    }
    path.resize(len, F::from(0u64));
    Ok(())
}
