//! The circuit on the §3 fixture of proof-vectors.md (11 slots × 512 cells, slot 3, entropy 1234567), its
//! constraint count, the tampered inputs it must refuse, and Groth16 proofs.

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Instant;

use ark_ff::{AdditiveGroup, Field};
use ark_relations::r1cs::{ConstraintSynthesizer, ConstraintSystem};
use ark_std::rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::groth16::{self, AbiProof};
use super::*;
use crate::poseidon2::{F, elements};
use crate::slots::tests::{BLOCK, CELL, fake_block, slot_seed};
use crate::slots::{SlotLayout, SlotTree, slot_block_digest};

struct Fixture {
    layout: SlotLayout,
    slot_roots: Vec<F>,
    trees: Vec<SlotTree>,
    /// blocks[slot][block]
    blocks: Vec<Vec<Vec<u8>>>,
}

fn dec(s: &str) -> F {
    F::from_str(s).unwrap()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let layout = SlotLayout::new(BLOCK as u64, CELL as u64, 11 * 16, 11).unwrap();
        let (mut slot_roots, mut trees, mut all) = (Vec::new(), Vec::new(), Vec::new());
        for slot in 0..11u64 {
            let blocks: Vec<Vec<u8>> = (0..16).map(|b| fake_block(slot_seed(slot), b)).collect();
            let digests: Vec<F> = blocks
                .iter()
                .zip(layout.slot_blocks(slot).unwrap())
                .map(|(b, i)| slot_block_digest(&layout, i, b).unwrap())
                .collect();
            let tree = SlotTree::new(&layout, &digests).unwrap();
            slot_roots.push(tree.root());
            trees.push(tree);
            all.push(blocks);
        }
        Fixture { layout, slot_roots, trees, blocks: all }
    })
}

/// The input for `slot` of the fixture with `params`.
fn input_for(params: &ProofParams, slot: u64, entropy: F) -> ProofInput {
    let f = fixture();
    let s = slot as usize;
    ProofInput::build(params, &f.layout, entropy, &f.slot_roots, slot, &f.trees[s], |b| {
        f.blocks[s].get(b as usize).cloned()
    })
    .unwrap()
}

fn entropy() -> F {
    F::from(1234567u64)
}

/// Synthesizes the circuit with `input` and returns (satisfied, constraints).
fn satisfied(params: ProofParams, input: ProofInput) -> (bool, usize) {
    let cs = ConstraintSystem::<F>::new_ref();
    SampleCircuit::prove(params, input).generate_constraints(cs.clone()).unwrap();
    (cs.is_satisfied().unwrap(), cs.num_constraints())
}

#[test]
fn fixture_input_matches_and_satisfies_the_circuit() {
    let params = ProofParams::default();
    let input = input_for(&params, 3, entropy());
    // The values of input.json (proof-vectors §3.2).
    assert_eq!(
        input.dataset_root,
        dec("16074246370508166450132968585287196391860062495017081813239200574579640171677")
    );
    assert_eq!(input.slot_root, dec("20744935707483803411869804102043283881376973626291244537230284476834672019997"));
    assert_eq!((input.n_cells, input.n_slots, input.slot_index), (512, 11, 3));
    assert_eq!(
        input.slot_proof[0],
        dec("14279309641024220656349577745390262299143357053971618723978902485113885925133")
    );
    assert_eq!(input.slot_proof[4..], [F::ZERO; 4]);
    assert_eq!(input.samples.len(), 5);
    let s0 = &input.samples[0];
    assert_eq!(s0.cell_data[0], dec("211066599696340205996365563960462032209214145564176017965177408819390441927"));
    assert_eq!(s0.cell_data[66], F::from(77407u64));
    assert_eq!(s0.merkle_path[0], dec("12330511756602656312909435206144412037562550923861053314147193494605624608532"));
    assert_eq!(s0.merkle_path[9..], [F::ZERO; 23]);
    assert_eq!(
        input.samples[4].merkle_path[0],
        dec("19153513112714782931111012244694922243101677748840856395814929006033044311081")
    );
    input.check(&params).unwrap();

    let start = Instant::now();
    let (ok, constraints) = satisfied(params, input);
    assert!(ok);
    println!("constraints, 5 samples, default params: {constraints} (synthesis {:?})", start.elapsed());
    let (_, one) = satisfied(ProofParams::with_samples(1), input_for(&ProofParams::with_samples(1), 3, entropy()));
    println!("constraints per sample: {}; with 1 sample: {one}", (constraints - one) / 4);
}

