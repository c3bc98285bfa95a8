"""The x402 paywall: the gateway's `Guard` for every paid route of a priced tenant.

Order of a paid call (each step can end it, and nothing after it runs):
decode the header (400) -> match this tenant's terms (402) -> payment-identifier replay
(stored answer, or 409) -> claim the authorization's nonce (409 replayed / 202 pending) ->
verify at the facilitator (503 unreachable, 402 invalid) -> run the query, buffered
(not 200: its answer, nothing charged) -> settle (402 with a failed receipt, 202 pending)
-> 200 with the data and `PAYMENT-RESPONSE`.

A claim is released whenever no money can have moved, so the same payment may be presented
again; it stays once a settlement may exist (`pending`, for the reconciler) or does (`settled`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from x402.schemas import PaymentPayload, SettleResponse

from claw402.dispatch.events import Trail, compact
from claw402.dispatch.routing import TenantRoute
from claw402.payments import answers
from claw402.payments.codec import InvalidPayment, PresentedPayment, decode_payment, payment_header
from claw402.payments.config import PaymentConfig
from claw402.payments.facilitator import Facilitator, FacilitatorUnavailable, SettlementUnknown
from claw402.payments.offer import Mismatch, Offer
from claw402.payments.schema import PENDING
from claw402.payments.store import ClaimRequest, PaymentStore, SettledPayment, StoredResponse
from claw402.registry.models import Tenant

if TYPE_CHECKING:  # the gateway imports this module; types only, no import cycle
    from claw402.gateway.tenant_api import Produce, TenantRequest

PAYMENT_CHALLENGE = "payment_challenge"
PAYMENT_VERIFIED = "payment_verified"
PAYMENT_SETTLED = "payment_settled"
PAYMENT_PENDING = "payment_pending"
PAYMENT_FAILED = "payment_failed"
PAYMENT_REPLAYED = "payment_replayed"

_STORED_HEADERS_SKIP = {"content-length"}


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
        facilitator: Facilitator | None = None,
    ) -> None:
        self.config = config
        self.store = PaymentStore(engine)
        self.facilitator = facilitator or Facilitator(
            config.facilitator_url,
            api_key=config.facilitator_api_key,
            verify_timeout=config.verify_timeout,
            settle_timeout=config.settle_timeout,
        )
        self._priced_by_tenant: dict[tuple[Any, ...], _Priced] = {}

    def offer(self, tenant: Tenant) -> Offer:
        return self._priced(tenant).offer

    def _priced(self, tenant: Tenant) -> _Priced:
        """The tenant's offer, event route and unpaid answers, built once per tenant version."""
        key = (tenant.tenant_id, tenant.updated_at, tenant.price_atomic, tenant.pay_to)
        found = self._priced_by_tenant.get(key)
        if found is None:
            if len(self._priced_by_tenant) > 10_000:
                self._priced_by_tenant.clear()
            offer = Offer(
                self.config,
                tenant_id=tenant.tenant_id,
                amount=tenant.price_atomic,
                pay_to=tenant.pay_to or self.config.treasury,
                description=tenant.description or f"{tenant.name or tenant.slug}: one API call",
            )
            found = self._priced_by_tenant[key] = _Priced(offer, tenant.route())
        return found

    async def aclose(self) -> None:
        await self.facilitator.aclose()

    async def __call__(self, call: TenantRequest, produce: Produce) -> Response:
        priced = self._priced(call.tenant)
        offer = priced.offer
        header = payment_header(call.headers)
        if header is None or call.method == "HEAD":  # HEAD has no body to sell
            unpaid = call.replayable = priced.unpaid(call.resource_url)
            return unpaid.answer(call.request_id, call.trail)
        try:
            payment = decode_payment(header)
            payload = offer.match(payment)
        except InvalidPayment as exc:
            self._event(PAYMENT_FAILED, call, 400, "invalid_payment", detail=str(exc))
            return answers.json_answer(400, "invalid_payment", call.request_id, str(exc))
        except Mismatch as exc:
            self._event(PAYMENT_FAILED, call, 402, exc.reason)
            return self._challenge(call, offer, "payment_mismatch", exc.detail, reason=exc.reason)
        return await _Attempt(self, call, offer, payment, payload).run(produce)

    def _challenge(
        self, call: TenantRequest, offer: Offer, code: str, detail: str, **fields: Any
    ) -> Response:
        error = f"{code}: {fields['reason']}" if "reason" in fields else code
        return answers.challenge(
            offer.challenge(call.resource_url, error), code, call.request_id, detail, **fields
        )

    def _event(
        self,
        kind: str,
        call: TenantRequest,
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
                self._priced(call.tenant).route,
                status=status,
                duration_ms=duration,
                reason=reason,
                **details,
            )
        )


