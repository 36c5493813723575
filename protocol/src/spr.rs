//! Signed peer records (`spr:` text), decoded and verified without the libp2p stack.
//!
//! An SPR is a libp2p signed envelope (`Envelope {1 public key, 2 payload type, 3 payload, 5 signature}`) whose
//! payload type is `0x0301` and whose signature covers the domain `libp2p-peer-record`; the payload is a
//! `PeerRecord {1 peer id, 2 seq, 3 repeated AddressInfo {1 multiaddr}}` whose peer id must be the signing key's.
//! The text form is `spr:` and the envelope in base64url without padding, as the original node serves it on
//! `GET /spr`. This matches libp2p-core's `PeerRecord::from_signed_envelope_interop`, field for field.

use crate::protobuf::{Reader, Value, WireError, Writer, put_varint};
use libp2p_identity::{Keypair, PublicKey};
use thiserror::Error;

pub use libp2p_identity::PeerId;
pub use multiaddr::Multiaddr;

/// The text prefix of an SPR.
pub const SPR_PREFIX: &str = "spr:";
/// The signature domain of a peer record envelope.
pub const PEER_RECORD_DOMAIN: &str = "libp2p-peer-record";
/// The envelope payload type of a peer record (its multicodec, `0x0301`, as a varint).
pub const PEER_RECORD_PAYLOAD_TYPE: [u8; 2] = [0x03, 0x01];

/// Why an SPR is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SprError {
    #[error("the text does not start with spr:")]
    NotSpr,
    #[error("the spr: record is not base64url: {reason}")]
    Base64 { reason: String },
    #[error("the envelope is malformed: {0}")]
    Envelope(WireError),
    #[error("the envelope's public key is invalid: {reason}")]
    PublicKey { reason: String },
    #[error("the envelope's payload type is {got:02x?}, not a peer record")]
    PayloadType { got: Vec<u8> },
    #[error("the envelope's signature is invalid")]
    BadSignature,
    #[error("the peer record is malformed: {0}")]
    Record(WireError),
    #[error("the peer record's peer id is invalid: {reason}")]
    PeerId { reason: String },
    #[error("the peer record's peer id is not the signing key's")]
    MismatchedPeer,
    #[error("the peer record's address {position} is invalid: {reason}")]
    Multiaddr { position: usize, reason: String },
}

/// The content of a verified peer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    pub peer: PeerId,
    pub seq: u64,
    pub addrs: Vec<Multiaddr>,
}

/// Decodes and verifies an SPR text (`spr:` + base64url, padding tolerated, surrounding space trimmed).
pub fn decode_spr(text: &str) -> Result<PeerRecord, SprError> {
    let body = text.trim().strip_prefix(SPR_PREFIX).ok_or(SprError::NotSpr)?;
    let bytes = multibase::Base::Base64Url
        .decode(body.trim_end_matches('='))
        .map_err(|err| SprError::Base64 { reason: err.to_string() })?;
    decode_envelope(&bytes)
}

/// Decodes a signed envelope, checks that it holds a peer record signed by its key, and decodes the record.
pub fn decode_envelope(bytes: &[u8]) -> Result<PeerRecord, SprError> {
    let (mut key, mut payload_type, mut payload, mut signature) = (&[][..], &[][..], &[][..], &[][..]);
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field().map_err(SprError::Envelope)? {
        match (field, value) {
            (1, Value::Bytes(b)) => key = b,
            (2, Value::Bytes(b)) => payload_type = b,
            (3, Value::Bytes(b)) => payload = b,
            (5, Value::Bytes(b)) => signature = b,
            _ => {}
        }
    }
    let key = PublicKey::try_decode_protobuf(key).map_err(|err| SprError::PublicKey { reason: err.to_string() })?;
    if payload_type != PEER_RECORD_PAYLOAD_TYPE {
        return Err(SprError::PayloadType { got: payload_type.to_vec() });
    }
    if !key.verify(&signed_bytes(payload_type, payload), signature) {
        return Err(SprError::BadSignature);
    }
    let record = decode_peer_record(payload)?;
    if record.peer != key.to_peer_id() {
        return Err(SprError::MismatchedPeer);
    }
    Ok(record)
}

/// Decodes a peer record payload (not its signature: see [`decode_envelope`]).
pub fn decode_peer_record(bytes: &[u8]) -> Result<PeerRecord, SprError> {
    let (mut peer, mut seq, mut addrs) = (&[][..], 0, Vec::new());
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field().map_err(SprError::Record)? {
        match (field, value) {
            (1, Value::Bytes(b)) => peer = b,
            (2, Value::Varint(v)) => seq = v,
            (3, Value::Bytes(info)) => {
                let mut address = &[][..];
                let mut inner = Reader::new(info);
                while let Some((field, value)) = inner.next_field().map_err(SprError::Record)? {
                    if let (1, Value::Bytes(b)) = (field, value) {
                        address = b;
                    }
                }
                let addr = Multiaddr::try_from(address.to_vec())
                    .map_err(|err| SprError::Multiaddr { position: addrs.len(), reason: err.to_string() })?;
                addrs.push(addr);
            }
            _ => {}
        }
    }
    let peer = PeerId::from_bytes(peer).map_err(|err| SprError::PeerId { reason: err.to_string() })?;
    Ok(PeerRecord { peer, seq, addrs })
}

