"""Settled payments -> ledger transactions, exactly once per EIP-3009 authorization.

The identity of a settlement is its authorization (network, payer, nonce): the token lets it
be used once, the gateway knows it when it settles, and `reconcile` reads it from the
`AuthorizationUsed` log. Chain-read postings also carry (tx hash, log index), unique too.

Custody rule: a payment to the tenant's own `pay_to` was paid directly to the creator, so the
platform never holds it: only the fee is booked, as a receivable the creator owes. Any other
payment went to the platform treasury: the treasury is debited the gross, the tenant is
credited gross minus fee, and the fee is the platform's revenue. Fees are taken at posting
time, at the `CLAW402_FEE_BPS` rate then in force (default 5%), rounded down to the unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from claw402.clock import now
from claw402.ledger import accounts
from claw402.ledger.amounts import fee_bps, fee_of
from claw402.ledger.book import Entry, credit, debit, post
from claw402.ledger.claims import SETTLED, payment_claims, payments
from claw402.ledger.db import insert_ignore
from claw402.registry.schema import tenants

if TYPE_CHECKING:  # chain.py loads web3, which `402claw balance` should not pay for
    from claw402.ledger.chain import TokenLog

SETTLEMENT, SETTLEMENT_DIRECT = "settlement", "settlement_direct"


@dataclass(frozen=True, slots=True)
class Settlement:
    network: str
    payer: str
    nonce: str
    tenant_id: str
    amount: int
    pay_to: str
    tx_hash: str
    log_index: int | None = None  # unknown on the gateway's path; read from the log otherwise


def settlement_key(network: str, payer: str, nonce: str) -> str:
    return f"settlement:{network}:{payer.lower()}:{nonce.lower()}"


def post_settlement(conn: Connection, claim_id: int, tx_hash: str) -> int | None:
    """The gateway's call, inside the transaction that records the settled payment."""
    c = payment_claims.c
    claim = conn.execute(
        select(
            c.network, c.payer, c.nonce, c.tenant_id, c.amount_atomic, c.pay_to, tenants.c.pay_to
        )
        .select_from(payment_claims.outerjoin(tenants, tenants.c.tenant_id == c.tenant_id))
        .where(c.id == claim_id)
    ).one()
    settlement = Settlement(
        network=claim.network,
        payer=claim.payer,
        nonce=claim.nonce,
        tenant_id=claim.tenant_id,
        amount=int(claim.amount_atomic),
        pay_to=claim[5],
        tx_hash=tx_hash,
    )
    return post_settled(conn, settlement, direct=_same(claim[6], claim[5]))


def entries_for(
    tenant_id: str, amount: int, pay_to: str, direct: bool, bps: int
) -> tuple[str, list[Entry]]:
    """The kind and postings of one settlement (see the module docstring for the rule)."""
    fee = fee_of(amount, bps)
    if direct:
        fee_entries = [
            debit(accounts.fees_due(tenant_id), fee),
            credit(accounts.fees(tenant_id), fee),
        ]
        return SETTLEMENT_DIRECT, fee_entries if fee else []
    entries = [debit(accounts.treasury(pay_to), amount)]
    if amount - fee:
        entries.append(credit(accounts.available(tenant_id), amount - fee))
    if fee:
        entries.append(credit(accounts.fees(tenant_id), fee))
    return SETTLEMENT, entries


def _same(tenant_pay_to: str | None, paid_to: str) -> bool:
    return bool(tenant_pay_to) and str(tenant_pay_to).lower() == paid_to.lower()


def is_direct(conn: Connection, tenant_id: str, pay_to: str) -> bool:
    """Paid to the tenant's own wallet (its `--pay-to`) rather than to a platform treasury."""
    own = conn.execute(select(tenants.c.pay_to).where(tenants.c.tenant_id == tenant_id)).scalar()
    return _same(own, pay_to)


def post_settled(
    conn: Connection, s: Settlement, *, bps: int | None = None, direct: bool | None = None
) -> int | None:
    """Post `s` unless its authorization was posted already; returns the new transaction id."""
    rate = fee_bps() if bps is None else bps
    if direct is None:
        direct = is_direct(conn, s.tenant_id, s.pay_to)
    kind, entries = entries_for(s.tenant_id, s.amount, s.pay_to, direct, rate)
    return post(
        conn,
        key=settlement_key(s.network, s.payer, s.nonce),
        kind=kind,
        entries=entries,
        tenant_id=s.tenant_id,
        network=s.network,
        tx_hash=s.tx_hash,
        log_index=s.log_index,
        payer=s.payer,
        gross=s.amount,
        memo=f"fee {rate} bps to {s.pay_to}",
    )


def settle_claim_from_chain(
    conn: Connection,
    network: str,
    claim: Mapping[str, Any],
    transfer: TokenLog,
    *,
    resource: str = "(recorded by reconcile from the chain)",
) -> bool:
    """Book a claim whose authorization the chain shows used: post the settlement (once per
    authorization), mark the claim `settled` with its transaction and record the payment.
    Shared by `reconcile` and the paywall's retry of a pending payment, so whichever comes
    first books it and the other finds it booked. True if posted now."""
    assert transfer.to is not None
    settlement = Settlement(
        network=network,
        payer=claim["payer"],
        nonce=claim["nonce"],
        tenant_id=claim["tenant_id"],
        amount=transfer.value,
        pay_to=transfer.to,
        tx_hash=transfer.tx_hash,
        log_index=transfer.log_index,
    )
    posted = post_settled(conn, settlement) is not None
    conn.execute(
        update(payment_claims)
        .where(payment_claims.c.id == claim["id"])
        .values(status=SETTLED, tx_hash=transfer.tx_hash, updated_at=now())
    )
    conn.execute(
        insert_ignore(conn, payments),
        {
            "network": network,
            "tx_hash": transfer.tx_hash,
            "payer": claim["payer"],
            "amount_atomic": transfer.value,
            "asset": claim["asset"],
            "pay_to": transfer.to,
            "tenant_id": claim["tenant_id"],
            "request_id": claim["request_id"],
            "resource": resource,
            "settled_at": now(),
        },
    )
    return posted
