//! Erasure coding of a dataset: the interleaved (SteppedStrategy) layout of codex-facts §7 and a systematic
//! Reed–Solomon codec over GF(2^8) (`reed-solomon-erasure`).
//!
//! The layout is the original node's: `rounded = roundUp(blocks, K)`, `steps = rounded / K`, group `s` holds
//! the data blocks `s + i·steps` and the parity blocks `rounded + s + j·steps`; positions past the original
//! blocks are padding (zeros for coding, [`EMPTY_DIGEST`] as a tree leaf, never stored). The parity bytes are
//! NOT the original's: it uses Leopard over GF(2^16). Data blocks, layout and padding leaves are identical, so
//! an encoded dataset's first `original_blocks` leaves equal the original tree's, but parity blocks (and hence
//! the encoded tree root) are not interchangeable with a Nim node's.
//!
//! Pure: no I/O, no threads. The actors crate reads and writes the blocks.

pub mod codec;
pub mod layout;

pub use codec::ErasureCodec;
pub use layout::{ErasureLayout, ErasureParams};

use crate::chunker::DEFAULT_BLOCK_SIZE;
use crate::tree::Digest;
use thiserror::Error;

/// SHA-256 of the empty input: the tree leaf of a padding position (the digest inside the "empty CID",
/// codex-facts §2.2).
pub const EMPTY_DIGEST: Digest = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Which missing blocks of a group a decode must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Only the original data blocks (reading a file): parity stays missing.
    DataOnly,
    /// Every missing non-padding block, data and parity (repairing a slot).
    All,
}

/// Errors of the erasure parameters, layout and codec.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ErasureError {
    #[error("invalid erasure parameters K = {k}, M = {m}: {reason} (need K ≥ 2, M ≥ 1, K ≥ M and K + M ≤ 256)")]
    InvalidParams { k: u64, m: u64, reason: &'static str },
    #[error(
        "the dataset has {blocks} blocks but erasure coding with K = {needed} needs at least {needed}: \
         the minimum dataset size is K × blockSize ({min_bytes} bytes with {DEFAULT_BLOCK_SIZE}-byte blocks)",
        min_bytes = *needed as u128 * DEFAULT_BLOCK_SIZE as u128
    )]
    TooFewBlocks { blocks: u64, needed: u64 },
    #[error("a dataset of {blocks} blocks is too large to erasure code")]
    TooManyBlocks { blocks: u64 },
    #[error("a group needs {expected} shards (K + M), got {got}")]
    ShardCount { expected: usize, got: usize },
    #[error("shards must be non-empty and of one length: shard {position} is {len} bytes, shard 0 is {expected}")]
    ShardSize { position: usize, len: usize, expected: usize },
    #[error("only {have} of a group's shards are present; decoding needs at least K = {need}")]
    TooFewShards { have: usize, need: usize },
    #[error("reed-solomon codec: {0}")]
    Codec(#[from] reed_solomon_erasure::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{BLOCK_CODEC, cid_from_sha256, format_cid, sha256};

    #[test]
    fn empty_digest_is_sha256_of_nothing_and_the_empty_cid() {
        assert_eq!(EMPTY_DIGEST, sha256(&[]));
        assert_eq!(
            format_cid(&cid_from_sha256(BLOCK_CODEC, &EMPTY_DIGEST)),
            "zDxWB8EDDsokSpiTXNRpv1jS2LXjEdLgTiDfxFd7Eo8CSPKVj93r"
        );
    }

    #[test]
    fn too_few_blocks_message_names_the_minimum_size() {
        let text = ErasureError::TooFewBlocks { blocks: 2, needed: 3 }.to_string();
        assert!(text.contains("196608 bytes"), "{text}");
        assert!(text.contains("K × blockSize"), "{text}");
    }
}
