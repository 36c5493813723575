//! Block exchange ("blockexc") wire messages, byte-compatible with the original node's encoder
//! (reference codex-facts §5.3; the Nim coder is authoritative, not its outdated `message.proto`).
//!
//! Framing (an unsigned-varint length prefix) belongs to the transport; this module encodes and decodes one
//! message body. Decoding never panics and never trusts lengths or counts: bytes come from peers. What a
//! message may hold is bounded *inside* the decoder, so a frame cannot decode into more memory than a small
//! multiple of its size: at most [`MAX_WANT_ENTRIES`] want entries, [`MAX_PRESENCES`] presences,
//! [`MAX_DELIVERIES`] deliveries carrying at most [`MAX_PAYLOAD_BYTES`] of block data, and
//! [`MAX_CONTROL_BYTES`] of want-list and presence bytes. Every CID must be a SHA-256 CID with a Codex codec.
//! A message over a limit is an error (the sender is scored for it), never silently truncated. The original
//! sends at most 1024 entries and 20 blocks (1.3 MiB) per message, well inside these bounds.
//! Whether a delivered block matches its CID or proof is checked by the caller (it needs the dataset's root),
//! see [`BlockDelivery::verify`].

use crate::cid::{Cid, check_codex_cid, cid_from_bytes, cid_from_sha256, sha256, sha256_digest};
use crate::protobuf::{Reader, Value, WireError, Writer};
use crate::tree::{CodexProof, ProofError};
use bytes::Bytes;
use thiserror::Error;

/// The protocol id.
pub const PROTOCOL_ID: &str = "/codex/blockexc/1.0.0";
/// Largest message the original accepts (100 MiB).
pub const MAX_MESSAGE_SIZE: usize = 100 * 1024 * 1024;
/// Largest frame this node reads: deliveries plus control data plus proofs, with room to spare.
pub const MAX_FRAME_SIZE: usize = 8 << 20;
/// Want-list entries one message may carry (the original sends at most 1024).
pub const MAX_WANT_ENTRIES: usize = 4096;
/// Presences one message may carry (the original sends at most 1024).
pub const MAX_PRESENCES: usize = 4096;
/// Deliveries one message may carry (the original sends at most 20).
pub const MAX_DELIVERIES: usize = 64;
/// Block bytes the deliveries of one message may carry in total.
pub const MAX_PAYLOAD_BYTES: usize = 4 << 20;
/// Bytes of want-list and presences one message may carry: frames without blocks stay small.
pub const MAX_CONTROL_BYTES: usize = 1 << 20;
/// Longest price a presence may carry (a big-endian UInt256).
const MAX_PRICE_BYTES: usize = 32;

/// Errors decoding a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockExcError {
    #[error("malformed blockexc message: {0}")]
    Wire(#[from] WireError),
    #[error("blockexc address has no {field}")]
    MissingField { field: &'static str },
    #[error("blockexc field {field} holds a bad CID: {reason}")]
    BadCid { field: &'static str, reason: String },
    #[error("blockexc message of {len} bytes exceeds {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("blockexc message carries more than {limit} {what}")]
    TooMany { what: &'static str, limit: usize },
    #[error("blockexc message carries more than {limit} bytes of {what}")]
    TooManyBytes { what: &'static str, limit: usize },
}

/// What is wanted or delivered: a leaf of a dataset tree, or a block by CID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BlockAddress {
    Leaf { tree: Cid, index: u64 },
    Cid(Cid),
}

/// The kind of a want-list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WantType {
    WantBlock,
    WantHave,
}

/// One want-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantEntry {
    pub address: BlockAddress,
    pub priority: i32,
    pub cancel: bool,
    pub want_type: WantType,
    pub send_dont_have: bool,
}

/// A want-list; `full` marks the first batch of a complete list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantList {
    pub entries: Vec<WantEntry>,
    pub full: bool,
}

/// A delivered block; leaf deliveries carry their inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDelivery {
    pub cid: Cid,
    pub data: Bytes,
    pub address: BlockAddress,
    pub proof: Option<CodexProof>,
}

