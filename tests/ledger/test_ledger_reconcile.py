"""Reconcile against a real anvil: the books end equal to the treasury's on-chain balance."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from ledgerkit import (
    assert_invariants,
    authorize,
    insert_claim,
    make_tenant,
    new_treasury,
    run_until,
    settle_on_chain,
    sync,
    transfer_with_authorization_data,
)

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.ledger import balance
from claw402.ledger.claims import payment_claims, payments
from claw402.ledger.reconcile import ChainReset
from claw402.ledger.schema import ledger_sync, ledger_transactions
from claw402.ledger.settlements import post_settlement

PRICE = 10_000  # $0.01


@pytest.fixture
def treasury_wallet(chain):
    return new_treasury(chain, usdc(100))


@pytest.fixture
def treasury(treasury_wallet):
    return treasury_wallet.address


@pytest.fixture
def payer(chain):
    wallet = Wallet.create()
    chain.fund(wallet.address, usdc(5))
    return wallet


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()


def test_funding_is_the_opening_balance_and_reruns_post_nothing(engine, chain, treasury):
    first = sync(engine, chain, treasury)
    assert (first.deposits, first.settlements, first.balanced) == (1, 0, True)
    assert first.ledger_treasury == first.chain_treasury == usdc(100)
    again = sync(engine, chain, treasury)
    assert again.posted == 0 and again.balanced
    assert_invariants(engine, chain, treasury)


def test_a_settlement_the_gateway_recorded_is_not_posted_again(engine, chain, treasury, payer):
    tenant = make_tenant(engine, "acme")
    paid = settle_on_chain(chain, payer, treasury, PRICE)
    claim = insert_claim(
        engine,
        tenant.tenant_id,
        chain.network,
        chain.token,
        paid.payer,
        paid.nonce,
        PRICE,
        treasury,
    )
    with engine.begin() as conn:  # the gateway's write (in PaymentStore.settle)
        assert post_settlement(conn, claim, paid.tx_hash) is not None
    report = sync(engine, chain, treasury)
    assert (report.settlements, report.deposits, report.balanced) == (0, 1, True)
    assert balance(engine, tenant.tenant_id).available == PRICE - PRICE * 5 // 100
    assert_invariants(engine, chain, treasury)


def test_sigkill_between_settlement_and_ledger_write(engine, chain, treasury, payer, database_url):
    tenant = make_tenant(engine, "acme")
    auth, signature = authorize(chain, payer, treasury, PRICE)
    nonce = "0x" + auth.nonce.hex()
    # The claim is written before verify, as the paywall does.
    insert_claim(
        engine, tenant.tenant_id, chain.network, chain.token, payer.address, nonce, PRICE, treasury
    )
    tx_hash = run_until(
        "settle",
        {
            "rpc_url": chain.rpc_url,
            "token": chain.token,
            "submitter": chain.facilitator.address,
            "data": transfer_with_authorization_data(chain, auth, signature),
        },
        "settled",
    )
    assert chain.token_contract().authorization_state(payer.address, auth.nonce)
    assert count(engine, ledger_transactions, ledger_transactions.c.tx_hash == tx_hash) == 0

    # While the claim is young a live gateway may still be writing it: reconcile waits.
    early = sync(engine, chain, treasury, grace_seconds=3600)
    assert early.deferred >= 1 and not early.balanced
    assert early.chain_treasury - early.ledger_treasury == PRICE

    report = sync(engine, chain, treasury)  # after the grace period
    assert report.settlements == 1 and report.balanced, report
    b = balance(engine, tenant.tenant_id)
    assert (b.earned, b.fees, b.available) == (PRICE, 500, PRICE - 500)
    with engine.connect() as conn:
        claim = conn.execute(sa.select(payment_claims).where(payment_claims.c.nonce == nonce))
        assert claim.mappings().one()["status"] == "settled"
        row = conn.execute(sa.select(payments).where(payments.c.tx_hash == tx_hash)).mappings()
        assert row.one()["amount_atomic"] == PRICE
        log_index = conn.execute(
            sa.select(ledger_transactions.c.log_index).where(
                ledger_transactions.c.tx_hash == tx_hash
            )
        ).scalar_one()
        assert log_index is not None  # posted from the chain log: (network, tx, log index)
    assert sync(engine, chain, treasury).posted == 0  # restart again: nothing twice
    assert_invariants(engine, chain, treasury)


def test_pending_direct_payment_books_the_fee_owed(engine, chain, treasury, payer):
    creator = Wallet.create().address
    tenant = make_tenant(engine, "direct", pay_to=creator)
    paid = settle_on_chain(chain, payer, creator, 20_000)
    insert_claim(
        engine,
        tenant.tenant_id,
        chain.network,
        chain.token,
        paid.payer,
        paid.nonce,
        20_000,
        creator,
        status="pending",
    )  # settle timed out
    report = sync(engine, chain, treasury, grace_seconds=3600)  # pending: no grace needed
    assert report.settlements == 1 and report.balanced
    b = balance(engine, tenant.tenant_id)
    assert (b.earned, b.paid_direct, b.fees, b.fees_due, b.available) == (
        20_000,
        20_000,
        1_000,
        1_000,
        0,
    )
    assert_invariants(engine, chain, treasury)


def test_unexplained_money_in_and_out_is_booked_to_the_platform(
    engine, chain, treasury_wallet, payer
):
    treasury = treasury_wallet.address
    settle_on_chain(chain, payer, treasury, 7_000)  # no claim: not the gateway's payment
    chain.fund(treasury, 3_000)  # a mint
    token = chain.token_contract()
    token.transfer(treasury_wallet.account, Wallet.create().address, 2_500)  # not a payout
    token.transfer(treasury_wallet.account, treasury, 1_000)  # to itself: moves nothing
    report = sync(engine, chain, treasury)
    assert (report.unattributed, report.deposits, report.outflows) == (1, 2, 1)
    assert report.balanced and report.ledger_treasury == usdc(100) + 7_000 + 3_000 - 2_500
    assert_invariants(engine, chain, treasury)


def test_a_restarted_chain_is_refused(engine, chain, treasury):
    sync(engine, chain, treasury)
    with engine.begin() as conn:
        conn.execute(sa.update(ledger_sync).values(last_block_hash="0x" + "0" * 64))
    with pytest.raises(ChainReset, match="another chain"):
        sync(engine, chain, treasury)


def test_starting_late_books_the_balance_then_as_opening(engine, chain, treasury):
    start = chain.web3().eth.block_number + 1
    chain.fund(treasury, 1_234)
    report = sync(engine, chain, treasury, from_block=start)
    assert report.deposits == 1 and report.ledger_treasury == usdc(100) + 1_234
    assert report.balanced


def test_unused_claims_are_released_once_dead_or_stale(engine, chain, treasury, payer):
    """A settle lost before broadcast leaves a pending claim nothing will ever complete."""
    tenant = make_tenant(engine, "acme")

    def pending(age: float, valid_before: int | None) -> str:
        nonce = "0x" + os.urandom(32).hex()
        insert_claim(
            engine, tenant.tenant_id, chain.network, chain.token, payer.address, nonce, PRICE,
            treasury, status="pending", age_seconds=age, valid_before=valid_before,
        )  # fmt: skip
        return nonce

    now = chain.web3().eth.get_block("latest")["timestamp"]
    expired = pending(0, now - 1)  # no later block can include it
    stale = pending(600, now + 3600)  # valid, but older than the grace period
    young = pending(0, now + 3600)  # a gateway may still be settling it
    report = sync(engine, chain, treasury, grace_seconds=120)
    assert report.released == 2 and report.balanced, report
    with engine.connect() as conn:
        status = dict(
            conn.execute(sa.select(payment_claims.c.nonce, payment_claims.c.status)).all()
        )
    assert (status[expired], status[stale], status[young]) == ("released", "released", "pending")
    assert sync(engine, chain, treasury, grace_seconds=120).released == 0
    assert_invariants(engine, chain, treasury)


def test_a_released_authorization_used_later_still_credits_its_tenant(
    engine, chain, treasury, payer
):
    tenant = make_tenant(engine, "acme")
    auth, signature = authorize(chain, payer, treasury, PRICE)
    nonce = "0x" + auth.nonce.hex()
    insert_claim(
        engine, tenant.tenant_id, chain.network, chain.token, payer.address, nonce, PRICE,
        treasury, status="released",
    )  # fmt: skip
    chain.token_contract().transfer_with_authorization(chain.facilitator.account, auth, signature)
    report = sync(engine, chain, treasury)
    assert (report.settlements, report.unattributed, report.balanced) == (1, 0, True)
    assert balance(engine, tenant.tenant_id).available == PRICE - PRICE * 5 // 100
    assert_invariants(engine, chain, treasury)
