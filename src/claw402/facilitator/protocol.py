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


def check_evm_requirements(requirements: PaymentRequirements) -> None:
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
    if requirements.max_timeout_seconds <= 0:
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
