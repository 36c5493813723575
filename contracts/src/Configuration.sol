// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// The marketplace configuration (marketplace-facts §2.1); field order and types as the original.

struct MarketplaceConfig {
    CollateralConfig collateral;
    ProofConfig proofs;
    SlotReservationsConfig reservations;
    uint64 requestDurationLimit; // seconds
}

struct CollateralConfig {
    uint8 repairRewardPercentage; // share of the collateral a repairing host does not have to deposit
    uint8 maxNumberOfSlashes; // missed proofs after which the slot is forcibly freed
    uint8 slashPercentage; // share of the full collateral taken per missed proof
    uint8 validatorRewardPercentage; // share of each slash paid to the validator that marked the proof missing
}

struct ProofConfig {
    uint64 period; // seconds per period
    uint64 timeout; // seconds after a period's end during which a missed proof can be marked
    uint8 downtime; // blocks during which no proof is required (pointer < downtime)
    uint8 downtimeProduct; // a prime; the pointer moves by period × downtimeProduct mod 256
    string zkeyHash; // SHA-256 of the proving-key archive
}

struct SlotReservationsConfig {
    uint8 maxReservations; // reservations per slot
}
