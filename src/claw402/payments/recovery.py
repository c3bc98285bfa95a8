"""The retry of a payment whose settlement was left unknown, answered from the chain.

A retry of the same payment (the payload the facilitator verified, for the same tenant) whose
claim is `pending`, or `settled` by `reconcile` but never served, asks the chain (needs
`rpc_url`): paid -> the settlement is booked (once: the ledger keys it by authorization, as
`reconcile` does), the query runs and the data leaves with a `PAYMENT-RESPONSE` naming the
real transaction; unused and expired -> released, 402 to pay again; unused, still valid and
pending longer than `pending_retry_seconds` -> that same authorization goes through verify
and settle again, which can move the money at most once (the token spends the nonce), while
a fresh payment could be charged beside a lost settle that lands late. Otherwise: 202.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from x402.schemas import SettleResponse

from claw402.clock import aware
from claw402.events.kinds import PAYMENT_FAILED
from claw402.payments.onchain import Outcome
from claw402.payments.schema import PENDING, SETTLED
from claw402.tenant_api.answer import Answer

if TYPE_CHECKING:  # the attempt imports this module; types only, no import cycle
    from claw402.payments.attempt import Attempt
    from claw402.tenant_api.call import Produce


async def recover(attempt: Attempt, found: dict[str, Any], produce: Produce) -> Answer:
    """Answer a retry whose claim is owed: serve it paid, release it, settle again or wait."""
    claim_id = found["id"]
    if found["status"] == SETTLED:  # booked by reconcile, never served
        return await _serve_paid(attempt, claim_id, found["tx_hash"], produce)
    outcome = await chain_outcome(attempt, aware(found["created_at"]).timestamp(), found["tx_hash"])
    if outcome is None:
        attempt._event(PAYMENT_FAILED, 202, "payment_pending")
        return attempt._pending(found["tx_hash"])
    if outcome.used:
        if outcome.transfer is None:
            return await _void(attempt, claim_id)
        await run_in_threadpool(
            attempt.store.settle_from_chain, claim_id, outcome.transfer, attempt.call.resource_url
        )
        return await _serve_paid(attempt, claim_id, outcome.transfer.tx_hash, produce)
    if outcome.chain_time >= int(attempt.payment.authorization["validBefore"]):
        return await _void(attempt, claim_id)
    waited = time.time() - aware(found["updated_at"]).timestamp()
    if waited >= attempt.paywall.config.pending_retry_seconds and await run_in_threadpool(
        attempt.store.retake_pending, claim_id
    ):
        attempt.claim_id = claim_id  # settle this same authorization again
        return await attempt._pay(produce)
    attempt._event(PAYMENT_FAILED, 202, "payment_pending")
    return attempt._pending(found["tx_hash"])


async def chain_outcome(attempt: Attempt, since: float, tx_hash: str | None) -> Outcome | None:
    """What the chain says of this authorization; None without a chain or an answer."""
    chain = attempt.paywall.chain
    if chain is None:
        return None
    try:
        return await run_in_threadpool(
            chain.outcome, attempt.payment.payer, attempt.payment.nonce, since, tx_hash
        )
    except Exception as exc:  # an RPC failure must not become a fresh 402
        attempt._event(PAYMENT_FAILED, 202, "chain_unreadable", detail=str(exc)[:300])
        return None


async def _void(attempt: Attempt, claim_id: int) -> Answer:
    """The authorization never moved money and never will (expired or canceled)."""
    await run_in_threadpool(attempt.store.release, claim_id, expect=PENDING)
    attempt._event(PAYMENT_FAILED, 402, "payment_expired")
    return attempt.paywall._challenge(
        attempt.call,
        attempt.offer,
        "payment_expired",
        "the earlier settlement of this payment never reached the chain and its "
        "authorization can no longer be used: nothing was charged; sign a new payment",
        reason="authorization_unusable",
    )


async def _serve_paid(attempt: Attempt, claim_id: int, tx_hash: str, produce: Produce) -> Answer:
    """The data a payment already on chain paid for, once."""
    answer = await produce()
    if answer.status_code != 200:
        attempt._event(PAYMENT_FAILED, answer.status_code, "paid_query_failed")
        return answer
    if not await run_in_threadpool(attempt.store.mark_served, claim_id):
        return attempt._replayed()
    r = attempt.offer.requirements
    settlement = SettleResponse(
        success=True, transaction=tx_hash, network=r.network, payer=attempt.payment.payer
    )
    return await attempt._receipted(answer, settlement, reason="recovered_from_chain")
