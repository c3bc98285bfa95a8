"""The wallet a payment header proves it speaks for, checked locally before any verification.

The limits step runs before the paywall verifies anything, so a header's `from` (or a
channel's `payer`) is only a claim: counted as the caller, a forged header naming someone
else's wallet would spend that wallet's rate budget. A wallet counts only when the header's
own signature recovers to it (an ECDSA recovery, no network):

- `exact`: the EIP-3009 `TransferWithAuthorization` signature, over the token domain the payer
  `accepted` (name, version, chain, asset), recovers to `authorization.from`, and the
  authorization has not expired;
- `batch-settlement`: the voucher's EIP-712 signature recovers to the channel's authorized
  signer (`payerAuthorizer`, else `payer`); that signer is the caller, since a config naming
  another wallet as `payer` is anyone's to write.

Anything else (v1 headers, which name no token domain; smart-wallet signatures, which only the
chain can check; an unreadable header) proves nothing, and the client address is the caller.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import coincurve
from eth_utils import keccak
from x402.mechanisms.evm.batch_settlement.utils import get_batch_settlement_eip712_domain
from x402.mechanisms.evm.utils import get_evm_chain_id

from claw402.payments.channels.lane import voucher_signer_of
from claw402.payments.codec import InvalidPayment, PresentedPayment, decode_payment

_TYPEHASH = keccak(
    text="TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,"
    "uint256 validBefore,bytes32 nonce)"
)
_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2
_ZERO = "0x" + "00" * 20


def proven_payer(header: str | PresentedPayment, now: float | None = None) -> str | None:
    """`w:<address>` (lower case) of the wallet whose signature the header (or the payment
    decoded from it) carries, or None."""
    if isinstance(header, PresentedPayment):
        payment = header
    else:
        try:
            payment = decode_payment(header)
        except InvalidPayment:
            return None
    if payment.accepted is None:
        return None
    try:
        if "authorization" in payment.inner:
            signer = _authorization_signer(payment, time.time() if now is None else now)
        else:
            signer = _voucher_signer(payment)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return None if signer is None else "w:" + signer


def _authorization_signer(payment: PresentedPayment, now: float) -> str | None:
    accepted = payment.accepted
    assert accepted is not None
    auth = payment.authorization
    if int(auth["validBefore"]) <= now:
        return None  # spent or expired: a copy of it off the chain proves nothing now
    extra = accepted.extra or {}
    separator = _token_separator(
        str(extra["name"]), str(extra["version"]), get_evm_chain_id(accepted.network),
        accepted.asset.lower(),
    )  # fmt: skip
    body = keccak(
        _TYPEHASH
        + _word(bytes.fromhex(auth["from"][2:]))
        + _word(bytes.fromhex(auth["to"][2:]))
        + int(auth["value"]).to_bytes(32, "big")
        + int(auth["validAfter"]).to_bytes(32, "big")
        + int(auth["validBefore"]).to_bytes(32, "big")
        + bytes.fromhex(auth["nonce"][2:])
    )
    claimed = auth["from"].lower()
    found = _recover(keccak(b"\x19\x01" + separator + body), payment.inner["signature"])
    return claimed if found == claimed else None


def _voucher_signer(payment: PresentedPayment) -> str | None:
    accepted = payment.accepted
    assert accepted is not None
    config: dict[str, Any] = payment.inner["channelConfig"]
    voucher: dict[str, Any] = payment.inner["voucher"]
    authorizer = str(config["payerAuthorizer"]).lower()
    wanted = str(config["payer"]).lower() if authorizer == _ZERO else authorizer
    separator = _voucher_separator(get_evm_chain_id(accepted.network))
    found = voucher_signer_of(
        separator, voucher["channelId"], int(voucher["maxClaimableAmount"]), voucher["signature"]
    )
    return wanted if found and "0x" + found.hex() == wanted else None


def _recover(digest: bytes, signature: str) -> str | None:
    """The address of a canonical 65-byte low-s signature over `digest` (else None: a smart
    wallet's longer signature is the chain's to check)."""
    raw = bytes.fromhex(signature[2:])
    if len(raw) != 65 or raw[64] not in (27, 28):
        return None
    if not 0 < int.from_bytes(raw[32:64], "big") <= _HALF_N:
        return None
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            raw[:64] + bytes([raw[64] - 27]), digest, hasher=None
        )
    except Exception:  # r out of range, no point on the curve: not a signature
        return None
    return "0x" + keccak(public.format(compressed=False)[1:])[-20:].hex()


def _word(address: bytes) -> bytes:
    return address.rjust(32, b"\x00")


@lru_cache(maxsize=256)
def _token_separator(name: str, version: str, chain_id: int, contract: str) -> bytes:
    """The token's EIP-712 domain separator (hashed here: a caller chooses the domain, and
    eth_account's general encoder costs far more than the recovery it would guard)."""
    address = bytes.fromhex(contract.removeprefix("0x"))
    if len(address) != 20:
        raise ValueError("asset is not an address")
    return keccak(
        _DOMAIN_TYPEHASH + keccak(text=name) + keccak(text=version)
        + chain_id.to_bytes(32, "big") + _word(address)
    )  # fmt: skip


def _voucher_separator(chain_id: int) -> bytes:
    domain = get_batch_settlement_eip712_domain(chain_id)
    return _token_separator(domain["name"], domain["version"], chain_id,
                            domain["verifyingContract"].lower())  # fmt: skip
