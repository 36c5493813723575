//! Contract bindings, generated at compile time from the committed artifacts in `contracts/out` (ABI and
//! bytecode; `contracts/build.sh --check` keeps them in step with `contracts/src`), and conversions from the
//! protocol's ABI types.

use alloy::primitives::U256;
use codex_protocol::proofs::groth16::{self, AbiProof, AbiVerifyingKey};

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    Groth16Verifier,
    "../contracts/out/Groth16Verifier.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    Marketplace,
    "../contracts/out/Marketplace.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    TestToken,
    "../contracts/out/TestToken.json"
);

fn uint(word: &groth16::Uint256) -> U256 {
    U256::from_be_bytes(*word)
}

fn g1(p: &groth16::G1Point) -> Groth16Verifier::G1Point {
    Groth16Verifier::G1Point { x: uint(&p.x), y: uint(&p.y) }
}

fn fp2(e: &groth16::Fp2Element) -> Groth16Verifier::Fp2Element {
    Groth16Verifier::Fp2Element { real: uint(&e.real), imag: uint(&e.imag) }
}

fn g2(p: &groth16::G2Point) -> Groth16Verifier::G2Point {
    Groth16Verifier::G2Point { x: fp2(&p.x), y: fp2(&p.y) }
}

/// `From<&AbiProof>` for the `Groth16Proof` of each contract's bindings (each `sol!` module has its own copy of
/// the ABI structs).
macro_rules! proof_from_abi {
    ($($module:ident),*) => {$(
        impl From<&AbiProof> for $module::Groth16Proof {
            fn from(proof: &AbiProof) -> Self {
                let g1 = |p: &groth16::G1Point| $module::G1Point { x: uint(&p.x), y: uint(&p.y) };
                let fp2 = |e: &groth16::Fp2Element| $module::Fp2Element { real: uint(&e.real), imag: uint(&e.imag) };
                let g2 = |p: &groth16::G2Point| $module::G2Point { x: fp2(&p.x), y: fp2(&p.y) };
                Self { a: g1(&proof.a), b: g2(&proof.b), c: g1(&proof.c) }
            }
        }
    )*};
}
proof_from_abi!(Groth16Verifier, Marketplace);

impl From<&AbiVerifyingKey> for Groth16Verifier::VerifyingKey {
    fn from(key: &AbiVerifyingKey) -> Self {
        Self {
            alpha1: g1(&key.alpha1),
            beta2: g2(&key.beta2),
            gamma2: g2(&key.gamma2),
            delta2: g2(&key.delta2),
            ic: key.ic.iter().map(g1).collect(),
        }
    }
}

/// The public inputs as the contracts take them (`uint256[] pubSignals`).
pub fn pub_signals(public: &[groth16::Uint256; 3]) -> Vec<U256> {
    public.iter().map(uint).collect()
}
