// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IERC3009Receive {
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external;
}

/// @title ERC3009DepositCollector: moves a payer's EIP-3009 deposit into BatchSettlement.
/// @notice The payer signs `receiveWithAuthorization(to = this collector)` with the nonce
/// keccak256(abi.encode(channelId, salt)), as the x402 SDK's client does; `collectorData` is
/// abi.encode(validAfter, validBefore, salt, signature). Only the settlement contract may call
/// `collect`, and it supplies the channel id it computed itself, so a signature seen in the
/// mempool can neither be redirected to another channel nor pulled by anyone else.
/// @dev The settlement address is an immutable: it lives in the runtime code and survives the
/// copy to the canonical address (anvil_setCode), where storage would not.
contract ERC3009DepositCollector {
    address public immutable settlement;

    error OnlySettlement();
    error TokenTransferFailed();

    constructor(address settlement_) {
        settlement = settlement_;
    }

    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata data)
        external
    {
        if (msg.sender != settlement) revert OnlySettlement();
        (uint256 validAfter, uint256 validBefore, uint256 salt, bytes memory signature) =
            abi.decode(data, (uint256, uint256, uint256, bytes));
        bytes32 nonce = keccak256(abi.encode(channelId, salt));
        IERC3009Receive(token).receiveWithAuthorization(
            payer, address(this), amount, validAfter, validBefore, nonce, signature
        );
        (bool ok, bytes memory ret) =
            token.call(abi.encodeWithSignature("transfer(address,uint256)", settlement, amount));
        if (!ok || (ret.length > 0 && !abi.decode(ret, (bool)))) revert TokenTransferFailed();
    }
}
