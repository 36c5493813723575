// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {SlotReservationsConfig} from "./Configuration.sol";
import {RequestId, SlotId, Requests} from "./Requests.sol";

// Slot reservations (marketplace-facts §7): a host must reserve a slot before filling it; each slot takes at most
// maxReservations live reservations. Unlike the original, a reservation is only allowed for a slot that can
// actually be filled, and a reservation holds its place for a quarter of the request's expiry only: after that a
// new host may take the place (contracts/README.md, "Reservations").
abstract contract SlotReservations {
    using EnumerableSet for EnumerableSet.AddressSet;

    error SlotReservations_ReservationNotAllowed();

    event SlotReservationsFull(RequestId indexed requestId, uint64 slotIndex);

    /// A reservation is live for expiry / RESERVATION_TTL_PARTS seconds (at least one second) from its block.
    uint256 internal constant RESERVATION_TTL_PARTS = 4;

    uint8 private immutable _maxReservations;

    // The holders of each slot's reservations, live or expired (an expired holder may still fill until a new
    // reservation takes its place).
    mapping(SlotId => EnumerableSet.AddressSet) private _reservations;
    mapping(SlotId => mapping(address => uint256)) private _reservedAt;

    constructor(SlotReservationsConfig memory config) {
        _maxReservations = config.maxReservations;
    }

    /// Whether the slot exists and can be filled now, with the relative expiry of its request (0 when not
    /// reservable).
    function _reservationContext(
        RequestId requestId,
        uint64 slotIndex,
        SlotId slotId
    ) internal view virtual returns (bool reservable, uint256 expiry);

    function reserveSlot(RequestId requestId, uint64 slotIndex) public {
        SlotId slotId = Requests.slotId(requestId, slotIndex);
        (bool allowed, uint256 ttl, uint256 live) = _admits(requestId, slotIndex, slotId, msg.sender);
        if (!allowed) revert SlotReservations_ReservationNotAllowed();
        EnumerableSet.AddressSet storage reservations = _reservations[slotId];
        if (!reservations.contains(msg.sender) && reservations.length() >= _maxReservations) {
            // Full of holders but not of live ones: the expired holders give their places up.
            for (uint256 i = reservations.length(); i > 0; i--) {
                address holder = reservations.at(i - 1);
                if (!_isLive(slotId, holder, ttl)) reservations.remove(holder);
            }
        }
        reservations.add(msg.sender);
        _reservedAt[slotId][msg.sender] = block.timestamp;
        if (live + 1 == _maxReservations) {
            emit SlotReservationsFull(requestId, slotIndex);
        }
    }

    function canReserveSlot(RequestId requestId, uint64 slotIndex) public view returns (bool) {
        SlotId slotId = Requests.slotId(requestId, slotIndex);
        (bool allowed, , ) = _admits(requestId, slotIndex, slotId, msg.sender);
        return allowed;
    }

    /// Whether `caller` may reserve the slot now: it is reservable, the caller holds no live reservation of it and
    /// fewer than maxReservations are live. Also answers the reservations' lifetime and the live count.
    function _admits(
        RequestId requestId,
        uint64 slotIndex,
        SlotId slotId,
        address caller
    ) private view returns (bool allowed, uint256 ttl, uint256 live) {
        (bool reservable, uint256 expiry) = _reservationContext(requestId, slotIndex, slotId);
        if (!reservable) return (false, 0, 0);
        ttl = expiry / RESERVATION_TTL_PARTS;
        if (ttl == 0) ttl = 1;
        if (_isLive(slotId, caller, ttl)) return (false, ttl, 0);
        EnumerableSet.AddressSet storage reservations = _reservations[slotId];
        uint256 count = reservations.length();
        for (uint256 i = 0; i < count; i++) {
            if (_isLive(slotId, reservations.at(i), ttl)) live++;
        }
        allowed = live < _maxReservations;
    }

    function _isLive(SlotId slotId, address host, uint256 ttl) private view returns (bool) {
        return _reservations[slotId].contains(host) && block.timestamp < _reservedAt[slotId][host] + ttl;
    }

    function _hasReservation(SlotId slotId, address host) internal view returns (bool) {
        return _reservations[slotId].contains(host);
    }

    /// Drops a slot's reservations (called when the slot is forcibly freed).
    function _clearReservations(SlotId slotId) internal {
        _reservations[slotId].clear();
    }
}
