"""One channel (`batch-settlement`) payment through verify, query and commit.

Requests of one channel are serialized in this process (`VoucherLane.serialized`). A voucher
continuing a known, fresh EOA channel takes the lane (`payments.channels.lane`): checked in
process, the query run, then the channel's compare-and-swap and the booking committed in one
transaction. Everything else (deposits, refunds, vouchers the lane does not accept, or that
lost their compare-and-swap to a change it cannot absorb) takes the SDK path below.

Order of the SDK path (each step can end it; nothing after it runs): the header was decoded
and the terms matched by the paywall, and the query's parameters checked (400 costs nothing)
-> verify through the SDK's resource server: the scheme binds the channel id to its config,
checks the voucher's cumulative amount against the stored state (a replayed, lower or higher
voucher is a corrective 402 with `channelState`), verifies an EOA voucher locally while the
mirrored on-chain state is fresh (else, and for every deposit, at the facilitator) and
reserves the channel for this request (one request per channel at a time, across processes,
through the storage's compare-and-swap) -> run the query, buffered -> not 200: the
reservation is released, nothing charged -> commit: a voucher in the storage (no chain
transaction), a deposit through the facilitator's /settle, the voucher booked as the
tenant's revenue (`ledger.channels`, once per channel and cumulative amount) in the same
transaction as the channel's update (`SqlChannelStorage.booking`) -> 200 with the data and
`PAYMENT-RESPONSE`.
A booking that fails rolls the channel back: 503, nothing charged.

A tenant priced by rows is charged less than the voucher's maximum: the rows the answer
carries at its rate (`dispatch.pricing.rows_charge`), added to the channel's charged total
by the lane's commit, or passed to the SDK's settle as the requirements' amount (the
scheme's settlement override); the payer's next voucher continues from it.

A `refund` payload (the payer asking for its unspent deposit back) is the SDK's zero-charge
request: verified, then settled by the facilitator with the claim of what was spent; it
serves no data.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from x402.http.utils import encode_payment_required_header
from x402.mechanisms.evm.batch_settlement.server.storage import Channel
from x402.schemas import PaymentPayload, PaymentRequirements, ResourceInfo, SettleResponse
from x402.schemas.errors import PaymentAbortedError

from claw402.dispatch.pricing import rows_charge
from claw402.events.kinds import PAYMENT_FAILED, PAYMENT_SETTLED, PAYMENT_VERIFIED, PAYMENT_VOUCHER
from claw402.ledger.vouchers import Voucher, book_vouchers
from claw402.payments import answers
from claw402.payments.channels.lane import Ticket
from claw402.payments.channels.terms import Receiver
from claw402.payments.offer import EXPOSE_HEADERS, MIME_TYPE, Offer
from claw402.tenant_api.answer import Answer, json_answer

if TYPE_CHECKING:
    from claw402.payments.paywall import Paywall
    from claw402.tenant_api.call import Produce, TenantCall

CUMULATIVE_MISMATCH = "invalid_batch_settlement_evm_cumulative_amount_mismatch"


class BookingFailed(RuntimeError):
    """The ledger refused a voucher's booking: its channel update was rolled back with it."""


