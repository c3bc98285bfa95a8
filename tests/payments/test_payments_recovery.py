"""Faults between the gateway and the facilitator, injected by a proxy in front of the real
facilitator (`faultproxy`): a settle reply lost after broadcast, a settle lost before it,
and an authorization replayed with queries that fail.

A stack of its own: reconcile runs against its treasury, which no other module pays into.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from faultproxy import DROP_REPLY, DROP_REQUEST, PASS, FaultProxy
from paidstack import Stack, encode, nonce_of, open_stack
from x402.http.utils import decode_payment_required_header, decode_payment_response_header

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.ledger import balance
from claw402.ledger.chain import TokenChain
from claw402.ledger.reconcile import reconcile
from claw402.ledger.report import ReconcileReport
from claw402.payments.schema import PENDING, RELEASED, SETTLED

PRICE_A = usdc("0.01")
NET_A = PRICE_A - PRICE_A * 5 // 100  # the creator's share after the 5% fee


@pytest.fixture(scope="module")
def rstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with open_stack(tmp_path_factory.mktemp("recovery")) as stack:
        yield stack


@pytest.fixture
def proxy(rstack: Stack) -> Iterator[FaultProxy]:
    with FaultProxy(rstack.facilitator_url) as running:
        yield running


def gateway(stack: Stack, proxy: FaultProxy, **overrides: Any) -> str:
    """A gateway paying through the proxy, reading the chain like `402claw serve` with
    CLAW402_RPC_URL set."""
    overrides.setdefault("pending_retry_seconds", 600.0)
    paywall = stack.paywall_with(
        facilitator_url=proxy.url, rpc_url=stack.chain.rpc_url, **overrides
    )
    return stack.serve(paywall)


def sync(stack: Stack) -> ReconcileReport:
    """`402claw reconcile` with no grace period, on this stack's registry and treasury."""
    chain = TokenChain(stack.chain.web3(), stack.chain.token)
    return reconcile(stack.registry.engine, chain, stack.chain.treasury.address, grace_seconds=0)


def earned(stack: Stack) -> tuple[int, int]:
    b = balance(stack.registry.engine, stack.tenants["alpha"].tenant_id)
    return b.earned, b.available


def mined_transaction(stack: Stack, payer: Wallet, nonce: str) -> str:
    chain = TokenChain(stack.chain.web3(), stack.chain.token)
    (used,) = chain.authorization_used(payer.address, nonce, 0, chain.head())
    return used.tx_hash


def assert_no_data(r: httpx.Response) -> None:
    assert "items" not in r.json() and "payment-response" not in r.headers


def lost_reply(stack: Stack, proxy: FaultProxy, url: str, payer: Wallet) -> dict[str, Any]:
    """Pay with the settle reply dropped after broadcast: 202, the money gone."""
    payment = stack.sign(payer, "alpha")
    proxy.settle = DROP_REPLY
    r = stack.get("/t/alpha/v1/records?country=Japan", payment, base=url)
    proxy.settle = PASS
    assert r.status_code == 202, r.text
    assert r.json()["error"] == "payment_pending" and r.json()["transaction"] is None
    assert stack.balance(payer.address) == usdc(1) - PRICE_A
    return payment


# -- item 2: charged, and the reply lost -------------------------------------------------------


