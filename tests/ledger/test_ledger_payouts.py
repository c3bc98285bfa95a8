"""Payouts on a real anvil: paid once, in order, and recovered after SIGKILL at any point."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from ledgerkit import (
    assert_invariants,
    earn_through_gateway,
    new_treasury,
    run_until,
    sync,
)

from claw402.chain.token import usdc
from claw402.chain.tx import broadcast, wait_for_receipt
from claw402.chain.wallet import Wallet
from claw402.control import audit
from claw402.ledger import balance
from claw402.ledger.chain import TokenChain
from claw402.ledger.payouts import Hooks, PayoutError, PayoutRunner
from claw402.ledger.withdrawals import listing, request


@pytest.fixture
def treasury(chain):
    return new_treasury(chain, usdc(10))


@pytest.fixture
def earning(engine, chain, treasury):
    """A tenant that earned $3 through the treasury (gateway path), books reconciled."""
    tenant = earn_through_gateway(engine, chain, treasury.address, "acme", usdc(3))
    assert sync(engine, chain, treasury.address).balanced
    return tenant


def runner(engine, chain, treasury, **kw) -> PayoutRunner:
    return PayoutRunner(engine, TokenChain(chain.web3(), chain.token), treasury.private_key, **kw)


def child_args(database_url, chain, treasury, stage):
    return {
        "database_url": database_url,
        "rpc_url": chain.rpc_url,
        "token": chain.token,
        "treasury_key": treasury.private_key,
        "stage": stage,
    }


def test_pays_pending_withdrawals_in_order(engine, chain, treasury, earning):
    creator = Wallet.create().address
    first = request(engine, earning.tenant_id, usdc("1.5"), creator, "alice")
    second = request(engine, earning.tenant_id, usdc(1), creator, "alice")
    assert [r.status for r in runner(engine, chain, treasury).run(dry_run=True).results] == [
        "would_pay",
        "would_pay",
    ]
    assert chain.balance(creator) == 0  # a dry run sends nothing

    report = runner(engine, chain, treasury).run(limit=1)
    assert [(r.withdrawal_id, r.status) for r in report.results] == [(first.id, "completed")]
    report = runner(engine, chain, treasury).run()
    assert [(r.withdrawal_id, r.status) for r in report.results] == [(second.id, "completed")]
    assert chain.balance(creator) == usdc("2.5")
    b = balance(engine, earning.tenant_id)
    assert (b.withdrawn, b.pending, b.available) == (usdc("2.5"), 0, usdc("2.85") - usdc("2.5"))
    assert [w.tx_hash is not None for w in listing(engine, status="completed")] == [True, True]
    assert sync(engine, chain, treasury.address).posted == 0  # payouts already on the books
    assert_invariants(engine, chain, treasury.address)
    actions = [e.action for e in audit.entries(engine, limit=100)]
    assert actions.count("payout.sending") == 2 and actions.count("payout.completed") == 2


def test_sigkill_after_recording_before_broadcast(engine, chain, treasury, earning, database_url):
    creator = Wallet.create().address
    request(engine, earning.tenant_id, usdc(2), creator, "alice")
    tx_hash = run_until("payout", child_args(database_url, chain, treasury, "recorded"), "recorded")
    [w] = listing(engine)
    assert (w.status, w.tx_hash) == ("sending", tx_hash)
    assert chain.balance(creator) == 0  # never broadcast

    report = runner(engine, chain, treasury).run()  # the restart: same signed bytes re-sent
    assert [(r.status, r.tx_hash) for r in report.results] == [("completed", tx_hash)]
    assert chain.balance(creator) == usdc(2)
    assert runner(engine, chain, treasury).run().results == []
    assert sync(engine, chain, treasury.address).posted == 0
    assert chain.balance(creator) == usdc(2)
    assert_invariants(engine, chain, treasury.address)


def test_sigkill_after_broadcast_before_completed(engine, chain, treasury, earning, database_url):
    creator = Wallet.create().address
    request(engine, earning.tenant_id, usdc(2), creator, "alice")
    tx_hash = run_until(
        "payout", child_args(database_url, chain, treasury, "broadcast"), "broadcast"
    )
    assert listing(engine)[0].status == "sending"
    assert chain.balance(creator) == usdc(2)  # mined, but the books do not know yet
    report = sync(engine, chain, treasury.address)  # what the gateway runs at start
    assert report.payouts_completed == 1 and report.balanced
    [w] = listing(engine)
    assert (w.status, w.tx_hash) == ("completed", tx_hash)
    assert runner(engine, chain, treasury).run().results == []  # nothing left, nothing twice
    assert chain.balance(creator) == usdc(2)
    assert balance(engine, earning.tenant_id).withdrawn == usdc(2)
    assert_invariants(engine, chain, treasury.address)


class Crash(BaseException):
    """Stands in for the process dying (the SIGKILL tests above do it for real)."""


def crash(_w) -> None:
    raise Crash


def test_a_transfer_that_can_never_be_mined_fails_and_releases(engine, chain, treasury, earning):
    creator = Wallet.create().address
    request(engine, earning.tenant_id, usdc(2), creator, "alice")
    before = balance(engine, earning.tenant_id)
    with pytest.raises(Crash):
        runner(engine, chain, treasury, hooks=Hooks(recorded=crash)).run()
    # The treasury key sends something else with that nonce: the recorded transfer is dead.
    w3 = chain.web3()
    wait_for_receipt(
        w3, broadcast(w3, treasury.account, {"to": treasury.address, "value": 0, "gas": 21_000})
    )
    report = runner(engine, chain, treasury).run()
    assert [r.status for r in report.results] == ["failed"]
    assert "never mined" in (report.results[0].reason or "")
    assert chain.balance(creator) == 0
    after = balance(engine, earning.tenant_id)
    assert (after.pending, after.available) == (0, before.available + usdc(2))
    assert_invariants(engine, chain, treasury.address)


def test_one_runner_at_a_time_and_a_short_treasury_waits(engine, chain, treasury, earning):
    first = runner(engine, chain, treasury)
    assert first._acquire()
    with pytest.raises(PayoutError, match="lease"):
        runner(engine, chain, treasury).run()
    first._release()
    request(engine, earning.tenant_id, usdc(2), Wallet.create().address, "alice")
    drain = Wallet.create().address
    chain.token_contract().transfer(treasury.account, drain, chain.balance(treasury.address))
    report = runner(engine, chain, treasury).run()
    assert [r.status for r in report.results] == ["pending"] and "treasury holds" in report.stopped
    with engine.connect() as conn:
        assert conn.execute(sa.text("select status from withdrawals")).scalar() == "pending"
