"""A settle that times out after broadcast: an answer naming the pending transaction, never a
fresh 402, and a claim left `pending` for the reconciler.

A stack of its own (the test stops anvil's automine, which would stall every other test):
with automine off the facilitator broadcasts `transferWithAuthorization` and then waits for a
receipt that does not come until the test mines a block.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from paidstack import Stack, nonce_of, open_stack

from claw402.chain.token import usdc
from claw402.payments.schema import PENDING

PRICE_A = usdc("0.01")


@pytest.fixture(scope="module")
def slow_chain_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The facilitator gives up waiting for a receipt after 0.5 s (it then answers
    # `settlement_pending` with the tx hash); the paywall's own settle timeout is longer.
    with open_stack(
        tmp_path_factory.mktemp("pending"),
        facilitator={"confirmation_timeout": 0.5},
        payment={"settle_timeout": 20.0},
    ) as stack:
        yield stack


def _automine(stack: Stack, on: bool) -> None:
    stack.chain.web3().provider.make_request("evm_setAutomine", [on])  # type: ignore[arg-type]


def test_a_settlement_without_receipt_is_pending_with_its_transaction(slow_chain_stack: Stack):
    stack = slow_chain_stack
    payer = stack.payer()
    payment = stack.sign(payer, "alpha")
    _automine(stack, False)
    try:
        r = stack.get("/t/alpha/v1/records", payment)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["error"] == "payment_pending"
        assert body["transaction"].startswith("0x")
        assert "items" not in body
        assert "payment-required" not in r.headers
        (claim,) = stack.claims(nonce_of(payment))
        assert claim["status"] == PENDING
        assert claim["tx_hash"] == body["transaction"]

        again = stack.get("/t/alpha/v1/records", payment)  # the caller retries: same answer
        assert again.status_code == 202
        assert again.json()["transaction"] == body["transaction"]
        assert stack.paywall.store.pending_claims()[0]["nonce"] == nonce_of(payment)
    finally:
        _automine(stack, True)
        stack.chain.web3().provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    # The money did move: this is why the answer was not a fresh 402.
    assert stack.balance(payer.address) == usdc(1) - PRICE_A


def test_a_settle_timing_out_at_the_gateway_is_pending_too(slow_chain_stack: Stack):
    stack = slow_chain_stack
    impatient = stack.paywall_with(settle_timeout=0.3)
    url = stack.serve(impatient)
    payer = stack.payer()
    payment = stack.sign(payer, "alpha")
    _automine(stack, False)
    try:
        r = stack.get("/t/alpha/v1/records", payment, base=url)
        assert r.status_code == 202, r.text
        assert r.json()["error"] == "payment_pending"
        assert r.json()["transaction"] is None  # the facilitator had not answered yet
        assert r.json()["nonce"] == nonce_of(payment).lower()
        (claim,) = stack.claims(nonce_of(payment))
        assert claim["status"] == PENDING
    finally:
        _automine(stack, True)
        stack.chain.web3().provider.make_request("evm_mine", [])  # type: ignore[arg-type]
