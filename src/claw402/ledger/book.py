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
from sqlalchemy.sql.dml import Insert

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


@dataclass(frozen=True, slots=True)
class Posting:
    """One balanced transaction to write (see `post`); `post_many` writes several at once."""

    key: str
    kind: str
    entries: Sequence[Entry]
    tenant_id: str | None = None
    network: str | None = None
    tx_hash: str | None = None
    log_index: int | None = None
    payer: str | None = None
    gross: int | None = None
    memo: str | None = None


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
    posting = Posting(
        key, kind, entries, tenant_id, network, tx_hash, log_index, payer, gross, memo
    )
    return post_many(conn, [posting])[0]


def post_many(conn: Connection, postings: Sequence[Posting]) -> list[int | None]:
    """`post` for many transactions in three statements whatever their number (the rows of
    a group of vouchers): each one's new id, or None if its key was posted already (or
    repeats an earlier key of the list). Every one is checked before anything is written."""
    for posting in postings:
        check_balanced(posting.entries)
    if not postings:
        return []
    moment = now()
    rows = [
        {
            "key": p.key,
            "kind": p.kind,
            "tenant_id": p.tenant_id,
            "network": p.network,
            "tx_hash": p.tx_hash.lower() if p.tx_hash else None,
            "log_index": p.log_index,
            "payer": p.payer.lower() if p.payer else None,
            "gross": p.gross,
            "memo": p.memo,
            "created_at": moment,
        }
        for p in postings
    ]
    if len(rows) == 1:
        found = conn.execute(insert_ignore(conn, ledger_transactions, returning=True), rows[0])
        inserted = found.scalar()
        ids = {} if inserted is None else {postings[0].key: int(inserted)}
    else:  # one multi-row INSERT ... RETURNING (SQLAlchemy's "insertmanyvalues")
        found = conn.execute(_insert_returning_keys(conn), rows)
        ids = {str(row.key): int(row.id) for row in found}
    posted: list[int | None] = []
    for p in postings:
        posted.append(ids.pop(p.key, None))  # a repeated key gets None the second time
    written = [(i, p) for i, p in zip(posted, postings, strict=True) if i is not None]
    codes = sorted({e.account for _, p in written for e in p.entries})
    if codes:
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
                {"transaction_id": i, "account": e.account, "amount": e.amount}
                for i, p in written
                for e in p.entries
            ],
        )
    return posted


_RETURNING_KEYS: dict[str, Insert] = {}


def _insert_returning_keys(conn: Connection) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, key: the skipped rows return nothing,
    so each new id is matched to its row by key. Built once per dialect."""
    dialect = conn.dialect.name
    found = _RETURNING_KEYS.get(dialect)
    if found is None:
        t = ledger_transactions.c
        found = _RETURNING_KEYS[dialect] = insert_ignore(conn, ledger_transactions).returning(
            t.id, t.key
        )
    return found
