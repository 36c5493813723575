//! Storage-proof figures for one sample count: constraints, setup time, key sizes, witness time, proving time,
//! verification time and the process's peak RSS. Run by `tests/bench/proofs.sh` (one process per count, so
//! each peak RSS is its own):
//!
//! `cargo run --release -p codex-protocol --features proofs --example proof_bench -- SAMPLES`
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark fails loudly")]

use ark_relations::r1cs::{ConstraintSynthesizer, ConstraintSystem};
use codex_protocol::poseidon2::F;
use codex_protocol::proofs::groth16;
use codex_protocol::proofs::{ProofInput, ProofParams, SampleCircuit};
use codex_protocol::slots::{SlotLayout, SlotTree, entropy_from_challenge, slot_block_digest, verify_root};
use std::time::Instant;

fn main() {
    let samples: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let params = ProofParams::with_samples(samples);
    // A dataset of 4 slots of 8 random 64 KiB blocks (256 cells a slot).
    let (block_size, slots, per_slot) = (65536u64, 4u64, 8u64);
    let layout = SlotLayout::new(block_size, 2048, slots * per_slot, slots).expect("layout");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let blocks: Vec<Vec<u8>> = (0..slots * per_slot)
        .map(|_| {
            (0..block_size)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect()
        })
        .collect();
    let digests: Vec<F> =
        blocks.iter().enumerate().map(|(i, b)| slot_block_digest(&layout, i as u64, b).expect("digest")).collect();
    let trees: Vec<SlotTree> = (0..slots)
        .map(|s| {
            let r = layout.slot_blocks(s).expect("slot");
            SlotTree::new(&layout, &digests[r.start as usize..r.end as usize]).expect("tree")
        })
        .collect();
    let roots: Vec<F> = trees.iter().map(SlotTree::root).collect();
    let _ = verify_root(&roots);
    let slot = 2u64;
    let entropy = entropy_from_challenge(&[42; 32]);
    let witness = || {
        ProofInput::build(&params, &layout, entropy, &roots, slot, &trees[slot as usize], |b| {
            Some(blocks[layout.dataset_index(slot, b)? as usize].clone())
        })
        .expect("witness")
    };

    let cs = ConstraintSystem::<F>::new_ref();
    SampleCircuit::prove(params, witness()).generate_constraints(cs.clone()).expect("synthesis");
    assert!(cs.is_satisfied().expect("satisfied"), "the witness satisfies the circuit");
    let constraints = cs.num_constraints();
    drop(cs);

    let t = Instant::now();
    let (pk, vk) = groth16::setup(params, [7; 32]).expect("setup");
    let setup = t.elapsed().as_secs_f64();
    let pk_file = groth16::to_key_file_bytes(&pk).expect("pk bytes");
    let pk_compressed = groth16::to_bytes(&pk).expect("pk bytes").len();
    let t = Instant::now();
    let loaded: groth16::ProvingKey = groth16::from_key_file_bytes(&pk_file).expect("load");
    let load = t.elapsed().as_secs_f64();
    drop(pk);

    let t = Instant::now();
    let input = witness();
    input.check(&params).expect("check");
    let witness_time = t.elapsed().as_secs_f64();
    let public = input.public_inputs();
    let t = Instant::now();
    let proof = groth16::prove_seeded(&loaded, params, input, [9; 32]).expect("prove");
    let prove = t.elapsed().as_secs_f64();
    let t = Instant::now();
    assert!(groth16::verify(&vk, &public, &proof).expect("verify"));
    let verify = t.elapsed().as_secs_f64() * 1000.0;
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0);
    println!(
        "samples {samples:>3}: constraints {constraints:>9}  setup {setup:>6.1} s  proving key {:>6.1} MB file ({:.1} MB compressed), load {load:.2} s  witness {:.0} ms  prove {prove:>6.2} s  verify {verify:.1} ms  peak RSS {} MiB",
        pk_file.len() as f64 / 1e6,
        pk_compressed as f64 / 1e6,
        witness_time * 1000.0,
        hwm / 1024
    );
}
