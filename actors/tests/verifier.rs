//! The Solidity Groth16 verifier (`contracts/src/Groth16Verifier.sol`) on anvil, against proofs made in Rust: a
//! valid proof verifies on chain as in Rust, and each tampering of issue 11 fails both ways (wrong slot index,
//! wrong entropy, a flipped bit in a sampled cell, a path from another slot, another dataset's root). Prints the
//! gas of an on-chain verification.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use alloy::primitives::U256;
use codex_actors::chain::anvil::LocalChain;
use codex_actors::chain::bindings::{Groth16Verifier, pub_signals};
use codex_protocol::poseidon2::{F, elements, merkle_root};
use codex_protocol::proofs::groth16::{self, AbiProof, AbiVerifyingKey, Proof, VerifyingKey};
use codex_protocol::proofs::{ProofInput, ProofParams};
use codex_protocol::slots::{SlotLayout, SlotTree, cell_index, slot_block_digest};

const BLOCK: u64 = 65536;
const CELL: u64 = 2048;
const SLOTS: u64 = 3;
const BLOCKS_PER_SLOT: u64 = 2;

/// Three slots of two pseudo-random blocks each, their trees and roots.
struct Dataset {
    layout: SlotLayout,
    slot_roots: Vec<F>,
    trees: Vec<SlotTree>,
    /// blocks[slot][block in slot]
    blocks: Vec<Vec<Vec<u8>>>,
}

