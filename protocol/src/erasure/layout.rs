//! The interleaved erasure layout (codex-facts §7): which encoded indices form each group, which are padding,
//! where parity goes, and which indices a slot holds.

use super::ErasureError;
use std::ops::Range;

/// Validated erasure parameters: `k` data and `m` parity blocks per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErasureParams {
    k: u16,
    m: u16,
}

impl ErasureParams {
    /// Checks K ≥ 2, M ≥ 1, K ≥ M and K + M ≤ 256 (GF(2^8)).
    pub fn new(k: u64, m: u64) -> Result<Self, ErasureError> {
        let reason = if k < 2 {
            Some("K must be at least 2")
        } else if m < 1 {
            Some("M must be at least 1")
        } else if k < m {
            Some("K must be at least M")
        } else if k.saturating_add(m) > 256 {
            Some("K + M must be at most 256")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ErasureError::InvalidParams { k, m, reason });
        }
        // K + M ≤ 256, so both fit a u16.
        Ok(Self { k: k as u16, m: m as u16 })
    }

    /// Data blocks per group.
    pub fn k(&self) -> usize {
        usize::from(self.k)
    }

    /// Parity blocks per group.
    pub fn m(&self) -> usize {
        usize::from(self.m)
    }

    /// Blocks per group, K + M (also the number of slots of the dataset).
    pub fn total(&self) -> usize {
        self.k() + self.m()
    }
}

/// The encoded dataset of `original_blocks` blocks under `params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasureLayout {
    params: ErasureParams,
    original_blocks: u64,
    rounded: u64,
    steps: u64,
    encoded_blocks: u64,
}

impl ErasureLayout {
    /// The layout of `original_blocks` blocks; at least K blocks are needed.
    pub fn new(params: ErasureParams, original_blocks: u64) -> Result<Self, ErasureError> {
        let k = params.k() as u64;
        let m = params.m() as u64;
        if original_blocks < k {
            return Err(ErasureError::TooFewBlocks { blocks: original_blocks, needed: k });
        }
        let steps = original_blocks.div_ceil(k);
        let too_many = ErasureError::TooManyBlocks { blocks: original_blocks };
        let rounded = steps.checked_mul(k).ok_or(too_many.clone())?;
        let encoded_blocks = steps.checked_mul(m).and_then(|parity| parity.checked_add(rounded)).ok_or(too_many)?;
        Ok(Self { params, original_blocks, rounded, steps, encoded_blocks })
    }

    /// The layout of a protected manifest (`None` for an unprotected one or parameters out of range).
    pub fn from_manifest(manifest: &crate::Manifest) -> Option<Self> {
        let erasure = manifest.erasure.as_ref()?;
        let params = ErasureParams::new(erasure.ec_k, erasure.ec_m).ok()?;
        if manifest.block_size == 0 {
            return None;
        }
        Self::new(params, erasure.original_dataset_size.div_ceil(manifest.block_size)).ok()
    }

    pub fn params(&self) -> ErasureParams {
        self.params
    }

    /// Blocks of the original dataset.
    pub fn original_blocks(&self) -> u64 {
        self.original_blocks
    }

    /// `roundUp(original_blocks, K)`: data blocks including padding; parity starts here.
    pub fn rounded(&self) -> u64 {
        self.rounded
    }

    /// `rounded / K`: the number of groups, and the number of blocks of each slot.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The number of groups (= [`steps`](Self::steps)).
    pub fn groups(&self) -> u64 {
        self.steps
    }

    /// `rounded + steps · M`: the encoded dataset's block count.
    pub fn encoded_blocks(&self) -> u64 {
        self.encoded_blocks
    }

    /// The group of encoded `index` and its position in the group (0..K data, K..K+M parity); `None` past the
    /// encoded dataset.
    pub fn group_of(&self, index: u64) -> Option<(u64, usize)> {
        if index >= self.encoded_blocks {
            return None;
        }
        let (base, offset) = if index < self.rounded { (0, index) } else { (self.params.k(), index - self.rounded) };
        // offset / steps < K or < M, so it fits a usize.
        Some((offset % self.steps, base + (offset / self.steps) as usize))
    }

    /// The encoded index at `position` (0..K data, K..K+M parity) of group `group`; `None` outside the layout.
    pub fn member(&self, group: u64, position: usize) -> Option<u64> {
        if group >= self.steps || position >= self.params.total() {
            return None;
        }
        let k = self.params.k();
        Some(if position < k {
            group + position as u64 * self.steps
        } else {
            self.rounded + group + (position - k) as u64 * self.steps
        })
    }

    /// The K data then M parity indices of group `group` (nothing for a group past the layout).
    pub fn group_members(&self, group: u64) -> impl Iterator<Item = u64> + use<> {
        let layout = *self;
        (0..self.params.total()).map_while(move |position| layout.member(group, position))
    }

    /// The index of parity block `j` (0..M) of group `group`: `rounded + group + j·steps`.
    pub fn parity_index(&self, group: u64, j: usize) -> Option<u64> {
        if j >= self.params.m() {
            return None;
        }
        self.member(group, self.params.k() + j)
    }

    /// Whether `index` is a padding position (`original_blocks ≤ index < rounded`): zeros, never stored.
    pub fn is_padding(&self, index: u64) -> bool {
        self.original_blocks <= index && index < self.rounded
    }

