"""Posting to the ledger: one balanced transaction per business event, at most once.

A transaction is a set of signed postings (debit > 0, credit < 0) that sum to zero, checked
here before anything is written. Its `key` names the event (a settlement's authorization, a
chain log, a withdrawal step); posting the same key again is a no-op that returns None, so
every caller can retry freely. Nothing is ever updated or deleted: a correction is a new
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from claw402.clock import now
from claw402.ledger import accounts
from claw402.ledger.db import insert_ignore
from claw402.ledger.schema import ledger_accounts, ledger_postings, ledger_transactions


class UnbalancedTransaction(ValueError):
    """Postings that do not sum to zero (or are not whole, non-zero amounts): nothing written."""


@dataclass(frozen=True, slots=True)
class Entry:
    account: str
    amount: int  # atomic units; debit > 0, credit < 0


def debit(account: str, amount: int) -> Entry:
    return Entry(account, amount)


def credit(account: str, amount: int) -> Entry:
    return Entry(account, -amount)


def check_balanced(entries: Sequence[Entry]) -> None:
    for entry in entries:
        if type(entry.amount) is not int or entry.amount == 0:
            raise UnbalancedTransaction(
                f"posting to {entry.account} must be a non-zero integer of atomic units, "
                f"got {entry.amount!r}"
            )
        accounts.kind_of(entry.account)  # unknown codes raise
    if len(entries) == 1:
        raise UnbalancedTransaction("a transaction needs at least two postings (or none)")
    total = sum(e.amount for e in entries)
    if total != 0:
        raise UnbalancedTransaction(f"postings sum to {total}, not zero: {list(entries)}")


def post(
    conn: Connection,
    *,
    key: str,
    kind: str,
    entries: Sequence[Entry],
    tenant_id: str | None = None,
    network: str | None = None,
    tx_hash: str | None = None,
    log_index: int | None = None,
    payer: str | None = None,
    gross: int | None = None,
    memo: str | None = None,
) -> int | None:
    """Write a balanced transaction in the caller's DB transaction; None if already posted.

    No postings at all is allowed: a directly-paid settlement with a zero fee moves nothing on
    the platform's books, yet must still be recorded (once) as earned.
    """
    check_balanced(entries)
    moment = now()
    inserted = conn.execute(
        insert_ignore(conn, ledger_transactions, returning=True),
        {
            "key": key,
            "kind": kind,
            "tenant_id": tenant_id,
            "network": network,
            "tx_hash": tx_hash.lower() if tx_hash else None,
            "log_index": log_index,
            "payer": payer.lower() if payer else None,
            "gross": gross,
            "memo": memo,
            "created_at": moment,
        },
    ).scalar()
    if inserted is None:
        return None
    if entries:
        codes = sorted({e.account for e in entries})
        conn.execute(
            insert_ignore(conn, ledger_accounts),
            [
                {
                    "code": code,
                    "kind": accounts.kind_of(code),
                    "tenant_id": accounts.tenant_of(code),
                    "created_at": moment,
                }
                for code in codes
            ],
        )
        conn.execute(
            ledger_postings.insert(),
            [
                {"transaction_id": inserted, "account": e.account, "amount": e.amount}
                for e in entries
            ],
        )
    return int(inserted)