/// A tampering that both the native check and the circuit refuse.
fn refused(params: ProofParams, input: ProofInput, what: &str) {
    assert!(input.check(&params).is_err(), "native check accepts {what}");
    assert!(!satisfied(params, input).0, "circuit accepts {what}");
}

#[test]
fn tampered_inputs_are_refused() {
    let params = ProofParams::with_samples(2);
    let good = input_for(&params, 3, entropy());
    assert!(satisfied(params, good.clone()).0);

    // Wrong slot index: the slot root sits elsewhere in the dataset tree.
    refused(params, ProofInput { slot_index: 4, ..good.clone() }, "a wrong slot index");
    // Wrong entropy: other cells are sampled than the ones given.
    refused(params, ProofInput { entropy: entropy() + F::ONE, ..good.clone() }, "a wrong entropy");
    // One flipped bit in a sampled cell's bytes.
    let f = fixture();
    let cell = crate::slots::cell_index(entropy(), good.slot_root, 2, 512).unwrap();
    let (block, in_block) = f.layout.cell_position(cell).unwrap();
    let start = in_block as usize * CELL;
    let mut bytes = f.blocks[3][block as usize][start..start + CELL].to_vec();
    assert_eq!(elements(&bytes), good.samples[1].cell_data);
    bytes[100] ^= 0x08;
    let mut flipped = good.clone();
    flipped.samples[1].cell_data = elements(&bytes);
    refused(params, flipped, "a flipped bit");
    // The path of the same cell in another slot (slot 2).
    let other = input_for(&params, 2, entropy());
    let mut foreign = good.clone();
    let cells = crate::slots::block_cell_tree(&f.blocks[2][block as usize], CELL).unwrap();
    foreign.samples[1].merkle_path = f.trees[2].cell_proof(cell, &cells).unwrap();
    foreign.samples[1].merkle_path.resize(params.max_slot_depth, F::ZERO);
    refused(params, foreign, "a path from another slot");
    // The whole witness of another slot under this slot's index.
    refused(params, ProofInput { slot_index: 3, ..other }, "another slot's witness");
    // The dataset root of another dataset (slot 0 replaced).
    let mut roots = f.slot_roots.clone();
    roots[0] = F::from(42u64);
    let other_root = crate::poseidon2::merkle_root(&roots).unwrap();
    refused(params, ProofInput { dataset_root: other_root, ..good.clone() }, "another dataset's root");
    // Geometry lies: a cell count that is not the slot's.
    refused(params, ProofInput { n_cells: 1024, ..good.clone() }, "a wrong cell count");
    // (nSlots may be private: for slot 3, 11 and 16 slots give the same keys along its path, as in the original.)
    assert!(satisfied(params, ProofInput { n_slots: 16, ..good }).0);
}

#[test]
fn damaged_block_is_found_before_proving() {
    let params = ProofParams::with_samples(5);
    let f = fixture();
    let input = input_for(&params, 3, entropy());
    let cell = crate::slots::cell_index(entropy(), input.slot_root, 1, 512).unwrap();
    let (block, _) = f.layout.cell_position(cell).unwrap();
    let err = ProofInput::build(&params, &f.layout, entropy(), &f.slot_roots, 3, &f.trees[3], |b| {
        let mut bytes = f.blocks[3].get(b as usize).cloned()?;
        if b == block {
            bytes[7] ^= 1;
        }
        Some(bytes)
    })
    .unwrap_err();
    assert!(matches!(err, ProofError::DamagedBlock { block: b } if b == block), "{err}");
}

