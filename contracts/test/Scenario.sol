// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;
// A scenario driver for test/scenario.mjs: deploys TestToken, an accept-all verifier and the Marketplace, and acts
// as client and host (not built into out/).
import "../src/Marketplace.sol";
import "../src/TestToken.sol";
import "../src/Configuration.sol";
import "../src/Requests.sol";

contract AcceptAll is IGroth16Verifier {
    function verify(Groth16Proof calldata, uint256[] calldata) external pure returns (bool) { return true; }
}

contract Scenario {
    TestToken public token;
    Marketplace public market;
    RequestId[4] public ids;
    Groth16Proof internal proof;

    constructor() {
        token = new TestToken();
        MarketplaceConfig memory c = MarketplaceConfig(
            CollateralConfig(10, 5, 10, 20), ProofConfig(10, 5, 64, 67, "zk"), SlotReservationsConfig(3), 30 days);
        market = new Marketplace(c, token, new AcceptAll());
        token.mint(address(this), 1e30);
        token.approve(address(market), type(uint256).max);
    }

    function req(uint256 k, uint64 slots, uint64 maxSlotLoss) external {
        Request memory r;
        r.client = address(this);
        r.ask = Ask(1, 1, 1, slots, 1000, 1000, maxSlotLoss);
        r.content = Content(hex"01", bytes32(uint256(0x1234)));
        r.expiry = 100;
        r.nonce = bytes32(k);
        uint256 before = token.balanceOf(address(this));
        market.requestStorage(r);
        ids[k] = RequestId.wrap(keccak256(abi.encode(r)));
        require(before - token.balanceOf(address(this)) == uint256(slots) * 1000 * 1000, "maxPrice");
        require(market.requestState(ids[k]) == RequestState.New, "new");
        require(!market.canReserveSlot(ids[k], slots), "index");
        require(!market.canReserveSlot(RequestId.wrap(bytes32(uint256(7))), 0), "unknown");
    }

    function fill(uint256 k, uint64 idx) external {
        market.reserveSlot(ids[k], idx);
        market.fillSlot(ids[k], idx, proof);
    }

    function reserve(uint256 k, uint64 idx) external { market.reserveSlot(ids[k], idx); }
    function fillOnly(uint256 k, uint64 idx) external { market.fillSlot(ids[k], idx, proof); }
    function free(bytes32 slotId) external { market.freeSlot(SlotId.wrap(slotId)); }
    function withdraw(uint256 k) external { market.withdrawFunds(ids[k]); }
    function prove(bytes32 slotId) external { market.submitProof(SlotId.wrap(slotId), proof); }
    function balance() external view returns (uint256) { return token.balanceOf(address(this)); }
}
