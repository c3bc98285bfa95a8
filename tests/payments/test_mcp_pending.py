"""A paid MCP call whose settlement is broadcast but not confirmed, through the SDK's MCP
payment wrapper: "pending, do not pay again" with the transaction, the claim kept `pending`,
never a fresh 402; the same payment presented again once mined is served, booked once.

A stack of its own: the test stops anvil's automine (see `test_payments_pending.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from paidstack import Stack, nonce_of, open_stack
from test_mcp_wrapper import _by_hand
from x402.mcp import MCP_PAYMENT_RESPONSE_META_KEY

from claw402.chain.token import usdc
from claw402.payments.schema import PENDING, SETTLED


@pytest.fixture(scope="module")
def slow_chain_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with open_stack(
        tmp_path_factory.mktemp("mcp-pending"),
        facilitator={"confirmation_timeout": 0.5},
        payment={"settle_timeout": 20.0},
    ) as stack:
        yield stack


@pytest.fixture
def reading_the_chain(slow_chain_stack: Stack) -> str:
    """A gateway whose paywall asks the chain about a pending payment presented again."""
    return slow_chain_stack.serve(
        slow_chain_stack.paywall_with(rpc_url=slow_chain_stack.chain.rpc_url)
    )


def _automine(stack: Stack, on: bool) -> None:
    stack.chain.web3().provider.make_request("evm_setAutomine", [on])  # type: ignore[arg-type]


def test_a_settlement_without_receipt_is_pending_then_served(
    slow_chain_stack: Stack, reading_the_chain: str
) -> None:
    stack = slow_chain_stack
    payer = stack.payer()
    payment = stack.sign(payer, "alpha")
    url = f"{reading_the_chain}/t/alpha/mcp"
    _automine(stack, False)
    try:
        pending = asyncio.run(_by_hand(url, payment))
        assert pending.isError, pending.content
        body = pending.structuredContent
        assert body["error"] == "payment_pending" and body["transaction"].startswith("0x")
        assert "accepts" not in body  # not a 402: the payer must not pay again
        (claim,) = stack.claims(nonce_of(payment))
        assert claim["status"] == PENDING and claim["tx_hash"] == body["transaction"]
    finally:
        _automine(stack, True)
        stack.chain.web3().provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    price = stack.tenants["alpha"].price_atomic
    assert stack.balance(payer.address) == usdc(1) - price
    served = asyncio.run(_by_hand(url, payment))  # the same payment again, now mined
    assert not served.isError, served.structuredContent
    assert served.meta[MCP_PAYMENT_RESPONSE_META_KEY]["transaction"] == body["transaction"]
    (claim,) = stack.claims(nonce_of(payment))
    assert claim["status"] == SETTLED
    assert len(stack.payments(body["transaction"])) == 1
    assert stack.balance(payer.address) == usdc(1) - price
