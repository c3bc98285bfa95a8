"""Paid MCP tool calls run through the x402 SDK's server-side MCP payment wrapper
(`create_payment_wrapper`), with the paywall's steps as its resource server's hooks: a failed
query, a refused payment and a refused settlement charge nothing and free (or count) the
claim as over HTTP; a replay is refused (`test_mcp_paid.py`)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from paidstack import Stack, free_port, nonce_of
from x402.mcp import MCP_PAYMENT_META_KEY, MCP_PAYMENT_RESPONSE_META_KEY, create_x402_mcp_client

from claw402.chain.eip3009 import sign_cancel
from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.events.store import EventStore
from claw402.mcp import paid
from claw402.payments.client import payment_client
from claw402.payments.schema import payment_claims
from claw402.registry.deploy import DeployRequest, deploy
from claw402.samples import CITIES


@pytest.fixture
def wrapped(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each resource server the SDK's wrapper was built with: proof the wrapper ran."""
    servers: list[object] = []
    build = paid.create_payment_wrapper

    def counted(server: Any, config: Any) -> Any:
        servers.append(server)
        return build(server, config)

    monkeypatch.setattr(paid, "create_payment_wrapper", counted)
    return servers


async def _by_hand(url: str, payment: dict[str, Any] | None) -> Any:
    meta = {MCP_PAYMENT_META_KEY: payment} if payment is not None else None
    async with (
        httpx.AsyncClient(timeout=60) as http,
        streamable_http_client(url, http_client=http) as (r, w, _),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        return await session.call_tool("query", {"_limit": 1}, meta=meta)


def _events(stack: Stack, nonce: str) -> list[tuple[str, str | None]]:
    (claim,) = stack.claims(nonce)
    store = EventStore(stack.registry.engine)
    for _ in range(100):  # the sink writes every 20 ms
        found = store.read_events(request_id=claim["request_id"])
        if any(e["type"] == "dispatch_start" for e in found):
            return [(e["type"], e.get("reason")) for e in found]
        time.sleep(0.05)
    raise AssertionError("no events")


def test_a_failed_query_charges_nothing(
    stack: Stack, payer: Wallet, wrapped: list[object], tmp_path: Path
) -> None:
    """A real failure: the tenant's data file is gone when the paid query runs."""
    source = tmp_path / "cities.csv"
    shutil.copy(CITIES, source)
    tenant = deploy(stack.registry, stack.settings, DeployRequest(source, "broken", "0.01"))
    for _ in range(100):
        if stack.get("/t/broken/v1/schema").status_code == 200:
            break
        time.sleep(0.05)
    Path(tenant.dataset.data_path).unlink()  # type: ignore[union-attr]
    client = payment_client(
        payer.private_key, usdc(1), [(stack.chain.network, stack.chain.token)], scheme="exact"
    )

    async def call() -> Any:
        async with create_x402_mcp_client(client, f"{stack.url}/t/broken/mcp") as session:
            return await session.call_tool("query", {"_limit": 1})

    result = asyncio.run(call())
    assert result.is_error and result.payment_made
    assert result.payment_response is None  # no receipt: nothing settled
    assert wrapped, "the SDK's wrapper did not run"
    assert stack.balance(payer.address) == usdc(1)
    (claim,) = [c for c in _all_claims(stack) if c["payer"].lower() == payer.address.lower()]
    assert claim["status"] == "released" and claim["attempts"] == 1
    kinds = _events(stack, claim["nonce"])
    assert ("payment_verified", None) in kinds
    assert any(k == "payment_failed" and r == "not_charged_query_failed" for k, r in kinds)


def _all_claims(stack: Stack) -> list[dict[str, Any]]:
    with stack.registry.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(payment_claims)).mappings()]


