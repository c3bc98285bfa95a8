"""EIP-3009 authorizations and their EIP-712 signatures, as a payer's wallet makes them.

The x402 SDK signs `TransferWithAuthorization` for real payments; these helpers exist so that
tests, the demo and the ledger can sign the other two message types (receive, cancel) and
hand-build payloads (expired, future, forged) the SDK would never produce.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Literal

from eth_account import Account

AuthorizationKind = Literal["TransferWithAuthorization", "ReceiveWithAuthorization"]

_AUTHORIZATION_FIELDS = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]
_CANCEL_FIELDS = [
    {"name": "authorizer", "type": "address"},
    {"name": "nonce", "type": "bytes32"},
]


@dataclass(frozen=True)
class Domain:
    """The token's EIP-712 domain; `name`/`version` are what x402 puts in `extra`."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True)
class Authorization:
    """A payer's permission to move `value` atomic units to `to` once, inside a time window."""

    from_address: str
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes

    @classmethod
    def new(
        cls,
        from_address: str,
        to: str,
        value: int,
        *,
        valid_for: int = 3600,
        valid_after: int = 0,
        nonce: bytes | None = None,
    ) -> Authorization:
        """Valid from `valid_after` until `valid_for` seconds from now, with a random nonce."""
        return cls(
            from_address=from_address,
            to=to,
            value=value,
            valid_after=valid_after,
            valid_before=int(time.time()) + valid_for,
            nonce=nonce if nonce is not None else os.urandom(32),
        )

    def message(self) -> dict[str, Any]:
        return {
            "from": self.from_address,
            "to": self.to,
            "value": self.value,
            "validAfter": self.valid_after,
            "validBefore": self.valid_before,
            "nonce": self.nonce,
        }

    def as_x402(self) -> dict[str, str]:
        """The `authorization` object of an x402 `exact` EVM payload (all strings)."""
        return {
            "from": self.from_address,
            "to": self.to,
            "value": str(self.value),
            "validAfter": str(self.valid_after),
            "validBefore": str(self.valid_before),
            "nonce": "0x" + self.nonce.hex(),
        }


def sign_authorization(
    private_key: str,
    authorization: Authorization,
    domain: Domain,
    kind: AuthorizationKind = "TransferWithAuthorization",
) -> bytes:
    """65-byte `r || s || v` signature over a transfer or receive authorization."""
    signed = Account.sign_typed_data(
        private_key,
        domain_data=domain.as_dict(),
        message_types={kind: _AUTHORIZATION_FIELDS},
        message_data=authorization.message(),
    )
    return bytes(signed.signature)


def sign_cancel(private_key: str, authorizer: str, nonce: bytes, domain: Domain) -> bytes:
    """65-byte signature over `CancelAuthorization(authorizer, nonce)`."""
    signed = Account.sign_typed_data(
        private_key,
        domain_data=domain.as_dict(),
        message_types={"CancelAuthorization": _CANCEL_FIELDS},
        message_data={"authorizer": authorizer, "nonce": nonce},
    )
    return bytes(signed.signature)


def split_signature(signature: bytes) -> tuple[int, bytes, bytes]:
    """`(v, r, s)` for the v/r/s overloads; accepts v as 0/1 or 27/28."""
    if len(signature) != 65:
        raise ValueError(f"expected a 65-byte signature, got {len(signature)} bytes")
    v = signature[64]
    return (v + 27 if v < 27 else v), signature[:32], signature[32:64]
