"""The EIP-712 digest of a batch-settlement voucher, for the payer's signer and the lane.

A voucher is signed on every paid call and recovered on every one the gateway accepts, so
its digest is computed here from a domain separator eth_account computed once per domain,
and hashed with keccak from `safe-pysha3` (the C backend eth-hash supports; eth-hash's
default goes through pycryptodome's cffi wrappers, which cost most of a voucher's CPU),
falling back to eth_utils where it is missing. Both give the same bytes
(tests/payments/test_voucher_signer.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eth_account.messages import encode_typed_data
from x402.mechanisms.evm.batch_settlement.constants import VOUCHER_TYPES

__all__ = ["keccak256", "voucher_digest", "voucher_separator"]


def _backend() -> Callable[[bytes], bytes]:
    try:
        from sha3 import keccak_256  # safe-pysha3
    except ImportError:  # pragma: no cover - the dependency is declared
        from eth_utils import keccak

        return keccak

    def keccak256(data: bytes) -> bytes:
        return keccak_256(data).digest()

    return keccak256


keccak256 = _backend()
VOUCHER_TYPEHASH = keccak256(b"Voucher(bytes32 channelId,uint128 maxClaimableAmount)")


def voucher_separator(domain: Mapping[str, Any]) -> bytes:
    """The EIP-712 domain separator of `domain` (name, version, chainId, verifyingContract)."""
    message = {"channelId": bytes(32), "maxClaimableAmount": 0}
    signable = encode_typed_data(
        domain_data=dict(domain), message_types=VOUCHER_TYPES, message_data=message
    )
    return bytes(signable.header)


def voucher_digest(separator: bytes, channel_id: bytes, amount: int) -> bytes:
    """What a voucher's signature signs: channel id (32 bytes) and cumulative amount."""
    body = keccak256(VOUCHER_TYPEHASH + channel_id + amount.to_bytes(32, "big"))
    return keccak256(b"\x19\x01" + separator + body)
