// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// The request and slot types of the marketplace (marketplace-facts §1). Field order and types are part of the ABI
// and of the RequestId, so they match the original exactly.

type RequestId is bytes32;
type SlotId is bytes32;

struct Ask {
    uint256 proofProbability; // a proof roughly once every N periods
    uint256 pricePerBytePerSecond; // tokens per byte per second paid to hosts
    uint256 collateralPerByte; // collateral per byte each host deposits
    uint64 slots; // number of slots (hosts)
    uint64 slotSize; // bytes per slot
    uint64 duration; // seconds of storage, counted from request creation
    uint64 maxSlotLoss; // slots that may be empty at once after start before the request fails
}

struct Content {
    bytes cid; // raw CID bytes of the manifest
    bytes32 merkleRoot; // Poseidon2 dataset root, little-endian
}

struct Request {
    address client;
    Ask ask;
    Content content;
    uint64 expiry; // seconds after creation within which every slot must be filled (relative)
    bytes32 nonce;
}

enum RequestState {
    New, // waiting for slots to be filled
    Started, // all slots filled, proofs required
    Cancelled, // not all slots filled before expiry
    Finished, // duration elapsed
    Failed // too many slots lost
}

enum SlotState {
    Free, // never filled
    Filled, // a host holds the slot
    Finished, // the request finished
    Failed, // the request failed
    Paid, // the host was paid out
    Cancelled, // the request was cancelled
    Repair // forcibly freed, waiting for a new host
}

library Requests {
    /// RequestId = keccak256 of the ABI encoding of the whole request as one tuple.
    function id(Request calldata request) internal pure returns (RequestId) {
        return RequestId.wrap(keccak256(abi.encode(request)));
    }

    /// SlotId = keccak256(abi.encode(requestId, slotIndex)).
    function slotId(RequestId requestId, uint64 slotIndex) internal pure returns (SlotId) {
        return SlotId.wrap(keccak256(abi.encode(requestId, slotIndex)));
    }

    function collateralPerSlot(Ask storage ask) internal view returns (uint256) {
        return ask.collateralPerByte * ask.slotSize;
    }

    function pricePerSlotPerSecond(Ask storage ask) internal view returns (uint256) {
        return ask.pricePerBytePerSecond * ask.slotSize;
    }

    function maxPrice(Request storage request) internal view returns (uint256) {
        return uint256(request.ask.slots) * request.ask.duration * pricePerSlotPerSecond(request.ask);
    }
}
