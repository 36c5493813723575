//! The sampling circuit, `SampleAndProve` of `circuit/codex/sample_cells.circom` (marketplace-facts §8.2–8.3).
//!
//! - Public inputs, in this order: entropy, dataSetRoot, slotIndex.
//! - Private: slotRoot, nCellsPerSlot, nSlotsPerDataSet, slotProof\[max_dataset_depth\], and per sample the
//!   cell's `cell_elements` field elements and its path\[max_slot_depth\] (block_depth cell → block siblings,
//!   then block → slot, zero-padded).
//! - Checks:
//!   1. slotIndex < 2^max_dataset_depth; its bits place slotRoot on slotProof, in a tree of nSlotsPerDataSet
//!      leaves (ceil(log2) levels, odd keys from the bits of nSlots − 1), and rebuild dataSetRoot;
//!   2. nCellsPerSlot = 2^L with 1 ≤ L ≤ max_slot_depth, through a monotone bit mask (mask\[i\] = 2^i < nCells);
//!   3. for k = 1..=samples: the sponge of [entropy, slotRoot, k] is decomposed into 254 bits checked to be
//!      below r, and its low bits under the mask are the cell index;
//!   4. each cell's sponge hash climbs the block tree (block_depth levels) and then the slot tree (the rest)
//!      and rebuilds slotRoot.
//!
//! Differences from the circom code, all stricter: the nCells mask bits are constrained to be booleans and
//! monotone (circom only checks their weighted sum).

use ark_r1cs_std::prelude::*;
use ark_relations::r1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};

use super::gadgets::{Bit, Fv, root_from_path, small_bits, sponge};
use super::{ProofInput, ProofParams};
use crate::poseidon2::F;

/// The circuit for one parameter set; `input` is `None` for the key setup.
#[derive(Debug, Clone)]
pub struct SampleCircuit {
    pub params: ProofParams,
    pub input: Option<ProofInput>,
}

impl SampleCircuit {
    /// The circuit without a witness, for the key setup.
    pub fn setup(params: ProofParams) -> Self {
        Self { params, input: None }
    }

    /// The circuit with a witness, for proving.
    pub fn prove(params: ProofParams, input: ProofInput) -> Self {
        Self { params, input: Some(input) }
    }
}

/// A witness field element from `value`, `AssignmentMissing` when there is none (setup).
fn witness(cs: &ConstraintSystemRef<F>, value: Option<F>) -> Result<Fv, SynthesisError> {
    Fv::new_witness(cs.clone(), || value.ok_or(SynthesisError::AssignmentMissing))
}

/// `count` witnesses from `values` (missing ones are unassigned).
fn witnesses(cs: &ConstraintSystemRef<F>, values: Option<&[F]>, count: usize) -> Result<Vec<Fv>, SynthesisError> {
    (0..count).map(|i| witness(cs, values.and_then(|v| v.get(i).copied()))).collect()
}

impl ConstraintSynthesizer<F> for SampleCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<F>) -> Result<(), SynthesisError> {
        let p = self.params;
        let input = self.input.as_ref();
        if p.block_depth > p.max_slot_depth || p.max_slot_depth >= 64 || p.max_dataset_depth >= 64 {
            return Err(SynthesisError::Unsatisfiable);
        }

        // Public inputs.
        let entropy = Fv::new_input(cs.clone(), || input.map(|i| i.entropy).ok_or(SynthesisError::AssignmentMissing))?;
        let dataset_root =
            Fv::new_input(cs.clone(), || input.map(|i| i.dataset_root).ok_or(SynthesisError::AssignmentMissing))?;
        let slot_index = Fv::new_input(cs.clone(), || {
            input.map(|i| F::from(i.slot_index)).ok_or(SynthesisError::AssignmentMissing)
        })?;

        // Private inputs.
        let slot_root = witness(&cs, input.map(|i| i.slot_root))?;
        let n_cells = witness(&cs, input.map(|i| F::from(i.n_cells)))?;
        let n_slots = witness(&cs, input.map(|i| F::from(i.n_slots)))?;
        let slot_proof = witnesses(&cs, input.map(|i| i.slot_proof.as_slice()), p.max_dataset_depth)?;

