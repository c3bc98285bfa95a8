"""The x402 `batch-settlement` contracts on a dev chain, at the addresses the SDK expects.

The SDK hard-codes the canonical CREATE2 addresses of the escrow and its ERC-3009 deposit
collector. Locally we run our own contracts (contracts/BatchSettlement.sol,
contracts/ERC3009DepositCollector.sol) there: each constructor runs in an `eth_call`, which
returns the runtime code with its immutables filled in, and `anvil_setCode` puts that code at
the canonical address. Storage written by a constructor would not travel, so neither contract
keeps any: the escrow derives its EIP-712 domain from `address(this)`, the collector holds
the escrow's address as an immutable.
"""

from __future__ import annotations

from eth_abi import encode
from web3 import Web3
from x402.mechanisms.evm.batch_settlement.constants import (
    BATCH_SETTLEMENT_ADDRESS,
    ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
)

from claw402.chain.artifacts import load_artifact

__all__ = [
    "BATCH_SETTLEMENT_ADDRESS",
    "ERC3009_DEPOSIT_COLLECTOR_ADDRESS",
    "install_batch_settlement",
    "runtime_code",
]


def runtime_code(w3: Web3, init_code: str) -> str:
    """The code a deployment of `init_code` would leave on chain, without sending anything."""
    code = w3.eth.call({"data": init_code})  # type: ignore[typeddict-item]
    if not code:
        raise RuntimeError("the constructor returned no code")
    return "0x" + bytes(code).hex()


def install_batch_settlement(w3: Web3) -> None:
    """Put the escrow and the ERC-3009 collector at their canonical addresses, if absent."""
    settlement = load_artifact("BatchSettlement").bytecode
    collector = (
        load_artifact("ERC3009DepositCollector").bytecode
        + encode(["address"], [BATCH_SETTLEMENT_ADDRESS]).hex()
    )
    for address, init_code in (
        (BATCH_SETTLEMENT_ADDRESS, settlement),
        (ERC3009_DEPOSIT_COLLECTOR_ADDRESS, collector),
    ):
        if w3.eth.get_code(address):
            continue
        code = runtime_code(w3, init_code)
        w3.provider.make_request("anvil_setCode", [address, code])  # type: ignore[arg-type]
