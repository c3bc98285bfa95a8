// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Multicall3 subset for the dev chain.
/// @notice anvil ships no Multicall3, yet the x402 SDK batches its failure diagnostics (and
/// ERC-6492 deploy-then-transfer simulations) through one at the canonical address
/// 0xcA11bde05977b3631167028862bE2a173976CA11. This contract implements the two entry points
/// clients use, with Multicall3's ABI and semantics, and is installed there on dev chains.
contract Multicall3 {
    struct Call {
        address target;
        bytes callData;
    }

    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    function tryAggregate(bool requireSuccess, Call[] calldata calls)
        public
        payable
        returns (Result[] memory returnData)
    {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (bool success, bytes memory ret) = calls[i].target.call(calls[i].callData);
            if (requireSuccess) {
                require(success, "Multicall3: call failed");
            }
            returnData[i] = Result(success, ret);
        }
    }

    function aggregate3(Call3[] calldata calls) public payable returns (Result[] memory returnData) {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (bool success, bytes memory ret) = calls[i].target.call(calls[i].callData);
            require(success || calls[i].allowFailure, "Multicall3: call failed");
            returnData[i] = Result(success, ret);
        }
    }
}
