"""The SDK's `HTTPFacilitatorClient`, with failures sorted by what they mean for the payer.

- `FacilitatorUnavailable`: the facilitator did not act (refused connection, 5xx at verify,
  a rejected API key). Nothing moved; the caller may try the same payment again later.
- `SettlementUnknown`: a settle may have been broadcast (timeout after sending, 5xx, or
  `settlement_pending` twice). The payment must not be offered again as if unused.

One keep-alive connection pool per operation, reused by every request: the verify and
settle timeouts differ, and httpx sets timeouts per client.
"""

from __future__ import annotations

import re

import httpx
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.facilitator_client_base import FacilitatorResponseError
from x402.schemas import PaymentPayload, PaymentRequirements, SettleResponse, VerifyResponse
from x402.server_base import is_retryable_settlement_pending

from claw402.facilitator.client import BearerAuth

_STATUS = re.compile(r"failed \((\d{3})\)")
_CONNECT_TIMEOUT = 2.0
_UNAVAILABLE_STATUSES = {401, 403, 408, 429}
REJECTED = "facilitator_rejected"


class FacilitatorUnavailable(Exception):
    """The facilitator did not act on the request."""


class SettlementUnknown(Exception):
    """A settle may have reached the chain; `tx_hash` when the facilitator named one."""

    def __init__(self, message: str, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash or None


def _status(exc: ValueError) -> int | None:
    match = _STATUS.search(str(exc))
    return int(match.group(1)) if match else None


class FacilitatorClient:
    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        verify_timeout: float = 10.0,
        settle_timeout: float = 60.0,
    ) -> None:
        self.url = url
        auth = BearerAuth(api_key) if api_key else None
        self._pools: list[httpx.AsyncClient] = []
        self._verifier = self._client(url, auth, verify_timeout)
        self._settler = self._client(url, auth, settle_timeout)

    def _client(self, url: str, auth: BearerAuth | None, timeout: float) -> HTTPFacilitatorClient:
        pool = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, _CONNECT_TIMEOUT)),
            limits=httpx.Limits(max_keepalive_connections=64, keepalive_expiry=30),
        )
        self._pools.append(pool)
        return HTTPFacilitatorClient(
            FacilitatorConfig(url=url, timeout=timeout, http_client=pool, auth_provider=auth)
        )

    async def verify(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> VerifyResponse:
        try:
            return await self._verifier.verify(payload, requirements)
        except httpx.TransportError as exc:
            raise FacilitatorUnavailable(f"facilitator unreachable: {exc!r}") from exc
        except FacilitatorResponseError as exc:
            raise FacilitatorUnavailable(str(exc)) from exc
        except ValueError as exc:
            status = _status(exc)
            if status is None or status >= 500 or status in _UNAVAILABLE_STATUSES:
                raise FacilitatorUnavailable(str(exc)) from exc
            return VerifyResponse(
                is_valid=False, invalid_reason=REJECTED, invalid_message=str(exc)[:300]
            )

    async def settle(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> SettleResponse:
        """Settle; one retry on `settlement_pending`, like the SDK's resource server."""
        result = await self._settle_once(payload, requirements)
        if is_retryable_settlement_pending(result):
            result = await self._settle_once(payload, requirements)
            if is_retryable_settlement_pending(result):
                raise SettlementUnknown("settlement still pending", result.transaction)
        return result

    async def _settle_once(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> SettleResponse:
        try:
            return await self._settler.settle(payload, requirements)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise FacilitatorUnavailable(f"facilitator unreachable: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise SettlementUnknown(f"settle interrupted after sending: {exc!r}") from exc
        except FacilitatorResponseError as exc:
            raise SettlementUnknown(str(exc)) from exc
        except ValueError as exc:
            status = _status(exc)
            if status in _UNAVAILABLE_STATUSES:
                raise FacilitatorUnavailable(str(exc)) from exc
            if status is not None and status < 500:
                return SettleResponse(
                    success=False,
                    error_reason=REJECTED,
                    error_message=str(exc)[:300],
                    transaction="",
                    network=requirements.network,
                )
            raise SettlementUnknown(str(exc)) from exc

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
