//! Slot vectors of reference proof-vectors.md. Matched, all exactly:
//!
//! - §3 the circuit fixture (`tests/circuits/fixtures/input.json`), regenerated from its PRNG recipe: the PRNG
//!   check values, all 11 slot roots, the dataset root (decimal, BE and LE hex), the 16 block hashes and the
//!   cell hashes 0–3 of slot 3, `sponge([entropy, slotRoot, 1])`, the sampled indices 287, 21, 307, 157, 508 and
//!   their block/cell positions, the 5 sampled cell hashes, sample 0's cellData[0..3] and [66], sample 0's 9
//!   path nodes, the first cellData and path element of samples 1–4, slotProof[0..4]; every path verifies.
//! - §3.3 entropy from the challenge `87 d6 12 00 …`, the cell/block index helpers.
//! - §3.5 the slot root, verify root and cell CIDs (binary and base58btc) and the 12345 slot CID.
//! - §4 geometries: slot builder (1024/64, K 3, M 2, 8 blocks), sampler (64 KiB/2 KiB, K 3, M 2), erasure
//!   (123 blocks, K 20, M 10), the builder's three errors; a slot's pads take the zero-block digest.

use std::str::FromStr;

use ark_ff::{AdditiveGroup, Field};

use super::*;
use crate::cid::{ROOT_CODEC, cid_from_sha256, format_cid};
use crate::manifest::ErasureInfo;
use crate::poseidon2::{self, MerkleTree, cell_hash, elements, sponge, to_le_bytes, verify_proof, zero_block_digest};

fn dec(s: &str) -> F {
    F::from_str(s).expect("decimal field element")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) const CELL: usize = 2048;
pub(crate) const BLOCK: usize = 65536;
const CELLS_PER_BLOCK: usize = 32;

/// The fixture's fake cell: slot seed `seed`, cell `index` within the slot.
pub(crate) fn fake_cell(seed: u64, index: u64) -> Vec<u8> {
    let seed1 = seed.wrapping_add(0xdeadcafe);
    let seed2 = index.wrapping_add(0x98765432);
    let mut state: u64 = 1;
    (0..CELL)
        .map(|_| {
            state = state
                .wrapping_mul(state.wrapping_add(seed1))
                .wrapping_mul(state.wrapping_add(seed2))
                .wrapping_add(state.wrapping_mul(state ^ 0x5a5a5a5a))
                .wrapping_add(seed1.wrapping_mul(state))
                .wrapping_add(seed2.wrapping_add(17));
            state %= 1698428844001831;
            (state % 256) as u8
        })
        .collect()
}

pub(crate) fn fake_block(seed: u64, block: usize) -> Vec<u8> {
    (0..CELLS_PER_BLOCK).flat_map(|c| fake_cell(seed, (block * CELLS_PER_BLOCK + c) as u64)).collect()
}

pub(crate) fn slot_seed(slot: u64) -> u64 {
    12345 + 72 + 1001 * slot
}

#[test]
fn fixture_prng() {
    assert_eq!(
        (0..11).map(slot_seed).collect::<Vec<_>>(),
        [12417, 13418, 14419, 15420, 16421, 17422, 18423, 19424, 20425, 21426, 22427]
    );
    assert_eq!(hex(&fake_cell(12417, 0)[..16]), "8704d2c0257e8d151292757e821e4ead");
    let cell = fake_cell(15420, 0);
    assert_eq!(hex(&cell[..16]), "83e5a6518375c7e551ac4ab6ec268822");
    assert_eq!(hex(&cell[CELL - 4..]), "fefa2f32");
}

