"""Send signed transactions from a local key and wait for receipts at dev-chain speed.

web3 sleeps 100 ms between receipt polls by default; when a receipt is not ready at the first
ask (interval mining, a busy node) a 5 ms poll saves most of that. Reverts surface before
broadcast: web3 estimates gas
first, which raises `ContractLogicError` with the revert reason and burns nothing.
"""

from __future__ import annotations

from typing import Any, cast

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import TxParams, TxReceipt

RECEIPT_POLL_SECONDS = 0.005


class TransactionFailed(RuntimeError):
    """A mined transaction with status 0."""

    def __init__(self, receipt: TxReceipt) -> None:
        self.receipt = receipt
        super().__init__(f"transaction {receipt['transactionHash'].hex()} reverted")


def connect(rpc_url: str) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))


def transact(w3: Web3, sender: LocalAccount, call: ContractFunction, **params: Any) -> TxReceipt:
    """Send a contract call from `sender` and return its receipt."""
    return wait_for_receipt(w3, broadcast(w3, sender, build_call(sender, call, **params)))


def send(w3: Web3, sender: LocalAccount, tx: TxParams) -> TxReceipt:
    """Send a prepared transaction (e.g. a deployment) and return its receipt."""
    return wait_for_receipt(w3, broadcast(w3, sender, tx))


def broadcast(w3: Web3, sender: LocalAccount, tx: TxParams) -> HexBytes:
    """Sign `tx` locally, filling nonce, gas and fees if absent; return the hash at once.

    Pass explicit nonces to pipeline several transactions and wait for them afterwards.
    """
    tx = cast(TxParams, dict(tx))
    tx.setdefault("from", sender.address)
    tx.setdefault("chainId", w3.eth.chain_id)
    if "nonce" not in tx:
        tx["nonce"] = w3.eth.get_transaction_count(sender.address, "pending")
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas(tx)
    if "gasPrice" not in tx and "maxFeePerGas" not in tx:
        tx["gasPrice"] = w3.eth.gas_price
    signed = sender.sign_transaction(cast(dict[str, Any], tx))
    return w3.eth.send_raw_transaction(signed.raw_transaction)


def build_call(sender: LocalAccount, call: ContractFunction, **params: Any) -> TxParams:
    """A contract call as a transaction from `sender` (gas estimated: reverts raise here)."""
    return call.build_transaction(_base(sender, params))


def _base(sender: LocalAccount, params: dict[str, Any]) -> TxParams:
    return cast(TxParams, {"from": sender.address, **params})


def wait_for_receipt(
    w3: Web3,
    tx_hash: HexBytes | str,
    *,
    timeout: float = 30.0,
    poll_latency: float = RECEIPT_POLL_SECONDS,
) -> TxReceipt:
    """Wait for a receipt; raise `TransactionFailed` if the transaction reverted."""
    receipt = w3.eth.wait_for_transaction_receipt(
        tx_hash,  # type: ignore[arg-type]
        timeout=timeout,
        poll_latency=poll_latency,
    )
    if receipt["status"] != 1:
        raise TransactionFailed(receipt)
    return receipt
