//! Which cells a storage proof samples (codex-facts §4.5; the node's `codex/slots/sampler`).
//!
//! - The entropy is the little-endian integer of the first 31 bytes of the 32-byte challenge (always below the
//!   field modulus); byte 31 is dropped.
//! - Sample k = 1..=n is the cell whose slot index is the low log2(cellsPerSlot) bits of
//!   `sponge([entropy, slotRoot, k])`.

use crate::poseidon2::{F, from_le_bytes, low_bits, sponge};

/// The entropy field element of a 32-byte challenge: its first 31 bytes, little-endian.
pub fn entropy_from_challenge(challenge: &[u8; 32]) -> F {
    let mut bytes = *challenge;
    bytes[31] = 0;
    // A 31-byte value is below the modulus.
    from_le_bytes(&bytes).unwrap_or_default()
}

/// The slot cell index of sample `counter` (the node counts from 1), or `None` unless `cells_per_slot` is a
/// power of two.
pub fn cell_index(entropy: F, slot_root: F, counter: u64, cells_per_slot: u64) -> Option<u64> {
    if !cells_per_slot.is_power_of_two() {
        return None;
    }
    let hash = sponge(&[entropy, slot_root, F::from(counter)]);
    Some(low_bits(&hash, cells_per_slot.trailing_zeros()))
}

/// The slot cell indices of samples 1..=`samples`, or `None` unless `cells_per_slot` is a power of two.
pub fn cell_indices(entropy: F, slot_root: F, cells_per_slot: u64, samples: u64) -> Option<Vec<u64>> {
    (1..=samples).map(|k| cell_index(entropy, slot_root, k, cells_per_slot)).collect()
}