const SLOT_ROOTS: [&str; 11] = [
    "2890404758151050274312606730350692187558493981946059404326311209060864654379",
    "19987182826136616521830331577429527847943056366094389743847686135362626944000",
    "14279309641024220656349577745390262299143357053971618723978902485113885925133",
    "20744935707483803411869804102043283881376973626291244537230284476834672019997",
    "4810903104812541115474434476925532979405926006870866476166015313489077076400",
    "15583963006538004265028108522974363414924717962606679320027996077037589061614",
    "1927721924813808377406185883343761304073977157586854660214745051620255714101",
    "4815424179624973216845354928862028946658243097299168552920228239639125272171",
    "6074282922789212060680767791799815465468695010626903188849429489941094153548",
    "8902834601866117645250445399395236846866654201720886495257195252980067955619",
    "17872397126965207095494780010524156843257248687474550787255659041117988916909",
];

const SLOT3_BLOCKS: [&str; 16] = [
    "11870398223693432583042351546731028104314346514408475859797355891452183094616",
    "20835509643844784930831626622202658364476409300598072395494952478408974334325",
    "14530681811029504601104483116160123805797142572456938135436967673828356935563",
    "652599964779834093605269533979240785898699651665107313999024211852905604543",
    "951014447366144442564212776819789319358018262485194033174012190248137890609",
    "10120699018002766520605012835043517238241846918467244955580419060582311503402",
    "18912452177558338907496075944016948101194869472129501293341731076145439018932",
    "12019121974659794367320674128785155984412164097195874821507775039546831511951",
    "15510790697317206014779022286261864844918915222875014882833700758879700055506",
    "13757776896542890425183206586238760231244468647794123671233758868377423038254",
    "11987621670810085603970025045304772402050878086303207945356081657336973262856",
    "2819295154336371146877665770390212107798325715839997291615606046375461316318",
    "19985033828625119874617471253172435027269012842438178338282421382398064406436",
    "1509463060146817208499302461092091752990671336103536081673593318106800164255",
    "14504305765289705714959523666100275156034056689367568164630385862257567596209",
    "280946897699800093083301931393039298545254901768413922495086924981799015610",
];