/// Whether a peer has a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceType {
    Have,
    DontHave,
}

/// A presence announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPresence {
    pub address: BlockAddress,
    pub kind: PresenceType,
    /// Big-endian UInt256 price; the original always sends zero.
    pub price: Vec<u8>,
}

/// One blockexc message. Account and payment fields (6, 7) are written empty and ignored when read, as the
/// original never configures pricing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub wantlist: WantList,
    pub payload: Vec<BlockDelivery>,
    pub presences: Vec<BlockPresence>,
    pub pending_bytes: u64,
}

fn encode_address(address: &BlockAddress) -> Vec<u8> {
    let mut writer = Writer::new();
    match address {
        BlockAddress::Leaf { tree, index } => {
            writer.varint(1, 1).bytes(2, &tree.to_bytes()).varint(3, *index);
        }
        BlockAddress::Cid(cid) => {
            writer.varint(1, 0).bytes(4, &cid.to_bytes());
        }
    }
    writer.finish()
}

/// Decodes a CID from a peer: it must be a CIDv1 with a Codex codec over a SHA-256 digest.
fn decode_cid(bytes: &[u8], field: &'static str) -> Result<Cid, BlockExcError> {
    let bad = |err: crate::CidError| BlockExcError::BadCid { field, reason: err.to_string() };
    let cid = cid_from_bytes(bytes).map_err(bad)?;
    check_codex_cid(&cid).map_err(bad)?;
    Ok(cid)
}

fn decode_address(bytes: &[u8]) -> Result<BlockAddress, BlockExcError> {
    let mut reader = Reader::new(bytes);
    let (mut leaf, mut tree, mut index, mut cid) = (false, None, 0, None);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Varint(v)) => leaf = v != 0,
            (2, Value::Bytes(b)) => tree = Some(decode_cid(b, "treeCid")?),
            (3, Value::Varint(v)) => index = v,
            (4, Value::Bytes(b)) => cid = Some(decode_cid(b, "cid")?),
            _ => {}
        }
    }
    if leaf {
        Ok(BlockAddress::Leaf { tree: tree.ok_or(BlockExcError::MissingField { field: "treeCid" })?, index })
    } else {
        Ok(BlockAddress::Cid(cid.ok_or(BlockExcError::MissingField { field: "cid" })?))
    }
}

impl Message {
    /// Encodes the message exactly as the original does (every field it always writes, written).
    pub fn encode(&self) -> Vec<u8> {
        let mut wantlist = Writer::new();
        for entry in &self.wantlist.entries {
            let mut writer = Writer::new();
            writer
                .bytes(1, &encode_address(&entry.address))
                .varint(2, entry.priority as i64 as u64)
                .varint(3, u64::from(entry.cancel))
                .varint(4, matches!(entry.want_type, WantType::WantHave) as u64)
                .varint(5, u64::from(entry.send_dont_have));
            wantlist.bytes(1, &writer.finish());
        }
        wantlist.varint(2, u64::from(self.wantlist.full));
        let mut message = Writer::new();
        message.bytes(1, &wantlist.finish());
        for delivery in &self.payload {
            let mut writer = Writer::new();
            writer
                .bytes(1, &delivery.cid.to_bytes())
                .bytes(2, &delivery.data)
                .bytes(3, &encode_address(&delivery.address));
            if let (BlockAddress::Leaf { .. }, Some(proof)) = (&delivery.address, &delivery.proof) {
                writer.bytes(4, &proof.encode());
            }
            message.bytes(3, &writer.finish());
        }
        for presence in &self.presences {
            let mut writer = Writer::new();
            writer
                .bytes(1, &encode_address(&presence.address))
                .varint(2, matches!(presence.kind, PresenceType::DontHave) as u64)
                .bytes(3, &presence.price);
            message.bytes(4, &writer.finish());
        }
        let empty_nested = [0x0a, 0x00];
        message.varint(5, self.pending_bytes).bytes(6, &empty_nested).bytes(7, &empty_nested);
        message.finish()
    }

