"""The limits a call passes before its tenant's guard: the caller's rate, then the tenant's
usage books (quotas and the daily spend cap). Runtime-neutral: it sees a `TenantCall`.

Order matters for money: the books are taken before the paywall verifies or settles anything,
so a call over its cap is refused with nothing charged, and they are given back when the call
is not served (a failed payment, a query error), so only served calls count. Counters or books
that fail answer a paid call 503 `limits_unavailable` (nothing verified, charged or served); a
give-back that fails keeps the answer the call earned (see `_give_back`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime

from anyio import to_thread
from sqlalchemy import Engine

from claw402.clock import now as utc_now
from claw402.limits.caller import Callers, parse_proxies
from claw402.limits.counters import CountersDown, Hit, MemoryCounters, RateCounters, RedisCounters
from claw402.limits.notify import REDIS_URL_ENV, prefix
from claw402.limits.policy import Policy, state_header
from claw402.limits.signer import proven_payer
from claw402.limits.usage import SPEND_DAY, BooksDown, Refused, Slot, UsageBooks, slots
from claw402.payments.codec import InvalidPayment, decode_once, payment_header
from claw402.tenant_api.answer import Answer, error_answer
from claw402.tenant_api.call import TenantCall, paid_route

Produce = Callable[[], Awaitable[Answer]]
# Only a 200 counts: a 202 (pending, "do not pay again") is answered again, 200 once paid.
SERVED = frozenset({200})
log = logging.getLogger(__name__)


class Limiter:
    def __init__(
        self,
        rates: RateCounters,
        books: UsageBooks | None,
        callers: Callers | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.rates = rates
        self.books = books
        self.callers = callers or Callers()
        self._clock = clock
        # (tenant, counter, window, limit) known full: a raised limit is a new key
        self._exhausted: set[tuple[str, str, str, int]] = set()

    @classmethod
    def from_env(cls, engine: Engine) -> Limiter | None:
        """Redis counters when `CLAW402_REDIS_URL` is set (keys under `CLAW402_REDIS_PREFIX`),
        else this process's own; None (no limits) when `CLAW402_LIMITS=off` (benchmarks)."""
        if os.environ.get("CLAW402_LIMITS", "on").lower() == "off":
            return None
        url = os.environ.get(REDIS_URL_ENV)
        rates: RateCounters = RedisCounters(url, prefix=prefix()) if url else MemoryCounters()
        callers = Callers(parse_proxies(os.environ.get("CLAW402_TRUSTED_PROXIES")))
        return cls(rates, UsageBooks(engine), callers)

    def close(self) -> None:
        self.rates.close()
        if self.books is not None:
            self.books.close()

    async def run(
        self, call: TenantCall, policy: Policy, peer: str | None, rest: Produce
    ) -> Answer:
        """The answer of the rest of the steps, if the limits let the call through."""
        records = paid_route(call.method, call.path)
        paid = records and call.route.price_atomic > 0
        header = payment_header(call.headers) if paid else None
        # A wallet is the caller only once its signature is proven: a header naming another
        # wallet must not spend that wallet's budget.
        who = None
        if header:
            with suppress(InvalidPayment):  # the paywall answers it 400: the client's call here
                who = proven_payer(decode_once(call, header))
        if who is None:
            who = "a:" + self.callers.client(peer, call.headers)
        rate = policy.rate
        try:
            hit: Hit | None = self.rates.hit(f"{policy.tenant_id}:{who}", rate.limit, rate.window)
        except CountersDown as exc:
            if paid:  # fail closed: nothing verified, nothing charged, nothing served unpaid
                return _unavailable(call, exc)
            hit = None  # a free route keeps working without the shared counters
        if hit is not None and not hit.allowed:
            answer = error_answer(
                429, "rate_limited", call.request_id,
                f"more than {policy.rate} calls from one caller",
                headers={"retry-after": str(hit.reset)},
            )  # fmt: skip
            return _stamp(answer, policy, hit)
        if not records or not policy.books or self.books is None:
            return _stamp(await rest(), policy, hit)
        if paid and header is None:  # a bare 402 takes nothing; refused only when known full
            full = self._known_full(call.request_id, policy)
            return _stamp(full if full is not None else await rest(), policy, hit)
        return _stamp(await self._booked(call, policy, rest), policy, hit)

    async def _booked(self, call: TenantCall, policy: Policy, rest: Produce) -> Answer:
        books = self.books
        assert books is not None
        wanted = slots(policy, self._clock())
        try:
            refused = await to_thread.run_sync(books.take, policy.tenant_id, wanted)
        except BooksDown as exc:  # fail closed, as the edge's TenantBooks do
            return _unavailable(call, exc)
        if refused is not None:
            return self._refuse(call, policy, refused)
        served = False
        try:
            answer = await rest()
            served = answer.status_code in SERVED
            return answer
        finally:
            if not served:
                await _give_back(call, books, policy.tenant_id, wanted)

    def _refuse(self, call: TenantCall, policy: Policy, refused: Refused) -> Answer:
        slot = refused.slot
        if slot.counter == SPEND_DAY:
            return error_answer(
                402, "cap_exceeded", call.request_id,
                f"this tenant's daily spend cap is reached; resets {slot.reset.isoformat()}",
                headers={"retry-after": str(self._seconds_to(slot.reset))},
            )  # fmt: skip
        if len(self._exhausted) > 10_000:
            self._exhausted.clear()
        self._exhausted.add((policy.tenant_id, slot.counter, slot.window, slot.limit))
        return self._quota_answer(call.request_id, slot.counter, slot.limit, slot.reset)

    def _known_full(self, request_id: str, policy: Policy) -> Answer | None:
        if not self._exhausted:
            return None
        for slot in slots(policy, self._clock()):
            if (policy.tenant_id, slot.counter, slot.window, slot.limit) in self._exhausted:
                return self._quota_answer(request_id, slot.counter, slot.limit, slot.reset)
        return None

    def _quota_answer(self, request_id: str, counter: str, limit: int, reset: datetime) -> Answer:
        window = "day" if counter.endswith("day") else "month"
        return error_answer(
            429, "usage_quota_exceeded", request_id,
            f"this tenant's {window} quota of {limit} calls is used up",
            headers={"retry-after": str(self._seconds_to(reset))},
            quota={"window": window, "limit": limit, "reset": reset.isoformat()},
        )  # fmt: skip

    def _seconds_to(self, when: datetime) -> int:
        return max(1, int((when - self._clock()).total_seconds() + 0.999))


def _unavailable(call: TenantCall, exc: Exception) -> Answer:
    return error_answer(503, "limits_unavailable", call.request_id, str(exc),
                        headers={"retry-after": "1"})  # fmt: skip


async def _give_back(
    call: TenantCall, books: UsageBooks, tenant_id: str, taken: list[Slot]
) -> None:
    """A give-back that fails leaves the slots taken: the books count one call too many (the
    safe side of a quota or cap), and the answer the call earned stands (a 402, a 202 pending
    "do not pay again", an error): replacing it would hide what became of the payment. Logged,
    and kept in the request's last event as `booksKept`."""
    try:
        await to_thread.run_sync(books.give_back, tenant_id, taken)
    except BooksDown as exc:
        call.books_kept = str(exc)
        log.error("request %s: usage slots not given back: %s", call.request_id, exc)


def _stamp(answer: Answer, policy: Policy, hit: Hit | None) -> Answer:
    if hit is not None:
        answer.raw_headers.append((b"ratelimit-policy", policy.policy_header))
        answer.raw_headers.append((b"ratelimit", state_header(hit.remaining, hit.reset)))
    return answer
