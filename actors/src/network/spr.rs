//! Signed peer records (`spr:` text) and bootstrap node strings.
//!
//! An SPR is a libp2p signed envelope (domain `libp2p-peer-record`, payload type 0x0301) holding a PeerRecord
//! {peer id, sequence number, addresses}; its text form is `spr:` followed by the envelope bytes in base64url
//! without padding, as the original node serves it on `GET /spr`.

use libp2p::core::PeerRecord;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use thiserror::Error;

/// Why a bootstrap node or SPR string was refused.
#[derive(Debug, Error)]
pub enum SprError {
    #[error("'{0}' is neither an spr: record nor a multiaddress ending in /p2p/<peer id>")]
    Unrecognised(String),
    #[error("the spr: record is not base64url: {0}")]
    Base64(String),
    #[error("the spr: record is not a signed peer record: {0}")]
    Envelope(String),
    #[error("the multiaddress '{0}' does not end in /p2p/<peer id>")]
    NoPeerId(String),
    #[error("the multiaddress '{text}' is invalid: {reason}")]
    Multiaddr { text: String, reason: String },
}

/// A peer to dial at start: its id and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapNode {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// Signs `addrs` into an SPR and returns its text form.
pub fn encode_spr(keypair: &Keypair, addrs: Vec<Multiaddr>) -> Option<String> {
    let record = PeerRecord::new_interop(keypair, addrs).ok()?;
    let bytes = record.into_signed_envelope().into_protobuf_encoding();
    let text = multibase::encode(multibase::Base::Base64Url, bytes);
    // multibase prefixes base64url with 'u'.
    Some(format!("spr:{}", &text[1..]))
}

/// Decodes and verifies an SPR text.
pub fn decode_spr(text: &str) -> Result<BootstrapNode, SprError> {
    use codex_protocol::spr::SprError as Decode;
    let record = codex_protocol::spr::decode_spr(text).map_err(|err| match err {
        Decode::NotSpr => SprError::Unrecognised(text.to_string()),
        Decode::Base64 { reason } => SprError::Base64(reason),
        other => SprError::Envelope(other.to_string()),
    })?;
    Ok(BootstrapNode { peer: record.peer, addrs: record.addrs })
}

/// Parses a `--bootstrap-node` value: an `spr:` record, or a multiaddress ending in `/p2p/<peer id>`.
pub fn parse_bootstrap(text: &str) -> Result<BootstrapNode, SprError> {
    let text = text.trim();
    if text.starts_with("spr:") {
        return decode_spr(text);
    }
    if !text.starts_with('/') {
        return Err(SprError::Unrecognised(text.to_string()));
    }
    let mut addr: Multiaddr = text
        .parse()
        .map_err(|e: libp2p::multiaddr::Error| SprError::Multiaddr { text: text.into(), reason: e.to_string() })?;
    match addr.pop() {
        Some(Protocol::P2p(peer)) => Ok(BootstrapNode { peer, addrs: vec![addr] }),
        _ => Err(SprError::NoPeerId(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spr_round_trip_and_bootstrap_forms() {
        let key = Keypair::generate_secp256k1();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/8070".parse().expect("addr");
        let spr = encode_spr(&key, vec![addr.clone()]).expect("spr");
        assert!(spr.starts_with("spr:") && !spr.contains('='));
        let node = decode_spr(&spr).expect("decodes");
        assert_eq!(node, BootstrapNode { peer: key.public().to_peer_id(), addrs: vec![addr.clone()] });
        assert_eq!(parse_bootstrap(&spr).expect("spr"), node);
        let with_id = format!("{addr}/p2p/{}", key.public().to_peer_id());
        assert_eq!(parse_bootstrap(&with_id).expect("multiaddr"), node);
        assert!(matches!(parse_bootstrap("/ip4/127.0.0.1/tcp/1"), Err(SprError::NoPeerId(_))));
        assert!(matches!(parse_bootstrap("hello"), Err(SprError::Unrecognised(_))));
        assert!(parse_bootstrap("spr:AAAA").is_err());
        // A record whose signature does not match is refused.
        let mut bytes = multibase::Base::Base64Url.decode(&spr[4..]).expect("b64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("spr:{}", &multibase::encode(multibase::Base::Base64Url, bytes)[1..]);
        assert!(decode_spr(&tampered).is_err());
    }
}