    /// The encoded indices of slot `slot` (LinearStrategy over the encoded blocks): `[slot·steps,
    /// (slot+1)·steps)`, i.e. position `slot` of every group. Empty past the last slot.
    pub fn slot_indices(&self, slot: usize) -> Range<u64> {
        if slot >= self.params.total() {
            return 0..0;
        }
        let start = slot as u64 * self.steps;
        start..start + self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layout(blocks: u64, k: u64, m: u64) -> ErasureLayout {
        ErasureLayout::new(ErasureParams::new(k, m).unwrap(), blocks).unwrap()
    }

    #[test]
    fn geometry_vectors() {
        let l = layout(123, 20, 10);
        assert_eq!((l.rounded(), l.steps(), l.encoded_blocks()), (140, 7, 210));
        assert_eq!(l.group_members(0).collect::<Vec<_>>()[..3], [0, 7, 14]);
        assert_eq!(l.parity_index(0, 0), Some(140));
        assert_eq!(l.parity_index(6, 9), Some(140 + 6 + 63));
        assert!(l.is_padding(123) && l.is_padding(139) && !l.is_padding(122) && !l.is_padding(140));

        let l = layout(8, 3, 2);
        assert_eq!((l.rounded(), l.steps(), l.encoded_blocks()), (9, 3, 15));
        assert_eq!(l.group_members(0).collect::<Vec<_>>(), [0, 3, 6, 9, 12]);
        assert_eq!(l.group_members(2).collect::<Vec<_>>(), [2, 5, 8, 11, 14]);
        assert!(l.is_padding(8));
        assert_eq!(l.slot_indices(0), 0..3);
        assert_eq!(l.slot_indices(4), 12..15);
        assert_eq!(l.slot_indices(5), 0..0);
        assert_eq!(l.group_of(8), Some((2, 2)));
        assert_eq!(l.group_of(14), Some((2, 4)));
        assert_eq!(l.group_of(15), None);
        assert_eq!(l.group_members(3).count(), 0);
        assert_eq!(l.parity_index(0, 2), None);
    }

    #[test]
    fn exact_multiple_has_no_padding() {
        let l = layout(6, 3, 1);
        assert_eq!((l.rounded(), l.steps(), l.encoded_blocks()), (6, 2, 8));
        assert!((0..8).all(|index| !l.is_padding(index)));
    }

    #[test]
    fn param_errors() {
        for (k, m, reason) in [
            (1, 1, "K must be at least 2"),
            (0, 0, "K must be at least 2"),
            (2, 0, "M must be at least 1"),
            (2, 3, "K must be at least M"),
            (200, 57, "K + M must be at most 256"),
            (u64::MAX, 1, "K + M must be at most 256"),
        ] {
            assert_eq!(ErasureParams::new(k, m), Err(ErasureError::InvalidParams { k, m, reason }), "{k} {m}");
        }
        assert!(ErasureParams::new(2, 1).is_ok());
        assert!(ErasureParams::new(128, 128).is_ok());
        assert!(ErasureParams::new(255, 1).is_ok());
    }

    #[test]
    fn too_few_blocks() {
        let params = ErasureParams::new(3, 2).unwrap();
        assert_eq!(ErasureLayout::new(params, 2), Err(ErasureError::TooFewBlocks { blocks: 2, needed: 3 }));
        assert_eq!(ErasureLayout::new(params, 0), Err(ErasureError::TooFewBlocks { blocks: 0, needed: 3 }));
        assert!(ErasureLayout::new(params, 3).is_ok());
        assert_eq!(ErasureLayout::new(params, u64::MAX), Err(ErasureError::TooManyBlocks { blocks: u64::MAX }));
    }

    proptest! {
        #[test]
        fn groups_partition_the_encoded_dataset(k in 2u64..12, m_seed in 1u64..12, extra in 0u64..200) {
            let m = 1 + (m_seed - 1) % k;
            let blocks = k + extra;
            let l = layout(blocks, k, m);
            let encoded = l.encoded_blocks();
            prop_assert_eq!(l.rounded() % k, 0);
            prop_assert!(l.rounded() >= blocks && l.rounded() < blocks + k);
            prop_assert_eq!(encoded, l.steps() * (k + m));
            let mut seen = vec![false; encoded as usize];
            for group in 0..l.groups() {
                let members: Vec<u64> = l.group_members(group).collect();
                prop_assert_eq!(members.len(), (k + m) as usize);
                for (position, &index) in members.iter().enumerate() {
                    prop_assert!(index < encoded);
                    prop_assert!(!seen[index as usize], "index {} in two groups", index);
                    seen[index as usize] = true;
                    prop_assert_eq!(l.group_of(index), Some((group, position)));
                    // Parity after the rounded data; data positions are in order within the original blocks.
                    prop_assert_eq!(position >= k as usize, index >= l.rounded());
                    if position < k as usize {
                        prop_assert_eq!(index, group + position as u64 * l.steps());
                    }
                    // Slot `position` holds position `position` of every group.
                    prop_assert!(l.slot_indices(position).contains(&index));
                }
            }
            prop_assert!(seen.iter().all(|&s| s));
            // The first original_blocks indices are the data in order: the data positions of groups, read
            // slot by slot, enumerate 0..rounded and only the tail past original_blocks is padding.
            let data: Vec<u64> = (0..k as usize).flat_map(|slot| l.slot_indices(slot)).collect();
            prop_assert_eq!(data, (0..l.rounded()).collect::<Vec<_>>());
            prop_assert_eq!((0..encoded).filter(|&i| l.is_padding(i)).count() as u64, l.rounded() - blocks);
            prop_assert!((0..blocks).all(|i| !l.is_padding(i)));
        }
    }
}
