"""A paid MCP tool call on anvil with the x402 SDK's MCP client: the HTTP paywall's path,
with its ledger booking, its events and its refusals."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from paidstack import Stack
from x402.extensions.bazaar import ListDiscoveryResourcesParams, with_bazaar
from x402.http import FacilitatorConfig, HTTPFacilitatorClientSync
from x402.mcp import MCP_PAYMENT_META_KEY, create_x402_mcp_client

from claw402.chain.token import usdc
from claw402.chain.wallet import Wallet
from claw402.events.store import EventStore
from claw402.payments.client import payment_client


async def _call(url: str, client: Any, name: str, args: dict[str, Any]) -> Any:
    async with create_x402_mcp_client(client, url) as session:
        return await session.call_tool(name, args)


def test_a_query_tool_paid_with_the_sdks_mcp_client(stack: Stack, payer: Wallet) -> None:
    client = payment_client(
        payer.private_key, usdc(1), [(stack.chain.network, stack.chain.token)], scheme="exact"
    )
    before = stack.balance(payer.address)
    creator_before = stack.balance(stack.creator.address)
    result = asyncio.run(
        _call(f"{stack.url}/t/beta/mcp", client, "query", {"country": "Japan", "_limit": 1})
    )
    assert not result.is_error, result.content
    assert result.payment_made and result.payment_response is not None
    receipt = result.payment_response
    assert receipt.success and receipt.transaction
    page = json.loads(result.content[0].text)
    assert [row["city"] for row in page["items"]] == ["Tokyo"]
    price = stack.tenants["beta"].price_atomic
    assert stack.balance(payer.address) == before - price
    assert stack.balance(stack.creator.address) == creator_before + price
    # Booked once, as an HTTP payment is; and the gateway's events hold the paid call.
    (booked,) = stack.payments(receipt.transaction)
    assert booked["amount_atomic"] == price and booked["resource"].endswith("/t/beta/v1/records")
    store = EventStore(stack.registry.engine)
    request_id = booked["request_id"]
    for _ in range(100):  # the sink writes every 20 ms
        kinds = [e["type"] for e in store.read_events(request_id=request_id)]
        if "dispatch_success" in kinds:
            break
        time.sleep(0.05)
    assert {"payment_verified", "payment_settled", "dispatch_success"} <= set(kinds), kinds
    # The facilitator catalogued the tool the payer used (Bazaar type `mcp`).
    with with_bazaar(HTTPFacilitatorClientSync(FacilitatorConfig(url=stack.facilitator_url))) as c:
        listed = c.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(type="mcp"))
    (tool,) = [i for i in listed.items if i.resource == f"{stack.url}/t/beta/mcp"]
    assert tool.extensions["bazaar"]["info"]["input"]["toolName"] == "query"
    assert tool.accepts[0]["payTo"] == stack.creator.address


def test_an_mcp_payment_is_refused_like_an_http_one(stack: Stack, payer: Wallet) -> None:
    """With the official MCP client and a payment made by hand: signed for another tenant, a
    new 402; spent once, a replay (409). The paywall's rules, not the MCP layer's."""

    async def call(slug: str, meta: dict[str, Any]) -> Any:
        async with (
            httpx.AsyncClient(timeout=30) as http,
            streamable_http_client(f"{stack.url}/t/{slug}/mcp", http_client=http) as (r, w, _),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            return await session.call_tool("query", {"_limit": 1}, meta=meta)

    async def calls(payment: dict[str, Any]) -> list[Any]:
        meta = {MCP_PAYMENT_META_KEY: payment}
        return [await call("gamma", meta), await call("alpha", meta), await call("alpha", meta)]

    payment = stack.sign(payer, "alpha")  # alpha's terms; gamma has the same price and payTo
    wrong, first, again = asyncio.run(calls(payment))
    assert wrong.isError and "tenant_mismatch" in wrong.structuredContent["error"]
    assert not first.isError and first.meta["x402/payment-response"]["success"]
    assert again.isError and again.structuredContent["error"] == "payment_replayed"
