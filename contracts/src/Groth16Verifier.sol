// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {G1Point, G2Point, Fp2Element, Groth16Proof, IGroth16Verifier} from "./Groth16.sol";

// A Groth16 verifying key for a circuit with three public inputs ([entropy, dataSetRoot, slotIndex]), so `ic`
// holds four points.
struct VerifyingKey {
    G1Point alpha1;
    G2Point beta2;
    G2Point gamma2;
    G2Point delta2;
    G1Point[] ic;
}

/// Groth16 verifier over BN254 with the verifying key given at deployment: one compiled artifact serves any key
/// set (no Solidity compiler where a node runs). The key lives in immutables (code, not storage), which saves the
/// ~46k gas of cold storage reads a verification would otherwise pay.
///
/// `verify` returns false, never reverts, on: a wrong number of public inputs, an input not below the scalar
/// field order, a proof coordinate not below the base field order, a point the precompiles reject, or a failed
/// pairing check e(−A, B)·e(α, β)·e(vk_x, γ)·e(C, δ) = 1 with vk_x = IC0 + Σ inputᵢ·IC(i+1).
contract Groth16Verifier is IGroth16Verifier {
    error Groth16Verifier_InvalidKey();

    // BN254 base field (P) and scalar field (R).
    uint256 private constant P = 21888242871839275222246405745257275088696311157297823662689037894645226208583;
    uint256 private constant R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;

    // Gas handed to each precompile: enough for a valid call (EIP-1108 prices: ecAdd 150, ecMul 6000, pairing
    // 45000 + 34000 per pair), so an invalid point costs a bounded amount instead of all the gas left.
    uint256 private constant ADD_GAS = 1_000;
    uint256 private constant MUL_GAS = 10_000;
    uint256 private constant PAIRING_GAS = 200_000;

    uint256 private immutable alphaX;
    uint256 private immutable alphaY;
    uint256 private immutable betaXReal;
    uint256 private immutable betaXImag;
    uint256 private immutable betaYReal;
    uint256 private immutable betaYImag;
    uint256 private immutable gammaXReal;
    uint256 private immutable gammaXImag;
    uint256 private immutable gammaYReal;
    uint256 private immutable gammaYImag;
    uint256 private immutable deltaXReal;
    uint256 private immutable deltaXImag;
    uint256 private immutable deltaYReal;
    uint256 private immutable deltaYImag;
    uint256 private immutable ic0X;
    uint256 private immutable ic0Y;
    uint256 private immutable ic1X;
    uint256 private immutable ic1Y;
    uint256 private immutable ic2X;
    uint256 private immutable ic2Y;
    uint256 private immutable ic3X;
    uint256 private immutable ic3Y;

    constructor(VerifyingKey memory key) {
        if (key.ic.length != 4) revert Groth16Verifier_InvalidKey();
        alphaX = key.alpha1.x;
        alphaY = key.alpha1.y;
        (betaXReal, betaXImag, betaYReal, betaYImag) = _g2Words(key.beta2);
        (gammaXReal, gammaXImag, gammaYReal, gammaYImag) = _g2Words(key.gamma2);
        (deltaXReal, deltaXImag, deltaYReal, deltaYImag) = _g2Words(key.delta2);
        ic0X = key.ic[0].x;
        ic0Y = key.ic[0].y;
        ic1X = key.ic[1].x;
        ic1Y = key.ic[1].y;
        ic2X = key.ic[2].x;
        ic2Y = key.ic[2].y;
        ic3X = key.ic[3].x;
        ic3Y = key.ic[3].y;
    }

    function _g2Words(G2Point memory p) private pure returns (uint256, uint256, uint256, uint256) {
        return (p.x.real, p.x.imag, p.y.real, p.y.imag);
    }

    function verify(Groth16Proof calldata proof, uint256[] calldata pubSignals) external view returns (bool) {
        if (pubSignals.length != 3) return false;
        if (pubSignals[0] >= R || pubSignals[1] >= R || pubSignals[2] >= R) return false;
        if (!_inField(proof)) return false;

        (bool ok, uint256 x, uint256 y) = _mulAdd(ic0X, ic0Y, ic1X, ic1Y, pubSignals[0]);
        if (!ok) return false;
        (ok, x, y) = _mulAdd(x, y, ic2X, ic2Y, pubSignals[1]);
        if (!ok) return false;
        (ok, x, y) = _mulAdd(x, y, ic3X, ic3Y, pubSignals[2]);
        if (!ok) return false;

        // Four pairs of (G1, G2); G2 coordinates go to the precompile as (imag, real) (EIP-197).
        uint256[24] memory input;
        input[0] = proof.a.x;
        input[1] = (P - proof.a.y) % P;
        input[2] = proof.b.x.imag;
        input[3] = proof.b.x.real;
        input[4] = proof.b.y.imag;
        input[5] = proof.b.y.real;
        input[6] = alphaX;
        input[7] = alphaY;
        input[8] = betaXImag;
        input[9] = betaXReal;
        input[10] = betaYImag;
        input[11] = betaYReal;
        input[12] = x;
        input[13] = y;
        input[14] = gammaXImag;
        input[15] = gammaXReal;
        input[16] = gammaYImag;
        input[17] = gammaYReal;
        input[18] = proof.c.x;
        input[19] = proof.c.y;
        input[20] = deltaXImag;
        input[21] = deltaXReal;
        input[22] = deltaYImag;
        input[23] = deltaYReal;
        uint256[1] memory result;
        bool success;
        assembly {
            success := staticcall(PAIRING_GAS, 0x08, input, 768, result, 32)
        }
        return success && result[0] == 1;
    }

    function _inField(Groth16Proof calldata proof) private pure returns (bool) {
        return proof.a.x < P && proof.a.y < P && proof.c.x < P && proof.c.y < P && proof.b.x.real < P
            && proof.b.x.imag < P && proof.b.y.real < P && proof.b.y.imag < P;
    }

    // (ax, ay) + s·(bx, by) with the ecMul (0x07) and ecAdd (0x06) precompiles.
    function _mulAdd(uint256 ax, uint256 ay, uint256 bx, uint256 by, uint256 s)
        private
        view
        returns (bool, uint256, uint256)
    {
        (bool ok, bytes memory product) = address(0x07).staticcall{gas: MUL_GAS}(abi.encode(bx, by, s));
        if (!ok || product.length != 64) return (false, 0, 0);
        (uint256 px, uint256 py) = abi.decode(product, (uint256, uint256));
        (bool ok2, bytes memory sum) = address(0x06).staticcall{gas: ADD_GAS}(abi.encode(ax, ay, px, py));
        if (!ok2 || sum.length != 64) return (false, 0, 0);
        (uint256 sx, uint256 sy) = abi.decode(sum, (uint256, uint256));
        return (true, sx, sy);
    }
}
