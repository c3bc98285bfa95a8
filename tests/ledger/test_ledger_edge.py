"""Edge settlements on a real anvil: reconcile credits the tenant an edge event names.

An edge payment is a `transferWithAuthorization` to the treasury with no `payment_claims`
row (the Cloudflare paywall keeps its claims in a Durable Object), plus the dispatch Worker's
`payment_settled` event, written through `claw402.events.edge.ingest` exactly as `POST
/_claw402/events` does. Events that disagree with the chain attribute nothing.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from eth_utils import to_checksum_address
from ledgerkit import (
    Paid,
    assert_invariants,
    insert_claim,
    make_tenant,
    new_treasury,
    settle_on_chain,
    sync,
)

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.events import edge
from claw402.events.store import EventStore
from claw402.ledger import accounts, balance
from claw402.ledger.balances import account_balance
from claw402.ledger.claims import payments
from claw402.ledger.schema import ledger_transactions

PRICE = 10_000  # $0.01
NET = PRICE - PRICE * 5 // 100


@pytest.fixture
def treasury(chain) -> str:
    return new_treasury(chain, usdc(100)).address


@pytest.fixture
def payer(chain) -> Wallet:
    wallet = Wallet.create()
    chain.fund(wallet.address, usdc(5))
    return wallet


def settled_event(chain, paid: Paid, tenant_id: str, **details: Any) -> dict[str, Any]:
    """A payment_settled event as the dispatch Worker builds it (dispatcher.js `event`)."""
    facts = {
        "transaction": paid.tx_hash,
        "resource": "https://edge.example/t/acme/v1/records",
        "network": chain.network,
        "payer": to_checksum_address(paid.payer),  # as signed: the check ignores case
        "nonce": paid.nonce,
        "amount": str(paid.amount),
        "payTo": paid.to,
        "x402Version": 2,
    }
    return {
        "type": "payment_settled",
        "ts": time.time(),
        "requestId": "req-edge-" + paid.nonce[2:10],
        "tenantId": tenant_id,
        "workerName": "tenant-acme-worker",
        "limits": {"cpuMs": 50, "subRequests": 50},
        "status": 200,
        "durationMs": 12.5,
        "reason": None,
        "details": {**facts, **details},
    }


def ingest(engine, *batch: dict[str, Any]) -> None:
    assert edge.ingest(EventStore(engine), orjson.dumps({"events": list(batch)})) == len(batch)


def unattributed(engine) -> int:
    with engine.connect() as conn:
        return account_balance(conn, accounts.UNATTRIBUTED)


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()


def test_an_edge_settlement_is_credited_to_its_tenant_once(engine, chain, treasury, payer):
    tenant = make_tenant(engine, "acme")
    paid = settle_on_chain(chain, payer, treasury, PRICE)
    ingest(engine, settled_event(chain, paid, tenant.tenant_id))
    report = sync(engine, chain, treasury)
    assert (report.settlements, report.edge_settlements, report.unattributed) == (1, 1, 0)
    assert report.balanced and report.warnings == []
    money = balance(engine, tenant.tenant_id)
    assert (money.earned, money.fees, money.available) == (PRICE, PRICE - NET, NET)
    assert unattributed(engine) == 0
    with engine.connect() as conn:
        row = conn.execute(sa.select(payments).where(payments.c.tx_hash == paid.tx_hash)).one()
    assert (row.tenant_id, row.amount_atomic, row.request_id) == (
        tenant.tenant_id,
        PRICE,
        "req-edge-" + paid.nonce[2:10],
    )
    again = sync(engine, chain, treasury)
    assert again.posted == 0 and again.balanced
    assert count(engine, ledger_transactions, ledger_transactions.c.tx_hash == paid.tx_hash) == 1
    assert balance(engine, tenant.tenant_id).available == NET
    assert_invariants(engine, chain, treasury)


def test_an_event_without_a_nonce_still_matches_on_transaction_and_payer(
    engine, chain, treasury, payer
):
    tenant = make_tenant(engine, "acme")
    paid = settle_on_chain(chain, payer, treasury, PRICE)
    event = settled_event(chain, paid, tenant.tenant_id)
    del event["details"]["nonce"]  # a Worker built before the event carried it
    ingest(engine, event)
    report = sync(engine, chain, treasury)
    assert report.edge_settlements == 1 and balance(engine, tenant.tenant_id).available == NET
    assert_invariants(engine, chain, treasury)


FORGERIES = {
    "amount": ({"amount": str(PRICE * 100)}, "amount"),
    "payee": ({"payTo": "0x" + "ab" * 20}, "payTo"),
    "payer": ({"payer": "0x" + "cd" * 20}, "payer"),
    "nonce": ({"nonce": "0x" + "ee" * 32}, "nonce"),
    "network": ({"network": "eip155:8453"}, "network"),
}


@pytest.mark.parametrize("forged", sorted(FORGERIES))
def test_an_event_that_disagrees_with_the_chain_credits_no_one(
    engine, chain, treasury, payer, forged
):
    tenant = make_tenant(engine, "acme")
    paid = settle_on_chain(chain, payer, treasury, PRICE)
    changes, field_name = FORGERIES[forged]
    ingest(engine, settled_event(chain, paid, tenant.tenant_id, **changes))
    report = sync(engine, chain, treasury)
    assert (report.settlements, report.unattributed) == (0, 1)
    assert report.balanced  # the treasury still balances: the money is the platform's
    assert len(report.warnings) == 1 and f"says {field_name}" in report.warnings[0]
    assert balance(engine, tenant.tenant_id).earned == 0
    assert unattributed(engine) == PRICE
    assert count(engine, payments, payments.c.tx_hash == paid.tx_hash) == 0
    assert_invariants(engine, chain, treasury)


def test_an_unknown_tenant_or_a_gateway_event_credits_no_one(engine, chain, treasury, payer):
    tenant = make_tenant(engine, "acme")
    forged = settle_on_chain(chain, payer, treasury, PRICE)
    ingest(engine, settled_event(chain, forged, "t_doesnotexist"))
    local = settle_on_chain(chain, payer, treasury, PRICE)
    # the same event, but not from the edge (no "source": "edge"): never a hint
    EventStore(engine).write_events([settled_event(chain, local, tenant.tenant_id)])
    report = sync(engine, chain, treasury)
    assert (report.settlements, report.unattributed) == (0, 2)
    assert len(report.warnings) == 1 and report.warnings[0].startswith(forged.tx_hash)
    assert report.warnings[0].endswith("edge event names unknown tenant 't_doesnotexist'")
    assert balance(engine, tenant.tenant_id).earned == 0 and unattributed(engine) == 2 * PRICE
    assert_invariants(engine, chain, treasury)


def test_events_naming_two_tenants_credit_no_one(engine, chain, treasury, payer):
    acme, other = make_tenant(engine, "acme"), make_tenant(engine, "other")
    paid = settle_on_chain(chain, payer, treasury, PRICE)
    ingest(
        engine,
        settled_event(chain, paid, acme.tenant_id),
        settled_event(chain, paid, other.tenant_id),
    )
    report = sync(engine, chain, treasury)
    assert (report.settlements, report.unattributed) == (0, 1)
    assert "several tenants" in report.warnings[0]
    assert_invariants(engine, chain, treasury)


def test_a_late_event_is_waited_for_during_the_grace_period(engine, chain, treasury, payer):
    tenant = make_tenant(engine, "acme")
    first = settle_on_chain(chain, payer, treasury, PRICE)
    ingest(engine, settled_event(chain, first, tenant.tenant_id))  # this platform uses the edge
    paid = settle_on_chain(chain, payer, treasury, PRICE)
    early = sync(engine, chain, treasury, grace_seconds=3600)
    assert (early.edge_settlements, early.deferred, early.unattributed) == (1, 1, 0)
    ingest(engine, settled_event(chain, paid, tenant.tenant_id))  # the Worker's batch lands
    report = sync(engine, chain, treasury, grace_seconds=3600)
    assert (report.deferred, report.edge_settlements) == (0, 1) and report.balanced
    assert balance(engine, tenant.tenant_id).available == 2 * NET
    assert_invariants(engine, chain, treasury)


def test_without_edge_events_an_unexplained_payment_is_not_waited_for(
    engine, chain, treasury, payer
):
    settle_on_chain(chain, payer, treasury, PRICE)
    report = sync(engine, chain, treasury, grace_seconds=3600)
    assert (report.deferred, report.unattributed, report.balanced) == (0, 1, True)


# -- paid straight to the creator's own wallet (a tenant deployed with --pay-to) -------------

FEE = PRICE * 5 // 100


@pytest.fixture
def creator(chain) -> str:
    return Wallet.create().address


def booked_under(engine, tx_hash: str) -> list[tuple[str, int]]:
    t = ledger_transactions.c
    with engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(sa.select(t.kind, t.gross).where(t.tx_hash == tx_hash))
        ]


def test_an_edge_payment_to_the_creators_wallet_books_the_fee_owed_once(
    engine, chain, treasury, payer, creator
):
    tenant = make_tenant(engine, "acme", pay_to=creator)
    paid = settle_on_chain(chain, payer, creator, PRICE)
    event = settled_event(chain, paid, tenant.tenant_id)
    ingest(engine, event)
    report = sync(engine, chain, treasury)
    assert (report.settlements, report.edge_settlements, report.edge_direct) == (1, 1, 1)
    assert report.balanced and report.warnings == [] and report.unattributed == 0
    money = balance(engine, tenant.tenant_id)
    assert (money.earned, money.paid_direct, money.fees_due, money.fees) == (
        PRICE,
        PRICE,
        FEE,
        FEE,
    )
    assert money.available == 0  # the platform never held it
    assert booked_under(engine, paid.tx_hash) == [("settlement_direct", PRICE)]
    with engine.connect() as conn:
        row = conn.execute(sa.select(payments).where(payments.c.tx_hash == paid.tx_hash)).one()
    assert (row.tenant_id, row.pay_to.lower(), row.request_id) == (
        tenant.tenant_id,
        creator.lower(),
        event["requestId"],
    )
    # The Worker posts the batch again, reconcile runs again: nothing more is booked.
    ingest(engine, event, event)
    assert sync(engine, chain, treasury).posted == 0
    assert sync(engine, chain, treasury).posted == 0
    assert booked_under(engine, paid.tx_hash) == [("settlement_direct", PRICE)]
    assert balance(engine, tenant.tenant_id) == money
    assert_invariants(engine, chain, treasury)


def test_the_same_direct_payment_at_the_gateway_and_the_edge_is_booked_once(
    engine, chain, treasury, payer, creator
):
    from claw402.ledger import post_settlement

    tenant = make_tenant(engine, "acme", pay_to=creator)
    first = settle_on_chain(chain, payer, creator, PRICE)  # booked by the gateway, then seen
    claim = insert_claim(engine, tenant.tenant_id, chain.network, chain.token, first.payer,
                         first.nonce, PRICE, creator)  # fmt: skip
    with engine.begin() as conn:
        assert post_settlement(conn, claim, first.tx_hash) is not None
    ingest(engine, settled_event(chain, first, tenant.tenant_id))
    second = settle_on_chain(chain, payer, creator, PRICE)  # seen at the edge, then the gateway
    ingest(engine, settled_event(chain, second, tenant.tenant_id))
    report = sync(engine, chain, treasury)
    assert (report.edge_direct, report.warnings) == (1, [])
    claim = insert_claim(engine, tenant.tenant_id, chain.network, chain.token, second.payer,
                         second.nonce, PRICE, creator)  # fmt: skip
    with engine.begin() as conn:
        assert post_settlement(conn, claim, second.tx_hash) is None  # keyed: already booked
    assert sync(engine, chain, treasury).posted == 0
    for paid in (first, second):
        assert booked_under(engine, paid.tx_hash) == [("settlement_direct", PRICE)]
    money = balance(engine, tenant.tenant_id)
    assert (money.paid_direct, money.fees_due) == (2 * PRICE, 2 * FEE)
    assert_invariants(engine, chain, treasury)


def _forge(chain, engine, payer, creator, treasury, how):
    """An edge event for the creator's tenant naming a transaction that did not pay it so,
    and the words reconcile's warning must use."""
    if how == "elsewhere":  # a real payment from the payer, to someone else
        paid = settle_on_chain(chain, payer, Wallet.create().address, PRICE)
        return {"transaction": paid.tx_hash, "nonce": paid.nonce}, "moved no tokens"
    if how == "treasury":  # a real payment into the treasury, claimed as the creator's:
        paid = settle_on_chain(chain, payer, treasury, PRICE)  # the treasury pass reports it
        return {"transaction": paid.tx_hash, "nonce": paid.nonce}, "says payTo"
    if how == "amount":  # the creator was paid, but not what the event says
        paid = settle_on_chain(chain, payer, creator, PRICE)
        fields = {"transaction": paid.tx_hash, "nonce": paid.nonce, "amount": str(PRICE * 100)}
        return fields, "says amount"
    if how == "unknown":
        return {"transaction": "0x" + "ab" * 32}, "the chain does not have"
    assert how == "garbage"
    return {"transaction": "not a hash"}, "names no transaction hash"