/// Regenerates the whole circuit fixture (11 slots × 512 cells) and checks every listed value.
#[test]
fn circuit_fixture() {
    let layout = SlotLayout::new(BLOCK as u64, CELL as u64, 11 * 16, 11).unwrap();
    assert_eq!((layout.data_blocks_per_slot(), layout.pad_blocks_per_slot(), layout.cells_per_slot()), (16, 0, 512));

    let mut slot3_blocks = Vec::new();
    let mut slot_roots = Vec::new();
    let mut slot_trees = Vec::new();
    for slot in 0..11u64 {
        let blocks: Vec<Vec<u8>> = (0..16).map(|b| fake_block(slot_seed(slot), b)).collect();
        let indices = layout.slot_blocks(slot).unwrap();
        let digests: Vec<F> =
            blocks.iter().zip(indices).map(|(b, i)| slot_block_digest(&layout, i, b).unwrap()).collect();
        let tree = SlotTree::new(&layout, &digests).unwrap();
        assert_eq!(tree.root(), dec(SLOT_ROOTS[slot as usize]), "slot {slot}");
        slot_roots.push(tree.root());
        if slot == 3 {
            assert_eq!(digests, SLOT3_BLOCKS.map(dec), "slot 3 block hashes");
            slot3_blocks = blocks;
        }
        slot_trees.push(tree);
    }

    // Dataset (verify) root and its byte forms.
    let dataset_root = verify_root(&slot_roots).unwrap();
    assert_eq!(dataset_root, dec("16074246370508166450132968585287196391860062495017081813239200574579640171677"));
    let le = to_le_bytes(&dataset_root);
    assert_eq!(hex(&le), "9dfce8db7adb819fcb761fb663ac2e1703c21421cba2cd719aa0310d77b38923");
    let be: Vec<u8> = le.iter().rev().copied().collect();
    assert_eq!(hex(&be), "2389b3770d31a09a71cda2cb2114c203172eac63b61f76cb9f81db7adbe8fc9d");

    // Slot 3 and its proof in the dataset tree.
    let slot_root = slot_roots[3];
    assert_eq!(hex(&to_le_bytes(&slot_root)), "1d0aec9230711c919c45bd259287e72cf8467ac5c86317061f0cd837af37dd2d");
    let dataset_tree = MerkleTree::new(&slot_roots).unwrap();
    let slot_proof = dataset_tree.proof(3).unwrap();
    assert_eq!(
        slot_proof,
        [
            "14279309641024220656349577745390262299143357053971618723978902485113885925133",
            "17350220251883387610715080716935498684002984280929482268590417788651882821293",
            "3614172556528990402229172918446087216573760062512459539027101853103043539066",
            "9593656216696187567506330076677122799107266567595923589824071605501987205034",
        ]
        .map(dec)
    );
    assert!(verify_proof(slot_root, 3, 11, &slot_proof, dataset_root));

    // Cell hashes 0–3 of slot 3.
    let first_cells: Vec<F> = (0..4).map(|c| cell_hash(&slot3_blocks[0][c * CELL..(c + 1) * CELL])).collect();
    assert_eq!(
        first_cells,
        [
            "17033041910967151034136324870959232982916157925751316473693996492621564867107",
            "9552363785171075840776802436984281513362269178285649235106625531751458239608",
            "18703830608589918641692566337644528915449296603800967307770750098994052340647",
            "15472123115234454612547189278025424150878227748909382398930788834464860438574",
        ]
        .map(dec)
    );

    // Sampling.
    let mut challenge = [0u8; 32];
    challenge[..4].copy_from_slice(&[0x87, 0xd6, 0x12, 0x00]);
    challenge[31] = 0xff; // dropped
    let entropy = entropy_from_challenge(&challenge);
    assert_eq!(entropy, F::from(1234567u64));
    let first = sponge(&[entropy, slot_root, F::ONE]);
    assert_eq!(first, dec("21051029818893485635560069555360071249585393429228441201546820650188605022495"));
    let indices = cell_indices(entropy, slot_root, layout.cells_per_slot(), 5).unwrap();
    assert_eq!(indices, [287, 21, 307, 157, 508]);
    let positions: Vec<(u64, u64)> = indices.iter().map(|i| layout.cell_position(*i).unwrap()).collect();
    assert_eq!(positions, [(8, 31), (0, 21), (9, 19), (4, 29), (15, 28)]);

    let sampled_hashes = [
        "3960646146557122226346780924987761549793705203026743624521046938778516414181",
        "12184231857278020901551506754628967667410761695474685449416151945487539929982",
        "18538893623594965125188243232065710014346711804023684630307134153107372953695",
        "8801186219713235311638905036157399145030358556486833214392798372285327456003",
        "18243930954876071368521720561122094585122785042125982638548414565019943038333",
    ];
    let first_elements = [
        ("211066599696340205996365563960462032209214145564176017965177408819390441927", ""),
        (
            "424838222746158988229624788694939151178615656210585621868910231014323837551",
            "20475873274412005481064639175076772466269555202404881992985142339142752174247",
        ),
        (
            "359926778925154809567585559910064420821311221299937568759183366972901588855",
            "13099868869639061574800067722436547911616384523753701384396275064543709640456",
        ),
        (
            "199440901482393381753657315848210955092644686957900737971520778206058989647",
            "123238869181525326412236116167249816873084559218151119452851092131080991962",
        ),
        (
            "10892488375325920610152294701785926476935321890453222549428070867493882259",
            "19153513112714782931111012244694922243101677748840856395814929006033044311081",
        ),
    ];
    let slot_tree = &slot_trees[3];
    for (k, (&index, &(block, cell))) in indices.iter().zip(&positions).enumerate() {
        let block_bytes = &slot3_blocks[block as usize];
        let cell_bytes = &block_bytes[cell as usize * CELL..(cell as usize + 1) * CELL];
        let cell_data = elements(cell_bytes);
        assert_eq!(cell_data.len(), 67);
        let leaf = sponge(&cell_data);
        assert_eq!(leaf, dec(sampled_hashes[k]), "sample {k}");
        let cells = block_cell_tree(block_bytes, CELL).unwrap();
        let path = slot_tree.cell_proof(index, &cells).unwrap();
        assert_eq!(path.len(), 9);
        assert!(verify_cell_proof(&layout, leaf, index, &path, slot_root), "sample {k}");
        assert!(!verify_cell_proof(&layout, leaf, index ^ 1, &path, slot_root), "sample {k}");
        assert!(!verify_cell_proof(&layout, leaf + F::ONE, index, &path, slot_root), "sample {k}");
        let (data0, path0) = first_elements[k];
        assert_eq!(cell_data[0], dec(data0), "sample {k}");
        if k == 0 {
            assert_eq!(
                cell_data[1],
                dec("256399834032317991719099034134771774537377713676282398278615627599320306708")
            );
            assert_eq!(cell_data[2], dec("40526956212941839024868120947422067322935297516255336725720469887577875470"));
            assert_eq!(cell_data[66], F::from(77407u64));
            assert_eq!(
                path,
                [
                    "12330511756602656312909435206144412037562550923861053314147193494605624608532",
                    "11626412651279744307149389430094868876817959605147995292836995419396445628874",
                    "5992799448428980485292103987999399446160713735809250167288027256759377161164",
                    "19665782623633007009046423286205585606029554995684266199914536255425604862856",
                    "16487082247902739801276638140231448150060608377815926330854457096549924699346",
                    "13757776896542890425183206586238760231244468647794123671233758868377423038254",
                    "5689382212199289790852870716648320118282913659439556386010574440270030991956",
                    "19397819444005071538172083272808000152189643623980212079104170950073560541073",
                    "13602141253349313166682170066159161155345481788270338632198566205283140117430",
                ]
                .map(dec)
            );
        } else {
            assert_eq!(path[0], dec(path0), "sample {k}");
        }
        // The wrong block's cell tree is refused.
        let other = block_cell_tree(&slot3_blocks[(block as usize + 1) % 16], CELL).unwrap();
        assert_eq!(slot_tree.cell_proof(index, &other), None);
    }

    // CIDs (§3.5).
    let slot_cid = slot_root_cid(&slot_root);
    assert_eq!(
        hex(&slot_cid.to_bytes()),
        "01849a0300201d0aec9230711c919c45bd259287e72cf8467ac5c86317061f0cd837af37dd2d"
    );
    assert_eq!(format_cid(&slot_cid), "zE2PfUHWCDhrhbZMBz22qpEB3CjtKx9VxhKbpvALuaGbR6tcwDtp");
    assert_eq!(
        slot_cid.to_string_of_base(multibase::Base::Base32Lower).unwrap(),
        "bagcjuayaeaoqv3esgbyrzem4iw6sleuh44wpqrt2yxeggfygd4gnqn5pg7os2"
    );
    assert_eq!(root_from_cid(&slot_cid), Some(slot_root));
    let verify_cid = verify_root_cid(&dataset_root);
    assert_eq!(
        hex(&verify_cid.to_bytes()),
        "01859a0300209dfce8db7adb819fcb761fb663ac2e1703c21421cba2cd719aa0310d77b38923"
    );
    assert_eq!(format_cid(&verify_cid), "zE4LQeWxNkUjSX9hLMp4NktZ9m2AUgw3uj949iTEiKPqSC98VBjg");
    assert_eq!(root_from_cid(&verify_cid), Some(dataset_root));
    let cell_cid = slot_cell_cid(&dec(SLOT3_BLOCKS[0]));
    assert_eq!(
        hex(&cell_cid.to_bytes()),
        "01869a03919a032058a52c021aad3a08ba28df66af646315333c48a4004a6995ee4e3a0645683e1a"
    );
    assert_eq!(format_cid(&cell_cid), "z5Q2wLtjGk4yGykgnkDNZ4v5tVKQP3yKWZ57SKm7eUzKMZSwG4ECXtm");
}

