"""Step 1 of the channel books (`ledger.channels`): a voucher accepted, recorded, posted.

The request that accepts a voucher commits, in the transaction of its channel's
compare-and-swap, one `channel_charges` row (the voucher's durable record, its fee taken at
the rate then in force) and its ledger transaction (`book_vouchers`). On SQLite the voucher
lane commits on the event loop, so there it writes the row alone (`record_vouchers`: 6
pages instead of 15) and its ledger transaction is posted from the row just after
(`post_vouchers`): by the lane's poster a few milliseconds later, many at once, or by
whoever reads the books or books a claim first (`post_pending`). A row's `transaction_id`
is NULL until it is posted.

Custodial (paid to a platform treasury): debit `channels:<receiver>:unclaimed` the gross,
credit `tenant:<id>:receivable` gross minus fee, credit `fees:<id>` the fee. Direct (the
creator's own wallet): only the fee, owed by the creator, as for a direct `exact` settlement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

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
    posted already. `direct` (paid to the tenant's own wallet) is looked up unless the
    caller knows it."""
    if direct is None:
        direct = is_direct(conn, v.tenant_id, v.receiver)
    return book_vouchers(conn, [(v, direct)], bps=bps)[0]


def book_vouchers(
    conn: Connection, vouchers: Sequence[tuple[Voucher, bool]], *, bps: int | None = None
) -> list[int | None]:
    """Record and post at once, in the caller's transaction (the SDK's commit path, and the
    lane on PostgreSQL): each voucher's new ledger transaction id, or None if it was posted
    already. Its `channel_charges` row is written posted."""
    rows = _charge_rows(vouchers, bps)
    ids = post_many(conn, [_voucher_posting(row) for row in rows])
    charges = [{**row, "transaction_id": i} for row, i in zip(rows, ids, strict=True) if i]
    if charges:
        conn.execute(insert_ignore(conn, channel_charges), charges)
    return ids


def record_vouchers(
    conn: Connection, vouchers: Sequence[tuple[Voucher, bool]], *, bps: int | None = None
) -> None:
    """Each accepted voucher (and whether it was paid to the tenant's own wallet) as one
    `channel_charges` row, not yet posted, in the caller's transaction (one INSERT; a voucher
    recorded before is skipped): the lane's commit on SQLite, where it runs on the event loop
    and a posting's pages would be request time. `post_vouchers` posts it shortly after.
    Everything that could refuse the posting is checked here, so a recorded voucher always
    posts: a refused one raises and the caller rolls back."""
    rows = _charge_rows(vouchers, bps)
    for row in rows:
        check_balanced(_voucher_posting(row).entries)
    if rows:
        conn.execute(insert_ignore(conn, channel_charges), rows if len(rows) > 1 else rows[0])


def _charge_rows(vouchers: Sequence[tuple[Voucher, bool]], bps: int | None) -> list[dict[str, Any]]:
    """The `channel_charges` rows of these vouchers, the fee at `bps` or the rate in force."""
    rate = fee_bps() if bps is None else bps
    moment = now()
    return [
        {
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
        for v, direct in vouchers
    ]


def post_vouchers(conn: Connection, *, most: int | None = None) -> dict[str, int]:
    """Step 1's ledger transactions: the recorded vouchers not yet posted, oldest first (at
    most `most`, else all), in the caller's transaction: voucher key -> transaction id.

    Posters take the `channel_vouchers` lock first: on SQLite that is the write lock before
    anything is read (a deferred transaction that read first could not write once another
    connection had), on PostgreSQL one poster at a time. Were two to post anyway, a
    voucher's ledger key is unique: the loser posts nothing and marks the row with the
    winner's transaction."""
    lock(conn, "channel_vouchers")
    posted: dict[str, int] = {}
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
        conn.execute(
            _MARK_POSTED, [{"_id": row["id"], "_tid": i} for row, i in zip(rows, ids, strict=True)]
        )
        posted.update((p.key, i) for p, i in zip(postings, ids, strict=True))
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
