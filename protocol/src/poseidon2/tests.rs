//! Known-answer tests against reference proof-vectors.md. Matched, all exactly:
//!
//! - §1.1 permutation P1 (0, 1, 2) in decimal and BE hex, P2 (2^64, 1, 2); P-new is checked *not* to match;
//! - §1.2 compression with keys 0, 1, 3 and the one-leaf root;
//! - §2.1 bytes → elements (1..80, empty, 31·k, a 2 KiB cell's last element), 32 × 0xff rejected, round trip;
//! - §2.2 rate-2 sponge over [1..n], n = 0..7; §2.3 sponge over bytes 1..n (all 11 listed n);
//! - §2.4 LE-hex roots of bytes 1..80 and of the empty input, the 2^17-leaf root (ignored by default: slow in
//!   debug), the structural identities; Appendix A: all 40 field-element and 81 byte roots;
//! - §2.5 the node's Poseidon2Tree shapes (8, 7 and 10 leaves) and their DER roots; every proof verifies;
//! - §2.6 zero 2 KiB / 64 B cell hashes and zero 64 KiB / 1 KiB block digests.

use std::str::FromStr;

use ark_ff::{AdditiveGroup, Field};
use proptest::prelude::*;

use super::merkle::{depth, reconstruct_root};
use super::vectors::{BYTE_ROOTS, FIELD_ROOTS};
use super::*;

fn dec(s: &str) -> F {
    F::from_str(s).expect("decimal field element")
}

fn hex_be(s: &str) -> F {
    let bytes: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    F::from_be_bytes_mod_order(&bytes)
}

fn hex_le(f: &F) -> String {
    to_le_bytes(f).iter().map(|b| format!("{b:02x}")).collect()
}

fn count(n: u64) -> Vec<F> {
    (1..=n).map(F::from).collect()
}

fn bytes_1_to(n: usize) -> Vec<u8> {
    (1..=n).map(|b| b as u8).collect()
}

#[test]
fn constants_are_the_old_horizenlabs_set() {
    assert_eq!(EXTERNAL[0], hex_be("2c4c51fd1bb9567c27e99f5712b49e0574178b41b6f0a476cddc41d242cf2b43"));
    assert_eq!(INTERNAL[55], hex_be("238d26ca97c691591e929f32199a643550f325f23a85d420080b289d7cecc9d4"));
    assert_eq!(SPONGE_IV_RATE2, dec("18446744073709552386"));
}

#[test]
fn permutation_p1_p2() {
    let mut state = [F::from(0u64), F::from(1u64), F::from(2u64)];
    permute(&mut state);
    assert_eq!(
        state,
        [
            dec("21882471761025344482456282050943515707267606647948403374880378562101343146243"),
            dec("9030699330013392132529464674294378792132780497765201297316864012141442630280"),
            dec("9137931384593657624554037900714196568304064431583163402259937475584578975855"),
        ]
    );
    assert_eq!(state[0], hex_be("30610a447b7dec194697fb50786aa7421494bd64c221ba4d3b1af25fb07bd103"));
    assert_eq!(state[1], hex_be("13f731d6ffbad391be22d2ac364151849e19fa38eced4e761bcd21dbdc600288"));
    assert_eq!(state[2], hex_be("1433e2c8f68382c447c5c14b8b3df7cbfd9273dd655fe52f1357c27150da786f"));
    assert_ne!(state[0], hex_be("0bb61d24daca55eebcb1929a82650f328134334da98ea4f847f760054f4a3033"), "new constants");

    let mut state = [dec("18446744073709551616"), F::from(1u64), F::from(2u64)];
    permute(&mut state);
    assert_eq!(
        state,
        [
            dec("21658538694766004233136855742940871205577528902229351089041313470429025882597"),
            dec("19296375964009402039404592001274736735894410486509328719258134543103656624902"),
            dec("11640765419168198000719743597189611575188281354497517721813259831478696667706"),
        ]
    );
}

