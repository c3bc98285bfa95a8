"""The facilitator's wire format: parse `/verify` and `/settle` bodies, reject garbage early.

The body is what the SDK's `HTTPFacilitatorClient` posts:
`{"x402Version": 2, "paymentPayload": {...}, "paymentRequirements": {...}}`.
A body the resource server got wrong (not JSON, missing fields, a non-numeric amount) is a
`BadRequest` (HTTP 400). The inner `paymentPayload.payload` comes from the payer and reaches
us untouched by the resource server, so its defects are an invalid *payment* instead
(HTTP 200, `isValid: false`), which the resource server turns into a 402 for the payer.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import ValidationError
from x402.schemas import PaymentPayload, PaymentRequirements

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_UINT = re.compile(r"^[0-9]{1,78}$")
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_HEX = re.compile(r"^0x(?:[0-9a-fA-F]{2})+$")


class BadRequest(Exception):
    """A request the facilitator cannot read; `error` is a stable code, `message` says why."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def parse_request(body: bytes) -> tuple[PaymentPayload, PaymentRequirements]:
    """Decode and validate a verify/settle body (x402 v2 only)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest("invalid_json", f"request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("invalid_request", "request body must be a JSON object")
    version = data.get("x402Version")
    if version != 2 or isinstance(version, bool):
        raise BadRequest(
            "unsupported_x402_version",
            f"x402Version must be 2 (this facilitator speaks x402 v2), got {version!r}",
        )
    payload = _model(PaymentPayload, data.get("paymentPayload"), "paymentPayload")
    requirements = _model(
        PaymentRequirements, data.get("paymentRequirements"), "paymentRequirements"
    )
    if payload.x402_version != 2:
        raise BadRequest(
            "unsupported_x402_version",
            f"paymentPayload.x402Version must be 2, got {payload.x402_version!r}",
        )
    return payload, requirements


def check_evm_requirements(
    requirements: PaymentRequirements, *, timeout_required: bool = True
) -> None:
    """Requirements for an EVM network must name addresses and an integer amount."""
    problems = []
    if not _UINT.match(requirements.amount):
        problems.append(
            f"amount must be an integer string of atomic units, got {requirements.amount!r}"
        )
    if not _ADDRESS.match(requirements.asset):
        problems.append(f"asset must be a 0x-prefixed 20-byte address, got {requirements.asset!r}")
    if not _ADDRESS.match(requirements.pay_to):
        problems.append(f"payTo must be a 0x-prefixed 20-byte address, got {requirements.pay_to!r}")
    if requirements.max_timeout_seconds < 0 or (
        timeout_required and requirements.max_timeout_seconds == 0
    ):
        problems.append("maxTimeoutSeconds must be positive")
    if problems:
        raise BadRequest("invalid_payment_requirements", "; ".join(problems))


def eip3009_payload_problem(payload: dict[str, Any]) -> str | None:
    """Why an `exact` EIP-3009 payload is malformed, or None if it is well formed."""
    authorization = payload.get("authorization")
    if not isinstance(authorization, dict):
        return "payload.authorization must be an object"
    checks = {
        "from": _ADDRESS,
        "to": _ADDRESS,
        "value": _UINT,
        "validAfter": _UINT,
        "validBefore": _UINT,
        "nonce": _BYTES32,
    }
    problems = [
        f"authorization.{name} is missing or malformed"
        for name, pattern in checks.items()
        if not isinstance(authorization.get(name), str) or not pattern.match(authorization[name])
    ]
    signature = payload.get("signature")
    if not isinstance(signature, str) or not _HEX.match(signature):
        problems.append("signature must be 0x-prefixed hex bytes")
    return "; ".join(problems) or None


_CONFIG_ADDRESSES = ("payer", "payerAuthorizer", "receiver", "receiverAuthorizer", "token")


def batch_payload_problem(payload: dict[str, Any]) -> str | None:
    """Why a `batch-settlement` payload is malformed, or None if the SDK can read it.

    The SDK's parsers index into the payload without checks; every field they read is checked
    here first, so a garbled payload is an invalid payment instead of a crash.
    """
    kind = payload.get("type")
    problems: list[str] = []
    if kind in ("deposit", "voucher", "refund"):
        _check_config(payload.get("channelConfig"), "channelConfig", problems)
        _check_voucher(payload.get("voucher"), problems)
    if kind == "deposit":
        _check_deposit(payload.get("deposit"), problems)
    elif kind == "refund":
        for name in ("amount", "refundNonce"):
            if name in payload and not _is_uint(payload[name]):
                problems.append(f"{name} must be an integer string")
        if "claims" in payload:  # empty when every voucher is claimed already
            _check_claims(payload["claims"], problems, allow_empty=True)
        for name in ("refundAuthorizerSignature", "claimAuthorizerSignature"):
            if payload.get(name) is not None and not _is_hex(payload[name]):
                problems.append(f"{name} must be 0x-prefixed hex bytes")
    elif kind == "claim":
        _check_claims(payload.get("claims"), problems)
        if payload.get("claimAuthorizerSignature") is not None and not _is_hex(
            payload["claimAuthorizerSignature"]
        ):
            problems.append("claimAuthorizerSignature must be 0x-prefixed hex bytes")
    elif kind == "settle":
        for name in ("receiver", "token"):
            if not _is_address(payload.get(name)):
                problems.append(f"{name} must be a 0x-prefixed 20-byte address")
    elif kind not in ("voucher",):
        problems.append(f"type must be deposit, voucher, refund, claim or settle, got {kind!r}")
    return "; ".join(problems) or None


def _check_config(config: Any, where: str, problems: list[str]) -> None:
    if not isinstance(config, dict):
        problems.append(f"{where} must be an object")
        return
    for name in _CONFIG_ADDRESSES:
        if not _is_address(config.get(name)):
            problems.append(f"{where}.{name} must be a 0x-prefixed 20-byte address")
    if not _is_uint(config.get("withdrawDelay")):
        problems.append(f"{where}.withdrawDelay must be an integer")
    if not isinstance(config.get("salt"), str) or not _BYTES32.match(config["salt"]):
        problems.append(f"{where}.salt must be 32 bytes of hex")


def _check_voucher(voucher: Any, problems: list[str]) -> None:
    if not isinstance(voucher, dict):
        problems.append("voucher must be an object")
        return
    if not isinstance(voucher.get("channelId"), str) or not _BYTES32.match(voucher["channelId"]):
        problems.append("voucher.channelId must be 32 bytes of hex")
    if not _is_uint(voucher.get("maxClaimableAmount")):
        problems.append("voucher.maxClaimableAmount must be an integer string")
    if not _is_hex(voucher.get("signature")):
        problems.append("voucher.signature must be 0x-prefixed hex bytes")


def _check_deposit(deposit: Any, problems: list[str]) -> None:
    if not isinstance(deposit, dict) or not isinstance(deposit.get("authorization"), dict):
        problems.append("deposit must be an object with an authorization object")
        return
    if not _is_uint(deposit.get("amount")):
        problems.append("deposit.amount must be an integer string")
    authorization = deposit["authorization"]
    erc3009 = authorization.get("erc3009Authorization")
    permit2 = authorization.get("permit2Authorization")
    if erc3009 is None and not isinstance(permit2, dict):
        problems.append("deposit.authorization needs erc3009Authorization or permit2Authorization")
    if erc3009 is None:
        return
    if not isinstance(erc3009, dict):
        problems.append("deposit.authorization.erc3009Authorization must be an object")
        return
    for name in ("validAfter", "validBefore"):
        if not _is_uint(erc3009.get(name)):
            problems.append(f"erc3009Authorization.{name} must be an integer string")
    if not isinstance(erc3009.get("salt"), str) or not _BYTES32.match(erc3009["salt"]):
        problems.append("erc3009Authorization.salt must be 32 bytes of hex")
    if not _is_hex(erc3009.get("signature")):
        problems.append("erc3009Authorization.signature must be 0x-prefixed hex bytes")


def _check_claims(claims: Any, problems: list[str], *, allow_empty: bool = False) -> None:
    if not isinstance(claims, list) or not (claims or allow_empty):
        problems.append("claims must be a non-empty list")
        return
    for i, claim in enumerate(claims):
        voucher = claim.get("voucher") if isinstance(claim, dict) else None
        if not isinstance(voucher, dict):
            problems.append(f"claims[{i}].voucher must be an object")
            continue
        _check_config(voucher.get("channel"), f"claims[{i}].voucher.channel", problems)
        if not _is_uint(voucher.get("maxClaimableAmount")):
            problems.append(f"claims[{i}].voucher.maxClaimableAmount must be an integer string")
        if not _is_hex(claim.get("signature")):
            problems.append(f"claims[{i}].signature must be 0x-prefixed hex bytes")
        if not _is_uint(claim.get("totalClaimed")):
            problems.append(f"claims[{i}].totalClaimed must be an integer string")


def _is_address(value: Any) -> bool:
    return isinstance(value, str) and _ADDRESS.match(value) is not None


def _is_hex(value: Any) -> bool:
    return isinstance(value, str) and _HEX.match(value) is not None


def _is_uint(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and _UINT.match(value) is not None


_Model = TypeVar("_Model", PaymentPayload, PaymentRequirements)


def _model(cls: type[_Model], value: Any, field: str) -> _Model:
    if not isinstance(value, dict):
        raise BadRequest("invalid_request", f"{field} must be a JSON object")
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        details = "; ".join(
            f"{field}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise BadRequest("invalid_request", details) from None
