"""Random sequences of earning, withdrawing, paying out and failing agree with a simple model,
and the books stay balanced and non-negative after every step."""

from __future__ import annotations

import os
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claw402.ledger import balance, check_books
from claw402.ledger.amounts import fee_of
from claw402.ledger.settlements import Settlement, post_settled
from claw402.ledger.withdrawals import InsufficientFunds, complete, fail, get, mark_sending, request

TREASURY, CREATOR, WALLET = "0x" + "aa" * 20, "0x" + "dd" * 20, "0x" + "bb" * 20
BPS = 500

amounts = st.integers(min_value=1, max_value=5_000_000)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), amounts, st.booleans()),
        st.tuples(st.just("withdraw"), amounts, st.just(False)),
        st.tuples(st.just("settle"), st.integers(min_value=0, max_value=20), st.booleans()),
    ),
    max_size=15,
)


def rand_hex() -> str:
    return "0x" + os.urandom(32).hex()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps)
def test_books_follow_the_model(engine, plan):
    tenant = "tnt_" + uuid.uuid4().hex[:12]
    held = due = reserved = withdrawn = earned = fees = 0
    open_ids: list[int] = []
    for op, amount, flag in plan:
        if op == "earn":
            pay_to = CREATOR if flag else TREASURY
            with engine.begin() as conn:
                post_settled(
                    conn,
                    Settlement(
                        "eip155:1", "0x" + "cc" * 20, rand_hex(), tenant, amount, pay_to, rand_hex()
                    ),
                    bps=BPS,
                    direct=flag,
                )
            fee = fee_of(amount, BPS)
            earned, fees = earned + amount, fees + fee
            if flag:
                due += fee
            else:
                held += amount - fee
        elif op == "withdraw":
            collect = min(held, due)
            try:
                w = request(engine, tenant, amount, WALLET, "model")
            except InsufficientFunds:
                assert amount > held - collect
            else:
                assert amount <= held - collect
                held, due = held - collect - amount, due - collect
                reserved += amount
                open_ids.append(w.id)
        elif open_ids:  # settle one open withdrawal: paid (flag) or failed
            wid = open_ids.pop(amount % len(open_ids))
            with engine.begin() as conn:
                w = get(conn, wid)
                if flag:
                    mark_sending(
                        conn,
                        w,
                        network="eip155:1",
                        chain_nonce=0,
                        tx_hash=rand_hex(),
                        raw_tx="0x",
                        actor="model",
                    )
                    complete(
                        conn,
                        get(conn, wid),
                        treasury=TREASURY,
                        tx_hash=rand_hex(),
                        log_index=0,
                        actor="model",
                    )
                    withdrawn += w.amount
                else:
                    fail(conn, w, "model says no", actor="model")
                    held += w.amount
            reserved -= w.amount
        b = balance(engine, tenant)
        assert (b.earned, b.fees, b.fees_due, b.pending, b.withdrawn) == (
            earned,
            fees,
            due,
            reserved,
            withdrawn,
        )
        assert b.available == max(0, held - due)
    assert check_books(engine) == []