def test_a_lost_settle_reply_is_served_on_retry_and_booked_once(rstack: Stack, proxy):
    stack, payer = rstack, rstack.payer()
    url = gateway(stack, proxy)
    sync(stack)
    before = earned(stack)
    payment = lost_reply(stack, proxy, url, payer)
    nonce = nonce_of(payment)
    tx_hash = mined_transaction(stack, payer, nonce)

    forged = stack.sign(
        payer, "alpha", nonce=bytes.fromhex(nonce[2:]), signer_key=Wallet.create().private_key
    )
    r = stack.get("/t/alpha/v1/records", forged, base=url)  # same payer and nonce, not the payment
    assert r.status_code == 409 and r.json()["error"] == "payment_replayed"
    assert_no_data(r)

    verifies = proxy.counts["/verify"]
    r = stack.get("/t/alpha/v1/records?country=Japan", payment, base=url)
    assert r.status_code == 200, r.text
    assert {item["country"] for item in r.json()["items"]} == {"Japan"}
    receipt = decode_payment_response_header(r.headers["payment-response"])
    assert receipt.success and receipt.transaction == tx_hash
    assert receipt.payer and receipt.payer.lower() == payer.address.lower()
    assert proxy.counts["/verify"] == verifies  # the chain answered, not the facilitator
    (claim,) = stack.claims(nonce)
    assert (claim["status"], claim["tx_hash"]) == (SETTLED, tx_hash) and claim["served_at"]
    (row,) = stack.payments(tx_hash)
    assert row["amount_atomic"] == PRICE_A

    again = stack.get("/t/alpha/v1/records", payment, base=url)
    assert again.status_code == 409 and again.json()["error"] == "payment_replayed"
    assert_no_data(again)

    report = sync(stack)  # booked by the retry: reconcile finds nothing to add
    assert report.settlements == 0 and report.balanced, report
    assert (
        report.ledger_treasury
        == report.chain_treasury
        == stack.balance(stack.chain.treasury.address)
    )
    assert earned(stack) == (before[0] + PRICE_A, before[1] + NET_A)
    assert stack.balance(payer.address) == usdc(1) - PRICE_A  # charged once


def test_a_payment_reconcile_booked_is_still_served_once(rstack: Stack, proxy):
    stack, payer = rstack, rstack.payer()
    url = gateway(stack, proxy)
    sync(stack)
    before = earned(stack)
    payment = lost_reply(stack, proxy, url, payer)
    tx_hash = mined_transaction(stack, payer, nonce_of(payment))

    report = sync(stack)
    assert report.settlements == 1 and report.balanced, report
    (claim,) = stack.claims(nonce_of(payment))
    assert claim["status"] == SETTLED and claim["served_at"] is None
    assert earned(stack) == (before[0] + PRICE_A, before[1] + NET_A)

    r = stack.get("/t/alpha/v1/records?_limit=2", payment, base=url)
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 2
    assert decode_payment_response_header(r.headers["payment-response"]).transaction == tx_hash
    again = stack.get("/t/alpha/v1/records?_limit=2", payment, base=url)
    assert again.status_code == 409 and again.json()["error"] == "payment_replayed"

    report = sync(stack)
    assert report.posted == 0 and report.balanced, report
    assert report.ledger_treasury == report.chain_treasury
    assert earned(stack) == (before[0] + PRICE_A, before[1] + NET_A)  # booked once
    assert len(stack.payments(tx_hash)) == 1


# -- item 3: lost before broadcast ---------------------------------------------------------------


def test_a_settle_lost_before_broadcast_settles_the_same_payment_after_the_window(
    rstack: Stack, proxy
):
    stack, payer = rstack, rstack.payer()
    url = gateway(stack, proxy, pending_retry_seconds=1.0)
    payment = stack.sign(payer, "alpha")
    proxy.settle = DROP_REQUEST
    r = stack.get("/t/alpha/v1/records?_limit=1", payment, base=url)
    assert r.status_code == 202 and r.json()["error"] == "payment_pending", r.text
    assert stack.balance(payer.address) == usdc(1)  # nothing moved
    proxy.settle = PASS
    early = stack.get("/t/alpha/v1/records?_limit=1", payment, base=url)
    assert early.status_code == 202  # inside the window: a late broadcast may still land
    time.sleep(1.1)
    r = stack.get("/t/alpha/v1/records?_limit=1", payment, base=url)
    assert r.status_code == 200, r.text
    receipt = decode_payment_response_header(r.headers["payment-response"])
    assert receipt.transaction == mined_transaction(stack, payer, nonce_of(payment))
    assert stack.balance(payer.address) == usdc(1) - PRICE_A  # the one authorization, once
    assert sync(stack).balanced