        // 1. The slot root in the dataset tree.
        let index_bits = small_bits(&slot_index, p.max_dataset_depth)?;
        let last_slot_bits = small_bits(&(&n_slots - F::from(1u64)), p.max_dataset_depth)?;
        // CeilingLog2: mask[i] = some bit at or above i of nSlots − 1 is set; mask[depth] = 0.
        let mut slot_mask = vec![Bit::FALSE; p.max_dataset_depth + 1];
        let mut none_above = Bit::TRUE;
        for (mask, bit) in slot_mask.iter_mut().zip(&last_slot_bits).rev() {
            none_above = &none_above & &!bit;
            *mask = !&none_above;
        }
        let top = root_from_path(slot_root.clone(), &index_bits, &last_slot_bits, &slot_mask, &slot_proof)?;
        top.enforce_equal(&dataset_root)?;

        // 2. nCells = 2^L: mask[i] = (2^i < nCells), boolean, monotone, mask[0] = 1, mask[max] = 0.
        let n_cells_value = input.map(|i| i.n_cells);
        let cell_mask = (0..=p.max_slot_depth)
            .map(|i| {
                Bit::new_witness(cs.clone(), || {
                    n_cells_value.map(|n| (1u64 << i) < n).ok_or(SynthesisError::AssignmentMissing)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (cell_mask.first(), cell_mask.last()) else {
            return Err(SynthesisError::Unsatisfiable);
        };
        first.enforce_equal(&Bit::TRUE)?;
        last.enforce_equal(&Bit::FALSE)?;
        let mut sum = Fv::zero();
        let mut weight = F::from(2u64);
        for (here, above) in cell_mask.iter().zip(cell_mask.iter().skip(1)) {
            (above & &!here).enforce_equal(&Bit::FALSE)?;
            sum += (Fv::from(here.clone()) - Fv::from(above.clone())) * weight;
            weight = weight + weight;
        }
        sum.enforce_equal(&n_cells)?;
        // nCells − 1 is the mask itself (a power of two).
        let (cell_mask_low, _) = cell_mask.split_at(p.max_slot_depth);
        let last_cell_bits = cell_mask_low.to_vec();

        // 3–4. The samples.
        for k in 0..p.samples {
            let sample = input.and_then(|i| i.samples.get(k));
            let counter = Fv::constant(F::from(k as u64 + 1));
            let hash = sponge(&[entropy.clone(), slot_root.clone(), counter])?;
            // The unique 254-bit decomposition (checked below r), masked to log2(nCells) bits.
            let bits = hash.to_bits_le()?;
            let cell_bits: Vec<Bit> = bits.iter().zip(cell_mask_low).map(|(b, m)| b & m).collect();
            if cell_bits.len() != p.max_slot_depth {
                return Err(SynthesisError::Unsatisfiable);
            }

            let data = witnesses(&cs, sample.map(|s| s.cell_data.as_slice()), p.cell_elements)?;
            let path = witnesses(&cs, sample.map(|s| s.merkle_path.as_slice()), p.max_slot_depth)?;
            let leaf = sponge(&data)?;

            // The block tree: the first block_depth levels; its mask ends with 0.
            let (bot_bits, mid_bits) = cell_bits.split_at(p.block_depth);
            let (bot_last, mid_last) = last_cell_bits.split_at(p.block_depth);
            let (bot_path, mid_path) = path.split_at(p.block_depth);
            let (bot_mask, mid_mask) = cell_mask_low.split_at(p.block_depth);
            let mut bot_mask = bot_mask.to_vec();
            bot_mask.push(Bit::FALSE);
            let mut mid_mask = mid_mask.to_vec();
            mid_mask.push(Bit::FALSE);
            let block = root_from_path(leaf, bot_bits, bot_last, &bot_mask, bot_path)?;
            let root = root_from_path(block, mid_bits, mid_last, &mid_mask, mid_path)?;
            root.enforce_equal(&slot_root)?;
        }
        Ok(())
    }
}