#[test]
fn groth16_proof_verifies_and_tampering_does_not() {
    let params = ProofParams::with_samples(1);
    let start = Instant::now();
    let (pk, vk) = groth16::setup(params, [7; 32]).unwrap();
    println!("setup, 1 sample: {:?}", start.elapsed());
    assert_eq!(vk.gamma_abc_g1.len(), 4);

    let good = input_for(&params, 3, entropy());
    let public = good.public_inputs();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let start = Instant::now();
    let proof = groth16::prove(&pk, params, good.clone(), &mut rng).unwrap();
    println!("prove, 1 sample: {:?}", start.elapsed());
    assert!(groth16::verify(&vk, &public, &proof).unwrap());

    // The same proof under other public inputs.
    let [e, root, slot] = public;
    assert!(!groth16::verify(&vk, &[e, root, slot + F::ONE], &proof).unwrap(), "wrong slot index");
    assert!(!groth16::verify(&vk, &[e + F::ONE, root, slot], &proof).unwrap(), "wrong entropy");
    assert!(!groth16::verify(&vk, &[e, root + F::ONE, slot], &proof).unwrap(), "another dataset root");

    // Proofs from tampered witnesses, verified against the true public inputs: the low bit of one cell element
    // flipped; the sample's path taken from slot 2.
    let mut flipped = good.clone();
    flipped.samples[0].cell_data[5] += F::ONE;
    let bad = groth16::prove(&pk, params, flipped, &mut rng).unwrap();
    assert!(!groth16::verify(&vk, &public, &bad).unwrap(), "flipped cell");
    let mut foreign = good.clone();
    foreign.samples[0].merkle_path = input_for(&params, 2, entropy()).samples[0].merkle_path.clone();
    let bad = groth16::prove(&pk, params, foreign, &mut rng).unwrap();
    assert!(!groth16::verify(&vk, &public, &bad).unwrap(), "path of another slot");

    // ABI form: big-endian coordinates, G2 real = c0, imag = c1.
    let abi = AbiProof::from(&proof);
    let be = |f: &ark_bn254::Fq| {
        use ark_ff::{BigInteger, PrimeField};
        f.into_bigint().to_bytes_be()
    };
    assert_eq!(abi.a.x.to_vec(), be(&proof.a.x));
    assert_eq!(abi.b.x.real.to_vec(), be(&proof.b.x.c0));
    assert_eq!(abi.b.x.imag.to_vec(), be(&proof.b.x.c1));
    assert_eq!(abi.c.y.to_vec(), be(&proof.c.y));
    assert_eq!(groth16::abi_public(&public)[2][31], 3);

    // Keys and proofs round-trip through bytes.
    let vk_bytes = groth16::to_bytes(&vk).unwrap();
    assert_eq!(groth16::from_bytes::<groth16::VerifyingKey>(&vk_bytes).unwrap(), vk);
    let proof_bytes = groth16::to_bytes(&proof).unwrap();
    assert_eq!(proof_bytes.len(), 128);
    assert_eq!(groth16::from_bytes::<groth16::Proof>(&proof_bytes).unwrap(), proof);

    let file = groth16::to_key_file_bytes(&pk).unwrap();
    assert!(groth16::from_key_file_bytes::<groth16::ProvingKey>(&file).unwrap() == pk);

    // The same seed gives the same keys.
    let (_, vk2) = groth16::setup(params, [7; 32]).unwrap();
    assert_eq!(vk2, vk);
}