#[test]
fn slot_cid_of_12345() {
    let cid = slot_root_cid(&F::from(12345u64));
    assert_eq!(hex(&cid.to_bytes()), format!("01849a0300203930{}", "00".repeat(30)));
    assert_eq!(format_cid(&cid), "zE2PfUHWE7a4dPbt3xdcFkT3wrUrdQRQmQ29t8bUrJYQg8j9jvm5");
    assert_eq!(root_from_cid(&cid_from_sha256(ROOT_CODEC, &[0; 32])), None);
}

/// A protected manifest of `original_blocks` blocks of `block_size` bytes, with ecK `k` and ecM `m`.
fn protected(block_size: u64, original_blocks: u64, k: u64, m: u64) -> Manifest {
    let steps = original_blocks.div_ceil(k);
    let tree = cid_from_sha256(ROOT_CODEC, &[7; 32]);
    let mut manifest = Manifest::new_unprotected(tree, block_size, steps * (k + m) * block_size, None, None);
    manifest.erasure = Some(ErasureInfo {
        ec_k: k,
        ec_m: m,
        original_tree_cid: cid_from_sha256(ROOT_CODEC, &[8; 32]),
        original_dataset_size: original_blocks * block_size - 5,
        protected_strategy: 1,
        verification: None,
    });
    manifest
}