class _Priced:
    """One tenant version's offer, its event route and its unpaid-call 402s by resource URL."""

    __slots__ = ("_unpaid", "offer", "route")
    MAX_RESOURCES = 1024  # hosts x paths (record keys are paths): bounded, rebuilt on demand

    def __init__(self, offer: Offer, route: TenantRoute) -> None:
        self.offer = offer
        self.route = route
        self._unpaid: dict[str, UnpaidChallenge] = {}

    def unpaid(self, resource_url: str) -> UnpaidChallenge:
        found = self._unpaid.get(resource_url)
        if found is None:
            if len(self._unpaid) >= self.MAX_RESOURCES:
                self._unpaid.clear()
            challenge = self.offer.challenge(resource_url, "payment_required")
            prepared = answers.PreparedChallenge(
                challenge, "payment_required", self.offer.price_detail
            )
            found = self._unpaid[resource_url] = UnpaidChallenge(prepared, self.route)
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

    def answer(self, request_id: str, trail: Trail) -> Response:
        trail.append(compact(PAYMENT_CHALLENGE, request_id, self._route, status=402))
        return self._prepared.answer(request_id)


class _Attempt:
    """One presented payment through claim, verify, query and settle."""

    def __init__(
        self,
        paywall: Paywall,
        call: TenantRequest,
        offer: Offer,
        payment: PresentedPayment,
        payload: PaymentPayload,
    ) -> None:
        self.paywall = paywall
        self.store = paywall.store
        self.call = call
        self.offer = offer
        self.payment = payment
        self.payload = payload
        self.started = time.perf_counter()
        self.claim_id: int | None = None
        self.tx_hash: str | None = None  # once the facilitator names the settlement
        self.facts = {
            "network": offer.requirements.network,
            "payer": payment.payer,
            "amount": offer.requirements.amount,
            "payTo": offer.pay_to,
            "x402Version": payment.version,
        }

    async def run(self, produce: Produce) -> Response:
        if self.payment.payment_id is not None:
            stored = await run_in_threadpool(self.store.stored_response, self.payment.payment_id)
            if stored is not None:
                return self._replay_stored(stored)
        early = await self._claim()
        if early is not None:
            return early
        try:
            answer, paid = await self._verify_and_produce(produce)
        except BaseException:
            await self._release()
            raise
        if not paid:
            await self._release()
            return answer
        try:
            return await self._settle(answer)
        except BaseException:
            # A settle may have been broadcast: keep the claim for the reconciler.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self.store.mark_pending, self.claim_id, self.tx_hash)
            raise

    def _replay_stored(self, stored: StoredResponse) -> Response:
        call = self.call
        if stored.payload_sha256 != self.payment.digest:
            self.paywall._event(PAYMENT_FAILED, call, 409, "payment_id_conflict", **self.facts)
            return answers.json_answer(
                409,
                "payment_id_conflict",
                call.request_id,
                "this payment-identifier id was already used with a different payment",
            )
        self.paywall._event(PAYMENT_REPLAYED, call, stored.status_code, **self.facts)
        return Response(stored.body, status_code=stored.status_code, headers=stored.headers)

    async def _claim(self) -> Response | None:
        r, call = self.offer.requirements, self.call
        claim = await run_in_threadpool(
            self.store.claim,
            ClaimRequest(
                network=r.network,
                payer=self.payment.payer,
                nonce=self.payment.nonce,
                tenant_id=call.tenant.tenant_id,
                request_id=call.request_id,
                amount=int(r.amount),
                asset=r.asset,
                pay_to=r.pay_to,
            ),
        )
        if claim.won:
            self.claim_id = claim.id
            return None
        if claim.status == PENDING:
            self.paywall._event(PAYMENT_FAILED, call, 202, "payment_pending", **self.facts)
            return self._pending(claim.tx_hash)
        self.paywall._event(PAYMENT_FAILED, call, 409, "payment_replayed", **self.facts)
        return answers.json_answer(
            409,
            "payment_replayed",
            call.request_id,
            "this payment authorization was already presented; sign a new one",
        )

    def _unavailable(self, exc: FacilitatorUnavailable) -> Response:
        """503 + Retry-After: the facilitator could not be reached, so nothing was charged."""
        self.paywall._event(
            PAYMENT_FAILED, self.call, 503, "facilitator_unavailable", detail=str(exc), **self.facts
        )
        return answers.json_answer(
            503,
            "facilitator_unavailable",
            self.call.request_id,
            "the payment facilitator cannot be reached; nothing was charged, retry later",
            headers={"Retry-After": answers.RETRY_AFTER_SECONDS},
        )

    async def _verify_and_produce(self, produce: Produce) -> tuple[Response, bool]:
        call, paywall = self.call, self.paywall
        try:
            verified = await paywall.facilitator.verify(self.payload, self.offer.requirements)
        except FacilitatorUnavailable as exc:
            return self._unavailable(exc), False
        if not verified.is_valid:
            reason = verified.invalid_reason or "invalid_payment"
            paywall._event(PAYMENT_FAILED, call, 402, reason, **self.facts)
            return paywall._challenge(
                call,
                self.offer,
                "payment_invalid",
                verified.invalid_message or f"the facilitator refused this payment: {reason}",
                reason=reason,
            ), False
        paywall._event(PAYMENT_VERIFIED, call, 200, started=self.started, **self.facts)
        answer = await produce()
        if answer.status_code != 200:
            paywall._event(
                PAYMENT_FAILED, call, answer.status_code, "not_charged_query_failed", **self.facts
            )
            return answer, False
        return answer, True

    async def _settle(self, answer: Response) -> Response:
        call, paywall = self.call, self.paywall
        try:
            settlement = await paywall.facilitator.settle(self.payload, self.offer.requirements)
        except FacilitatorUnavailable as exc:
            await self._release()
            return self._unavailable(exc)
        except SettlementUnknown as exc:
            await run_in_threadpool(self.store.mark_pending, self.claim_id, exc.tx_hash)
            paywall._event(
                PAYMENT_PENDING, call, 202, "settlement_unknown", detail=str(exc),
                transaction=exc.tx_hash, started=self.started, **self.facts,
            )  # fmt: skip
            return await self._remember(self._pending(exc.tx_hash))
        if not settlement.success:
            await self._release()
            reason = settlement.error_reason or "settlement_failed"
            paywall._event(PAYMENT_FAILED, call, 402, reason, **self.facts)
            return paywall._challenge(
                call,
                self.offer,
                "payment_settlement_failed",
                settlement.error_message or f"settlement failed: {reason}; nothing was charged",
                reason=reason,
                headers=answers.receipt_headers(settlement, self.payment.version),
            )
        return await self._deliver(answer, settlement)

    async def _deliver(self, answer: Response, settlement: SettleResponse) -> Response:
        r, call = self.offer.requirements, self.call
        settlement = settlement.model_copy(
            update={
                "network": settlement.network or r.network,
                "payer": settlement.payer or self.payment.payer,
            }
        )
        assert self.claim_id is not None
        self.tx_hash = settlement.transaction
        await run_in_threadpool(
            self.store.settle,
            self.claim_id,
            SettledPayment(
                network=r.network,
                tx_hash=settlement.transaction,
                payer=settlement.payer or self.payment.payer,
                amount=int(r.amount),
                asset=r.asset,
                pay_to=r.pay_to,
                tenant_id=call.tenant.tenant_id,
                request_id=call.request_id,
                resource=call.resource_url,
            ),
        )
        answer.headers.update(answers.receipt_headers(settlement, self.payment.version))
        answer.headers.update(answers.EXPOSE)
        self.paywall._event(
            PAYMENT_SETTLED, call, 200, started=self.started,
            transaction=settlement.transaction, **self.facts,
        )  # fmt: skip
        return await self._remember(answer)

    def _pending(self, tx_hash: str | None) -> Response:
        detail = (
            f"settlement transaction {tx_hash} is not confirmed yet"
            if tx_hash
            else "the settlement may have been broadcast; its outcome is not known yet"
        )
        return answers.json_answer(
            202,
            "payment_pending",
            self.call.request_id,
            detail + ": do not pay again; retry this request with the same payment later",
            headers={"Retry-After": answers.RETRY_AFTER_SECONDS},
            transaction=tx_hash,
            payer=self.payment.payer,
            nonce=self.payment.nonce,
            network=self.offer.requirements.network,
        )

    async def _remember(self, answer: Response) -> Response:
        """Store the answer under the payment-identifier id, if the payer sent one."""
        if self.payment.payment_id is not None:
            headers = {
                k: v for k, v in answer.headers.items() if k.lower() not in _STORED_HEADERS_SKIP
            }
            await run_in_threadpool(
                self.store.store_response,
                self.payment.payment_id,
                self.call.tenant.tenant_id,
                StoredResponse(
                    self.payment.digest, answer.status_code, headers, bytes(answer.body)
                ),
            )
        return answer

    async def _release(self) -> None:
        if self.claim_id is None:
            return
        claim_id, self.claim_id = self.claim_id, None
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(self.store.release, claim_id)
