// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Time is divided into periods of a fixed number of seconds, aligned to the Unix epoch (marketplace-facts §5.1).

type Period is uint64;

abstract contract Periods {
    error Periods_InvalidSecondsPerPeriod();

    uint64 internal immutable _secondsPerPeriod;

    constructor(uint64 secondsPerPeriod) {
        if (secondsPerPeriod == 0) revert Periods_InvalidSecondsPerPeriod();
        _secondsPerPeriod = secondsPerPeriod;
    }

    function _periodOf(uint256 timestamp) internal view returns (Period) {
        return Period.wrap(uint64(timestamp / _secondsPerPeriod));
    }

    function _blockPeriod() internal view returns (Period) {
        return _periodOf(block.timestamp);
    }

    function _periodEnd(Period period) internal view returns (uint256) {
        return (uint256(Period.unwrap(period)) + 1) * _secondsPerPeriod;
    }

    function _isAfter(Period a, Period b) internal pure returns (bool) {
        return Period.unwrap(a) > Period.unwrap(b);
    }
}
