"""The SDK's web3 facilitator signer, with the chain calls done lean and receipts polled fast.

`FacilitatorWeb3Signer` builds a web3 contract object per call and goes through web3's
middleware (which re-fetches the chain id to validate every call): ~10 ms of Python for a
1 ms `eth_call` on anvil, several times per payment. `FastSigner` keeps the SDK class (its
key handling and EIP-712/EIP-1271 `verify_typed_data`) and reimplements the chain-facing
methods of the SDK's `FacilitatorEvmSigner` protocol over plain JSON-RPC, with ABI encoding
by eth_abi. Reverts still raise web3's `ContractLogicError` with the node's message, which
is what the SDK parses into reasons such as `invalid_exact_evm_nonce_already_used`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from eth_abi import decode, encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.batch_settlement.constants import BATCH_SETTLEMENT_ADDRESS
from x402.mechanisms.evm.constants import TX_STATUS_SUCCESS
from x402.mechanisms.evm.data_suffix import append_data_suffix
from x402.mechanisms.evm.types import TransactionReceipt

from claw402.facilitator.rpc import JsonRpc, RpcError

_ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
# The SDK's own limit: covers transferWithAuthorization and smart-wallet deploys (~410k).
SETTLE_GAS_LIMIT = 500_000
# A batch-settlement claim grows with its rows (a claim of 100 vouchers needs millions):
# calls to the escrow get the node's estimate plus a margin instead of the fixed limit.
_ESTIMATED_TARGETS = frozenset({BATCH_SETTLEMENT_ADDRESS.lower()})
_GAS_MARGIN = 1.25
_BALANCE_OF = keccak(text="balanceOf(address)")[:4]


class FastSigner(FacilitatorWeb3Signer):
    """A `FacilitatorEvmSigner` for one key on one chain; safe to share between threads.

    `poll_interval` is how often a settle asks for its receipt while it is not ready. (anvil
    with instant mining has it at the first ask; with interval mining or a real chain, web3's
    default 100 ms sleep would add up to 100 ms after the block lands.)
    """

    def __init__(
        self,
        private_key: str,
        rpc_url: str,
        *,
        poll_interval: float = 0.005,
        confirmation_timeout_seconds: float = 30.0,
    ) -> None:
        super().__init__(
            private_key, rpc_url, confirmation_timeout_seconds=confirmation_timeout_seconds
        )
        self.rpc = JsonRpc(rpc_url)
        self._key = Account.from_key(
            private_key if private_key.startswith("0x") else "0x" + private_key
        )
        self._poll_interval = poll_interval
        self._timeout = confirmation_timeout_seconds
        self._chain: int | None = None
        self._nonce: int | None = None
        self._nonce_guard = threading.Lock()

    # --- reads ---

    def get_chain_id(self) -> int:
        if self._chain is None:
            self._chain = int(self.rpc.call("eth_chainId"), 16)
        return self._chain

    def get_code(self, address: str) -> bytes:
        return _bytes(self.rpc.call("eth_getCode", to_checksum_address(address), "latest"))

    def get_balance(self, address: str, token_address: str) -> int:
        if not token_address or token_address == _ZERO_ADDRESS:
            return int(self.rpc.call("eth_getBalance", to_checksum_address(address), "latest"), 16)
        data = _BALANCE_OF + encode(["address"], [to_checksum_address(address)])
        return int.from_bytes(self._eth_call(token_address, data), "big")

    def read_contract(
        self, address: str, abi: list[dict[str, Any]], function_name: str, *args: Any
    ) -> Any:
        function = _function(abi, function_name, len(args))
        inputs = [_abi_type(item) for item in function.get("inputs", [])]
        outputs = [_abi_type(item) for item in function.get("outputs", [])]
        selector = keccak(text=f"{function_name}({','.join(inputs)})")[:4]
        raw = self._eth_call(address, selector + encode(inputs, list(args)))
        if not outputs:
            return None
        values = decode(outputs, raw)
        return values[0] if len(values) == 1 else list(values)

    def rpc_reachable(self) -> bool:
        """One cheap call: tells a dead RPC from a bad payment after a failed check."""
        try:
            self.rpc.call("eth_blockNumber")
        except Exception:
            return False
        return True

    # --- writes ---

    def write_contract(
        self,
        address: str,
        abi: list[dict[str, Any]],
        function_name: str,
        *args: Any,
        data_suffix: str | None = None,
    ) -> str:
        function = _function(abi, function_name, len(args))
        inputs = [_abi_type(item) for item in function.get("inputs", [])]
        selector = keccak(text=f"{function_name}({','.join(inputs)})")[:4]
        calldata = "0x" + (selector + encode(inputs, list(args))).hex()
        if data_suffix:
            calldata = append_data_suffix(calldata, data_suffix)
        return self._send(address, _bytes(calldata))

    def send_transaction(self, to: str, data: bytes) -> str:
        return self._send(to, data)

    def wait_for_transaction_receipt(self, tx_hash: str) -> TransactionReceipt:
        """Poll every `poll_interval`; raise TimeoutError (the SDK then answers
        `settlement_pending` with the hash instead of broadcasting again)."""
        if not tx_hash.startswith("0x"):
            tx_hash = "0x" + tx_hash
        deadline = time.monotonic() + self._timeout
        while True:
            receipt = self.rpc.call("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                return TransactionReceipt(
                    status=TX_STATUS_SUCCESS if int(receipt["status"], 16) == 1 else 0,
                    block_number=int(receipt["blockNumber"], 16),
                    tx_hash=tx_hash,
                    logs=[_log(entry) for entry in receipt.get("logs") or []],
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{tx_hash} not mined after {self._timeout} s")
            time.sleep(self._poll_interval)

    @property
    def web3(self) -> Web3:
        """For the SDK's receipt parsing (the batch-settlement `Settled` amount); not for calls."""
        return self._w3

    # --- internals ---

    def _eth_call(self, address: str, data: bytes) -> bytes:
        call = {"from": self.address, "to": to_checksum_address(address), "data": "0x" + data.hex()}
        try:
            return _bytes(self.rpc.call("eth_call", call, "latest"))
        except RpcError as exc:
            raise _as_revert(exc) from exc

    def _send(self, to: str, data: bytes) -> str:
        gas = SETTLE_GAS_LIMIT
        if to.lower() in _ESTIMATED_TARGETS:
            gas = self._estimate_gas(to, data)
        nonce = self._reserve_nonce()
        tx = {
            "to": to_checksum_address(to),
            "data": data,
            "value": 0,
            "nonce": nonce,
            "gas": gas,
            "gasPrice": int(self.rpc.call("eth_gasPrice"), 16),
            "chainId": self.get_chain_id(),
        }
        signed = self._key.sign_transaction(tx)
        try:
            return str(self.rpc.call("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex()))
        except Exception as exc:
            with self._nonce_guard:
                self._nonce = None  # re-read from the chain: never leave a nonce gap
            if isinstance(exc, RpcError):
                raise _as_revert(exc) from exc
            raise

    def _estimate_gas(self, to: str, data: bytes) -> int:
        call = {"from": self.address, "to": to_checksum_address(to), "data": "0x" + data.hex()}
        try:
            estimate = int(self.rpc.call("eth_estimateGas", call), 16)
        except RpcError as exc:
            raise _as_revert(exc) from exc
        return max(SETTLE_GAS_LIMIT, int(estimate * _GAS_MARGIN))

    def _reserve_nonce(self) -> int:
        with self._nonce_guard:
            pending = int(self.rpc.call("eth_getTransactionCount", self.address, "pending"), 16)
            nonce = pending if self._nonce is None else max(pending, self._nonce)
            self._nonce = nonce + 1
            return nonce


def _as_revert(exc: RpcError) -> Exception:
    """A node error as web3 would raise it, so the SDK's reason parsing applies."""
    if "revert" in exc.message.lower():
        data = exc.data if isinstance(exc.data, str) else None
        return ContractLogicError(exc.message, data=data)
    return exc


def _log(entry: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC log in web3's shape (bytes topics and data), so SDK event decoding applies."""
    return {
        **entry,
        "topics": [HexBytes(topic) for topic in entry.get("topics", [])],
        "data": HexBytes(entry.get("data", "0x")),
        "logIndex": int(entry.get("logIndex", "0x0"), 16),
        "blockNumber": int(entry.get("blockNumber", "0x0"), 16),
        "transactionIndex": int(entry.get("transactionIndex", "0x0"), 16),
    }


def _function(abi: list[dict[str, Any]], name: str, arity: int) -> dict[str, Any]:
    for entry in abi:
        if (
            entry.get("type") == "function"
            and entry.get("name") == name
            and len(entry.get("inputs", [])) == arity
        ):
            return entry
    raise ValueError(f"function {name} with {arity} arguments not in ABI")


def _abi_type(item: dict[str, Any]) -> str:
    kind = item["type"]
    if not kind.startswith("tuple"):
        return kind
    inner = ",".join(_abi_type(component) for component in item["components"])
    return f"({inner}){kind[len('tuple') :]}"


def _bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)
