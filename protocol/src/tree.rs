//! The CodexTree: the SHA-256 Merkle tree over a dataset's block digests, and its inclusion proofs.
//!
//! Rules (reference codex-facts §4.2): nodes are compressed as `SHA-256(left ‖ right ‖ key)` with key 0x01 on
//! the leaf layer and 0x00 above; a lone last node of an odd layer is compressed with the all-zero hash and
//! the key plus 2 (0x03 on the leaf layer, 0x02 above). A single leaf is still compressed once, so the root
//! is never a leaf. Proofs carry the sibling path bottom-up and the leaf count, which verification needs to
//! recognise the odd-last case.

use crate::cid::{Cid, ROOT_CODEC, SHA2_256, Sha256Digest, cid_from_sha256};
use crate::protobuf::{Reader, Value, WireError, Writer};
use sha2::Digest as _;
use thiserror::Error;

/// A tree node: a 32-byte SHA-256 digest.
pub type Digest = Sha256Digest;

/// The all-zero hash used as the sibling of a lone node.
pub const ZERO_DIGEST: Digest = [0; 32];

const KEY_NONE: u8 = 0x00;
const KEY_BOTTOM: u8 = 0x01;
const KEY_ODD: u8 = 0x02;

/// Errors building a tree or asking it for a proof.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TreeError {
    #[error("a tree needs at least one leaf")]
    NoLeaves,
    #[error("leaf index {index} is out of range for a tree of {leaves} leaves")]
    IndexOutOfRange { index: u64, leaves: u64 },
}

/// Errors decoding or checking a proof.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    #[error("malformed proof: {0}")]
    Wire(#[from] WireError),
    #[error("proof uses hash code {code:#x}; only SHA-256 (0x12) is supported")]
    UnsupportedHash { code: u64 },
    #[error("proof node {position} is {len} bytes, expected 32")]
    BadNodeLength { position: usize, len: usize },
    #[error("proof has {nodes} path nodes, expected at most 64")]
    TooLong { nodes: usize },
}

/// `SHA-256(left ‖ right ‖ key)`.
pub fn compress(left: &Digest, right: &Digest, key: u8) -> Digest {
    let mut hasher = sha2::Sha256::new();
    hasher.update(left);
    hasher.update(right);
    hasher.update([key]);
    hasher.finalize().into()
}

/// The number of nodes in each layer of a tree of `leaves` leaves, leaf layer first, root layer last.
pub fn layer_sizes(leaves: u64) -> Vec<u64> {
    let mut sizes = vec![leaves];
    let mut len = leaves;
    while len > 1 || sizes.len() == 1 {
        len = len.div_ceil(2);
        sizes.push(len);
        if leaves == 0 {
            break;
        }
    }
    sizes
}

/// The nodes above `nodes` (`bottom` when they are leaves): pairs compressed with the layer's key, a lone last
/// node with the zero hash and the odd key. `nodes` may be a slice of a layer that starts at an even position:
/// computing a layer slice by slice (even-sized slices, the last one ending the layer) gives the same nodes,
/// which lets a store rebuild a tree kept on disk with bounded memory.
pub fn parent_layer(nodes: &[Digest], bottom: bool) -> Vec<Digest> {
    let key = if bottom { KEY_BOTTOM } else { KEY_NONE };
    nodes
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => compress(left, right, key),
            [lone] => compress(lone, &ZERO_DIGEST, key + KEY_ODD),
            _ => unreachable!("chunks(2) yields one or two nodes"),
        })
        .collect()
}

/// A complete CodexTree, every layer kept in memory (32 bytes per node, about 2 nodes per leaf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodexTree {
    layers: Vec<Vec<Digest>>,
}

impl CodexTree {
    /// Builds the tree over `leaves` (the SHA-256 digests of the blocks, in order).
    pub fn new(leaves: Vec<Digest>) -> Result<Self, TreeError> {
        if leaves.is_empty() {
            return Err(TreeError::NoLeaves);
        }
        let mut layers = Vec::new();
        let mut below = leaves;
        loop {
            let done = below.len() == 1 && !layers.is_empty();
            let next = (!done).then(|| parent_layer(&below, layers.is_empty()));
            layers.push(below);
            match next {
                Some(next) => below = next,
                None => break,
            }
        }
        Ok(Self { layers })
    }