def test_a_payment_the_facilitator_refuses_is_a_new_402(
    stack: Stack, wrapped: list[object]
) -> None:
    broke = stack.payer(0)  # signs, but holds nothing
    payment = stack.sign(broke, "alpha")
    result = asyncio.run(_by_hand(f"{stack.url}/t/alpha/mcp", payment))
    assert result.isError and wrapped
    required = result.structuredContent
    assert required["accepts"][0]["amount"] == str(stack.tenants["alpha"].price_atomic)
    assert required["resource"]["url"] == f"{stack.url}/t/alpha/mcp"  # the tool, for Bazaar
    assert "insufficient" in required["error"].lower()
    assert stack.released(nonce_of(payment)) == 1


def test_a_refused_settlement_gets_no_data_and_a_failed_receipt(
    stack: Stack, payer: Wallet, wrapped: list[object]
) -> None:
    """The payer cancels the authorization on chain between the query and the settle."""
    payment = stack.sign(payer, "alpha")
    nonce = bytes.fromhex(nonce_of(payment)[2:])
    token = stack.chain.token_contract()
    paywall = stack.paywall_with()

    async def cancelling_guard(call, produce):  # type: ignore[no-untyped-def]
        async def produce_then_cancel():  # type: ignore[no-untyped-def]
            answer = await produce()
            signature = sign_cancel(payer.private_key, payer.address, nonce, token.domain())
            await asyncio.to_thread(
                token.cancel_authorization,
                stack.chain.deployer.account,
                payer.address,
                nonce,
                signature,
            )
            return answer

        return await paywall(call, produce_then_cancel)

    url = stack.serve(cancelling_guard)
    result = asyncio.run(_by_hand(f"{url}/t/alpha/mcp", payment))
    assert result.isError and wrapped
    failed = result.structuredContent[MCP_PAYMENT_RESPONSE_META_KEY]
    assert failed["success"] is False and failed["errorReason"]
    assert "Tokyo" not in str(result.content)
    assert stack.balance(payer.address) == usdc(1)
    assert stack.released(nonce_of(payment)) == 1


def test_facilitator_down_is_unavailable_and_the_payment_stays_usable(
    stack: Stack, payer: Wallet, wrapped: list[object]
) -> None:
    dead = stack.serve(stack.paywall_with(facilitator_url=f"http://127.0.0.1:{free_port()}"))
    payment = stack.sign(payer, "alpha")
    down = asyncio.run(_by_hand(f"{dead}/t/alpha/mcp", payment))
    assert down.isError and down.structuredContent["error"] == "facilitator_unavailable"
    assert wrapped
    assert stack.released(nonce_of(payment)) == 0  # the facilitator's fault: not counted
    paid_ = asyncio.run(_by_hand(f"{stack.url}/t/alpha/mcp", payment))
    assert not paid_.isError and paid_.meta[MCP_PAYMENT_RESPONSE_META_KEY]["success"]
    assert stack.balance(payer.address) == usdc(1) - stack.tenants["alpha"].price_atomic


def test_one_payment_sent_ten_times_at_once_is_paid_and_served_once(
    stack: Stack, payer: Wallet, wrapped: list[object]
) -> None:
    payment = stack.sign(payer, "gamma")

    async def all_at_once() -> list[Any]:
        url = f"{stack.url}/t/gamma/mcp"
        return list(await asyncio.gather(*(_by_hand(url, payment) for _ in range(10))))

    results = asyncio.run(all_at_once())
    served = [r for r in results if not r.isError]
    assert len(served) == 1, [r.structuredContent for r in results]
    receipt = served[0].meta[MCP_PAYMENT_RESPONSE_META_KEY]
    assert receipt["success"] and receipt["transaction"]
    refused = {r.structuredContent["error"] for r in results if r.isError}
    assert refused <= {"payment_replayed", "payment_pending"}, refused
    assert stack.balance(payer.address) == usdc(1) - stack.tenants["gamma"].price_atomic
    (booked,) = stack.payments(receipt["transaction"])
    assert booked["amount_atomic"] == stack.tenants["gamma"].price_atomic
