// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {SlotReservationsConfig} from "./Configuration.sol";
import {RequestId, SlotId, Requests} from "./Requests.sol";

// Slot reservations (marketplace-facts §7): a host must reserve a slot before filling it; each slot takes at most
// maxReservations reservations. Unlike the original, a reservation is only allowed for a slot that can actually be
// filled, and only to addresses inside the expanding window (§7.2, contracts/README.md).
abstract contract SlotReservations {
    using EnumerableSet for EnumerableSet.AddressSet;

    error SlotReservations_ReservationNotAllowed();

    event SlotReservationsFull(RequestId indexed requestId, uint64 slotIndex);

    /// At the start of a window only addresses that agree with the source address in their top WINDOW_BITS bits
    /// may reserve; every 1/WINDOW_STEPS of the request's expiry one bit less is required, so the window is fully
    /// open after WINDOW_BITS/WINDOW_STEPS (one half) of the expiry.
    uint256 internal constant WINDOW_BITS = 8;
    uint256 internal constant WINDOW_STEPS = 16;

    struct Window {
        bytes32 seedHash; // hash of the block before the one that opened the window
        uint64 start; // timestamp of the block that opened the window
    }

    uint8 private immutable _maxReservations;

    mapping(SlotId => EnumerableSet.AddressSet) private _reservations;
    // The window of a request's slots opens at the request's creation, whose timestamp the marketplace keeps.
    mapping(RequestId => bytes32) private _requestSeeds;
    // A slot that was forcibly freed gets a window of its own, opened at the forced free.
    mapping(SlotId => Window) private _slotWindows;

    constructor(SlotReservationsConfig memory config) {
        _maxReservations = config.maxReservations;
    }

    /// Whether the slot exists and can be filled now, with the creation time and the relative expiry of the
    /// request (both 0 when not reservable).
    function _reservationContext(
        RequestId requestId,
        uint64 slotIndex,
        SlotId slotId
    ) internal view virtual returns (bool reservable, uint256 createdAt, uint256 expiry);

    function reserveSlot(RequestId requestId, uint64 slotIndex) public {
        if (!canReserveSlot(requestId, slotIndex)) revert SlotReservations_ReservationNotAllowed();
        SlotId slotId = Requests.slotId(requestId, slotIndex);
        EnumerableSet.AddressSet storage reservations = _reservations[slotId];
        reservations.add(msg.sender);
        if (reservations.length() == _maxReservations) {
            emit SlotReservationsFull(requestId, slotIndex);
        }
    }

    function canReserveSlot(RequestId requestId, uint64 slotIndex) public view returns (bool) {
        SlotId slotId = Requests.slotId(requestId, slotIndex);
        (bool reservable, uint256 createdAt, uint256 expiry) = _reservationContext(requestId, slotIndex, slotId);
        if (!reservable) return false;
        EnumerableSet.AddressSet storage reservations = _reservations[slotId];
        uint256 count = reservations.length();
        if (count >= _maxReservations || reservations.contains(msg.sender)) return false;
        return _inWindow(requestId, slotIndex, slotId, createdAt, expiry, count, msg.sender);
    }

    function _inWindow(
        RequestId requestId,
        uint64 slotIndex,
        SlotId slotId,
        uint256 createdAt,
        uint256 expiry,
        uint256 index,
        address caller
    ) private view returns (bool) {
        Window storage own = _slotWindows[slotId];
        bytes32 seedHash = _requestSeeds[requestId];
        uint256 start = createdAt;
        if (own.start != 0) {
            seedHash = own.seedHash;
            start = own.start;
        }
        uint256 steps = ((block.timestamp - start) * WINDOW_STEPS) / expiry;
        if (steps >= WINDOW_BITS) return true;
        uint256 requiredBits = WINDOW_BITS - steps;
        uint160 source = uint160(uint256(keccak256(abi.encode(seedHash, requestId, slotIndex, index))));
        return (uint160(caller) ^ source) >> (160 - requiredBits) == 0;
    }

    function _hasReservation(SlotId slotId, address host) internal view returns (bool) {
        return _reservations[slotId].contains(host);
    }

    /// Opens the window of a new request's slots (called in the block that creates the request).
    function _openRequestWindow(RequestId requestId) internal {
        _requestSeeds[requestId] = blockhash(block.number - 1);
    }

    /// Drops a slot's reservations and opens a new window for it (called when the slot is forcibly freed).
    function _reopenSlot(SlotId slotId) internal {
        _reservations[slotId].clear();
        _slotWindows[slotId] = Window(blockhash(block.number - 1), uint64(block.timestamp));
    }
}
