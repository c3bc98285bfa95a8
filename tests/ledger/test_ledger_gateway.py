"""The ledger inside the running system: paid calls through the gateway are on the books at
once, and a gateway start reconciles what a crashed one left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ledgerkit import assert_invariants, insert_claim, make_tenant, settle_on_chain, sync

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.config import Settings
from claw402.devstack import start_dev_stack
from claw402.ledger import balance
from claw402.payments.client import pay_and_fetch
from claw402.registry.db import make_engine
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES


def test_a_paid_call_is_credited_at_settlement(tmp_path, database_url):
    settings = Settings(home=tmp_path, database_url=database_url)
    with start_dev_stack(settings, payers=1) as stack:
        tenant = deploy(
            stack.registry, settings, DeployRequest(source=CITIES, slug="cities", price="0.01")
        )
        chain = stack.chain
        url = f"{stack.gateway.url}/t/cities/v1/records?_limit=1"
        for _ in range(2):
            paid = pay_and_fetch(
                url,
                chain.payers[0].private_key,
                usdc("0.01"),
                allowed_assets=[(chain.network, chain.token)],
            )
            assert paid.response.status_code == 200
        b = balance(stack.registry.engine, tenant.tenant_id)
        assert (b.earned, b.fees, b.available) == (20_000, 1_000, 19_000)
        report = sync(stack.registry.engine, chain, chain.treasury.address)
        assert report.settlements == 0 and report.balanced  # nothing was missing
        assert_invariants(stack.registry.engine, chain, chain.treasury.address)


@contextmanager
def started(settings: Settings) -> Iterator[Any]:
    """The gateway `402claw serve` builds, shut down as its server does (ASGI lifespan), which
    stops its event writer child."""
    from claw402.gateway.server import build_app

    app = build_app(settings)
    try:
        yield app
    finally:
        steps = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, str]:
            return next(steps)

        async def send(message: Any) -> None:
            pass

        asyncio.run(app({"type": "lifespan"}, receive, send))
        app.registry.close()


def test_gateway_start_posts_what_a_crashed_gateway_missed(
    tmp_path, database_url, chain, monkeypatch
):
    treasury = chain.treasury.address  # the dev chain's treasury, as `402claw dev` sets it
    engine = make_engine(database_url)
    settings = Settings(home=tmp_path, database_url=database_url)
    with started(settings):  # migrates; no CLAW402_* payment variables yet: no reconcile
        pass
    tenant = make_tenant(engine, "acme")
    payer = Wallet.create()
    chain.fund(payer.address, usdc(1))
    paid = settle_on_chain(chain, payer, treasury, 10_000)
    insert_claim(
        engine,
        tenant.tenant_id,
        chain.network,
        chain.token,
        paid.payer,
        paid.nonce,
        10_000,
        treasury,
        status="pending",
    )
    for name, value in {
        "CLAW402_ENV": "dev",
        "CLAW402_NETWORK": chain.network,
        "CLAW402_ASSET": chain.token,
        "CLAW402_FACILITATOR_URL": "http://127.0.0.1:9",
        "CLAW402_TREASURY": treasury,
        "CLAW402_RPC_URL": chain.rpc_url,
    }.items():
        monkeypatch.setenv(name, value)
    with started(settings):
        pass
    assert balance(engine, tenant.tenant_id).earned == 10_000
    assert_invariants(engine, chain, treasury)
