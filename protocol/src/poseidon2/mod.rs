//! Poseidon2 over the BN254 scalar field, exactly as the original Codex hashes slots and storage proofs.
//!
//! The parameters are those of codex-storage/nim-poseidon2 (which the node pins), the circom circuit and the
//! Haskell reference (reference proof-vectors §1–2, codex-facts §4.3):
//!
//! - permutation: state width t = 3, S-box x^5, an initial external linear layer, 4 full rounds, 56 partial
//!   rounds, 4 full rounds; external matrix circ(2,1,1), internal matrix `[[2,1,1],[1,2,1],[1,1,3]]`;
//! - round constants: the **old** HorizenLabs set (`constants.rs`); the current HorizenLabs set gives other
//!   outputs, so crates built on it (zkhash, …) are not Codex-compatible;
//! - [`compress`]`(a, b, key)` = `permute(a, b, key)[0]`, the keyed 2-to-1 hash of the Merkle trees ([`merkle`]);
//! - [`sponge`]: rate 2, initial state (0, 0, 2^64 + 256·3 + 2), `10*` padding, output lane 0. The IV is the
//!   node's, *not* the one logos-storage/nim-poseidon2 master switched to in 2026;
//! - [`elements`]: bytes as 31-byte little-endian chunks, the last one closed by a 0x01 marker byte.
//!
//! This is the hot loop of slot building (a 64 KiB block is 32 cells × 34 permutations + 31 compressions), so
//! the permutation works on a `[F; 3]` in place, the round constants are compile-time Montgomery values, and
//! hashing bytes streams elements into the sponge without allocating.

mod constants;
pub mod merkle;

use std::sync::{Mutex, OnceLock, PoisonError};

use ark_ff::{AdditiveGroup, BigInt, BigInteger, Field, PrimeField};

pub use ark_bn254::Fr as F;
pub use merkle::{MerkleTree, merkle_root, verify_proof};

/// Bytes per full field element chunk when hashing bytes.
pub const CHUNK_BYTES: usize = 31;
/// Full rounds (half before, half after the partial rounds).
pub(crate) const FULL_ROUNDS: usize = 8;
/// Partial rounds.
const PARTIAL_ROUNDS: usize = 56;
/// The sponge's domain-separation IV for rate 2: 2^64 + 256·t + rate with t = 3.
pub(crate) const SPONGE_IV_RATE2: F = F::new(BigInt::new([256 * 3 + 2, 1, 0, 0]));

/// Parses a 64-digit big-endian hex constant at compile time.
#[allow(clippy::indexing_slicing, reason = "only evaluated at compile time: a bad index fails the build")]
const fn parse_hex(hex: &str) -> F {
    let digits = hex.as_bytes();
    assert!(digits.len() == 64, "a round constant has 64 hex digits");
    let mut limbs = [0u64; 4];
    let mut i = 0;
    while i < 64 {
        let d = digits[i];
        let nibble = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => panic!("round constant is not lowercase hex"),
        } as u64;
        // Digit i (from the most significant end) is bit position 4·(63 − i).
        let bit = 4 * (63 - i);
        limbs[bit / 64] |= nibble << (bit % 64);
        i += 1;
    }
    F::new(BigInt::new(limbs))
}

#[allow(clippy::indexing_slicing, reason = "only evaluated at compile time: a bad index fails the build")]
const fn parse_all<const N: usize>(hex: &[&str; N]) -> [F; N] {
    let mut out = [F::new(BigInt::new([0; 4])); N];
    let mut i = 0;
    while i < N {
        out[i] = parse_hex(hex[i]);
        i += 1;
    }
    out
}

pub(crate) static EXTERNAL: [F; 3 * FULL_ROUNDS] = parse_all(&constants::EXTERNAL);
pub(crate) static INTERNAL: [F; PARTIAL_ROUNDS] = parse_all(&constants::INTERNAL);

#[inline(always)]
fn sbox(x: &mut F) {
    let mut x2 = *x;
    x2.square_in_place();
    let mut x4 = x2;
    x4.square_in_place();
    *x *= x4;
}

/// The external matrix circ(2,1,1): add the sum of the lanes to each lane.
#[inline(always)]
fn external_mix(state: &mut [F; 3]) {
    let [x, y, z] = state;
    let sum = *x + *y + *z;
    *x += sum;
    *y += sum;
    *z += sum;
}

#[inline(always)]
fn full_round(state: &mut [F; 3], constants: &[F; 3]) {
    for (lane, c) in state.iter_mut().zip(constants) {
        *lane += c;
        sbox(lane);
    }
    external_mix(state);
}

/// The Poseidon2 permutation (t = 3, old HorizenLabs constants), in place.
pub fn permute(state: &mut [F; 3]) {
    external_mix(state);
    let mut rounds = EXTERNAL.as_chunks::<3>().0.iter();
    for constants in rounds.by_ref().take(FULL_ROUNDS / 2) {
        full_round(state, constants);
    }
    let [x, y, z] = state;
    for c in &INTERNAL {
        *x += c;
        sbox(x);
        let sum = *x + *y + *z;
        *x += sum;
        *y += sum;
        z.double_in_place();
        *z += sum;
    }
    for constants in rounds {
        full_round(state, constants);
    }
}

/// Keyed 2-to-1 compression: the first lane of `permute(a, b, key)`. Merkle trees use keys 0..=3.
pub fn compress(a: F, b: F, key: u64) -> F {
    let mut state = [a, b, F::from(key)];
    permute(&mut state);
    state[0]
}