#[test]
fn compression_vectors() {
    let (one, two) = (F::from(1u64), F::from(2u64));
    assert_eq!(
        compress(one, two, 0),
        dec("19016777872907576614311050386253173408873004339574005400462870923562919648648")
    );
    assert_eq!(
        compress(one, two, 3),
        dec("4204978787746040876580863153508182954996889549771394508434354805382135332498")
    );
    assert_eq!(
        compress(one, two, 1),
        dec("1200363431219114414119550523646199479423259809629365937886754089111624051137")
    );
    assert_eq!(
        compress(one, F::ZERO, 3),
        dec("3725399183367945352080398854175773551921581713520486387171444673504688049612")
    );
    assert_eq!(merkle_root(&[one]), Some(compress(one, F::ZERO, 3)));
}

#[test]
fn bytes_to_elements() {
    let e = elements(&bytes_1_to(80));
    assert_eq!(
        e,
        vec![
            hex_be("1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a090807060504030201"),
            hex_be("3e3d3c3b3a393837363534333231302f2e2d2c2b2a29282726252423222120"),
            hex_be("01504f4e4d4c4b4a494847464544434241403f"),
        ]
    );
    assert_eq!(elements(&[]), vec![F::ONE]);
    for k in 1..4 {
        let e = elements(&vec![7u8; 31 * k]);
        assert_eq!(e.len(), k + 1);
        assert_eq!(e.last(), Some(&F::ONE));
    }
    let zero_cell = elements(&[0u8; 2048]);
    assert_eq!(zero_cell.len(), 67);
    assert_eq!(zero_cell[66], F::from(65536u64));
    let mut cell = vec![0u8; 2048];
    cell[2046] = 0x5f;
    cell[2047] = 0x2e;
    assert_eq!(elements(&cell)[66], F::from(0x5fu64 + 256 * 0x2e + 65536));
}

#[test]
fn field_bytes_round_trip() {
    assert_eq!(from_le_bytes(&[0xff; 32]), None);
    let f = F::from(1234u64);
    assert_eq!(from_le_bytes(&to_le_bytes(&f)), Some(f));
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_eq!(to_le_bytes(&F::ONE), one);
    // r − 1 is accepted, r is not.
    let r_minus_1 = -F::ONE;
    let mut r = to_le_bytes(&r_minus_1);
    assert_eq!(from_le_bytes(&r), Some(r_minus_1));
    r[0] += 1;
    assert_eq!(from_le_bytes(&r), None);
}

#[test]
fn sponge_over_elements() {
    let rate2 = [
        "15335097698975718583905618186682475632756177170667436996250626760551196078076",
        "5101758095924000127790537496504070769319625501671400349336709520206095219618",
        "7306734450287348725566606192910189982345130476287345231433021147457815478255",
        "18511919414269811073023003336929505285555117419480831606637506641708579940507",
        "17917165106036607360653786499368288558581739128065811663709392730081030901634",
        "4630821736691665506072583795473163860465039714428126246168623896083265248907",
        "2020506076765964149531002674962673761843846094901604358961533722934321735239",
        "11732533243633999579592740965735640217427639382365959787508754341969556105663",
    ];
    for (n, expected) in rate2.iter().enumerate() {
        assert_eq!(sponge(&count(n as u64)), dec(expected), "n = {n}");
    }
}

#[test]
fn sponge_over_bytes() {
    let vectors = [
        (0, "5101758095924000127790537496504070769319625501671400349336709520206095219618"),
        (1, "18695083357472716274847843884901568311516406792554014149986897432633010147597"),
        (2, "2550786824983246733752134912050312074619297908566970893454398249853761324225"),
        (3, "8293147678505653247877981165552608772427752506989033949598145984142100122661"),
        (30, "13502496045528929728661431957113228383282244722007626300830630956896276927236"),
        (31, "16657345058001715249588978019767405083746447932192021825680251338852908120624"),
        (32, "18348113314775214710745215652772134162141324416943367724940210261595707429438"),
        (61, "3764369912510586205898979061944684207302856870696211625198201477332108899669"),
        (62, "19337384393654822943993331325469294588348972070347803551185391380953859190206"),
        (63, "16011271119568051619200527825722275744822308763273829834177019016294347359064"),
        (80, "710179170029253003561146737968493187896868874120382115883221004711232107930"),
    ];
    for (n, expected) in vectors {
        let bytes = bytes_1_to(n);
        assert_eq!(sponge_bytes(&bytes), dec(expected), "n = {n}");
        assert_eq!(sponge(&elements(&bytes)), dec(expected), "n = {n}");
    }
}

