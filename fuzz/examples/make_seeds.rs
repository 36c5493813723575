//! Writes the seed corpus of every target into `fuzz/seeds/<target>/seed-<name>`: the protocol's test vectors
//! and a few well-formed values per decoder, so the fuzzer starts from inputs that get past the first checks.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds` (rewrites the files; the output is committed).

use codex_protocol::blockexc::{
    BlockAddress, BlockDelivery, BlockPresence, Message, PresenceType, WantEntry, WantList, WantType,
};
use codex_protocol::cid::{
    PROVING_ROOT_CODEC, ROOT_CODEC, SLOT_ROOT_CODEC, block_cid, cid_from_sha256, format_cid, parse_cid, sha256,
};
use codex_protocol::frame::{MAX_FRAME_LEN, put_frame, put_varint};
use codex_protocol::manifest::{ErasureInfo, VerificationInfo};
use codex_protocol::protobuf::{Reader, Value};
use codex_protocol::spr::{Multiaddr, SPR_PREFIX, encode_spr};
use codex_protocol::{CodexTree, Manifest};
use std::path::{Path, PathBuf};

const TREE_CID: &str = "zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL";

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let folder = dir.join(target);
    std::fs::create_dir_all(&folder).expect("create the seed folder");
    std::fs::write(folder.join(format!("seed-{name}")), bytes).expect("write a seed");
}

/// The trees of the merkle_proof target: leaf `i` is SHA-256 of `i` as 8 little-endian bytes.
fn test_tree(leaves: u64) -> CodexTree {
    CodexTree::new((0..leaves).map(|i| sha256(&i.to_le_bytes())).collect()).expect("leaves > 0")
}

