//! CIDv1 with the Codex multicodecs, SHA-256 multihashes and base58btc text.
//!
//! Codex registers its own codecs in the private 0xCD00 range (reference codex-facts §2.1). All CIDs are
//! version 1; their text form is multibase base58btc (`z…`): manifests start `zDvZRwzm`, blocks `zDx`, tree
//! roots `zDz`.

use sha2::Digest as _;
use thiserror::Error;

pub use ::cid::Cid;

/// Multicodec of a manifest block.
pub const MANIFEST_CODEC: u64 = 0xCD01;
/// Multicodec of a data, parity or padding block (and of CodexTree leaves).
pub const BLOCK_CODEC: u64 = 0xCD02;
/// Multicodec of a dataset tree root (`treeCid`).
pub const ROOT_CODEC: u64 = 0xCD03;
/// Multicodec of a slot root.
pub const SLOT_ROOT_CODEC: u64 = 0xCD04;
/// Multicodec of a proving (verify) root.
pub const PROVING_ROOT_CODEC: u64 = 0xCD05;
/// Multicodec of a slot cell.
pub const SLOT_CELL_CODEC: u64 = 0xCD06;
/// Multihash code of SHA2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code `identity`: the digest is the value itself (slot and proving roots carry Poseidon2 field
/// elements this way, as 32 little-endian bytes).
pub const IDENTITY: u64 = 0x00;
/// Multihash code of a Poseidon2 sponge (rate 2) digest.
pub const POSEIDON2_SPONGE_R2: u64 = 0xCD10;
/// Multihash code of a Poseidon2 Merkle root over 2 KiB cells (the multihash of slot cell CIDs).
pub const POSEIDON2_MERKLE_2KB: u64 = 0xCD11;

/// A 32-byte SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// Errors parsing or interpreting a CID.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CidError {
    #[error("not a valid CID: {reason}")]
    Malformed { reason: String },
    #[error("CID {cid} is version 0; Codex uses CIDv1")]
    Version0 { cid: String },
    #[error("CID {cid} does not carry a SHA-256 digest")]
    NotSha256 { cid: String },
    #[error("CID {cid} has codec {codec:#x}, not a Codex codec")]
    NotCodex { cid: String, codec: u64 },
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Sha256Digest {
    sha2::Sha256::digest(data).into()
}

/// A CIDv1 of `codec` over the SHA-256 multihash `digest`.
#[allow(clippy::expect_used, reason = "a 32-byte digest always fits a 64-byte multihash")]
pub fn cid_from_sha256(codec: u64, digest: &Sha256Digest) -> Cid {
    let hash = multihash::Multihash::<64>::wrap(SHA2_256, digest)
        .expect("invariant: a 32-byte digest fits a 64-byte multihash");
    Cid::new_v1(codec, hash)
}

/// A CIDv1 of `codec` over a 32-byte digest with multihash code `hash_code` (for Poseidon2 values: 32 LE bytes).
#[allow(clippy::expect_used, reason = "a 32-byte digest always fits a 64-byte multihash")]
pub fn cid_from_digest32(codec: u64, hash_code: u64, digest: &[u8; 32]) -> Cid {
    let hash = multihash::Multihash::<64>::wrap(hash_code, digest)
        .expect("invariant: a 32-byte digest fits a 64-byte multihash");
    Cid::new_v1(codec, hash)
}

/// The 32-byte digest of `cid` when its multihash has code `hash_code` and 32 bytes, else `None`.
pub fn digest32(cid: &Cid, hash_code: u64) -> Option<[u8; 32]> {
    let hash = cid.hash();
    if hash.code() != hash_code {
        return None;
    }
    hash.digest().try_into().ok()
}

/// The CID of a block's bytes (already zero-padded to the block size).
pub fn block_cid(data: &[u8]) -> Cid {
    cid_from_sha256(BLOCK_CODEC, &sha256(data))
}

/// The CID of the empty block: `codex-block` over SHA-256 of zero bytes. Used for erasure-coding padding.
pub fn empty_block_cid() -> Cid {
    block_cid(&[])
}

