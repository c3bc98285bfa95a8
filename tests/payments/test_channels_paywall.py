"""Paying the gateway through batch-settlement channels: anvil, the real facilitator, the
real gateway, the SDK's client scheme as payer, the SQL channel storage and the ledger.

Each test deploys its own tenants and pays from fresh wallets, so its channels, balances and
books are its own (the treasury receiver is shared: assertions on it are deltas).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from channelpay import SCHEME, ChannelPayer, config_of, encode, required_of, voucher
from paidstack import Stack
from x402.http.utils import decode_payment_response_header
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id

from claw402.chain.token import usdc
from claw402.ledger import accounts
from claw402.ledger.balances import account_balance, balance, check_books
from claw402.ledger.schema import channel_charges
from claw402.payments.channels.manager import ChannelManager
from claw402.payments.channels.terms import ChannelSchemes
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.models import Tenant
from claw402.samples import CITIES

PRICE = usdc("0.001")
FEE = PRICE * 500 // 10_000


def _tenant(stack: Stack, price: str = "0.001", **extra: Any) -> Tenant:
    slug = "ch-" + secrets.token_hex(4)
    request = DeployRequest(source=CITIES, slug=slug, price=price, **extra)
    return deploy(stack.registry, stack.settings, request)


def _url(stack: Stack, tenant: Tenant, query: str = "country=Japan") -> str:
    return f"{stack.url}/t/{tenant.slug}/v1/records?{query}"


def _payer(stack: Stack) -> ChannelPayer:
    return ChannelPayer(stack.payer(usdc(1)), stack.chain.network, stack.chain.token)


def _manager(stack: Stack, **config: Any) -> ChannelManager:
    """The channel manager `402claw serve` runs, on this stack (booking claims needs RPC)."""
    settings = replace(stack.config, rpc_url=stack.chain.rpc_url, **config)
    return ChannelManager(ChannelSchemes(settings, stack.registry.engine))


def _escrow(stack: Stack, channel_id: str) -> tuple[int, int]:
    from claw402.ledger.channels import _escrow as escrow

    balance_, claimed = (
        escrow(stack.chain.web3()).functions.channels(bytes.fromhex(channel_id[2:])).call()
    )
    return int(balance_), int(claimed)


def _charges(stack: Stack, channel_id: str) -> list[dict[str, Any]]:
    c = channel_charges.c
    with stack.registry.engine.connect() as conn:
        rows = conn.execute(
            sa.select(channel_charges).where(c.channel_id == channel_id).order_by(c.cumulative)
        ).mappings()
        return [dict(r) for r in rows]


def _unclaimed(stack: Stack) -> int:
    with stack.registry.engine.connect() as conn:
        return account_balance(conn, accounts.channel_unclaimed(stack.chain.treasury.address))


def test_the_402_offers_a_channel_first_then_exact_at_the_same_price(stack: Stack) -> None:
    tenant = _tenant(stack)
    answer = httpx.get(_url(stack, tenant), timeout=10)
    assert answer.status_code == 402
    batch, exact = required_of(answer).accepts
    assert (batch.scheme, exact.scheme) == (SCHEME, "exact")
    assert batch.amount == exact.amount == str(PRICE)
    assert batch.pay_to == exact.pay_to == stack.chain.treasury.address
    assert batch.extra["receiverAuthorizer"] == stack.chain.facilitator.address
    assert batch.extra["withdrawDelay"] == stack.config.channel_withdraw_delay
    assert batch.extra["minDeposit"] == str(10 * PRICE)
    assert batch.extra["tenant"] == tenant.tenant_id
    assert [a["scheme"] for a in answer.json()["accepts"]] == ["exact"]  # v1 knows exact only


def test_deploy_schemes_restricts_what_the_402_offers(stack: Stack) -> None:
    exact_only = _tenant(stack, schemes="exact")
    batch_only = _tenant(stack, schemes="batch")
    offered = {
        t.schemes: [a.scheme for a in required_of(httpx.get(_url(stack, t))).accepts]
        for t in (exact_only, batch_only)
    }
    assert offered == {"exact": ["exact"], "batch": [SCHEME]}
    payer = stack.payer(usdc(1))
    refused = stack.get(
        f"/t/{batch_only.slug}/v1/records",
        {**stack.sign(payer, exact_only.slug), "accepted": {}},
    )
    assert refused.status_code in (400, 402)


def test_first_call_deposits_then_vouchers_move_nothing_on_chain(stack: Stack) -> None:
    tenant = _tenant(stack)
    payer = _payer(stack)
    treasury = stack.chain.treasury.address
    start = stack.balance(payer.wallet.address)
    block = stack.chain.web3().eth.block_number

    first, payload = payer.call(_url(stack, tenant))
    assert first.status_code == 200, first.text
    assert payload.payload["type"] == "deposit"
    receipt = decode_payment_response_header(first.headers["payment-response"])
    assert receipt.success and receipt.transaction  # the deposit's transaction
    deposit = int(payload.payload["deposit"]["amount"])
    assert stack.balance(payer.wallet.address) == start - deposit
    channel_id = compute_channel_id(config_of(payload), stack.chain.network)
    after_deposit = stack.chain.web3().eth.block_number
    assert after_deposit == block + 1  # one transaction

    for n in range(2, 6):
        answer, payload = payer.call(_url(stack, tenant, f"continent=Asia&_limit={n}"))
        assert answer.status_code == 200, answer.text
        assert payload.payload["type"] == "voucher"
        assert len(answer.json()["items"]) == n
        receipt = decode_payment_response_header(answer.headers["payment-response"])
        assert receipt.transaction == ""
        assert receipt.extra["channelState"]["chargedCumulativeAmount"] == str(n * PRICE)
    assert stack.chain.web3().eth.block_number == after_deposit  # vouchers: no chain tx
    assert _escrow(stack, channel_id) == (deposit, 0)

    charges = _charges(stack, channel_id)
    assert [(c["cumulative"], c["amount"], c["fee"]) for c in charges] == [
        (n * PRICE, PRICE, FEE) for n in range(1, 6)
    ]
    earned = balance(stack.registry.engine, tenant.tenant_id)
    assert (earned.earned, earned.fees, earned.unclaimed, earned.available) == (
        5 * PRICE,
        5 * FEE,
        5 * (PRICE - FEE),
        0,
    )
    # The channel manager claims and settles; the books follow the escrow.
    treasury_before = stack.balance(treasury)
    manager = _manager(stack)
    claimed = manager.claim()
    assert not claimed.errors and claimed.booked >= 1
    assert _escrow(stack, channel_id) == (deposit, 5 * PRICE)
    earned = balance(stack.registry.engine, tenant.tenant_id)
    assert (earned.unclaimed, earned.claimed, earned.available) == (
        0,
        5 * (PRICE - FEE),
        5 * (PRICE - FEE),
    )
    assert all(c["claim_key"] for c in _charges(stack, channel_id))
    settled = manager.settle()
    assert not settled.errors
    assert stack.balance(treasury) - treasury_before >= 5 * PRICE
    assert check_books(stack.registry.engine) == []
