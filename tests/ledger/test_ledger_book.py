"""The books themselves: balanced, posted once, append-only, integers only."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from claw402.ledger import accounts, check_books
from claw402.ledger.amounts import fee_bps, fee_of, parse_usd
from claw402.ledger.book import (
    Entry,
    Posting,
    UnbalancedTransaction,
    check_balanced,
    credit,
    debit,
    post,
    post_many,
)
from claw402.ledger.settlements import entries_for

T = "treasury:0x" + "ab" * 20


def test_post_once_per_key(engine):
    entries = [debit(T, 100), credit(accounts.PLATFORM_EQUITY, 100)]
    with engine.begin() as conn:
        first = post(conn, key="k", kind="test", entries=entries)
        again = post(conn, key="k", kind="test", entries=entries)
    assert first is not None and again is None
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ledger_postings")).scalar() == 2
    assert check_books(engine) == []


def test_many_at_once_post_each_once_as_one_by_one_would(engine):
    def entries(amount: int) -> list[Entry]:
        return [debit(T, amount), credit(accounts.PLATFORM_EQUITY, amount)]

    with engine.begin() as conn:
        early = post(conn, key="b", kind="test", entries=entries(2))
        many = [Posting(key, "test", entries(n), gross=n) for n, key in enumerate("abcad", 1)]
        ids = post_many(conn, many)
    assert early is not None
    assert ids[1] is None and ids[3] is None  # posted before; repeated within the list
    assert len({ids[0], ids[2], ids[4]} - {None}) == 3
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select t.key, t.gross, sum(abs(p.amount)) from ledger_transactions t "
                "join ledger_postings p on p.transaction_id = t.id group by t.key, t.gross "
                "order by t.key"
            )
        ).all()
    assert [tuple(row) for row in rows] == [("a", 1, 2), ("b", None, 4), ("c", 3, 6), ("d", 5, 10)]
    assert check_books(engine) == []
    with pytest.raises(UnbalancedTransaction), engine.begin() as conn:  # one bad: none written
        post_many(conn, [Posting("e", "test", entries(1)), Posting("f", "test", [debit(T, 1)])])
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ledger_transactions")).scalar() == 4


def test_same_chain_log_posts_once_whatever_the_key(engine):
    facts = {"network": "eip155:1", "tx_hash": "0x" + "1" * 64, "log_index": 3}
    entries = [debit(T, 5), credit(accounts.PLATFORM_EQUITY, 5)]
    with engine.begin() as conn:
        assert post(conn, key="a", kind="test", entries=entries, **facts) is not None
        assert post(conn, key="b", kind="test", entries=entries, **facts) is None


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([debit(T, 100), credit(accounts.PLATFORM_EQUITY, 99)], "sum to 1"),
        ([debit(T, 100)], "at least two"),
        ([Entry(T, 1.5), Entry(accounts.PLATFORM_EQUITY, -1.5)], "integer"),  # type: ignore[arg-type]
        ([Entry(T, 0), Entry(accounts.PLATFORM_EQUITY, 0)], "non-zero"),
        ([debit("nowhere", 1), credit(T, 1)], "unknown ledger account"),
    ],
)
def test_unbalanced_or_odd_postings_are_refused(engine, entries, message):
    with pytest.raises((UnbalancedTransaction, ValueError), match=message), engine.begin() as conn:
        post(conn, key="bad", kind="test", entries=entries)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ledger_transactions")).scalar() == 0


@pytest.mark.parametrize(
    "statement",
    [
        "update ledger_postings set amount = amount * 2",
        "delete from ledger_postings",
        "update ledger_transactions set kind = 'x'",
        "delete from ledger_transactions",
    ],
)
def test_the_database_refuses_edits(engine, statement):
    with engine.begin() as conn:
        post(conn, key="k", kind="test", entries=[debit(T, 1), credit(accounts.PLATFORM_EQUITY, 1)])
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text(statement))


def test_amounts_and_fees():
    assert parse_usd("12.5") == 12_500_000 and parse_usd("0.000001") == 1
    assert parse_usd("5000") == 5_000_000_000  # no price cap on withdrawals
    for bad in ("0", "-1", "1e-7", "abc", "nan"):
        with pytest.raises(ValueError):
            parse_usd(bad)
    assert fee_bps({}) == 500 and fee_bps({"CLAW402_FEE_BPS": "0"}) == 0
    with pytest.raises(ValueError, match="basis points"):
        fee_bps({"CLAW402_FEE_BPS": "5%"})
    assert fee_of(10_000, 500) == 500 and fee_of(19, 500) == 0 and fee_of(21, 500) == 1


@settings(max_examples=200, deadline=None)
@given(
    gross=st.integers(min_value=1, max_value=10**15),
    bps=st.integers(min_value=0, max_value=10_000),
    direct=st.booleans(),
)
def test_every_settlement_is_balanced_and_exact(gross, bps, direct):
    kind, entries = entries_for("tnt_x", gross, "0x" + "cd" * 20, direct, bps)
    check_balanced(entries)
    fee = fee_of(gross, bps)
    assert all(type(e.amount) is int for e in entries)
    if direct:  # only the fee is ours: a receivable, never the gross
        assert kind == "settlement_direct"
        assert sum(e.amount for e in entries if e.amount > 0) == fee
    else:  # the treasury got the gross; the creator is owed gross - fee, the platform fee
        assert kind == "settlement"
        credited = {e.account: e.amount for e in entries}.get(accounts.available("tnt_x"), 0)
        assert credited == -(gross - fee)
        assert debit(accounts.treasury("0x" + "cd" * 20), gross) in entries