#[test]
fn slot_builder_geometry() {
    let layout = SlotLayout::from_manifest(&protected(1024, 8, 3, 2), 64).unwrap();
    assert_eq!(layout.blocks_count(), 15);
    assert_eq!(layout.num_slots(), 5);
    assert_eq!(layout.data_blocks_per_slot(), 3);
    assert_eq!(layout.cells_per_block(), 16);
    assert_eq!(layout.pad_blocks_per_slot(), 1);
    assert_eq!(layout.blocks_per_slot(), 4);
    assert_eq!(layout.cells_per_slot(), 64);
    assert_eq!(layout.padded_blocks_count(), 20);
    assert_eq!(layout.slot_size(), 4096);
    assert_eq!(layout.slot_blocks(0), Some(0..3));
    assert_eq!(layout.slot_blocks(4), Some(12..15));
    assert_eq!(layout.slot_blocks(5), None);
    assert_eq!(layout.dataset_index(4, 2), Some(14));
    assert_eq!(layout.dataset_index(4, 3), None);
    // 8 original blocks rounded to 9: index 8 is the erasure-coding padding block; 9..15 are parity.
    assert_eq!((0..15).filter(|i| layout.is_empty_block(*i)).collect::<Vec<_>>(), [8]);

    // A slot tree: the pad position and the padding block take the zero-block digest.
    let zero = dec("19624044573724783152652533620464676969901756236030236445652706412498169075352");
    assert_eq!(slot_block_digest(&layout, 8, &[1u8; 1024]), Ok(zero));
    assert_eq!(slot_block_digest(&layout, 7, &[]), Ok(zero));
    assert_eq!(slot_block_digest(&layout, 7, &[0u8; 1024]), Ok(zero));
    assert_eq!(
        slot_block_digest(&layout, 7, &[0u8; 1000]),
        Err(SlotError::BlockLength { index: 7, len: 1000, expected: 1024 })
    );
    let blocks: Vec<Vec<u8>> = (0..3u8).map(|b| vec![b + 1; 1024]).collect();
    let digests: Vec<F> =
        blocks.iter().enumerate().map(|(i, b)| slot_block_digest(&layout, 6 + i as u64, b).unwrap()).collect();
    let tree = SlotTree::new(&layout, &digests).unwrap();
    let mut leaves = digests.clone();
    leaves.push(zero);
    assert_eq!(Some(tree.root()), poseidon2::merkle_root(&leaves));
    assert_eq!(SlotTree::new(&layout, &digests[..2]), Err(SlotError::DigestCount { count: 2, expected: 3 }));
    // A cell in the pad block has a path through the zero block's cell tree.
    let zero_cells = block_cell_tree(&[0u8; 1024], 64).unwrap();
    let pad_cell = layout.cell_index(3, 5).unwrap();
    let path = tree.cell_proof(pad_cell, &zero_cells).unwrap();
    assert!(verify_cell_proof(&layout, cell_hash(&[0u8; 64]), pad_cell, &path, tree.root()));
    // The verify root is the Merkle root over the slot roots.
    let roots: Vec<F> = (1..=5u64).map(F::from).collect();
    assert_eq!(verify_root(&roots), poseidon2::merkle_root(&roots));
    assert_eq!(verify_root(&[]), None);
}