/// The 32-byte SHA-256 digest inside `cid`.
pub fn sha256_digest(cid: &Cid) -> Result<Sha256Digest, CidError> {
    let hash = cid.hash();
    if hash.code() != SHA2_256 {
        return Err(CidError::NotSha256 { cid: format_cid(cid) });
    }
    hash.digest().try_into().map_err(|_| CidError::NotSha256 { cid: format_cid(cid) })
}

/// The Codex text form of `cid`: multibase base58btc (`z…`).
pub fn format_cid(cid: &Cid) -> String {
    cid.to_string_of_base(multibase::Base::Base58Btc).unwrap_or_else(|_| cid.to_string())
}

/// Parses a CID from text (any multibase; Codex writes base58btc). CIDv0 is refused: Codex uses CIDv1 only.
pub fn parse_cid(text: &str) -> Result<Cid, CidError> {
    let cid = Cid::try_from(text).map_err(|err| CidError::Malformed { reason: err.to_string() })?;
    if cid.version() == ::cid::Version::V0 {
        return Err(CidError::Version0 { cid: text.to_owned() });
    }
    Ok(cid)
}

/// Parses a CID from its binary form, rejecting trailing bytes.
pub fn cid_from_bytes(bytes: &[u8]) -> Result<Cid, CidError> {
    let mut reader = bytes;
    let cid = Cid::read_bytes(&mut reader).map_err(|err| CidError::Malformed { reason: err.to_string() })?;
    if !reader.is_empty() {
        return Err(CidError::Malformed { reason: format!("{} trailing bytes", reader.len()) });
    }
    Ok(cid)
}

/// Checks that `cid` is a Codex CID: a Codex codec (0xCD01..=0xCD06) over a SHA-256 digest. Every CID that
/// arrives from a peer must be one.
pub fn check_codex_cid(cid: &Cid) -> Result<(), CidError> {
    if !(MANIFEST_CODEC..=SLOT_CELL_CODEC).contains(&cid.codec()) {
        return Err(CidError::NotCodex { cid: format_cid(cid), codec: cid.codec() });
    }
    sha256_digest(cid).map(|_| ())
}

/// True when `cid` names a manifest.
pub fn is_manifest(cid: &Cid) -> bool {
    cid.codec() == MANIFEST_CODEC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_prefixes_match_the_original() {
        let cid = cid_from_sha256(MANIFEST_CODEC, &[0; 32]);
        assert_eq!(&cid.to_bytes()[..4], &[0x01, 0x81, 0x9a, 0x03]);
        let cid = cid_from_sha256(ROOT_CODEC, &[0; 32]);
        assert_eq!(&cid.to_bytes()[..4], &[0x01, 0x83, 0x9a, 0x03]);
    }

    #[test]
    fn empty_block_cid_vector() {
        assert_eq!(format_cid(&empty_block_cid()), "zDxWB8EDDsokSpiTXNRpv1jS2LXjEdLgTiDfxFd7Eo8CSPKVj93r");
    }

    #[test]
    fn padded_block_cid_vector() {
        let mut block = vec![0u8; 65536];
        block[..18].copy_from_slice(b"some file contents");
        assert_eq!(format_cid(&block_cid(&block)), "zDxWB8ED98hxJ51XwYaoQAwMdskCcmTaPR6Ce2wq88bjvjXRYuR9");
    }

    #[test]
    fn text_round_trip_and_errors() {
        let text = "zDzSvJTezk7bJNQqFq8k1iHXY84psNuUfZVusA5bBQQUSuyzDSVL";
        let cid = parse_cid(text).expect("valid");
        assert_eq!(format_cid(&cid), text);
        assert_eq!(cid_from_bytes(&cid.to_bytes()), Ok(cid));
        assert!(parse_cid("not-a-cid").is_err());
        assert!(parse_cid("").is_err());
        assert!(matches!(parse_cid("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"), Err(CidError::Version0 { .. })));
        let mut bytes = cid.to_bytes();
        bytes.push(0);
        assert!(cid_from_bytes(&bytes).is_err());
    }
}