    /// The root digest.
    #[allow(clippy::expect_used, reason = "new() refuses empty trees and always ends with a one-node layer")]
    pub fn root(&self) -> Digest {
        self.layers.last().and_then(|layer| layer.first()).copied().expect("invariant: a tree has a root")
    }

    /// The root as a `codex-root` CID (the manifest's `treeCid`).
    pub fn root_cid(&self) -> Cid {
        cid_from_sha256(ROOT_CODEC, &self.root())
    }

    pub fn leaves(&self) -> &[Digest] {
        self.layers.first().map_or(&[], Vec::as_slice)
    }

    pub fn leaf_count(&self) -> u64 {
        self.leaves().len() as u64
    }

    /// The leaf digests, dropping the rest of the tree.
    pub fn into_leaves(mut self) -> Vec<Digest> {
        self.layers.swap_remove(0)
    }

    /// All layers, leaf layer first: the form stored beside a dataset so proofs can be read back.
    pub fn layers(&self) -> &[Vec<Digest>] {
        &self.layers
    }

    /// The inclusion proof of leaf `index`.
    pub fn proof(&self, index: u64) -> Result<CodexProof, TreeError> {
        let layers = &self.layers;
        proof_from_nodes(self.leaf_count(), index, |layer, position| {
            Ok::<_, TreeError>(layers.get(layer).and_then(|nodes| nodes.get(position as usize)).copied())
        })
    }
}

/// Builds the proof of leaf `index` in a tree of `leaves` leaves from a node lookup
/// `node(layer, position) -> Option<Digest>` (`None` past the end of a layer). Lets a store read only the
/// path nodes from disk instead of loading the whole tree.
pub fn proof_from_nodes<E: From<TreeError>>(
    leaves: u64,
    index: u64,
    mut node: impl FnMut(usize, u64) -> Result<Option<Digest>, E>,
) -> Result<CodexProof, E> {
    if leaves == 0 {
        return Err(TreeError::NoLeaves.into());
    }
    if index >= leaves {
        return Err(TreeError::IndexOutOfRange { index, leaves }.into());
    }
    let depth = layer_sizes(leaves).len() - 1;
    let mut path = Vec::with_capacity(depth);
    let mut position = index;
    for layer in 0..depth {
        let sibling = node(layer, position ^ 1)?.unwrap_or(ZERO_DIGEST);
        path.push(sibling);
        position >>= 1;
    }
    Ok(CodexProof { index, leaves, path })
}

/// An inclusion proof: the sibling path from a leaf to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodexProof {
    pub index: u64,
    pub leaves: u64,
    pub path: Vec<Digest>,
}

impl CodexProof {
    /// True when `leaf` at `self.index` hashes up to `root` along this path.
    pub fn verify(&self, leaf: &Digest, root: &Digest) -> bool {
        if self.index >= self.leaves || self.path.len() != layer_sizes(self.leaves).len() - 1 {
            return false;
        }
        self.walk(leaf, |_, _, _, _| {}) == *root
    }

    /// Hashes `leaf` up the path and returns the top; `visit(layer, position, node, layer_len)` sees the path node
    /// on every layer below the top.
    fn walk(&self, leaf: &Digest, mut visit: impl FnMut(usize, u64, Digest, u64)) -> Digest {
        let mut hash = *leaf;
        let mut position = self.index;
        let mut layer_len = self.leaves;
        for (level, sibling) in self.path.iter().enumerate() {
            visit(level, position, hash, layer_len);
            let key = if level == 0 { KEY_BOTTOM } else { KEY_NONE };
            hash = if position & 1 == 1 {
                compress(sibling, &hash, key)
            } else if position + 1 == layer_len && layer_len % 2 == 1 {
                compress(&hash, sibling, key + KEY_ODD)
            } else {
                compress(&hash, sibling, key)
            };
            position >>= 1;
            layer_len = layer_len.div_ceil(2);
        }
        hash
    }