def test_an_expired_pending_payment_is_released_with_a_fresh_402(rstack: Stack, proxy):
    stack, payer = rstack, rstack.payer()
    url = gateway(stack, proxy)
    valid_before = int(time.time()) + 9  # the facilitator wants 6 s of validity left
    payment = stack.sign(payer, "alpha", valid_before=valid_before)
    proxy.settle = DROP_REQUEST
    assert stack.get("/t/alpha/v1/records", payment, base=url).status_code == 202
    proxy.settle = PASS
    w3 = stack.chain.web3()
    w3.provider.make_request("evm_setNextBlockTimestamp", [valid_before])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    r = stack.get("/t/alpha/v1/records", payment, base=url)
    assert r.status_code == 402, r.text
    assert r.json()["error"] == "payment_expired"
    assert decode_payment_required_header(r.headers["payment-required"]).accepts
    assert_no_data(r)
    assert stack.released(nonce_of(payment)) == 0
    assert stack.balance(payer.address) == usdc(1)
    fresh = stack.get("/t/alpha/v1/records?_limit=1", stack.sign(payer, "alpha"), base=url)
    assert fresh.status_code == 200, fresh.text  # paying again works, and costs one price
    assert stack.balance(payer.address) == usdc(1) - PRICE_A


def test_reconcile_releases_a_pending_claim_whose_settle_never_left(rstack: Stack, proxy):
    stack, payer = rstack, rstack.payer()
    url = gateway(stack, proxy)  # a long retry window: only reconcile can free it
    payment = stack.sign(payer, "alpha")
    proxy.settle = DROP_REQUEST
    assert stack.get("/t/alpha/v1/records", payment, base=url).status_code == 202
    proxy.settle = PASS
    assert stack.claims(nonce_of(payment))[0]["status"] == PENDING

    report = sync(stack)
    assert report.released == 1 and report.balanced, report
    assert report.to_json()["released"] == 1
    assert stack.claims(nonce_of(payment))[0]["status"] == RELEASED
    r = stack.get("/t/alpha/v1/records?_limit=1", payment, base=url)  # the same payment
    assert r.status_code == 200, r.text
    assert stack.balance(payer.address) == usdc(1) - PRICE_A
    assert sync(stack).released == 0


# -- item 4: one authorization, failing queries -------------------------------------------------


def test_an_invalid_query_costs_no_verify_and_no_claim(rstack: Stack, proxy):
    stack, payer = rstack, rstack.payer()
    url = gateway(stack, proxy)
    payment = stack.sign(payer, "alpha")
    r = stack.get("/t/alpha/v1/records?no_such_column=1", payment, base=url)
    assert r.status_code == 400 and r.json()["error"] == "invalid_query"
    assert "no_such_column" in r.json()["detail"]
    assert proxy.counts["/verify"] == 0
    assert stack.claims(nonce_of(payment)) == []
    unpaid = stack.get("/t/alpha/v1/records?no_such_column=1", base=url)
    assert unpaid.status_code == 402  # unpaid calls learn the price first, as before
    assert stack.get("/t/alpha/v1/records?_limit=1", payment, base=url).status_code == 200


def test_failed_attempts_are_bounded_across_gateways(rstack: Stack, proxy):
    stack, payer = rstack, rstack.payer()
    first = gateway(stack, proxy, max_attempts=3)
    second = gateway(stack, proxy, max_attempts=3)  # another paywall: shares only the database
    payment = stack.sign(payer, "alpha")
    for base in (first, second, first):
        missing = stack.get("/t/alpha/v1/records/999999", payment, base=base)
        assert missing.status_code == 404, missing.text  # a query that fails after verify
    assert proxy.counts["/verify"] == 3
    assert stack.released(nonce_of(payment)) == 3
    for base in (second, first):
        r = stack.get("/t/alpha/v1/records?_limit=1", payment, base=base)
        assert r.status_code == 409 and r.json()["error"] == "payment_attempts_exhausted"
        assert_no_data(r)
    assert proxy.counts["/verify"] == 3  # refused before the facilitator
    assert stack.balance(payer.address) == usdc(1)


def test_concurrent_retries_of_a_lost_reply_are_served_once(rstack: Stack, proxy):
    stack, payer = rstack, rstack.payer()
    url = gateway(stack, proxy)
    sync(stack)
    before = earned(stack)
    header = encode(lost_reply(stack, proxy, url, payer))

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            calls = [
                http.get(
                    f"{url}/t/alpha/v1/records?_limit=1", headers={"PAYMENT-SIGNATURE": header}
                )
                for _ in range(8)
            ]
            return await asyncio.gather(*calls)

    statuses = sorted(r.status_code for r in asyncio.run(burst()))
    assert statuses == [200] + [409] * 7, statuses
    report = sync(stack)
    assert report.settlements == 0 and report.balanced, report
    assert earned(stack) == (before[0] + PRICE_A, before[1] + NET_A)
