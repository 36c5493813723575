// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {RequestId, SlotId} from "./Requests.sol";

// The requests of each client and the slots of each host, enumerable (myRequests, mySlots).
abstract contract StateRetrieval {
    using EnumerableSet for EnumerableSet.Bytes32Set;

    mapping(address => EnumerableSet.Bytes32Set) private _requestsPerClient;
    mapping(address => EnumerableSet.Bytes32Set) private _slotsPerHost;

    function myRequests() public view returns (RequestId[] memory ids) {
        bytes32[] memory values = _requestsPerClient[msg.sender].values();
        assembly ("memory-safe") {
            ids := values
        }
    }

    function mySlots() public view returns (SlotId[] memory ids) {
        bytes32[] memory values = _slotsPerHost[msg.sender].values();
        assembly ("memory-safe") {
            ids := values
        }
    }

    function _addToMyRequests(address client, RequestId requestId) internal {
        _requestsPerClient[client].add(RequestId.unwrap(requestId));
    }

    function _addToMySlots(address host, SlotId slotId) internal {
        _slotsPerHost[host].add(SlotId.unwrap(slotId));
    }

    function _removeFromMyRequests(address client, RequestId requestId) internal {
        _requestsPerClient[client].remove(RequestId.unwrap(requestId));
    }

    function _removeFromMySlots(address host, SlotId slotId) internal {
        _slotsPerHost[host].remove(SlotId.unwrap(slotId));
    }
}
