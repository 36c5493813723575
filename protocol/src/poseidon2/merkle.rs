//! The Poseidon2 Merkle tree of the slot and dataset trees: the same keyed rules as the SHA-256 CodexTree
//! ([`crate::tree`], codex-facts §4.2, proof-vectors §2.4).
//!
//! - A layer pairs (2i, 2i+1) and compresses them with key 1 on the bottom (leaf) layer, 0 above.
//! - The last node of an odd-length layer is compressed with 0 as its right sibling, key 3 on the bottom layer,
//!   2 above.
//! - A single leaf is still compressed once: the root of `[a]` is `compress(a, 0, 3)`, never `a`.
//! - A proof lists the siblings bottom-up, 0 where a node had none; its length is the tree's depth.

use ark_ff::AdditiveGroup;

use super::{F, compress};

const KEY_NONE: u64 = 0;
const KEY_BOTTOM: u64 = 1;
const KEY_ODD: u64 = 2;

/// The layer above `layer`.
fn next_layer(layer: &[F], bottom: bool) -> Vec<F> {
    let key = if bottom { KEY_BOTTOM } else { KEY_NONE };
    let (pairs, odd) = layer.as_chunks::<2>();
    let mut next = Vec::with_capacity(pairs.len() + odd.len());
    next.extend(pairs.iter().map(|[left, right]| compress(*left, *right, key)));
    next.extend(odd.iter().map(|last| compress(*last, F::ZERO, key + KEY_ODD)));
    next
}

/// The Merkle root of `leaves`, or `None` when there are none.
pub fn merkle_root(leaves: &[F]) -> Option<F> {
    if leaves.is_empty() {
        return None;
    }
    let mut layer = next_layer(leaves, true);
    while layer.len() > 1 {
        layer = next_layer(&layer, false);
    }
    layer.first().copied()
}

/// The number of compression levels (= proof length) of a tree with `leaves` leaves: at least 1.
pub fn depth(leaves: u64) -> usize {
    let mut depth = 1;
    let mut width = leaves.div_ceil(2);
    while width > 1 {
        width = width.div_ceil(2);
        depth += 1;
    }
    depth
}

/// A Poseidon2 Merkle tree with all its layers, for proofs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// Layers from the leaves (first) to the root (last, one node). At least two layers.
    layers: Vec<Vec<F>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves`, or `None` when there are none.
    pub fn new(leaves: &[F]) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let mut layers = vec![leaves.to_vec()];
        let mut next = next_layer(leaves, true);
        while next.len() > 1 {
            let above = next_layer(&next, false);
            layers.push(next);
            next = above;
        }
        layers.push(next);
        Some(Self { layers })
    }

    /// The root.
    pub fn root(&self) -> F {
        self.layers.last().and_then(|top| top.first()).copied().unwrap_or(F::ZERO)
    }

    /// The leaves.
    pub fn leaves(&self) -> &[F] {
        self.layers.first().map_or(&[], Vec::as_slice)
    }

    /// The number of leaves.
    pub fn leaves_count(&self) -> usize {
        self.leaves().len()
    }

    /// The proof length.
    pub fn depth(&self) -> usize {
        self.layers.len() - 1
    }

    /// The siblings of leaf `index` bottom-up (0 where a node has none), or `None` if out of range.
    pub fn proof(&self, index: usize) -> Option<Vec<F>> {
        if index >= self.leaves_count() {
            return None;
        }
        let below_root = self.layers.len() - 1;
        let path = self
            .layers
            .iter()
            .take(below_root)
            .enumerate()
            .map(|(level, layer)| layer.get((index >> level) ^ 1).copied().unwrap_or(F::ZERO))
            .collect();
        Some(path)
    }
}

/// Checks that `path` proves `leaf` at `index` in a tree of `leaves_count` leaves with root `root`. The path
/// must be exactly as long as that tree is deep.
pub fn verify_proof(leaf: F, index: u64, leaves_count: u64, path: &[F], root: F) -> bool {
    reconstruct_root(leaf, index, leaves_count, path) == Some(root)
}

/// The root that `path` leads to from `leaf` at `index`, or `None` if the index or the path length do not fit
/// a tree of `leaves_count` leaves.
pub fn reconstruct_root(leaf: F, index: u64, leaves_count: u64, path: &[F]) -> Option<F> {
    if index >= leaves_count || path.len() != depth(leaves_count) {
        return None;
    }
    let (mut index, mut width, mut node, mut bottom) = (index, leaves_count, leaf, KEY_BOTTOM);
    for sibling in path {
        node = if index & 1 == 1 {
            compress(*sibling, node, bottom)
        } else if index == width - 1 {
            compress(node, *sibling, bottom + KEY_ODD)
        } else {
            compress(node, *sibling, bottom)
        };
        bottom = KEY_NONE;
        index >>= 1;
        width = width.div_ceil(2);
    }
    Some(node)
}
