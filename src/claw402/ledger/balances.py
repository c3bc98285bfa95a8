"""What the books say: a creator's balance, any account's balance, and the invariants.

Balances are sums of postings (no cached totals to drift). `check_books` is what tests and
`402claw reconcile` assert: every transaction sums to zero and no account is below zero.
Given an engine, each first posts the channel vouchers a gateway recorded and has not
posted yet (its poster runs a few milliseconds behind the requests): the books are read
whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from claw402.ledger import accounts
from claw402.ledger.amounts import atomic_to_usd, fee_bps
from claw402.ledger.channels import CLAIM
from claw402.ledger.schema import ledger_postings, ledger_transactions
from claw402.ledger.settlements import SETTLEMENT, SETTLEMENT_DIRECT
from claw402.ledger.vouchers import VOUCHER, VOUCHER_DIRECT, post_pending

_EARNINGS = (SETTLEMENT, SETTLEMENT_DIRECT, VOUCHER)
PAYOUT = "payout"


@dataclass(frozen=True, slots=True)
class Balance:
    """A creator's money in atomic units. `available` is what a withdrawal may take now."""

    tenant_id: str
    earned: int  # gross of every settled payment and accepted channel voucher
    fees: int  # platform fees charged on those payments
    paid_direct: int  # gross paid straight to the creator's own wallet (never held here)
    fees_due: int  # fees on direct payments not yet collected
    pending: int  # reserved by pending or sending withdrawals
    withdrawn: int  # paid out on chain
    available: int
    fee_bps: int  # the rate new payments are charged
    unclaimed: int = 0  # channel earnings (net) not yet claimed from the escrow: not withdrawable
    claimed: int = 0  # channel earnings (net) claimed, part of `available` until withdrawn

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        out: dict[str, Any] = {"tenantId": self.tenant_id, "feeBps": self.fee_bps}
        for name in (
            "earned",
            "fees",
            "paid_direct",
            "fees_due",
            "pending",
            "withdrawn",
            "available",
            "unclaimed",
            "claimed",
        ):
            camel = name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:])
            out[camel] = atomic_to_usd(data[name])
            out[camel + "Atomic"] = str(data[name])
        return out


def account_balance(conn: Connection, code: str) -> int:
    """The balance on the account's normal side (assets: debits - credits; others reversed)."""
    total = conn.execute(
        select(func.coalesce(func.sum(ledger_postings.c.amount), 0)).where(
            ledger_postings.c.account == code
        )
    ).scalar_one()
    return accounts.normal_sign(code) * int(total)


def balance(engine: Engine | Connection, tenant_id: str) -> Balance:
    """The creator's balance: what the demo and `402claw balance` show."""
    if isinstance(engine, Engine):
        post_pending(engine)
        with engine.connect() as conn:
            return balance(conn, tenant_id)
    conn = engine
    t = ledger_transactions.c
    gross = dict(
        conn.execute(
            select(t.kind, func.coalesce(func.sum(t.gross), 0))
            .where(t.tenant_id == tenant_id, t.kind.in_([*_EARNINGS, VOUCHER_DIRECT]))
            .group_by(t.kind)
        ).all()
    )
    withdrawn = conn.execute(
        select(func.coalesce(func.sum(ledger_postings.c.amount), 0))
        .join(ledger_transactions, ledger_transactions.c.id == ledger_postings.c.transaction_id)
        .where(t.kind == PAYOUT, ledger_postings.c.account == accounts.reserved(tenant_id))
    ).scalar_one()
    claimed = conn.execute(
        select(func.coalesce(func.sum(ledger_postings.c.amount), 0))
        .join(ledger_transactions, ledger_transactions.c.id == ledger_postings.c.transaction_id)
        .where(t.kind == CLAIM, ledger_postings.c.account == accounts.available(tenant_id))
    ).scalar_one()
    held = account_balance(conn, accounts.available(tenant_id))
    due = account_balance(conn, accounts.fees_due(tenant_id))
    return Balance(
        tenant_id=tenant_id,
        earned=sum(int(value) for value in gross.values()),
        fees=account_balance(conn, accounts.fees(tenant_id)),
        paid_direct=int(gross.get(SETTLEMENT_DIRECT, 0)) + int(gross.get(VOUCHER_DIRECT, 0)),
        fees_due=due,
        pending=account_balance(conn, accounts.reserved(tenant_id)),
        withdrawn=int(withdrawn),
        available=max(0, held - due),
        fee_bps=fee_bps(),
        unclaimed=account_balance(conn, accounts.receivable(tenant_id)),
        claimed=-int(claimed),
    )


def trial_balance(conn: Connection) -> dict[str, int]:
    """Every account's balance on its normal side."""
    rows = conn.execute(
        select(ledger_postings.c.account, func.sum(ledger_postings.c.amount)).group_by(
            ledger_postings.c.account
        )
    ).all()
    return {code: accounts.normal_sign(code) * int(total) for code, total in rows}


def check_books(engine: Engine | Connection) -> list[str]:
    """Problems with the books, if any: unbalanced transactions, accounts below zero."""
    if isinstance(engine, Engine):
        post_pending(engine)
        with engine.connect() as conn:
            return check_books(conn)
    conn = engine
    problems = []
    unbalanced = conn.execute(
        select(ledger_postings.c.transaction_id, func.sum(ledger_postings.c.amount))
        .group_by(ledger_postings.c.transaction_id)
        .having(func.sum(ledger_postings.c.amount) != 0)
    ).all()
    problems += [f"transaction {tid} sums to {total}, not zero" for tid, total in unbalanced]
    problems += [
        f"account {code} is below zero ({amount})"
        for code, amount in trial_balance(conn).items()
        if amount < 0
    ]
    return problems