fn blockexc_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let tree = parse_cid(TREE_CID).expect("vector CID");
    let want_have = Message {
        wantlist: WantList {
            entries: vec![WantEntry {
                address: BlockAddress::Leaf { tree, index: 0 },
                priority: 0,
                cancel: false,
                want_type: WantType::WantHave,
                send_dont_have: false,
            }],
            full: true,
        },
        ..Message::default()
    };
    let data: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 64]).collect();
    let real = CodexTree::new(data.iter().map(|d| sha256(d)).collect()).expect("tree");
    let delivery = BlockDelivery {
        cid: block_cid(&data[3]),
        data: data[3].clone().into(),
        address: BlockAddress::Leaf { tree: real.root_cid(), index: 3 },
        proof: Some(real.proof(3).expect("proof")),
    };
    let plain = BlockDelivery {
        address: BlockAddress::Cid(block_cid(&data[1])),
        proof: None,
        cid: block_cid(&data[1]),
        data: data[1].clone().into(),
    };
    let leaf_delivery = Message { payload: vec![delivery.clone()], ..Message::default() };
    let mixed = Message {
        wantlist: WantList {
            entries: vec![WantEntry {
                address: BlockAddress::Cid(block_cid(b"wanted")),
                priority: -3,
                cancel: true,
                want_type: WantType::WantBlock,
                send_dont_have: true,
            }],
            full: false,
        },
        payload: vec![plain],
        presences: vec![
            BlockPresence {
                address: BlockAddress::Leaf { tree, index: 7 },
                kind: PresenceType::Have,
                price: vec![0; 32],
            },
            BlockPresence {
                address: BlockAddress::Cid(block_cid(b"gone")),
                kind: PresenceType::DontHave,
                price: vec![],
            },
        ],
        pending_bytes: 65536,
    };
    vec![
        ("appendix-a-want-have", want_have.encode()),
        ("leaf-delivery", leaf_delivery.encode()),
        ("mixed", mixed.encode()),
        ("empty", Message::default().encode()),
    ]
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let _ = std::fs::remove_dir_all(&dir);

    let blockexc = blockexc_seeds();
    for (name, bytes) in &blockexc {
        write(&dir, "blockexc_message", name, bytes);
    }

    let mut stream = Vec::new();
    put_frame(&mut stream, &[]);
    put_frame(&mut stream, &[7; 300]);
    put_frame(&mut stream, &blockexc[0].1);
    write(&dir, "frame", "three-frames", &stream);
    let mut truncated = Vec::new();
    put_frame(&mut truncated, &blockexc[1].1);
    truncated.truncate(truncated.len() - 10);
    write(&dir, "frame", "truncated-body", &truncated);
    let mut largest = Vec::new();
    put_varint(&mut largest, MAX_FRAME_LEN);
    write(&dir, "frame", "largest-prefix", &largest);
    let mut over = Vec::new();
    put_varint(&mut over, MAX_FRAME_LEN + 1);
    write(&dir, "frame", "oversized-prefix", &over);
    write(&dir, "frame", "long-varint", &[0xff; 11]);

    let tree = parse_cid(TREE_CID).expect("vector CID");
    let plain = Manifest::new_unprotected(tree, 65536, 18, None, None);
    write(&dir, "manifest", "appendix-a", &plain.encode());
    let named = Manifest::new_unprotected(tree, 65536, 1 << 20, Some("codex.png".into()), Some("image/png".into()));
    write(&dir, "manifest", "named", &named.encode());
    let protected = Manifest {
        erasure: Some(ErasureInfo {
            ec_k: 3,
            ec_m: 2,
            original_tree_cid: cid_from_sha256(ROOT_CODEC, &[1; 32]),
            original_dataset_size: 1 << 20,
            protected_strategy: 1,
            verification: Some(VerificationInfo {
                verify_root: cid_from_sha256(PROVING_ROOT_CODEC, &[2; 32]),
                slot_roots: (0..3).map(|i| cid_from_sha256(SLOT_ROOT_CODEC, &[i; 32])).collect(),
                cell_size: 2048,
                verifiable_strategy: 0,
            }),
        }),
        ..named.clone()
    };
    write(&dir, "manifest", "protected-verifiable", &protected.encode());

    let manifest_cid = Manifest::cid_of(&plain.encode());
    write(&dir, "cid", "tree-bytes", &tree.to_bytes());
    write(&dir, "cid", "tree-text", TREE_CID.as_bytes());
    write(&dir, "cid", "manifest-text", format_cid(&manifest_cid).as_bytes());
    write(&dir, "cid", "block-bytes", &block_cid(&[]).to_bytes());
    write(&dir, "cid", "base32-text", manifest_cid.to_string().as_bytes());

    for (leaves, index) in [(1, 0), (2, 1), (3, 2), (5, 4), (8, 5), (33, 32), (64, 17)] {
        let proof = test_tree(leaves).proof(index).expect("index < leaves");
        write(&dir, "merkle_proof", &format!("{leaves}-leaves-index-{index}"), &proof.encode());
    }

    for (len, value) in [
        (100u64, "bytes=0-9"),
        (100, "bytes=90-"),
        (100, "bytes=-10"),
        (100, "bytes=100-"),
        (0, "bytes=0-"),
        (1 << 40, "bytes= 5 - 18446744073709551615"),
        (100, "bytes=0-1,5-6"),
    ] {
        let mut seed = len.to_le_bytes().to_vec();
        seed.extend_from_slice(value.as_bytes());
        let name = format!("{len}-{}", value.replace(['=', ' ', ','], "_"));
        write(&dir, "http_range", &name, &seed);
    }

    for (name, value) in [
        ("quoted", "attachment; filename=\"codex.png\""),
        ("bare", "attachment; filename=data.bin; size=3"),
        ("unclosed", "attachment; filename=\"open.txt"),
        ("reserved", "attachment; filename=\"COM1.txt\""),
        ("none", "inline"),
    ] {
        write(&dir, "content_disposition", name, value.as_bytes());
    }
    for (name, seed, addrs) in [
        ("one-address", 1u8, vec!["/ip4/127.0.0.1/tcp/8070"]),
        ("no-address", 2, vec![]),
        ("three-addresses", 3, vec!["/ip4/10.0.0.1/tcp/1", "/ip6/::1/udp/8090", "/dns4/codex.example/tcp/8070"]),
    ] {
        let secret = libp2p_identity::secp256k1::SecretKey::try_from_bytes([seed; 32]).expect("valid secret");
        let key: libp2p_identity::Keypair = libp2p_identity::secp256k1::Keypair::from(secret).into();
        let addrs: Vec<Multiaddr> = addrs.iter().map(|a| a.parse().expect("multiaddr")).collect();
        let text = encode_spr(&key, u64::from(seed), &addrs).expect("signs");
        write(&dir, "spr", &format!("text-{name}"), text.as_bytes());
        let envelope = multibase::Base::Base64Url.decode(&text[SPR_PREFIX.len()..]).expect("base64url");
        write(&dir, "spr", &format!("envelope-{name}"), &envelope);
        let mut fields = Reader::new(&envelope);
        while let Ok(Some((field, value))) = fields.next_field() {
            if let (3, Value::Bytes(record)) = (field, value) {
                write(&dir, "spr", &format!("record-{name}"), record);
            }
        }
    }
    println!("seeds written to {}", dir.display());
}