/// Signs a peer record of `keypair`'s peer id with `seq` and `addrs`, and returns its `spr:` text. `None` only
/// when the key cannot sign (a key type without signing support).
pub fn encode_spr(keypair: &Keypair, seq: u64, addrs: &[Multiaddr]) -> Option<String> {
    let mut record = Writer::new();
    record.bytes(1, &keypair.public().to_peer_id().to_bytes()).varint(2, seq);
    for addr in addrs {
        let mut info = Writer::new();
        info.bytes(1, &addr.to_vec());
        record.bytes(3, &info.finish());
    }
    let payload = record.finish();
    let signature = keypair.sign(&signed_bytes(&PEER_RECORD_PAYLOAD_TYPE, &payload)).ok()?;
    let mut envelope = Writer::new();
    envelope
        .bytes(1, &keypair.public().encode_protobuf())
        .bytes(2, &PEER_RECORD_PAYLOAD_TYPE)
        .bytes(3, &payload)
        .bytes(5, &signature);
    let text = multibase::encode(multibase::Base::Base64Url, envelope.finish());
    // multibase prefixes base64url with 'u'.
    Some(format!("{SPR_PREFIX}{}", text.get(1..).unwrap_or_default()))
}

/// What an envelope's signature covers: the domain, payload type and payload, each prefixed with its length.
fn signed_bytes(payload_type: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(PEER_RECORD_DOMAIN.len() + payload_type.len() + payload.len() + 12);
    for part in [PEER_RECORD_DOMAIN.as_bytes(), payload_type, payload] {
        put_varint(&mut buf, part.len() as u64);
        buf.extend_from_slice(part);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair(seed: u8) -> Keypair {
        let secret = libp2p_identity::secp256k1::SecretKey::try_from_bytes([seed; 32]).expect("valid secret");
        libp2p_identity::secp256k1::Keypair::from(secret).into()
    }

    #[test]
    fn round_trip() {
        let key = keypair(7);
        let addrs: Vec<Multiaddr> =
            vec!["/ip4/127.0.0.1/tcp/8070".parse().expect("addr"), "/ip6/::1/udp/8090".parse().expect("addr")];
        let text = encode_spr(&key, 42, &addrs).expect("signs");
        assert!(text.starts_with("spr:") && !text.contains('='));
        let record = decode_spr(&text).expect("decodes");
        assert_eq!(record, PeerRecord { peer: key.public().to_peer_id(), seq: 42, addrs });
        assert_eq!(decode_spr(&format!("  {text}==\n")), Ok(record));
        let empty = encode_spr(&key, 0, &[]).expect("signs");
        assert_eq!(decode_spr(&empty).expect("decodes").addrs, vec![]);
    }

    #[test]
    fn refusals() {
        let key = keypair(9);
        let text = encode_spr(&key, 1, &["/ip4/10.0.0.1/tcp/1".parse().expect("addr")]).expect("signs");
        assert_eq!(decode_spr("hello"), Err(SprError::NotSpr));
        assert!(matches!(decode_spr("spr:!!"), Err(SprError::Base64 { .. })));
        assert!(matches!(decode_spr("spr:AAAA"), Err(SprError::Envelope(_) | SprError::PublicKey { .. })));
        let bytes = multibase::Base::Base64Url.decode(&text[4..]).expect("base64url");
        let encode = |bytes: &[u8]| format!("spr:{}", &multibase::encode(multibase::Base::Base64Url, bytes)[1..]);

        // Flipping the last byte breaks the signature.
        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(decode_spr(&encode(&tampered)), Err(SprError::BadSignature));

        // A record whose peer id is another key's, correctly signed by this key.
        let other = keypair(10).public().to_peer_id();
        let mut record = Writer::new();
        record.bytes(1, &other.to_bytes()).varint(2, 1);
        let payload = record.finish();
        let signature = key.sign(&signed_bytes(&PEER_RECORD_PAYLOAD_TYPE, &payload)).expect("signs");
        let mut envelope = Writer::new();
        envelope
            .bytes(1, &key.public().encode_protobuf())
            .bytes(2, &PEER_RECORD_PAYLOAD_TYPE)
            .bytes(3, &payload)
            .bytes(5, &signature);
        assert_eq!(decode_envelope(&envelope.finish()), Err(SprError::MismatchedPeer));

        // Another payload type.
        let mut envelope = Writer::new();
        envelope.bytes(1, &key.public().encode_protobuf()).bytes(2, &[0x03, 0x02]).bytes(3, &payload);
        assert_eq!(decode_envelope(&envelope.finish()), Err(SprError::PayloadType { got: vec![0x03, 0x02] }));
    }

    #[test]
    fn bad_records() {
        assert!(matches!(decode_peer_record(&[]), Err(SprError::PeerId { .. })));
        let peer = keypair(3).public().to_peer_id().to_bytes();
        let mut record = Writer::new();
        record.bytes(1, &peer).bytes(3, &[0x0a, 0x02, 0xff, 0xff]);
        assert!(matches!(decode_peer_record(&record.finish()), Err(SprError::Multiaddr { position: 0, .. })));
        let mut record = Writer::new();
        record.bytes(1, &peer).bytes(3, &[0x0a, 0x05]);
        assert!(matches!(decode_peer_record(&record.finish()), Err(SprError::Record(_))));
    }
}
