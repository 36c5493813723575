//! A Merkle inclusion proof as a peer sends it with a leaf delivery. Decoding never panics and round-trips;
//! checked against a real tree of up to 64 leaves, a proof is accepted exactly when it is the tree's own proof
//! of that leaf, and the nodes it reveals are the tree's nodes.
#![no_main]

use codex_protocol::cid::sha256;
use codex_protocol::{CodexProof, CodexTree};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Trees of 1..=64 leaves whose leaf `i` is SHA-256 of `i` as 8 little-endian bytes (the seed corpus uses them).
const MAX_LEAVES: u64 = 64;

fn trees() -> &'static [CodexTree] {
    static TREES: OnceLock<Vec<CodexTree>> = OnceLock::new();
    TREES.get_or_init(|| {
        (1..=MAX_LEAVES)
            .map(|n| CodexTree::new((0..n).map(|i| sha256(&i.to_le_bytes())).collect()).expect("n > 0 leaves"))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = CodexProof::decode(data) else { return };
    assert_eq!(CodexProof::decode(&proof.encode()).as_ref(), Ok(&proof));
    // Any proof may be checked against any leaf and root, and its revealed nodes asked for, without panicking.
    let stranger = sha256(data);
    assert!(!proof.verify(&stranger, &stranger));
    let _ = proof.revealed_nodes(&stranger);

    if proof.leaves == 0 || proof.leaves > MAX_LEAVES || proof.index >= proof.leaves {
        return;
    }
    let tree = &trees()[(proof.leaves - 1) as usize];
    let leaf = tree.leaves()[proof.index as usize];
    let accepted = proof.verify(&leaf, &tree.root());
    let own = tree.proof(proof.index).expect("index < leaves");
    assert_eq!(accepted, proof == own, "verify disagrees with the tree's own proof");
    if accepted {
        for (layer, position, digest) in proof.revealed_nodes(&leaf) {
            assert_eq!(tree.layers()[layer][position as usize], digest);
        }
    }
});