    /// Decodes one message body within the limits of this module. Never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<Self, BlockExcError> {
        if bytes.len() > MAX_FRAME_SIZE {
            return Err(BlockExcError::TooLarge { len: bytes.len(), limit: MAX_FRAME_SIZE });
        }
        let mut message = Message::default();
        let mut reader = Reader::new(bytes);
        let (mut control, mut payload) = (0usize, 0usize);
        let mut add_control = |len: usize| {
            control += len;
            if control > MAX_CONTROL_BYTES {
                return Err(BlockExcError::TooManyBytes { what: "want-list and presences", limit: MAX_CONTROL_BYTES });
            }
            Ok(())
        };
        while let Some((field, value)) = reader.next_field()? {
            match (field, value) {
                (1, Value::Bytes(b)) => {
                    add_control(b.len())?;
                    message.wantlist = decode_wantlist(b)?;
                }
                (3, Value::Bytes(b)) => {
                    if message.payload.len() >= MAX_DELIVERIES {
                        return Err(BlockExcError::TooMany { what: "deliveries", limit: MAX_DELIVERIES });
                    }
                    let delivery = decode_delivery(b)?;
                    payload += delivery.data.len();
                    if payload > MAX_PAYLOAD_BYTES {
                        return Err(BlockExcError::TooManyBytes { what: "delivered blocks", limit: MAX_PAYLOAD_BYTES });
                    }
                    message.payload.push(delivery);
                }
                (4, Value::Bytes(b)) => {
                    add_control(b.len())?;
                    if message.presences.len() >= MAX_PRESENCES {
                        return Err(BlockExcError::TooMany { what: "presences", limit: MAX_PRESENCES });
                    }
                    message.presences.push(decode_presence(b)?);
                }
                (5, Value::Varint(v)) => message.pending_bytes = v,
                _ => {}
            }
        }
        Ok(message)
    }
}

fn decode_wantlist(bytes: &[u8]) -> Result<WantList, BlockExcError> {
    let mut list = WantList::default();
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => {
                if list.entries.len() >= MAX_WANT_ENTRIES {
                    return Err(BlockExcError::TooMany { what: "want-list entries", limit: MAX_WANT_ENTRIES });
                }
                let mut entry_reader = Reader::new(b);
                let (mut address, mut priority, mut cancel, mut want_have, mut send_dont_have) =
                    (None, 0, false, false, false);
                while let Some((field, value)) = entry_reader.next_field()? {
                    match (field, value) {
                        (1, Value::Bytes(b)) => address = Some(decode_address(b)?),
                        (2, Value::Varint(v)) => priority = v as i32,
                        (3, Value::Varint(v)) => cancel = v != 0,
                        (4, Value::Varint(v)) => want_have = v == 1,
                        (5, Value::Varint(v)) => send_dont_have = v != 0,
                        _ => {}
                    }
                }
                list.entries.push(WantEntry {
                    address: address.ok_or(BlockExcError::MissingField { field: "address" })?,
                    priority,
                    cancel,
                    want_type: if want_have { WantType::WantHave } else { WantType::WantBlock },
                    send_dont_have,
                });
            }
            (2, Value::Varint(v)) => list.full = v != 0,
            _ => {}
        }
    }
    Ok(list)
}

fn decode_delivery(bytes: &[u8]) -> Result<BlockDelivery, BlockExcError> {
    let mut reader = Reader::new(bytes);
    let (mut cid, mut data, mut address, mut proof) = (None, Bytes::new(), None, None);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => cid = Some(decode_cid(b, "cid")?),
            (2, Value::Bytes(b)) => data = Bytes::copy_from_slice(b),
            (3, Value::Bytes(b)) => address = Some(decode_address(b)?),
            (4, Value::Bytes(b)) => proof = Some(b),
            _ => {}
        }
    }
    let cid = cid.ok_or(BlockExcError::MissingField { field: "cid" })?;
    let address = address.unwrap_or(BlockAddress::Cid(cid));
    // A proof that does not decode is kept as absent: verification then rejects the leaf delivery.
    let proof = proof.and_then(|b| CodexProof::decode(b).ok());
    Ok(BlockDelivery { cid, data, address, proof })
}

