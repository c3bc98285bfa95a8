"""Withdrawals reserve funds: never more than available, even when requested concurrently."""

from __future__ import annotations

import os
import threading

import pytest
from ledgerkit import make_tenant

from claw402.ledger import balance, check_books
from claw402.ledger.settlements import Settlement, post_settled
from claw402.ledger.withdrawals import InsufficientFunds, listing, request

TREASURY = "0x" + "aa" * 20
WALLET = "0x" + "bb" * 20


def earn(engine, tenant_id: str, amount: int, pay_to: str = TREASURY) -> None:
    nonce = "0x" + os.urandom(32).hex()
    with engine.begin() as conn:
        post_settled(
            conn,
            Settlement(
                "eip155:31337",
                "0x" + "cc" * 20,
                nonce,
                tenant_id,
                amount,
                pay_to,
                "0x" + os.urandom(32).hex(),
            ),
        )


def test_balance_after_earning_and_withdrawing(engine):
    tenant = make_tenant(engine, "acme")
    earn(engine, tenant.tenant_id, 1_000_000)  # $1 gross, 5% fee
    b = balance(engine, tenant.tenant_id)
    assert (b.earned, b.fees, b.available, b.pending, b.fee_bps) == (
        1_000_000,
        50_000,
        950_000,
        0,
        500,
    )
    w = request(engine, tenant.tenant_id, 400_000, WALLET, "alice")
    assert w.status == "pending" and w.amount == 400_000
    b = balance(engine, tenant.tenant_id)
    assert (b.available, b.pending, b.withdrawn) == (550_000, 400_000, 0)
    with pytest.raises(InsufficientFunds, match=r"only \$0.55 is available"):
        request(engine, tenant.tenant_id, 550_001, WALLET, "alice")
    assert balance(engine, tenant.tenant_id).available == 550_000
    assert check_books(engine) == []


def test_fee_env_is_read_at_posting_time(engine, monkeypatch):
    tenant = make_tenant(engine, "acme")
    monkeypatch.setenv("CLAW402_FEE_BPS", "1000")
    earn(engine, tenant.tenant_id, 1_000_000)
    monkeypatch.setenv("CLAW402_FEE_BPS", "0")
    earn(engine, tenant.tenant_id, 1_000_000)
    b = balance(engine, tenant.tenant_id)
    assert (b.earned, b.fees, b.available, b.fee_bps) == (2_000_000, 100_000, 1_900_000, 0)


def test_direct_payments_book_only_the_fee_and_collect_it_before_a_withdrawal(engine):
    creator = "0x" + "dd" * 20
    tenant = make_tenant(engine, "direct", pay_to=creator)
    earn(engine, tenant.tenant_id, 2_000_000, pay_to=creator)  # paid straight to the creator
    b = balance(engine, tenant.tenant_id)
    assert (b.earned, b.paid_direct, b.fees, b.fees_due, b.available) == (
        2_000_000,
        2_000_000,
        100_000,
        100_000,
        0,
    )
    with pytest.raises(InsufficientFunds):
        request(engine, tenant.tenant_id, 1, WALLET, "alice")
    # Later paid through the treasury too: the fee owed is netted before anything leaves.
    earn(engine, tenant.tenant_id, 1_000_000, pay_to=TREASURY)
    b = balance(engine, tenant.tenant_id)
    assert (b.fees_due, b.available) == (100_000, 850_000)
    with pytest.raises(InsufficientFunds):
        request(engine, tenant.tenant_id, 850_001, WALLET, "alice")
    request(engine, tenant.tenant_id, 850_000, WALLET, "alice")
    b = balance(engine, tenant.tenant_id)
    assert (b.fees_due, b.available, b.pending, b.fees) == (0, 0, 850_000, 150_000)
    assert check_books(engine) == []


def test_concurrent_withdrawals_take_only_what_fits(engine):
    tenant = make_tenant(engine, "acme")
    earn(engine, tenant.tenant_id, 1_000_000)  # 950,000 available
    threads, start = 12, threading.Barrier(12)
    accepted: list[int] = []
    refused: list[str] = []
    errors: list[BaseException] = []

    def withdraw() -> None:
        start.wait()
        try:
            accepted.append(request(engine, tenant.tenant_id, 200_000, WALLET, "alice").id)
        except InsufficientFunds as exc:
            refused.append(str(exc))
        except BaseException as exc:  # anything else (deadlock, busy database) fails the test
            errors.append(exc)

    workers = [threading.Thread(target=withdraw) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert errors == []
    assert len(accepted) == 4 and len(refused) == 8  # 4 x 200,000 <= 950,000 < 5 x 200,000
    b = balance(engine, tenant.tenant_id)
    assert (b.pending, b.available) == (800_000, 150_000)
    assert len(listing(engine, status="pending")) == 4
    assert check_books(engine) == []
