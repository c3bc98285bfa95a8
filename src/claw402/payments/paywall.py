"""The x402 paywall: the gateway's `Guard` for every paid route of a priced tenant.

Order of a paid call (each step can end it, and nothing after it runs):
decode the header (400) -> match this tenant's terms (402) -> the query's parameters, checked
against the dataset's schema by the tenant runtime before the guard (400 invalid_query:
no claim, no verify) -> payment-identifier replay (stored answer, or 409) -> claim the
authorization's nonce (409 replayed / 409 attempts exhausted / a retry of a pending
payment, see below) -> verify at the facilitator (503 unreachable, 402 invalid) -> run the
query, buffered (not 200: its answer, nothing charged) -> settle (402 with a failed receipt,
202 pending) -> 200 with the data and `PAYMENT-RESPONSE`.

A claim is released whenever no money can have moved, so the same payment may be presented
again, up to `max_attempts` failed attempts (counted in the claim row); it stays once a
settlement may exist (`pending`) or does (`settled`). A retry of the same payment while it is
pending is answered from the chain (`payments.attempt`): served with the real transaction
if it was paid, a 402 to pay again if it never can be, the same authorization settled again
after `pending_retry_seconds` if it still can be, else 202 "do not pay again".

A `batch-settlement` (channel) payment goes to `payments.channels.attempt` instead, after
the same decode, match and query check. An `exact` payment that came by MCP runs as the
`Attempt` subclass its transport asked for in the ASGI scope (`mcp.paid.McpAttempt`: the same
order, verify to settle inside the x402 SDK's MCP payment wrapper).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from claw402.dispatch.routing import TenantRoute
from claw402.events.compact import Trail, compact
from claw402.events.kinds import (
    PAYMENT_CHALLENGE,
    PAYMENT_FAILED,
    PAYMENT_PENDING,
    PAYMENT_REPLAYED,
    PAYMENT_SETTLED,
    PAYMENT_VERIFIED,
    PAYMENT_VOUCHER,
)
from claw402.payments import answers
from claw402.payments.attempt import Attempt
from claw402.payments.channels.attempt import ChannelAttempt
from claw402.payments.channels.terms import ChannelSchemes
from claw402.payments.codec import InvalidPayment, decode_once, payment_header
from claw402.payments.config import PaymentConfig
from claw402.payments.facilitator import FacilitatorClient
from claw402.payments.offer import Discovery, Mismatch, Offer
from claw402.payments.onchain import ChainLookup
from claw402.payments.store import PaymentStore
from claw402.registry.models import Tenant
from claw402.tenant_api.answer import Answer

if TYPE_CHECKING:
    from claw402.tenant_api.call import Produce, TenantCall

__all__ = [
    "PAYMENT_CHALLENGE",
    "PAYMENT_FAILED",
    "PAYMENT_PENDING",
    "PAYMENT_REPLAYED",
    "PAYMENT_SETTLED",
    "PAYMENT_VERIFIED",
    "PAYMENT_VOUCHER",
    "Paywall",
    "UnpaidChallenge",
]


class Paywall:
    """Construct once per gateway; `await paywall(call, produce)` per paid request.

    One paywall serves one event loop: its keep-alive connections to the facilitator
    belong to the loop that first used them (as with any shared httpx client). Each payment
    step is a lifecycle event appended to the call's trail, which the gateway writes out.
    """

    def __init__(
        self,
        config: PaymentConfig,
        engine: Engine,
        *,
        facilitator: FacilitatorClient | None = None,
        chain: ChainLookup | None = None,
        discovery: Callable[[Tenant], Discovery] | None = None,
    ) -> None:
        """`discovery`: a tenant's Bazaar metadata for its 402s (`discovery.bazaar.tenant_bazaar`,
        given by whoever composes the gateway: payments knows nothing of datasets)."""
        self.config = config
        self.discovery = discovery
        self.store = PaymentStore(engine)
        if chain is None and config.rpc_url:
            chain = ChainLookup(config.rpc_url, config.asset)
        self.chain = chain
        self.facilitator = facilitator or FacilitatorClient(
            config.facilitator_url,
            api_key=config.facilitator_api_key,
            verify_timeout=config.verify_timeout,
            settle_timeout=config.settle_timeout,
        )
        self.channels = ChannelSchemes(config, engine)
        self.channels.authorizer(wait=config.verify_timeout)  # at start, off the request path
        self._priced_by_tenant: dict[tuple[Any, ...], _Priced] = {}

    def offer(self, tenant: Tenant) -> Offer:
        return self._priced(tenant).offer

    def _priced(self, tenant: Tenant) -> _Priced:
        """The tenant's offer and unpaid answers, built once per tenant version."""
        channels = tenant.schemes != "exact" and self.channels.authorizer() is not None
        price = tenant.call_price_atomic  # a full page's, if priced by rows
        key = (tenant.tenant_id, tenant.updated_at, price, tenant.pay_to, channels)
        found = self._priced_by_tenant.get(key)
        if found is None:
            if len(self._priced_by_tenant) > 10_000:
                self._priced_by_tenant.clear()
            pay_to = tenant.pay_to or self.config.treasury
            extra = {**self.config.extra, "tenant": tenant.tenant_id}
            batch = self.channels.requirements(price, pay_to, extra)
            offer = Offer(
                self.config,
                tenant_id=tenant.tenant_id,
                amount=price,
                pay_to=pay_to,
                description=tenant.offer_description,
                batch=batch if channels else None,
                exact=tenant.schemes != "batch",
                rows_price=tenant.rows_price_usd,
                discovery=self.discovery(tenant) if self.discovery and tenant.dataset else None,
            )
            found = self._priced_by_tenant[key] = _Priced(offer)
        return found

    async def aclose(self) -> None:
        await self.facilitator.aclose()
        self.channels.close()

    async def __call__(self, call: TenantCall, produce: Produce) -> Answer:
        priced = self._priced(call.tenant)
        offer = priced.offer
        header = payment_header(call.headers)
        if header is None or call.method == "HEAD":  # HEAD has no body to sell
            unpaid = call.replayable = priced.unpaid(call.resource_url, call.route)
            return unpaid.answer(call.request_id, call.trail)
        try:
            payment = decode_once(call, header)
            payload = offer.match(payment)
        except InvalidPayment as exc:
            self._event(PAYMENT_FAILED, call, 400, "invalid_payment", detail=str(exc))
            return answers.error_answer(400, "invalid_payment", call.request_id, str(exc))
        except Mismatch as exc:
            self._event(PAYMENT_FAILED, call, 402, exc.reason)
            return self._challenge(call, offer, "payment_mismatch", exc.detail, reason=exc.reason)
        if call.invalid is not None:  # a query that cannot run costs no claim and no verify
            self._event(PAYMENT_FAILED, call, 400, "not_charged_invalid_query")
            return call.invalid
        if offer.batch is not None and payment.scheme == offer.batch.scheme:
            return await ChannelAttempt(self, call, offer, payload).run(produce)
        kind = _attempt_kind(call)
        return await kind(self, call, offer, payment, payload).run(produce)

    def _challenge(
        self, call: TenantCall, offer: Offer, code: str, detail: str, **fields: Any
    ) -> Answer:
        error = f"{code}: {fields['reason']}" if "reason" in fields else code
        return answers.challenge(
            offer.challenge(call.resource_url, error), code, call.request_id, detail, **fields
        )

    def _event(
        self,
        kind: str,
        call: TenantCall,
        status: int,
        reason: str | None = None,
        *,
        started: float | None = None,
        **details: Any,
    ) -> None:
        duration = None if started is None else (time.perf_counter() - started) * 1000
        call.trail.append(
            compact(
                kind,
                call.request_id,
                call.route,
                status=status,
                duration_ms=duration,
                reason=reason,
                **details,
            )
        )


