"""Channels through the real `402claw serve`: its channel manager after a crash, and two
gateway processes sharing one PostgreSQL channel storage."""

from __future__ import annotations

import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from channelpay import ChannelPayer, config_of, encode
from paidstack import Stack
from test_payments_serve import serve_env, served
from x402.mechanisms.evm.batch_settlement.utils import compute_channel_id

from claw402.chain.token import usdc
from claw402.config import Settings
from claw402.ledger.balances import balance, check_books
from claw402.ledger.channels import _escrow as escrow
from claw402.ledger.schema import channel_charges
from claw402.registry.deploy import DeployRequest, deploy
from claw402.registry.store import Registry
from claw402.samples import CITIES

PRICE = usdc("0.001")
FEE = PRICE * 500 // 10_000


def _claimed(stack: Stack, channel_id: str) -> int:
    contract = escrow(stack.chain.web3())
    return int(contract.functions.channels(bytes.fromhex(channel_id[2:])).call()[1])


def test_vouchers_accepted_before_a_crash_are_claimed_after_the_restart(stack: Stack) -> None:
    tenant = deploy(
        stack.registry,
        stack.settings,
        DeployRequest(source=CITIES, slug="crash-" + secrets.token_hex(3), price="0.001"),
    )
    payer = ChannelPayer(stack.payer(usdc(1)), stack.chain.network, stack.chain.token)
    slow = {**serve_env(stack), "CLAW402_CHANNEL_CLAIM_SECONDS": "300"}
    with served(slow) as (url, proc):
        for _ in range(4):
            answer, payload = payer.call(f"{url}/t/{tenant.slug}/v1/records?country=Japan")
            assert answer.status_code == 200, answer.text
        proc.send_signal(signal.SIGKILL)  # no chance to claim on the way out
        proc.wait()
    channel_id = compute_channel_id(config_of(payload), stack.chain.network)
    assert _claimed(stack, channel_id) == 0
    fast = {**serve_env(stack), "CLAW402_CHANNEL_CLAIM_SECONDS": "0.2"}
    with served(fast):
        deadline = time.monotonic() + 30
        while balance(stack.registry.engine, tenant.tenant_id).claimed < 4 * (PRICE - FEE):
            assert time.monotonic() < deadline, "not claimed after the restart"
            time.sleep(0.1)
    assert _claimed(stack, channel_id) == 4 * PRICE
    earned = balance(stack.registry.engine, tenant.tenant_id)
    assert (earned.earned, earned.unclaimed, earned.available) == (
        4 * PRICE,
        0,
        4 * (PRICE - FEE),
    )
    assert check_books(stack.registry.engine) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a private schema
def test_two_gateway_processes_given_the_same_voucher_accept_it_once(
    stack: Stack, tmp_path: Path, database_url: str
) -> None:
    settings = Settings(home=tmp_path, database_url=database_url)
    registry = Registry.open(settings)
    try:
        tenant = deploy(
            registry, settings, DeployRequest(source=CITIES, slug="twin", price="0.001")
        )
        env = {
            **serve_env(stack),
            "CLAW402_HOME": str(tmp_path),
            "CLAW402_DATABASE_URL": database_url,
            "CLAW402_CHANNEL_CLAIM_SECONDS": "300",
        }
        payer = ChannelPayer(stack.payer(usdc(1)), stack.chain.network, stack.chain.token)
        with served(env) as (one, _), served(env) as (two, _):
            path = f"/t/{tenant.slug}/v1/records?country=Japan"
            assert payer.call(one + path)[0].status_code == 200  # the deposit
            for _ in range(5):
                payload = payer.sign(one + path)
                header = {"PAYMENT-SIGNATURE": encode(payload)}
                with ThreadPoolExecutor(2) as pool:
                    answers = list(
                        pool.map(
                            lambda base, h=header: httpx.get(base + path, headers=h, timeout=30),
                            (one, two),
                        )
                    )
                statuses = sorted(a.status_code for a in answers)
                assert statuses == [200, 402], [a.text for a in answers]
                won = next(a for a in answers if a.status_code == 200)
                payer.receipt(payload, won)
        with registry.engine.connect() as conn:
            cumulative = conn.execute(
                sa.select(channel_charges.c.cumulative).order_by(channel_charges.c.cumulative)
            ).scalars()
            assert list(cumulative) == [n * PRICE for n in range(1, 7)]
        assert balance(registry.engine, tenant.tenant_id).earned == 6 * PRICE
    finally:
        registry.close()


def test_reconcile_matches_the_escrow_and_the_treasury_after_claims_and_settles(
    tmp_path: Path,
) -> None:
    """On a stack of its own: reconcile reads every treasury transfer since block 0."""
    from dataclasses import replace

    from paidstack import open_stack

    from claw402.ledger.chain import TokenChain
    from claw402.ledger.reconcile import reconcile
    from claw402.payments.channels.manager import ChannelManager
    from claw402.payments.channels.terms import ChannelSchemes

    with open_stack(tmp_path) as stack:
        tenant = stack.tenants["alpha"]
        payers = [
            ChannelPayer(stack.payer(usdc(1)), stack.chain.network, stack.chain.token)
            for _ in range(2)
        ]
        url = f"{stack.url}/t/{tenant.slug}/v1/records?country=Japan"
        for payer, calls in zip(payers, (3, 2), strict=True):
            for _ in range(calls):
                assert payer.call(url)[0].status_code == 200
        price = tenant.price_atomic
        fee = price * 500 // 10_000
        config = replace(stack.config, rpc_url=stack.chain.rpc_url)
        manager = ChannelManager(ChannelSchemes(config, stack.registry.engine))
        chain = TokenChain.connect(stack.chain.rpc_url, stack.chain.token)
        treasury = stack.chain.treasury.address

        before = reconcile(stack.registry.engine, chain, treasury)
        assert before.balanced, before.to_json()  # vouchers moved no token yet
        assert manager.claim().claims
        assert not manager.settle().errors
        report = reconcile(stack.registry.engine, chain, treasury)
        assert report.balanced and report.problems == [], report.to_json()
        assert report.channel_settles == 1
        assert report.ledger_treasury == report.chain_treasury
        again = reconcile(stack.registry.engine, chain, treasury)  # exactly once
        assert (again.channel_claims, again.channel_settles, again.posted) == (0, 0, 0)
        earned = balance(stack.registry.engine, tenant.tenant_id)
        assert (earned.earned, earned.unclaimed, earned.available) == (
            5 * price,
            0,
            5 * (price - fee),
        )
        assert check_books(stack.registry.engine) == []
        # Books that lost a claimed voucher no longer match the escrow: reconcile says so.
        c = channel_charges.c
        with stack.registry.engine.begin() as conn:
            top = conn.execute(sa.select(sa.func.max(c.id))).scalar_one()
            conn.execute(sa.update(channel_charges).where(c.id == top).values(claim_key=None))
        broken = reconcile(stack.registry.engine, chain, treasury)
        assert not broken.balanced
        assert any("totalClaimed" in problem for problem in broken.problems)
