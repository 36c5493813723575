//! Codex formats and algorithms, byte-compatible with the original Nim node.
//!
//! Pure code only: no I/O, no async, no actix/tokio/redb. Everything here is a plain function or value type
//! with plain tests, so the actors crate can call it from any thread.
//!
//! - [`cid`]: CIDv1 with the Codex multicodecs and base58btc text.
//! - [`chunker`]: splits a byte stream into 64 KiB blocks, zero-padding the last one.
//! - [`tree`]: the SHA-256 CodexTree (keyed compression) and its inclusion proofs.
//! - [`manifest`]: the dataset manifest and its protobuf encoding.
//! - [`erasure`]: the interleaved erasure layout (groups, padding, parity, slots) and the GF(2^8) Reed–Solomon codec.
//! - [`blockexc`]: the block exchange wire messages and delivery verification.
//! - [`frame`]: the varint length prefix that frames blockexc messages on a stream.
//! - [`http`]: the REST API's `Range` and `Content-Disposition` header parsers.
//! - [`spr`]: signed peer records (`spr:` text), decoded and verified.
//! - [`poseidon2`]: Poseidon2 over BN254 as Codex uses it (old HorizenLabs constants): sponge, Merkle tree,
//!   block digests.
//! - [`proofs`] (feature `proofs`): the storage-proof sampling circuit (R1CS), its witness and Groth16 keys,
//!   proofs and verification.
//! - [`slots`]: slot layout, slot and verify trees and CIDs, the verifiable manifest, proof sampling.
//! - [`sales`]: the host's side of the marketplace as pure code: availability and reservation accounting, the
//!   slot queue, the expanding reservation window, the sale state machine.
//! - [`validator`]: the validator's rules: slot groups, the watch list's bound, when a period's marks are due.
//! - [`protobuf`]: the minimal protobuf wire reader/writer the encodings above are built on.

// Everything here may see bytes from peers: no indexing that could panic on them.
#![deny(clippy::indexing_slicing)]

pub mod blockexc;
pub mod chunker;
pub mod cid;
pub mod erasure;
pub mod frame;
pub mod http;
pub mod manifest;
pub mod poseidon2;
#[cfg(feature = "proofs")]
pub mod proofs;
pub mod protobuf;
pub mod sales;
pub mod slots;
pub mod spr;
pub mod tree;
pub mod validator;

pub use crate::cid::{Cid, CidError};
pub use chunker::{BlockAssembler, DEFAULT_BLOCK_SIZE};
pub use manifest::{Manifest, ManifestError};
pub use tree::{CodexProof, CodexTree, Digest, ProofError, TreeError};