#[test]
fn sampler_and_erasure_geometry() {
    let layout = SlotLayout::from_manifest(&protected(65536, 8, 3, 2), DEFAULT_CELL_SIZE).unwrap();
    assert_eq!((layout.blocks_count(), layout.num_slots(), layout.data_blocks_per_slot()), (15, 5, 3));
    assert_eq!((layout.cells_per_slot(), layout.blocks_per_slot(), layout.pad_blocks_per_slot()), (128, 4, 1));
    let entropy = F::from(1234567u64);
    let indices = cell_indices(entropy, F::from(99u64), layout.cells_per_slot(), 5).unwrap();
    assert!(indices.iter().all(|i| *i < 128));
    assert_eq!(cell_index(entropy, F::ONE, 1, 96), None);

    let layout = SlotLayout::from_manifest(&protected(1024, 123, 20, 10), 64).unwrap();
    assert_eq!((layout.blocks_count(), layout.num_slots(), layout.data_blocks_per_slot()), (210, 30, 7));
    assert_eq!((0..210).filter(|i| layout.is_empty_block(*i)).collect::<Vec<_>>(), (123..140).collect::<Vec<_>>());
    assert_eq!((layout.cells_per_slot(), layout.pad_blocks_per_slot()), (128, 1));
}

#[test]
fn cell_index_helpers() {
    let layout = SlotLayout::new(65536, 2048, 4, 1).unwrap();
    for (cell, block, in_block) in [(10, 0, 10), (31, 0, 31), (32, 1, 0), (63, 1, 31), (64, 2, 0)] {
        assert_eq!(layout.cell_position(cell), Some((block, in_block)));
        assert_eq!(layout.cell_index(block, in_block), Some(cell));
    }
    assert_eq!(layout.cell_position(128), None);
    assert_eq!(layout.cell_index(4, 0), None);
    assert_eq!(layout.cell_index(0, 32), None);
}

#[test]
fn builder_errors() {
    let unprotected = Manifest::new_unprotected(cid_from_sha256(ROOT_CODEC, &[7; 32]), 1024, 8 * 1024, None, None);
    assert_eq!(SlotLayout::from_manifest(&unprotected, 64), Err(SlotError::NotProtected));
    let mut uneven = protected(1024, 8, 3, 2);
    uneven.dataset_size += 1024;
    assert_eq!(SlotLayout::from_manifest(&uneven, 64), Err(SlotError::BlocksNotDivisible { blocks: 16, num_slots: 5 }));
    assert_eq!(
        SlotLayout::from_manifest(&protected(1024, 8, 3, 2), 100),
        Err(SlotError::CellSizeNotDivisor { block_size: 1024, cell_size: 100 })
    );
    assert!(SlotLayout::from_manifest(&protected(1024, 8, 3, 2), 0).is_err());
}

