"""Step 1 of the channel books (`ledger.channels`): a voucher accepted, recorded, posted.

The request that accepts a voucher commits it as one `channel_charges` row
(`record_vouchers`), in the transaction of its channel's compare-and-swap: the voucher's
durable record, with its fee taken at the rate then in force. Its ledger transaction is
posted from that row just after (`post_vouchers`): by the gateway's poster a few
milliseconds later, many at once, or by whoever reads the books or books a claim first
(`post_pending`). A row's `transaction_id` is NULL until then. Posting keeps a request's
commit to 6 SQLite pages instead of 15.

Custodial (paid to a platform treasury): debit `channels:<receiver>:unclaimed` the gross,
credit `tenant:<id>:receivable` gross minus fee, credit `fees:<id>` the fee. Direct (the
creator's own wallet): only the fee, owed by the creator, as for a direct `exact` settlement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.sql.dml import Insert

from claw402.clock import now
from claw402.ledger import accounts
from claw402.ledger.amounts import fee_bps, fee_of
from claw402.ledger.book import Entry, Posting, check_balanced, credit, debit, post_many
from claw402.ledger.db import insert_ignore, lock
from claw402.ledger.schema import channel_charges, ledger_transactions
from claw402.ledger.settlements import is_direct

VOUCHER, VOUCHER_DIRECT = "channel_voucher", "channel_voucher_direct"
_C = channel_charges.c


@dataclass(frozen=True, slots=True)
class Voucher:
    """One accepted voucher: `cumulative` is its total, `amount` what this call added."""

    network: str
    channel_id: str
    cumulative: int
    amount: int
    tenant_id: str
    receiver: str
    payer: str


def voucher_key(network: str, channel_id: str, cumulative: int) -> str:
    return f"voucher:{network}:{channel_id.lower()}:{cumulative}"


def book_voucher(
    conn: Connection, v: Voucher, *, bps: int | None = None, direct: bool | None = None
) -> int | None:
    """Record and post an accepted voucher at once; the new transaction id, or None if it was
    recorded already. `direct` (paid to the tenant's own wallet) is looked up unless the
    caller knows it."""
    if direct is None:
        direct = is_direct(conn, v.tenant_id, v.receiver)
    return book_vouchers(conn, [(v, direct)], bps=bps)[0]


def book_vouchers(
    conn: Connection, vouchers: Sequence[tuple[Voucher, bool]], *, bps: int | None = None
) -> list[int | None]:
    """`record_vouchers`, then `post_vouchers` in the same transaction (the SDK's commit path):
    each voucher's ledger transaction id, or None if it was recorded already."""
    new = record_vouchers(conn, vouchers, bps=bps)
    posted = post_vouchers(conn) if any(new) else {}
    return [None if charge is None else posted.get(charge) for charge in new]


def record_vouchers(
    conn: Connection, vouchers: Sequence[tuple[Voucher, bool]], *, bps: int | None = None
) -> list[int | None]:
    """Step 1 as the request commits: each accepted voucher (and whether it was paid to the
    tenant's own wallet) as one `channel_charges` row, its fee taken at the rate in force,
    in the caller's transaction. Each one's new charge id, or None if it was recorded before.

    The row is the voucher's durable record; `post_vouchers` makes it a ledger transaction
    a few milliseconds later, off the request path (the row's index entries are a third of
    a posting's pages). Everything that could refuse the posting is checked here, so a
    recorded voucher always posts: a refused one raises and the caller rolls back."""
    rate = fee_bps() if bps is None else bps
    moment, rows = now(), []
    for v, direct in vouchers:
        row = {
            "network": v.network,
            "channel_id": v.channel_id.lower(),
            "cumulative": v.cumulative,
            "amount": v.amount,
            "fee": fee_of(v.amount, rate),
            "tenant_id": v.tenant_id,
            "receiver": v.receiver.lower(),
            "payer": v.payer.lower(),
            "direct": int(direct),
            "created_at": moment,
        }
        check_balanced(_voucher_posting(row).entries)
        rows.append(row)
    if not rows:
        return []
    if len(rows) == 1:
        found = conn.execute(_record_returning(conn), rows[0]).scalar()
        return [None if found is None else int(found)]
    keys = {
        (str(r.channel_id), int(r.cumulative)): int(r.id)
        for r in conn.execute(_record_returning(conn, keys=True), rows)
    }
    return [keys.pop((r["channel_id"], r["cumulative"]), None) for r in rows]


def post_vouchers(conn: Connection, *, most: int | None = None) -> dict[int, int]:
    """Step 1's ledger transactions: the recorded vouchers not yet posted, oldest first (at
    most `most`, else all), in the caller's transaction: charge id -> transaction id.

    Posters take the `channel_vouchers` lock first: on SQLite that is the write lock before
    anything is read (a deferred transaction that read first could not write once another
    connection had), on PostgreSQL one poster at a time. Were two to post anyway, a
    voucher's ledger key is unique: the loser posts nothing and marks the row with the
    winner's transaction."""
    lock(conn, "channel_vouchers")
    posted: dict[int, int] = {}
    t = ledger_transactions.c
    while most is None or len(posted) < most:
        limit = _POST_BATCH if most is None else min(_POST_BATCH, most - len(posted))
        rows = conn.execute(_UNPOSTED.limit(limit)).mappings().all()
        if not rows:
            break
        postings = [_voucher_posting(row) for row in rows]
        ids = post_many(conn, postings)
        lost = [p.key for p, i in zip(postings, ids, strict=True) if i is None]
        if lost:
            found = dict(conn.execute(select(t.key, t.id).where(t.key.in_(lost))).all())
            ids = [found[p.key] if i is None else i for p, i in zip(postings, ids, strict=True)]
        marks = [{"_id": row["id"], "_tid": i} for row, i in zip(rows, ids, strict=True)]
        conn.execute(_MARK_POSTED, marks)
        posted.update((mark["_id"], mark["_tid"]) for mark in marks)
        if len(rows) < limit:
            break
    return posted


def post_pending(engine: Engine) -> int:
    """`post_vouchers` in a transaction of its own if any voucher waits (one index probe
    if none does): what reads of the books do first. How many it posted."""
    with engine.connect() as conn:
        if conn.execute(_UNPOSTED.with_only_columns(_C.id).limit(1)).first() is None:
            return 0
    with engine.begin() as conn:
        return len(post_vouchers(conn))


def _voucher_posting(row: Mapping[str, Any]) -> Posting:
    """The ledger transaction of one recorded voucher (a `channel_charges` row)."""
    amount, fee, tenant = row["amount"], row["fee"], row["tenant_id"]
    entries: list[Entry]
    if row["direct"]:
        kind = VOUCHER_DIRECT
        entries = [debit(accounts.fees_due(tenant), fee), credit(accounts.fees(tenant), fee)]
        entries = entries if fee else []
    else:
        kind = VOUCHER
        entries = [debit(accounts.channel_unclaimed(row["receiver"]), amount)]
        if amount - fee:
            entries.append(credit(accounts.receivable(tenant), amount - fee))
        if fee:
            entries.append(credit(accounts.fees(tenant), fee))
    channel, cumulative = row["channel_id"], row["cumulative"]
    return Posting(
        key=voucher_key(row["network"], channel, cumulative),
        kind=kind,
        entries=entries,
        tenant_id=tenant,
        network=row["network"],
        payer=row["payer"],
        gross=amount,
        memo=f"channel {channel} to {cumulative}; fee {fee}",
    )


_POST_BATCH = 2_000  # rows per statement round: one write lock held briefly, then the next
_UNPOSTED = select(channel_charges).where(_C.transaction_id.is_(None)).order_by(_C.id)
_MARK_POSTED = (
    update(channel_charges)
    .where(_C.id == bindparam("_id"))
    .values(transaction_id=bindparam("_tid"))
)
_RECORDING: dict[tuple[str, bool], Insert] = {}


def _record_returning(conn: Connection, *, keys: bool = False) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id (and the voucher, to match a group's
    rows to their ids): built once per dialect."""
    key = (conn.dialect.name, keys)
    found = _RECORDING.get(key)
    if found is None:
        columns = (_C.id, _C.channel_id, _C.cumulative) if keys else (_C.id,)
        found = _RECORDING[key] = insert_ignore(conn, channel_charges).returning(*columns)
    return found