fn decode_presence(bytes: &[u8]) -> Result<BlockPresence, BlockExcError> {
    let mut reader = Reader::new(bytes);
    let (mut address, mut dont_have, mut price) = (None, false, Vec::new());
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => address = Some(decode_address(b)?),
            (2, Value::Varint(v)) => dont_have = v == 1,
            (3, Value::Bytes(b)) if b.len() > MAX_PRICE_BYTES => {
                return Err(BlockExcError::TooManyBytes { what: "price", limit: MAX_PRICE_BYTES });
            }
            (3, Value::Bytes(b)) => price = b.to_vec(),
            _ => {}
        }
    }
    Ok(BlockPresence {
        address: address.ok_or(BlockExcError::MissingField { field: "address" })?,
        kind: if dont_have { PresenceType::DontHave } else { PresenceType::Have },
        price,
    })
}

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeliveryError {
    #[error("block data does not hash to its CID")]
    CidMismatch,
    #[error("delivery for a plain CID address names another CID")]
    WrongCid,
    #[error("leaf delivery has no proof")]
    MissingProof,
    #[error("proof is for leaf {proof_index}, the address is leaf {index}")]
    WrongIndex { index: u64, proof_index: u64 },
    #[error("proof does not lead to the tree root")]
    BadProof,
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("tree CID is not a SHA-256 root")]
    BadRoot,
}

