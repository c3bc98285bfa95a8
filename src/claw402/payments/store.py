"""Durable payment state: nonce claims, settled payments, stored answers for payment ids.

Synchronous SQLAlchemy Core (SQLite or PostgreSQL, the registry's engine); the paywall calls
it from a worker thread. Every method is one short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from claw402.ledger.settlements import post_settlement
from claw402.payments.schema import (
    CLAIMED,
    PENDING,
    SETTLED,
    payment_claims,
    payment_responses,
    payments,
)


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


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of a claim: ours (`id` set) or someone else's (`status`, `tx_hash`)."""

    id: int | None
    status: str
    tx_hash: str | None = None

    @property
    def won(self) -> bool:
        return self.id is not None


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


def _now() -> datetime:
    return datetime.now(UTC)


class PaymentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- claims ----------------------------------------------------------------------------

    def claim(self, request: ClaimRequest) -> Claim:
        """Insert the claim row; if the authorization is already claimed, report its state."""
        now = _now()
        row = {
            "network": request.network,
            "payer": request.payer.lower(),
            "nonce": request.nonce.lower(),
            "status": CLAIMED,
            "tenant_id": request.tenant_id,
            "request_id": request.request_id,
            "amount_atomic": request.amount,
            "asset": request.asset,
            "pay_to": request.pay_to,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self.engine.begin() as conn:
                claim_id = conn.execute(
                    insert(payment_claims).returning(payment_claims.c.id), row
                ).scalar_one()
            return Claim(claim_id, CLAIMED)
        except IntegrityError:
            pass
        c = payment_claims.c
        with self.engine.connect() as conn:
            found = conn.execute(
                select(c.status, c.tx_hash).where(
                    c.network == row["network"], c.payer == row["payer"], c.nonce == row["nonce"]
                )
            ).first()
        if found is None:  # released between our insert and this read: still not ours
            return Claim(None, CLAIMED)
        return Claim(None, found.status, found.tx_hash)

    def release(self, claim_id: int) -> None:
        """Forget an unused claim so the same authorization can be presented again."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(payment_claims).where(
                    payment_claims.c.id == claim_id, payment_claims.c.status == CLAIMED
                )
            )

    def mark_pending(self, claim_id: int, tx_hash: str | None) -> None:
        """Settlement outcome unknown (broadcast, then timeout): left for the reconciler."""
        with self.engine.begin() as conn:
            conn.execute(
                update(payment_claims)
                .where(payment_claims.c.id == claim_id)
                .values(status=PENDING, tx_hash=tx_hash, updated_at=_now())
            )

    def settle(self, claim_id: int, payment: SettledPayment) -> None:
        """Mark the claim settled and record the payment for the ledger, atomically."""
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(
                update(payment_claims)
                .where(payment_claims.c.id == claim_id)
                .values(status=SETTLED, tx_hash=payment.tx_hash, updated_at=now)
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
