"""The paywall's own answers: 402 challenges, payment errors, pending settlements, receipts.

Every body has the gateway's error shape (`ok`, `error`, `requestId`, `detail`). A 402 also
carries the v2 `PAYMENT-REQUIRED` header and, in the body, `x402Version: 1` with the v1
`accepts`, so clients of either protocol version can pay from it.
"""

from __future__ import annotations

from typing import Any

import orjson
from x402.http.utils import encode_payment_response_header
from x402.schemas import SettleResponse

from claw402.payments.offer import EXPOSE_HEADERS, Challenge
from claw402.tenant_api.answer import Answer, error_answer

__all__ = ["PreparedChallenge", "challenge", "error_answer", "receipt_headers"]

PAYMENT_RESPONSE = "PAYMENT-RESPONSE"
X_PAYMENT_RESPONSE = "X-PAYMENT-RESPONSE"
EXPOSE = {"Access-Control-Expose-Headers": EXPOSE_HEADERS}
RETRY_AFTER_SECONDS = "2"


def challenge(
    challenge: Challenge,
    code: str,
    request_id: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> Answer:
    response = error_answer(
        402,
        code,
        request_id,
        detail,
        headers=headers,
        x402Version=1,
        accepts=challenge.accepts_v1,
        **fields,
    )
    response.raw_headers.extend(challenge.raw_headers)  # encoded once per resource
    return response


class PreparedChallenge:
    """A tenant resource's unpaid-call 402, encoded once: each call splices in its request id.

    The hot path of a priced API is callers asking without paying (agents discovering terms,
    scanners); this keeps it to a few byte joins instead of a JSON encoding and a Starlette
    header build per request.
    """

    __slots__ = ("_head", "_headers", "_tail")
    _MARK = "\x00request-id\x00"

    def __init__(self, challenge_: Challenge, code: str, detail: str) -> None:
        template = challenge(challenge_, code, self._MARK, detail)
        marker = orjson.dumps(self._MARK)[1:-1]
        self._head, self._tail = bytes(template.body).split(marker)
        self._headers = template.raw_headers

    def answer(self, request_id: str) -> Answer:
        body = b"".join((self._head, orjson.dumps(request_id)[1:-1], self._tail))
        return Answer.prepared(402, body, self._headers.copy())


def receipt_headers(settlement: SettleResponse, version: int) -> dict[str, str]:
    """`PAYMENT-RESPONSE` (and `X-PAYMENT-RESPONSE` for a v1 payer): the settlement receipt."""
    value = encode_payment_response_header(settlement)
    headers = {PAYMENT_RESPONSE: value}
    if version == 1:
        headers[X_PAYMENT_RESPONSE] = value
    return headers
