// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MarketplaceConfig} from "./Configuration.sol";
import {Request, Ask, RequestId, SlotId, RequestState, SlotState, Requests} from "./Requests.sol";
import {Groth16Proof, IGroth16Verifier} from "./Groth16.sol";
import {Period} from "./Periods.sol";
import {Proofs} from "./Proofs.sol";
import {SlotReservations} from "./SlotReservations.sol";
import {StateRetrieval} from "./StateRetrieval.sol";
import {Endian} from "./Endian.sol";

// The storage marketplace: clients pay for storage requests split into slots; hosts reserve and fill slots with
// collateral and prove storage periodically; validators mark missed proofs and earn part of the slashed collateral.
// Same ABI as the original Codex Marketplace (marketplace-facts §4); see contracts/README.md for the differences.
contract Marketplace is SlotReservations, Proofs, StateRetrieval, Endian {
    using Requests for Request;
    using Requests for Ask;

    error Marketplace_RepairRewardPercentageTooHigh();
    error Marketplace_SlashPercentageTooHigh();
    error Marketplace_MaximumSlashingTooHigh();
    error Marketplace_InvalidExpiry();
    error Marketplace_InvalidMaxSlotLoss();
    error Marketplace_InsufficientSlots();
    error Marketplace_InsufficientDuration();
    error Marketplace_InsufficientProofProbability();
    error Marketplace_InsufficientCollateral();
    error Marketplace_InsufficientReward();
    error Marketplace_InvalidClientAddress();
    error Marketplace_RequestAlreadyExists();
    error Marketplace_InvalidSlot();
    error Marketplace_InvalidCid();
    error Marketplace_SlotNotFree();
    error Marketplace_InvalidSlotHost();
    error Marketplace_AlreadyPaid();
    error Marketplace_TransferFailed();
    error Marketplace_UnknownRequest();
    error Marketplace_InvalidState();
    error Marketplace_StartNotBeforeExpiry();
    error Marketplace_SlotNotAcceptingProofs();
    error Marketplace_ProofNotSubmittedByHost();
    error Marketplace_SlotIsFree();
    error Marketplace_ReservationRequired();
    error Marketplace_NothingToWithdraw();
    error Marketplace_DurationExceedsLimit();

    event StorageRequested(RequestId requestId, Ask ask, uint64 expiry);
    event RequestFulfilled(RequestId indexed requestId);
    event RequestFailed(RequestId indexed requestId);
    event RequestCancelled(RequestId indexed requestId);
    event SlotFilled(RequestId indexed requestId, uint64 slotIndex);
    event SlotFreed(RequestId indexed requestId, uint64 slotIndex);

    struct RequestContext {
        RequestState state;
        uint256 fundsToReturnToClient; // 0 once withdrawn
        uint64 slotsFilled;
        uint64 startedAt;
        uint64 endsAt;
        uint64 expiresAt;
    }

    struct Slot {
        SlotState state;
        RequestId requestId;
        uint64 filledAt;
        uint64 slotIndex;
        uint256 currentCollateral;
        address host;
    }

    struct ActiveSlot {
        Request request;
        uint64 slotIndex;
    }

    IERC20 private immutable _token;
    MarketplaceConfig private _config;

    mapping(RequestId => Request) private _requests;
    mapping(RequestId => RequestContext) internal _requestContexts;
    mapping(SlotId => Slot) internal _slots;

    constructor(
        MarketplaceConfig memory config,
        IERC20 token_,
        IGroth16Verifier verifier
    ) SlotReservations(config.reservations) Proofs(config.proofs, verifier) {
        _token = token_;
        uint256 repairReward = config.collateral.repairRewardPercentage;
        uint256 slash = config.collateral.slashPercentage;
        uint256 validatorReward = config.collateral.validatorRewardPercentage;
        if (repairReward > 100) revert Marketplace_RepairRewardPercentageTooHigh();
        if (slash > 100) revert Marketplace_SlashPercentageTooHigh();
        if (config.collateral.maxNumberOfSlashes * slash > 100) revert Marketplace_MaximumSlashingTooHigh();
        require(validatorReward <= 100, "validatorRewardPercentage > 100");
        // The repair reward is paid from forfeited collateral, of which the validators took their share.
        require(repairReward + validatorReward <= 100, "repair + validator reward percentages > 100");
        _config = config;
    }

    modifier requestIsKnown(RequestId requestId) {
        if (_requests[requestId].client == address(0)) revert Marketplace_UnknownRequest();
        _;
    }

    function configuration() public view returns (MarketplaceConfig memory) {
        return _config;
    }

    function token() public view returns (IERC20) {
        return _token;
    }

    // ---- clients ----

    function requestStorage(Request calldata request) public {
        if (request.client != msg.sender) revert Marketplace_InvalidClientAddress();
        RequestId id = Requests.id(request);
        if (_requests[id].client != address(0)) revert Marketplace_RequestAlreadyExists();
        Ask calldata ask = request.ask;
        if (request.expiry == 0 || request.expiry >= ask.duration) revert Marketplace_InvalidExpiry();
        if (ask.slots == 0) revert Marketplace_InsufficientSlots();
        if (ask.maxSlotLoss > ask.slots) revert Marketplace_InvalidMaxSlotLoss();
        if (ask.duration == 0) revert Marketplace_InsufficientDuration();
        if (ask.proofProbability == 0) revert Marketplace_InsufficientProofProbability();
        if (ask.collateralPerByte == 0) revert Marketplace_InsufficientCollateral();
        if (ask.pricePerBytePerSecond == 0) revert Marketplace_InsufficientReward();
        if (request.content.cid.length == 0) revert Marketplace_InvalidCid();
        if (ask.duration > _config.requestDurationLimit) revert Marketplace_DurationExceedsLimit();

        _requests[id] = request;
        RequestContext storage context = _requestContexts[id];
        uint64 expiresAt = uint64(block.timestamp) + request.expiry;
        context.endsAt = uint64(block.timestamp) + ask.duration;
        context.expiresAt = expiresAt;
        _addToMyRequests(request.client, id);

        uint256 amount = _requests[id].maxPrice();
        context.fundsToReturnToClient = amount;
        _transferFrom(msg.sender, amount);

        emit StorageRequested(id, ask, expiresAt);
    }

    function withdrawFunds(RequestId requestId) public {
        withdrawFunds(requestId, msg.sender);
    }

    function withdrawFunds(RequestId requestId, address withdrawRecipient) public requestIsKnown(requestId) {
        Request storage request = _requests[requestId];
        RequestContext storage context = _requestContexts[requestId];
        if (request.client != msg.sender) revert Marketplace_InvalidClientAddress();
        RequestState state = requestState(requestId);
        if (state != RequestState.Cancelled && state != RequestState.Failed && state != RequestState.Finished) {
            revert Marketplace_InvalidState();
        }
        uint256 amount = context.fundsToReturnToClient;
        if (amount == 0) revert Marketplace_NothingToWithdraw();

        if (state == RequestState.Cancelled) {
            context.state = RequestState.Cancelled;
            emit RequestCancelled(requestId);
            // The fills subtracted their payout up to endsAt; hosts of a cancelled request are paid up to expiry.
            amount += context.slotsFilled * _slotPayout(requestId, context.expiresAt, context.endsAt);
        } else if (state == RequestState.Failed) {
            // Hosts of a failed request are paid nothing.
            amount = request.maxPrice();
        } else {
            context.state = RequestState.Finished;
        }

        _removeFromMyRequests(request.client, requestId);
        context.fundsToReturnToClient = 0; // before the transfer (checks-effects-interactions)
        _transferTo(withdrawRecipient, amount);
    }

    // ---- hosts ----

    function fillSlot(
        RequestId requestId,
        uint64 slotIndex,
        Groth16Proof calldata proof
    ) public requestIsKnown(requestId) {
        Request storage request = _requests[requestId];
        if (slotIndex >= request.ask.slots) revert Marketplace_InvalidSlot();
        SlotId slotId = Requests.slotId(requestId, slotIndex);
        if (!_hasReservation(slotId, msg.sender)) revert Marketplace_ReservationRequired();

        Slot storage slot = _slots[slotId];
        slot.requestId = requestId;
        slot.slotIndex = slotIndex;
        SlotState state = slotState(slotId);
        if (state != SlotState.Free && state != SlotState.Repair) revert Marketplace_SlotNotFree();

        RequestContext storage context = _requestContexts[requestId];
        if (block.timestamp >= context.endsAt) revert Marketplace_StartNotBeforeExpiry();

        slot.host = msg.sender;
        slot.filledAt = uint64(block.timestamp);
        _startRequiringProofs(slotId);
        submitProof(slotId, proof);

        context.slotsFilled += 1;
        context.fundsToReturnToClient -= _slotPayout(requestId, block.timestamp, context.endsAt);

        uint256 collateral = request.ask.collateralPerSlot();
        uint256 deposit = collateral;
        if (state == SlotState.Repair) {
            deposit -= (collateral * _config.collateral.repairRewardPercentage) / 100;
        }
        slot.currentCollateral = collateral; // full collateral; the discount is paid out at the end
        slot.state = SlotState.Filled;
        _addToMySlots(msg.sender, slotId);
        emit SlotFilled(requestId, slotIndex);

        if (context.slotsFilled == request.ask.slots && context.state == RequestState.New) {
            context.state = RequestState.Started;
            context.startedAt = uint64(block.timestamp);
            emit RequestFulfilled(requestId);
        }

        _transferFrom(msg.sender, deposit);
    }

    function submitProof(SlotId id, Groth16Proof calldata proof) public requestIsKnown(_slots[id].requestId) {
        Slot storage slot = _slots[id];
        if (slot.host != msg.sender) revert Marketplace_ProofNotSubmittedByHost();
        uint256[] memory pubSignals = new uint256[](3);
        // entropy: the little-endian integer of the first 31 challenge bytes
        pubSignals[0] = uint256(_byteSwap(getChallenge(id) & ~bytes32(uint256(0xff))));
        // dataSetRoot: the little-endian integer of all 32 merkle root bytes
        pubSignals[1] = uint256(_byteSwap(_requests[slot.requestId].content.merkleRoot));
        pubSignals[2] = slot.slotIndex;
        _proofReceived(id, proof, pubSignals);
    }

    function freeSlot(SlotId slotId) public {
        freeSlot(slotId, msg.sender, msg.sender);
    }

    function freeSlot(SlotId slotId, address rewardRecipient, address collateralRecipient) public {
        Slot storage slot = _slots[slotId];
        if (slot.state == SlotState.Free) revert Marketplace_SlotIsFree();
        if (slot.host != msg.sender) revert Marketplace_InvalidSlotHost();

        SlotState state = slotState(slotId);
        if (state == SlotState.Paid) revert Marketplace_AlreadyPaid();

        if (state == SlotState.Finished) {
            _payoutSlot(slotId, rewardRecipient, collateralRecipient, true);
        } else if (state == SlotState.Cancelled) {
            _payoutSlot(slotId, rewardRecipient, collateralRecipient, false);
        } else if (state == SlotState.Failed) {
            // The collateral is forfeited; the slot only leaves the host's list.
            _removeFromMySlots(msg.sender, slotId);
        } else if (state == SlotState.Filled) {
            // The host abandons the slot and forfeits all of its collateral.
            _forciblyFreeSlot(slotId);
        }
    }

    /// Pays a host of a finished request (up to endsAt) or of a cancelled request (up to expiresAt).
    function _payoutSlot(
        SlotId slotId,
        address rewardRecipient,
        address collateralRecipient,
        bool finished
    ) private {
        Slot storage slot = _slots[slotId];
        RequestId requestId = slot.requestId;
        RequestContext storage context = _requestContexts[requestId];
        uint256 end = context.expiresAt;
        if (finished) {
            context.state = RequestState.Finished;
            _removeFromMyRequests(_requests[requestId].client, requestId);
            end = context.endsAt;
        }
        _removeFromMySlots(slot.host, slotId);
        uint256 payout = _slotPayout(requestId, slot.filledAt, end);
        uint256 collateral = slot.currentCollateral;
        slot.state = SlotState.Paid;
        _transferTo(rewardRecipient, payout);
        _transferTo(collateralRecipient, collateral);
    }

    /// The slot's payment for [start, end]; a zero-length interval pays 0 (a fill at exactly expiresAt).
    function _slotPayout(RequestId requestId, uint256 start, uint256 end) private view returns (uint256) {
        if (start > end) revert Marketplace_StartNotBeforeExpiry();
        return (end - start) * _requests[requestId].ask.pricePerSlotPerSecond();
    }

    // ---- validators ----

    function markProofAsMissing(SlotId slotId, uint64 period) public {
        if (slotState(slotId) != SlotState.Filled) revert Marketplace_SlotNotAcceptingProofs();
        _markProofAsMissing(slotId, Period.wrap(period));

        Slot storage slot = _slots[slotId];
        uint256 slashed = (_requests[slot.requestId].ask.collateralPerSlot() * _config.collateral.slashPercentage) /
            100;
        uint256 reward = (slashed * _config.collateral.validatorRewardPercentage) / 100;
        slot.currentCollateral -= slashed;
        if (missingProofs(slotId) >= _config.collateral.maxNumberOfSlashes) {
            _forciblyFreeSlot(slotId);
        }
        _transferTo(msg.sender, reward);
    }

    function canMarkProofAsMissing(SlotId slotId, uint64 period) public view {
        if (slotState(slotId) != SlotState.Filled) revert Marketplace_SlotNotAcceptingProofs();
        _canMarkProofAsMissing(slotId, Period.wrap(period));
    }

    /// Takes a filled slot away from its host, who forfeits the remaining collateral (it stays in the contract);
    /// the slot goes to Repair and the request fails when too many slots are empty.
    function _forciblyFreeSlot(SlotId slotId) internal {
        Slot storage slot = _slots[slotId];
        RequestId requestId = slot.requestId;
        RequestContext storage context = _requestContexts[requestId];
        context.fundsToReturnToClient += _slotPayout(requestId, slot.filledAt, context.endsAt);

        _removeFromMySlots(slot.host, slotId);
        _clearReservations(slotId);
        _resetMissingProofs(slotId);

        slot.state = SlotState.Repair;
        slot.filledAt = 0;
        slot.currentCollateral = 0;
        slot.host = address(0);
        context.slotsFilled -= 1;
        emit SlotFreed(requestId, slot.slotIndex);

        Ask storage ask = _requests[requestId].ask;
        if (ask.slots - context.slotsFilled > ask.maxSlotLoss && context.state == RequestState.Started) {
            context.state = RequestState.Failed;
            context.endsAt = uint64(block.timestamp) - 1;
            emit RequestFailed(requestId);
        }
    }

    // ---- reservations ----

    function _reservationContext(
        RequestId requestId,
        uint64 slotIndex,
        SlotId slotId
    ) internal view override returns (bool, uint256) {
        Request storage request = _requests[requestId];
        if (request.client == address(0) || slotIndex >= request.ask.slots) return (false, 0);
        SlotState state;
        if (RequestId.unwrap(_slots[slotId].requestId) == 0) {
            // A never-filled slot reads Free whatever the request's state: it is fillable only while New.
            if (requestState(requestId) != RequestState.New) return (false, 0);
            state = SlotState.Free;
        } else {
            state = slotState(slotId);
        }
        if (state != SlotState.Free && state != SlotState.Repair) return (false, 0);
        return (true, request.expiry);
    }

    // ---- views ----

    function getRequest(RequestId requestId) public view requestIsKnown(requestId) returns (Request memory) {
        return _requests[requestId];
    }

    function getHost(SlotId slotId) public view returns (address) {
        return _slots[slotId].host;
    }

    function currentCollateral(SlotId slotId) public view returns (uint256) {
        return _slots[slotId].currentCollateral;
    }

    function getActiveSlot(SlotId slotId) public view returns (ActiveSlot memory) {
        Slot storage slot = _slots[slotId];
        if (slot.state == SlotState.Free) revert Marketplace_SlotIsFree();
        return ActiveSlot(_requests[slot.requestId], slot.slotIndex);
    }

    function requestState(RequestId requestId) public view requestIsKnown(requestId) returns (RequestState) {
        RequestContext storage context = _requestContexts[requestId];
        RequestState state = context.state;
        if (state == RequestState.New && block.timestamp > context.expiresAt) {
            return RequestState.Cancelled;
        }
        if ((state == RequestState.New || state == RequestState.Started) && block.timestamp > context.endsAt) {
            return RequestState.Finished;
        }
        return state;
    }

    function slotState(SlotId slotId) public view override returns (SlotState) {
        Slot storage slot = _slots[slotId];
        if (RequestId.unwrap(slot.requestId) == 0) return SlotState.Free;
        if (slot.state == SlotState.Paid) return SlotState.Paid;
        RequestState state = requestState(slot.requestId);
        if (state == RequestState.Cancelled) return SlotState.Cancelled;
        if (state == RequestState.Finished) return SlotState.Finished;
        if (state == RequestState.Failed) return SlotState.Failed;
        return slot.state;
    }

    function requestEnd(RequestId requestId) public view returns (uint64) {
        RequestState state = requestState(requestId);
        RequestContext storage context = _requestContexts[requestId];
        if (state == RequestState.New || state == RequestState.Started) return context.endsAt;
        if (state == RequestState.Cancelled) return context.expiresAt;
        uint64 endsAt = context.endsAt;
        return block.timestamp < endsAt ? uint64(block.timestamp) : endsAt;
    }

    function requestExpiry(RequestId requestId) public view returns (uint64) {
        return _requestContexts[requestId].expiresAt;
    }

    function slotProbability(SlotId slotId) public view override returns (uint256) {
        Request storage request = _requests[_slots[slotId].requestId];
        return (request.ask.proofProbability * (256 - uint256(_downtimeBlocks()))) / 256;
    }

    // ---- token transfers ----

    function _transferFrom(address from, uint256 amount) private {
        if (amount == 0) return;
        _callToken(abi.encodeCall(IERC20.transferFrom, (from, address(this), amount)));
    }

    function _transferTo(address to, uint256 amount) private {
        if (amount == 0) return;
        _callToken(abi.encodeCall(IERC20.transfer, (to, amount)));
    }

    /// Calls the token and accepts empty return data (from a contract) or `true`. A revert from the token is passed
    /// on unchanged, as a plain call to it would; `false` or anything else is Marketplace_TransferFailed.
    function _callToken(bytes memory data) private {
        address tokenAddress = address(_token);
        (bool ok, bytes memory ret) = tokenAddress.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        bool accepted;
        if (ret.length == 0) {
            accepted = tokenAddress.code.length > 0;
        } else if (ret.length >= 32) {
            uint256 word;
            assembly ("memory-safe") {
                word := mload(add(ret, 32))
            }
            accepted = word == 1;
        }
        if (!accepted) revert Marketplace_TransferFailed();
    }
}
