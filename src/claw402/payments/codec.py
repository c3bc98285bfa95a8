"""Read a payment header into a checked `PresentedPayment`; anything unreadable is `InvalidPayment`.

Both wire versions are accepted: v2 `PAYMENT-SIGNATURE` (a `PaymentPayload` with the
requirements the payer `accepted`) and v1 `X-PAYMENT` (`scheme`/`network` at the top level).
The `exact` EIP-3009 payload and the v2 `batch-settlement` channel payloads (`deposit`,
`voucher`, `refund`) are understood; their fields are checked here so that no malformed value
reaches the claim table, the channel storage or the facilitator. Decoding never raises anything
but `InvalidPayment`: a header is client input, and client input must not produce a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from x402.schemas import PaymentPayload, PaymentRequirements
from x402.schemas.v1 import PaymentPayloadV1

if TYPE_CHECKING:
    from claw402.tenant_api.call import TenantCall

MAX_HEADER_BYTES = 8192  # a real payment header is ~1.5 KB; more is garbage or an attack

V2_HEADER = "payment-signature"
V1_HEADER = "x-payment"

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_UINT = re.compile(r"^[0-9]{1,78}$")
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
# The x402 `payment-identifier` extension (spec: extensions/payment-identifier). Mirrored here
# because importing `x402.extensions` pulls in every extension and needs `jsonschema`.
PAYMENT_IDENTIFIER = "payment-identifier"
_PAYMENT_ID = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_SIGNATURE = re.compile(r"^0x(?:[0-9a-fA-F]{2}){65,}$")
_AUTHORIZATION = {
    "from": _ADDRESS,
    "to": _ADDRESS,
    "value": _UINT,
    "validAfter": _UINT,
    "validBefore": _UINT,
    "nonce": _BYTES32,
}


CHANNEL_SCHEME = "batch-settlement"
_CHANNEL_PAYLOADS = ("deposit", "voucher", "refund")
_CHANNEL_CONFIG = {
    "payer": _ADDRESS,
    "payerAuthorizer": _ADDRESS,
    "receiver": _ADDRESS,
    "receiverAuthorizer": _ADDRESS,
    "token": _ADDRESS,
    "salt": _BYTES32,
}
_VOUCHER = {
    "channelId": _BYTES32,
    "maxClaimableAmount": _UINT,
    "signature": re.compile(r"^0x[0-9a-fA-F]*$"),
}


class InvalidPayment(ValueError):
    """The payment header cannot be read; answered 400 `invalid_payment`."""


@dataclass(frozen=True, slots=True)
class PresentedPayment:
    """A well-formed payment as the caller sent it (not yet matched, claimed or verified)."""

    version: int
    scheme: str
    network: str
    accepted: PaymentRequirements | None  # what a v2 payer agreed to; v1 carries none
    inner: dict[str, Any]  # {"authorization": {...}, "signature": "0x..."}
    payload: PaymentPayload | None  # the v2 payload as sent (None for v1)
    payment_id: str | None
    digest: str  # sha256 of the canonical payload: "same payment" for idempotency

    @property
    def authorization(self) -> dict[str, str]:
        return self.inner["authorization"]

    @property
    def payer(self) -> str:
        return self.authorization["from"]

    @property
    def nonce(self) -> str:
        return self.authorization["nonce"].lower()


def payment_header(headers: Mapping[str, str]) -> str | None:
    """The raw payment header (v2 `PAYMENT-SIGNATURE` first, then v1 `X-PAYMENT`), if any.

    The wire version is read from the decoded JSON, not from the header's name.
    """
    value = headers.get(V2_HEADER)
    return value if value is not None else headers.get(V1_HEADER)


def decode_once(call: TenantCall, value: str) -> PresentedPayment:
    """`decode_payment(value)`, kept on the call: the limits step and the paywall read the
    same header of one request."""
    found = call.payment
    if not isinstance(found, PresentedPayment):
        found = call.payment = decode_payment(value)
    return found


def decode_payment(value: str) -> PresentedPayment:
    if len(value) > MAX_HEADER_BYTES:
        raise InvalidPayment(
            f"payment header is {len(value)} bytes; the limit is {MAX_HEADER_BYTES}"
        )
    try:
        raw = base64.b64decode(value.strip(), validate=True)
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidPayment("payment header is not base64-encoded JSON") from None
    if not isinstance(data, dict):
        raise InvalidPayment("payment header must encode a JSON object")
    version = data.get("x402Version")
    if version == 2 and type(version) is int:
        return _decode_v2(data)
    if version == 1 and type(version) is int:
        return _decode_v1(data)
    raise InvalidPayment(f"x402Version must be 1 or 2, got {version!r}")


def _decode_v2(data: dict[str, Any]) -> PresentedPayment:
    try:
        payload = PaymentPayload.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayment(f"not an x402 v2 payment: {_summary(exc)}") from None
    payment_id = _payment_id(payload)
    return PresentedPayment(
        version=2,
        scheme=payload.accepted.scheme,
        network=payload.accepted.network,
        accepted=payload.accepted,
        inner=(
            _check_channel_inner(payload.payload)
            if payload.accepted.scheme == CHANNEL_SCHEME
            else _check_inner(payload.payload)
        ),
        payload=payload,
        payment_id=payment_id,
        digest=_digest(data),
    )


def _decode_v1(data: dict[str, Any]) -> PresentedPayment:
    try:
        payload = PaymentPayloadV1.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayment(f"not an x402 v1 payment: {_summary(exc)}") from None
    return PresentedPayment(
        version=1,
        scheme=payload.scheme,
        network=payload.network,
        accepted=None,
        inner=_check_inner(payload.payload),
        payload=None,
        payment_id=None,
        digest=_digest(data),
    )


def _check_inner(inner: dict[str, Any]) -> dict[str, Any]:
    authorization = inner.get("authorization")
    if not isinstance(authorization, dict):
        raise InvalidPayment("payload.authorization must be an EIP-3009 authorization object")
    bad = [
        name
        for name, pattern in _AUTHORIZATION.items()
        if not isinstance(authorization.get(name), str) or not pattern.match(authorization[name])
    ]
    if bad:
        raise InvalidPayment(f"payload.authorization: malformed {', '.join(bad)}")
    signature = inner.get("signature")
    if not isinstance(signature, str) or not _SIGNATURE.match(signature):
        raise InvalidPayment("payload.signature must be 0x-prefixed hex of at least 65 bytes")
    return inner


def _check_channel_inner(inner: dict[str, Any]) -> dict[str, Any]:
    kind = inner.get("type")
    if kind not in _CHANNEL_PAYLOADS:
        raise InvalidPayment(f"payload.type must be one of {', '.join(_CHANNEL_PAYLOADS)}")
    config, voucher = inner.get("channelConfig"), inner.get("voucher")
    if not isinstance(config, dict) or not isinstance(voucher, dict):
        raise InvalidPayment("payload.channelConfig and payload.voucher must be objects")
    bad = [n for n, p in _CHANNEL_CONFIG.items() if not _matches(config.get(n), p)]
    bad += [f"voucher.{n}" for n, p in _VOUCHER.items() if not _matches(voucher.get(n), p)]
    if not isinstance(config.get("withdrawDelay"), int):
        bad.append("withdrawDelay")
    deposit = inner.get("deposit")
    if kind == "deposit" and not (
        isinstance(deposit, dict) and _matches(deposit.get("amount"), _UINT)
    ):
        bad.append("deposit.amount")
    if kind == "refund" and "amount" in inner and not _matches(inner["amount"], _UINT):
        bad.append("amount")
    if bad:
        raise InvalidPayment(f"payload ({kind}): malformed {', '.join(bad)}")
    return inner


def _matches(value: object, pattern: re.Pattern[str]) -> bool:
    return isinstance(value, str) and pattern.match(value) is not None


def _payment_id(payload: PaymentPayload) -> str | None:
    """The `payment-identifier` id, if the payer set one; a malformed id is refused."""
    extension = (payload.extensions or {}).get(PAYMENT_IDENTIFIER)
    info = extension.get("info") if isinstance(extension, dict) else None
    payment_id = info.get("id") if isinstance(info, dict) else None
    if payment_id is None:
        return None
    if not isinstance(payment_id, str) or not _PAYMENT_ID.match(payment_id):
        raise InvalidPayment("payment-identifier id must be 16-128 characters of A-Z a-z 0-9 _ -")
    return payment_id


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _summary(exc: ValidationError) -> str:
    errors = exc.errors()[:3]
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in errors
    )