#[test]
fn verifiable_manifest_is_byte_exact() {
    let manifest = protected(65536, 8, 3, 2);
    let roots: Vec<F> = (1..=5u64).map(F::from).collect();
    let root = verify_root(&roots).unwrap();
    assert_eq!(
        verifiable_manifest(&manifest, DEFAULT_CELL_SIZE, &roots[..4], root),
        Err(SlotError::SlotRootCount { count: 4, expected: 5 })
    );
    let verifiable = verifiable_manifest(&manifest, DEFAULT_CELL_SIZE, &roots, root).unwrap();
    verifiable.validate().unwrap();
    let info = verifiable.erasure.as_ref().unwrap().verification.as_ref().unwrap();
    assert_eq!(info.slot_roots.iter().map(|c| root_from_cid(c).unwrap()).collect::<Vec<_>>(), roots);

    // VerificationInfo as codex-facts §3.2 lays it out: 1 verifyRoot, 2 one field per slot root, 3 cellSize,
    // 4 verifiableStrategy (written even when 0), nested as field 6 of ErasureInfo after field 5.
    let mut info_bytes = Vec::new();
    let cid_field = |tag: u8, cid: &::cid::Cid, out: &mut Vec<u8>| {
        let bytes = cid.to_bytes();
        out.push(tag);
        out.push(bytes.len() as u8);
        out.extend(bytes);
    };
    cid_field(0x0a, &verify_root_cid(&root), &mut info_bytes);
    for r in &roots {
        cid_field(0x12, &slot_root_cid(r), &mut info_bytes);
    }
    info_bytes.extend([0x18, 0x80, 0x10, 0x20, 0x00]);
    let len = info_bytes.len();
    assert!((128..16384).contains(&len));
    let mut expected_tail = vec![0x28, 0x01, 0x32, (len as u8 & 0x7f) | 0x80, (len >> 7) as u8];
    expected_tail.extend(&info_bytes);
    let encoded = verifiable.encode();
    assert!(encoded.windows(expected_tail.len()).any(|w| w == expected_tail.as_slice()));
    assert_eq!(Manifest::decode(&encoded).unwrap(), verifiable);
    // Everything but the verification info is unchanged.
    let mut stripped = verifiable.clone();
    stripped.erasure.as_mut().unwrap().verification = None;
    assert_eq!(stripped, manifest);
    assert_eq!(
        verifiable_manifest(&Manifest { erasure: None, ..manifest }, 2048, &roots, root),
        Err(SlotError::NotProtected)
    );
}

#[test]
fn zero_block_is_cached_per_geometry() {
    assert_eq!(zero_block_digest(1024, 64), zero_block_digest(1024, 64));
    assert_ne!(zero_block_digest(1024, 64), zero_block_digest(2048, 64));
    assert_eq!(F::ZERO, F::ZERO);
}

proptest::proptest! {
    #[test]
    fn layout_partitions_the_dataset(
        steps in 1u64..20,
        num_slots in 1u64..12,
        cells_log in 0u32..6,
        cell_size in proptest::sample::select(vec![64u64, 2048]),
    ) {
        let block_size = cell_size << cells_log;
        let layout = SlotLayout::new(block_size, cell_size, steps * num_slots, num_slots).unwrap();
        proptest::prop_assert!(layout.cells_per_slot().is_power_of_two());
        proptest::prop_assert!(layout.cells_per_slot() >= steps * layout.cells_per_block());
        proptest::prop_assert!(layout.cells_per_slot() < 2 * steps * layout.cells_per_block());
        let mut next = 0;
        for slot in 0..num_slots {
            let blocks = layout.slot_blocks(slot).unwrap();
            proptest::prop_assert_eq!(blocks.start, next);
            next = blocks.end;
            for b in 0..layout.blocks_per_slot() {
                proptest::prop_assert_eq!(layout.dataset_index(slot, b).is_some(), b < steps);
            }
        }
        proptest::prop_assert_eq!(next, layout.blocks_count());
        for cell in [0, layout.cells_per_slot() / 2, layout.cells_per_slot() - 1] {
            let (block, in_block) = layout.cell_position(cell).unwrap();
            proptest::prop_assert_eq!(layout.cell_index(block, in_block), Some(cell));
        }
    }
}
