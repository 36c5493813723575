// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// The ABI types of a Groth16 proof over BN254 and the verifier interface, as the original's `Groth16.sol`
// (marketplace-facts §1.6): the same struct layouts, so `fillSlot` and `submitProof` keep their selectors.

struct G1Point {
    uint256 x;
    uint256 y;
}

// An element of Fp2 = real + imag·u. In snarkjs JSON, real is c0 (the first coordinate), imag is c1.
struct Fp2Element {
    uint256 real;
    uint256 imag;
}

struct G2Point {
    Fp2Element x;
    Fp2Element y;
}

struct Groth16Proof {
    G1Point a;
    G2Point b;
    G1Point c;
}

interface IGroth16Verifier {
    function verify(Groth16Proof calldata proof, uint256[] calldata pubSignals) external view returns (bool);
}
