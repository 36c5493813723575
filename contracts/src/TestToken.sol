// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// A test ERC20 ("TestToken", "TST", 18 decimals) that anyone can mint.
contract TestToken is ERC20 {
    constructor() ERC20("TestToken", "TST") {}

    function mint(address holder, uint256 amount) public {
        _mint(holder, amount);
    }
}