def _attempt_kind(call: TenantCall) -> type[Attempt]:
    """The `Attempt` a transport embedding the gateway asked for in its ASGI scope's
    extensions (`claw402.attempt`: the MCP endpoint's runs the SDK's MCP payment wrapper);
    never settable by a caller, whose scope extensions are the server's."""
    scope = getattr(call, "scope", None) or {}
    kind = (scope.get("extensions") or {}).get("claw402.attempt")  # granian may give None
    return kind if isinstance(kind, type) and issubclass(kind, Attempt) else Attempt


class _Priced:
    """One tenant version's offer and its unpaid-call 402s by resource URL."""

    __slots__ = ("_unpaid", "offer")
    MAX_RESOURCES = 1024  # hosts x paths (record keys are paths): bounded, rebuilt on demand

    def __init__(self, offer: Offer) -> None:
        self.offer = offer
        self._unpaid: dict[str, UnpaidChallenge] = {}

    def unpaid(self, resource_url: str, route: TenantRoute) -> UnpaidChallenge:
        found = self._unpaid.get(resource_url)
        if found is None:
            if len(self._unpaid) >= self.MAX_RESOURCES:
                self._unpaid.clear()
            challenge = self.offer.challenge(resource_url, "payment_required")
            prepared = answers.PreparedChallenge(
                challenge, "payment_required", self.offer.price_detail
            )
            found = self._unpaid[resource_url] = UnpaidChallenge(prepared, route)
        return found


class UnpaidChallenge:
    """The 402 every unpaid call to one resource gets, and its `payment_challenge` event.

    A `Replayable`: the gateway answers the next unpaid calls to the same resource with it
    directly, so the paywall's rule for what counts as unpaid lives here, beside the answer.
    """

    __slots__ = ("_prepared", "_route")

    def __init__(self, prepared: answers.PreparedChallenge, route: TenantRoute) -> None:
        self._prepared = prepared
        self._route = route

    def applies(self, method: str, headers: dict[str, str]) -> bool:
        return method == "HEAD" or (method == "GET" and payment_header(headers) is None)

    def answer(self, request_id: str, trail: Trail) -> Answer:
        trail.append(compact(PAYMENT_CHALLENGE, request_id, self._route, status=402))
        return self._prepared.answer(request_id)