@pytest.mark.parametrize("how", ["elsewhere", "treasury", "amount", "unknown", "garbage"])
def test_a_forged_direct_event_books_nothing_and_is_reported(
    engine, chain, treasury, payer, creator, how
):
    tenant = make_tenant(engine, "acme", pay_to=creator)
    fields, words = _forge(chain, engine, payer, creator, treasury, how)
    real = settle_on_chain(chain, payer, creator, PRICE)  # the event's other facts: plausible
    ingest(engine, settled_event(chain, real, tenant.tenant_id, payTo=creator, **fields))
    report = sync(engine, chain, treasury)
    assert (report.edge_direct, report.edge_settlements) == (0, 0), report.to_json()
    assert len(report.warnings) == 1 and words in report.warnings[0], report.warnings
    money = balance(engine, tenant.tenant_id)
    assert (money.earned, money.paid_direct, money.fees_due) == (0, 0, 0)
    assert count(engine, payments, payments.c.tenant_id == tenant.tenant_id) == 0
    assert report.balanced
    assert_invariants(engine, chain, treasury)


def test_a_direct_event_for_another_wallet_books_nothing(engine, chain, treasury, payer, creator):
    """The chain shows the payment, but the wallet is not the named tenant's: it is neither
    a direct settlement of that tenant nor the platform's."""
    tenant = make_tenant(engine, "acme")  # paid to the treasury: no wallet of its own
    paid = settle_on_chain(chain, payer, creator, PRICE)
    ingest(engine, settled_event(chain, paid, tenant.tenant_id))
    report = sync(engine, chain, treasury)
    assert report.edge_direct == 0 and "is neither the treasury nor" in report.warnings[0]
    assert balance(engine, tenant.tenant_id).earned == 0


