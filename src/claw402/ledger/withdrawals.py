"""Withdrawals: reserve a creator's funds now, pay them on chain later (see `payouts`).

States: `pending` (funds reserved) -> `sending` (a signed transfer is recorded, maybe
broadcast) -> `completed` (mined; tx hash) or `failed` (reason; funds released). Each money
move is a ledger transaction keyed by the withdrawal and step, so no step can post twice.

Reserving is a read-check-write on the tenant's available balance, done under the tenant's
lock (`db.lock`): concurrent withdrawals queue, and each sees the ones before it, so together
they never take more than is available.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from claw402.clock import aware, now
from claw402.control import audit
from claw402.ledger import accounts
from claw402.ledger.amounts import atomic_to_usd
from claw402.ledger.balances import PAYOUT, account_balance
from claw402.ledger.book import credit, debit, post
from claw402.ledger.db import lock
from claw402.ledger.schema import withdrawals

PENDING, SENDING, COMPLETED, FAILED = "pending", "sending", "completed", "failed"
RESERVE, FEE_COLLECTION, RELEASE = "withdrawal", "fee_collection", "withdrawal_released"


class WithdrawalError(ValueError):
    """A withdrawal refused; nothing was reserved."""

    code = "withdrawal_refused"


class InsufficientFunds(WithdrawalError):
    code = "insufficient_funds"


@dataclass(frozen=True, slots=True)
class Withdrawal:
    id: int
    tenant_id: str
    amount: int
    address: str
    status: str
    reason: str | None
    network: str | None
    chain_nonce: int | None
    tx_hash: str | None
    raw_tx: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenantId": self.tenant_id,
            "amount": atomic_to_usd(self.amount),
            "amountAtomic": str(self.amount),
            "address": self.address,
            "status": self.status,
            "reason": self.reason,
            "txHash": self.tx_hash,
            "requestedBy": self.requested_by,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }


def _withdrawal(row: Any) -> Withdrawal:
    return Withdrawal(
        id=row["id"],
        tenant_id=row["tenant_id"],
        amount=int(row["amount"]),
        address=row["address"],
        status=row["status"],
        reason=row["reason"],
        network=row["network"],
        chain_nonce=row["chain_nonce"],
        tx_hash=row["tx_hash"],
        raw_tx=row["raw_tx"],
        requested_by=row["requested_by"],
        created_at=aware(row["created_at"]),
        updated_at=aware(row["updated_at"]),
    )


def get(conn: Connection, withdrawal_id: int) -> Withdrawal:
    row = conn.execute(select(withdrawals).where(withdrawals.c.id == withdrawal_id)).mappings()
    return _withdrawal(row.one())


def listing(
    engine: Engine,
    *,
    status: str | None = None,
    tenant_id: str | None = None,
    limit: int | None = None,
) -> list[Withdrawal]:
    """Withdrawals in the order they are paid (oldest first)."""
    query = select(withdrawals).order_by(withdrawals.c.id)
    if status is not None:
        query = query.where(withdrawals.c.status == status)
    if tenant_id is not None:
        query = query.where(withdrawals.c.tenant_id == tenant_id)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [_withdrawal(r) for r in conn.execute(query).mappings()]


def request(engine: Engine, tenant_id: str, amount: int, address: str, actor: str) -> Withdrawal:
    """Reserve `amount` for a payout to `address`, or raise `InsufficientFunds`.

    Fees a directly-paid creator owes are collected from custodial earnings first.
    """
    if type(amount) is not int or amount <= 0:
        raise WithdrawalError(f"a withdrawal must be a positive number of atomic units: {amount!r}")
    with engine.begin() as conn:
        lock(conn, f"tenant:{tenant_id}")
        held = account_balance(conn, accounts.available(tenant_id))
        collect = min(held, account_balance(conn, accounts.fees_due(tenant_id)))
        if amount > held - collect:
            raise InsufficientFunds(
                f"only ${atomic_to_usd(held - collect)} is available, "
                f"${atomic_to_usd(amount)} was asked"
            )
        moment = now()
        wid = conn.execute(
            insert(withdrawals)
            .values(
                tenant_id=tenant_id,
                amount=amount,
                address=address,
                status=PENDING,
                requested_by=actor,
                created_at=moment,
                updated_at=moment,
            )
            .returning(withdrawals.c.id)
        ).scalar_one()
        if collect:
            post(
                conn,
                key=f"withdrawal:{wid}:fees",
                kind=FEE_COLLECTION,
                tenant_id=tenant_id,
                entries=[
                    debit(accounts.available(tenant_id), collect),
                    credit(accounts.fees_due(tenant_id), collect),
                ],
                memo="fees owed on direct payments, collected before a withdrawal",
            )
        post(
            conn,
            key=f"withdrawal:{wid}:reserve",
            kind=RESERVE,
            tenant_id=tenant_id,
            entries=[
                debit(accounts.available(tenant_id), amount),
                credit(accounts.reserved(tenant_id), amount),
            ],
        )
        audit.append(
            conn,
            actor,
            "withdrawal.requested",
            tenant_id=tenant_id,
            subject=f"withdrawal:{wid}",
            details={"amount": amount, "address": address, "feesCollected": collect},
        )
        return get(conn, wid)


def mark_sending(
    conn: Connection,
    w: Withdrawal,
    *,
    network: str,
    chain_nonce: int,
    tx_hash: str,
    raw_tx: str,
    actor: str,
) -> bool:
    """Record the signed transfer before it is broadcast; False if another runner took it."""
    moved = conn.execute(
        update(withdrawals)
        .where(withdrawals.c.id == w.id, withdrawals.c.status == PENDING)
        .values(
            status=SENDING,
            network=network,
            chain_nonce=chain_nonce,
            tx_hash=tx_hash.lower(),
            raw_tx=raw_tx,
            updated_at=now(),
        )
    ).rowcount
    if moved == 1:
        audit.append(
            conn,
            actor,
            "payout.sending",
            tenant_id=w.tenant_id,
            subject=f"withdrawal:{w.id}",
            details={"txHash": tx_hash.lower(), "nonce": chain_nonce, "to": w.address},
        )
    return moved == 1


def complete(
    conn: Connection, w: Withdrawal, *, treasury: str, tx_hash: str, log_index: int, actor: str
) -> bool:
    """The transfer is mined: move the reserved funds out of the treasury, once."""
    moved = conn.execute(
        update(withdrawals)
        .where(withdrawals.c.id == w.id, withdrawals.c.status == SENDING)
        .values(status=COMPLETED, updated_at=now())
    ).rowcount
    if moved != 1:
        return False
    post(
        conn,
        key=f"withdrawal:{w.id}:complete",
        kind=PAYOUT,
        tenant_id=w.tenant_id,
        network=w.network,
        tx_hash=tx_hash,
        log_index=log_index,
        entries=[
            debit(accounts.reserved(w.tenant_id), w.amount),
            credit(accounts.treasury(treasury), w.amount),
        ],
        memo=f"payout to {w.address}",
    )
    audit.append(
        conn,
        actor,
        "payout.completed",
        tenant_id=w.tenant_id,
        subject=f"withdrawal:{w.id}",
        details={"txHash": tx_hash.lower(), "amount": w.amount, "to": w.address},
    )
    return True


def fail(conn: Connection, w: Withdrawal, reason: str, *, actor: str) -> bool:
    """Give up on a withdrawal that can no longer be mined; its funds return to available."""
    moved = conn.execute(
        update(withdrawals)
        .where(withdrawals.c.id == w.id, withdrawals.c.status.in_([PENDING, SENDING]))
        .values(status=FAILED, reason=reason, updated_at=now())
    ).rowcount
    if moved != 1:
        return False
    post(
        conn,
        key=f"withdrawal:{w.id}:release",
        kind=RELEASE,
        tenant_id=w.tenant_id,
        entries=[
            debit(accounts.reserved(w.tenant_id), w.amount),
            credit(accounts.available(w.tenant_id), w.amount),
        ],
        memo=reason,
    )
    audit.append(
        conn,
        actor,
        "payout.failed",
        tenant_id=w.tenant_id,
        subject=f"withdrawal:{w.id}",
        details={"reason": reason, "amount": w.amount, "txHash": w.tx_hash},
    )
    return True