class ChannelAttempt:
    def __init__(
        self, paywall: Paywall, call: TenantCall, offer: Offer, payload: PaymentPayload
    ) -> None:
        assert offer.batch is not None
        self.paywall = paywall
        self.call = call
        self.offer = offer
        self.requirements = offer.batch
        self.payload = payload
        self.raw: dict[str, Any] = payload.payload
        self.kind = str(self.raw["type"])
        self.started = time.perf_counter()
        config = self.raw["channelConfig"]
        self.facts = {
            "scheme": self.requirements.scheme,
            "network": self.requirements.network,
            "payer": config["payer"],
            "amount": self.requirements.amount,
            "payTo": self.requirements.pay_to,
            "channel": str(self.raw["voucher"]["channelId"]).lower(),
            "payload": self.kind,
        }

    async def run(self, produce: Produce) -> Answer:
        channels = self.paywall.channels
        receiver = channels.built(self.requirements.pay_to)
        if receiver is None:
            try:
                receiver = await run_in_threadpool(channels.receiver, self.requirements.pay_to)
            except Exception as exc:  # the facilitator's /supported is needed once per receiver
                return self._unavailable(exc)
        lane, channel = receiver.lane, self.facts["channel"]
        async with lane.serialized(channel):
            if self.kind == "voucher":
                ticket = await lane.admit(self.raw, self.requirements)
                if ticket is not None:
                    return await self._in_lane(receiver, ticket, produce)
            try:
                return await self._verified(receiver, produce)
            finally:
                lane.forget(channel)

    async def _in_lane(self, receiver: Receiver, ticket: Ticket, produce: Produce) -> Answer:
        """The voucher was checked in process: query, then one commit (or the SDK path)."""
        self._event(PAYMENT_VERIFIED, 200, started=self.started, lane=True)
        answer = await produce()
        if answer.status_code != 200:
            self._event(PAYMENT_FAILED, answer.status_code, "not_charged_query_failed")
            return answer
        charged = self._charge(answer)
        try:
            won = await receiver.lane.commit(
                ticket, self.raw, self.requirements, self._voucher, charged
            )
        except Exception as exc:
            return self._not_recorded(exc)
        if won is None:  # the channel moved under us: the SDK path has the last word
            try:
                return await self._verified(receiver, _ready(answer))
            finally:
                receiver.lane.forget(self.facts["channel"])
        before, after = won.before, won.after
        state = {
            "channelId": before.channel_id,
            "balance": before.balance,
            "totalClaimed": before.total_claimed,
            "withdrawRequestedAt": before.withdraw_requested_at,
            "refundNonce": str(before.refund_nonce),
            "chargedCumulativeAmount": after.charged_cumulative_amount,
        }
        settled = SettleResponse(  # what the SDK's local voucher commit answers
            success=True,
            payer=before.channel_config.payer.lower(),
            transaction="",
            network=self.requirements.network,
            amount="",
            extra={"channelState": state, "chargedAmount": str(charged)},
        )
        return self._served(settled, answer, charged)

    async def _verified(self, receiver: Receiver, produce: Produce) -> Answer:
        """The SDK path: verify and reserve, query, then commit and book (or release)."""
        try:
            verified = await run_in_threadpool(
                receiver.server.verify_payment, self.payload, self.requirements
            )
        except PaymentAbortedError as exc:
            return self._refused(receiver, exc.reason)
        except Exception as exc:  # the facilitator is down: nothing reserved, nothing charged
            return self._unavailable(exc)
        if not verified.is_valid:
            return self._refused(receiver, verified.invalid_reason or "invalid_payment")
        self._event(PAYMENT_VERIFIED, 200, started=self.started)
        if self.kind == "refund":
            return await self._refund(receiver)
        try:
            answer = await produce()
        except BaseException:
            await self._release(receiver)
            raise
        if answer.status_code != 200:
            await self._release(receiver)
            self._event(PAYMENT_FAILED, answer.status_code, "not_charged_query_failed")
            return answer
        return await self._commit(receiver, answer)

    async def _settle(
        self, receiver: Receiver, *, book: bool, charged: int | None = None
    ) -> SettleResponse | Answer:
        """Commit the voucher (locally) or settle the deposit or refund (at the facilitator),
        charging `charged` (default: the offered amount) and booking it in the channel
        update's transaction; on any failure the reservation is released and the answer
        says why."""
        requirements = self.requirements
        if charged is not None and str(charged) != requirements.amount:
            requirements = requirements.model_copy(update={"amount": str(charged)})
        try:
            settled = await run_in_threadpool(self._settle_booked, receiver, requirements, book)
        except BookingFailed as exc:
            await self._release(receiver)
            return self._not_recorded(exc)
        except PaymentAbortedError as exc:
            await self._release(receiver)
            return self._refused(receiver, exc.reason)
        except Exception as exc:  # a deposit or refund whose settle could not be sent
            await self._release(receiver)
            return self._unavailable(exc)
        if not settled.success:
            await self._release(receiver)
            return self._refused(receiver, settled.error_reason or "settlement_failed")
        return settled

    def _settle_booked(
        self, receiver: Receiver, requirements: PaymentRequirements, book: bool
    ) -> SettleResponse:
        if not book:
            return receiver.server.settle_payment(self.payload, requirements)

        def booked(conn: Connection, before: Channel | None, after: Channel) -> None:
            try:
                self._book(conn, before, after)
            except Exception as exc:
                raise BookingFailed(f"the voucher could not be booked: {exc}") from exc

        with receiver.storage.booking(booked):
            return receiver.server.settle_payment(self.payload, requirements)

    async def _commit(self, receiver: Receiver, answer: Answer) -> Answer:
        charged = self._charge(answer)
        settled = await self._settle(receiver, book=True, charged=charged)
        if isinstance(settled, Answer):
            return settled
        return self._served(settled, answer, charged)

    def _served(self, settled: SettleResponse, answer: Answer, charged: int) -> Answer:
        extra = {"cumulative": _cumulative(settled), "charged": charged}
        if settled.transaction:
            self._event(PAYMENT_SETTLED, 200, transaction=settled.transaction, **extra)
        else:
            self._event(PAYMENT_VOUCHER, 200, **extra)
        answer.set_headers(answers.receipt_headers(settled, 2))
        answer.set_headers(answers.EXPOSE)
        return answer

    def _charge(self, answer: Answer) -> int:
        """What this call costs: the rows returned at a row-priced tenant's rate (never above
        the offered maximum the voucher authorized), else the offered price."""
        offered = int(self.requirements.amount)
        rate = self.call.tenant.price_per_1k_rows_atomic
        if not rate or answer.rows is None:
            return offered
        return min(offered, rows_charge(rate, answer.rows))

    def _book(self, conn: Connection, before: Channel | None, after: Channel) -> None:
        """Book what this update charged (nothing, if it charged nothing), in its transaction."""
        found = self._voucher(before, after)
        if found is not None:
            book_vouchers(conn, [found])

    def _voucher(self, before: Channel | None, after: Channel) -> tuple[Voucher, bool] | None:
        """What this update charged, to book (None if nothing), and whether it was paid to
        the tenant's own wallet."""
        cumulative = int(after.charged_cumulative_amount)
        amount = cumulative - (int(before.charged_cumulative_amount) if before else 0)
        if amount <= 0:
            return None
        r = self.requirements
        voucher = Voucher(
            network=r.network,
            channel_id=self.facts["channel"],
            cumulative=cumulative,
            amount=amount,
            tenant_id=self.call.tenant.tenant_id,
            receiver=r.pay_to,
            payer=self.facts["payer"],
        )
        own = self.call.tenant.pay_to  # the tenant version this call was priced for
        return voucher, bool(own) and own.lower() == r.pay_to.lower()

    async def _refund(self, receiver: Receiver) -> Answer:
        settled = await self._settle(receiver, book=False)
        if isinstance(settled, Answer):
            return settled
        self._event(PAYMENT_SETTLED, 200, transaction=settled.transaction, refund=True)
        body = {"ok": True, "refunded": True, "channelId": self.facts["channel"]}
        return json_answer(body, headers={**answers.receipt_headers(settled, 2), **answers.EXPOSE})

    async def _release(self, receiver: Receiver) -> None:
        """Free this request's reservation: nothing was charged, the payer may call again."""
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(receiver.scheme.clear_pending_request, self.payload)

    # -- answers -----------------------------------------------------------------------------

    def _refused(self, receiver: Receiver, reason: str) -> Answer:
        """402: the payment was refused and nothing charged (corrective for a stale voucher)."""
        self._event(PAYMENT_FAILED, 402, reason)
        required = receiver.server.create_payment_required_response(
            [r.model_copy(deep=True) for r in self.offer.accepts],  # enriched in place
            ResourceInfo(
                url=self.call.resource_url, description=self.offer.description, mime_type=MIME_TYPE
            ),
            reason,  # the scheme adds channelState to a cumulative-mismatch 402
            payment_payload=self.payload,
        )
        receiver.scheme.take_request_context(self.payload)  # no snapshot left behind
        header = encode_payment_required_header(required)
        detail = (
            "this voucher does not continue the channel's state: sign the next one from the "
            "channelState in PAYMENT-REQUIRED; nothing was charged"
            if reason == CUMULATIVE_MISMATCH
            else f"the channel payment was refused ({reason}); nothing was charged"
        )
        return answers.error_answer(
            402,
            "payment_invalid",
            self.call.request_id,
            detail,
            headers={"PAYMENT-REQUIRED": header, "Access-Control-Expose-Headers": EXPOSE_HEADERS},
            reason=reason,
            x402Version=2,
        )

    def _not_recorded(self, exc: Exception) -> Answer:
        self._event(PAYMENT_FAILED, 503, "not_charged_not_recorded", detail=str(exc)[:300])
        return answers.error_answer(
            503,
            "payment_not_recorded",
            self.call.request_id,
            "the payment could not be recorded; nothing was charged, retry later",
            headers={"Retry-After": answers.RETRY_AFTER_SECONDS},
        )

    def _unavailable(self, exc: Exception) -> Answer:
        self._event(PAYMENT_FAILED, 503, "facilitator_unavailable", detail=str(exc)[:300])
        return answers.error_answer(
            503,
            "facilitator_unavailable",
            self.call.request_id,
            "the payment facilitator cannot be reached; nothing was charged, retry later",
            headers={"Retry-After": answers.RETRY_AFTER_SECONDS},
        )

    def _event(self, kind: str, status: int, reason: str | None = None, **details: Any) -> None:
        self.paywall._event(kind, self.call, status, reason, **details, **self.facts)


def _ready(answer: Answer) -> Callable[[], Awaitable[Answer]]:
    """A `produce` that gives the answer already produced (the query ran once)."""

    async def produce() -> Answer:
        return answer

    return produce


def _cumulative(settled: SettleResponse) -> int:
    state = (settled.extra or {}).get("channelState") or {}
    return int(state["chargedCumulativeAmount"])
