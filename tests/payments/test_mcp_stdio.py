"""`402claw mcp --gateway URL` driven by the official MCP stdio client: the gateway's tools,
paid on anvil with the caller's key, until the session's spend cap refuses."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from paidstack import Stack

from claw402.chain.wallet import Wallet

CLI = str(Path(sys.executable).with_name("402claw"))


async def _session(stack: Stack, payer: Wallet, *args: str) -> dict[str, Any]:
    params = StdioServerParameters(
        command=CLI,
        args=[
            "mcp",
            "--gateway",
            f"{stack.url}/t/beta",
            *args,
            "--asset",
            f"{stack.chain.network}={stack.chain.token}",
        ],
        env={**os.environ, "CLAW402_PAYER_KEY": payer.private_key},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        schema = await session.call_tool("schema", {})
        first = await session.call_tool("query", {"city": "Delhi"})
        second = await session.call_tool("query", {"city": "Tokyo"})
        return {"tools": tools, "schema": schema, "first": first, "second": second}


def test_the_stdio_server_pays_within_the_session_cap(stack: Stack, payer: Wallet) -> None:
    price = stack.tenants["beta"].price_atomic  # $0.02
    before = stack.balance(payer.address)
    got = asyncio.run(_session(stack, payer, "--max-price", "0.05", "--max-total", "0.03"))
    assert got["tools"] == ["query", "schema"]
    assert not got["schema"].isError
    first = got["first"]
    assert not first.isError, first.content
    assert first.structuredContent["items"][0]["city"] == "Delhi"
    assert first.meta["x402/payment-response"]["success"]
    second = got["second"]
    assert second.isError and "spend cap reached" in second.content[0].text
    assert stack.balance(payer.address) == before - price  # one payment, none signed after


def test_the_per_call_cap_refuses_before_signing(stack: Stack, payer: Wallet) -> None:
    before = stack.balance(payer.address)
    got = asyncio.run(_session(stack, payer, "--max-price", "0.01"))
    assert got["first"].isError and got["second"].isError
    assert "0.02" in got["first"].content[0].text
    assert stack.balance(payer.address) == before