    /// The tree nodes this proof reveals for `leaf`: on every layer below the root, the node on the path and its
    /// sibling, as `(layer, position, digest)`; siblings past the end of their layer are left out. Only
    /// meaningful for a proof that [`CodexProof::verify`] accepted: a store that writes these nodes for every
    /// verified leaf can rebuild the proof of each of those leaves with [`proof_from_nodes`].
    pub fn revealed_nodes(&self, leaf: &Digest) -> Vec<(usize, u64, Digest)> {
        let mut nodes = Vec::with_capacity(self.path.len() * 2);
        self.walk(leaf, |level, position, hash, layer_len| {
            nodes.push((level, position, hash));
            if (position ^ 1) < layer_len
                && let Some(sibling) = self.path.get(level)
            {
                nodes.push((level, position ^ 1, *sibling));
            }
        });
        nodes
    }

    /// Protobuf encoding as the original writes it: 1 mcodec, 2 index, 3 nleaves, 4 repeated `{1: node}`.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        writer.varint(1, SHA2_256).varint(2, self.index).varint(3, self.leaves);
        for node in &self.path {
            let mut nested = Writer::new();
            nested.bytes(1, node);
            writer.bytes(4, &nested.finish());
        }
        writer.finish()
    }

    /// Decodes a proof written by [`CodexProof::encode`] or the original node. Never panics on bad bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        let mut reader = Reader::new(bytes);
        let (mut index, mut leaves, mut path) = (0, 0, Vec::new());
        while let Some((field, value)) = reader.next_field()? {
            match (field, value) {
                (1, Value::Varint(code)) if code != SHA2_256 => return Err(ProofError::UnsupportedHash { code }),
                (2, Value::Varint(v)) => index = v,
                (3, Value::Varint(v)) => leaves = v,
                (4, Value::Bytes(nested)) => {
                    if path.len() >= 64 {
                        return Err(ProofError::TooLong { nodes: path.len() + 1 });
                    }
                    let mut inner = Reader::new(nested);
                    let mut node = None;
                    while let Some((field, value)) = inner.next_field()? {
                        if let (1, Value::Bytes(b)) = (field, value) {
                            node = Some(b);
                        }
                    }
                    let bytes = node.unwrap_or_default();
                    let digest: Digest = bytes
                        .try_into()
                        .map_err(|_| ProofError::BadNodeLength { position: path.len(), len: bytes.len() })?;
                    path.push(digest);
                }
                _ => {}
            }
        }
        Ok(Self { index, leaves, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{format_cid, sha256};
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n).map(|i| sha256(&(i as u64).to_le_bytes())).collect()
    }

    #[test]
    fn single_leaf_vector() {
        let mut block = vec![0u8; 65536];
        block[..18].copy_from_slice(b"some file contents");
        let tree = CodexTree::new(vec![sha256(&block)]).expect("one leaf");
        assert_eq!(format_cid(&tree.root_cid()), "zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL");
        assert_eq!(tree.root(), compress(&sha256(&block), &ZERO_DIGEST, 0x03));
    }

    #[test]
    fn layer_rules() {
        assert_eq!(layer_sizes(1), vec![1, 1]);
        assert_eq!(layer_sizes(2), vec![2, 1]);
        assert_eq!(layer_sizes(5), vec![5, 3, 2, 1]);
        let l = leaves(3);
        let tree = CodexTree::new(l.clone()).expect("tree");
        let left = compress(&l[0], &l[1], 0x01);
        let right = compress(&l[2], &ZERO_DIGEST, 0x03);
        assert_eq!(tree.root(), compress(&left, &right, 0x00));
        assert_eq!(CodexTree::new(vec![]), Err(TreeError::NoLeaves));
        assert_eq!(tree.proof(3), Err(TreeError::IndexOutOfRange { index: 3, leaves: 3 }));
    }

    #[test]
    fn proof_of_odd_internal_node() {
        // 5 leaves: layer 1 has 3 nodes, its last node is lone and compressed with key 0x02.
        let l = leaves(5);
        let tree = CodexTree::new(l.clone()).expect("tree");
        let proof = tree.proof(4).expect("proof");
        assert_eq!(proof.path[0], ZERO_DIGEST);
        assert!(proof.verify(&l[4], &tree.root()));
    }

    /// Found by the merkle_proof fuzz target: a decoded proof of zero leaves made `revealed_nodes` subtract one
    /// from a zero layer length (a panic with overflow checks on).
    #[test]
    fn fuzz_regression_revealed_nodes_of_a_zero_leaf_proof() {
        let bytes: Vec<u8> = (0..FUZZ_ZERO_LEAVES.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&FUZZ_ZERO_LEAVES[i..i + 2], 16).expect("hex"))
            .collect();
        let proof = CodexProof::decode(&bytes).expect("decodes");
        assert_eq!(proof.leaves, 0);
        let leaf = sha256(&bytes);
        assert!(!proof.verify(&leaf, &leaf));
        // No layer has a node past position 0 to pair with: one revealed node per path entry.
        assert_eq!(proof.revealed_nodes(&leaf).len(), proof.path.len());
    }

    const FUZZ_ZERO_LEAVES: &str = concat!(
        "08122a02180322220a200000000000000000000000000000b0ed4e7dadcafb4688f9000000000000000022220a2014c2",
        "b1bebf3ec238b209e524373124f113c8371ccbb0edadca7d08121001180222220a20af5570f5a1810b7af78caf4bc70a",
        "660f0df51e42baf91d4de5b2328d4ee0fb4688e8f93dfc03",
    );

    proptest! {
        #[test]
        fn proofs_verify_and_round_trip(n in 1usize..80, pick in any::<proptest::sample::Index>()) {
            let l = leaves(n);
            let tree = CodexTree::new(l.clone()).expect("tree");
            let index = pick.index(n) as u64;
            let proof = tree.proof(index).expect("proof");
            prop_assert!(proof.verify(&l[index as usize], &tree.root()));
            prop_assert_eq!(CodexProof::decode(&proof.encode()), Ok(proof.clone()));
            // The same proof does not verify another leaf.
            let other = sha256(b"not a leaf");
            prop_assert!(!proof.verify(&other, &tree.root()));
        }

        #[test]
        fn revealed_nodes_rebuild_the_proof(n in 1usize..80, pick in any::<proptest::sample::Index>()) {
            let tree = CodexTree::new(leaves(n)).expect("tree");
            let index = pick.index(n) as u64;
            let proof = tree.proof(index).expect("proof");
            let revealed = proof.revealed_nodes(&tree.leaves()[index as usize]);
            for (layer, position, digest) in &revealed {
                prop_assert_eq!(tree.layers()[*layer][*position as usize], *digest);
            }
            let rebuilt = proof_from_nodes::<TreeError>(n as u64, index, |layer, position| {
                Ok(revealed.iter().find(|(l, p, _)| *l == layer && *p == position).map(|(_, _, d)| *d))
            }).expect("rebuilt proof");
            prop_assert_eq!(rebuilt, proof);
        }

        #[test]
        fn tampered_proofs_fail(
            n in 1usize..80,
            pick in any::<proptest::sample::Index>(),
            node_pick in any::<proptest::sample::Index>(),
            byte in 0usize..32,
            flip in 1u8..=255,
            tamper_index: bool,
        ) {
            let l = leaves(n);
            let tree = CodexTree::new(l.clone()).expect("tree");
            let index = pick.index(n) as u64;
            let mut proof = tree.proof(index).expect("proof");
            if tamper_index {
                // Any other index, in range or not (n + 1 choices, minus the true one).
                proof.index = (index + u64::from(flip) % n as u64 + 1) % (n as u64 + 1);
                prop_assume!(proof.index != index);
            } else {
                let node = node_pick.index(proof.path.len());
                proof.path[node][byte] ^= flip;
            }
            prop_assert!(!proof.verify(&l[index as usize], &tree.root()));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = CodexProof::decode(&bytes);
        }
    }
}
