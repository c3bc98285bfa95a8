"""Durable payment state: nonce claims, settled payments, stored answers for payment ids.

Synchronous SQLAlchemy Core (SQLite or PostgreSQL, the registry's engine); the paywall calls
it from a worker thread. Every method is one short transaction, and every change of a claim's
status is a compare-and-swap on the status it expects, so two gateways racing over one
authorization cannot both act on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from claw402.clock import now as _now
from claw402.ledger.settlements import post_settlement, settle_claim_from_chain
from claw402.payments.schema import (
    CLAIMED,
    PENDING,
    RELEASED,
    SETTLED,
    payment_claims,
    payment_responses,
    payments,
)

if TYPE_CHECKING:
    from claw402.ledger.chain import TokenLog

_BIGINT_MAX = 2**63 - 1  # a validBefore beyond it never expires in practice


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    network: str
    payer: str
    nonce: str
    tenant_id: str
    request_id: str
    amount: int
    asset: str
    pay_to: str
    valid_before: int | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of a claim: ours (`id` set), or the row that holds the authorization
    (`status`, `tx_hash`, and the whole row in `found`)."""

    id: int | None
    status: str
    tx_hash: str | None = None
    found: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def won(self) -> bool:
        return self.id is not None

    @property
    def exhausted(self) -> bool:
        """Released, and its failed attempts used up: the authorization is spent for us."""
        return self.status == RELEASED and not self.won


@dataclass(frozen=True, slots=True)
class SettledPayment:
    network: str
    tx_hash: str
    payer: str
    amount: int
    asset: str
    pay_to: str
    tenant_id: str
    request_id: str
    resource: str


@dataclass(frozen=True, slots=True)
class StoredResponse:
    payload_sha256: str
    status_code: int
    headers: dict[str, str]
    body: bytes


class PaymentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- claims ----------------------------------------------------------------------------

    def claim(self, request: ClaimRequest, max_attempts: int = 3) -> Claim:
        """Insert the claim row, or take back a released one with attempts left; else report
        the row that holds the authorization."""
        now = _now()
        row = self._row(request, now)
        try:
            with self.engine.begin() as conn:
                claim_id = conn.execute(
                    insert(payment_claims).returning(payment_claims.c.id),
                    {**row, "created_at": now, "attempts": 0},
                ).scalar_one()
            return Claim(claim_id, CLAIMED)
        except IntegrityError:
            pass
        c = payment_claims.c
        with self.engine.begin() as conn:
            retaken = conn.execute(
                update(payment_claims)
                .where(
                    c.network == row["network"],
                    c.payer == row["payer"],
                    c.nonce == row["nonce"],
                    c.status == RELEASED,
                    c.attempts < max_attempts,
                )
                .values(row)
                .returning(c.id)
            ).scalar()
            if retaken is not None:
                return Claim(retaken, CLAIMED)
            found = (
                conn.execute(
                    select(payment_claims).where(
                        c.network == row["network"],
                        c.payer == row["payer"],
                        c.nonce == row["nonce"],
                    )
                )
                .mappings()
                .first()
            )
        if found is None:  # deleted between our insert and this read: still not ours
            return Claim(None, CLAIMED)
        return Claim(None, found["status"], found["tx_hash"], dict(found))

    @staticmethod
    def _row(request: ClaimRequest, now: datetime) -> dict[str, Any]:
        valid_before = request.valid_before
        return {
            "network": request.network,
            "payer": request.payer.lower(),
            "nonce": request.nonce.lower(),
            "status": CLAIMED,
            "tenant_id": request.tenant_id,
            "request_id": request.request_id,
            "amount_atomic": request.amount,
            "asset": request.asset,
            "pay_to": request.pay_to,
            "valid_before": None if valid_before is None else min(valid_before, _BIGINT_MAX),
            "updated_at": now,
        }

    def release(
        self,
        claim_id: int,
        *,
        failed: bool = False,
        verified: str | None = None,
        expect: str = CLAIMED,
    ) -> None:
        """Free an unused claim (if still `expect`) so the same authorization can be presented
        again; `failed` counts the attempt; `verified` is the digest the facilitator verified."""
        c = payment_claims.c
        values: dict[str, Any] = {"status": RELEASED, "updated_at": _now()}
        if failed:
            values["attempts"] = c.attempts + 1
        if verified is not None:
            values["verified_sha256"] = verified
        with self.engine.begin() as conn:
            conn.execute(
                update(payment_claims).where(c.id == claim_id, c.status == expect).values(values)
            )

    def retake_pending(self, claim_id: int) -> bool:
        """Take a pending claim back to settle its (unused, unexpired) authorization again."""
        c = payment_claims.c
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(payment_claims)
                .where(c.id == claim_id, c.status == PENDING)
                .values(status=CLAIMED, updated_at=_now())
            )
        return taken.rowcount == 1

    def mark_pending(self, claim_id: int, tx_hash: str | None, verified: str | None = None) -> None:
        """Settlement outcome unknown (broadcast, then timeout): left for a retry or the
        reconciler."""
        values: dict[str, Any] = {"status": PENDING, "tx_hash": tx_hash, "updated_at": _now()}
        if verified is not None:
            values["verified_sha256"] = verified
        with self.engine.begin() as conn:
            conn.execute(
                update(payment_claims).where(payment_claims.c.id == claim_id).values(values)
            )

    def settle(self, claim_id: int, payment: SettledPayment, verified: str | None = None) -> None:
        """Mark the claim settled and served, and record the payment for the ledger, atomically."""
        now = _now()
        values: dict[str, Any] = {
            "status": SETTLED, "tx_hash": payment.tx_hash, "updated_at": now, "served_at": now
        }  # fmt: skip
        if verified is not None:
            values["verified_sha256"] = verified
        with self.engine.begin() as conn:
            conn.execute(
                update(payment_claims).where(payment_claims.c.id == claim_id).values(values)
            )
            conn.execute(
                insert(payments),
                {
                    "network": payment.network,
                    "tx_hash": payment.tx_hash,
                    "payer": payment.payer,
                    "amount_atomic": payment.amount,
                    "asset": payment.asset,
                    "pay_to": payment.pay_to,
                    "tenant_id": payment.tenant_id,
                    "request_id": payment.request_id,
                    "resource": payment.resource,
                    "settled_at": now,
                },
            )
            post_settlement(conn, claim_id, payment.tx_hash)  # same transaction: never unbooked

    def settle_from_chain(
        self, claim_id: int, transfer: TokenLog, resource: str, verified: str | None = None
    ) -> None:
        """Book a claim the chain shows paid (its settle reply was lost), exactly as
        `reconcile` would: whichever of the two comes first posts it, once."""
        c = payment_claims.c
        with self.engine.begin() as conn:
            if verified is not None:
                conn.execute(
                    update(payment_claims).where(c.id == claim_id).values(verified_sha256=verified)
                )
            claim = conn.execute(select(payment_claims).where(c.id == claim_id)).mappings().one()
            if claim["status"] == SETTLED:
                return
            settle_claim_from_chain(conn, claim["network"], claim, transfer, resource=resource)

    def mark_served(self, claim_id: int) -> bool:
        """Claim the one paid answer of a settled claim; False if it was already served."""
        c = payment_claims.c
        with self.engine.begin() as conn:
            served = conn.execute(
                update(payment_claims)
                .where(c.id == claim_id, c.status == SETTLED, c.served_at.is_(None))
                .values(served_at=_now())
            )
        return served.rowcount == 1

    def pending_claims(self) -> list[dict[str, Any]]:
        """Claims whose settlement is unknown, oldest first (the reconciler's work list)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(payment_claims)
                .where(payment_claims.c.status == PENDING)
                .order_by(payment_claims.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    # -- payment-identifier answers --------------------------------------------------------

    def stored_response(self, payment_id: str) -> StoredResponse | None:
        r = payment_responses.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(r.payload_sha256, r.status_code, r.headers, r.body).where(
                    r.payment_id == payment_id
                )
            ).first()
        if row is None:
            return None
        return StoredResponse(row.payload_sha256, row.status_code, dict(row.headers), row.body)

    def store_response(self, payment_id: str, tenant_id: str, response: StoredResponse) -> None:
        """Keep the first answer for `payment_id`; a later one for the same id is dropped."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(payment_responses),
                    {
                        "payment_id": payment_id,
                        "payload_sha256": response.payload_sha256,
                        "tenant_id": tenant_id,
                        "status_code": response.status_code,
                        "headers": response.headers,
                        "body": response.body,
                        "created_at": _now(),
                    },
                )
        except IntegrityError:
            pass
