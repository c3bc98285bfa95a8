"""One presented payment through claim, verify, query and settle (see `payments.paywall` for
the order), and the retry of a payment whose settlement was left unknown.

Failed attempts (verify refused, query failed, settle failed) release the claim and count
against the authorization; once `max_attempts` are spent it is refused with 409
`payment_attempts_exhausted`. An unreachable facilitator releases without counting: the
payer did nothing wrong.

A retry of a payment whose settlement was left unknown is `payments.recovery`'s.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
from starlette.concurrency import run_in_threadpool
from x402.schemas import PaymentPayload, SettleResponse

from claw402.events.kinds import (
    PAYMENT_FAILED,
    PAYMENT_PENDING,
    PAYMENT_REPLAYED,
    PAYMENT_SETTLED,
    PAYMENT_VERIFIED,
)
from claw402.payments import answers, recovery
from claw402.payments.codec import PresentedPayment
from claw402.payments.facilitator import FacilitatorUnavailable, SettlementUnknown
from claw402.payments.offer import Offer
from claw402.payments.schema import CLAIMED, PENDING, SETTLED
from claw402.payments.store import ClaimRequest, SettledPayment, StoredResponse
from claw402.tenant_api.answer import Answer

if TYPE_CHECKING:  # the paywall imports this module; types only, no import cycle
    from claw402.payments.paywall import Paywall
    from claw402.tenant_api.call import Produce, TenantCall

_STORED_HEADERS_SKIP = {"content-length"}


class Attempt:
    def __init__(
        self,
        paywall: Paywall,
        call: TenantCall,
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
        self.verified = False  # the facilitator accepted this payload in this attempt
        self.tx_hash: str | None = None  # once the facilitator names the settlement
        self.facts = {
            "network": offer.requirements.network,
            "payer": payment.payer,
            "amount": offer.requirements.amount,
            "payTo": offer.pay_to,
            "x402Version": payment.version,
        }

    async def run(self, produce: Produce) -> Answer:
        if self.payment.payment_id is not None:
            stored = await run_in_threadpool(self.store.stored_response, self.payment.payment_id)
            if stored is not None:
                return self._replay_stored(stored)
        early = await self._claim(produce)
        if early is not None:
            return early
        return await self._pay(produce)

    async def _pay(self, produce: Produce) -> Answer:
        """Verify, run the query, settle: the claim is ours."""
        try:
            answer, paid = await self._verify_and_produce(produce)
        except BaseException:
            await self._release()
            raise
        if not paid:
            return answer
        try:
            return await self._settle(answer)
        except BaseException:
            # A settle may have been broadcast: keep the claim for a retry or the reconciler.
            with anyio.CancelScope(shield=True):
                await self._mark_pending(self.tx_hash)
            raise

    def _replay_stored(self, stored: StoredResponse) -> Answer:
        call = self.call
        if stored.payload_sha256 != self.payment.digest:
            self._event(PAYMENT_FAILED, 409, "payment_id_conflict")
            return answers.error_answer(
                409,
                "payment_id_conflict",
                call.request_id,
                "this payment-identifier id was already used with a different payment",
            )
        self._event(PAYMENT_REPLAYED, stored.status_code)
        return Answer(stored.status_code, stored.body, stored.headers)

    # -- the claim ---------------------------------------------------------------------------

    async def _claim(self, produce: Produce) -> Answer | None:
        """None when the claim is ours; else the answer (which may be a recovered payment)."""
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
                valid_before=int(self.payment.authorization["validBefore"]),
            ),
            self.paywall.config.max_attempts,
        )
        if claim.won:
            self.claim_id = claim.id
            return None
        if claim.exhausted:
            self._event(PAYMENT_FAILED, 409, "payment_attempts_exhausted")
            return answers.error_answer(
                409,
                "payment_attempts_exhausted",
                call.request_id,
                f"this payment authorization failed {self.paywall.config.max_attempts} times "
                "and cannot be used again here; nothing was charged: sign a new one",
            )
        found = claim.found
        if found is None:
            return self._replayed()
        owed = claim.status == PENDING or (claim.status == SETTLED and not found["served_at"])
        if owed and self._same_payment(found):
            return await recovery.recover(self, found, produce)
        in_flight = claim.status == CLAIMED and self._same_payment(found)  # settled again now
        legacy = claim.status == PENDING and not found["verified_sha256"]  # from before 0008
        if in_flight or legacy:
            self._event(PAYMENT_FAILED, 202, "payment_pending")
            return self._pending(claim.tx_hash)
        return self._replayed()

    def _same_payment(self, found: dict[str, Any]) -> bool:
        """The payload the facilitator verified for this claim, presented to its tenant."""
        return (
            found["verified_sha256"] == self.payment.digest
            and found["tenant_id"] == self.call.tenant.tenant_id
        )

    def _replayed(self) -> Answer:
        self._event(PAYMENT_FAILED, 409, "payment_replayed")
        return answers.error_answer(
            409,
            "payment_replayed",
            self.call.request_id,
            "this payment authorization was already presented; sign a new one",
        )

    # -- verify, query, settle ----------------------------------------------------------------

    def _unavailable(self, exc: FacilitatorUnavailable) -> Answer:
        """503 + Retry-After: the facilitator could not be reached, so nothing was charged."""
        self._event(PAYMENT_FAILED, 503, "facilitator_unavailable", detail=str(exc))
        return answers.error_answer(
            503,
            "facilitator_unavailable",
            self.call.request_id,
            "the payment facilitator cannot be reached; nothing was charged, retry later",
            headers={"Retry-After": answers.RETRY_AFTER_SECONDS},
        )

    async def _verify_and_produce(self, produce: Produce) -> tuple[Answer, bool]:
        call, paywall = self.call, self.paywall
        try:
            verified = await paywall.facilitator.verify(self.payload, self.offer.requirements)
        except FacilitatorUnavailable as exc:
            await self._release()
            return self._unavailable(exc), False
        if not verified.is_valid:
            await self._release(failed=True)
            reason = verified.invalid_reason or "invalid_payment"
            self._event(PAYMENT_FAILED, 402, reason)
            return paywall._challenge(
                call,
                self.offer,
                "payment_invalid",
                verified.invalid_message or f"the facilitator refused this payment: {reason}",
                reason=reason,
            ), False
        self.verified = True
        self._event(PAYMENT_VERIFIED, 200, started=self.started)
        answer = await produce()
        if answer.status_code != 200:
            await self._release(failed=True)
            self._event(PAYMENT_FAILED, answer.status_code, "not_charged_query_failed")
            return answer, False
        return answer, True

    async def _settle(self, answer: Answer) -> Answer:
        call, paywall = self.call, self.paywall
        try:
            settlement = await paywall.facilitator.settle(self.payload, self.offer.requirements)
        except FacilitatorUnavailable as exc:
            await self._release()
            return self._unavailable(exc)
        except SettlementUnknown as exc:
            return await self._left_pending(exc.tx_hash, str(exc))
        if settlement.success:
            return await self._deliver(answer, settlement)
        reason = settlement.error_reason or "settlement_failed"
        if paywall.chain is not None:  # refused, yet the authorization may have been used
            outcome = await recovery.chain_outcome(
                self, time.time(), settlement.transaction or None
            )
            if outcome is None:  # cannot tell: never "pay again" while it may have been paid
                return await self._left_pending(settlement.transaction or None, reason)
            if outcome.transfer is not None:
                assert self.claim_id is not None
                claim_id, transfer = self.claim_id, outcome.transfer
                await run_in_threadpool(
                    self.store.settle_from_chain,
                    claim_id,
                    transfer,
                    call.resource_url,
                    self.payment.digest,
                )
                self.claim_id = None
                await run_in_threadpool(self.store.mark_served, claim_id)
                r = self.offer.requirements
                paid = SettleResponse(
                    success=True, transaction=transfer.tx_hash, network=r.network,
                    payer=self.payment.payer,
                )  # fmt: skip
                return await self._receipted(answer, paid, reason="recovered_from_chain")
        await self._release(failed=True)
        self._event(PAYMENT_FAILED, 402, reason)
        return paywall._challenge(
            call,
            self.offer,
            "payment_settlement_failed",
            settlement.error_message or f"settlement failed: {reason}; nothing was charged",
            reason=reason,
            headers=answers.receipt_headers(settlement, self.payment.version),
        )

    async def _left_pending(self, tx_hash: str | None, detail: str) -> Answer:
        await self._mark_pending(tx_hash)
        self._event(
            PAYMENT_PENDING, 202, "settlement_unknown", detail=detail, transaction=tx_hash,
            started=self.started,
        )  # fmt: skip
        return self._pending(tx_hash)  # not remembered: a retry must reach the claim

    async def _deliver(self, answer: Answer, settlement: SettleResponse) -> Answer:
        r = self.offer.requirements
        settlement = settlement.model_copy(
            update={
                "network": settlement.network or r.network,
                "payer": settlement.payer or self.payment.payer,
            }
        )
        assert self.claim_id is not None
        self.tx_hash = settlement.transaction
        await run_in_threadpool(
            self.store.settle, self.claim_id, self._settled_payment(settlement), self.payment.digest
        )
        return await self._receipted(answer, settlement)

    def _settled_payment(self, settlement: SettleResponse) -> SettledPayment:
        """What the books record of `settlement`, the payment this attempt claimed."""
        r, call = self.offer.requirements, self.call
        return SettledPayment(
            network=r.network,
            tx_hash=settlement.transaction,
            payer=settlement.payer or self.payment.payer,
            amount=int(r.amount),
            asset=r.asset,
            pay_to=r.pay_to,
            tenant_id=call.tenant.tenant_id,
            request_id=call.request_id,
            resource=call.resource_url,
        )

    async def _receipted(
        self, answer: Answer, settlement: SettleResponse, reason: str | None = None
    ) -> Answer:
        answer.set_headers(answers.receipt_headers(settlement, self.payment.version))
        answer.set_headers(answers.EXPOSE)
        self._event(
            PAYMENT_SETTLED, 200, reason, started=self.started,
            transaction=settlement.transaction,
        )  # fmt: skip
        return await self._remember(answer)

    def _pending(self, tx_hash: str | None) -> Answer:
        detail = (
            f"settlement transaction {tx_hash} is not confirmed yet"
            if tx_hash
            else "the settlement may have been broadcast; its outcome is not known yet"
        )
        return answers.error_answer(
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

    async def _remember(self, answer: Answer) -> Answer:
        """Store the answer under the payment-identifier id, if the payer sent one."""
        if self.payment.payment_id is not None:
            headers = {
                k: v for k, v in answer.header_items() if k.lower() not in _STORED_HEADERS_SKIP
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

    async def _mark_pending(self, tx_hash: str | None) -> None:
        if self.claim_id is None:
            return
        await run_in_threadpool(
            self.store.mark_pending, self.claim_id, tx_hash, self.payment.digest
        )

    async def _release(self, *, failed: bool = False) -> None:
        """Free our claim; `failed` counts the attempt (not when the facilitator was down)."""
        if self.claim_id is None:
            return
        claim_id, self.claim_id = self.claim_id, None
        verified = self.payment.digest if self.verified else None
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(self.store.release, claim_id, failed=failed, verified=verified)

    def _event(self, kind: str, status: int, reason: str | None = None, **details: Any) -> None:
        self.paywall._event(kind, self.call, status, reason, **details, **self.facts)