/// A tiny geometry (64-byte blocks of two 32-byte cells, 3 slots of 3 data blocks + 1 pad block, so 8 cells =
/// 2^max_slot_depth): the native check and the circuit agree on valid inputs and on many tamperings.
#[test]
fn native_check_agrees_with_the_circuit() {
    let params = ProofParams { samples: 3, max_slot_depth: 3, max_dataset_depth: 2, block_depth: 1, cell_elements: 2 };
    let layout = SlotLayout::new(64, 32, 9, 3).unwrap();
    assert_eq!((layout.cells_per_slot(), layout.pad_blocks_per_slot()), (8, 1));
    let block = |slot: u64, b: u64| -> Vec<u8> {
        if b >= 3 { vec![0; 64] } else { (0..64u64).map(|i| (i * 31 + b * 7 + slot * 101) as u8).collect() }
    };
    let trees: Vec<SlotTree> = (0..3u64)
        .map(|slot| {
            let digests: Vec<F> = layout
                .slot_blocks(slot)
                .unwrap()
                .zip(0..3)
                .map(|(i, b)| slot_block_digest(&layout, i, &block(slot, b)).unwrap())
                .collect();
            SlotTree::new(&layout, &digests).unwrap()
        })
        .collect();
    let roots: Vec<F> = trees.iter().map(SlotTree::root).collect();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut verdicts = [0usize; 2];
    for e in 0..6u64 {
        for slot in 0..3u64 {
            let input = ProofInput::build(&params, &layout, F::from(e), &roots, slot, &trees[slot as usize], |b| {
                Some(block(slot, b))
            })
            .unwrap();
            assert!(satisfied(params, input.clone()).0, "entropy {e}, slot {slot}");
            // Tamper one value (or none) and compare the verdicts.
            use ark_std::rand::Rng;
            let mut bad = input.clone();
            let s = rng.gen_range(0..3usize);
            match rng.gen_range(0..7) {
                0 => bad.slot_index = rng.gen_range(0..4),
                1 => bad.n_cells = 1 << rng.gen_range(0..4),
                2 => bad.n_slots = rng.gen_range(1..5),
                3 => bad.slot_proof[rng.gen_range(0..2)] += F::ONE,
                4 => bad.samples[s].merkle_path[rng.gen_range(0..3)] = F::ZERO,
                5 => bad.samples[s].cell_data[rng.gen_range(0..2)] += F::ONE,
                _ => bad.entropy += F::from(rng.gen_range(0..2u64)),
            }
            let native = bad.check(&params).is_ok();
            assert_eq!(native, satisfied(params, bad.clone()).0, "entropy {e}, slot {slot}: {bad:?}");
            verdicts[usize::from(native)] += 1;
        }
    }
    println!("tampered inputs refused / still valid: {verdicts:?}");
    assert!(verdicts[0] >= 6 && verdicts[1] >= 2, "{verdicts:?}");
}

/// Figures for the deployed parameter set (5 samples): `cargo test --features proofs proofs::tests::figures
/// -- --ignored --nocapture`.
#[test]
#[ignore = "timing figures, about a minute"]
fn figures_five_samples() {
    let params = ProofParams::default();
    let start = Instant::now();
    let (pk, vk) = groth16::setup(params, [1; 32]).unwrap();
    println!("setup, 5 samples: {:?}", start.elapsed());
    let pk_bytes = groth16::to_bytes(&pk).unwrap();
    println!("proving key: {} bytes, verifying key: {} bytes", pk_bytes.len(), groth16::to_bytes(&vk).unwrap().len());
    let start = Instant::now();
    let pk2: groth16::ProvingKey = groth16::from_bytes(&pk_bytes).unwrap();
    println!("proving key load (compressed, checked): {:?}", start.elapsed());
    let file = groth16::to_key_file_bytes(&pk).unwrap();
    let start = Instant::now();
    let pk3: groth16::ProvingKey = groth16::from_key_file_bytes(&file).unwrap();
    println!("proving key load (uncompressed, unchecked, {} bytes): {:?}", file.len(), start.elapsed());
    assert!(pk3 == pk2);
    fixture();
    let start = Instant::now();
    let input = input_for(&params, 3, entropy());
    println!("witness (build + native check): {:?}", start.elapsed());
    let public = input.public_inputs();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let start = Instant::now();
    let proof = groth16::prove(&pk2, params, input, &mut rng).unwrap();
    println!("prove, 5 samples: {:?}", start.elapsed());
    let start = Instant::now();
    assert!(groth16::verify(&vk, &public, &proof).unwrap());
    println!("verify: {:?}", start.elapsed());
}