impl BlockDelivery {
    /// Checks the delivery: data hashes to `cid` (with the CID's codec), and a leaf delivery's proof leads from
    /// that hash to the tree root of its address; a plain-CID delivery must be for that CID.
    pub fn verify(&self) -> Result<(), DeliveryError> {
        let digest = sha256(&self.data);
        if cid_from_sha256(self.cid.codec(), &digest) != self.cid {
            return Err(DeliveryError::CidMismatch);
        }
        match &self.address {
            BlockAddress::Cid(cid) if *cid == self.cid => Ok(()),
            BlockAddress::Cid(_) => Err(DeliveryError::WrongCid),
            BlockAddress::Leaf { tree, index } => {
                let proof = self.proof.as_ref().ok_or(DeliveryError::MissingProof)?;
                if proof.index != *index {
                    return Err(DeliveryError::WrongIndex { index: *index, proof_index: proof.index });
                }
                let root = sha256_digest(tree).map_err(|_| DeliveryError::BadRoot)?;
                if proof.verify(&digest, &root) { Ok(()) } else { Err(DeliveryError::BadProof) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{BLOCK_CODEC, block_cid, parse_cid};
    use crate::protobuf::Writer;
    use crate::tree::CodexTree;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn appendix_a_want_have_vector() {
        let tree = parse_cid("zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL").expect("cid");
        let message = Message {
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
        let bytes = message.encode();
        assert_eq!(
            hex(&bytes),
            "0a3a0a360a2c0801122601839a031220050b50fa8145c235e1b817326d34f733420298a9aa511f13622dd81264e8d4df180010001800200128001001280032020a003a020a00"
        );
        assert_eq!(bytes.len(), 70);
        assert_eq!(Message::decode(&bytes), Ok(message));
    }

    fn leaf_delivery(blocks: usize, index: usize) -> (BlockDelivery, CodexTree) {
        let data: Vec<Bytes> = (0..blocks).map(|i| Bytes::from(vec![i as u8; 64])).collect();
        let tree = CodexTree::new(data.iter().map(|d| sha256(d)).collect()).expect("tree");
        let delivery = BlockDelivery {
            cid: block_cid(&data[index]),
            data: data[index].clone(),
            address: BlockAddress::Leaf { tree: tree.root_cid(), index: index as u64 },
            proof: Some(tree.proof(index as u64).expect("proof")),
        };
        (delivery, tree)
    }

    #[test]
    fn deliveries_verify_and_lies_are_caught() {
        let (delivery, _) = leaf_delivery(5, 3);
        assert_eq!(delivery.verify(), Ok(()));
        let decoded = Message::decode(&Message { payload: vec![delivery.clone()], ..Message::default() }.encode())
            .expect("decodes");
        assert_eq!(decoded.payload, vec![delivery.clone()]);

        let mut corrupt = delivery.clone();
        corrupt.data = Bytes::from(vec![9u8; 64]);
        assert_eq!(corrupt.verify(), Err(DeliveryError::CidMismatch));
        let mut other_leaf = delivery.clone();
        other_leaf.address = BlockAddress::Leaf {
            tree: match &delivery.address {
                BlockAddress::Leaf { tree, .. } => *tree,
                BlockAddress::Cid(_) => unreachable!(),
            },
            index: 2,
        };
        assert!(matches!(other_leaf.verify(), Err(DeliveryError::WrongIndex { .. })));
        let mut unproven = delivery.clone();
        unproven.proof = None;
        assert_eq!(unproven.verify(), Err(DeliveryError::MissingProof));
        let (foreign, _) = leaf_delivery(6, 3);
        let mut misproven = delivery.clone();
        misproven.proof = foreign.proof;
        assert_eq!(misproven.verify(), Err(DeliveryError::BadProof));
        let plain = BlockDelivery { address: BlockAddress::Cid(delivery.cid), proof: None, ..delivery.clone() };
        assert_eq!(plain.verify(), Ok(()));
        let wrong = BlockDelivery { address: BlockAddress::Cid(block_cid(b"x")), proof: None, ..delivery };
        assert_eq!(wrong.verify(), Err(DeliveryError::WrongCid));
    }

    fn have_entry(index: u64) -> WantEntry {
        let tree = cid_from_sha256(crate::cid::ROOT_CODEC, &[7; 32]);
        want_entry(BlockAddress::Leaf { tree, index })
    }

    fn want_entry(address: BlockAddress) -> WantEntry {
        WantEntry { address, priority: 0, cancel: false, want_type: WantType::WantHave, send_dont_have: false }
    }

    #[test]
    fn oversized_lists_are_errors_not_truncations() {
        let entries: Vec<WantEntry> = (0..MAX_WANT_ENTRIES as u64).map(have_entry).collect();
        let full = Message { wantlist: WantList { entries: entries.clone(), full: false }, ..Message::default() };
        assert_eq!(Message::decode(&full.encode()).map(|m| m.wantlist.entries.len()), Ok(MAX_WANT_ENTRIES));
        let mut over = entries;
        over.push(have_entry(u64::MAX));
        let over = Message { wantlist: WantList { entries: over, full: false }, ..Message::default() };
        assert_eq!(
            Message::decode(&over.encode()),
            Err(BlockExcError::TooMany { what: "want-list entries", limit: MAX_WANT_ENTRIES })
        );
        let presence =
            BlockPresence { address: BlockAddress::Cid(block_cid(b"x")), kind: PresenceType::Have, price: vec![0; 32] };
        let presences = Message { presences: vec![presence; MAX_PRESENCES + 1], ..Message::default() };
        assert!(matches!(Message::decode(&presences.encode()), Err(BlockExcError::TooMany { what: "presences", .. })));
    }

    /// A frame of tiny entries must not decode into many times its size (the amplification attack).
    #[test]
    fn tiny_entries_cannot_amplify_a_frame() {
        // The smallest want entry with a Codex CID: ~45 bytes on the wire, ~112 bytes decoded.
        let cid = block_cid(b"y").to_bytes();
        let mut address = Writer::new();
        address.bytes(4, &cid);
        let mut entry = Writer::new();
        entry.bytes(1, &address.finish());
        let entry = entry.finish();
        let mut list = Writer::new();
        for _ in 0..100_000 {
            list.bytes(1, &entry);
        }
        let mut frame = Writer::new();
        frame.bytes(1, &list.finish());
        let frame = frame.finish();
        assert!(frame.len() > MAX_CONTROL_BYTES);
        assert!(matches!(Message::decode(&frame), Err(BlockExcError::TooManyBytes { .. })));

        // Tiny deliveries (a 4-byte CID and no data) are refused: their CID is not a Codex CID.
        let mut delivery = Writer::new();
        delivery.bytes(1, &[0x01, 0x55, 0x00, 0x00]);
        let mut frame = Writer::new();
        frame.bytes(3, &delivery.finish());
        assert!(matches!(Message::decode(&frame.finish()), Err(BlockExcError::BadCid { .. })));

        // Deliveries are capped in count and in bytes.
        let one = BlockDelivery {
            cid: block_cid(b"z"),
            data: Bytes::from_static(b"z"),
            address: BlockAddress::Cid(block_cid(b"z")),
            proof: None,
        };
        let many = Message { payload: vec![one; MAX_DELIVERIES + 1], ..Message::default() };
        assert!(matches!(Message::decode(&many.encode()), Err(BlockExcError::TooMany { what: "deliveries", .. })));
        let big = BlockDelivery {
            cid: block_cid(&[0; 1 << 20]),
            data: Bytes::from(vec![0; 1 << 20]),
            address: BlockAddress::Cid(block_cid(&[0; 1 << 20])),
            proof: None,
        };
        let heavy = Message { payload: vec![big; 5], ..Message::default() };
        assert!(matches!(Message::decode(&heavy.encode()), Err(BlockExcError::TooManyBytes { .. })));
    }

    #[test]
    fn cids_must_be_sha256_with_a_codex_codec() {
        let raw = Cid::new_v1(0x55, multihash::Multihash::<64>::wrap(0x12, &[1; 32]).expect("multihash"));
        let message = Message {
            wantlist: WantList { entries: vec![want_entry(BlockAddress::Cid(raw))], full: false },
            ..Message::default()
        };
        assert!(matches!(Message::decode(&message.encode()), Err(BlockExcError::BadCid { .. })));
        let identity = Cid::new_v1(BLOCK_CODEC, multihash::Multihash::<64>::wrap(0x00, &[1; 4]).expect("multihash"));
        let message = Message {
            wantlist: WantList { entries: vec![want_entry(BlockAddress::Cid(identity))], full: false },
            ..Message::default()
        };
        assert!(matches!(Message::decode(&message.encode()), Err(BlockExcError::BadCid { .. })));
        let good = Message { wantlist: WantList { entries: vec![have_entry(3)], full: true }, ..Message::default() };
        assert!(Message::decode(&good.encode()).is_ok());
    }

    proptest! {
        #[test]
        fn round_trip(
            leaves in proptest::collection::vec((any::<[u8; 32]>(), any::<u64>(), any::<bool>(), any::<bool>()), 0..20),
            presences in proptest::collection::vec((any::<[u8; 32]>(), any::<bool>()), 0..20),
            full: bool,
            pending: u64,
        ) {
            let entries = leaves.iter().map(|(d, index, cancel, have)| WantEntry {
                address: if *have {
                    BlockAddress::Leaf { tree: cid_from_sha256(crate::cid::ROOT_CODEC, d), index: *index }
                } else {
                    BlockAddress::Cid(cid_from_sha256(crate::cid::BLOCK_CODEC, d))
                },
                priority: 0,
                cancel: *cancel,
                want_type: if *have { WantType::WantHave } else { WantType::WantBlock },
                send_dont_have: false,
            }).collect();
            let presences = presences.iter().map(|(d, have)| BlockPresence {
                address: BlockAddress::Cid(cid_from_sha256(crate::cid::MANIFEST_CODEC, d)),
                kind: if *have { PresenceType::Have } else { PresenceType::DontHave },
                price: vec![0; 32],
            }).collect();
            let message = Message { wantlist: WantList { entries, full }, payload: vec![], presences, pending_bytes: pending };
            prop_assert_eq!(Message::decode(&message.encode()), Ok(message));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
            if let Ok(message) = Message::decode(&bytes) {
                for delivery in &message.payload {
                    let _ = delivery.verify();
                }
            }
        }
    }
}