#[test]
fn merkle_roots_appendix_a() {
    for (i, expected) in FIELD_ROOTS.iter().enumerate() {
        let leaves = count(i as u64 + 1);
        assert_eq!(merkle_root(&leaves), Some(dec(expected)), "field n = {}", i + 1);
    }
    for (n, expected) in BYTE_ROOTS.iter().enumerate() {
        assert_eq!(merkle_root(&elements(&bytes_1_to(n))), Some(dec(expected)), "bytes n = {n}");
    }
}

#[test]
fn merkle_roots_le_hex() {
    let root = merkle_root(&elements(&bytes_1_to(80))).unwrap();
    assert_eq!(hex_le(&root), "40989b63104f39e3331767883381085bcfc46e2202679123371f1ffe53521b16");
    let root = merkle_root(&elements(&[])).unwrap();
    assert_eq!(hex_le(&root), "cc8da1d157900e611b89e258d95450e707f4f9eec169422d7c26aba54f803c08");
    assert_eq!(merkle_root(&[]), None);
    assert!(MerkleTree::new(&[]).is_none());
}

#[test]
#[ignore = "2^17 leaves: about 131k compressions"]
fn merkle_root_of_2_pow_17_leaves() {
    let root = merkle_root(&count(1 << 17)).unwrap();
    assert_eq!(hex_le(&root), "593e01f200cb1aee4e75fe2a9206abc3abd2a1216ab75f1061965e97371e8623");
}

#[test]
fn merkle_structure() {
    let [a, b, c, d] = [1u64, 2, 3, 4].map(F::from);
    let z = F::ZERO;
    assert_eq!(merkle_root(&[a, b, c, d]), Some(compress(compress(a, b, 1), compress(c, d, 1), 0)));
    assert_eq!(merkle_root(&[a, b, c]), Some(compress(compress(a, b, 1), compress(c, z, 3), 0)));
    assert_ne!(merkle_root(&[a, b, c]), merkle_root(&[a, b, c, z]));
    assert_ne!(merkle_root(&[a]), Some(a));
    let ab = merkle_root(&[a, b]).unwrap();
    assert_ne!(Some(ab), merkle_root(&[ab]));
}

/// The node's `testposeidon2tree.nim` data: nine 31-character strings "000…0001" … "000…0009".
#[test]
fn node_poseidon2tree_shapes() {
    let text: String = (1..=9).map(|d| format!("{}{d}", "0".repeat(30))).collect();
    let leaves = elements(text.as_bytes());
    assert_eq!(leaves.len(), 10);
    assert_eq!(leaves[0], dec("86908089151040292729267845301248733113820119680434857222428653265934626864"));
    assert_eq!(leaves[9], F::ONE);
    let l = &leaves;
    let c = compress;
    let root8 = c(c(c(l[0], l[1], 1), c(l[2], l[3], 1), 0), c(c(l[4], l[5], 1), c(l[6], l[7], 1), 0), 0);
    assert_eq!(merkle_root(&l[..8]), Some(root8));
    assert_eq!(root8, dec("8924820774663302327093021380955732589664463719801763476739653561590206531811"));
    let root7 = c(c(c(l[0], l[1], 1), c(l[2], l[3], 1), 0), c(c(l[4], l[5], 1), c(l[6], F::ZERO, 3), 0), 0);
    assert_eq!(merkle_root(&l[..7]), Some(root7));
    assert_eq!(root7, dec("7810505278970105405845050380504728103785787134317766032688446353408963629469"));
    let root10 = c(root8, c(c(c(l[8], l[9], 1), F::ZERO, 2), F::ZERO, 2), 0);
    assert_eq!(merkle_root(l), Some(root10));
    assert_eq!(root10, dec("16445328362152122300194667022788607121110626172790954460869570569319248828281"));
    let tree = MerkleTree::new(l).unwrap();
    assert_eq!(tree.root(), root10);
    for (i, leaf) in l.iter().enumerate() {
        let path = tree.proof(i).unwrap();
        assert_eq!(path.len(), 4);
        assert!(verify_proof(*leaf, i as u64, 10, &path, root10), "leaf {i}");
        assert!(!verify_proof(*leaf + F::ONE, i as u64, 10, &path, root10), "leaf {i}");
    }
    assert_eq!(tree.proof(10), None);
}

