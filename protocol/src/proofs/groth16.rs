//! Groth16 over BN254 for the sampling circuit: a development setup from a seed, proving, verifying, and the
//! proof in the marketplace's ABI form (marketplace-facts §1.6, §8.10).
//!
//! The setup here is a *development* setup: anyone who knows the seed can forge proofs. Every node of a testnet
//! that uses the same seed and parameters derives the same keys.

use ark_bn254::{Bn254, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{BigInteger, PrimeField};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, SerializationError};
use ark_snark::SNARK;
use ark_std::rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::{ProofError, ProofInput, ProofParams, SampleCircuit};
use crate::poseidon2::F;

/// The proving key.
pub type ProvingKey = ark_groth16::ProvingKey<Bn254>;
/// The verifying key (3 public inputs, 4 IC points).
pub type VerifyingKey = ark_groth16::VerifyingKey<Bn254>;
/// A Groth16 proof.
pub type Proof = ark_groth16::Proof<Bn254>;

type Groth16 = ark_groth16::Groth16<Bn254>;

/// Development keys for `params`, derived deterministically from `seed` (ChaCha20). Insecure: the seed is the
/// toxic waste.
pub fn setup(params: ProofParams, seed: [u8; 32]) -> Result<(ProvingKey, VerifyingKey), ProofError> {
    let mut rng = ChaCha20Rng::from_seed(seed);
    Ok(Groth16::circuit_specific_setup(SampleCircuit::setup(params), &mut rng)?)
}

/// Proves `input` (check it first with [`ProofInput::check`]: an input that does not satisfy the circuit gives
/// a proof that does not verify).
pub fn prove<R: RngCore + CryptoRng>(
    pk: &ProvingKey,
    params: ProofParams,
    input: ProofInput,
    rng: &mut R,
) -> Result<Proof, ProofError> {
    Ok(Groth16::prove(pk, SampleCircuit::prove(params, input), rng)?)
}

/// [`prove`] with a ChaCha20 stream seeded by `seed`: 32 bytes the caller takes from the operating system (the
/// proof's zero knowledge rests on them being secret and fresh).
pub fn prove_seeded(
    pk: &ProvingKey,
    params: ProofParams,
    input: ProofInput,
    seed: [u8; 32],
) -> Result<Proof, ProofError> {
    prove(pk, params, input, &mut ChaCha20Rng::from_seed(seed))
}

/// Verifies `proof` against the public inputs [entropy, dataSetRoot, slotIndex].
pub fn verify(vk: &VerifyingKey, public: &[F; 3], proof: &Proof) -> Result<bool, ProofError> {
    Ok(Groth16::verify(vk, public, proof)?)
}

/// The compressed canonical bytes of a key or proof (arkworks' `CanonicalSerialize`).
pub fn to_bytes<T: CanonicalSerialize>(value: &T) -> Result<Vec<u8>, SerializationError> {
    let mut out = Vec::with_capacity(value.compressed_size());
    value.serialize_compressed(&mut out)?;
    Ok(out)
}

/// A key or proof from [`to_bytes`], every point checked to be on the curve and in the subgroup.
pub fn from_bytes<T: CanonicalDeserialize>(bytes: &[u8]) -> Result<T, SerializationError> {
    T::deserialize_compressed(bytes)
}

/// The uncompressed bytes of a key, for a node's own key files: larger, but [`from_key_file_bytes`] loads them
/// without square roots.
pub fn to_key_file_bytes<T: CanonicalSerialize>(value: &T) -> Result<Vec<u8>, SerializationError> {
    let mut out = Vec::with_capacity(value.uncompressed_size());
    value.serialize_uncompressed(&mut out)?;
    Ok(out)
}

/// A key from [`to_key_file_bytes`], *without* the curve and subgroup checks: only for files this node wrote
/// itself or whose hash it checked (a bad key gives proofs that do not verify, never false verifications of
/// others' proofs, as long as the verifying key is checked).
pub fn from_key_file_bytes<T: CanonicalDeserialize>(bytes: &[u8]) -> Result<T, SerializationError> {
    T::deserialize_uncompressed_unchecked(bytes)
}

/// A uint256 as the ABI encodes it: 32 big-endian bytes.
pub type Uint256 = [u8; 32];

/// `G1Point { x, y }` of `Groth16.sol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct G1Point {
    pub x: Uint256,
    pub y: Uint256,
}

/// `Fp2Element { real, imag }`: real = c0, imag = c1 (the node's `converters.nim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fp2Element {
    pub real: Uint256,
    pub imag: Uint256,
}

/// `G2Point { x, y }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct G2Point {
    pub x: Fp2Element,
    pub y: Fp2Element,
}

/// `Groth16Proof { a, b, c }`, what `markProofAsMissing`/`submitProof` take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiProof {
    pub a: G1Point,
    pub b: G2Point,
    pub c: G1Point,
}

fn uint<P: PrimeField>(f: &P) -> Uint256 {
    let mut out = [0u8; 32];
    for (dst, src) in out.iter_mut().zip(f.into_bigint().to_bytes_be()) {
        *dst = src;
    }
    out
}

/// The point at infinity is (0, 0), as the EVM precompiles encode it.
fn g1(p: &G1Affine) -> G1Point {
    let (x, y) = p.xy().unwrap_or_default();
    G1Point { x: uint(&x), y: uint(&y) }
}

fn g2(p: &G2Affine) -> G2Point {
    let (x, y) = p.xy().unwrap_or_default();
    G2Point {
        x: Fp2Element { real: uint(&x.c0), imag: uint(&x.c1) },
        y: Fp2Element { real: uint(&y.c0), imag: uint(&y.c1) },
    }
}

impl From<&Proof> for AbiProof {
    fn from(proof: &Proof) -> Self {
        Self { a: g1(&proof.a), b: g2(&proof.b), c: g1(&proof.c) }
    }
}

/// `VerifyingKey { alpha1, beta2, gamma2, delta2, ic }`: the constructor argument of `Groth16Verifier.sol`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbiVerifyingKey {
    pub alpha1: G1Point,
    pub beta2: G2Point,
    pub gamma2: G2Point,
    pub delta2: G2Point,
    /// IC: one point per public input plus one (4 for the sampling circuit).
    pub ic: Vec<G1Point>,
}

impl From<&VerifyingKey> for AbiVerifyingKey {
    fn from(vk: &VerifyingKey) -> Self {
        Self {
            alpha1: g1(&vk.alpha_g1),
            beta2: g2(&vk.beta_g2),
            gamma2: g2(&vk.gamma_g2),
            delta2: g2(&vk.delta_g2),
            ic: vk.gamma_abc_g1.iter().map(g1).collect(),
        }
    }
}

/// The public inputs as the contract's `uint256[] pubSignals`.
pub fn abi_public(public: &[F; 3]) -> [Uint256; 3] {
    public.map(|f| uint(&f))
}