/// The field element of up to 31 little-endian bytes (always below the modulus).
fn chunk_element(chunk: &[u8]) -> F {
    let mut bytes = [0u8; 32];
    for (dst, src) in bytes.iter_mut().zip(chunk.iter().take(CHUNK_BYTES)) {
        *dst = *src;
    }
    let mut limbs = [0u64; 4];
    for (limb, word) in limbs.iter_mut().zip(bytes.as_chunks::<8>().0) {
        *limb = u64::from_le_bytes(*word);
    }
    F::new(BigInt::new(limbs))
}

/// Calls `each` with the field elements of `bytes`: one per full 31-byte little-endian chunk, then the remaining
/// 0–30 bytes followed by a 0x01 marker byte (so there is always a last element; empty input gives just 1).
fn for_each_element(bytes: &[u8], mut each: impl FnMut(F)) {
    let chunks = bytes.chunks_exact(CHUNK_BYTES);
    let rest = chunks.remainder();
    for chunk in chunks {
        each(chunk_element(chunk));
    }
    let mut last = [0u8; CHUNK_BYTES];
    for (dst, src) in last.iter_mut().zip(rest) {
        *dst = *src;
    }
    if let Some(marker) = last.get_mut(rest.len()) {
        *marker = 1;
    }
    each(chunk_element(&last));
}

/// The field elements of `bytes` (31-byte little-endian chunks, then the rest with a 0x01 marker):
/// `bytes.len() / 31 + 1` elements.
pub fn elements(bytes: &[u8]) -> Vec<F> {
    let mut out = Vec::with_capacity(bytes.len() / CHUNK_BYTES + 1);
    for_each_element(bytes, |e| out.push(e));
    out
}

/// The rate-2 sponge, absorbing one element at a time.
#[derive(Debug, Clone)]
pub struct Sponge {
    state: [F; 3],
    /// True when lane 0 holds an element whose pair partner has not arrived yet.
    half: bool,
}

impl Default for Sponge {
    fn default() -> Self {
        Self::new()
    }
}

impl Sponge {
    /// A sponge in its initial state (0, 0, IV).
    pub fn new() -> Self {
        Self { state: [F::ZERO, F::ZERO, SPONGE_IV_RATE2], half: false }
    }

    /// Absorbs one element.
    pub fn absorb(&mut self, element: F) {
        if self.half {
            self.state[1] += element;
            permute(&mut self.state);
        } else {
            self.state[0] += element;
        }
        self.half = !self.half;
    }

    /// Pads with `10*` and returns lane 0.
    pub fn finish(mut self) -> F {
        self.absorb(F::ONE);
        if self.half {
            permute(&mut self.state);
        }
        self.state[0]
    }
}

/// The rate-2 sponge hash of field elements (Codex IV, `10*` padding).
pub fn sponge(elements: &[F]) -> F {
    let mut sponge = Sponge::new();
    for e in elements {
        sponge.absorb(*e);
    }
    sponge.finish()
}

/// The rate-2 sponge hash of `elements(bytes)`, without allocating.
pub fn sponge_bytes(bytes: &[u8]) -> F {
    let mut sponge = Sponge::new();
    for_each_element(bytes, |e| sponge.absorb(e));
    sponge.finish()
}

/// The hash of one cell: the sponge over its bytes.
pub fn cell_hash(cell: &[u8]) -> F {
    sponge_bytes(cell)
}

/// The cell hashes of `block`, or `None` unless `cell_size` is non-zero and divides its (non-zero) length.
pub fn cell_hashes(block: &[u8], cell_size: usize) -> Option<Vec<F>> {
    if cell_size == 0 || block.is_empty() || !block.len().is_multiple_of(cell_size) {
        return None;
    }
    Some(block.chunks_exact(cell_size).map(cell_hash).collect())
}

/// The digest of a block: the Merkle root over its cell hashes. `None` unless `cell_size` divides the length.
pub fn block_digest(block: &[u8], cell_size: usize) -> Option<F> {
    merkle_root(&cell_hashes(block, cell_size)?)
}

/// The digest of an all-zero block of `block_size` bytes, computed once per geometry. Slots are padded with
/// such blocks and empty erasure-coding padding blocks hash as one too.
pub fn zero_block_digest(block_size: usize, cell_size: usize) -> Option<F> {
    /// (block size, cell size) → digest; a handful of geometries at most.
    type Cache = Mutex<Vec<((usize, usize), F)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let cached = |key| {
        let entries = cache.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    };
    if let Some(digest) = cached((block_size, cell_size)) {
        return Some(digest);
    }
    if cell_size == 0 || block_size == 0 || !block_size.is_multiple_of(cell_size) {
        return None;
    }
    // All cells are equal: hash one and build the tree over copies of it.
    let cell = cell_hash(&vec![0u8; cell_size]);
    let digest = merkle_root(&vec![cell; block_size / cell_size])?;
    cache.lock().unwrap_or_else(PoisonError::into_inner).push(((block_size, cell_size), digest));
    Some(digest)
}

/// The 32-byte little-endian canonical form of `f` (the node's `toBytes`).
pub fn to_le_bytes(f: &F) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (dst, src) in out.iter_mut().zip(f.into_bigint().to_bytes_le()) {
        *dst = src;
    }
    out
}

/// The field element of 32 little-endian bytes, or `None` when the value is not below the modulus.
pub fn from_le_bytes(b: &[u8; 32]) -> Option<F> {
    let mut limbs = [0u64; 4];
    for (limb, word) in limbs.iter_mut().zip(b.as_chunks::<8>().0) {
        *limb = u64::from_le_bytes(*word);
    }
    F::from_bigint(BigInt::new(limbs))
}

/// The low `bits` bits (at most 64) of the canonical integer of `f`.
pub fn low_bits(f: &F, bits: u32) -> u64 {
    let low = f.into_bigint().0.first().copied().unwrap_or(0);
    if bits >= 64 { low } else { low & ((1u64 << bits) - 1) }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