def test_an_event_naming_an_unmined_transaction_waits_for_the_grace_period(
    engine, chain, treasury, creator
):
    tenant = make_tenant(engine, "acme", pay_to=creator)
    event = settled_event(chain, Paid("0x" + "cd" * 20, "0x" + "ee" * 32, PRICE, creator,
                                      "0x" + "ab" * 32), tenant.tenant_id)  # fmt: skip
    ingest(engine, event)
    early = sync(engine, chain, treasury, grace_seconds=3600)
    assert (early.deferred, early.warnings, early.edge_direct) == (1, [], 0)
    late = sync(engine, chain, treasury)
    assert late.deferred == 0 and "the chain does not have" in late.warnings[0]


def test_a_forged_twin_does_not_hide_the_real_direct_event(engine, chain, treasury, payer, creator):
    tenant = make_tenant(engine, "acme", pay_to=creator)
    paid = settle_on_chain(chain, payer, creator, PRICE)
    ingest(engine, settled_event(chain, paid, tenant.tenant_id, payTo=Wallet.create().address))
    ingest(engine, settled_event(chain, paid, tenant.tenant_id))
    report = sync(engine, chain, treasury)
    assert report.edge_direct == 1 and len(report.warnings) == 1, report.warnings
    assert "moved no tokens" in report.warnings[0]
    assert booked_under(engine, paid.tx_hash) == [("settlement_direct", PRICE)]
    assert balance(engine, tenant.tenant_id).fees_due == FEE