fn block_bytes(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..BLOCK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn dataset() -> Dataset {
    let layout = SlotLayout::new(BLOCK, CELL, SLOTS * BLOCKS_PER_SLOT, SLOTS).unwrap();
    let (mut slot_roots, mut trees, mut blocks) = (Vec::new(), Vec::new(), Vec::new());
    for slot in 0..SLOTS {
        let slot_blocks: Vec<Vec<u8>> = (0..BLOCKS_PER_SLOT).map(|b| block_bytes(slot * 100 + b + 1)).collect();
        let digests: Vec<F> = slot_blocks
            .iter()
            .zip(layout.slot_blocks(slot).unwrap())
            .map(|(bytes, index)| slot_block_digest(&layout, index, bytes).unwrap())
            .collect();
        let tree = SlotTree::new(&layout, &digests).unwrap();
        slot_roots.push(tree.root());
        trees.push(tree);
        blocks.push(slot_blocks);
    }
    Dataset { layout, slot_roots, trees, blocks }
}

fn input(params: &ProofParams, d: &Dataset, slot: u64, entropy: F) -> ProofInput {
    let s = slot as usize;
    ProofInput::build(params, &d.layout, entropy, &d.slot_roots, slot, &d.trees[s], |b| {
        d.blocks[s].get(b as usize).cloned()
    })
    .unwrap()
}

/// `proof` under `public`, in Rust and on chain; both must agree.
async fn verify_both(
    verifier: &Groth16Verifier::Groth16VerifierInstance<alloy::providers::DynProvider>,
    vk: &VerifyingKey,
    public: &[F; 3],
    proof: &Proof,
) -> bool {
    let native = groth16::verify(vk, public, proof).unwrap();
    let abi = Groth16Verifier::Groth16Proof::from(&AbiProof::from(proof));
    let on_chain = verifier.verify(abi, pub_signals(&groth16::abi_public(public))).call().await.unwrap();
    assert_eq!(native, on_chain, "Rust and the contract disagree on {public:?}");
    on_chain
}

#[actix_rt::test]
async fn solidity_verifier_agrees_with_rust() {
    let params = ProofParams::with_samples(2);
    let d = dataset();
    let (pk, vk) = groth16::setup(params, [3; 32]).unwrap();
    let entropy = F::from(987_654_321u64);
    let good = input(&params, &d, 1, entropy);
    let public = good.public_inputs();
    let proof = groth16::prove_seeded(&pk, params, good.clone(), [5; 32]).unwrap();

    let chain = LocalChain::start().await.expect("anvil");
    let provider = chain.provider(0);
    let key = Groth16Verifier::VerifyingKey::from(&AbiVerifyingKey::from(&vk));
    let verifier = Groth16Verifier::deploy(provider.clone(), key.clone()).await.expect("deploy verifier");

    assert!(verify_both(&verifier, &vk, &public, &proof).await, "a valid proof");

    // The same proof under other public inputs.
    let [e, root, slot] = public;
    assert!(!verify_both(&verifier, &vk, &[e, root, slot + F::from(1u64)], &proof).await, "wrong slot index");
    assert!(!verify_both(&verifier, &vk, &[e + F::from(1u64), root, slot], &proof).await, "wrong entropy");
    let mut other_roots = d.slot_roots.clone();
    other_roots[0] = F::from(42u64);
    let other_root = merkle_root(&other_roots).unwrap();
    assert!(!verify_both(&verifier, &vk, &[e, other_root, slot], &proof).await, "another dataset's root");

    // Proofs of tampered witnesses under the true public inputs.
    let cell = cell_index(entropy, good.slot_root, 1, d.layout.cells_per_slot()).unwrap();
    let (block, in_block) = d.layout.cell_position(cell).unwrap();
    let start = (in_block * CELL) as usize;
    let mut bytes = d.blocks[1][block as usize][start..start + CELL as usize].to_vec();
    assert_eq!(elements(&bytes), good.samples[0].cell_data);
    bytes[1000] ^= 0x10;
    let mut flipped = good.clone();
    flipped.samples[0].cell_data = elements(&bytes);
    assert!(flipped.check(&params).is_err(), "the native check sees the flipped bit");
    let bad = groth16::prove_seeded(&pk, params, flipped, [6; 32]).unwrap();
    assert!(!verify_both(&verifier, &vk, &public, &bad).await, "a flipped bit in a sampled cell");
    let mut foreign = good.clone();
    foreign.samples[0].merkle_path = input(&params, &d, 2, entropy).samples[0].merkle_path.clone();
    assert!(foreign.check(&params).is_err(), "the native check sees the foreign path");
    let bad = groth16::prove_seeded(&pk, params, foreign, [7; 32]).unwrap();
    assert!(!verify_both(&verifier, &vk, &public, &bad).await, "a path from another slot");

    // Malformed calls answer false, they do not revert: a signal count other than 3, a signal not below the
    // scalar field order, a coordinate not below the base field order, a point off the curve.
    let abi = Groth16Verifier::Groth16Proof::from(&AbiProof::from(&proof));
    let signals = pub_signals(&groth16::abi_public(&public));
    assert!(!verifier.verify(abi.clone(), signals[..2].to_vec()).call().await.unwrap());
    let r = U256::from_str_radix("21888242871839275222246405745257275088548364400416034343698204186575808495617", 10)
        .unwrap();
    assert!(!verifier.verify(abi.clone(), vec![signals[0], signals[1], signals[2] + r]).call().await.unwrap());
    let mut off_field = abi.clone();
    off_field.a.y = U256::MAX;
    assert!(!verifier.verify(off_field, signals.clone()).call().await.unwrap());
    let mut off_curve = abi.clone();
    off_curve.c.x += U256::from(1u64);
    assert!(!verifier.verify(off_curve, signals.clone()).call().await.unwrap());
    let mut bad_b = abi.clone();
    bad_b.b.x.real += U256::from(1u64);
    assert!(!verifier.verify(bad_b, signals.clone()).call().await.unwrap());

    // Gas of one verification, as a transaction pays it (21,000 base and calldata included). Not an estimate:
    // `verify` answers false instead of reverting when a precompile runs out of gas, so eth_estimateGas finds
    // the gas of a *failed* verification. A transaction with ample gas shows what a valid one uses.
    let receipt = verifier.verify(abi, signals).gas(1_000_000).send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    let gas = receipt.gas_used;
    println!("Groth16Verifier.verify gas: {gas} (a transaction: 21000 base and calldata included)");
    assert!(gas > 181_000, "a 4-pair pairing alone costs 181,000 gas: {gas}");

    // A key for another number of public inputs is refused at deployment.
    let mut short = key;
    short.ic.pop();
    assert!(Groth16Verifier::deploy(provider, short).await.is_err(), "a key with 3 IC points");
}