#[test]
fn one_leaf_tree() {
    let leaf = F::from(42u64);
    let tree = MerkleTree::new(&[leaf]).unwrap();
    assert_eq!(tree.root(), compress(leaf, F::ZERO, 3));
    assert_eq!(tree.depth(), 1);
    assert_eq!(tree.proof(0), Some(vec![F::ZERO]));
    assert!(verify_proof(leaf, 0, 1, &[F::ZERO], tree.root()));
    assert!(!verify_proof(leaf, 0, 1, &[], tree.root()));
    assert!(!verify_proof(leaf, 1, 1, &[F::ZERO], tree.root()));
}

#[test]
fn depths() {
    assert_eq!([1, 2, 3, 4, 5, 8, 9, 11, 16, 17].map(depth), [1, 1, 2, 2, 3, 3, 4, 4, 4, 5]);
}

#[test]
fn zero_cells_and_blocks() {
    let cell = dec("9010113475052329305091696844352158666421830161907049466576133683123358129426");
    assert_eq!(cell_hash(&[0u8; 2048]), cell);
    let block = dec("3952633175115817719652826365077208226235197743380403001936311199014828401604");
    assert_eq!(zero_block_digest(65536, 2048), Some(block));
    assert_eq!(zero_block_digest(65536, 2048), Some(block), "cached");
    assert_eq!(block_digest(&vec![0u8; 65536], 2048), Some(block));
    let small_cell = dec("4199784258231381304727358201878069307188678200213708996551668624937229842202");
    assert_eq!(cell_hash(&[0u8; 64]), small_cell);
    let small_block = dec("19624044573724783152652533620464676969901756236030236445652706412498169075352");
    assert_eq!(zero_block_digest(1024, 64), Some(small_block));
    assert_eq!(block_digest(&[0u8; 1024], 64), Some(small_block));
    assert_eq!(block_digest(&[0u8; 1000], 64), None);
    assert_eq!(block_digest(&[], 64), None);
    assert_eq!(zero_block_digest(1000, 64), None);
    assert_eq!(zero_block_digest(1024, 0), None);
}

#[test]
fn low_bits_extraction() {
    let cases: [(u64, u32, u64); 10] = [
        (0x88, 4, 0x8),
        (0x88, 7, 0x8),
        (0x9A, 5, 0x1A),
        (0x9A, 7, 0x1A),
        (0x1248, 10, 0x248),
        (0x1248, 12, 0x248),
        (0x1248306A560C9AC0, 10, 0x2C0),
        (0x1248306A560C9AC0, 12, 0xAC0),
        (0x1248306A560C9AC0, 50, 0x306A560C9AC0),
        (0x1248306A560C9AC0, 52, 0x8306A560C9AC0),
    ];
    for (value, bits, expected) in cases {
        assert_eq!(low_bits(&F::from(value), bits), expected, "{value:#x} {bits}");
    }
}

fn arb_field() -> impl Strategy<Value = F> {
    any::<[u8; 32]>().prop_map(|b| F::from_le_bytes_mod_order(&b))
}

proptest! {
    #[test]
    fn every_proof_verifies(leaves in prop::collection::vec(arb_field(), 1..40), pick in any::<prop::sample::Index>()) {
        let tree = MerkleTree::new(&leaves).unwrap();
        prop_assert_eq!(Some(tree.root()), merkle_root(&leaves));
        let n = leaves.len() as u64;
        let i = pick.index(leaves.len());
        let path = tree.proof(i).unwrap();
        prop_assert_eq!(path.len(), depth(n));
        prop_assert!(verify_proof(leaves[i], i as u64, n, &path, tree.root()));
        prop_assert_eq!(reconstruct_root(leaves[i], i as u64, n + 1, &path).is_some(), depth(n + 1) == depth(n));
        if n > 1 {
            let other = (i + 1) % leaves.len();
            prop_assert!(leaves[other] == leaves[i] || !verify_proof(leaves[i], other as u64, n, &path, tree.root()));
        }
    }

    #[test]
    fn streaming_sponge_matches_elements(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(sponge_bytes(&bytes), sponge(&elements(&bytes)));
        prop_assert_eq!(elements(&bytes).len(), bytes.len() / 31 + 1);
    }

    #[test]
    fn le_bytes_round_trip(f in arb_field()) {
        prop_assert_eq!(from_le_bytes(&to_le_bytes(&f)), Some(f));
    }
}
